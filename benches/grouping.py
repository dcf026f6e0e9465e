#!/usr/bin/env python3
"""How many incident keys each ground-truth template produces (ideally 1).

Runs `medic replay --output hits --no-multiline` on a corpus made by gen_corpus.py with
--truth. Each hit's fingerprint (as assigned when it was seen) is followed through the
template merges printed alongside, as the window stage re-keys incidents, and the resulting
keys are grouped by the line's ground-truth template.

    benches/grouping.py target/bench/corpus-1m.log target/bench/corpus-1m.truth
"""
import collections
import json
import subprocess
import sys


def main():
    corpus, truth_path = sys.argv[1], sys.argv[2]
    medic = sys.argv[3] if len(sys.argv) > 3 else "target/release/medic"
    truth = open(truth_path, encoding="utf-8").read().split("\n")
    keys = collections.defaultdict(set)
    lines = collections.Counter()
    proc = subprocess.Popen([medic, "replay", "--output", "hits", "--no-multiline", corpus],
                            stdout=subprocess.PIPE, text=True)
    alias = {}
    hits = []
    for row in proc.stdout:
        r = json.loads(row)
        if "merge" in r:
            alias[r["merge"]["from"]] = r["merge"]["to"]
            continue
        hits.append((r["line"], r["fingerprint"]))

    def final(fp):
        # The window stage re-keys an incident on every merge of its template.
        while fp in alias:
            fp = alias[fp]
        return fp

    for line, fp in hits:
        t = truth[line - 1]
        keys[t].add(final(fp))
        lines[t] += 1
    if proc.wait() != 0:
        sys.exit("medic replay failed")
    split = {t: k for t, k in keys.items() if len(k) > 1}
    hist = collections.Counter(len(k) for k in keys.values())
    print(f"{len(keys)} ground-truth templates with rule hits, {sum(lines.values())} hit lines")
    print("incident keys per template:", dict(sorted(hist.items())))
    split_lines = sum(lines[t] for t in split)
    print(f"templates split: {len(split)} ({split_lines} of {sum(lines.values())} hit lines)")
    for t, k in sorted(split.items(), key=lambda x: -lines[x[0]])[:10]:
        print(f"  {len(k)} keys, {lines[t]} lines: {t[:120]}")


if __name__ == "__main__":
    main()
