#!/usr/bin/python3
# prometheus_scrape.py: fetches sluiced's /metrics and /metrics.json and prints what prometheus_client's parser reads.
# Untrusted input: the daemon's HTTP responses (parsed by prometheus_client and json, printed escaped).
#
# Usage: prometheus_scrape.py http://127.0.0.1:PORT [--json-file FILE]
# Prints one line per item, for the C++ test to compare:
#   type <family> <type>                  from text_string_to_metric_families
#   text <sample> <labels> <value>        every sample of the text format
#   json <sample> <labels> <value>        counters and gauges of /metrics.json (histograms as _count and _sum)
#   file <sample> <labels> <value>        the same for FILE (sluicectl stats --json output), if given
# <labels> is k=v,k=v sorted by key ("-" for none), with values JSON-quoted.
# Exits 1 with a message when a document does not parse or a content type is wrong.
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def label_text(labels):
    if not labels:
        return "-"
    return ",".join(k + "=" + json.dumps(v) for k, v in sorted(labels.items()))


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode("utf-8")


def json_lines(prefix, doc):
    for name, family in doc.items():
        for s in family["samples"]:
            labels = label_text(s["labels"])
            if family["type"] == "histogram":
                print(prefix, name + "_count", labels, s["count"])
                print(prefix, name + "_sum", labels, s["sum"])
                cumulative = [b["count"] for b in s["buckets"]]
                if cumulative != sorted(cumulative) or s["buckets"][-1]["le"] != "+Inf" or cumulative[-1] != s["count"]:
                    sys.exit("json histogram %s is not cumulative up to +Inf" % name)
            else:
                print(prefix, name, labels, s["value"])


def main():
    base = sys.argv[1].rstrip("/")
    ctype, text = fetch(base + "/metrics")
    if not ctype.startswith("text/plain") or "version=0.0.4" not in ctype:
        sys.exit("/metrics content type: " + ctype)
    for family in text_string_to_metric_families(text):
        print("type", family.name, family.type)
        for s in family.samples:
            print("text", s.name, label_text(s.labels), repr(float(s.value)))
    ctype, body = fetch(base + "/metrics.json")
    if not ctype.startswith("application/json"):
        sys.exit("/metrics.json content type: " + ctype)
    json_lines("json", json.loads(body))
    if len(sys.argv) > 3 and sys.argv[2] == "--json-file":
        with open(sys.argv[3], encoding="utf-8") as f:
            json_lines("file", json.loads(f.read()))


if __name__ == "__main__":
    main()
