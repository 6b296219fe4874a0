#!/usr/bin/env python3
# next_hop.py: a deliberately lenient, optionally malicious SMTP next hop for protocol_attack_test.cc; it records every message it takes.
# Untrusted input: the SMTP client's bytes (sluiced delivering); parsed leniently on purpose.
#
# Usage: next_hop.py --listen HOST:PORT --dir DIR [--cert PEM --key PEM] [--mode MODE] [--attacks N]
#                    [--chunking] [--bdat-refuse K] [--bdat-drop-at-last]
# Modes (the first N connections act them out, later ones behave; N defaults to all):
#   lenient          no attack: a receiver that honours every line end a careless MTA honours
#                    (LF, CR, CRLF, NUL), so a forged end of data would split the message here
#   starttls-inject  answers STARTTLS with its 220 and forged replies for the commands the
#                    client sends next, in one write; then (should the client still
#                    handshake) refuses every MAIL over TLS, so only a believed forgery
#                    could make the client report delivery
#   forged-greeting  a forged "250" before its 220 greeting, in one write
#   forged-starttls  answers STARTTLS with a forged "250" and then its 220, in one write
# --chunking offers CHUNKING and BINARYMIME (RFC 3030): BDAT n [LAST] takes exactly n octets.
# In the connections that attack, --bdat-refuse K answers the K-th chunk of each transaction
# with 554 (and later chunks of it with 503, until RSET); --bdat-drop-at-last hangs up once the
# LAST chunk is in, without a reply (so the message is not recorded).
# Records in DIR: messages.log ("<n>\t<tls 0|1>\t<MAIL FROM argument>\t<rcpt>,<rcpt>") and
# <n>.data (the DATA bytes exactly as received, dot-stuffing and terminator included, or the
# BDAT chunks' octets joined); sessions.log (one line per connection and event: "bdat <n>
# [last]" per chunk, "rset"). Lines are flushed as they happen.
# DIR/ready appears once the socket listens.
import argparse
import re
import socket
import ssl
import sys
import threading

# A line holding only "." after any line end, ended by any line end: what a lenient
# receiver takes as the end of data (SMTP smuggling relies on exactly this).
LENIENT_END = re.compile(rb"(?:^|\r\n|\n|\r|\0)\.(?:\r\n|\n|\r|\0)")
FORGED_AFTER_STARTTLS = (b"250-forged.example\r\n250 PIPELINING\r\n250 2.1.0 forged sender ok\r\n"
                         b"250 2.1.5 forged recipient ok\r\n354 forged go ahead\r\n"
                         b"250 2.0.0 forged queued as FORGED\r\n")


class recorder:
    def __init__(self, directory):
        self.dir = directory
        self.lock = threading.Lock()
        self.messages = 0
        self.connections = 0

    def connection(self):
        with self.lock:
            self.connections += 1
            return self.connections

    def session(self, n, text):
        with self.lock, open(self.dir + "/sessions.log", "a") as f:
            f.write(f"{n}\t{text}\n")

    def message(self, tls, mail, rcpts, data):
        with self.lock:
            self.messages += 1
            n = self.messages
            with open(f"{self.dir}/{n}.data", "wb") as f:
                f.write(data)
            with open(self.dir + "/messages.log", "a") as f:
                f.write(f"{n}\t{1 if tls else 0}\t{mail}\t{','.join(rcpts)}\n")
            return n


class session:
    def __init__(self, sock, args, rec, attacking):
        self.sock = sock
        self.args = args
        self.rec = rec
        self.attacking = attacking
        self.n = rec.connection()
        self.buf = b""
        self.tls = False

    def send(self, data):
        self.sock.sendall(data)

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def line(self):
        # Commands end at LF (CR stripped), as lenient servers read them.
        while b"\n" not in self.buf:
            self.fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("latin-1")

    def octets(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def data(self):
        # Data up to the first lenient end; the rest stays buffered as the next commands.
        while True:
            m = LENIENT_END.search(self.buf)
            if m:
                data, self.buf = self.buf[:m.end()], self.buf[m.end():]
                if data.endswith(b"\r") and self.buf.startswith(b"\n"):
                    self.buf = self.buf[1:]
                return data
            self.fill()

    def mode(self, name):
        return self.attacking and self.args.mode == name

    def run(self):
        self.rec.session(self.n, "connect attack=" + (self.args.mode if self.attacking else "none"))
        greeting = b"220 nexthop.test ESMTP lenient\r\n"
        if self.mode("forged-greeting"):
            greeting = b"250 2.0.0 forged before the greeting\r\n" + greeting
        self.send(greeting)
        mail, rcpts = None, []
        chunks, refused = [], False
        while True:
            cmd = self.line()
            verb = cmd[:4].upper()
            if verb in ("EHLO", "HELO"):
                caps = ["nexthop.test", "PIPELINING", "8BITMIME", "SMTPUTF8"]
                if self.args.chunking:
                    caps += ["CHUNKING", "BINARYMIME"]
                if self.args.cert and not self.tls:
                    caps.append("STARTTLS")
                self.send("".join(f"250{'-' if i + 1 < len(caps) else ' '}{c}\r\n"
                                  for i, c in enumerate(caps)).encode())
            elif cmd.upper() == "STARTTLS" and self.args.cert and not self.tls:
                if self.mode("starttls-inject"):
                    self.send(b"220 2.0.0 go ahead\r\n" + FORGED_AFTER_STARTTLS)
                elif self.mode("forged-starttls"):
                    self.send(b"250 2.0.0 forged\r\n220 2.0.0 go ahead\r\n")
                else:
                    self.send(b"220 2.0.0 go ahead\r\n")
                self.rec.session(self.n, "starttls leftover=%d" % len(self.buf))
                self.buf = b""  # RFC 3207 4.2: plaintext pipelined after STARTTLS is not believed
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.args.cert, self.args.key)
                try:
                    self.sock = ctx.wrap_socket(self.sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.rec.session(self.n, "tls failed " + type(e).__name__)
                    return
                self.tls = True
                self.rec.session(self.n, "tls " + self.sock.version())
                mail, rcpts = None, []
            elif verb == "MAIL":
                if self.mode("starttls-inject") and self.tls:
                    self.send(b"451 4.3.0 this session takes no mail\r\n")
                    continue
                mail, rcpts = cmd[5:].strip(), []
                if mail.upper().startswith("FROM:"):
                    mail = mail[5:].strip()
                self.send(b"250 2.1.0 ok\r\n")
            elif verb == "RCPT":
                if mail is None:
                    self.send(b"503 5.5.1 MAIL first\r\n")
                    continue
                to = cmd[5:].strip()
                if to.upper().startswith("TO:"):
                    to = to[3:].strip()
                rcpts.append(to)
                self.send(b"250 2.1.5 ok\r\n")
            elif verb == "DATA":
                if mail is None or not rcpts:
                    self.send(b"503 5.5.1 no valid recipients\r\n")
                    continue
                self.send(b"354 go ahead\r\n")
                n = self.rec.message(self.tls, mail, rcpts, self.data())
                self.send(b"250 2.0.0 queued as %d\r\n" % n)
                mail, rcpts = None, []
            elif verb == "BDAT" and self.args.chunking:
                words = cmd.split()
                if len(words) not in (2, 3) or not words[1].isdigit() or (len(words) == 3 and words[2].upper() != "LAST"):
                    self.send(b"501 5.5.4 syntax: BDAT size [LAST]\r\n")
                    continue
                size, last = int(words[1]), len(words) == 3
                octets = self.octets(size)  # read even when refused (RFC 3030 2)
                self.rec.session(self.n, "bdat %d%s" % (size, " last" if last else ""))
                chunks.append(octets)
                if last and self.attacking and self.args.bdat_drop_at_last:
                    self.rec.session(self.n, "dropped at last")
                    return
                if mail is None or not rcpts:
                    self.send(b"503 5.5.1 no valid recipients\r\n")
                elif refused:
                    self.send(b"503 5.5.1 transaction failed earlier: RSET\r\n")
                elif self.attacking and self.args.bdat_refuse == len(chunks):
                    refused = True
                    self.send(b"554 5.6.0 chunk %d refused\r\n" % len(chunks))
                elif last:
                    n = self.rec.message(self.tls, mail, rcpts, b"".join(chunks))
                    self.send(b"250 2.0.0 queued as %d\r\n" % n)
                else:
                    self.send(b"250 2.0.0 %d octets\r\n" % size)
                if last and not refused:
                    mail, rcpts, chunks = None, [], []
            elif verb == "RSET":
                mail, rcpts, chunks, refused = None, [], [], False
                self.rec.session(self.n, "rset")
                self.send(b"250 2.0.0 ok\r\n")
            elif verb == "NOOP":
                self.send(b"250 2.0.0 ok\r\n")
            elif verb == "QUIT":
                self.send(b"221 2.0.0 bye\r\n")
                return
            else:
                self.send(b"502 5.5.2 not implemented\r\n")


def serve(conn, args, rec, attacking):
    s = session(conn, args, rec, attacking)
    try:
        s.run()
    except (EOFError, OSError, ssl.SSLError) as e:
        rec.session(s.n, "ended " + type(e).__name__)
    finally:
        try:
            s.sock.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--mode", default="lenient",
                   choices=["lenient", "starttls-inject", "forged-greeting", "forged-starttls"])
    p.add_argument("--attacks", type=int, default=-1, help="connections that attack (-1: all)")
    p.add_argument("--chunking", action="store_true", help="offer CHUNKING and BINARYMIME")
    p.add_argument("--bdat-refuse", type=int, default=0, help="refuse the K-th BDAT chunk (attacking connections)")
    p.add_argument("--bdat-drop-at-last", action="store_true", help="hang up after the LAST chunk (attacking)")
    args = p.parse_args()
    host, port = args.listen.rsplit(":", 1)
    rec = recorder(args.dir)
    lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, int(port)))
    lsock.listen(64)
    # Ready once listening: a probe connection would count as one of the attacked ones.
    open(args.dir + "/ready", "w").close()
    accepted = 0
    while True:
        conn, _ = lsock.accept()
        conn.settimeout(30)
        accepted += 1
        attacking = args.attacks < 0 or accepted <= args.attacks
        threading.Thread(target=serve, args=(conn, args, rec, attacking), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
