"""Knative Serving's Service on `osprey up`: Knative's own first example applied
unchanged (only its image mapped to a local command), revisions per template
change, traffic blocks by revision name and tag, scale to zero and back, the
Configuration, Route, Revision, PodAutoscaler and Deployment views with
Knative's and kubectl's columns, and malformed Services refused with the field
named while nothing applied changes. Windows are short (--stable-window-s 2,
--scale-to-zero-grace-s 1, a decision every 200 ms).
"""

import json

import pytest
import requests

import harness
from platform_harness import Platform

# A small HTTP server as Knative's helloworld-go is: "Hello {TARGET}!" on GET /,
# on $PORT.
HELLO = """
import http.server, os
target = os.environ.get("TARGET", "World")
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = f"Hello {target}!\\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-revision", os.environ.get("K_REVISION", ""))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

HELLOWORLD = """apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: helloworld-go
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: gcr.io/knative-samples/helloworld-go
          env:
            - name: TARGET
              value: "Go Sample v1"
"""

STABLE_WINDOW_S = 2
GRACE_S = 1


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory):
    home = tmp_path_factory.mktemp("knative")
    server = home / "hello.py"
    server.write_text(HELLO)
    image_map = home / "images.json"
    image_map.write_text(json.dumps({"gcr.io/knative-samples/helloworld-go":
                                     ["python3", str(server)]}))
    p = Platform(osprey_bin, home / "home",
                 extra_args=["--image-map", str(image_map), "--autoscale-tick-ms", "200",
                             "--stable-window-s", str(STABLE_WINDOW_S),
                             "--scale-to-zero-grace-s", str(GRACE_S)]).start()
    yield p
    p.stop_everything()


def get(platform, host, path="/"):
    return requests.get(f"{platform.gateway}{path}", headers={"Host": host}, timeout=30)


def table(platform, kind):
    return [line.split() for line in platform.cli("get", kind).stdout.splitlines()]


def ksvc(platform, name):
    return platform.get_json("ksvc", name)


def replicas(platform, revision):
    for r in platform.get_json("revisions")["items"]:
        if r["metadata"]["name"] == revision:
            return r["status"]["replicas"]
    return None


def replica_statuses(platform, revision):
    for r in platform.get_json("revisions")["items"]:
        if r["metadata"]["name"] == revision:
            return r["status"].get("replicaStatuses", [])
    return None


def test_helloworld_answers_scales_to_zero_and_back(platform):
    out = platform.apply_text(HELLOWORLD).stdout
    assert "service.serving.knative.dev/helloworld-go created" in out, out
    assert "condition met" in out, out
    svc = ksvc(platform, "helloworld-go")
    assert svc["status"]["url"] == f"http://helloworld-go.default.example.com:{platform.gateway_port}"
    assert svc["status"]["latestCreatedRevisionName"] == "helloworld-go-00001"
    assert svc["status"]["latestReadyRevisionName"] == "helloworld-go-00001"
    assert svc["status"]["traffic"] == [
        {"latestRevision": True, "percent": 100, "revisionName": "helloworld-go-00001"}]
    conditions = {c["type"]: c["status"] for c in svc["status"]["conditions"]}
    assert conditions == {"ConfigurationsReady": "True", "Ready": "True", "RoutesReady": "True"}

    r = get(platform, "helloworld-go.default.example.com")
    assert r.status_code == 200 and r.text == "Hello Go Sample v1!\n", r.text
    # Its in-cluster names and the path route reach it too.
    assert get(platform, "helloworld-go.default.svc.cluster.local").text == "Hello Go Sample v1!\n"
    assert get(platform, "any", "/serving/default/helloworld-go/").text == "Hello Go Sample v1!\n"
    assert get(platform, "nothing.default.example.com").status_code == 404

    # Knative's columns.
    rows = table(platform, "ksvc")
    assert rows[0] == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"]
    assert rows[1] == ["helloworld-go", svc["status"]["url"], "helloworld-go-00001",
                       "helloworld-go-00001", "True"], rows
    assert table(platform, "configurations")[1] == [
        "helloworld-go", "helloworld-go-00001", "helloworld-go-00001", "True"]
    assert table(platform, "routes")[1] == ["helloworld-go", svc["status"]["url"], "True"]

    # Idle, it scales to zero: the lines Knative users know.
    harness.wait_until(lambda: replicas(platform, "helloworld-go-00001") == 0,
                       STABLE_WINDOW_S + GRACE_S + 30, "scale to zero")
    harness.wait_until(
        lambda: ["helloworld-go-00001-deployment", "0/0", "0", "0"] in
        [row[:4] for row in table(platform, "deploy")], 10, "get deploy at zero")
    assert table(platform, "deploy")[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert ["helloworld-go-00001", "0", "0", "False", "NoTraffic"] in table(platform, "kpa")
    # Still Ready; the first request wakes it and is answered.
    assert ksvc(platform, "helloworld-go")["status"]["conditions"][1]["status"] == "True"
    r = get(platform, "helloworld-go.default.example.com")
    assert r.status_code == 200 and r.text == "Hello Go Sample v1!\n", r.text
    assert replicas(platform, "helloworld-go-00001") >= 1
    events = platform.cli("get", "events").stdout
    assert "ScaledToZero" in events, events

    # At zero again, a restart of the platform keeps it Ready and at zero
    # (nothing is woken), and its route answers.
    # (and its last replica gone, not still stopping: a process alive at the
    # restart would be adopted and counted)
    harness.wait_until(lambda: replicas(platform, "helloworld-go-00001") == 0 and
                       not replica_statuses(platform, "helloworld-go-00001"),
                       STABLE_WINDOW_S + GRACE_S + 30, "scale to zero again")
    platform.stop()
    platform.start()
    svc = ksvc(platform, "helloworld-go")
    assert {c["type"]: c["status"] for c in svc["status"]["conditions"]}["Ready"] == "True", svc
    assert svc["status"]["latestReadyRevisionName"] == "helloworld-go-00001"
    assert replicas(platform, "helloworld-go-00001") == 0
    assert get(platform, "helloworld-go.default.example.com").text == "Hello Go Sample v1!\n"
    assert "ServiceNotReady" not in platform.cli("get", "events").stdout


def rollout_yaml(target, traffic=""):
    return HELLOWORLD.replace("Go Sample v1", target) + traffic


def test_revision_rollout_by_name_and_tag(platform):
    name = "rollout"
    first = rollout_yaml("v1").replace("helloworld-go\n", f"{name}\n", 1)
    platform.apply_text(first)
    host = f"{name}.default.example.com"
    assert get(platform, host).text == "Hello v1!\n"
    # A new template makes revision 00002; 90/10 by name, the new one tagged.
    split = rollout_yaml("v2", f"""  traffic:
    - revisionName: {name}-00001
      percent: 90
    - revisionName: {name}-00002
      percent: 10
      tag: candidate
""").replace("helloworld-go\n", f"{name}\n", 1)
    platform.apply_text(split)
    svc = ksvc(platform, name)
    assert svc["status"]["latestCreatedRevisionName"] == f"{name}-00002"
    assert svc["status"]["traffic"] == [
        {"latestRevision": False, "percent": 90, "revisionName": f"{name}-00001"},
        {"latestRevision": False, "percent": 10, "revisionName": f"{name}-00002",
         "tag": "candidate",
         "url": f"http://candidate-{name}.default.example.com:{platform.gateway_port}"}]
    # The split holds over 2,000 requests within 1 pp; the tag host reaches v2 alone.
    session = requests.Session()
    answers = [session.get(f"{platform.gateway}/", headers={"Host": host}, timeout=30).text
               for _ in range(2000)]
    share = answers.count("Hello v2!\n") / len(answers)
    assert abs(share - 0.10) <= 0.01, share
    assert answers.count("Hello v1!\n") + answers.count("Hello v2!\n") == 2000
    assert get(platform, f"candidate-{name}.default.example.com").text == "Hello v2!\n"
    # Promote: all to the latest.
    platform.apply_text(rollout_yaml("v2").replace("helloworld-go\n", f"{name}\n", 1))
    harness.wait_until(lambda: get(platform, host).text == "Hello v2!\n", 10, "promotion")
    assert ksvc(platform, name)["status"]["traffic"] == [
        {"latestRevision": True, "percent": 100, "revisionName": f"{name}-00002"}]
    revisions = [r["metadata"]["name"] for r in platform.get_json("revisions")["items"]
                 if r["metadata"]["labels"].get("serving.knative.dev/service") == name]
    assert revisions == [f"{name}-00001", f"{name}-00002"]


def test_malformed_services_are_refused_and_nothing_changes(platform):
    platform.apply_text(HELLOWORLD.replace("helloworld-go\n", "steady\n", 1))
    before = ksvc(platform, "steady")
    cases = {
        "  traffic:\n    - percent: 90\n": "spec.traffic: the percents sum to 90, want 100",
        "  traffic:\n    - {revisionName: steady-00001, latestRevision: true, percent: 100}\n":
            "spec.traffic[0].revisionName: may not be set when latestRevision is true",
    }
    for extra, error in cases.items():
        r = platform.apply_text(HELLOWORLD.replace("helloworld-go\n", "steady\n", 1) + extra,
                                wait=False, check=False)
        assert r.returncode != 0 and error in r.stderr, r.stderr
    bad_name = HELLOWORLD.replace("helloworld-go\n", "steady\n", 1).replace(
        "  template:\n", "  template:\n    metadata: {name: other-v1}\n")
    r = platform.apply_text(bad_name, wait=False, check=False)
    assert r.returncode != 0 and \
        'spec.template.metadata.name: "other-v1" is invalid: must have prefix "steady-"' in r.stderr
    # A name an InferenceService's component takes is refused, both ways round.
    platform.apply_text("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: owner}
spec:
  predictor:
    containers: [{image: gcr.io/knative-samples/helloworld-go}]
""", wait=False)
    r = platform.apply_text(HELLOWORLD.replace("helloworld-go\n", "owner-predictor\n", 1),
                            wait=False, check=False)
    assert r.returncode != 0 and "the InferenceService owner in namespace default owns this " \
        "name (its predictor)" in r.stderr, r.stderr
    r = platform.apply_text(HELLOWORLD.replace("helloworld-go\n", "clash-transformer\n", 1),
                            wait=False)
    r = platform.apply_text("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: clash}
spec:
  predictor:
    containers: [{image: gcr.io/knative-samples/helloworld-go}]
  transformer:
    containers: [{image: gcr.io/knative-samples/helloworld-go}]
""", wait=False, check=False)
    assert r.returncode != 0 and "the Knative Service clash-transformer" in r.stderr, r.stderr
    # An InferenceService and a Knative Service of one name would share hosts and paths.
    r = platform.apply_text("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: steady}
spec:
  predictor:
    containers: [{image: gcr.io/knative-samples/helloworld-go}]
""", wait=False, check=False)
    assert r.returncode != 0 and "a Knative Service of this name exists" in r.stderr, r.stderr
    r = platform.apply_text(HELLOWORLD.replace("helloworld-go\n", "owner\n", 1), wait=False,
                            check=False)
    assert r.returncode != 0 and "an InferenceService of this name exists" in r.stderr, r.stderr
    assert ksvc(platform, "steady") == before
    assert get(platform, "steady.default.example.com").text == "Hello Go Sample v1!\n"
    # Deleting removes its revisions and its route.
    platform.cli("delete", "ksvc", "steady")
    harness.wait_until(lambda: get(platform, "steady.default.example.com").status_code == 404, 10,
                       "route gone")
    assert not [r for r in platform.get_json("revisions")["items"]
                if r["metadata"]["labels"].get("serving.knative.dev/service") == "steady"]


def test_env_value_from_as_knative_takes_it(platform):
    # Knative takes env values from ConfigMaps and Secrets: an optional one
    # absent here leaves the variable unset; a required one fails the
    # revision, naming it. fieldRef is refused, as Knative's webhook does.
    name = "fromref"
    service = f"""apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  template:
    spec:
      containers:
        - image: gcr.io/knative-samples/helloworld-go
          env:
            - name: TARGET
              valueFrom:
                configMapKeyRef: {{name: greeting, key: target, optional: true}}
"""
    platform.apply_text(service)
    assert get(platform, f"{name}.default.example.com").text == "Hello World!\n"
    r = platform.apply_text(service.replace(
        "configMapKeyRef: {name: greeting, key: target, optional: true}",
        "fieldRef: {fieldPath: metadata.namespace}"), wait=False, check=False)
    assert r.returncode != 0 and "spec.template.spec.containers[0].env[0].valueFrom.fieldRef: " \
        "must not set the field" in r.stderr, r.stderr
    platform.apply_text(service.replace(name, f"{name}-secret", 1).replace(
        "configMapKeyRef: {name: greeting, key: target, optional: true}",
        "secretKeyRef: {name: greeting, key: target}"), wait=False)

    def failed():
        ready = [c for c in ksvc(platform, f"{name}-secret").get("status", {}).get(
            "conditions", []) if c["type"] == "Ready"]
        return ready and ready[0]["status"] == "False" and \
            'secret "greeting" (key target) cannot be read here' in ready[0].get("message", "")
    harness.wait_until(failed, 20, "the revision fails naming the secret")
