#!/usr/bin/env bash
# Runs every check and test on a fresh machine: installs what the tests need, then
# formatting, lints, docs and all test targets. This is the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
command -v cc >/dev/null || need_apt+=(gcc)
command -v docker >/dev/null || need_apt+=(docker.io)
# tests/deploy.rs and the end-to-end demo (scripts/e2e.sh, run last) use these.
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v curl >/dev/null || need_apt+=(curl)
# The images carry this host's CA roots, and their binaries are stripped.
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
command -v strip >/dev/null || need_apt+=(binutils)
# A real Prometheus scrapes medic in tests/api.rs; promtool lints /metrics.
command -v prometheus >/dev/null && command -v promtool >/dev/null || need_apt+=(prometheus)
# The dashboard test and the QA flows drive headless Chromium over the DevTools protocol.
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi
# The accuracy test scores templates with the shared Loghub evaluator beside the repo.
if [ ! -f ../shared/tools/loghub_eval.py ]; then
  echo "scripts/test.sh: ../shared/tools/loghub_eval.py is missing (the shared material must sit beside the repo)" >&2
  exit 1
fi
# The Docker source tests run containers on the local engine (images are built locally).
if ! docker info >/dev/null 2>&1; then
  echo "scripts/test.sh: no Docker engine answers (docker info failed); the Docker source tests need one" >&2
  exit 1
fi
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

set -x
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The lean build (no browser flows) must keep compiling too.
cargo check --no-default-features --locked
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked
cargo test --workspace --all-targets --locked
# The end-to-end demo on the real engine: images from static binaries, compose, an error
# becoming a ticket, QA from the medic container, a restart, and a clean teardown.
scripts/e2e.sh
