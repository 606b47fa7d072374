"""Osprey's gateway as a reverse proxy against the proxies people run, same
run, same upstream, same client:

- upstream: nginx answering 200 "ok" (one worker, keep-alive), pinned to the
  client CPU;
- proxies, each pinned to the server CPU, one worker/thread, keep-alive to
  the upstream: Osprey's gateway (`osprey up`) with an Istio VirtualService
  route (a header match, then a 70/30 weighted split over two ServiceEntry
  destinations), HAProxy (an ACL on the header, two weighted servers) and
  nginx (the header checked, an upstream of two weighted servers);
- wrk on the client CPU, BENCH_CONNECTIONS connections, median of BENCH_RUNS
  runs of BENCH_SECONDS: requests/s and p99.

Goals (issue: Knative and Istio resources): the gateway >= 1.0x HAProxy's and
nginx's requests/s with lower p99. Also the added cost of matching a
VirtualService of 100 rules over one of a single rule
(osprey_route_match_bench): under 0.01 ms median.
Output: build/bench/proxy_results.{md,json}.
"""

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

CFG = common.CFG
OUT = common.OUT_DIR
HOST = "bench.example.com"
HEADER = ("x-user", "bench")


def wait_answers(port, headers, what):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                *sum((["-H", f"{k}: {v}"] for k, v in headers.items()), []),
                                f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                               timeout=5)
            if r.stdout == "200":
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.1)
    raise common.BenchError(f"{what} does not answer 200")


def wrk(port, tag):
    cmd = common.pinned(CFG.client_cpu, [
        CFG.wrk_bin, "-t1", f"-c{CFG.connections}", f"-d{CFG.seconds}s", "--latency",
        "-H", f"Host: {HOST}", "-H", f"{HEADER[0]}: {HEADER[1]}", f"http://127.0.0.1:{port}/"])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=CFG.seconds + 60).stdout
    (common.LOG_DIR / f"proxy.{tag}.wrk.txt").write_text(out)
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    if "Non-2xx" in out or "Socket errors" in out:
        raise common.BenchError(f"{tag}: errors under load:\n{out}")
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale}


def measure(port, tag):
    wrk(port, f"{tag}.warmup")
    runs = [wrk(port, f"{tag}.{i}") for i in range(CFG.runs)]
    return {"rps": statistics.median(r["rps"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs), "runs": runs}


def osprey_gateway(work, upstream):
    up = common.Up(work / "osprey-home")
    entries = "".join(f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}.default.svc.cluster.local]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {upstream}}}}}]
""" for name in ("v1", "v2"))
    up.apply(entries + f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bench}}
spec:
  hosts: [{HOST}]
  http:
  - match: [{{headers: {{{HEADER[0]}: {{exact: {HEADER[1]}}}}}}}]
    route:
    - {{destination: {{host: v1}}, weight: 70}}
    - {{destination: {{host: v2}}, weight: 30}}
  - route: [{{destination: {{host: v1}}}}]
""")
    return up, up.port


def haproxy(work, upstream):
    port = common.free_port()
    conf = work / "haproxy.cfg"
    conf.write_text(f"""global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend bench
    bind 127.0.0.1:{port}
    acl bench_user req.hdr({HEADER[0]}) -m str {HEADER[1]}
    use_backend weighted if bench_user
    default_backend single
backend weighted
    balance roundrobin
    server v1 127.0.0.1:{upstream} weight 70
    server v2 127.0.0.1:{upstream} weight 30
backend single
    server v1 127.0.0.1:{upstream}
""")
    proc = subprocess.Popen(common.pinned(CFG.server_cpu, ["haproxy", "-f", str(conf)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


def nginx_proxy(work, upstream):
    port = common.free_port()
    (work / "proxy").mkdir(exist_ok=True)
    conf = work / "proxy" / "nginx.conf"
    conf.write_text(f"""worker_processes 1;
daemon off;
pid {work}/proxy/nginx.pid;
error_log {work}/proxy/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path {work}/proxy/client_body;
    proxy_temp_path {work}/proxy/proxy;
    fastcgi_temp_path {work}/proxy/fastcgi;
    uwsgi_temp_path {work}/proxy/uwsgi;
    scgi_temp_path {work}/proxy/scgi;
    upstream weighted {{
        server 127.0.0.1:{upstream} weight=7;
        server 127.0.0.1:{upstream} weight=3;
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            if ($http_{HEADER[0].replace("-", "_")} != "{HEADER[1]}") {{ return 404; }}
            proxy_pass http://weighted;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
    proc = subprocess.Popen(common.pinned(CFG.server_cpu, [
        CFG.nginx_bin, "-p", str(work / "proxy"), "-e", str(work / "proxy" / "error.log"),
        "-c", str(conf)]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


def route_match():
    binary = CFG.osprey_bin.parent.parent.parent / "bench" / "osprey_route_match_bench"
    out = subprocess.run(common.pinned(CFG.server_cpu, [str(binary)]), capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def main():
    if shutil.which("haproxy") is None:
        raise common.BenchError("haproxy not found; run OSPREY_DEPS_BENCH=1 scripts/deps.sh")
    common.LOG_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="osprey-proxy-bench-"))
    sink, upstream = common.start_nginx_sink(work, CFG.client_cpu, "200 'ok'", "upstream")
    results = {}
    try:
        for name, start in (("osprey", osprey_gateway), ("haproxy", haproxy),
                            ("nginx", nginx_proxy)):
            common.log(f"proxy bench: {name}")
            proc, port = start(work, upstream)
            try:
                wait_answers(port, {"Host": HOST, HEADER[0]: HEADER[1]}, name)
                results[name] = measure(port, name)
            finally:
                if isinstance(proc, common.Up):
                    proc.stop()
                else:
                    proc.terminate()
                    proc.wait(timeout=30)
        results["route_match"] = route_match()
    finally:
        sink.terminate()
        shutil.rmtree(work, ignore_errors=True)
    o, h, n = results["osprey"], results["haproxy"], results["nginx"]
    lines = [
        "# Osprey's gateway as a reverse proxy (VirtualService: header match + 70/30 split)",
        "",
        f"{CFG.runs} runs x {CFG.seconds} s, {CFG.connections} connections; median.",
        "",
        "| proxy | requests/s | p99 ms | Osprey's ratio (req/s) |",
        "|---|---|---|---|",
        f"| Osprey gateway | {o['rps']:.0f} | {o['p99_ms']:.2f} | 1.00 |",
        f"| HAProxy | {h['rps']:.0f} | {h['p99_ms']:.2f} | {o['rps'] / h['rps']:.2f} |",
        f"| nginx | {n['rps']:.0f} | {n['p99_ms']:.2f} | {o['rps'] / n['rps']:.2f} |",
        "",
        f"Route matching, 100 rules vs 1 (worst case, last rule): "
        f"{results['route_match']['hundred_rules_ns']:.0f} ns vs "
        f"{results['route_match']['single_rule_ns']:.0f} ns, added "
        f"{results['route_match']['added_ns'] / 1e6:.4f} ms (goal < 0.01 ms).",
    ]
    (OUT / "proxy_results.md").write_text("\n".join(lines) + "\n")
    (OUT / "proxy_results.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
