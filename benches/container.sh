#!/usr/bin/env bash
# The medic container's own cost: idle, and while it follows a container printing
# RATE lines/s (tests/docker/loggen.rs). CPU from the process's utime+stime over the
# window, RSS from /proc; the image from deploy/build-image.sh.
#   benches/container.sh               # RATE=10000
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-10000}
tag=bench-$$
token=bench-$$
work=$(mktemp -d)
cleanup() {
  docker rm -f "medic-$tag" "loggen-$tag" >/dev/null 2>&1 || true
  docker volume rm "state-$tag" >/dev/null 2>&1 || true
  docker rmi "medic:$tag" "medic-demo-app:$tag" "loggen:$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
deploy/build-image.sh "$tag" >/dev/null
rustc -O -C target-feature=+crt-static --edition 2021 tests/docker/loggen.rs -o "$work/loggen"
printf 'FROM scratch\nCOPY loggen /loggen\nENTRYPOINT ["/loggen"]\n' > "$work/Dockerfile"
docker build -q -t "loggen:$tag" "$work" >/dev/null
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
docker run -d --name "medic-$tag" --group-add "$(stat -c %g /var/run/docker.sock)" \
  -v /var/run/docker.sock:/var/run/docker.sock:ro -v "state-$tag:/var/lib/medic" \
  -e MEDIC_API_TOKEN="$token" -e MONITORED_CONTAINERS="loggen-$tag" \
  -p "127.0.0.1:$port:9464" "medic:$tag" >/dev/null
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
pid=$(docker inspect -f '{{.State.Pid}}' "medic-$tag")
ticks=$(getconf CLK_TCK)
measure() {
  local secs=$1 a b
  a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  sleep "$secs"
  b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  python3 -c "print(f'{($b - $a) / $ticks / $secs * 100:.2f}% of a core, RSS', end=' ')"
  awk '/VmRSS/{printf "%.1f MiB\n", $2 / 1024}' "/proc/$pid/status"
}
sleep 5
echo "image: $(docker image inspect -f '{{.Size}}' "medic:$tag" | awk '{printf "%.1f MB", $1/1e6}')"
echo "idle over 20 s: $(measure 20)"
docker run -d --name "loggen-$tag" "loggen:$tag" rate "$RATE" 45 >/dev/null
sleep 10
echo "at $RATE lines/s over 30 s: $(measure 30)"
lines=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/sources" | python3 -c "import json,sys; print(sum(s['lines'] for s in json.load(sys.stdin)['sources']))")
echo "lines read from the generator so far: $lines"
