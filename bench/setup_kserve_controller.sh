#!/usr/bin/env bash
# Builds KServe's controller (github.com/kserve/kserve cmd/manager), the
# reference of bench/operator_scale.py, from the Go module proxy into a cache
# outside the work tree, keyed by version:
#   ${OSPREY_CACHE:-$HOME/.cache/osprey}/kserve-v$KSERVE_VER/bin/manager
# Prints the binary's path. Idempotent: a warm cache skips the build (a cold
# one takes several minutes on 2 cores).
#
# KServe's go.mod carries replace directives, which `go build` ignores in a
# dependency; a wrapper module copies them (the way scripts/k8s-testenv.sh
# handles k8s.io/kubernetes) and requires the manager as a tool.
#
# Knobs: KSERVE_VER (default 0.17.0), OSPREY_CACHE, GO, NICE (default "nice -n 10").
set -euo pipefail

KSERVE_VER=${KSERVE_VER:-0.17.0}
CACHE=${OSPREY_CACHE:-${HOME:-/tmp}/.cache/osprey}/kserve-v$KSERVE_VER
BIN=$CACHE/bin
NICE=${NICE:-nice -n 10}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
MOD=github.com/kserve/kserve

log() { echo "[setup-kserve $(date +%T)] $*" >&2; }

if [ -x "$BIN/manager" ]; then echo "$BIN/manager"; exit 0; fi

export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gocache
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
mkdir -p "$CACHE/src" "$BIN"
exec 9>"$CACHE/.lock"; flock 9
if [ -x "$BIN/manager" ]; then echo "$BIN/manager"; exit 0; fi

cd "$CACHE/src"
if [ ! -f .ready ]; then
  rm -f go.mod go.sum
  "$GO" mod init example.invalid/kservebin >/dev/null 2>&1
  gomod=$($NICE "$GO" mod download -json "$MOD@v$KSERVE_VER" |
          sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  # Copy every replace directive of KServe's go.mod (single-line and block form).
  awk '
    /^replace[[:space:]]*\(/ {blk=1; next}
    blk && /^\)/ {blk=0; next}
    blk && /=>/ {print; next}
    /^replace[[:space:]]/ && /=>/ {sub(/^replace[[:space:]]+/, ""); print}
  ' "$gomod" | sed 's#//.*##' | while read -r old _arrow new ver; do
    [ -n "$old" ] || continue
    case $new in ./*|../*) log "skipping local replace $old => $new"; continue ;; esac
    "$GO" mod edit -replace="$old=$new${ver:+@$ver}"
  done
  gd=$(sed -n 's/^godebug \(default=go[0-9.]*\).*/\1/p' "$gomod")
  [ -n "$gd" ] && "$GO" mod edit -godebug="$gd"
  log "resolving $MOD@v$KSERVE_VER/cmd/manager"
  $NICE "$GO" get -tool "$MOD/cmd/manager@v$KSERVE_VER"
  touch .ready
fi
log "building $MOD/cmd/manager v$KSERVE_VER into $BIN"
$NICE "$GO" build -trimpath -ldflags='-s -w' -o "$BIN/manager.tmp" "$MOD/cmd/manager"
mv "$BIN/manager.tmp" "$BIN/manager"
echo "$BIN/manager"
