"""The Kubernetes test environment itself: the real control plane with the test
node (kubelet.py) standing in for the kubelet.

These prove what the operator tests rely on: the scheduler places pods on the
node, the node runs them as local processes on their own loopback addresses
and reports their status the way a kubelet does, and the controllers
(Deployments, ReplicaSets, EndpointSlices, garbage collection) act on that
status. Containers run Python (the interpreter running the tests, by
absolute path) or /bin/sh.
"""

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import requests

from kubeenv import ApiError, wait_until
from kubelet import expand, rewrite_mounts

PY = sys.executable
DEADLINE_S = 60.0


# --------------------------------------------------------------------------
# helpers


def http_session():
    s = requests.Session()
    s.trust_env = False  # pod addresses are loopback: no proxy
    return s


def web_deployment(name, replicas):
    """python3 -m http.server on $(POD_IP):8080, ready when / answers."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "web",
                        "image": "python:3.11-slim",
                        "command": [PY, "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
                        "env": [{"name": "POD_IP",
                                 "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"},
                                           "periodSeconds": 1},
                    }],
                },
            },
        },
    }


def pods(api, ns, selector=None):
    params = {"labelSelector": selector} if selector else None
    return api.get(f"/api/v1/namespaces/{ns}/pods", params)["items"]


def condition(obj, ctype):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return c["status"]
    return None


def container_status(pod, name, init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in (pod.get("status") or {}).get(key) or []:
        if s["name"] == name:
            return s
    return {}


def create_and_wait_ready(api, ns, dep, replicas):
    api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", dep)
    name = dep["metadata"]["name"]
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
    wait_until(lambda: api.get(path).get("status", {}).get("readyReplicas") == replicas,
               DEADLINE_S, f"deployment {name} to have {replicas} ready replicas")
    return api.get(path)


def status_column(kube, ns, pod):
    """The STATUS kubectl prints for the pod (it derives it from the status we write)."""
    out = kube.kubectl("get", "pod", "-n", ns, pod, "--no-headers").stdout.split()
    return out[2] if len(out) > 2 else ""


# --------------------------------------------------------------------------
# pure functions: no cluster needed


@pytest.mark.parametrize("text,expected", [
    ("$(A)", "a"),
    ("x$(A)y$(B)z", "xaybz"),
    ("$$(A)", "$(A)"),                 # $$ escapes
    ("$$$(A)", "$a"),
    ("$(MISSING)", "$(MISSING)"),      # unknown references stay
    ("$(A", "$(A"),                    # unclosed
    ("$A", "$A"),                      # not a reference
    ("cost: 5$", "cost: 5$"),          # trailing $
    ("$()", "$()"),
    ("$(A)$(A)", "aa"),
])
def test_expand_is_kubernetes_expansion(text, expected):
    assert expand(text, {"A": "a"}, {"B": "b"}) == expected


def test_expand_takes_the_first_context_that_defines_a_name():
    assert expand("$(X)", {"X": "first"}, {"X": "second"}) == "first"


def test_rewrite_mounts_rewrites_whole_path_prefixes():
    mounts = [("/work-dir", "/h/w"), ("/work-dir/sub", "/h/s"), ("/tmp", "/h/t")]
    assert rewrite_mounts("/work-dir", mounts) == "/h/w"
    assert rewrite_mounts("/work-dir/a.txt", mounts) == "/h/w/a.txt"
    assert rewrite_mounts("/work-dir/sub/b", mounts) == "/h/s/b"     # the longest mount wins
    assert rewrite_mounts("--dir=/work-dir/x", mounts) == "--dir=/h/w/x"
    assert rewrite_mounts("echo hi > /work-dir/f; cat /tmp/y", mounts) == "echo hi > /h/w/f; cat /h/t/y"
    assert rewrite_mounts("/work-dirs /tmpx /a/work-dir", mounts) == "/work-dirs /tmpx /a/work-dir"
    assert rewrite_mounts("a:/tmp:b", mounts) == "a:/h/t:b"


# --------------------------------------------------------------------------
# the REST client


def test_api_client_creates_patches_watches_and_deletes(kube, namespace):
    api, ns = kube.api, namespace
    base = f"/api/v1/namespaces/{ns}/configmaps"
    created = api.post(base, {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "cm"}, "data": {"a": "1"}})
    rv = api.get(base)["metadata"]["resourceVersion"]
    api.patch(f"{base}/cm", {"data": {"a": "2"}})
    api.patch(f"{base}/cm", [{"op": "add", "path": "/data/b", "value": "3"}],
              content_type="application/json-patch+json")
    api.delete(f"{base}/cm")
    assert api.get_or_none(f"{base}/cm") is None
    assert api.delete(f"{base}/cm", missing_ok=True) is None
    with pytest.raises(ApiError) as err:
        api.get(f"{base}/cm")
    assert err.value.status == 404 and err.value.reason == "NotFound"

    events = []
    for event in api.watch(base, timeout=DEADLINE_S, resource_version=rv):
        events.append((event["type"], event["object"]["data"]))
        if event["type"] == "DELETED":
            break
    assert events == [("MODIFIED", {"a": "2"}), ("MODIFIED", {"a": "2", "b": "3"}),
                      ("DELETED", {"a": "2", "b": "3"})]
    assert created["metadata"]["uid"]


# --------------------------------------------------------------------------
# the node


def test_node_is_registered_ready_and_renews_its_lease(kube, kube_node):
    api = kube.api
    node = api.get(f"/api/v1/nodes/{kube_node.name}")
    assert condition(node, "Ready") == "True"
    assert node["status"]["capacity"]["cpu"] == "16"
    assert node["status"]["capacity"]["memory"] == "64Gi"
    assert node["status"]["capacity"]["pods"] == "110"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    assert not [t for t in node["spec"].get("taints") or [] if t["key"].startswith("node.kubernetes.io/")]
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{kube_node.name}"
    first = api.get(lease_path)["spec"]["renewTime"]
    wait_until(lambda: api.get(lease_path)["spec"]["renewTime"] != first,
               4 * kube_node.heartbeat_period + 5, "the node lease to be renewed")
    out = kube.kubectl("get", "node", kube_node.name, "--no-headers").stdout
    assert out.split()[1] == "Ready", out


# --------------------------------------------------------------------------
# (a) a Deployment, scheduled, running, ready, reachable, behind a Service


def test_deployment_pods_are_scheduled_run_and_get_ready(kube, kube_node, namespace):
    api, ns = kube.api, namespace
    dep = create_and_wait_ready(api, ns, web_deployment("web", 2), 2)
    assert dep["status"]["availableReplicas"] == 2
    assert kube.kubectl("get", "deploy", "web", "-n", ns,
                        "-o", "jsonpath={.status.readyReplicas}").stdout == "2"

    items = pods(api, ns, "app=web")
    assert len(items) == 2
    ips = set()
    for pod in items:
        name = pod["metadata"]["name"]
        st = pod["status"]
        assert pod["spec"]["nodeName"] == kube_node.name  # placed by kube-scheduler
        assert st["phase"] == "Running"
        for ctype in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            assert condition(pod, ctype) == "True", (ctype, st["conditions"])
        ip = st["podIP"]
        assert ip == kube_node.pod_ip(ns, name) and ip != "127.0.0.1"
        assert ip.startswith("10.244." if kube_node.address_mode == "alias" else "127.0.")
        assert st["podIPs"] == [{"ip": ip}] and st["hostIP"] == "127.0.0.1"
        assert st["startTime"]
        cs = container_status(pod, "web")
        assert cs["ready"] and cs["started"] and cs["restartCount"] == 0
        assert "running" in cs["state"] and cs["image"] == "python:3.11-slim"
        ips.add(ip)
        resp = http_session().get(f"http://{ip}:8080/", timeout=5)
        assert resp.status_code == 200
        assert '"GET / HTTP/1.1" 200' in kube_node.logs(ns, name, "web")
    assert len(ips) == 2


def test_a_service_gets_the_ready_pods_as_endpoints(kube, kube_node, namespace):
    if kube_node.address_mode != "alias":
        pytest.skip("pods have loopback addresses here (no CAP_NET_ADMIN to add pod addresses "
                    "to lo), which the API server refuses in EndpointSlices")
    api, ns = kube.api, namespace
    api.post(f"/api/v1/namespaces/{ns}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    create_and_wait_ready(api, ns, web_deployment("web", 2), 2)
    ips = {p["status"]["podIP"] for p in pods(api, ns, "app=web")}
    assert len(ips) == 2

    def slice_endpoints():
        slices = api.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                         {"labelSelector": "kubernetes.io/service-name=web"})["items"]
        ready = {a for s in slices for e in s.get("endpoints") or []
                 if e.get("conditions", {}).get("ready") for a in e["addresses"]}
        return slices if ready == ips else None

    slices = wait_until(slice_endpoints, DEADLINE_S, f"the EndpointSlice of web to list {sorted(ips)} ready")
    ports = [p for s in slices for p in s.get("ports") or []]
    assert {"name": "http", "port": 8080, "protocol": "TCP"} in ports
    assert all(e.get("nodeName") == kube_node.name for s in slices for e in s["endpoints"])


# --------------------------------------------------------------------------
# (b) init containers in order, an emptyDir shared through the mount rewrite


def test_init_containers_fill_an_empty_dir_the_main_container_serves(kube, kube_node, namespace):
    api, ns = kube.api, namespace
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "files"},
        "spec": {
            "nodeName": kube_node.name,
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [
                {"name": "first", "image": "busybox", "command": ["/bin/sh", "-c"],
                 "args": ["echo one > /work-dir/index.txt"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work-dir"}]},
                # runs only after `first`: appends to the file `first` wrote
                {"name": "second", "image": "busybox", "command": ["/bin/sh", "-c"],
                 "args": ["test -f /work-dir/index.txt && echo two >> /work-dir/index.txt"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work-dir"}]},
            ],
            "containers": [{
                "name": "serve", "image": "python:3.11-slim",
                "command": [PY, "-m", "http.server", "8080", "--bind", "$(POD_IP)",
                            "--directory", "/work-dir"],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "volumeMounts": [{"name": "work", "mountPath": "/work-dir"}],
                "readinessProbe": {"httpGet": {"path": "/index.txt", "port": 8080}},
            }],
        },
    }
    kube.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))
    path = f"/api/v1/namespaces/{ns}/pods/files"
    pod = wait_until(lambda: (lambda p: p if condition(p, "Ready") == "True" else None)(api.get(path)),
                     DEADLINE_S, "pod files to be Ready")
    for name in ("first", "second"):
        term = container_status(pod, name, init=True)["state"]["terminated"]
        assert term["exitCode"] == 0 and term["reason"] == "Completed", term
    assert condition(pod, "Initialized") == "True"
    resp = http_session().get(f"http://{pod['status']['podIP']}:8080/index.txt", timeout=5)
    assert resp.status_code == 200
    assert resp.text == "one\ntwo\n"
    assert status_column(kube, ns, "files") == "Running"


# --------------------------------------------------------------------------
# (c) a crashing container: CrashLoopBackOff, restarts, its output in the status


def test_a_crashing_container_goes_into_crash_loop_backoff(kube, kube_node, namespace):
    api, ns = kube.api, namespace
    api.post(f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crash"},
        "spec": {"containers": [{
            "name": "crash", "image": "busybox", "command": ["/bin/sh", "-c"],
            "args": ["echo about to fail; echo boom >&2; exit 3"]}]}})
    path = f"/api/v1/namespaces/{ns}/pods/crash"

    def crash_looping():
        pod = api.get(path)
        cs = container_status(pod, "crash")
        waiting = cs.get("state", {}).get("waiting", {})
        if cs.get("restartCount", 0) >= 2 and waiting.get("reason") == "CrashLoopBackOff":
            return pod
        return None

    pod = wait_until(crash_looping, DEADLINE_S, "pod crash to restart twice and back off")
    cs = container_status(pod, "crash")
    last = cs["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error"
    assert last["message"] == "about to fail\nboom"
    assert "back-off" in cs["state"]["waiting"]["message"]
    assert pod["status"]["phase"] == "Running"  # as the kubelet reports a restarting pod
    assert condition(pod, "Ready") == "False"
    assert not cs["ready"]
    assert kube_node.logs(ns, "crash", "crash", previous=True) == "about to fail\nboom\n"
    assert len(kube_node.worker(ns, "crash").container("crash").runs) == cs["restartCount"] + 1
    wait_until(lambda: status_column(kube, ns, "crash") == "CrashLoopBackOff", DEADLINE_S,
               "kubectl to show pod crash as CrashLoopBackOff")


def test_a_failing_init_container_blocks_the_pod(kube, kube_node, namespace):
    api, ns = kube.api, namespace
    api.post(f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "blocked"},
        "spec": {
            "initContainers": [{"name": "check", "image": "busybox", "command": ["/bin/sh", "-c"],
                                "args": ["echo not yet; exit 1"]}],
            "containers": [{"name": "main", "image": "busybox", "command": ["/bin/sh", "-c"],
                            "args": ["echo must not run"]}]}})
    path = f"/api/v1/namespaces/{ns}/pods/blocked"

    def init_backing_off():
        pod = api.get(path)
        cs = container_status(pod, "check", init=True)
        if cs.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff":
            return pod
        return None

    pod = wait_until(init_backing_off, DEADLINE_S, "init container check to back off")
    assert pod["status"]["phase"] == "Pending"
    assert condition(pod, "Initialized") == "False"
    cs = container_status(pod, "check", init=True)
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["lastState"]["terminated"]["message"] == "not yet"
    main = container_status(pod, "main")
    assert main["state"]["waiting"]["reason"] == "PodInitializing"
    assert kube_node.logs(ns, "blocked", "main") == ""
    wait_until(lambda: status_column(kube, ns, "blocked") in ("Init:CrashLoopBackOff", "Init:Error"),
               DEADLINE_S, "kubectl to show pod blocked as Init:CrashLoopBackOff")


def test_probes_exec_readiness_and_liveness_restarts(kube, kube_node, namespace):
    api, ns = kube.api, namespace
    api.post(f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probed"},
        "spec": {
            "volumes": [{"name": "state", "emptyDir": {}}],
            "containers": [
                # ready once the file exists: an exec probe, its path rewritten too
                {"name": "later", "image": "busybox", "command": ["/bin/sh", "-c"],
                 "args": ["sleep 1; touch /state/ready; exec sleep 600"],
                 "volumeMounts": [{"name": "state", "mountPath": "/state"}],
                 "readinessProbe": {"exec": {"command": ["test", "-f", "/state/ready"]}}},
                # alive only while /missing answers, which it never does: restarted
                {"name": "unhealthy", "image": "python:3.11-slim",
                 "command": [PY, "-m", "http.server", "8081", "--bind", "$(POD_IP)"],
                 "env": [{"name": "POD_IP",
                          "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                 "livenessProbe": {"httpGet": {"path": "/missing", "port": 8081},
                                   "periodSeconds": 1, "failureThreshold": 2}},
            ]}})
    path = f"/api/v1/namespaces/{ns}/pods/probed"
    wait_until(lambda: container_status(api.get(path), "later").get("ready"), DEADLINE_S,
               "container later to turn ready")
    pod = wait_until(lambda: (lambda p: p if container_status(p, "unhealthy").get("restartCount", 0)
                              >= 1 else None)(api.get(path)),
                     DEADLINE_S, "container unhealthy to be restarted by its liveness probe")
    last = container_status(pod, "unhealthy")["lastState"]["terminated"]
    assert last["exitCode"] == 128 + 15, last  # SIGTERM
    assert '"GET /missing HTTP/1.1" 404' in kube_node.logs(ns, "probed", "unhealthy", previous=True)
    assert container_status(pod, "later")["ready"] and container_status(pod, "later")["restartCount"] == 0


def test_a_container_without_a_command_cannot_be_created(kube, kube_node, namespace):
    api, ns = kube.api, namespace
    api.post(f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "entrypoint"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}})
    path = f"/api/v1/namespaces/{ns}/pods/entrypoint"
    waiting = wait_until(
        lambda: container_status(api.get(path), "app").get("state", {}).get("waiting", {})
        .get("reason") == "CreateContainerError" and container_status(api.get(path), "app"),
        DEADLINE_S, "container app to wait with CreateContainerError")["state"]["waiting"]
    assert "no command" in waiting["message"]
    assert api.get(path)["status"]["phase"] == "Pending"


# --------------------------------------------------------------------------
# environment: fieldRefs, $(VAR) expansion, mount rewriting, PATH lookup


def test_environment_expansion_and_mounts(kube, kube_node, namespace):
    api, ns = kube.api, namespace
    show = ("import json, os, sys; print(json.dumps({'argv': sys.argv[1:], "
            "'env': dict(os.environ), 'cwd': os.getcwd()}))")
    ref = lambda f: {"valueFrom": {"fieldRef": {"fieldPath": f}}}  # noqa: E731
    api.post(f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "show", "labels": {"tier": "probe"}},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{
                "name": "show", "image": "python:3.11-slim",
                "command": [PY, "-c", show],
                "args": ["$(GREETING)", "$$(GREETING)", "/data", "--out=/data/y", "/database",
                         "$(UNDEFINED)"],
                "env": [
                    {"name": "POD_NAME", **ref("metadata.name")},
                    {"name": "POD_NS", **ref("metadata.namespace")},
                    {"name": "POD_UID", **ref("metadata.uid")},
                    {"name": "POD_IP", **ref("status.podIP")},
                    {"name": "HOST_IP", **ref("status.hostIP")},
                    {"name": "NODE", **ref("spec.nodeName")},
                    {"name": "TIER", **ref("metadata.labels['tier']")},
                    {"name": "GREETING", "value": "hello-$(POD_NAME)"},
                    {"name": "LATER", "value": "$(DEFINED_AFTER)"},
                    {"name": "DEFINED_AFTER", "value": "x"},
                    {"name": "ESCAPED", "value": "$$(POD_NAME)"},
                    {"name": "DATA", "value": "/data/file.txt"},
                    {"name": "API", "value": "$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
                ],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }]}})
    path = f"/api/v1/namespaces/{ns}/pods/show"
    pod = wait_until(lambda: (lambda p: p if p["status"].get("phase") == "Succeeded" else None)(
        api.get(path)), DEADLINE_S, "pod show to succeed")
    term = container_status(pod, "show")["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    out = json.loads(kube_node.logs(ns, "show", "show"))
    env, argv, cwd = out["env"], out["argv"], out["cwd"]
    assert env["POD_NAME"] == "show" and env["POD_NS"] == ns
    assert env["POD_UID"] == pod["metadata"]["uid"]
    assert env["POD_IP"] == pod["status"]["podIP"] == kube_node.pod_ip(ns, "show")
    assert env["HOST_IP"] == "127.0.0.1" and env["NODE"] == kube_node.name
    assert env["TIER"] == "probe"
    assert env["GREETING"] == "hello-show"
    assert env["LATER"] == "$(DEFINED_AFTER)"   # only earlier variables expand
    assert env["ESCAPED"] == "$(POD_NAME)"
    assert env["API"] == f"{kube.host}:{kube.port}"
    assert env["KUBERNETES_SERVICE_HOST"] == kube.host
    assert env["KUBERNETES_SERVICE_PORT"] == str(kube.port)
    assert env["HOSTNAME"] == "show"
    # /data is the pod's own emptyDir directory, also the working directory
    assert Path(cwd).name == "data" and cwd != "/data"
    assert env["DATA"] == f"{cwd}/file.txt"
    assert argv == ["hello-show", "$(GREETING)", cwd, f"--out={cwd}/y", "/database", "$(UNDEFINED)"]


def test_commands_are_looked_up_on_the_node_path_first(kube, kube_node, namespace, tmp_path):
    tool = tmp_path / "osprey-test-tool"
    tool.write_text("#!/bin/sh\necho tool ran with \"$@\"\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    kube_node.prepend_path(tmp_path)
    try:
        api, ns = kube.api, namespace
        api.post(f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tool"},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "tool", "image": "osprey:dev", "command": ["osprey-test-tool"],
                 "args": ["serve"]},
                {"name": "absent", "image": "osprey:dev", "command": ["osprey-no-such-tool"]}]}})
        path = f"/api/v1/namespaces/{ns}/pods/tool"
        pod = wait_until(lambda: (lambda p: p if p["status"].get("phase") == "Failed" else None)(
            api.get(path)), DEADLINE_S, "pod tool to end")
        assert kube_node.logs(ns, "tool", "tool") == "tool ran with serve\n"
        assert container_status(pod, "tool")["state"]["terminated"]["exitCode"] == 0
        absent = container_status(pod, "absent")["state"]["terminated"]
        assert absent["reason"] == "StartError" and absent["exitCode"] == 128, absent
    finally:
        kube_node.path.remove(str(tmp_path))


# --------------------------------------------------------------------------
# (d) deleting a Deployment: the garbage collector and the node clean up


def test_deleting_a_deployment_removes_its_pods_and_processes(kube, kube_node, namespace):
    api, ns = kube.api, namespace
    create_and_wait_ready(api, ns, web_deployment("doomed", 2), 2)
    procs = kube_node.processes(ns)
    assert len(procs) == 2 and {p.container for p in procs} == {"web"}, procs
    pids = [p.pid for p in procs]

    api.delete(f"/apis/apps/v1/namespaces/{ns}/deployments/doomed",
               body={"propagationPolicy": "Background"})
    wait_until(lambda: not api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"],
               DEADLINE_S, "the garbage collector to delete the ReplicaSet")
    wait_until(lambda: not pods(api, ns), DEADLINE_S, "the pods to be deleted")
    wait_until(lambda: not kube_node.processes(ns), 10, "the node to stop the pods' processes")
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
