#!/usr/bin/env bash
# QA off the hot path: `medic run` reads a file of REPEAT copies of the generated
# docker-json corpus through the whole pipeline, once without QA and once with the demo
# shop's four flows scheduled every EVERY (default 1s with no jitter: back to back, a
# browser running the whole time; EVERY=60s gives each flow a run a minute, with the
# default 30 s jitter). Prints the pipeline's lines/s for both. Needs Debian's chromium.
#   benches/qa_overhead.sh                          # worst case, 1M lines
#   EVERY=60s REPEAT=10 RUNS=2 benches/qa_overhead.sh   # a minute-long window
# IDLE and BUSY set qa.idle and qa.busy_cpu; the defaults are the shipped ones (true,
# 0.8: the browser only gets CPU the pipeline leaves, and due runs wait while the host is
# busy). IDLE=false BUSY=1 makes the browser compete at normal priority: the worst case.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-1000000}
RUNS=${RUNS:-3}
EVERY=${EVERY:-1s}
BUSY=${BUSY:-0.8}
IDLE=${IDLE:-true}
REPEAT=${REPEAT:-1}
[ -x /usr/bin/chromium ] || { echo "qa_overhead: needs Debian's chromium (apt-get install chromium)" >&2; exit 1; }
mkdir -p target/bench
cargo build --release --locked -q --workspace
f=target/bench/corpus-$LINES.log
[ -f "$f" ] || python3 ../shared/tools/gen_corpus.py --lines "$LINES" --format docker-json --seed 1 --out "$f"
work=$(mktemp -d)
if [ "$REPEAT" -gt 1 ]; then
  big=target/bench/corpus-$LINES-x$REPEAT.log
  [ -f "$big" ] || for _ in $(seq "$REPEAT"); do cat "$f"; done > "$big"
  f=$big
fi
LINES=$((LINES * REPEAT))
trap 'kill $app 2>/dev/null; rm -rf "$work"' EXIT
app_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PORT=$app_port BIND=127.0.0.1 target/release/demo-app >/dev/null & app=$!
mkdir -p "$work/flows"
for fl in fixtures/demo-app/flows/*.yaml; do
  sed "s/^every: .*/every: $EVERY/" "$fl" > "$work/flows/$(basename "$fl")"
done
measure() {
  local qa=$1 state=$work/state-$RANDOM api_port
  api_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  {
    echo "state_dir: $state"
    echo "api: { listen: \"127.0.0.1:$api_port\" }"
    echo "sources:"
    echo "  docker: { enabled: false }"
    echo "  files: [{ path: $PWD/$f }]"
    if [ "$qa" = on ]; then
      if [ "$EVERY" = 1s ]; then jitter=0s; else jitter=30s; fi
      echo "qa: { flows: [$work/flows], jitter: $jitter, step_timeout: 5s, busy_cpu: $BUSY, idle: $IDLE }"
    fi
  } > "$work/medic.yaml"
  DEMO_APP_URL=http://127.0.0.1:$app_port target/release/medic run --config "$work/medic.yaml" 2>/dev/null & local medic=$!
  python3 - "$api_port" "$LINES" "$qa" <<'PY' || { kill $medic; exit 1; }
import json, sys, time, urllib.request
port, lines, qa = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def status():
    try:
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2))["modules"]
    except Exception:
        return None
while status() is None:
    time.sleep(0.01)
start = time.time()
while True:
    m = status()
    if m and m[0]["records"] >= lines:
        break
    time.sleep(0.02)
took = time.time() - start
qa_status = m[2] if m else {}
runs = qa_status.get("runs", 0)
passed = runs - qa_status.get("failures", 0)
deferred = qa_status.get("deferred", 0)
print(f"qa {qa:>3}: {lines} lines in {took:.2f} s = {lines / took:,.0f} lines/s, "
      f"QA runs finished meanwhile: {runs} ({passed} passed, {deferred} waited for a calm host)")
if qa == "on" and passed == 0 and deferred == 0:
    sys.exit(f"qa_overhead: no flow passed while the pipeline ran ({qa_status}); the figure would not include a browser")
PY
  kill $medic; wait $medic 2>/dev/null || true
}
for i in $(seq "$RUNS"); do
  measure off
  measure on
done
