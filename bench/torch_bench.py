"""Dynamic batching on a TorchScript model: batching on vs off, same server,
same run.

Model: an MLP 4-64-64-3 (TorchScript, exported with Debian's python3-torch),
served twice from one `osprey serve` (pinned to the server CPU, one HTTP
thread): `mlp` with max_batch_size 64 and no dynamic_batching (each request
runs alone), `mlp-batched` with dynamic_batching {max_queue_delay_microseconds:
2000}. wrk sends the same one-row V2 JSON request over 64 connections (pinned
to the client CPU); 3 runs each, medians.

Goal (issue: native backends): batching >= 3x the requests/s of no batching,
with a p99 no worse. Output: build/bench/torch_results.{md,json}.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

OUT = common.OUT_DIR
CONNECTIONS = int(os.environ.get("BENCH_TORCH_CONNECTIONS", "64"))
ROW = [5.1, 3.5, 1.4, 0.2]

CONFIG = """max_batch_size: 64
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
"""


def export(repo: Path):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 3)).eval()
    scripted = torch.jit.script(net)
    for name, extra in (("mlp", ""),
                        ("mlp-batched", "dynamic_batching { max_queue_delay_microseconds: 2000 }\n")):
        (repo / name).mkdir(parents=True, exist_ok=True)
        scripted.save(str(repo / name / "model.pt"))
        (repo / name / "config.pbtxt").write_text(CONFIG + extra)
    with torch.no_grad():
        return net(torch.tensor([ROW])).numpy().ravel().tolist()


def main() -> int:
    repo = OUT / "torch" / "repo"
    want = export(repo)
    common.CFG.connections = CONNECTIONS
    port = common.free_port()
    server = common.ServerProcess(
        "osprey-torch",
        [str(common.CFG.osprey_bin), "serve", "--model-repository", str(repo),
         "--http-port", str(port), "--no-grpc", "--http-threads", "1"],
        "/v2/health/ready", port)
    body = json.dumps({"inputs": [{"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32",
                                   "data": ROW}]}).encode()

    def check(answer):
        got = json.loads(answer.body)["outputs"][0]["data"]
        if not common.same_values(got, want):
            raise common.BenchError(f"wrong answer {got}, torch says {want}")

    scenarios = [
        common.Scenario(key=f"torch-{name}", label=label, group="osprey", protocol="v2-json",
                        path=f"/v2/models/{name}/infer", body=body, check=check)
        for name, label in (("mlp", "batching off"), ("mlp-batched", "batching on (2 ms)"))
    ]
    server.start()
    try:
        for s in scenarios:
            common.measure(s, port)
    finally:
        server.stop()
    if common.any_failed(scenarios, "torch"):
        return 1
    off, on = scenarios
    ratio = on.median("rps") / off.median("rps")
    p99_on, p99_off = on.median("p99_ms"), off.median("p99_ms")
    common.publish("torch", [
        f"MLP 4-64-64-3, one-row V2 JSON requests, {CONNECTIONS} connections", ""]
        + common.scenario_rows(scenarios) + [""] + common.goal_rows([
            ("batching vs none", ">= 3x req/s", f"{ratio:.2f}x", ratio >= 3),
            ("p99 with batching", "<= without", f"{p99_on:.3f} vs {p99_off:.3f} ms",
             p99_on <= p99_off)]),
        {s.label: s.runs for s in scenarios} | {"ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
