#!/usr/bin/env bash
# Entry point of `make bench`: Osprey against nginx, KServe and (when it
# installs) MLServer, all measured in the same run. See bench/README.md.
#
#   bench/run.sh                      # full run, 3 x 10 s per scenario
#   BENCH_SECONDS=3 bench/run.sh      # quick run
#   OSPREY_BIN=build/dev/apps/osprey/osprey bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${BENCH_PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  echo "bench: $PY not found; run scripts/deps.sh first" >&2
  exit 2
fi
for tool in wrk taskset "${NGINX_BIN:-/usr/sbin/nginx}"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "bench: $tool not found; run scripts/deps.sh first" >&2
    exit 2
  fi
done

# The MLServer reference is optional: its one-time install never fails the run.
case ",${BENCH_ONLY:-mlserver}," in
  *,mlserver,*)
    if [ "${BENCH_MLSERVER:-1}" != 0 ]; then bench/setup_mlserver.sh || true; fi ;;
esac

export BENCH_PYTHON="$PY"
status=0
"$PY" bench/run.py "$@" || status=$?
# gRPC vs REST on one server, one load tool (perf_analyzer).
case ",${BENCH_ONLY:-grpc}," in
  *,grpc,*)
    bench/setup_perf_analyzer.sh && "$PY" bench/grpc_bench.py || status=$? ;;
esac
# The gateway as a reverse proxy with a VirtualService, vs HAProxy and nginx.
case ",${BENCH_ONLY:-proxy}," in
  *,proxy,*)
    "$PY" bench/proxy_bench.py || status=$? ;;
esac
# LightGBM: Osprey's native evaluator vs the lightgbm package, in-process.
case ",${BENCH_ONLY:-lightgbm}," in
  *,lightgbm,*)
    "$PY" bench/lgbm_bench.py || status=$? ;;
esac
# TreeSHAP: Osprey's explainers vs xgboost's and lightgbm's contributions.
case ",${BENCH_ONLY:-treeshap}," in
  *,treeshap,*)
    "$PY" bench/treeshap.py || status=$? ;;
esac
# Dynamic batching on a TorchScript MLP: on vs off, one server.
case ",${BENCH_ONLY:-torch}," in
  *,torch,*)
    "$PY" bench/torch_bench.py || status=$? ;;
esac
# PMML: Osprey's evaluator vs a KServe-style server with a JVM evaluator.
case ",${BENCH_ONLY:-pmml}," in
  *,pmml,*)
    "$PY" bench/pmml_bench.py || status=$? ;;
esac
# scikit-learn: Osprey's Python workers vs KServe's sklearnserver.
case ",${BENCH_ONLY:-sklearn}," in
  *,sklearn,*)
    "$PY" bench/sklearn_bench.py || status=$? ;;
esac
# The local platform: apply -> Ready, up -> serving, against a bare osprey serve.
case ",${BENCH_ONLY:-platform}," in
  *,platform,*)
    "$PY" bench/platform_bench.py || status=$? ;;
esac
# InferenceGraph: through the graph vs the client's own calls, and KServe's router.
case ",${BENCH_ONLY:-graph}," in
  *,graph,*)
    "$PY" bench/graph_bench.py || status=$? ;;
esac
# Drift detection: per-window tests against alibi-detect; serving with it on vs off.
case ",${BENCH_ONLY:-drift}," in
  *,drift,*)
    "$PY" bench/drift_bench.py || status=$? ;;
esac
# Tracing: added latency at a fixed rate, off vs sampling 0% and 100%.
case ",${BENCH_ONLY:-tracing}," in
  *,tracing,*)
    "$PY" bench/tracing_bench.py || status=$? ;;
esac
# Payload logging: a logger (mode all, nginx sink) on vs off at saturation.
case ",${BENCH_ONLY:-payload_log}," in
  *,payload_log,*)
    "$PY" bench/payload_log_bench.py || status=$? ;;
esac
# Density: 200 models as TrainedModels vs a process per model vs MLServer; cold loads.
case ",${BENCH_ONLY:-density}," in
  *,density,*)
    "$PY" bench/density_bench.py || status=$? ;;
esac
# kubectl against osprey up vs kube-apiserver; watch fan-out (needs make kube-deps).
case ",${BENCH_ONLY:-kube_api}," in
  *,kube_api,*)
    "$PY" bench/kube_api_bench.py || status=$? ;;
esac
# The gateway: through it vs straight to the replica; cold start from zero.
case ",${BENCH_ONLY:-gateway}," in
  *,gateway,*)
    "$PY" bench/gateway_bench.py || status=$? ;;
esac
exit $status
