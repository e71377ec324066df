#!/usr/bin/env bash
# Builds the docker images without pulling anything (no registry needed):
#   runnel:local       FROM scratch + a static glibc build of the runnel binary
#   runnel-kcat:local  FROM scratch + Debian's kcat and the shared libraries it
#                      links (ldd), the client container of docker/compose.yaml
# Prints the image sizes. RUNNEL_IMAGE / RUNNEL_CLIENT_IMAGE rename them.
# Exits non-zero if the binary is not static.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${RUNNEL_IMAGE:-runnel:local}
CLIENT_IMAGE=${RUNNEL_CLIENT_IMAGE:-runnel-kcat:local}
TARGET=x86_64-unknown-linux-gnu
CARGO=${CARGO:-cargo}
BIN=target/$TARGET/docker/runnel
CTX=target/docker-context

command -v docker >/dev/null || { echo "docker-build: docker CLI not found" >&2; exit 1; }

# musl would be the usual choice, but its target cannot be installed here
# (no rustup downloads); glibc links statically except for NSS, which the
# broker avoids (see config::bind_addr).
# RUNNEL_DOCKER_NO_CARGO=1 packages the binary already built (e.g. when the
# tree is mid-edit); the checks below still run.
if [ -z "${RUNNEL_DOCKER_NO_CARGO:-}" ]; then
  echo "docker-build: static release build ($BIN)" >&2
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    $CARGO build --profile docker --target "$TARGET" --bin runnel
fi
if ! file "$BIN" | grep -q 'statically linked\|static-pie linked'; then
  echo "docker-build: $BIN is not statically linked:" >&2
  file "$BIN" >&2
  exit 1
fi
# ldd says "statically linked" (static-pie) or "not a dynamic executable".
if ldd "$BIN" 2>&1 | grep -q '=>' || readelf -d "$BIN" | grep -q NEEDED; then
  echo "docker-build: $BIN loads shared libraries:" >&2
  ldd "$BIN" >&2
  exit 1
fi

rm -rf "$CTX"
mkdir -p "$CTX/runnel/tmp" "$CTX/runnel/kraft-combined-logs"
chmod 1777 "$CTX/runnel/tmp"
cp "$BIN" "$CTX/runnel/runnel"
# Rebuilding under the same tag leaves the previous image dangling; drop it
# (only ours, and only if no container still uses it).
replace_image() {
  local tag=$1 dockerfile=$2 ctx=$3 old new
  old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  docker build -q -f "$dockerfile" -t "$tag" "$ctx" >/dev/null
  new=$(docker image inspect --format '{{.Id}}' "$tag")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
}
replace_image "$IMAGE" docker/Dockerfile "$CTX/runnel"

# The client: kcat plus exactly what ldd says it loads, at the same paths.
KCAT=$(command -v kcat || true)
if [ -z "$KCAT" ]; then
  scripts/install-deps.sh
  KCAT=$(command -v kcat)
fi
root="$CTX/kcat"
mkdir -p "$root/usr/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
cp -L "$KCAT" "$root/usr/bin/kcat"
ldd "$KCAT" | awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }' | while read -r lib; do
  [ -n "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# glibc resolves names through NSS; files and dns are built into libc.so.6
# since 2.34, so only the order needs saying.
echo "hosts: files dns" > "$root/etc/nsswitch.conf"
replace_image "$CLIENT_IMAGE" docker/kcat.Dockerfile "$root"

size() { docker image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1e6 }'; }
echo "docker-build: $IMAGE $(size "$IMAGE"); $CLIENT_IMAGE $(size "$CLIENT_IMAGE")"
