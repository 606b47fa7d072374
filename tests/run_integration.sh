#!/usr/bin/env bash
# Osprey's end-to-end suites, each pytest run in its own process:
#   1. the HTTP suites:            pytest tests/integration
#   2. each gRPC client family:    OSPREY_GRPC_SUITE=<family> pytest tests/integration/grpc/test_<family>_grpc.py
# The gRPC families (tritonclient.grpc, the kserve SDK, stubs generated from
# proto/inference.proto) each register the protobuf package `inference`, so no
# two of them can share a process (see tests/integration/conftest.py).
#
# Usage: tests/run_integration.sh [pytest args...]   (passed to every run, e.g. -x or -rxX)
# Environment: OSPREY_BIN (default build/dev/apps/osprey/osprey), OSPREY_FIXTURES,
#              PYTHON (default .venv/bin/python).
# Exits non-zero if any run failed; every run is attempted.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Paths given relative to the caller's directory keep working after the cd.
if [[ -n "${OSPREY_BIN:-}" ]]; then OSPREY_BIN=$(realpath -m -- "$OSPREY_BIN"); fi
if [[ -n "${OSPREY_FIXTURES:-}" ]]; then OSPREY_FIXTURES=$(realpath -m -- "$OSPREY_FIXTURES"); export OSPREY_FIXTURES; fi
cd "$here" || exit 2
export OSPREY_BIN=${OSPREY_BIN:-$here/build/dev/apps/osprey/osprey}
PYTHON=${PYTHON:-.venv/bin/python}

failed=()
pytest_args=$#
run() {
  local label=$1
  shift
  echo "=== $label"
  "$@"
  local rc=$?
  # 5: nothing collected; with arguments (a -k filter) a suite may select none.
  if [[ $rc -ne 0 && ! ($rc -eq 5 && $pytest_args -gt 0) ]]; then
    failed+=("$label (exit $rc)")
  fi
}

run "HTTP suites" env -u OSPREY_GRPC_SUITE "$PYTHON" -m pytest -q tests/integration "$@"
for family in triton kserve stubs gateway; do
  run "gRPC: $family" env OSPREY_GRPC_SUITE="$family" \
    "$PYTHON" -m pytest -q "tests/integration/grpc/test_${family}_grpc.py" "$@"
done
run "Kubernetes" "$PYTHON" -m pytest -q tests/kube "$@"

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "=== FAILED: ${failed[*]}"
  exit 1
fi
echo "=== all integration suites passed"
