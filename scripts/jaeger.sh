#!/usr/bin/env bash
# Jaeger all-in-one (github.com/jaegertracing/jaeger cmd/jaeger), the real trace
# collector of Osprey's tracing tests (tests/integration/test_tracing.py).
#
#   scripts/jaeger.sh build   build the binary into the cache (idempotent)
#   scripts/jaeger.sh bin     print the path of the binary (exit 1 if not built)
#
# Built from the Go module proxy into a cache outside the work tree, keyed by
# version: ${OSPREY_CACHE:-$HOME/.cache/osprey}/jaeger-v$JAEGER_VER. A warm
# machine skips the build. Only cmd/jaeger is built (CGO off, stripped).
# Knobs (environment): JAEGER_VER, OSPREY_CACHE, NICE (default "nice -n 10").
set -euo pipefail

JAEGER_VER=${JAEGER_VER:-1.75.0}
CACHE=${OSPREY_CACHE:-${HOME:-/tmp}/.cache/osprey}/jaeger-v$JAEGER_VER
BIN=$CACHE/bin/jaeger
NICE=${NICE:-nice -n 10}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

log() { echo "[jaeger $(date +%T)] $*" >&2; }

build() {
  [ -x "$BIN" ] && return
  export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gocache
  export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  mkdir -p "$CACHE/src" "$CACHE/bin"
  # One build at a time per cache (make test and a developer may race).
  exec 9>"$CACHE/.lock"; flock 9
  [ -x "$BIN" ] && return
  local t0=$SECONDS
  log "building jaeger v$JAEGER_VER into $CACHE/bin"
  (cd "$CACHE/src"
   [ -f go.mod ] || "$GO" mod init example.invalid/jaegerbin >/dev/null 2>&1
   $NICE "$GO" get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@v$JAEGER_VER"
   $NICE "$GO" build -trimpath -ldflags='-s -w' -o "$BIN.tmp" \
     github.com/jaegertracing/jaeger/cmd/jaeger
   mv "$BIN.tmp" "$BIN")
  log "built in $((SECONDS - t0)) s"
  exec 9>&-
}

case ${1:-} in
  build) build ;;
  bin) [ -x "$BIN" ] && echo "$BIN" || exit 1 ;;
  *) echo "usage: $0 build|bin" >&2; exit 2 ;;
esac
