#!/usr/bin/env python3
# queue_times.py: time in queue (receive to delivery) per message, from sluiced's tracking log or Postfix's maillog.
# Untrusted input: none (log files the benchmark's own relays wrote; addresses in them are not interpreted).
#
#   queue_times.py sluice LOG_DIR [--since T] [--series FILE]   tracking.csv (and rotated tracking.*.csv)
#   queue_times.py postfix MAILLOG [--since T] [--series FILE]  the private Postfix's maillog_file
#
# Prints one JSON line: delivered (messages with a delivery), deferred and failed (events),
# p50_ms/p90_ms/p99_ms/max_ms of time in queue, and last_delivery (Unix time of the last
# delivery, which ends the delivered-rate interval; 0 when nothing was delivered).
# --since T (Unix time, the start of the load) drops older deliveries; --series writes
# deliveries per second after T as CSV "t_s,delivered,msg_per_s" for the chart.
import argparse
import csv
import datetime
import glob
import json
import os
import re
import sys


def percentile(sorted_values, p):
    # Nearest rank, so a reported p99 is a time some message really took.
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def iso_to_epoch(text):
    # sluiced writes "2026-12-01T12:00:00.123Z" (UTC, milliseconds).
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def sluice_times(log_dir):
    # A message is in the queue from its first RECEIVE (or SUBMIT, for pickup and DSNs) to
    # its last DELIVER: with several recipients the item leaves only when all are done.
    received, delivered = {}, {}
    deferred = failed = 0
    files = sorted(glob.glob(os.path.join(log_dir, "tracking.*.csv"))) + [os.path.join(log_dir, "tracking.csv")]
    for path in files:
        if not os.path.exists(path):
            continue
        with open(path, newline="") as f:
            for row in csv.reader(f):
                if len(row) < 3 or row[0] == "date-time":
                    continue
                event, qid = row[1], row[2]
                if event in ("RECEIVE", "SUBMIT"):
                    t = iso_to_epoch(row[0])
                    if qid not in received or t < received[qid]:
                        received[qid] = t
                elif event == "DELIVER":
                    t = iso_to_epoch(row[0])
                    if t > delivered.get(qid, 0.0):
                        delivered[qid] = t
                elif event == "DEFER":
                    deferred += 1
                elif event in ("FAIL", "EXPIRE"):
                    failed += 1
    waits = [(t - received[q]) * 1000.0 for q, t in delivered.items() if q in received]
    return waits, list(delivered.values()), deferred, failed


# "Dec  1 12:00:00.123456 host postfix/smtp[42]: 4ABC: to=<a@b>, relay=..., delay=0.12, ..., status=sent"
POSTFIX_LINE = re.compile(r"^(\w{3} +\d+ \d\d:\d\d:\d\d(?:\.\d+)?) .*?: ([0-9A-Za-z]+): to=<.*?, delay=([0-9.]+),.* status=(\w+)")


def postfix_times(maillog):
    # Postfix's own delay= is the time from arrival in the queue to this delivery attempt.
    waits, done = [], []
    deferred = failed = 0
    year = datetime.datetime.now().year
    with open(maillog, errors="replace") as f:
        for line in f:
            m = POSTFIX_LINE.match(line)
            if not m:
                continue
            stamp, _qid, delay, status = m.groups()
            if status == "sent":
                fmt = "%Y %b %d %H:%M:%S.%f" if "." in stamp else "%Y %b %d %H:%M:%S"
                done.append(datetime.datetime.strptime(f"{year} {stamp}", fmt).timestamp())  # local time, like the log
                waits.append(float(delay) * 1000.0)
            elif status == "deferred":
                deferred += 1
            else:
                failed += 1
    return waits, done, deferred, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("system", choices=("sluice", "postfix"))
    ap.add_argument("path")
    ap.add_argument("--since", type=float, default=0.0)
    ap.add_argument("--series")
    a = ap.parse_args()
    waits, done, deferred, failed = (sluice_times if a.system == "sluice" else postfix_times)(a.path)
    done = [t for t in done if t >= a.since]
    waits.sort()
    if a.series:
        per_second = {}
        for t in done:
            per_second[int(t - a.since)] = per_second.get(int(t - a.since), 0) + 1
        with open(a.series, "w") as f:
            f.write("t_s,delivered,msg_per_s\n")
            last = max(per_second) if per_second else -1
            for sec in range(last + 1):
                n = per_second.get(sec, 0)
                # The last second is cut short by the end of the run: its rate is over what it had
                # (a quarter second at least, so a few stragglers do not spike).
                span = min(1.0, max(0.25, max(done) - a.since - sec)) if sec == last else 1.0
                f.write(f"{sec + span:.3f},{n},{n / span:.1f}\n")
    print(json.dumps({
        "delivered": len(waits), "deferred": deferred, "failed": failed,
        "p50_ms": round(percentile(waits, 50), 1), "p90_ms": round(percentile(waits, 90), 1),
        "p99_ms": round(percentile(waits, 99), 1), "max_ms": round(waits[-1] if waits else 0.0, 1),
        "last_delivery": round(max(done), 3) if done else 0,
    }))


if __name__ == "__main__":
    main()
