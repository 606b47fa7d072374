#!/usr/bin/env bash
# perf_analyzer (from the tritonclient wheel in .venv) links libcudart.so.12
# even when no GPU is used; NVIDIA's CUDA runtime wheel supplies it, unpacked
# under build/bench/cudart (not installed into .venv). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=build/bench/cudart
if [ -f "$DEST/nvidia/cuda_runtime/lib/libcudart.so.12" ]; then exit 0; fi
mkdir -p "$DEST/wheel"
.venv/bin/pip download -q --no-deps -d "$DEST/wheel" "nvidia-cuda-runtime-cu12==12.9.79"
.venv/bin/python -m zipfile -e "$DEST"/wheel/nvidia_cuda_runtime_cu12-*.whl "$DEST"
test -f "$DEST/nvidia/cuda_runtime/lib/libcudart.so.12"
