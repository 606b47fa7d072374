"""gRPC against REST on the same Osprey server, in the same run.

Load tools: Triton's perf_analyzer (shipped in the tritonclient wheel) speaks
V2 over gRPC and HTTP, so "gRPC vs REST binary" compares the protocols with
one client. perf_analyzer's JSON tensor mode writes only the last dimension's
elements (a 2x4 tensor goes out with 4 values), so REST with JSON tensors is
driven by wrk with the same request, as in bench/run.py.

perf_analyzer itself tops out near 6k requests/s of 16 KB gRPC messages on
one core, below the server, so the server's gRPC capacity is measured with
nghttp2's h2load, as lean an HTTP/2 client as wrk is an HTTP/1.1 one: it
replays one framed ModelInferRequest (the same bytes tritonclient sends) on
one connection with 32 streams. h2load does not read grpc-status, so every
run checks that the DATA bytes received are exactly the successful answers
times the size of one good answer (an error answer carries no DATA), and one
answer is first decoded with a real gRPC client.

Osprey is pinned to the server CPU, the load tool to the client CPU
(perf_analyzer in async mode with one thread); 32 concurrent requests; each
scenario runs BENCH_RUNS times and the median is reported.

Scenarios (iris: 2x4 FP32; 1000 rows: 1000x4 FP32):
  REST JSON (wrk), REST binary extension (perf_analyzer), gRPC raw (perf_analyzer),
  gRPC raw (h2load)

Goals (issue: gRPC frontend): gRPC iris >= 0.8x REST iris req/s, and gRPC raw
1000-row requests >= 3x the rows/s of the same request as REST JSON (both
sides with a client that outruns the server: h2load and wrk).

Output: a markdown table on stdout and in build/bench/grpc_results.md, and
build/bench/grpc_results.json.
"""

import csv
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402  (shared helpers: model, ports, server process)

ROOT = common.ROOT
OUT = common.OUT_DIR
PERF_ANALYZER = ROOT / ".venv" / "bin" / "perf_analyzer"
CUDART_DIR = OUT / "cudart" / "nvidia" / "cuda_runtime" / "lib"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CONCURRENCY = int(os.environ.get("BENCH_CONNECTIONS", "32"))


def bench_rows(rows: int):
    """The request's rows (float32): the two iris rows, or `rows` seeded random
    ones, rounded to what the JSON request writes, so every protocol carries
    the same values."""
    import numpy as np

    if rows == 2:
        return np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)
    rng = np.random.default_rng(0)
    return np.round(rng.normal(size=(rows, 4)) + 4, 3).astype(np.float32)


def input_file(rows: int, directory: Path) -> Path:
    data = bench_rows(rows)
    path = directory / f"input-{rows}.json"
    path.write_text(json.dumps({"data": [{"input-0": {
        "content": [round(float(v), 3) for v in data.ravel()], "shape": [rows, 4]}}]}))
    return path


def v2_json_body(data: Path) -> bytes:
    entry = json.loads(data.read_text())["data"][0]["input-0"]
    return json.dumps({"inputs": [{"name": "input-0", "shape": entry["shape"], "datatype": "FP32",
                                   "data": entry["content"]}]}).encode()


def wrk_json(port: int, rows: int, data: Path, tag: str) -> dict:
    scenario = common.Scenario(key=f"grpc-bench-rest-json-{rows}", label=f"REST JSON {rows}",
                               group="osprey", protocol="v2-json", path="/v2/models/iris/infer",
                               body=v2_json_body(data))
    common.verify(scenario, port)
    r = common.run_wrk(scenario, port, int(SECONDS), tag)
    return {"req_s": r["rps"], "p99_ms": r["p99_ms"]}


def perf_analyzer(protocol: str, port: int, rows: int, data: Path, csv_path: Path) -> dict:
    cmd = [
        str(PERF_ANALYZER), "-m", "iris", "-u", f"127.0.0.1:{port}", "-i", protocol,
        "--input-data", str(data), "--shape", f"input-0:{rows},4",
        # Async with one thread: the synchronous mode runs one busy-polling
        # thread per outstanding request, which starves itself on 2 cores.
        "--concurrency-range", str(CONCURRENCY), "--async", "--max-threads", "1",
        "--measurement-interval", str(int(SECONDS * 1000)),
        "--stability-percentage", "100", "--max-trials", "3", "-f", str(csv_path),
    ]
    env = dict(os.environ, LD_LIBRARY_PATH=str(CUDART_DIR))
    done = subprocess.run(common.pinned(common.CFG.client_cpu, cmd), env=env,
                          capture_output=True, text=True, timeout=SECONDS * 10 + 60)
    if done.returncode != 0:
        raise common.BenchError(f"perf_analyzer failed ({done.returncode}):\n{done.stdout[-2000:]}"
                                f"\n{done.stderr[-2000:]}")
    with open(csv_path) as f:
        row = next(csv.DictReader(f))
    return {"req_s": float(row["Inferences/Second"]), "p99_ms": float(row["p99 latency"]) / 1000}


def grpc_request(rows: int) -> bytes:
    """The ModelInferRequest tritonclient sends for the bench input, raw contents."""
    from tritonclient.grpc import service_pb2

    data = bench_rows(rows)
    request = service_pb2.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input-0", datatype="FP32", shape=list(data.shape))
    request.raw_input_contents.append(data.tobytes())
    return request.SerializeToString()


def grpc_answer_frame_size(port: int, message: bytes, rows: int) -> int:
    """Sends the request once with grpcio; checks the answer; returns its framed size."""
    import grpc
    from tritonclient.grpc import service_pb2

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   request_serializer=None, response_deserializer=None)
        answer = call(message, timeout=10)
    decoded = service_pb2.ModelInferResponse.FromString(answer)
    if (decoded.model_name != "iris" or len(decoded.raw_output_contents) != 1
            or len(decoded.raw_output_contents[0]) != rows * 4):
        raise common.BenchError(f"unexpected gRPC answer for {rows} rows: {decoded}")
    return 5 + len(answer)  # gRPC's message prefix: flag byte + 4-byte length


def h2load_grpc(port: int, rows: int, directory: Path) -> dict:
    message = grpc_request(rows)
    frame_size = grpc_answer_frame_size(port, message, rows)
    body = directory / f"grpc-{rows}.frame"
    body.write_bytes(b"\0" + struct.pack(">I", len(message)) + message)
    cmd = ["h2load", "-c", "1", "-m", str(CONCURRENCY), "-D", str(int(SECONDS)), "-d", str(body),
           "-H", "content-type: application/grpc", "-H", "te: trailers",
           f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer"]
    done = subprocess.run(common.pinned(common.CFG.client_cpu, cmd), capture_output=True,
                          text=True, timeout=SECONDS + 60)
    out = done.stdout
    rate = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    counts = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed,"
                       r" (\d+) errored", out)
    data = re.search(r"traffic: .* \((\d+)\) data", out)
    if done.returncode != 0 or not (rate and counts and data):
        raise common.BenchError(f"h2load failed ({done.returncode}):\n{out[-2000:]}\n{done.stderr}")
    ok, failed, errored = (int(g) for g in counts.groups())
    # Answers cut off when the time is up may count part of their DATA.
    expected = ok * frame_size
    if failed or errored or not expected <= int(data.group(1)) < expected + CONCURRENCY * frame_size:
        raise common.BenchError(f"h2load: {ok} ok, {failed} failed, {errored} errored, "
                                f"{data.group(1)} DATA bytes for {frame_size}-byte answers")
    return {"req_s": float(rate.group(1)), "p99_ms": float("nan")}


def main() -> int:
    if not PERF_ANALYZER.exists():
        print("grpc bench: perf_analyzer not found in .venv (tritonclient wheel)", file=sys.stderr)
        return 2
    if shutil.which("h2load") is None:
        print("grpc bench: h2load not found; run scripts/deps.sh (nghttp2-client)", file=sys.stderr)
        return 2
    common.ensure_model()
    http_port, grpc_port = common.free_ports(2)
    binary = os.environ.get("OSPREY_BIN", str(ROOT / "build/release/apps/osprey/osprey"))
    server = common.ServerProcess(
        "osprey-grpc",
        [binary, "serve", "--model-dir", str(common.MODEL_DIR), "--model-name", "iris",
         "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--http-threads", "1"],
        "/v2/health/ready", http_port)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server.start()
        try:
            for rows in (2, 1000):
                data = input_file(rows, tmp)
                for kind in ("REST JSON (wrk)", "REST binary (perf_analyzer)",
                             "gRPC raw (perf_analyzer)", "gRPC raw (h2load)"):
                    if kind.startswith("REST JSON"):
                        runs = [wrk_json(http_port, rows, data, f"run{i}") for i in range(RUNS)]
                    elif kind.endswith("(h2load)"):
                        runs = [h2load_grpc(grpc_port, rows, tmp) for _ in range(RUNS)]
                    else:
                        protocol, port = (("grpc", grpc_port) if kind.startswith("gRPC")
                                          else ("http", http_port))
                        runs = [perf_analyzer(protocol, port, rows, data,
                                              tmp / f"{protocol}-{rows}-{i}.csv")
                                for i in range(RUNS)]
                    name = f"{kind}, {rows} rows"
                    results[name] = {
                        "rows": rows, "runs": runs,
                        "req_s": statistics.median(r["req_s"] for r in runs),
                        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                    }
                    common.log(f"{name}: {results[name]['req_s']:.0f} req/s")
        finally:
            server.stop()

    def req_s(kind, rows):
        return results[f"{kind}, {rows} rows"]["req_s"]

    iris_ratio = req_s("gRPC raw (perf_analyzer)", 2) / req_s("REST binary (perf_analyzer)", 2)
    iris_ratio_json = req_s("gRPC raw (h2load)", 2) / req_s("REST JSON (wrk)", 2)
    rows_ratio = req_s("gRPC raw (h2load)", 1000) / req_s("REST JSON (wrk)", 1000)
    rows_ratio_pa = req_s("gRPC raw (perf_analyzer)", 1000) / req_s("REST JSON (wrk)", 1000)
    lines = [
        f"perf_analyzer, concurrency {CONCURRENCY}, server on CPU {common.CFG.server_cpu}, "
        f"client on CPU {common.CFG.client_cpu}, median of {RUNS} runs of {SECONDS:.0f} s",
        "",
        "| Scenario | req/s | rows/s | p99 (ms) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        p99 = "-" if r["p99_ms"] != r["p99_ms"] else f"{r['p99_ms']:.3f}"  # h2load: none
        lines.append(f"| {name} | {r['req_s']:.0f} | {r['req_s'] * r['rows']:.0f} | {p99} |")
    lines += [
        "",
        "| Goal | Target | Measured | Result |",
        "|---|---|---:|---|",
        f"| gRPC iris vs REST iris, same client (perf_analyzer) | >= 0.8x req/s | "
        f"{iris_ratio:.2f}x | {'PASS' if iris_ratio >= 0.8 else 'FAIL'} |",
        f"| gRPC iris (h2load) vs REST JSON iris (wrk), server capacity | >= 0.8x req/s | "
        f"{iris_ratio_json:.2f}x | {'PASS' if iris_ratio_json >= 0.8 else 'FAIL'} |",
        f"| gRPC raw (h2load) vs REST JSON (wrk), 1000 rows | >= 3x rows/s | {rows_ratio:.2f}x | "
        f"{'PASS' if rows_ratio >= 3 else 'FAIL'} |",
        f"| (the same with perf_analyzer as the gRPC client) | - | "
        f"{rows_ratio_pa:.2f}x | - |",
    ]
    report = "\n".join(lines)
    print(report)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "grpc_results.md").write_text(report + "\n")
    (OUT / "grpc_results.json").write_text(json.dumps(
        {"results": results, "iris_ratio": iris_ratio, "iris_ratio_vs_json": iris_ratio_json,
         "rows_ratio": rows_ratio, "rows_ratio_perf_analyzer": rows_ratio_pa}, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except common.BenchError as e:
        print(f"grpc bench: {e}", file=sys.stderr)
        sys.exit(1)
