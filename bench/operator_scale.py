"""`osprey operator` at scale against KServe's own controller, on the same real
API server (scripts/k8s-testenv.sh: etcd, kube-apiserver, kube-controller-manager;
no scheduler and no node, so pods stay Pending, which this benchmark does not need).

For each controller, on a fresh control plane of its own (neither sees the
other's objects): BENCH_N InferenceServices (sklearn, model form, one storageUri,
namespace `bench`, distinct names) are created at once by a parallel REST client,
and the benchmark measures

  (a) the time from the first create until every Deployment exists (a watch on
      Deployments in the namespace: Osprey's `{isvc}-predictor-00001-deployment`,
      KServe's raw-deployment `{isvc}-predictor`), and each InferenceService's
      create -> Deployment latency (p50, p99);
  (b) the time until every InferenceService has a status with
      status.observedGeneration (a watch on InferenceServices), and until every
      one has any status at all (status.conditions);
  (c) the controller's peak RSS (VmHWM, read at the end) and its CPU seconds
      (utime + stime from /proc/PID/stat) from the first create until (a) and (b)
      hold, and since it started;
  (d) steady state: once idle (or after BENCH_SETTLE_TIMEOUT), BENCH_SECONDS with
      no changes: the controller's CPU seconds and API requests per minute;
  (e) the time until the controller is idle: no API request of its own for
      BENCH_SETTLE_SECONDS (the time is that of its last request), and its CPU
      seconds until then: what it does after (a) and (b) (events from its own
      writes, the Deployments' status written by the controller manager) counts.

API requests are counted twice: by the controller's own counter (Osprey's
osprey_operator_api_requests_total, client-go's rest_client_requests_total in
KServe's /metrics) and by the API server's audit log (one event per request at
RequestReceived, counted by the controller's user agent), which is neutral and
also splits writes from reads.

The reference is KServe's controller (github.com/kserve/kserve cmd/manager,
built from the Go module proxy by bench/setup_kserve_controller.sh into a
version-keyed cache outside the work tree) in raw-deployment mode, leader
election off, its webhooks served but not registered with the API server (no
webhook configuration exists), with the ConfigMap and the extra CRDs of
bench/kserve-controller/. Its client limits are its own (controller-runtime's
20 QPS / burst 30 for each of its two clients, one InferenceService worker:
the manager has no flag for them); Osprey runs with --qps 200 --burst 400 --workers 8 (BENCH_OSPREY_ARGS
replaces these). API requests per InferenceService do not depend on those limits.

Goals: Osprey >= 3x faster to all Deployments created, and peak RSS <= 1/3 of
KServe's. Output: a table on stdout, build/bench/operator_scale_results.{md,json},
logs under build/bench/operator_scale/.

Environment: BENCH_N (1000), BENCH_SECONDS (60), BENCH_SETTLE_SECONDS (10),
BENCH_SETTLE_TIMEOUT (1200), BENCH_TIMEOUT (1800, per controller, for (a) and
(b)), BENCH_CREATE_THREADS (32), BENCH_OPERATOR_ONLY (osprey,kserve: the
controllers to run), OSPREY_BIN (build/release, else build/dev),
BENCH_OSPREY_ARGS, KSERVE_VER (0.17.0), KSERVE_MANAGER (a prebuilt binary),
BENCH_ENFORCE_GOALS (1: exit 3 on a missed goal).
"""

import calendar
import collections
import concurrent.futures
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import urllib3

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
WORK = OUT / "operator_scale"
TESTENV = ROOT / "scripts" / "k8s-testenv.sh"
KSERVE_SETUP = ROOT / "bench" / "setup_kserve_controller.sh"
KSERVE_FILES = ROOT / "bench" / "kserve-controller"
NAMESPACE = "bench"
STORAGE_URI = "gs://kfserving-examples/models/sklearn/1.0/model"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The controllers' user agents, as the audit log records them.
OSPREY_UA = "osprey-operator"
KSERVE_ARGV0 = "kserve-controller-manager"  # client-go's user agent is argv[0]'s base name

N = int(os.environ.get("BENCH_N", "1000"))
STEADY_S = float(os.environ.get("BENCH_SECONDS", "60"))
SETTLE_S = float(os.environ.get("BENCH_SETTLE_SECONDS", "10"))
SETTLE_TIMEOUT_S = float(os.environ.get("BENCH_SETTLE_TIMEOUT", "1200"))
TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT", "1800"))
THREADS = int(os.environ.get("BENCH_CREATE_THREADS", "32"))
ONLY = [s.strip() for s in os.environ.get("BENCH_OPERATOR_ONLY", "osprey,kserve").split(",") if s.strip()]
OSPREY_ARGS = shlex.split(os.environ.get("BENCH_OSPREY_ARGS", "--qps 200 --burst 400 --workers 8"))

AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
# one event per request, when it is received: who (user agent) and what (verb)
omitStages: [ResponseStarted, ResponseComplete]
rules:
- level: Metadata
"""


SERVICE_CIDR = """apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: bench}
spec: {cidrs: [10.96.0.0/16]}
"""


def log(msg):
    print(f"[operator_scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def osprey_bin():
    if os.environ.get("OSPREY_BIN"):
        return Path(os.environ["OSPREY_BIN"]).resolve()
    for preset in ("release", "dev"):
        p = ROOT / "build" / preset / "apps" / "osprey" / "osprey"
        if p.exists():
            return p
    raise BenchError("no osprey binary (build/release or build/dev); set OSPREY_BIN")


def kserve_manager():
    if os.environ.get("KSERVE_MANAGER"):
        return Path(os.environ["KSERVE_MANAGER"])
    log("building (or finding) KServe's controller: bench/setup_kserve_controller.sh")
    r = subprocess.run([str(KSERVE_SETUP)], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise BenchError(f"setup_kserve_controller.sh failed:\n{r.stderr[-3000:]}")
    return Path(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- processes

def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class ControlPlane:
    def __init__(self, name):
        self.dir = WORK / name / "k8s"
        if self.dir.exists():
            subprocess.run([str(TESTENV), "stop", str(self.dir)], capture_output=True)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        policy = self.dir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self.audit_log = self.dir / "audit.log"
        env = dict(os.environ, WITH_SCHEDULER="0",
                   APISERVER_ARGS=f"--audit-policy-file={policy} --audit-log-path={self.audit_log} "
                                  "--audit-log-format=json --audit-log-mode=batch --audit-log-maxsize=2000")
        log(f"starting a control plane in {self.dir}")
        r = subprocess.run([str(TESTENV), "start", str(self.dir)], env=env, capture_output=True,
                           text=True, cwd=ROOT)
        if r.returncode != 0:
            raise BenchError(f"k8s-testenv start failed:\n{r.stderr[-3000:]}")
        self.env = dict(os.environ)
        for line in r.stdout.splitlines():
            m = re.match(r"export (\w+)=(.*)", line)
            if m:
                self.env[m.group(1)] = m.group(2).replace("$PATH", os.environ.get("PATH", ""))
        self.kubeconfig = self.env["KUBECONFIG"]
        port = (self.dir / "apiserver.port").read_text().strip()
        pki = self.dir / "pki"
        self.server = f"https://127.0.0.1:{port}"
        self.verify = str(pki / "ca.crt")
        self.cert = (str(pki / "admin.crt"), str(pki / "admin.key"))

    def session(self):
        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        s.verify = self.verify
        s.cert = self.cert
        s.headers["User-Agent"] = "osprey-bench"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=4)
        s.mount("https://", adapter)
        return s

    def kubectl(self, *args, stdin=None):
        r = subprocess.run(["kubectl", *args], env=self.env, input=stdin, capture_output=True,
                           text=True, cwd=ROOT)
        if r.returncode != 0:
            raise BenchError(f"kubectl {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def stop(self):
        subprocess.run([str(TESTENV), "stop", str(self.dir)], capture_output=True)


def wait_http(url, deadline_s, what, proc=None):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise BenchError(f"timed out waiting for {what} ({url})")


def scrape(url, names):
    """Sum of the samples of each metric in names (all label sets) at a /metrics URL."""
    text = requests.get(url, timeout=5).text
    sums = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and m.group(1) in sums:
            sums[m.group(1)] += float(m.group(3))
    return sums


# ---------------------------------------------------------------- controllers

class Osprey:
    name = "osprey"
    title = "Osprey"
    user_agent = OSPREY_UA

    def deployment_name(self, isvc):
        return f"{isvc}-predictor-00001-deployment"

    def prepare(self, cp):
        pass

    def start(self, cp, logf):
        port = free_port()
        self.metrics_url = f"http://127.0.0.1:{port}/metrics"
        # A private copy: a rebuild of the tree during the run cannot swap it out.
        binary = WORK / "osprey-operator.bin"
        shutil.copy2(osprey_bin(), binary)
        argv = [str(binary), "operator", "--kubeconfig", cp.kubeconfig, "--health-port", str(port),
                "--health-address", "127.0.0.1", *OSPREY_ARGS]
        log("starting " + " ".join(argv))
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env=cp.env, cwd=ROOT)
        wait_http(f"http://127.0.0.1:{port}/readyz", 120, "osprey operator", self.proc)
        return self.proc

    def api_requests(self):
        s = scrape(self.metrics_url, ["osprey_operator_api_requests_total", "osprey_operator_api_writes_total",
                                      "osprey_operator_reconciles_total"])
        return {"requests": s["osprey_operator_api_requests_total"],
                "writes": s["osprey_operator_api_writes_total"],
                "reconciles": s["osprey_operator_reconciles_total"]}


class KServe:
    name = "kserve"
    title = "KServe"
    user_agent = KSERVE_ARGV0

    def __init__(self):
        self.manager = None

    def deployment_name(self, isvc):
        return f"{isvc}-predictor"

    def prepare(self, cp):
        self.manager = self.manager or kserve_manager()
        cp.kubectl("apply", "-f", str(KSERVE_FILES / "crds.yaml"))
        cp.kubectl("wait", "--for", "condition=established", "--timeout=60s",
                   "crd/trainedmodels.serving.kserve.io", "crd/inferencegraphs.serving.kserve.io",
                   "crd/clusterstoragecontainers.serving.kserve.io", "crd/localmodelcaches.serving.kserve.io")
        cp.kubectl("apply", "-f", str(KSERVE_FILES / "inferenceservice-config.yaml"))

    def start(self, cp, logf):
        mport, pport, wport = free_port(), free_port(), free_port()
        self.metrics_url = f"http://127.0.0.1:{mport}/metrics"
        # The webhook server starts with the manager (and gates /readyz) and needs a
        # serving certificate under $TMPDIR/k8s-webhook-server/serving-certs; no
        # webhook configuration points the API server at it, so webhooks are off.
        tmp = cp.dir / "kserve-tmp"
        certs = tmp / "k8s-webhook-server" / "serving-certs"
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(cp.dir / "pki" / "apiserver.crt", certs / "tls.crt")
        shutil.copy(cp.dir / "pki" / "apiserver.key", certs / "tls.key")
        env = dict(cp.env, TMPDIR=str(tmp), POD_NAMESPACE="kserve")
        argv = [KSERVE_ARGV0, f"--metrics-addr=127.0.0.1:{mport}", f"--health-probe-addr=127.0.0.1:{pport}",
                f"--webhook-port={wport}", "--leader-elect=false"]
        log(f"starting {self.manager} " + " ".join(argv[1:]))
        self.logpath = Path(logf.name)
        self.proc = subprocess.Popen(argv, executable=str(self.manager), stdout=logf, stderr=subprocess.STDOUT,
                                     env=env, cwd=ROOT)
        wait_http(f"http://127.0.0.1:{pport}/readyz", 120, "KServe controller", self.proc)
        # /readyz is the webhook server's; wait for the InferenceService workers too.
        end = time.monotonic() + 120
        while time.monotonic() < end:
            text = self.logpath.read_text(errors="replace")
            if re.search(r'Starting workers.*"controller":\s*"inferenceservice"', text):
                return self.proc
            if self.proc.poll() is not None:
                raise BenchError(f"KServe controller exited with status {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.2)
        raise BenchError("KServe controller: InferenceService workers did not start within 120 s")

    def api_requests(self):
        s = scrape(self.metrics_url, ["rest_client_requests_total", "controller_runtime_reconcile_total"])
        return {"requests": s["rest_client_requests_total"], "writes": None,
                "reconciles": s["controller_runtime_reconcile_total"]}


# ---------------------------------------------------------------- watches

class Watch(threading.Thread):
    """A list-then-watch of a namespaced collection; calls on_object(obj, t) for
    every object seen (listed or in an event), t = time.monotonic() at receipt."""

    def __init__(self, cp, path, on_object):
        super().__init__(daemon=True)
        self.cp, self.path, self.on_object = cp, path, on_object
        self.stopped = threading.Event()
        self.synced = threading.Event()
        self.events = 0
        self.resp = None
        self.last_error = None

    def run(self):
        s = self.cp.session()
        rv = None
        while not self.stopped.is_set():
            try:
                if rv is None:
                    r = s.get(self.cp.server + self.path, timeout=60)
                    r.raise_for_status()
                    body = r.json()
                    t = time.monotonic()
                    for obj in body.get("items", []):
                        self.on_object(obj, t)
                    rv = body["metadata"]["resourceVersion"]
                    self.synced.set()
                self.resp = s.get(self.cp.server + self.path, stream=True, timeout=(10, 120),
                                  params={"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true",
                                          "timeoutSeconds": "60"})
                for line in self.resp.iter_lines():
                    if not line:
                        continue
                    t = time.monotonic()
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        rv = None  # expired: list again
                        break
                    rv = ev["object"]["metadata"]["resourceVersion"]
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self.events += 1
                        self.on_object(ev["object"], t)
            except Exception as e:  # noqa: BLE001 - a dropped watch is resumed
                if self.stopped.is_set():
                    return
                self.last_error = repr(e)
                time.sleep(0.2)

    def stop(self):
        self.stopped.set()
        try:
            if self.resp is not None:
                self.resp.close()
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------- one run

def isvc_manifest(name):
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": STORAGE_URI}}}}


def _lines(files):
    for p in files:
        with open(p) as f:
            yield from f


def audit_counts(path, user_agent, t_from=None, t_to=None):
    """Requests (and writes) the audit log (and its rotated files) records from
    user_agent, optionally only those received in [t_from, t_to) (wall-clock s)."""
    total, writes, verbs = 0, 0, collections.Counter()
    files = sorted(path.parent.glob(path.stem + "-*" + path.suffix)) + ([path] if path.exists() else [])
    if not files:
        return None
    for line in _lines(files):
        if user_agent not in line:
            continue
        ev = json.loads(line)
        if not ev.get("userAgent", "").startswith(user_agent):
            continue
        if t_from is not None:
            ts = ev.get("requestReceivedTimestamp", "")
            t = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
            t += float("0." + ts[20:-1]) if len(ts) > 20 else 0.0
            if not (t_from <= t < t_to):
                continue
        verb = ev.get("verb", "")
        res = ev.get("objectRef", {}).get("resource", "")
        sub = ev.get("objectRef", {}).get("subresource", "")
        verbs[f"{verb} {res}{'/' + sub if sub else ''}"] += 1
        total += 1
        if verb not in ("get", "list", "watch"):
            writes += 1
    return {"requests": total, "writes": writes, "by_verb": dict(verbs.most_common())}


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def run_one(ctl):
    res = {"controller": ctl.title, "n": N, "loadavg_before": os.getloadavg()[0]}
    cp = ControlPlane(ctl.name)
    logdir = WORK / ctl.name
    proc = None
    watches = []
    try:
        cp.kubectl("apply", "-k", "deploy/kubernetes/crds")
        cp.kubectl("wait", "--for", "condition=established", "--timeout=60s", "crd",
                   "-l", "app.kubernetes.io/part-of=osprey")
        cp.kubectl("apply", "-f", "deploy/kubernetes/clusterservingruntimes.yaml")
        # k8s-testenv's service range is a /24 (254 ClusterIPs); N revisions need
        # N Services, so a second ServiceCIDR (MultiCIDRServiceAllocator) adds a /16.
        cp.kubectl("apply", "-f", "-", stdin=SERVICE_CIDR)
        cp.kubectl("wait", "--for", "condition=Ready", "--timeout=60s", "servicecidr/bench")
        cp.kubectl("create", "namespace", NAMESPACE)
        ctl.prepare(cp)

        names = [f"sklearn-{i:05d}" for i in range(N)]
        want_deploy = {ctl.deployment_name(n): n for n in names}
        lock = threading.Lock()
        deploy_seen, status_seen, cond_seen, created = {}, {}, {}, {}

        def on_deployment(obj, t):
            isvc = want_deploy.get(obj["metadata"]["name"])
            if isvc is not None:
                with lock:
                    deploy_seen.setdefault(isvc, t)

        def on_isvc(obj, t):
            st = obj.get("status") or {}
            name = obj["metadata"]["name"]
            with lock:
                if st.get("conditions"):
                    cond_seen.setdefault(name, t)
                if "observedGeneration" in st:
                    status_seen.setdefault(name, t)

        watches = [Watch(cp, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", on_deployment),
                   Watch(cp, f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices", on_isvc)]
        for w in watches:
            w.start()
        for w in watches:
            if not w.synced.wait(30):
                raise BenchError(f"watch of {w.path} did not start: {w.last_error}")

        logf = open(logdir / "controller.log", "w")
        t_start = time.monotonic()
        proc = ctl.start(cp, logf)
        res["startup_s"] = time.monotonic() - t_start
        pid = proc.pid
        time.sleep(2)  # let start-up settle before the baseline
        res["rss_idle_mib"] = proc_status_kib(pid, "VmRSS") / 1024
        cpu_idle = proc_cpu_s(pid)

        # ---- create N at once
        tls = threading.local()
        url = f"{cp.server}/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices"
        bodies = {n: json.dumps(isvc_manifest(n)) for n in names}
        sessions = [cp.session() for _ in range(THREADS)]
        for s in sessions:  # TLS handshakes before the clock starts
            s.get(cp.server + "/version", timeout=10)
        free_sessions = list(sessions)
        sess_lock = threading.Lock()

        def create(name):
            if not hasattr(tls, "s"):
                with sess_lock:
                    tls.s = free_sessions.pop()
            for attempt in range(5):
                r = tls.s.post(url, data=bodies[name], headers={"Content-Type": "application/json"}, timeout=60)
                if r.status_code in (200, 201):
                    created[name] = time.monotonic()
                    return
                if r.status_code not in (429, 500, 503, 504):
                    break
                time.sleep(0.2 * (attempt + 1))
            raise BenchError(f"create {name}: HTTP {r.status_code} {r.text[:300]}")

        log(f"{ctl.title}: creating {N} InferenceServices with {THREADS} threads")
        cpu0 = proc_cpu_s(pid)
        t0, wall_t0 = time.monotonic(), time.time()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as ex:
            for f in concurrent.futures.as_completed([ex.submit(create, n) for n in names]):
                f.result()
        res["create_all_s"] = time.monotonic() - t0
        log(f"{ctl.title}: all {N} created in {res['create_all_s']:.2f} s")

        # ---- wait for (a) and (b)
        deadline = t0 + TIMEOUT_S
        next_report = time.monotonic() + 10
        while True:
            with lock:
                nd, ns, nc = len(deploy_seen), len(status_seen), len(cond_seen)
            if nd == N and ns == N and nc == N:
                break
            if proc.poll() is not None:
                raise BenchError(f"{ctl.title} controller exited with status {proc.returncode}")
            now = time.monotonic()
            if now > deadline:
                res["timed_out"] = True
                log(f"{ctl.title}: timed out after {TIMEOUT_S:.0f} s: {nd} deployments, {ns} statuses")
                break
            if now >= next_report:
                log(f"{ctl.title}: {now - t0:.0f} s: {nd}/{N} deployments, {nc}/{N} with a status, "
                    f"{ns}/{N} with observedGeneration")
                next_report = now + 10
            time.sleep(0.05)
        t_done = time.monotonic()
        cpu_done = proc_cpu_s(pid)
        with lock:
            d_lat = [deploy_seen[n] - created[n] for n in deploy_seen if n in created]
            res["deployments"] = len(deploy_seen)
            res["statuses"] = len(status_seen)
            res["all_deployments_s"] = max(deploy_seen.values()) - t0 if len(deploy_seen) == N else None
            res["all_status_s"] = max(status_seen.values()) - t0 if len(status_seen) == N else None
            res["all_conditions_s"] = max(cond_seen.values()) - t0 if len(cond_seen) == N else None
        res["deploy_latency_p50_s"] = pct(d_lat, 50)
        res["deploy_latency_p99_s"] = pct(d_lat, 99)
        res["load_cpu_s"] = cpu_done - cpu0
        res["load_wall_s"] = t_done - t0
        log(f"{ctl.title}: all Deployments after {res['all_deployments_s']} s, all statuses after "
            f"{res['all_status_s']} s")

        # ---- settle: the controller may still be working off its queue (events
        # from its own writes, the Deployments' status from the controller
        # manager); wait until it sends no request for SETTLE_S seconds.
        log(f"{ctl.title}: waiting for {SETTLE_S:.0f} s without an API request (at most {SETTLE_TIMEOUT_S:.0f} s)")
        last = ctl.api_requests()["requests"]
        t_last_change = time.monotonic()
        settle_end = t_last_change + SETTLE_TIMEOUT_S
        next_report = time.monotonic() + 30
        while time.monotonic() - t_last_change < SETTLE_S:
            if time.monotonic() > settle_end:
                res["settle_timed_out"] = True
                log(f"{ctl.title}: still sending requests after {SETTLE_TIMEOUT_S:.0f} s; measuring anyway")
                break
            time.sleep(0.5)
            now_req = ctl.api_requests()["requests"]
            if now_req != last:
                last, t_last_change = now_req, time.monotonic()
            if time.monotonic() >= next_report:
                log(f"{ctl.title}: {time.monotonic() - t0:.0f} s: still busy ({now_req:.0f} requests so far)")
                next_report = time.monotonic() + 30
        res["idle_s"] = None if res.get("settle_timed_out") else t_last_change - t0
        res["idle_cpu_s"] = proc_cpu_s(pid) - cpu0

        # ---- steady state
        ev0 = sum(w.events for w in watches)
        own0 = ctl.api_requests()
        cpu_s0, wall_s0 = proc_cpu_s(pid), time.time()
        log(f"{ctl.title}: steady state for {STEADY_S:.0f} s")
        time.sleep(STEADY_S)
        cpu_s1, wall_s1 = proc_cpu_s(pid), time.time()
        own1 = ctl.api_requests()
        ev1 = sum(w.events for w in watches)
        res["steady_cpu_s"] = cpu_s1 - cpu_s0
        res["steady_watch_events"] = ev1 - ev0
        res["steady_own_requests_per_min"] = (own1["requests"] - own0["requests"]) * 60 / STEADY_S
        res["own_counter_total"] = own1
        res["rss_peak_mib"] = proc_status_kib(pid, "VmHWM") / 1024
        res["rss_end_mib"] = proc_status_kib(pid, "VmRSS") / 1024
        res["rss_anon_end_mib"] = proc_status_kib(pid, "RssAnon") / 1024
        res["rss_file_end_mib"] = proc_status_kib(pid, "RssFile") / 1024
        res["cpu_total_s"] = proc_cpu_s(pid)
        res["cpu_startup_s"] = cpu_idle
        res["loadavg_after"] = os.getloadavg()[0]
        res["_windows"] = {"to_ab": (wall_t0, wall_t0 + (t_done - t0)), "load": (wall_t0, wall_s0),
                           "steady": (wall_s0, wall_s1)}
    finally:
        for w in watches:
            w.stop()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        cp.stop()  # also flushes the audit log
    windows = res.pop("_windows", None)
    if windows:
        res["audit_to_ab"] = audit_counts(cp.audit_log, ctl.user_agent, *windows["to_ab"])
        res["audit_load"] = audit_counts(cp.audit_log, ctl.user_agent, *windows["load"])
        res["audit_steady"] = audit_counts(cp.audit_log, ctl.user_agent, *windows["steady"])
        res["audit_total"] = audit_counts(cp.audit_log, ctl.user_agent)
        if res["audit_steady"] is not None:
            res["steady_audit_requests_per_min"] = res["audit_steady"]["requests"] * 60 / STEADY_S
    return res


# ---------------------------------------------------------------- report

def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.{digits}f}"


def report(results, errors):
    o, k = results.get("osprey"), results.get("kserve")

    def g(r, *path):
        for p in path:
            if r is None:
                return None
            r = r.get(p) if isinstance(r, dict) else None
        return r

    def per_isvc(r, *path):
        v = g(r, *path)
        return None if v is None else v / N

    rows = [
        ("(a) first create -> all Deployments exist (s)", g(o, "all_deployments_s"), g(k, "all_deployments_s")),
        ("(a) create -> Deployment, p50 per InferenceService (s)", g(o, "deploy_latency_p50_s"),
         g(k, "deploy_latency_p50_s")),
        ("(a) create -> Deployment, p99 per InferenceService (s)", g(o, "deploy_latency_p99_s"),
         g(k, "deploy_latency_p99_s")),
        ("(b) first create -> every status has observedGeneration (s)", g(o, "all_status_s"), g(k, "all_status_s")),
        ("(b) first create -> every InferenceService has a status (s)", g(o, "all_conditions_s"),
         g(k, "all_conditions_s")),
        ("(e) first create -> controller idle, last API request (s)", g(o, "idle_s"), g(k, "idle_s")),
        ("(e) CPU, first create -> idle (s)", g(o, "idle_cpu_s"), g(k, "idle_cpu_s")),
        ("creating the N InferenceServices (client, s)", g(o, "create_all_s"), g(k, "create_all_s")),
        ("(c) peak RSS, VmHWM (MiB)", g(o, "rss_peak_mib"), g(k, "rss_peak_mib")),
        ("(c) RSS idle before the load (MiB)", g(o, "rss_idle_mib"), g(k, "rss_idle_mib")),
        ("(c) RSS at the end: anonymous (MiB)", g(o, "rss_anon_end_mib"), g(k, "rss_anon_end_mib")),
        ("(c) RSS at the end: file-backed, the binary's pages (MiB)", g(o, "rss_file_end_mib"),
         g(k, "rss_file_end_mib")),
        ("(c) CPU, first create -> (a) and (b) hold (s)", g(o, "load_cpu_s"), g(k, "load_cpu_s")),
        ("(c) CPU since start, whole run (s)", g(o, "cpu_total_s"), g(k, "cpu_total_s")),
        ("API requests per InferenceService, first create -> (a) and (b) (audit log)",
         per_isvc(o, "audit_to_ab", "requests"), per_isvc(k, "audit_to_ab", "requests")),
        ("API requests, first create -> idle (audit log)", g(o, "audit_load", "requests"), g(k, "audit_load", "requests")),
        ("  per InferenceService", per_isvc(o, "audit_load", "requests"), per_isvc(k, "audit_load", "requests")),
        ("  writes per InferenceService", per_isvc(o, "audit_load", "writes"), per_isvc(k, "audit_load", "writes")),
        (f"(d) steady CPU in {STEADY_S:.0f} s (s)", g(o, "steady_cpu_s"), g(k, "steady_cpu_s")),
        ("(d) steady API requests per minute (audit log)", g(o, "steady_audit_requests_per_min"),
         g(k, "steady_audit_requests_per_min")),
        ("(d) steady API requests per minute (own counter)", g(o, "steady_own_requests_per_min"),
         g(k, "steady_own_requests_per_min")),
        ("(d) changes seen in the steady window (watch events)", g(o, "steady_watch_events"),
         g(k, "steady_watch_events")),
        ("controller start -> ready (s)", g(o, "startup_s"), g(k, "startup_s")),
    ]
    lines = [f"## osprey operator at scale: N = {N} InferenceServices, one real API server each", "",
             "| | Osprey | KServe | Osprey/KServe |", "|---|---:|---:|---:|"]
    for label, a, b in rows:
        lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    goals = []
    a_o, a_k = g(o, "all_deployments_s"), g(k, "all_deployments_s")
    r_o, r_k = g(o, "rss_peak_mib"), g(k, "rss_peak_mib")
    if a_o and a_k:
        goals.append(("Osprey >= 3x faster to all Deployments created",
                      f"{a_k / a_o:.1f}x", a_k / a_o >= 3))
    else:
        goals.append(("Osprey >= 3x faster to all Deployments created", "not evaluated", None))
    if r_o and r_k:
        goals.append(("Osprey peak RSS <= 1/3 of KServe's", f"{r_o / r_k:.3f}", r_o / r_k <= 1 / 3))
    else:
        goals.append(("Osprey peak RSS <= 1/3 of KServe's", "not evaluated", None))
    lines += ["", "| Goal | Measured | |", "|---|---:|---|"]
    for label, measured, ok in goals:
        lines.append(f"| {label} | {measured} | {'PASS' if ok else ('FAIL' if ok is False else '')} |")
    lines += ["", f"Osprey: `osprey operator {' '.join(OSPREY_ARGS)}`; KServe: controller v"
              f"{os.environ.get('KSERVE_VER', '0.17.0')} (cmd/manager), RawDeployment, controller-runtime "
              "defaults (20 QPS, burst 30, 1 worker). Steady window: "
              f"{STEADY_S:.0f} s, once the controller has sent no request for {SETTLE_S:.0f} s."]
    for name, r in results.items():
        for key in ("audit_load", "audit_steady"):
            bv = g(r, key, "by_verb")
            if bv:
                top = ", ".join(f"{v} {c}" for v, c in list(bv.items())[:8])
                lines.append(f"* {r['controller']} {key.split('_')[1]} requests by verb: {top}")
    for name, err in errors.items():
        lines.append(f"* {name}: not measured: {err}")
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "operator_scale_results.md").write_text(text)
    (OUT / "operator_scale_results.json").write_text(json.dumps(
        {"n": N, "steady_seconds": STEADY_S, "osprey_args": OSPREY_ARGS, "results": results, "errors": errors,
         "goals": [{"goal": a, "measured": b, "pass": c} for a, b, c in goals]}, indent=2))
    return goals


def main():
    urllib3.disable_warnings()
    # Clean up (controller, control plane) on SIGTERM, and on SIGINT even when
    # started in the background (where SIGINT is ignored).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    WORK.mkdir(parents=True, exist_ok=True)
    # One run at a time: a second would reuse (and stop) this one's control planes,
    # and two at once on a small machine measure each other.
    lock = open(WORK / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"another run holds {WORK / '.lock'}; not starting")
        return 2
    if shutil.which("openssl") is None:
        raise BenchError("openssl not found (k8s-testenv needs it)")
    controllers = {"osprey": Osprey(), "kserve": KServe()}
    results, errors = {}, {}
    for name in ONLY:
        ctl = controllers[name]
        (WORK / name).mkdir(parents=True, exist_ok=True)
        try:
            results[name] = run_one(ctl)
        except Exception as e:  # noqa: BLE001 - the other controller still runs
            log(f"{ctl.title}: {e}")
            errors[name] = str(e).splitlines()[0][:500]
    goals = report(results, errors)
    if errors:
        return 1
    if os.environ.get("BENCH_ENFORCE_GOALS") == "1" and any(ok is False for _, _, ok in goals):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
