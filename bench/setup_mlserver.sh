#!/usr/bin/env bash
# Optional MLServer reference for the Osprey benchmark. Creates a throwaway
# virtual environment at build/bench/mlserver-venv with mlserver and
# mlserver-xgboost, keeping xgboost at the version Osprey links (1.7.4).
#
# Never fatal: on failure it records the reason in
# build/bench/mlserver-venv.failed and exits 0, and the benchmark reports
# MLServer as "not available". A failed attempt is not retried until that
# file is removed (or BENCH_MLSERVER_RETRY=1).
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=build/bench/mlserver-venv
FAILED=build/bench/mlserver-venv.failed
OK_STAMP=$VENV/.osprey-bench-ok
PYTHON=${BENCH_MLSERVER_PYTHON:-/usr/bin/python3}
mkdir -p build/bench

[ -f "$OK_STAMP" ] && exit 0
if [ -f "$FAILED" ] && [ "${BENCH_MLSERVER_RETRY:-0}" != 1 ]; then
  echo "bench: MLServer unavailable (earlier attempt failed: $FAILED)"
  exit 0
fi

fail() {
  echo "bench: MLServer not available: $1"
  { echo "$1"; date -u +%FT%TZ; } > "$FAILED"
  rm -rf "$VENV"
  exit 0
}

echo "bench: installing MLServer into $VENV (one time)"
rm -rf "$VENV" "$FAILED"
"$PYTHON" -m venv "$VENV" || fail "python -m venv failed"
LOG=build/bench/mlserver-install.log
timeout "${BENCH_MLSERVER_INSTALL_TIMEOUT:-900}" \
  "$VENV/bin/pip" install --disable-pip-version-check -q \
    mlserver mlserver-xgboost "xgboost==1.7.4" >"$LOG" 2>&1 \
  || fail "pip install failed (see $LOG)"
"$VENV/bin/python" -c "import mlserver, mlserver_xgboost, xgboost; assert xgboost.__version__ == '1.7.4'" \
  >>"$LOG" 2>&1 || fail "import check failed (see $LOG)"
touch "$OK_STAMP"
echo "bench: MLServer ready"
