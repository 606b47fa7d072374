"""A test node: stands in for the kubelet, which cannot run here.

Everything else in tests/kube is the real thing: the API server, etcd,
kube-controller-manager (Deployments, ReplicaSets, EndpointSlices, garbage
collection, namespace deletion, node lifecycle) and kube-scheduler. A kubelet
needs a container runtime and cgroups, which the machines these tests run on
do not offer. So `KubeNode` plays the node, over the API a kubelet uses:

- It registers a Node (capacity cpu 16, memory 64Gi, pods 110; InternalIP
  127.0.0.1; Ready), renews its Lease in kube-node-lease every
  `heartbeat_period` seconds and posts its status every `status_period`
  seconds, so the node lifecycle controller keeps it Ready and untainted.
- It lists and then watches the pods bound to it (fieldSelector
  spec.nodeName=<node>), relisting on 410 Gone and reconnecting on errors,
  and runs each pod in its own worker thread.
- A pod's containers are local processes. Each pod gets its own address on
  the loopback interface, so every pod keeps its real container ports; a
  process must bind its pod IP (e.g. from a POD_IP env var with fieldRef
  status.podIP), since one that binds 0.0.0.0 takes the port on every
  address. The API server refuses loopback addresses (127.0.0.0/8) in
  EndpointSlices, so where the node may add addresses to `lo` (root with
  CAP_NET_ADMIN, as in Osprey's test containers) a pod's IP is 10.244.X.Y,
  added as 10.244.X.Y/32 on lo (label lo:osprey) while the pod runs and
  removed after it; Services then get their endpoints. Elsewhere, or with
  OSPREY_KUBE_POD_ADDRESSES=loopback, it is 127.0.X.Y (never 127.0.0.1): pods
  work, but Services get no endpoints (`KubeNode.address_mode` says which).
  X starts at random, so concurrent test runs rarely meet.
- The "image" is not run: a container's `command` is, its first word
  resolved on the node's PATH (`KubeNode.path` first, then the test's PATH),
  so image osprey:* with command ["osprey", ...] runs the built binary when
  its directory is on `path`. A container without a command waits with
  reason CreateContainerError. Security contexts, resources and image pull
  policies are ignored; every process runs as the test's user.
- Environment: a small base (PATH, HOME, LANG, LC_ALL, TZ from the test
  process, HOSTNAME = pod name, OSPREY_TEST_POD_IP = the pod's address, for
  a process that cannot get status.podIP through the API, `base_env`),
  KUBERNETES_SERVICE_HOST/PORT for
  the test API server, then envFrom and env (value, fieldRef, configMapKeyRef,
  secretKeyRef) with $(VAR) expansion exactly as Kubernetes does it (earlier
  variables only, `$$` escapes, unknown references kept as written); command
  and args are expanded with the final environment. Image environments and
  service links are not modelled, nor is the service account token mount
  (the test API server runs without the ServiceAccount admission plugin):
  a process that talks to the API server needs its credentials passed in.
- Volumes: emptyDir is a fresh directory per pod; configMap and secret
  volumes are the object's keys (or `items`) written into such a directory
  when the pod starts; hostPath is the host path itself. Processes cannot
  have their own mount namespace, so instead every occurrence of a
  volumeMount's mountPath (as a whole path prefix: "/work-dir",
  "/work-dir/x", "--dir=/work-dir") in command, args, env values and
  workingDir is rewritten to that directory. TMPDIR points at the volume
  mounted at /tmp, if any. The working directory is workingDir when it lies
  in a volume (or exists here), else the first mounted volume, else the
  pod's own directory.
- Init containers run in order, each to exit 0; containers then all start.
  Native sidecars (init containers with restartPolicy Always) start in their
  turn and keep running. An exited container restarts per restartPolicy
  with a backoff (`backoff_initial` doubling to `backoff_max`), waiting with
  reason CrashLoopBackOff meanwhile; StartError (exit 128) when its
  executable is not found.
- Probes: httpGet, tcpSocket and exec (gRPC is checked as a TCP connect) for
  startup, readiness and liveness. Every probe is tried each `probe_period`
  seconds (0.5 s by default) whatever periodSeconds says. A readiness probe's
  initialDelaySeconds counts up to `max_initial_delay` (2 s) and its
  thresholds as given, so pods turn ready (and unready) quickly. Liveness and
  startup probes, which restart the container, keep the time Kubernetes gives
  it: initialDelaySeconds in full, then failureThreshold x periodSeconds of
  failures. Without a readiness probe a container is ready once started.
  readinessGates are honoured.
- Status goes through the pods/{name}/status subresource (merge patch) as the
  kubelet's does: phase, podIP(s), hostIP(s), startTime, the conditions
  PodScheduled, Initialized, ContainersReady and Ready with transition times,
  init and container statuses with state, lastState, ready, started and
  restartCount; a terminated state's message is the last lines of output.
- Each container run's stdout and stderr go to one file under the node's
  directory: `logs(namespace, pod, container, previous=False)`.
- Each container is a process group of its own: when its main process
  exits, what is left of the group is killed, as in a container.
- Deletion: on a deletionTimestamp the processes get SIGTERM, up to the
  grace period (capped at `grace_cap`, 5 s) to exit, then SIGKILL; then the
  pod is deleted with gracePeriodSeconds 0, as the kubelet does. stop()
  kills everything (and the pods stay in the API, as after a node crash).
"""

import base64
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import traceback
from collections import namedtuple
from pathlib import Path

from kubeenv import WATCH_STREAM_S, ApiError, micro_time, rfc3339, wait_until

NODE_NAME = "osprey-node-0"
HOST_IP = "127.0.0.1"
TICK_S = 0.1                 # how often a pod worker looks at its processes
STATUS_RETRY_S = 0.5
CONFIG_RETRY_S = 2.0         # a missing ConfigMap or Secret is looked for again after this
BACKOFF_RESET_S = 60.0       # a run this long forgets the container's backoff
TAIL_LINES = 80              # a terminated message: the last lines of output,
TAIL_BYTES = 2048            # as FallbackToLogsOnError takes them
NODE_READY_TIMEOUT_S = 60.0

POD_NET = "10.244"           # pod addresses in `alias` mode: 10.244.X.Y/32 on lo
ALIAS_LABEL = "lo:osprey"

NodeProcess = namedtuple("NodeProcess", "namespace pod container pid cmdline")


# --------------------------------------------------------------------------
# $(VAR) expansion and mount paths


def expand(text, *contexts):
    """Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion):
    $(NAME) becomes its value from the first context that defines it and stays
    as written otherwise; $$ is a literal $; any other $ is kept."""

    def lookup(name):
        for ctx in contexts:
            if name in ctx:
                return ctx[name]
        return f"$({name})"

    out = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            if nxt == "$":                   # escaped operator
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close >= 0:               # a reference
                    out.append(lookup(text[cursor + 2:close]))
                    advance = close - cursor
                else:                        # an unclosed reference stays
                    out.append("$(")
                    advance = 1
            else:                            # a lone $ stays, with what follows
                out.append("$" + nxt)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def rewrite_mounts(text, mounts):
    """Replaces each mount path, where it starts a path in text, by its host
    directory. mounts: [(mountPath, host_dir)]; the longest path wins."""
    for mount_path, host_dir in sorted(mounts, key=lambda m: -len(m[0])):
        mp = mount_path.rstrip("/")
        if not mp:
            continue  # "/" cannot be rewritten
        pattern = r"(?<![\w./-])" + re.escape(mp) + r"(?![\w.-])"
        text = re.sub(pattern, lambda _m, d=str(host_dir): d, text)
    return text


# --------------------------------------------------------------------------
# One container of a pod


class ConfigError(Exception):
    """A container that cannot be started as specified: it waits with `reason`."""

    def __init__(self, reason, message, retry=True):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry = retry


class Run:
    """One start of a container: its process and its log."""

    def __init__(self, index, log_path):
        self.index = index
        self.log_path = log_path
        self.proc = None
        self.pid = None
        self.started_at = None      # wall clock
        self.started_mono = None
        self.finished_at = None
        self.exit_code = None


class Probe:
    """One of a container's probes (startup, readiness, liveness)."""

    def __init__(self, kind, spec, node):
        self.kind = kind
        self.spec = spec
        self.timeout = float(spec.get("timeoutSeconds") or 1)
        self.success_threshold = int(spec.get("successThreshold") or 1)
        self.period = node.probe_period  # every probe is tried this often
        delay = float(spec.get("initialDelaySeconds") or 0)
        failures = int(spec.get("failureThreshold") or 3)
        if kind == "readiness":
            # Only readiness waits on it: quick, as the tests want.
            self.delay = min(delay, node.max_initial_delay)
            self.failure_threshold = failures
        else:
            # Liveness and startup probes restart the container: it keeps
            # the time Kubernetes gives it (initialDelaySeconds, then
            # failureThreshold x periodSeconds), tried more often.
            period = float(spec.get("periodSeconds") or 10)
            self.delay = delay
            self.failure_threshold = max(failures, math.ceil(failures * period / self.period))
        self.reset(None)

    def reset(self, started_mono):
        self.successes = 0
        self.failures = 0
        self.result = None  # None: not yet known
        self.next_at = None if started_mono is None else started_mono + self.delay

    def due(self, now):
        return self.next_at is not None and now >= self.next_at

    def record(self, ok, now):
        self.next_at = now + self.period
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.success_threshold:
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.failure_threshold:
                self.result = False


class Container:
    """A container's spec and what the node knows of it."""

    def __init__(self, spec, kind, node):
        self.spec = spec
        self.name = spec["name"]
        self.image = spec.get("image", "")
        self.kind = kind  # "init", "sidecar" (an init container with restartPolicy Always), "main"
        self.runs = []
        self.state = "waiting"
        self.waiting = ("ContainerCreating", "")
        self.terminated = None       # the current state's terminated dict
        self.last_terminated = None  # lastState.terminated
        self.next_start = None       # monotonic; None = now
        self.permanent_error = False
        self.crashes = 0             # consecutive, for the backoff
        self.started = False
        self.ready = False
        self.probes = {k: Probe(k, spec[f"{k}Probe"], node)
                       for k in ("startup", "readiness", "liveness") if spec.get(f"{k}Probe")}

    @property
    def run(self):
        return self.runs[-1] if self.runs else None

    @property
    def restart_count(self):
        return max(0, len(self.runs) - 1)

    @property
    def container_id(self):
        r = self.run
        return f"osprey-node://{r.pid}" if r and r.pid else ""

    def status(self):
        st = {"name": self.name, "image": self.image, "imageID": "",
              "ready": self.ready, "started": self.started, "restartCount": self.restart_count}
        if self.container_id:
            st["containerID"] = self.container_id
        if self.state == "running":
            st["state"] = {"running": {"startedAt": rfc3339(self.run.started_at)}}
        elif self.state == "terminated":
            st["state"] = {"terminated": self.terminated}
        else:
            reason, message = self.waiting
            st["state"] = {"waiting": dict(reason=reason, **({"message": message} if message else {}))}
        st["lastState"] = {"terminated": self.last_terminated} if self.last_terminated else {}
        return st


def tail_of(path):
    """The last lines of a run's output."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    lines = data.decode(errors="replace").splitlines()[-TAIL_LINES:]
    return "\n".join(lines)


# A container is a process group: its main process leads it (start_new_session),
# its children join it. Signals go to the group only while the leader is not
# yet reaped: until then no other process can have the group's id.


def exit_status(proc, block=False):
    """The exit status of a container's main process once it has ended, else
    None. Before reaping the leader it kills what is left of its group, as
    a container's processes end with its main process."""
    if proc.returncode is not None:
        return proc.returncode
    flags = os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG)
    try:
        if os.waitid(os.P_PID, proc.pid, flags) is None:
            return None  # still running
    except ChildProcessError:
        pass  # reaped already (not by us): Popen knows its status
    signal_group(proc, signal.SIGKILL)
    return proc.wait()


def signal_group(proc, sig):
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------
# One pod


class PodWorker(threading.Thread):
    """Runs one pod (one uid) from its first sight to its deletion."""

    def __init__(self, node, pod, ip):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.node = node
        self.api = node.api
        self.namespace = meta["namespace"]
        self.pod_name = meta["name"]
        self.uid = meta["uid"]
        self.ip = ip
        self.pod = pod
        self.removed = False        # the pod object is gone from the API
        self.done = False
        self.seen_at = time.time()
        self.seen_mono = time.monotonic()
        self.dir = node.workdir / "pods" / f"{self.namespace}_{self.pod_name}_{self.uid[:8]}"
        self.path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}"
        self._wake = threading.Event()

        spec = pod["spec"]
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.inits = [Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init", node)
                      for c in spec.get("initContainers") or []]
        self.mains = [Container(c, "main", node) for c in spec.get("containers") or []]
        for c in self.inits + self.mains:  # the kubelet's default waiting reason
            c.waiting = ("PodInitializing" if self.inits else "ContainerCreating", "")
        self.init_index = 0
        self.initialized = False
        self.failed = False           # restartPolicy Never and an init container failed
        self.terminating = False
        self.volumes = None           # name -> host directory, once prepared
        self.volume_retry_at = 0.0
        self.transitions = {}         # condition type -> (status, time)
        self.last_status = None
        self.status_retry_at = 0.0

    # -- called from the node's watch thread --------------------------------

    def update(self, pod):
        self.pod = pod
        self._wake.set()

    def gone(self):
        self.removed = True
        self._wake.set()

    # -- the loop -------------------------------------------------------------

    def log(self, msg):
        self.node.log(f"{self.namespace}/{self.pod_name}: {msg}")

    def run(self):
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.log(f"started (uid {self.uid}, ip {self.ip})")
            while True:
                if self.node.stopping.is_set() or self.removed:
                    self.kill_all(1.0)
                    return
                if self.pod["metadata"].get("deletionTimestamp"):
                    self.terminate()
                    return
                try:
                    self.step(time.monotonic())
                except Exception:
                    self.log("step failed:\n" + traceback.format_exc())
                self.sync_status()
                self._wake.wait(TICK_S)
                self._wake.clear()
        except Exception:
            self.log("worker failed:\n" + traceback.format_exc())
            self.kill_all(0)
        finally:
            self.done = True
            if self.volumes:
                shutil.rmtree(self.dir / "volumes", ignore_errors=True)
            self.node.release_ip(self.ip)
            self.log("worker done")

    def step(self, now):
        if self.failed or self.phase() in ("Succeeded", "Failed"):
            return
        if self.volumes is None:
            if now < self.volume_retry_at:
                return
            try:
                self.volumes = self.prepare_volumes()
            except ConfigError as e:
                self.volume_retry_at = now + CONFIG_RETRY_S
                for c in self.inits + self.mains:
                    c.waiting = ("ContainerCreating", e.message)
                return

        # Init containers, in order; a sidecar counts as done once started.
        while self.init_index < len(self.inits):
            c = self.inits[self.init_index]
            self.advance(c, now)
            if c.kind == "sidecar" and c.state == "running":
                self.probe(c, now)
                if not c.started:
                    break
            elif not (c.state == "terminated" and c.terminated["exitCode"] == 0):
                break
            self.init_index += 1
        if self.init_index >= len(self.inits) and not self.initialized:
            self.initialized = True
            self.log("initialized")

        for c in self.inits[:self.init_index]:
            if c.kind == "sidecar":
                self.advance(c, now)
                self.probe(c, now)
        if self.initialized:
            for c in self.mains:
                self.advance(c, now)
                self.probe(c, now)

    # -- container lifecycle ---------------------------------------------------

    def policy(self, c):
        if c.kind == "sidecar":
            return "Always"
        if c.kind == "init":
            return "Never" if self.restart_policy == "Never" else "OnFailure"
        return self.restart_policy

    def advance(self, c, now):
        """Starts, watches and restarts one container."""
        if c.state == "running":
            code = exit_status(c.run.proc)
            if code is None:
                return
            self.exited(c, code, now)
        if c.state == "terminated" or c.permanent_error:
            return
        if c.next_start is not None and now < c.next_start:
            return
        self.start_container(c, now)

    def exited(self, c, code, now):
        run = c.run
        run.finished_at = time.time()
        run.exit_code = 128 - code if code < 0 else code  # killed by a signal: 128 + its number
        ran_for = now - run.started_mono
        self.log(f"container {c.name} (pid {run.pid}) exited {run.exit_code} after {ran_for:.1f}s")
        term = {"exitCode": run.exit_code, "reason": "Completed" if run.exit_code == 0 else "Error",
                "startedAt": rfc3339(run.started_at), "finishedAt": rfc3339(run.finished_at),
                "containerID": c.container_id}
        msg = tail_of(run.log_path)
        if msg:
            term["message"] = msg
        self.finished(c, term, now, ran_for)

    def finished(self, c, term, now, ran_for=0.0):
        """A run ended (or could not start): terminated, or waiting to restart."""
        c.started = False
        c.ready = False
        for p in c.probes.values():
            p.reset(None)
        policy = self.policy(c)
        restart = policy == "Always" or (policy == "OnFailure" and term["exitCode"] != 0)
        if self.terminating or not restart:
            c.state = "terminated"
            c.terminated = term
            if c.kind == "init" and term["exitCode"] != 0 and not self.terminating:
                self.failed = True  # restartPolicy Never: the pod fails
            return
        c.crashes = 1 if ran_for >= BACKOFF_RESET_S else c.crashes + 1
        delay = min(self.node.backoff_max, self.node.backoff_initial * 2 ** (c.crashes - 1))
        c.next_start = now + delay
        c.state = "waiting"
        c.last_terminated = term
        c.waiting = ("CrashLoopBackOff",
                     f"back-off {delay:g}s restarting failed container={c.name} "
                     f"pod={self.pod_name}_{self.namespace}({self.uid})")

    def start_container(self, c, now):
        index = len(c.runs)
        log_path = self.dir / "logs" / c.name / f"{index}.log"
        try:
            argv, env, cwd = self.command(c)
        except ConfigError as e:
            c.waiting = (e.reason, e.message)
            c.permanent_error = not e.retry
            c.next_start = now + CONFIG_RETRY_S
            return
        log_path.parent.mkdir(parents=True, exist_ok=True)
        run = Run(index, log_path)
        run.started_at = time.time()
        run.started_mono = now
        c.runs.append(run)
        with open(log_path, "ab") as out:
            try:
                run.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # its own process group
            except OSError as e:
                out.write(f"osprey test node: cannot start {argv[0]}: {e}\n".encode())
                run.finished_at = time.time()
                run.exit_code = 128
                self.log(f"container {c.name} cannot start: {e}")
                self.finished(c, {"exitCode": 128, "reason": "StartError",
                                  "message": f"exec: {argv[0]!r}: {e.strerror or e}",
                                  "startedAt": rfc3339(run.started_at),
                                  "finishedAt": rfc3339(run.finished_at)}, now)
                return
        run.pid = run.proc.pid
        self.node.track(run.proc, self, c.name)
        c.state = "running"
        c.terminated = None
        c.started = "startup" not in c.probes
        for p in c.probes.values():
            p.reset(now)
        self.log(f"container {c.name} started (pid {run.pid}): {' '.join(argv)}")

    def kill_all(self, grace):
        """SIGTERM every running container's process group, SIGKILL after grace."""
        running = [c for c in self.inits + self.mains if c.state == "running"]
        for c in running:
            signal_group(c.run.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(exit_status(c.run.proc) is None for c in running):
            time.sleep(0.05)
        for c in running:
            signal_group(c.run.proc, signal.SIGKILL)
            self.exited(c, exit_status(c.run.proc, block=True), time.monotonic())

    def terminate(self):
        """The pod has a deletionTimestamp: stop it, report, delete it for good."""
        meta = self.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        grace = min(float(grace), self.node.grace_cap)
        self.log(f"terminating (grace {grace:g}s)")
        self.terminating = True
        self.kill_all(grace)
        for c in self.inits + self.mains:
            if c.state == "waiting":  # never ran, or between restarts
                c.state = "terminated"
                c.terminated = c.last_terminated or {
                    "exitCode": 0, "reason": "ContainerStatusUnknown",
                    "message": "the pod was deleted before the container ran"}
        self.sync_status(final=True)
        try:
            self.api.delete(self.path, body={"gracePeriodSeconds": 0,
                                             "preconditions": {"uid": self.uid}}, missing_ok=True)
        except ApiError as e:
            if e.status != 409:  # 409: a new pod of the same name; ours is gone
                self.log(f"final delete failed: {e}")
        self.log("deleted")

    # -- what a container runs -------------------------------------------------

    def field_ref(self, path):
        pod = self.pod
        meta = pod["metadata"]
        simple = {
            "metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"], "spec.nodeName": pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
            "status.podIP": self.ip, "status.podIPs": self.ip,
            "status.hostIP": HOST_IP, "status.hostIPs": HOST_IP,
        }
        if path in simple:
            return simple[path]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
        if m:
            return (meta.get(m.group(1)) or {}).get(m.group(2), "")
        raise ConfigError("CreateContainerConfigError",
                          f"fieldRef {path} is not supported by the osprey test node")

    def object_key(self, kind, ref, key, optional):
        """A key of a ConfigMap or Secret (decoded); None when optional and missing."""
        plural = "configmaps" if kind == "ConfigMap" else "secrets"
        obj = self.api.get_or_none(f"/api/v1/namespaces/{self.namespace}/{plural}/{ref}")
        if obj is None:
            if optional:
                return None
            raise ConfigError("CreateContainerConfigError", f'{kind.lower()} "{ref}" not found')
        data = self.object_data(kind, obj)
        if key is None:
            return data
        if key not in data:
            if optional:
                return None
            raise ConfigError("CreateContainerConfigError",
                              f'couldn\'t find key {key} in {kind} {self.namespace}/{ref}')
        return data[key]

    @staticmethod
    def object_data(kind, obj):
        if kind == "Secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    def service_env(self):
        h, p = self.node.kube.host, str(self.node.kube.port)
        return {"KUBERNETES_SERVICE_HOST": h, "KUBERNETES_SERVICE_PORT": p,
                "KUBERNETES_SERVICE_PORT_HTTPS": p, "KUBERNETES_PORT": f"tcp://{h}:{p}"}

    def spec_env(self, c):
        """The container's envFrom and env, expanded as the kubelet does."""
        service = self.service_env()
        env = {}
        for src in c.spec.get("envFrom") or []:
            prefix = src.get("prefix", "")
            for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if field in src:
                    ref = src[field]
                    data = self.object_key(kind, ref["name"], None, ref.get("optional", False))
                    for k, v in (data or {}).items():
                        env[prefix + k] = v.decode(errors="replace")
        for var in c.spec.get("env") or []:
            name = var["name"]
            if "valueFrom" not in var:
                env[name] = expand(var.get("value", ""), env, service)
                continue
            vf = var["valueFrom"]
            if "fieldRef" in vf:
                env[name] = self.field_ref(vf["fieldRef"]["fieldPath"])
            elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
                kind, ref = (("ConfigMap", vf["configMapKeyRef"]) if "configMapKeyRef" in vf
                             else ("Secret", vf["secretKeyRef"]))
                value = self.object_key(kind, ref["name"], ref["key"], ref.get("optional", False))
                if value is not None:
                    env[name] = value.decode(errors="replace")
            else:
                raise ConfigError("CreateContainerConfigError",
                                  f"env {name}: only value, fieldRef, configMapKeyRef and "
                                  f"secretKeyRef are supported by the osprey test node")
        return env, service

    def mounts(self, c):
        out = []
        for m in c.spec.get("volumeMounts") or []:
            d = self.volumes.get(m["name"])
            if d is None:
                raise ConfigError("CreateContainerConfigError",
                                  f"volumeMount {m['mountPath']}: no volume {m['name']!r}")
            if m.get("subPath"):
                d = d / m["subPath"]
                d.mkdir(parents=True, exist_ok=True)
            out.append((m["mountPath"], d))
        return out

    def command(self, c):
        """argv, environment and working directory of a container's process."""
        spec = c.spec
        if not spec.get("command"):
            raise ConfigError(
                "CreateContainerError",
                f"container {c.name} (image {c.image}) has no command: the osprey test node "
                f"(tests/kube/kubelet.py) runs a container's command as a local process and "
                f"cannot run an image's entrypoint; give the container a command", retry=False)
        env, service = self.spec_env(c)
        full = dict(service, **env)
        argv = [expand(a, full) for a in list(spec["command"]) + list(spec.get("args") or [])]
        mounts = self.mounts(c)
        argv = [rewrite_mounts(a, mounts) for a in argv]
        env = {k: rewrite_mounts(v, mounts) for k, v in env.items()}

        base = {k: os.environ[k] for k in ("HOME", "LANG", "LC_ALL", "TZ") if k in os.environ}
        base["PATH"] = os.pathsep.join([*map(str, self.node.path), os.environ.get("PATH", "")])
        base["HOSTNAME"] = self.pod_name
        # A real pod's process may bind 0.0.0.0 in its own network namespace;
        # here every pod shares the node's, so a process that cannot be told
        # its address through the API (status.podIP) binds this one.
        base["OSPREY_TEST_POD_IP"] = self.ip
        tmp = [d for mp, d in mounts if mp.rstrip("/") == "/tmp"]
        if tmp:
            base["TMPDIR"] = str(tmp[0])
        proc_env = {**base, **self.node.base_env, **service, **env}

        # A bare name is looked up on the process's PATH; not found, Popen
        # raises and the container ends with StartError, as a runtime's would.
        found = shutil.which(argv[0], path=proc_env.get("PATH", "")) if "/" not in argv[0] else None
        if found:
            argv[0] = found

        # The working directory: workingDir when it lies in a volume (or exists
        # here), else the first mounted volume, else the pod's own directory.
        wd = spec.get("workingDir")
        if wd and rewrite_mounts(wd, mounts) != wd:
            cwd = Path(rewrite_mounts(wd, mounts))
            cwd.mkdir(parents=True, exist_ok=True)
        elif wd and Path(wd).is_dir():
            cwd = Path(wd)
        elif mounts:
            cwd = mounts[0][1]
        else:
            cwd = self.dir
        return argv, proc_env, str(cwd)

    def prepare_volumes(self):
        vols = {}
        for v in self.pod["spec"].get("volumes") or []:
            name = v["name"]
            d = self.dir / "volumes" / name
            if "emptyDir" in v:
                d.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in v:
                d = Path(v["hostPath"]["path"])
                if v["hostPath"].get("type") in ("DirectoryOrCreate",):
                    d.mkdir(parents=True, exist_ok=True)
            elif "configMap" in v or "secret" in v:
                kind, src = (("ConfigMap", v["configMap"]) if "configMap" in v
                             else ("Secret", v["secret"]))
                ref = src.get("name") or src.get("secretName")
                data = self.object_key(kind, ref, None, src.get("optional", False)) or {}
                d.mkdir(parents=True, exist_ok=True)
                items = src.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] not in data:
                        raise ConfigError("ContainerCreating",
                                          f"volume {name}: no key {item['key']} in {kind} {ref}")
                    f = d / item["path"]
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(data[item["key"]])
            else:
                kinds = [k for k in v if k != "name"]
                raise ConfigError("ContainerCreating",
                                  f"volume {name}: {', '.join(kinds)} volumes are not supported by "
                                  "the osprey test node (emptyDir, configMap, secret, hostPath are)",
                                  retry=False)
            vols[name] = d
        return vols

    # -- probes ----------------------------------------------------------------

    def probe(self, c, now):
        """Runs the container's due probes and applies their results."""
        if c.state != "running":
            return
        order = ["startup"] if not c.started else ["readiness", "liveness"]
        for kind in order:
            p = c.probes.get(kind)
            if p is None or not p.due(now):
                continue
            ok = self.check(c, p.spec)
            p.record(ok, time.monotonic())
            if kind == "startup" and p.result:
                c.started = True
                for q in c.probes.values():
                    if q is not p:
                        q.reset(now)
            elif kind == "startup" and p.result is False or kind == "liveness" and p.result is False:
                self.log(f"container {c.name}: {kind} probe failed {p.failures} times; restarting it")
                signal_group(c.run.proc, signal.SIGTERM)
                deadline = time.monotonic() + self.node.grace_cap
                while time.monotonic() < deadline and exit_status(c.run.proc) is None:
                    time.sleep(0.05)
                signal_group(c.run.proc, signal.SIGKILL)
                self.exited(c, exit_status(c.run.proc, block=True), time.monotonic())
                return
        if c.started and "readiness" not in c.probes:
            c.ready = True
        elif "readiness" in c.probes:
            p = c.probes["readiness"]
            if p.result is not None:
                c.ready = bool(p.result) and c.started

    def port_of(self, c, port):
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"container {c.name} has no port named {port}")

    def check(self, c, spec):
        """One probe attempt: True when it succeeds."""
        timeout = float(spec.get("timeoutSeconds") or 1)
        try:
            if "httpGet" in spec:
                h = spec["httpGet"]
                host = h.get("host") or self.ip
                port = self.port_of(c, h["port"])
                if h.get("scheme", "HTTP").upper() == "HTTPS":
                    conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                       context=ssl._create_unverified_context())
                else:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                try:
                    headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
                    headers.setdefault("User-Agent", "kube-probe/osprey-test-node")
                    conn.request("GET", h.get("path") or "/", headers=headers)
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            if "tcpSocket" in spec or "grpc" in spec:
                t = spec.get("tcpSocket") or spec["grpc"]
                host = t.get("host") or self.ip
                with socket.create_connection((host, self.port_of(c, t["port"])), timeout=timeout):
                    return True
            if "exec" in spec:
                _, env, cwd = self.command(c)
                cmd = [rewrite_mounts(a, self.mounts(c)) for a in spec["exec"].get("command") or []]
                return subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      timeout=timeout).returncode == 0
        except (OSError, ValueError, http.client.HTTPException, subprocess.TimeoutExpired,
                ConfigError):
            return False
        return False

    # -- status ----------------------------------------------------------------

    def phase(self):
        """The pod phase, as the kubelet's getPhase reckons it."""
        if self.failed:
            return "Failed"
        if not self.initialized:
            return "Pending"
        waiting = running = restarting = failed = 0
        for c in self.mains:
            if c.state == "running":
                running += 1
            elif c.state == "terminated":
                failed += c.terminated.get("exitCode", 0) != 0
            elif c.last_terminated:
                restarting += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running or restarting:
            return "Running"
        if self.terminating:
            return "Failed" if failed else "Succeeded"
        if self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and failed):
            return "Running"
        return "Failed" if failed else "Succeeded"

    def condition(self, ctype, ok, reason="", message=""):
        status = "True" if ok else "False"
        prev = self.transitions.get(ctype)
        if prev is None or prev[0] != status:
            self.transitions[ctype] = (status, rfc3339())
        cond = {"type": ctype, "status": status, "lastProbeTime": None,
                "lastTransitionTime": self.transitions[ctype][1]}
        if not ok and reason:
            cond["reason"] = reason
            if message:
                cond["message"] = message
        return cond

    def status(self):
        phase = self.phase()
        terminal = phase in ("Succeeded", "Failed")
        incomplete = [c.name for c in self.inits[self.init_index:]] if not self.initialized else []
        sidecars = [c for c in self.inits if c.kind == "sidecar"]
        unready = [c.name for c in sidecars + self.mains if not c.ready]
        containers_ready = not unready and not self.terminating
        gates = [g["conditionType"] for g in self.pod["spec"].get("readinessGates") or []]
        existing = {c["type"]: c for c in (self.pod.get("status") or {}).get("conditions") or []}
        gates_ok = all(existing.get(g, {}).get("status") == "True" for g in gates)

        scheduled = existing.get("PodScheduled") or {
            "type": "PodScheduled", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": rfc3339(self.seen_at)}
        if terminal:
            ready_reason = "PodCompleted"
        elif not containers_ready:
            ready_reason = "ContainersNotReady"
        else:
            ready_reason = "ReadinessGatesNotReady"
        conds = [
            scheduled,
            self.condition("Initialized", self.initialized, "ContainersNotInitialized",
                           f"containers with incomplete status: [{' '.join(incomplete)}]"),
            self.condition("ContainersReady", containers_ready and not terminal,
                           "PodCompleted" if terminal else "ContainersNotReady",
                           f"containers with unready status: [{' '.join(unready)}]"),
            self.condition("Ready", containers_ready and gates_ok and not terminal, ready_reason,
                           f"containers with unready status: [{' '.join(unready)}]"
                           if ready_reason == "ContainersNotReady" else ""),
        ]
        ours = {c["type"] for c in conds}
        conds += [c for t, c in existing.items() if t not in ours]  # other writers' conditions

        st = {
            "phase": phase,
            "conditions": conds,
            "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}],
            "podIP": self.ip, "podIPs": [{"ip": self.ip}],
            "startTime": rfc3339(self.seen_at),
            "containerStatuses": [c.status() for c in self.mains],
        }
        if self.inits:
            st["initContainerStatuses"] = [c.status() for c in self.inits]
        return st

    def sync_status(self, final=False):
        """Writes the status when it changed (merge patch of pods/{name}/status)."""
        if not final and time.monotonic() < self.status_retry_at:
            return
        st = self.status()
        if st == self.last_status:
            return
        try:
            self.api.patch(self.path + "/status", {"status": st})
        except ApiError as e:
            if e.status == 404:
                self.removed = True
            else:
                self.log(f"status write failed: {e}")
                self.status_retry_at = time.monotonic() + STATUS_RETRY_S
            return
        except OSError as e:  # the API server is away (stopping, restarting)
            self.log(f"status write failed: {e}")
            self.status_retry_at = time.monotonic() + STATUS_RETRY_S
            return
        self.last_status = st  # the watch brings the pod back with it

    # -- for tests -------------------------------------------------------------

    def container(self, name):
        for c in self.inits + self.mains:
            if c.name == name:
                return c
        raise KeyError(f"{self.namespace}/{self.pod_name} has no container {name}")

    def report(self, lines=15):
        out = [f"pod {self.namespace}/{self.pod_name} uid {self.uid} ip {self.ip} "
               f"phase {self.phase()}{' (done)' if self.done else ''}"]
        for c in self.inits + self.mains:
            state = c.state if c.state != "waiting" else f"waiting {c.waiting[0]}: {c.waiting[1]}"
            out.append(f"  {c.kind} {c.name}: {state}, restarts {c.restart_count}, ready {c.ready}")
            if c.run:
                text = c.run.log_path.read_text(errors="replace") if c.run.log_path.exists() else ""
                for line in text.splitlines()[-lines:]:
                    out.append(f"    | {line}")
        return "\n".join(out)


# --------------------------------------------------------------------------
# The node


class KubeNode:
    """Plays the node `name` for the control plane `kube` (a KubeEnv).

    node = KubeNode(kube, "osprey-node-0", path=[osprey_dir]).start()
    ... node.pod_ip(ns, pod), node.logs(ns, pod, container), node.processes() ...
    node.stop()

    path: directories searched for a container's command before the test's
    PATH (also `prepend_path`); base_env: extra environment for every
    process; probe_period, max_initial_delay, backoff_initial, backoff_max,
    grace_cap: the timings described above; heartbeat_period (Lease) and
    status_period (Node status); capacity: the Node's capacity and
    allocatable; addresses: "auto", "alias" or "loopback" (default
    $OSPREY_KUBE_POD_ADDRESSES, else auto).
    """

    def __init__(self, kube, name=NODE_NAME, workdir=None, *, path=(), base_env=None,
                 probe_period=0.5, max_initial_delay=2.0, heartbeat_period=2.0,
                 status_period=10.0, backoff_initial=1.0, backoff_max=10.0, grace_cap=5.0,
                 capacity=None, addresses=None):
        self.kube = kube
        self.api = kube.api
        self.name = name
        self.workdir = Path(workdir or Path(kube.dir) / "nodes" / name)
        self.log_path = self.workdir / "node.log"   # what the node did, for failure reports
        self.path = list(path)          # searched for a command before the test's PATH
        self.base_env = dict(base_env or {})
        self.probe_period = probe_period
        self.max_initial_delay = max_initial_delay
        self.heartbeat_period = heartbeat_period
        self.status_period = status_period
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.grace_cap = grace_cap
        self.capacity = dict(capacity or {"cpu": "16", "memory": "64Gi", "pods": "110",
                                          "ephemeral-storage": "100Gi"})
        self.stopping = threading.Event()
        self.workers = {}               # uid -> PodWorker
        self.by_name = {}               # (namespace, name) -> the latest PodWorker
        self.groups = {}                # process group id -> (namespace, pod, container, Popen)
        self._lock = threading.Lock()
        self._threads = []
        # "auto" (alias where possible, else loopback), "alias" or "loopback"
        self.addresses = addresses or os.environ.get("OSPREY_KUBE_POD_ADDRESSES") or "auto"
        self.address_mode = None        # what start() settled on: "alias" or "loopback"
        self._ip_base = random.randrange(16, 240)  # concurrent test runs rarely share addresses
        self._ip_count = 0
        self._ip_lock = threading.Lock()
        self._aliases = set()           # addresses this node added to lo
        self._watch_resp = None
        self.uid = None
        self.started_at = None

    # -- lifecycle -------------------------------------------------------------

    def start(self):
        """Registers the node and starts playing it; returns self once the
        node is Ready and untainted. A stopped KubeNode does not start again:
        make a new one (of the same name, it takes over the Node and its pods)."""
        if self.stopping.is_set():
            raise RuntimeError(f"node {self.name} was stopped; make a new KubeNode")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        self.address_mode = self.choose_address_mode()
        self.register()
        self.renew_lease()
        for target, label in ((self._heartbeat_loop, "heartbeat"), (self._watch_loop, "watch")):
            t = threading.Thread(target=target, name=f"{self.name}-{label}", daemon=True)
            t.start()
            self._threads.append(t)
        wait_until(self.schedulable, NODE_READY_TIMEOUT_S,
                   f"node {self.name} to be Ready without not-ready taints")
        self.log("node ready")
        return self

    def stop(self):
        """Kills every pod's processes and stops playing the node (the Node
        object stays; it goes NotReady once its lease expires)."""
        self.stopping.set()
        for w in list(self.workers.values()):
            w._wake.set()
        for w in list(self.workers.values()):
            w.join(timeout=10)
        self._abort_watch()
        for t in self._threads:
            t.join(timeout=2)
        for w in list(self.workers.values()):  # a worker that did not finish in time
            for c in w.inits + w.mains:
                for r in c.runs:
                    if r.proc is not None:
                        signal_group(r.proc, signal.SIGKILL)
                        exit_status(r.proc, block=True)
        for ip in list(self._aliases):
            self.release_ip(ip)
        self.log("node stopped")

    def _abort_watch(self):
        """Ends the watch stream at once (its thread is blocked reading it)."""
        resp = self._watch_resp
        try:
            conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
            conn.sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # already closed, or nothing to close
            pass

    # -- pod addresses -------------------------------------------------------------

    def _ip(self, *args):
        return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)

    def choose_address_mode(self):
        if self.addresses not in ("auto", "alias", "loopback"):
            raise ValueError(f"addresses={self.addresses!r}: use auto, alias or loopback")
        if self.addresses == "loopback":
            return "loopback"
        probe = f"{POD_NET}.{self._ip_base}.255"
        try:
            added = self._ip("addr", "add", f"{probe}/32", "dev", "lo", "label", ALIAS_LABEL)
            why = added.stderr.strip()
            if added.returncode == 0:
                self._ip("addr", "del", f"{probe}/32", "dev", "lo")
                return "alias"
        except OSError as e:  # no `ip`
            why = str(e)
        if self.addresses == "alias":
            raise RuntimeError(f"cannot add pod addresses to lo: {why}")
        self.log(f"pod addresses: loopback (cannot add {probe}/32 to lo: {why}); "
                 f"Services get no endpoints")
        return "loopback"

    def allocate_ip(self):
        """The next pod address: on lo already (loopback mode) or added to it."""
        while True:
            with self._ip_lock:
                n = self._ip_count
                self._ip_count += 1
            x, y = self._ip_base + n // 254, 1 + n % 254
            if self.address_mode == "loopback":
                return f"127.0.{x}.{y}"
            ip = f"{POD_NET}.{x % 256}.{y}"
            added = self._ip("addr", "add", f"{ip}/32", "dev", "lo", "label", ALIAS_LABEL)
            if added.returncode == 0:
                with self._ip_lock:
                    self._aliases.add(ip)
                return ip
            if "exists" not in added.stderr:
                raise RuntimeError(f"cannot add {ip}/32 to lo: {added.stderr.strip()}")
            # another test run's address (or one left behind): take the next

    def release_ip(self, ip):
        with self._ip_lock:
            if ip not in self._aliases:
                return
            self._aliases.discard(ip)
        self._ip("addr", "del", f"{ip}/32", "dev", "lo")

    def schedulable(self):
        node = self.api.get_or_none(f"/api/v1/nodes/{self.name}")
        if not node:
            return False
        conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        taints = [t["key"] for t in node.get("spec", {}).get("taints") or []
                  if t["key"].startswith("node.kubernetes.io/")]
        return conds.get("Ready") == "True" and not taints

    def log(self, msg):
        line = f"{time.strftime('%H:%M:%S')}.{int(time.time() % 1 * 1000):03d} {msg}\n"
        with self._lock:
            with open(self.log_path, "a") as f:
                f.write(line)

    # -- the Node object and its heartbeats --------------------------------------

    def node_status(self):
        now = rfc3339()
        version = getattr(self, "_kube_version", None)
        if version is None:
            try:
                version = self.api.get("/version").get("gitVersion", "")
            except (ApiError, OSError):
                version = ""
            self._kube_version = version

        def cond(ctype, status, reason, message):
            return {"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": self._transitions.setdefault(ctype, now)}

        if not hasattr(self, "_transitions"):
            self._transitions = {}
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                     "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure",
                     "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID",
                     "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady",
                     "the osprey test node (tests/kube/kubelet.py) is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": HOST_IP},
                          {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {"architecture": arch, "operatingSystem": "linux",
                         "kubeletVersion": version, "kubeProxyVersion": "",
                         "containerRuntimeVersion": "osprey-test-node://1",
                         "kernelVersion": platform.release(), "osImage": "osprey test node",
                         "machineID": "", "systemUUID": "", "bootID": ""},
        }

    def register(self):
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": arch}
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": labels},
                "status": self.node_status()}
        try:
            node = self.api.post("/api/v1/nodes", body)
        except ApiError as e:
            if e.status != 409:
                raise
            # left by an earlier node of this name: take it over
            node = self.api.patch(f"/api/v1/nodes/{self.name}",
                                  {"metadata": {"labels": labels}, "spec": {"unschedulable": None}})
        self.uid = node["metadata"]["uid"]
        self.api.patch(f"/api/v1/nodes/{self.name}/status", {"status": self.node_status()})
        self.log(f"registered node {self.name} (uid {self.uid})")

    def renew_lease(self):
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": micro_time()}
        try:
            self.api.patch(path, {"spec": spec})
        except ApiError as e:
            if e.status != 404:
                raise
            self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": "kube-node-lease",
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                  "name": self.name, "uid": self.uid}]},
                "spec": spec})

    def _heartbeat_loop(self):
        next_status = time.monotonic() + self.status_period
        failing = False  # log an outage once, not every beat
        while not self.stopping.wait(self.heartbeat_period):
            try:
                if self.api.get_or_none(f"/api/v1/nodes/{self.name}") is None:
                    self.log("the Node object is gone; registering again")
                    self.register()
                self.renew_lease()
                if time.monotonic() >= next_status:
                    self.api.patch(f"/api/v1/nodes/{self.name}/status",
                                   {"status": self.node_status()})
                    next_status = time.monotonic() + self.status_period
                if failing:
                    self.log("heartbeat back")
                failing = False
            except Exception as e:  # the API server away for a moment: try again
                if not self.stopping.is_set() and not failing:
                    self.log(f"heartbeat failed (logged once until it works again): {e}")
                failing = True

    # -- the pods ----------------------------------------------------------------

    def _watch_loop(self):
        """List, then watch from the list's resourceVersion; list again on 410."""
        selector = {"fieldSelector": f"spec.nodeName={self.name}"}
        rv = None
        failing = False  # log an outage once, not every retry
        while not self.stopping.is_set():
            try:
                if rv is None:
                    pods = self.api.get("/api/v1/pods", params=selector)
                    rv = pods["metadata"]["resourceVersion"]
                    uids = set()
                    for pod in pods["items"]:
                        uids.add(pod["metadata"]["uid"])
                        self.on_pod(pod)
                    for uid, w in list(self.workers.items()):
                        if uid not in uids and not w.done:
                            w.gone()  # deleted while we were not watching
                params = dict(selector, watch="true", resourceVersion=rv,
                              allowWatchBookmarks="true", timeoutSeconds=str(WATCH_STREAM_S))
                with self.api.request("GET", "/api/v1/pods", params=params, stream=True,
                                      timeout=(10, WATCH_STREAM_S + 15)) as resp:
                    self._watch_resp = resp
                    if resp.status_code == 410:
                        rv = None
                        continue
                    if resp.status_code != 200:
                        raise ApiError("WATCH", "/api/v1/pods", resp.status_code, resp.text)
                    if failing:
                        self.log("watch reconnected")
                    failing = False
                    for line in resp.iter_lines():
                        if self.stopping.is_set():
                            return
                        if not line:
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            if obj.get("code") == 410:
                                self.log("watch: resourceVersion expired; listing again")
                                rv = None
                                break
                            raise ApiError("WATCH", "/api/v1/pods", obj.get("code"), obj)
                        rv = obj["metadata"]["resourceVersion"]
                        if event["type"] == "BOOKMARK":
                            continue
                        if event["type"] == "DELETED":
                            w = self.workers.get(obj["metadata"]["uid"])
                            if w:
                                w.gone()
                        else:
                            self.on_pod(obj)
            except Exception as e:
                if self.stopping.is_set():
                    return
                if not failing:
                    self.log(f"watch failed ({e}); reconnecting (logged once until it does)")
                failing = True
                self.stopping.wait(0.5)  # retry pause, not synchronization

    def on_pod(self, pod):
        uid = pod["metadata"]["uid"]
        w = self.workers.get(uid)
        if w is not None:
            w.update(pod)
            return
        if self.stopping.is_set():
            return
        w = PodWorker(self, pod, self.allocate_ip())
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self._lock:
            self.workers[uid] = w
            self.by_name[key] = w
        w.start()

    def track(self, proc, worker, container):
        with self._lock:
            self.groups[proc.pid] = (worker.namespace, worker.pod_name, container, proc)

    # -- for tests ---------------------------------------------------------------

    def prepend_path(self, directory):
        """Puts a directory first where container commands are looked for."""
        self.path.insert(0, str(directory))

    def worker(self, namespace, pod):
        w = self.by_name.get((namespace, pod))
        if w is None:
            raise KeyError(f"node {self.name} has not seen pod {namespace}/{pod}")
        return w

    def pod_ip(self, namespace, pod):
        """The loopback address the node gave the pod (None if it has not seen it)."""
        w = self.by_name.get((namespace, pod))
        return w.ip if w else None

    def logs(self, namespace, pod, container, previous=False):
        """The output (stdout and stderr) of the container's current run, or
        of the run before it with previous=True; "" when there is none."""
        c = self.worker(namespace, pod).container(container)
        runs = c.runs[:-1] if previous else c.runs
        if not runs or not runs[-1].log_path.exists():
            return ""
        return runs[-1].log_path.read_text(errors="replace")

    def processes(self, namespace=None):
        """Every live process the node started (containers and their children),
        as NodeProcess(namespace, pod, container, pid, cmdline), read from /proc."""
        with self._lock:
            groups = dict(self.groups)
        out = []
        seen = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
                fields = stat[stat.rindex(")") + 2:].split()
                state, pgrp = fields[0], int(fields[2])
                if pgrp not in groups:
                    continue
                seen.add(pgrp)
                if state in ("Z", "X"):
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except (OSError, ValueError):
                continue
            ns, pod, container, _ = groups[pgrp]
            if namespace is None or ns == namespace:
                out.append(NodeProcess(ns, pod, container, int(entry), cmdline))
        # A group whose leader is reaped and which has no member left is over;
        # forget it, so its id, once reused by another process, is not taken for ours.
        with self._lock:
            for pgid, (_, _, _, proc) in groups.items():
                if pgid not in seen and proc.returncode is not None:
                    self.groups.pop(pgid, None)
        return out

    def report(self, since=None):
        """What the node knows of the pods it saw since `since` (monotonic), with
        the last lines of each container's output; for failure reports."""
        workers = [w for w in list(self.workers.values())
                   if since is None or not w.done or w.seen_mono >= since]
        return "\n".join(w.report() for w in workers) or "(no pods)"
