"""The Kubernetes API of `osprey up` against a real kube-apiserver (the
operator's test environment, scripts/k8s-testenv.sh, with KServe's CRDs),
with the same kubectl:

- `kubectl get isvc` (one InferenceService) and `kubectl get servingruntimes`
  of 1,000 objects: wall time of the command, median of BENCH_KUBE_RUNS;
- the same lists over HTTP (a Table, as kubectl asks): median of 20;
- watch fan-out on `osprey up`: BENCH_KUBE_WATCHERS (100) watchers of
  ServingRuntimes, BENCH_KUBE_CHANGES (1,000) merge patches of one object's
  annotation: every watcher must see every change, in order.

Goal (issue: kubectl against osprey up): no slower than kube-apiserver; every
watcher sees every change in order. Output: build/bench/kube_api_results.{md,json}.
"""

import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

ROOT = common.ROOT
sys.path.insert(0, str(ROOT / "tests" / "kube"))
import kubeenv  # noqa: E402

RUNS = common.env_int("BENCH_KUBE_RUNS", 10)
OBJECTS = common.env_int("BENCH_KUBE_OBJECTS", 1000)
WATCHERS = common.env_int("BENCH_KUBE_WATCHERS", 100)
CHANGES = common.env_int("BENCH_KUBE_CHANGES", 1000)
RUNTIMES = "/apis/serving.kserve.io/v1alpha1/namespaces/default/servingruntimes"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def runtime(i):
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
            "metadata": {"name": f"rt-{i:04d}", "namespace": "default"},
            "spec": {"supportedModelFormats": [{"name": "xgboost", "autoSelect": False}],
                     "containers": [{"name": "kserve-container",
                                     "image": "example.com/runtime:1"}]}}


ISVC = f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: bench-iris}}
spec:
  predictor:
    model:
      modelFormat: {{name: xgboost}}
      storageUri: {ROOT / "build" / "examples" / "xgboost-iris"}
"""


def timed(cmd, env, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


class Http:
    """The API with its token over plain HTTP (osprey up) or a client certificate (kube)."""

    def __init__(self, base, headers=None, context=None):
        self.base, self.headers, self.context = base, headers or {}, context

    def call(self, method, path, body=None, content_type="application/json", accept=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={**self.headers, "Content-Type": content_type,
                                              **({"Accept": accept} if accept else {})})
        with urllib.request.urlopen(req, timeout=60, context=self.context) as r:
            return r.read()

    def list_ms(self, path, runs=20):
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            self.call("GET", path, accept=TABLE)
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)


def fan_out(api: Http, token: str):
    """WATCHERS watchers, CHANGES patches of one annotation: (all in order, seconds)."""
    listed = json.loads(api.call("GET", RUNTIMES))
    since = listed["metadata"]["resourceVersion"]
    seen = [[] for _ in range(WATCHERS)]
    started = threading.Barrier(WATCHERS + 1)

    def watch(k):
        import http.client
        conn = http.client.HTTPConnection(api.base.split("//")[1], timeout=120)
        conn.request("GET", f"{RUNTIMES}?watch=1&resourceVersion={since}&timeoutSeconds=120",
                     headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        started.wait()
        buf = b""
        while len(seen[k]) < CHANGES:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                e = json.loads(line)
                if e["type"] == "MODIFIED" and e["object"]["metadata"]["name"] == "rt-0000":
                    seen[k].append(int(e["object"]["metadata"]["annotations"]["n"]))
        conn.close()

    threads = [threading.Thread(target=watch, args=(k,), daemon=True) for k in range(WATCHERS)]
    for t in threads:
        t.start()
    started.wait()
    t0 = time.perf_counter()
    for i in range(CHANGES):
        api.call("PATCH", f"{RUNTIMES}/rt-0000", {"metadata": {"annotations": {"n": str(i)}}},
                 content_type="application/merge-patch+json")
    for t in threads:
        t.join(timeout=120)
    seconds = time.perf_counter() - t0
    complete = all(s == list(range(CHANGES)) for s in seen)
    return complete, seconds, sum(len(s) for s in seen)


def main() -> int:
    out_dir = ROOT / "build" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    kubectl = kubeenv.binaries_dir() / "kubectl"
    if not os.access(kubectl, os.X_OK):
        common.log("kube_api: kubectl not built (make kube-deps); skipped")
        return 0
    results = {"objects": OBJECTS, "runs": RUNS, "watchers": WATCHERS, "changes": CHANGES}
    home = Path(tempfile.mkdtemp(prefix="osprey-kube-api-"))
    up = common.Up(home)
    env = None
    kube = None
    try:
        up.apply(ISVC)
        token = (home / "token").read_text().strip()
        api = Http(f"http://127.0.0.1:{up.api_port}", {"Authorization": f"Bearer {token}"})
        common.log(f"kube_api: {OBJECTS} ServingRuntimes into osprey up")
        for i in range(OBJECTS):
            api.call("POST", RUNTIMES, runtime(i))
        env = dict(os.environ, KUBECONFIG=str(home / "kubeconfig"))
        results["osprey"] = {
            "get_isvc_ms": timed([str(kubectl), "get", "isvc"], env, RUNS),
            "get_list_ms": timed([str(kubectl), "get", "servingruntimes"], env, max(3, RUNS // 2)),
            "http_list_ms": api.list_ms(RUNTIMES)}
        common.log(f"kube_api: watch fan-out, {WATCHERS} watchers x {CHANGES} changes")
        complete, seconds, events = fan_out(api, token)
        results["fan_out"] = {"complete_in_order": complete, "seconds": seconds,
                              "events": events}

        common.log("kube_api: the same on kube-apiserver (scripts/k8s-testenv.sh)")
        kube = kubeenv.KubeEnv(Path(tempfile.mkdtemp(prefix="osprey-kube-api-env-")))
        kube.start()
        kube.kubectl("apply", "-k", ROOT / "deploy" / "kubernetes" / "crds")
        kubeenv.wait_until(lambda: kube.kubectl("get", "servingruntimes", check=False)
                           .returncode == 0, 60, "the CRDs to be served")
        kube.kubectl("apply", "-f", "-", input=ISVC.replace(
            "metadata: {name: bench-iris}", "metadata: {name: bench-iris, namespace: default}"))
        for i in range(OBJECTS):
            kube.api.post(RUNTIMES, runtime(i))
        ctx = ssl.create_default_context(cafile=str(kube.pki / "ca.crt"))
        ctx.load_cert_chain(str(kube.pki / "admin.crt"), str(kube.pki / "admin.key"))
        kapi = Http(kube.server, context=ctx)
        results["kube_apiserver"] = {
            "get_isvc_ms": timed([str(kubectl), "get", "isvc"], kube.env, RUNS),
            "get_list_ms": timed([str(kubectl), "get", "servingruntimes"], kube.env,
                                 max(3, RUNS // 2)),
            "http_list_ms": kapi.list_ms(RUNTIMES)}
    finally:
        up.stop()
        if kube is not None:
            kube.stop()
    o, k = results["osprey"], results["kube_apiserver"]
    f = results["fan_out"]
    lines = ["# kubectl against osprey up vs kube-apiserver", "",
             "| command (median) | osprey up | kube-apiserver | ratio |", "|---|---|---|---|"]
    for key, label in (("get_isvc_ms", "kubectl get isvc"),
                       ("get_list_ms", f"kubectl get servingruntimes ({OBJECTS})"),
                       ("http_list_ms", f"GET list as a Table ({OBJECTS})")):
        lines.append(f"| {label} | {o[key]:.1f} ms | {k[key]:.1f} ms | {k[key] / o[key]:.2f}x |")
    lines += ["", f"Watch fan-out: {WATCHERS} watchers x {CHANGES} changes: "
              f"{'every watcher saw every change in order' if f['complete_in_order'] else 'INCOMPLETE'}"
              f" ({f['events']} events in {f['seconds']:.2f} s)"]
    (out_dir / "kube_api_results.json").write_text(json.dumps(results, indent=2))
    (out_dir / "kube_api_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if f["complete_in_order"] else 1


if __name__ == "__main__":
    sys.exit(main())
