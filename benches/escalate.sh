#!/usr/bin/env bash
# Once per incident: replays a generated corpus with `--tickets` and an LLM endpoint
# configured (a local stand-in for the Anthropic API, benches/fake_llm.py), and prints the
# LLM calls next to the distinct incidents and fingerprints. Then replays the same corpus
# shifted by one day (new incidents, same bugs) against the same state directory: the
# classification cache, read back from the store by the new process, answers them all.
#   benches/escalate.sh             # 1M lines
#   LINES=100000 benches/escalate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-1000000}
mkdir -p target/bench
cargo build --release --locked -q
f=target/bench/corpus-$LINES.log
[ -f "$f" ] || python3 ../shared/tools/gen_corpus.py --lines "$LINES" --format docker-json --seed 1 --out "$f"
shifted=target/bench/corpus-$LINES-next-day.log
[ -f "$shifted" ] || sed 's/"time":"2026-01-01T/"time":"2026-01-02T/' "$f" > "$shifted"
work=$(mktemp -d)
trap 'kill $llm 2>/dev/null; rm -rf "$work"' EXIT
python3 benches/fake_llm.py --port-file "$work/port" & llm=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
cat > "$work/medic.yaml" <<YAML
escalate:
  llm:
    provider: anthropic
    model: bench
    base_url: http://127.0.0.1:$port
    api_key_env: BENCH_LLM_KEY
  budget:
    max_calls_per_hour: 1000000
    max_tokens_per_day: 100000000000
YAML
calls() { python3 -c "import json,urllib.request;print(json.load(urllib.request.urlopen('http://127.0.0.1:$port/stats'))['calls'])"; }
run() {
  local input=$1 out=$2 start end
  start=$(date +%s.%N)
  BENCH_LLM_KEY=bench target/release/medic replay --tickets --config "$work/medic.yaml" \
    --state-dir "$work/state" "$input" > "$out"
  end=$(date +%s.%N)
  python3 - "$out" "$start" "$end" <<'PY'
import json, sys
ids, fps, n = set(), set(), 0
for line in open(sys.argv[1]):
    i = json.loads(line); n += 1
    ids.add(i["id"]); fps.add(i["key"]["fingerprint"])
print(f"{len(ids)} distinct incidents, {len(fps)} distinct fingerprints, {n} notifications, "
      f"{float(sys.argv[3]) - float(sys.argv[2]):.1f} s with tickets")
PY
}
echo "== replay 1: $LINES lines, cold cache"
before=$(calls); run "$f" "$work/inc1.jsonl"; after=$(calls)
echo "LLM calls: $((after - before))"
echo "== replay 2: the same corpus one day later, warm cache (new process)"
before=$(calls); run "$shifted" "$work/inc2.jsonl"; after=$(calls)
echo "LLM calls: $((after - before))"
echo "tickets in the store: $(python3 -c "import sqlite3,sys;c=sqlite3.connect(sys.argv[1]);print(c.execute('select count(*) from tickets').fetchone()[0], 'tickets,', c.execute('select count(*) from ticket_events').fetchone()[0], 'ticket events')" "$work/state/medic.db")"
