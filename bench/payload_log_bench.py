"""Payload logging: requests/s at saturation through the gateway of `osprey up`
with the predictor's `logger` on (mode all, a healthy sink) against the same
model with no logger, same run, same platform.

- two InferenceServices of the xgboost iris example, one replica each:
  bench-plain (no logger) and bench-logged (logger mode all, every request
  and answer POSTed as a CloudEvent);
- the sink: nginx (1 worker, `return 202`, keep-alive), a healthy receiver
  that is not the bottleneck; it stands outside the server, so it runs on
  the client CPU (BENCH_SINK_CPU), with wrk;
- the platform (gateway, replicas, the logger's sender threads) pinned to
  the server CPU, wrk (BENCH_CONNECTIONS connections) to the client CPU;
  medians of BENCH_RUNS runs of BENCH_SECONDS, plain and logged alternating
  by run so that drift of the machine hits both;
- after the runs: the logger's counts from the gateway's /metrics (sent,
  failed, dropped): a logged rate with drops would not be a logged rate.

Goal (issue: monitoring, payload logging): logged / plain requests/s >= 0.9x
with no event dropped or failed. Output: build/bench/payload_log_results.{md,json}.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

ROOT = common.ROOT
EXAMPLES = ROOT / "examples"
BODY = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
SINK_CPU = os.environ.get("BENCH_SINK_CPU", common.CFG.client_cpu)


def log_counts(up):
    """The payload logger's event counts on the gateway's /metrics."""
    text = requests.get(f"http://127.0.0.1:{up.api_port}/metrics", timeout=10).text
    counts = {}
    for result in ("sent", "failed", "dropped"):
        m = re.search(rf'^osprey_gateway_payload_log_events_total{{result="{result}"}} (\d+)$',
                      text, re.M)
        counts[result] = int(m.group(1)) if m else None
    return counts


def main() -> int:
    subprocess.run([common.CFG.python, str(EXAMPLES / "train_example.py"),
                    str(ROOT / "build/examples")], check=True)
    workdir = Path(tempfile.mkdtemp(prefix="osprey-bench-payload-log-"))
    os.chmod(workdir, 0o755)
    home = workdir / "home"
    sink, sink_port = common.start_nginx_sink(workdir, SINK_CPU, "202", "a CloudEvents sink")
    up = common.Up(home)
    want = [1.0, 1.0]
    scenarios = {}
    try:
        up.apply(common.iris_isvc("bench-plain"))
        up.apply(common.iris_isvc("bench-logged",
                                  predictor=f"\n    logger:\n      mode: all\n"
                                            f"      url: http://127.0.0.1:{sink_port}/"))
        for name in ("bench-plain", "bench-logged"):
            scenarios[name] = common.Scenario(
                key=f"payload-log-{name}", label=name, group="osprey", protocol="v1",
                path=f"/v1/models/{name}:predict", body=json.dumps(BODY).encode(),
                check=lambda a: common.check_v1(a, want))
        # Checked once and warmed up each, then the runs alternate.
        runs = common.CFG.runs
        for s in scenarios.values():
            common.verify(s, up.port)
            common.run_wrk(s, up.port, max(common.CFG.warmup_seconds, 1), "warmup")
        for i in range(1, runs + 1):
            for s in scenarios.values():
                r = common.run_wrk(s, up.port, common.CFG.seconds, f"run{i}")
                s.runs.append(r)
                common.log(f"{s.label}: run {i}/{runs}: {r['rps']:.0f} req/s, "
                           f"p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms")
        for s in scenarios.values():
            s.status = "ok"
        logged_requests = sum(r["requests"] for r in scenarios["bench-logged"].runs)
        # Let the senders finish what is queued, then read their counts.
        deadline = time.monotonic() + 60
        counts = log_counts(up)
        while (counts["sent"] or 0) + (counts["failed"] or 0) + (counts["dropped"] or 0) < \
                2 * logged_requests and time.monotonic() < deadline:
            time.sleep(0.2)
            counts = log_counts(up)
    except (common.BenchError, subprocess.CalledProcessError, requests.RequestException) as e:
        print(f"payload log bench: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        up.stop()
        sink.terminate()
        sink.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    plain, logged = scenarios["bench-plain"], scenarios["bench-logged"]
    ratio = common.ratio(logged.median("rps"), plain.median("rps"))
    clean = counts["failed"] == 0 and counts["dropped"] == 0
    goals = [("logged / plain requests/s at saturation (mode all, healthy sink)", ">= 0.9x",
              f"{common.fmt_ratio(ratio)}x", ratio is not None and ratio >= 0.9),
             ("events failed or dropped", "0",
              f"{counts['failed']} failed, {counts['dropped']} dropped", clean)]
    lines = [f"Payload logging, median of {common.CFG.runs} x {common.CFG.seconds} s "
             f"(wrk {common.CFG.connections} connections; nginx sink on CPU {SINK_CPU})", ""]
    lines += common.scenario_rows([plain, logged])
    lines += ["", f"Events: {counts['sent']} sent for {logged_requests} logged requests "
                  f"(+ warm-up and check), {counts['failed']} failed, "
                  f"{counts['dropped']} dropped", ""]
    lines += common.goal_rows(goals)
    common.publish("payload_log", lines, {"plain": plain.runs, "logged": logged.runs,
                                          "events": counts, "ratio": ratio})
    return 0 if all(g[3] for g in goals) or not common.CFG.enforce_goals else 1


if __name__ == "__main__":
    sys.exit(main())
