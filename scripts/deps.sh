#!/usr/bin/env bash
# Installs everything Osprey's build, tests and benchmarks need. Idempotent:
# every make target calls it, and a second run on a ready machine takes a second.
#
# One Python for the whole project: Debian's /usr/bin/python3 (3.11). Its
# python3-xgboost / python3-sklearn are the same versions as the C++ libraries
# Osprey links (libxgboost 1.7.4), so fixtures trained in tests are read by the
# very library that serves them. The virtual environment is made from it with
# --system-site-packages and holds only the clients and tools PyPI alone ships.
# libtorch-dev and python3-torch are both Debian's 1.13: the server loads the
# TorchScript files that python3-torch exports in the tests. python3-torchvision
# (0.14, built for that torch) is what TorchServe's vision handlers import.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=/usr/bin/python3
VENV=.venv
STAMP_DIR=build/.deps
mkdir -p "$STAMP_DIR"

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libboost-dev rapidjson-dev libabsl-dev libgtest-dev libgmock-dev
  libgrpc++-dev libre2-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libxgboost-dev python3-xgboost python3-sklearn python3-numpy python3-venv python3-pip
  libtorch-dev python3-torch python3-torchvision libpugixml-dev libarchive-dev
  libyaml-cpp-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev
  wrk nginx-light nghttp2-client prometheus curl libb64-0d clang-format
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nginx's package starts a system service on :80; the benchmark runs its own.
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true
fi

REQ=scripts/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then
  echo "deps: creating $VENV from $PYTHON"
  "$PYTHON" -m venv --system-site-packages "$VENV"
fi
req_hash=$(sha256sum "$REQ" scripts/constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$STAMP_DIR/pip" 2>/dev/null)" != "$req_hash" ]; then
  echo "deps: installing Python packages into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" -c scripts/constraints.txt
  echo "$req_hash" > "$STAMP_DIR/pip"
fi
# The benchmarks' references (make bench only: heavy, and no test needs them).
if [ "${OSPREY_DEPS_BENCH:-0}" = 1 ]; then
  # HAProxy: a reference of the reverse-proxy benchmark (bench/proxy_bench.py).
  if ! dpkg-query -W -f='${Status}' haproxy 2>/dev/null | grep -q "install ok installed"; then
    echo "deps: installing Debian packages: haproxy"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends haproxy >/dev/null
    $SUDO systemctl disable --now haproxy >/dev/null 2>&1 || $SUDO service haproxy stop >/dev/null 2>&1 || true
  fi
  bench_hash=$(sha256sum scripts/requirements-bench.txt scripts/constraints.txt | sha256sum | cut -c1-16)
  if [ "$(cat "$STAMP_DIR/pip-bench" 2>/dev/null)" != "$bench_hash" ]; then
    echo "deps: installing the benchmarks' Python packages into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-bench.txt \
      -r "$REQ" -c scripts/constraints.txt
    echo "$bench_hash" > "$STAMP_DIR/pip-bench"
  fi
fi

# versitygw: an S3 gateway over a POSIX directory that checks SigV4 signatures,
# the S3 server of the storage initializer's end-to-end tests
# (tests/integration/test_storage.py, which skip, saying why, without it).
# Built once from the Go module proxy (it needs Go >= 1.25, or a Go that
# fetches that toolchain itself).
VERSITYGW_VERSION=v1.8.0
if [ ! -x "$STAMP_DIR/bin/versitygw" ]; then
  GO=$(command -v go || true)
  if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi
  if [ -n "$GO" ]; then
    echo "deps: building versitygw $VERSITYGW_VERSION"
    GOBIN="$PWD/$STAMP_DIR/bin" GOFLAGS=-buildvcs=false \
      "$GO" install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" ||
      echo "deps: WARNING: could not build versitygw; the s3:// storage tests will skip"
  else
    echo "deps: WARNING: no Go toolchain; the s3:// storage tests will skip (no versitygw)"
  fi
fi

# A real Kubernetes control plane for the operator's tests (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl), built from
# the Go module proxy into a version-keyed cache outside the work tree
# (scripts/k8s-testenv.sh; a warm cache makes this a no-op). Only the targets
# that run those tests ask for it (OSPREY_DEPS_KUBE=1): `make run` does not
# wait for it.
if [ "${OSPREY_DEPS_KUBE:-0}" = 1 ]; then
  if [ -n "$(command -v go || ls /usr/local/go/bin/go 2>/dev/null)" ]; then
    scripts/k8s-testenv.sh build
  else
    echo "deps: WARNING: no Go toolchain; the Kubernetes tests cannot start an API server"
  fi
fi

# Jaeger all-in-one, the trace collector the tracing tests
# (tests/integration/test_tracing.py) export to, built from the Go module proxy
# into a version-keyed cache outside the work tree (scripts/jaeger.sh; a warm
# cache makes this a no-op). Asked for by the target that runs those tests
# (OSPREY_DEPS_JAEGER=1), as the Kubernetes binaries are.
if [ "${OSPREY_DEPS_JAEGER:-0}" = 1 ]; then
  if [ -n "$(command -v go || ls /usr/local/go/bin/go 2>/dev/null)" ]; then
    scripts/jaeger.sh build
  else
    echo "deps: WARNING: no Go toolchain; the tracing tests cannot start Jaeger"
  fi
fi
