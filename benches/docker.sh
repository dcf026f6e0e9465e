#!/usr/bin/env bash
# Docker source throughput against the local engine, both modes:
#  1. read rate: one container prints LINES lines as fast as it can; `medic tap --quiet
#     --limit LINES` reads them all through the Engine API, then by tailing the json-file
#     log, and prints lines/s and MiB/s;
#  2. cost at a fixed rate: a container prints RATE lines/s for SECS seconds while
#     `medic run` (the whole pipeline) follows it; medic's CPU time over the steady part
#     is reported as % of one core.
#   benches/docker.sh                 # LINES=1000000 RATE=10000 SECS=40
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-1000000}
RATE=${RATE:-10000}
SECS=${SECS:-40}
IMAGE=medic-loggen:test
work=$(mktemp -d)
trap 'docker rm -f medic-bench-flood medic-bench-rate >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cargo build --release --locked -q
rustc -O -C target-feature=+crt-static --edition 2021 tests/docker/loggen.rs -o "$work/loggen"
printf 'FROM scratch\nCOPY loggen /loggen\nENTRYPOINT ["/loggen"]\n' > "$work/Dockerfile"
docker build -q -t "$IMAGE" "$work" >/dev/null
medic=target/release/medic

config() { # mode name
  cat > "$work/$1.yaml" <<YAML
state_dir: $work/state-$1
sources:
  docker:
    mode: $1
    include: ["$2"]
    lookback: 1h
YAML
  echo "$work/$1.yaml"
}

echo "== read rate: $LINES lines from one container"
docker rm -f medic-bench-flood >/dev/null 2>&1 || true
# One log file big enough for every line: the engine's rotation must not drop any.
docker run -d --name medic-bench-flood --log-opt max-size=2g --log-opt max-file=1 "$IMAGE" flood "$LINES" >/dev/null
log=$(docker inspect -f '{{.LogPath}}' medic-bench-flood)
until tail -c 300 "$log" | grep -q "flood line $((LINES - 1)) "; do sleep 0.5; done
for mode in api json_file; do
  cfg=$(config $mode medic-bench-flood)
  echo -n "$mode: "
  $medic tap --config "$cfg" --quiet --limit "$LINES" 2>&1 >/dev/null | grep 'medic tap:'
done
docker rm -f medic-bench-flood >/dev/null

echo "== medic run CPU at $RATE lines/s (steady state over $((SECS - 10)) s)"
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for mode in api json_file; do
  docker rm -f medic-bench-rate >/dev/null 2>&1 || true
  docker run -d --name medic-bench-rate "$IMAGE" rate "$RATE" "$SECS" >/dev/null
  cfg=$(config $mode medic-bench-rate)
  $medic run --config "$cfg" 2>"$work/run-$mode.log" &
  pid=$!
  sleep 5
  c0=$(cpu $pid); t0=$(date +%s.%N)
  sleep $((SECS - 10))
  c1=$(cpu $pid); t1=$(date +%s.%N)
  kill -TERM $pid; wait $pid || true
  read_lines=$(grep -o '[0-9]* records' "$work/run-$mode.log" | head -1)
  awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v tck="$tck" -v mode="$mode" -v r="$read_lines" \
    'BEGIN { printf "%s: %.2f%% of one core (%s in total)\n", mode, 100 * (c1 - c0) / tck / (t1 - t0), r }'
done
