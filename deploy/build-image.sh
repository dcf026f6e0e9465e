#!/usr/bin/env bash
# Build the medic and demo-app images from host-built static binaries (no registry needed).
#   deploy/build-image.sh [TAG]      # images medic:TAG and medic-demo-app:TAG (default: local)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-local}
target=x86_64-unknown-linux-gnu
# A separate target directory: static flags change every crate's build.
export CARGO_TARGET_DIR=${STATIC_TARGET_DIR:-target/static}
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$target" -p medic -p demo-app
bin=$CARGO_TARGET_DIR/$target/release
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/medic/etc/ssl/certs" "$ctx/medic/var/lib/medic" "$ctx/demo"
cp "$bin/medic" "$ctx/medic/medic"
strip "$ctx/medic/medic"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/medic/etc/ssl/certs/"
cp -r rules "$ctx/medic/rules"
docker build -q -f deploy/Dockerfile.prebuilt -t "medic:$tag" "$ctx/medic" >/dev/null
cp "$bin/demo-app" "$ctx/demo/demo-app"
strip "$ctx/demo/demo-app"
cp fixtures/demo-app/Dockerfile.prebuilt "$ctx/demo/Dockerfile"
docker build -q -t "medic-demo-app:$tag" "$ctx/demo" >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^(medic|medic-demo-app):$tag "
