"""A real Kubernetes control plane for Osprey's operator tests, and a client for it.

`KubeEnv` runs `scripts/k8s-testenv.sh start DIR` (etcd, kube-apiserver,
kube-controller-manager and kube-scheduler on loopback, built from the Go module
proxy into ~/.cache/osprey by `scripts/k8s-testenv.sh build`) and stops it with
`scripts/k8s-testenv.sh stop DIR`. Nothing is mocked: every object a test
creates goes through the real API server, and the real controllers and
scheduler act on it. Only the kubelet is missing; tests/kube/kubelet.py plays
the node.

`KubeApi` talks to the API server's REST API directly (through `requests`, as
cluster-admin with the client certificate the start script makes). Paths are
the API's own, e.g. "/api/v1/namespaces/default/pods" or
"/apis/apps/v1/namespaces/default/deployments/web".
"""

import json
import math
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTENV = REPO_ROOT / "scripts" / "k8s-testenv.sh"
KUBE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")

START_TIMEOUT_S = 180.0  # the script itself waits up to 60 s for etcd and 120 s for the API server
CONTROLLERS_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 30.0
# A watch stream is reopened (from its last resourceVersion) this often: the
# API server, when stopped, waits for open streams to end before it exits.
WATCH_STREAM_S = 5


def wait_until(predicate, timeout, what, interval=0.1):
    """Polls predicate until it returns a truthy value, which it returns;
    fails after timeout seconds, naming `what`.

    An exception from predicate propagates (a broken check is not a slow one).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def binaries_dir() -> Path:
    """Where scripts/k8s-testenv.sh keeps (or would build) its binaries."""
    out = subprocess.run(["bash", str(TESTENV), "bin"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def missing_binaries(bin_dir: Path) -> list:
    return [b for b in KUBE_BINARIES if not os.access(bin_dir / b, os.X_OK)]


def rfc3339(t=None) -> str:
    """A metav1.Time: UTC, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def micro_time(t=None) -> str:
    """A metav1.MicroTime (Lease renewTime and acquireTime)."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


# --------------------------------------------------------------------------
# The REST client


class ApiError(Exception):
    """A non-2xx answer of the API server. `status` is the HTTP status (or the
    code of a watch ERROR event), `body` the decoded Status object (or text),
    `reason` its reason (NotFound, AlreadyExists, Conflict, Expired, ...)."""

    def __init__(self, method, path, status, body):
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        message = body.get("message", "") if isinstance(body, dict) else str(body)[:500]
        super().__init__(f"{method} {path}: {status} {self.reason} {message}".rstrip())


def _decode(resp):
    try:
        return resp.json()
    except ValueError:
        return resp.text


class KubeApi:
    """The API server's REST API as cluster-admin.

    Every method takes an absolute API path and returns the decoded JSON
    answer; a non-2xx answer raises ApiError. Safe to share between threads
    (each thread gets its own `requests` session).
    """

    def __init__(self, server, ca, cert, key, timeout=HTTP_TIMEOUT_S):
        self.server = server.rstrip("/")
        self.ca = str(ca)
        self.cert = (str(cert), str(key))
        self.timeout = timeout
        self._local = threading.local()

    def _session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.verify = self.ca
            s.cert = self.cert
            s.trust_env = False  # no proxies from the environment for a loopback server
            self._local.session = s
        return s

    def request(self, method, path, *, params=None, body=None, content_type=None,
                stream=False, timeout=None) -> requests.Response:
        """The raw exchange: returns the requests.Response whatever its status."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self._session().request(
            method, self.server + path, params=params, data=data, headers=headers,
            stream=stream, timeout=timeout or self.timeout)

    def _call(self, method, path, **kw):
        resp = self.request(method, path, **kw)
        if not 200 <= resp.status_code < 300:
            raise ApiError(method, path, resp.status_code, _decode(resp))
        return _decode(resp)

    def get(self, path, params=None):
        return self._call("GET", path, params=params)

    def get_or_none(self, path, params=None):
        """GET, with None for 404 (the object does not exist)."""
        try:
            return self.get(path, params)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def post(self, path, body, params=None):
        return self._call("POST", path, body=body, params=params)

    def put(self, path, body, params=None):
        return self._call("PUT", path, body=body, params=params)

    def patch(self, path, body, content_type="application/merge-patch+json", params=None):
        """PATCH; content_type is the patch type: application/merge-patch+json
        (default), application/strategic-merge-patch+json, application/json-patch+json,
        or application/apply-patch+yaml (server-side apply: give params
        {"fieldManager": ..., "force": "true"})."""
        return self._call("PATCH", path, body=body, content_type=content_type, params=params)

    def delete(self, path, body=None, params=None, missing_ok=False):
        """DELETE; body is DeleteOptions (gracePeriodSeconds, propagationPolicy,
        preconditions). missing_ok=True answers None for 404."""
        try:
            return self._call("DELETE", path, body=body, params=params)
        except ApiError as e:
            if missing_ok and e.status == 404:
                return None
            raise

    def watch(self, path, params=None, timeout=30.0, resource_version=None):
        """Yields the watch events ({"type": ADDED|MODIFIED|DELETED, "object": ...})
        of a collection path until timeout seconds have passed, then returns.

        Without resource_version the server first sends ADDED for every existing
        object (its "most recent" start); params narrow the watch, e.g.
        {"fieldSelector": "metadata.name=web", "labelSelector": "app=web"}.
        The stream is reopened from the last seen resourceVersion every
        WATCH_STREAM_S seconds (and whenever the server ends it). An ERROR event raises ApiError (410 when the
        resourceVersion is too old: list again).
        """
        deadline = time.monotonic() + timeout
        rv = resource_version
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            p = dict(params or {}, watch="true", allowWatchBookmarks="true",
                     timeoutSeconds=str(max(1, min(WATCH_STREAM_S, math.ceil(remaining)))))
            if rv:
                p["resourceVersion"] = rv
            with self.request("GET", path, params=p, stream=True,
                              timeout=(10, remaining + 10)) as resp:
                if resp.status_code != 200:
                    raise ApiError("WATCH", path, resp.status_code, _decode(resp))
                for line in resp.iter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise ApiError("WATCH", path, obj.get("code", 0), obj)
                    rv = obj.get("metadata", {}).get("resourceVersion") or rv
                    if event.get("type") != "BOOKMARK":
                        yield event
                    if time.monotonic() >= deadline:
                        return


# --------------------------------------------------------------------------
# The control plane


class KubeEnvError(RuntimeError):
    pass


class KubeEnv:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler in `dir`.

    After start():
      kubeconfig  DIR/kubeconfig (cluster-admin, client certificate embedded)
      env         os.environ with KUBECONFIG and PATH (the built binaries first)
      bin_dir     the built binaries
      server      https://127.0.0.1:PORT; host and port separately as well
      pki         DIR/pki: ca.crt, admin.crt, admin.key
      api         a KubeApi as cluster-admin
    """

    def __init__(self, dir):
        self.dir = Path(dir)
        self.kubeconfig = None
        self.env = None
        self.bin_dir = None
        self.server = None
        self.host = None
        self.port = None
        self.pki = self.dir / "pki"
        self.api = None
        self._started = False

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self._started = True  # from here on, stop() has something to stop
        proc = subprocess.run(["bash", str(TESTENV), "start", str(self.dir)],
                              capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if proc.returncode != 0:
            raise KubeEnvError(f"{TESTENV.name} start {self.dir} failed ({proc.returncode}):\n"
                               f"{proc.stdout}\n{proc.stderr}\n{self.log_tails()}")
        exports = dict(re.findall(r"^export (KUBECONFIG|PATH)=(.*)$", proc.stdout, re.M))
        if set(exports) != {"KUBECONFIG", "PATH"}:
            raise KubeEnvError(f"{TESTENV.name} start printed no KUBECONFIG/PATH exports:\n"
                               f"{proc.stdout}")
        self.kubeconfig = Path(exports["KUBECONFIG"])
        path = exports["PATH"].replace("$PATH", os.environ.get("PATH", ""))
        self.bin_dir = Path(path.split(":", 1)[0])
        self.env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), PATH=path)

        m = re.search(r'^\s*server:\s*"?(https://([^:/"]+):(\d+))"?\s*$',
                      self.kubeconfig.read_text(), re.M)
        if not m:
            raise KubeEnvError(f"no server in {self.kubeconfig}")
        self.server, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
        self.api = KubeApi(self.server, self.pki / "ca.crt", self.pki / "admin.crt",
                           self.pki / "admin.key")
        self._wait_controllers()
        return self

    def _wait_controllers(self):
        """The API server is ready when start returns; the controllers come up
        after it. The service account controller making `default` in the
        default namespace shows kube-controller-manager is at work."""
        if not (self.dir / "kcm.pid").exists():
            return
        wait_until(lambda: self.api.get_or_none("/api/v1/namespaces/default/serviceaccounts/default"),
                   CONTROLLERS_TIMEOUT_S, "kube-controller-manager to make the default service account")

    def stop(self):
        if not self._started:
            return
        self._started = False
        subprocess.run(["bash", str(TESTENV), "stop", str(self.dir)],
                       capture_output=True, text=True, timeout=60)

    def kubectl(self, *args, input=None, check=True, timeout=60) -> subprocess.CompletedProcess:
        """Runs the built kubectl against this control plane; text in and out.
        check=True raises AssertionError (with its output) on a non-zero exit."""
        cmd = [str(self.bin_dir / "kubectl"), *map(str, args)]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True,
                              env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def log_tails(self, lines=20) -> str:
        """The last lines of each component's log, for failure reports."""
        out = []
        for name in ("etcd", "apiserver", "kcm", "scheduler"):
            f = self.dir / f"{name}.log"
            if f.exists():
                tail = f.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {f}\n" + "\n".join(tail))
        return "\n".join(out)
