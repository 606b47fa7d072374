"""Model density: BENCH_DENSITY_MODELS (200) small models, half XGBoost and half
LightGBM (iris-sized, each trained on other data), served three ways in one run:

- Osprey with TrainedModels: `osprey up`, one multi-model InferenceService
  (runtime kserve-predictiveserver, 2 replicas), every model a TrainedModel;
- one `osprey serve` process per model (the reference of "one process per
  model");
- MLServer's multi-model server on the XGBoost half, when bench/setup_mlserver.sh
  installed it (mlserver-xgboost only; per-model memory compared).

For each: the total resident memory of everything serving (process trees,
/proc), and requests/s under a Zipf mix (s = 1.1) from BENCH_DENSITY_CLIENTS
keep-alive client threads pinned to the client CPU, the servers pinned to
the server CPU; failed requests counted. Then cold loads: `osprey serve`
with a memory budget that fits 10% of the models, uniform requests: the
latency of answers that had to load their model (misses) against hits.

Goals (issue: cost): at least 20x less memory than one process per model,
at least 5x less per model than MLServer, no failed request; cold load of a
native model p50/p99 under 20 ms.
Output: build/bench/density_results.{md,json}.
"""

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

ROOT = common.ROOT
N = common.env_int("BENCH_DENSITY_MODELS", 200)
CLIENTS = common.env_int("BENCH_DENSITY_CLIENTS", 8)
SECONDS = common.env_int("BENCH_DENSITY_SECONDS", 10)
ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
BODY = json.dumps({"instances": ROWS}).encode()
V2_BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                                  "data": sum(ROWS, [])}]}).encode()


def train(root: Path) -> list:
    import lightgbm as lgb
    import xgboost as xgb

    names = []
    for i in range(N):
        rng = np.random.default_rng(i)
        X = rng.normal(size=(150, 4)) * 2 + 4
        y = rng.integers(0, 3, size=150)
        kind = "xgb" if i % 2 == 0 else "lgb"
        d = root / f"{kind}-{i:03d}"
        d.mkdir(parents=True, exist_ok=True)
        if kind == "xgb":
            xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "seed": i},
                      xgb.DMatrix(X, label=y), num_boost_round=10).save_model(
                          str(d / "model.json"))
        else:
            lgb.train({"objective": "multiclass", "num_class": 3, "num_leaves": 8,
                       "verbose": -1, "seed": i}, lgb.Dataset(X, label=y),
                      num_boost_round=10).save_model(str(d / "model.txt"))
        names.append(d.name)
    return names


def tree_rss(pids) -> int:
    """Resident bytes of the process trees rooted at `pids`."""
    children, rss = {}, {}
    page = os.sysconf("SC_PAGESIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * page
    total, stack, seen = 0, list(pids), set()
    while stack:
        p = stack.pop()
        if p in seen or p not in rss:
            continue
        seen.add(p)
        total += rss[p]
        stack.extend(children.get(p, []))
    return total


def zipf_load(target, names, seconds=SECONDS, clients=CLIENTS, body=None):
    """Requests/s and failures of a Zipf mix; target(name) -> (port, path, headers)."""
    ranks = np.arange(1, len(names) + 1)
    p = 1.0 / ranks ** 1.1
    p /= p.sum()
    order = list(names)
    random.Random(1).shuffle(order)
    done, failed = [0] * clients, [0] * clients
    stop = time.monotonic() + seconds

    def client(k):
        rng = np.random.default_rng(100 + k)
        conns = {}
        while time.monotonic() < stop:
            name = order[int(rng.choice(len(order), p=p))]
            port, path, headers = target(name)
            conn = conns.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conns[port] = conn
            try:
                conn.request("POST", path, body or BODY,
                             {"Content-Type": "application/json", **headers})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    done[k] += 1
                else:
                    failed[k] += 1
            except (OSError, http.client.HTTPException):
                failed[k] += 1
                conn.close()
                conns.pop(port, None)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    os.sched_setaffinity(0, {int(common.CFG.client_cpu)})
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds, sum(failed)


def osprey_trained(models: Path, names):
    home = Path(tempfile.mkdtemp(prefix="osprey-density-"))
    up = common.Up(home)
    try:
        up.apply("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: density}
spec:
  predictor:
    minReplicas: 2
    maxReplicas: 2
    model:
      runtime: kserve-predictiveserver
      modelFormat: {name: xgboost}
      resources: {limits: {memory: 4Gi}}
""")
        docs = []
        for n in names:
            framework = "xgboost" if n.startswith("xgb") else "lightgbm"
            docs.append(f"""apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata: {{name: {n}}}
spec:
  inferenceService: density
  model: {{storageUri: {models / n}, framework: {framework}, memory: 8Mi}}
""")
        subprocess.run([str(common.CFG.osprey_bin), "apply", "-f", "-"], env=up.env,
                       input="---\n".join(docs), check=True, capture_output=True, text=True)
        deadline = time.monotonic() + 600
        while True:
            items = json.loads(subprocess.run(
                [str(common.CFG.osprey_bin), "get", "trainedmodels", "-o", "json"], env=up.env,
                check=True, capture_output=True, text=True).stdout)["items"]
            ready = sum(1 for t in items for c in t.get("status", {}).get("conditions", [])
                        if c["type"] == "Ready" and c["status"] == "True")
            if ready == len(names):
                break
            if time.monotonic() > deadline:
                raise common.BenchError(f"only {ready} of {len(names)} TrainedModels Ready")
            time.sleep(1)
        host = {"Host": "density-default.example.com"}
        rps, failed = zipf_load(lambda n: (up.port, f"/v1/models/{n}:predict", host), names)
        replicas = json.loads(subprocess.run(
            [str(common.CFG.osprey_bin), "get", "revisions", "-o", "json"], env=up.env,
            check=True, capture_output=True, text=True).stdout)["items"][0]["status"]
        pids = [r["pid"] for r in replicas.get("replicaStatuses", []) if r.get("pid")]
        return {"rss_replicas": tree_rss(pids), "rss_total": tree_rss([up.proc.pid]),
                "rps": rps, "failed": failed, "replicas": len(pids)}
    finally:
        up.stop()


def one_process_per_model(models: Path, names):
    ports = common.free_ports(len(names))
    procs = []
    try:
        for n, port in zip(names, ports):
            procs.append(subprocess.Popen(common.pinned(common.CFG.server_cpu, [
                str(common.CFG.osprey_bin), "serve", "--model-dir", str(models / n),
                "--model-name", n, "--http-port", str(port), "--no-grpc",
                "--http-threads", "1"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            deadline = time.monotonic() + 120
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    c.request("GET", "/v2/health/ready")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise common.BenchError(f"osprey serve on {port} not ready")
                time.sleep(0.05)
        by_name = dict(zip(names, ports))
        rps, failed = zipf_load(lambda n: (by_name[n], f"/v1/models/{n}:predict", {}), names)
        return {"rss_total": tree_rss([p.pid for p in procs]), "rps": rps, "failed": failed}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def mlserver(models: Path, names):
    binary = common.MLSERVER_VENV / "bin" / "mlserver"
    if not binary.exists():
        return None
    xgb_names = [n for n in names if n.startswith("xgb")]
    repo = Path(tempfile.mkdtemp(prefix="mlserver-density-"))
    for n in xgb_names:
        (repo / n).mkdir()
        (repo / n / "model-settings.json").write_text(json.dumps({
            "name": n, "implementation": "mlserver_xgboost.XGBoostModel",
            "parameters": {"uri": str(models / n / "model.json")}}))
    http_port, grpc_port, metrics_port = common.free_ports(3)
    (repo / "settings.json").write_text(json.dumps({
        "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port,
        "parallel_workers": 0, "load_models_at_startup": True}))
    proc = subprocess.Popen(common.pinned(common.CFG.server_cpu, [str(binary), "start", str(repo)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=repo)
    return serve_and_measure(proc, http_port, xgb_names, "MLServer", 300)


def all_ready(port, names) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        return all(ready(conn, n) for n in names)
    except OSError:
        return False


def serve_and_measure(proc, port, names, what, deadline_s):
    """Once `proc` serves every model of `names`, the Zipf mix over V2, and
    its memory; then it is stopped."""
    try:
        deadline = time.monotonic() + deadline_s
        while not all_ready(port, names):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise common.BenchError(f"{what}: models not ready")
            time.sleep(0.2)
        rps, failed = zipf_load(lambda n: (port, f"/v2/models/{n}/infer", {}), names,
                                body=V2_BODY)
        return {"models": len(names), "rss_total": tree_rss([proc.pid]), "rps": rps,
                "failed": failed}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def osprey_one_server(models: Path, names):
    """The MLServer row's counterpart: one `osprey serve` over the same models."""
    xgb_names = [n for n in names if n.startswith("xgb")]
    repo = Path(tempfile.mkdtemp(prefix="osprey-density-repo-"))
    for n in xgb_names:
        (repo / n).symlink_to(models / n)
    port = common.free_ports(1)[0]
    proc = subprocess.Popen(common.pinned(common.CFG.server_cpu, [
        str(common.CFG.osprey_bin), "serve", "--model-repository", str(repo),
        "--http-port", str(port), "--no-grpc"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return serve_and_measure(proc, port, xgb_names, "osprey serve", 120)


def ready(conn, name) -> bool:
    conn.request("GET", f"/v2/models/{name}/ready")
    r = conn.getresponse()
    r.read()
    return r.status == 200


def live_connection(port, seconds=30):
    """A keep-alive connection to a server once it answers /v2/health/live."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", "/v2/health/live")
            c.getresponse().read()
            return c
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cold_loads(models: Path, names, sizes_fit=0.1):
    port = common.free_ports(1)[0]
    budget = 20 << 20  # ample for 10% of these tiny models? measured below
    proc = subprocess.Popen(common.pinned(common.CFG.server_cpu, [
        str(common.CFG.osprey_bin), "serve", "--model-repository", str(models),
        "--no-load-on-start", "--model-memory-budget", str(budget), "--http-port", str(port),
        "--no-grpc"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = live_connection(port)

        def call(n):
            t = time.perf_counter()
            conn.request("POST", f"/v1/models/{n}:predict", BODY,
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            return r.status, (time.perf_counter() - t) * 1000

        def metric(name):
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            return 0.0

        # Size the budget to 10% of the models from their measured sizes.
        for n in names[:5]:
            call(n)
        used = metric("osprey_model_cache_used_bytes") / 5
        proc.terminate()
        proc.wait(timeout=20)
        budget = int(used * len(names) * sizes_fit)
        port = common.free_ports(1)[0]
        proc = subprocess.Popen(common.pinned(common.CFG.server_cpu, [
            str(common.CFG.osprey_bin), "serve", "--model-repository", str(models),
            "--no-load-on-start", "--model-memory-budget", str(budget), "--http-port", str(port),
            "--no-grpc"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conn = live_connection(port)
        rng = random.Random(5)
        misses, hits, failed = [], [], 0
        for _ in range(2000):
            n = rng.choice(names)
            before = metric("osprey_model_cache_loads_total")
            status, ms = call(n)
            if status != 200:
                failed += 1
                continue
            (misses if metric("osprey_model_cache_loads_total") > before else hits).append(ms)
        q = lambda v, f: sorted(v)[min(len(v) - 1, int(f * len(v)))] if v else None  # noqa: E731
        return {"budget": budget, "misses": len(misses), "hits": len(hits), "failed": failed,
                "miss_p50_ms": q(misses, 0.5), "miss_p99_ms": q(misses, 0.99),
                "hit_p50_ms": q(hits, 0.5), "hit_p99_ms": q(hits, 0.99),
                "evictions": metric("osprey_model_cache_evictions_total")}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    out_dir = ROOT / "build" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    models = Path(tempfile.mkdtemp(prefix="osprey-density-models-"))
    common.log(f"density: training {N} models")
    names = train(models)
    results = {"models": N}
    common.log("density: Osprey, TrainedModels on 2 replicas")
    results["osprey_trained"] = osprey_trained(models, names)
    common.log("density: one osprey serve per model")
    results["one_per_model"] = one_process_per_model(models, names)
    common.log("density: MLServer (XGBoost half), if installed")
    results["mlserver"] = mlserver(models, names)
    common.log("density: one osprey serve over the same models as MLServer")
    results["osprey_one_server"] = osprey_one_server(models, names)
    common.log("density: cold loads through a budget of 10% of the models")
    results["cold"] = cold_loads(models, names)
    t, one, ml = results["osprey_trained"], results["one_per_model"], results["mlserver"]
    lines = [f"# Model density: {N} models (half XGBoost, half LightGBM)", "",
             "| serving | models | total RSS (MiB) | per model (KiB) | Zipf req/s | failed |",
             "|---|---|---|---|---|---|"]

    def row(label, models_n, rss, rps, failed):
        lines.append(f"| {label} | {models_n} | {rss / 2**20:.1f} | {rss / models_n / 1024:.0f} "
                     f"| {rps:.0f} | {failed} |")

    row("Osprey TrainedModels, 2 replicas (replicas only)", N, t["rss_replicas"], t["rps"],
        t["failed"])
    row("Osprey TrainedModels, 2 replicas + osprey up", N, t["rss_total"], t["rps"], t["failed"])
    row("one osprey serve per model", N, one["rss_total"], one["rps"], one["failed"])
    if ml:
        one_server = results["osprey_one_server"]
        row("MLServer, one server (XGBoost half)", ml["models"], ml["rss_total"], ml["rps"],
            ml["failed"])
        row("osprey serve, one server (the same XGBoost half)", one_server["models"],
            one_server["rss_total"], one_server["rps"], one_server["failed"])
    lines += ["", f"Memory, one process per model / TrainedModels (all of osprey up): "
              f"{one['rss_total'] / t['rss_total']:.1f}x"]
    if ml:
        per_ml = ml["rss_total"] / ml["models"]
        per_os = t["rss_total"] / N
        lines.append(f"Memory, the same {ml['models']} models in one server, MLServer / osprey "
                     f"serve: {ml['rss_total'] / one_server['rss_total']:.1f}x")
        lines.append(f"Memory per model, MLServer / Osprey TrainedModels (all of osprey up, "
                     f"twice the models on 2 replicas): {per_ml / per_os:.1f}x")
    c = results["cold"]
    lines += ["", f"Cold loads (budget {c['budget']} bytes, 10% of the models): "
              f"{c['misses']} misses p50 {c['miss_p50_ms']:.2f} ms p99 {c['miss_p99_ms']:.2f} ms; "
              f"{c['hits']} hits p50 {c['hit_p50_ms']:.2f} ms p99 {c['hit_p99_ms']:.2f} ms; "
              f"{c['failed']} failed, {c['evictions']:.0f} evictions"]
    (out_dir / "density_results.json").write_text(json.dumps(results, indent=2))
    (out_dir / "density_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
