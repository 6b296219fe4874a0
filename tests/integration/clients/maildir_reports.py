#!/usr/bin/env python3
# maildir_reports.py: every message in a Maildir's new/ parsed by Python's email package, as JSON for the DSN tests.
# Untrusted input: the messages (the daemon's DSNs and whatever else was delivered), parsed, never executed.
import email
import email.policy
import json
import os
import re
import sys


def fields_of(block):
    # A delivery-status part is groups of header fields; the email package gives each group
    # as a message/rfc822-like sub-part (python < 3.13) or as one object per group.
    return {k.lower(): str(v) for k, v in block.items()}


def parse(path):
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    out = {
        "file": os.path.basename(path),
        "return_path": msg.get("Return-Path", ""),
        "delivered_to": msg.get("Delivered-To", ""),
        "from": msg.get("From", ""),
        "to": msg.get("To", ""),
        "subject": msg.get("Subject", ""),
        "message_id": msg.get("Message-ID", ""),
        "auto_submitted": msg.get("Auto-Submitted", ""),
        "content_type": msg.get_content_type(),
        "report_type": msg.get_param("report-type") or "",
        "per_message": {},
        "recipients": [],
        "returned_type": "",
        "returned_headers": {},
        "body": "",
    }
    if not msg.is_multipart():
        out["body"] = msg.get_payload(decode=True).decode("utf-8", "replace")
        return out
    parts = msg.get_payload()
    for part in parts[1:]:
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            groups = part.get_payload()
            if isinstance(groups, str):
                groups = [email.message_from_string(g) for g in groups.strip().split("\n\n")]
            if groups:
                out["per_message"] = fields_of(groups[0])
                out["recipients"] = [fields_of(g) for g in groups[1:]]
        elif ctype in ("message/rfc822", "message/global"):
            out["returned_type"] = ctype
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) else email.message_from_string(inner)
            out["returned_headers"] = {k.lower(): str(v) for k, v in inner.items()}
        elif ctype == "text/rfc822-headers":
            out["returned_type"] = ctype
            hdrs = email.message_from_string(part.get_payload(decode=True).decode("utf-8", "replace"))
            out["returned_headers"] = {k.lower(): str(v) for k, v in hdrs.items()}
    # Normalised for substring checks: "rfc822; x@y" and "rfc822;x@y" both become "x@y".
    def addr(v):
        return v.split(";", 1)[1].strip() if ";" in v else v.strip()
    out["actions"] = [r.get("action", "").strip().lower() for r in out["recipients"]]
    out["finals"] = [addr(r.get("final-recipient", "")) for r in out["recipients"]]
    out["orcpts"] = [addr(r.get("original-recipient", "")) for r in out["recipients"]]
    out["statuses"] = [r.get("status", "").strip() for r in out["recipients"]]
    out["envid"] = out["per_message"].get("original-envelope-id", "").strip()
    return out


def delivery_order(name):
    # Maildir names start "SECONDS.M<microseconds>P..." with the microseconds unpadded, so
    # the names themselves do not sort in time order within a second.
    m = re.match(r"(\d+)\.M(\d+)", name)
    return (int(m.group(1)), int(m.group(2)), name) if m else (0, 0, name)


def main():
    new = os.path.join(sys.argv[1], "new")
    names = sorted(os.listdir(new), key=delivery_order) if os.path.isdir(new) else []
    # One line per message, keys sorted, so a test can take them apart line by line.
    for n in names:
        print(json.dumps(parse(os.path.join(new, n)), sort_keys=True))


if __name__ == "__main__":
    main()
