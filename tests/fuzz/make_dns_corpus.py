#!/usr/bin/env python3
# make_dns_corpus.py: writes the dns_answer seeds (corpus/dns_answer/) as DNS responses in wire format.
# Untrusted input: none (every message is built here; run it again after changing it).
# Each seed is one flags byte (dns_answer_fuzz.cc: bits 0-1 the question type, 2-3 self names)
# followed by the response as c-ares would hand it to the answer callback.
import os
import struct

MX, A, AAAA, SOA, CNAME = 15, 1, 28, 6, 5
FLAG_MX, FLAG_A, FLAG_AAAA = 0, 1, 2


def name(text):
    out = b""
    for label in text.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def header(qid, rcode, qd, an, ns, ar=0, tc=False):
    flags = 0x8180 | rcode | (0x0200 if tc else 0)  # QR RD RA
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


def question(qname, qtype):
    return name(qname) + struct.pack(">HH", qtype, 1)


def rr(owner, rtype, ttl, rdata):
    # owner may be raw bytes (a compression pointer) or text
    o = owner if isinstance(owner, bytes) else name(owner)
    return o + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def mx(pref, host):
    return struct.pack(">H", pref) + (host if isinstance(host, bytes) else name(host))


def soa(ttl, minimum):
    rdata = name("ns1.example.com") + name("hostmaster.example.com") + struct.pack(">IIIII", 1, 7200, 900, 1209600, minimum)
    return rr("example.com", SOA, ttl, rdata)


PTR_QNAME = b"\xc0\x0c"  # the question's name, at offset 12


def seeds():
    q = question("example.com", MX)
    yield "mx_two", FLAG_MX, header(1, 0, 1, 2, 0) + q + rr(PTR_QNAME, MX, 300, mx(10, "mx1.example.com")) + rr(
        PTR_QNAME, MX, 600, mx(20, "mx2.example.net"))
    # Equal preferences (shuffled), a duplicate host, mixed case and a self name (flags bit 2: MX1.Example.NET).
    yield "mx_equal_self", FLAG_MX | 4, header(2, 0, 1, 4, 0) + q + rr(PTR_QNAME, MX, 300, mx(10, "mx1.example.net")) + rr(
        PTR_QNAME, MX, 300, mx(10, "MX2.Example.Net.")) + rr(PTR_QNAME, MX, 300, mx(5, "mx2.example.net")) + rr(
        PTR_QNAME, MX, 300, mx(20, "backup.example.org"))
    # The exchange names compressed against an earlier one ("mx1" + pointer to "example.com").
    off = 12 + len(q) + 2 + 10 + 2  # start of the first exchange's name
    first = mx(10, "mail.example.com")
    yield "mx_compressed", FLAG_MX, header(3, 0, 1, 2, 0) + q + rr(PTR_QNAME, MX, 300, first) + rr(
        PTR_QNAME, MX, 300, struct.pack(">H", 20) + b"\x03mx2" + struct.pack(">H", 0xC000 | (off + 5)))
    yield "mx_null", FLAG_MX, header(4, 0, 1, 1, 0) + q + rr(PTR_QNAME, MX, 3600, mx(0, b"\0"))
    yield "mx_null_among_real", FLAG_MX, header(5, 0, 1, 2, 0) + q + rr(PTR_QNAME, MX, 3600, mx(0, b"\0")) + rr(
        PTR_QNAME, MX, 3600, mx(10, "mx.example.com"))
    yield "mx_cname_only", FLAG_MX, header(6, 0, 1, 1, 0) + q + rr(PTR_QNAME, CNAME, 60, name("alias.example.net"))
    yield "mx_nodata_soa", FLAG_MX, header(7, 0, 1, 0, 1) + q + soa(900, 300)
    yield "mx_nxdomain_soa", FLAG_MX, header(8, 3, 1, 0, 1) + q + soa(86400, 3600)
    yield "mx_servfail", FLAG_MX, header(9, 2, 1, 0, 0) + q
    yield "mx_ttl_top_bit", FLAG_MX, header(10, 0, 1, 1, 0) + q + rr(PTR_QNAME, MX, 0x80000001, mx(10, "mx.example.com"))
    # Self is the best MX (flags bit 3 makes the first record's host a self name): loops to self.
    yield "mx_loop_self", FLAG_MX | 8, header(11, 0, 1, 2, 0) + q + rr(PTR_QNAME, MX, 300, mx(5, "me.example.com")) + rr(
        PTR_QNAME, MX, 300, mx(10, "other.example.com"))
    whole = header(12, 0, 1, 2, 0) + q + rr(PTR_QNAME, MX, 300, mx(10, "mx1.example.com")) + rr(
        PTR_QNAME, MX, 300, mx(20, "mx2.example.com"))
    yield "mx_truncated", FLAG_MX, whole[: len(whole) - 7]
    yield "mx_tc_bit", FLAG_MX, header(13, 0, 1, 1, 0, tc=True) + q + rr(PTR_QNAME, MX, 300, mx(10, "mx.example.com"))
    # A pointer loop: the exchange name points at itself.
    loop_at = 12 + len(q) + 12 + 2
    yield "mx_pointer_loop", FLAG_MX, header(14, 0, 1, 1, 0) + q + rr(
        PTR_QNAME, MX, 300, struct.pack(">H", 10) + struct.pack(">H", 0xC000 | loop_at))

    qa = question("mx1.example.com", A)
    yield "a_two", FLAG_A, header(20, 0, 1, 2, 0) + qa + rr(PTR_QNAME, A, 120, bytes([192, 0, 2, 1])) + rr(
        PTR_QNAME, A, 60, bytes([192, 0, 2, 2]))
    yield "a_cname_chain", FLAG_A, header(21, 0, 1, 2, 0) + qa + rr(PTR_QNAME, CNAME, 30, name("real.example.com")) + rr(
        "real.example.com", A, 300, bytes([198, 51, 100, 7]))
    yield "a_bad_rdlen", FLAG_A, header(22, 0, 1, 1, 0) + qa + rr(PTR_QNAME, A, 120, bytes([192, 0, 2]))
    yield "a_nodata", FLAG_A, header(23, 0, 1, 0, 1) + qa + soa(600, 60)
    qaaaa = question("mx1.example.com", AAAA)
    yield "aaaa_one", FLAG_AAAA, header(30, 0, 1, 1, 0) + qaaaa + rr(
        PTR_QNAME, AAAA, 300, bytes.fromhex("20010db8000000000000000000000001"))
    yield "aaaa_nxdomain", FLAG_AAAA, header(31, 3, 1, 0, 1) + qaaaa + soa(3600, 900)
    yield "empty", FLAG_MX, b""
    yield "header_only", FLAG_MX, header(40, 0, 0, 0, 0)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "dns_answer")
    os.makedirs(out, exist_ok=True)
    for label, flags, message in seeds():
        with open(os.path.join(out, label), "wb") as f:
            f.write(bytes([flags]) + message)


if __name__ == "__main__":
    main()
