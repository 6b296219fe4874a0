#!/usr/bin/env python3
# parse_report.py: reads one DSN back with Python's email package (a MIME parser we did not write) and prints,
# as JSON, what tests/dsn asserts on: types, headers, delivery-status fields, the returned part, defects, lines.
# Untrusted input: none (the report the test composed).
import email
import json
import re
import sys


def unfold(value):
    # RFC 5322 2.2.3: unfolding removes the line breaks only, so the folded text comes back exactly.
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def field_map(items):
    out = {}
    for name, value in items:
        out.setdefault(name.lower(), []).append(unfold(str(value)))
    return out


def blocks_of_text(text):
    blocks = []
    for block in re.split(r"\r?\n[ \t]*\r?\n", text):
        if block.strip():
            blocks.append(field_map(email.message_from_string(block + "\r\n").items()))
    return blocks


def status_blocks(part):
    # message/delivery-status comes back as one Message per block; message/global-delivery-status, unknown to
    # the package, as one Message whose body holds the remaining blocks.
    payload = part.get_payload()
    if isinstance(payload, str):
        return blocks_of_text(payload)
    blocks = []
    for sub in payload:
        blocks.append(field_map(sub.items()))
        rest = sub.get_payload()
        if isinstance(rest, str) and rest.strip():
            blocks.extend(blocks_of_text(rest))
    return blocks


def returned(part):
    out = {"type": part.get_content_type(), "cte": part.get("Content-Transfer-Encoding", "")}
    payload = part.get_payload()
    if isinstance(payload, list):
        inner = payload[0]
        out["headers"] = field_map(inner.items())
        out["subject"] = inner.get("Subject", "")
        body = inner.get_payload()
        out["body"] = body.replace("\r\n", "\n") if isinstance(body, str) else "(multipart)"
    else:
        out["text"] = payload.replace("\r\n", "\n")
        out["headers"] = field_map(email.message_from_string(payload).items())
    return out


def main():
    raw = open(sys.argv[1], "rb").read()
    without_crlf = raw.replace(b"\r\n", b"")
    msg = email.message_from_string(raw.decode("utf-8", "surrogateescape"))
    defects = []
    for part in msg.walk():
        defects.extend(type(d).__name__ for d in part.defects)
    parts = msg.get_payload() if msg.is_multipart() else []
    result = {
        "content_type": msg.get_content_type(),
        "report_type": msg.get_param("report-type") or "",
        "boundary": msg.get_boundary() or "",
        "headers": field_map(msg.items()),
        "defects": defects,
        "max_line": max(len(line) for line in raw.split(b"\r\n")),
        "bare_lf": b"\n" in without_crlf,
        "bare_cr": b"\r" in without_crlf,
        "ends_crlf": raw.endswith(b"\r\n"),
        "non_ascii": any(b >= 0x80 for b in raw),
        "parts": [p.get_content_type() for p in parts],
        "text": "",
        "message": {},
        "recipients": [],
        "returned": {},
    }
    if len(parts) >= 1:
        result["text"] = parts[0].get_payload().replace("\r\n", "\n")
        result["text_charset"] = parts[0].get_content_charset() or ""
    if len(parts) >= 2:
        blocks = status_blocks(parts[1])
        if blocks:
            result["message"] = blocks[0]
            result["recipients"] = blocks[1:]
    if len(parts) >= 3:
        result["returned"] = returned(parts[2])
    json.dump(result, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
