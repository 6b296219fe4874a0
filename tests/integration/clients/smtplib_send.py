#!/usr/bin/env python3
# smtplib_send.py: sends messages to sluiced with Python's smtplib and prints one line per result.
# Usage: smtplib_send.py PORT FROM TO[,TO...] COUNT [--size N] [--features]
import smtplib
import sys
from email.message import EmailMessage


def main():
    port, sender, rcpts, count = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
    size = 200
    if "--size" in sys.argv:
        size = int(sys.argv[sys.argv.index("--size") + 1])
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=20) as s:
        code, _ = s.ehlo()
        if "--features" in sys.argv:
            print("EHLO", code, " ".join(sorted(s.esmtp_features.keys())))
        for n in range(count):
            msg = EmailMessage()
            msg["From"] = sender
            msg["To"] = ", ".join(rcpts)
            msg["Subject"] = f"smtplib message {n}"
            msg.set_content(("line of body text %d\n" % n) * max(1, size // 22))
            try:
                # smtplib adds SIZE= itself when the server offers it.
                refused = s.send_message(msg)
                print("SENT", n, "refused=%d" % len(refused))
            except smtplib.SMTPRecipientsRefused as e:
                for addr, (code, text) in e.recipients.items():
                    print("REFUSED", addr, code, text.decode())
            except smtplib.SMTPResponseException as e:
                print("ERROR", e.smtp_code, e.smtp_error.decode())


if __name__ == "__main__":
    main()
