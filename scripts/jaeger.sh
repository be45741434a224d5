#!/usr/bin/env bash
# Build Jaeger v2 (the all-in-one `jaeger` binary: OTLP in, query API out) once and print its path.
#
#   scripts/jaeger.sh            build if missing, print the binary's path
#   JAEGER_VERSION=v1.76.0       the release to build (the cache is keyed by it)
#
# The binary is cached under $PYNENC_SIDECAR_CACHE (default ~/.cache/pynenc-sidecar)/jaeger/<version>/:
# a cold build downloads ~85 s of modules and compiles for ~10 minutes on 2 cores; later runs
# print the cached path at once. The module build carries no UI (docs/observability.md).
set -euo pipefail
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
CACHE="${PYNENC_SIDECAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pynenc-sidecar}"
DIR="$CACHE/jaeger/$JAEGER_VERSION"
BIN="$DIR/jaeger"
if [[ ! -x "$BIN" ]]; then
  command -v go >/dev/null || { echo "jaeger.sh: go is required to build Jaeger" >&2; exit 1; }
  mkdir -p "$DIR"
  # One build at a time (worktrees share the cache): a second caller waits, then finds the binary.
  exec 9>"$DIR.lock"
  flock 9
fi
if [[ ! -x "$BIN" ]]; then
  scratch="$(mktemp -d "$DIR/build.XXXXXX")"
  trap 'rm -rf "$scratch"' EXIT
  echo "jaeger.sh: building Jaeger $JAEGER_VERSION into $DIR (cold: about 10 minutes)" >&2
  (
    cd "$scratch"
    go mod init pynenc-sidecar-jaeger >/dev/null 2>&1
    GOFLAGS=-mod=mod go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" >&2
    GOFLAGS=-buildvcs=false go build -o "$scratch/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger >&2
  )
  mv "$scratch/jaeger" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"  # never a half-written binary at $BIN
fi
echo "$BIN"
