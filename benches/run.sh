#!/usr/bin/env bash
# Reproducible end-to-end benchmark: generates the docker-json corpora with the shared
# generator, runs `medic bench` on 1M lines (and 5M to show memory does not grow) through
# every stage including the window stage with 1 and 2 workers, runs Drain3 on the same
# messages and prints the ratio, then reports how many incident keys each ground-truth
# template produced.
#   benches/run.sh            # 1M and 5M lines
#   LINES="1000000" benches/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-"1000000 5000000"}
DRAIN_LINES=${DRAIN_LINES:-200000}
mkdir -p target/bench
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-pip; }
python3 -c 'import drain3' 2>/dev/null || python3 -m pip install -q drain3
cargo build --release --locked -q
for n in $LINES; do
  f=target/bench/corpus-$n.log
  [ -f "$f" ] && [ -f "target/bench/corpus-$n.truth" ] || python3 ../shared/tools/gen_corpus.py \
    --lines "$n" --format docker-json --seed 1 --out "$f" --truth "target/bench/corpus-$n.truth"
done
first=$(echo $LINES | awk '{print $1}')
for n in $LINES; do
  echo "== medic bench, $n lines"
  target/release/medic bench --input "target/bench/corpus-$n.log" --json | tee "target/bench/medic-$n.txt" | head -n -1
done
echo "== drain3 on the first $DRAIN_LINES messages of the $first-line corpus"
python3 benches/drain3_bench.py "target/bench/corpus-$first.log" --lines "$DRAIN_LINES" --json | tee target/bench/drain3.json
python3 - "$first" <<'PY'
import json, sys
n = sys.argv[1]
m = json.loads(open(f"target/bench/medic-{n}.txt").read().splitlines()[-1])
d = json.load(open("target/bench/drain3.json"))
print(f"medic end-to-end {m['lines_per_sec']:.0f} lines/s vs drain3 {d['lines_per_sec']:.0f} lines/s: "
      f"{m['lines_per_sec'] / d['lines_per_sec']:.0f}x; medic fingerprint stage alone "
      f"{m['stages']['fingerprint']['lines_per_sec'] / d['lines_per_sec']:.0f}x")
PY
echo "== incident keys per ground-truth template ($first lines)"
python3 benches/grouping.py "target/bench/corpus-$first.log" "target/bench/corpus-$first.truth"
