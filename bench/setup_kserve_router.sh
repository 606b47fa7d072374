#!/usr/bin/env bash
# Builds KServe's InferenceGraph router (github.com/kserve/kserve cmd/router),
# the reference of bench/graph.py, from the Go module proxy into the same
# version-keyed cache as its controller (bench/setup_kserve_controller.sh):
#   ${OSPREY_CACHE:-$HOME/.cache/osprey}/kserve-v$KSERVE_VER/bin/router
# Prints the binary's path. Idempotent: a warm cache skips the build.
#
# It shares setup_kserve_controller.sh's wrapper module (KServe's replace
# directives copied) and lock; the router is added to it as a second tool.
#
# Knobs: KSERVE_VER (default 0.17.0), OSPREY_CACHE, GO, NICE (default "nice -n 10").
set -euo pipefail

KSERVE_VER=${KSERVE_VER:-0.17.0}
CACHE=${OSPREY_CACHE:-${HOME:-/tmp}/.cache/osprey}/kserve-v$KSERVE_VER
BIN=$CACHE/bin
NICE=${NICE:-nice -n 10}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
MOD=github.com/kserve/kserve

log() { echo "[setup-kserve-router $(date +%T)] $*" >&2; }

if [ -x "$BIN/router" ]; then echo "$BIN/router"; exit 0; fi

# The wrapper module (replace directives) comes from the controller's setup;
# it exits early when the manager is already built.
"$(dirname "$0")/setup_kserve_controller.sh" >/dev/null

export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gocache
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
exec 9>"$CACHE/.lock"; flock 9
if [ -x "$BIN/router" ]; then echo "$BIN/router"; exit 0; fi

cd "$CACHE/src"
if ! grep -q "^tool.*$MOD/cmd/router" go.mod && ! grep -q "^[[:space:]]*$MOD/cmd/router" go.mod; then
  log "resolving $MOD@v$KSERVE_VER/cmd/router"
  $NICE "$GO" get -tool "$MOD/cmd/router@v$KSERVE_VER"
fi
log "building $MOD/cmd/router v$KSERVE_VER into $BIN"
$NICE "$GO" build -trimpath -ldflags='-s -w' -o "$BIN/router.tmp" "$MOD/cmd/router"
mv "$BIN/router.tmp" "$BIN/router"
echo "$BIN/router"
