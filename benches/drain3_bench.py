#!/usr/bin/env python3
"""Drain3 (default TemplateMinerConfig) on the `log` field of a docker-json corpus: the
baseline medic's throughput is compared with. Prints lines/s; with --json, a JSON line."""
import argparse
import json
import sys
import time

from drain3 import TemplateMiner


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("corpus")
    ap.add_argument("--lines", type=int, default=200_000, help="lines to feed (from the start)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    msgs = []
    with open(a.corpus, encoding="utf-8") as f:
        for line in f:
            msgs.append(json.loads(line)["log"].rstrip("\n"))
            if len(msgs) >= a.lines:
                break
    miner = TemplateMiner()
    t = time.perf_counter()
    for m in msgs:
        miner.add_log_message(m)
    dt = time.perf_counter() - t
    rate = len(msgs) / dt
    if a.json:
        print(json.dumps({"lines": len(msgs), "seconds": dt, "lines_per_sec": rate, "clusters": len(miner.drain.clusters)}))
    else:
        print(f"drain3: {len(msgs)} lines in {dt:.2f} s = {rate:.0f} lines/s, {len(miner.drain.clusters)} clusters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
