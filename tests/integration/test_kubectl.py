"""kubectl against `osprey up`: the API speaks Kubernetes for Osprey's kinds.

`osprey up` writes DATA_DIR/kubeconfig (the API over TLS with a CA of its
own, the token as bearer token); kubectl, as the operator's test
environment builds it, is run with KUBECONFIG pointing there:

- discovery: `kubectl version` and `api-resources` (KServe's, Knative's and
  Istio's kinds with their short names and scope); `kubectl explain` from
  the kinds' OpenAPI schemas;
- create (validated on the server: an unknown field is refused naming it),
  get as KServe's printer columns (-A, -o yaml, -o name, -o jsonpath),
  apply (client-side: last-applied annotation, configured), patch --type
  merge, replace (409 Conflict for a stale resourceVersion), server dry
  runs, delete; the platform's events as core Events (get events with
  field selectors, describe); errors as kube-apiserver words them (NotFound,
  AlreadyExists, Invalid with the field) and nothing stored changes;
- watches: `kubectl get -w` prints each change as a row, the kubernetes
  Python client's watch gets ADDED/MODIFIED/DELETED with growing
  resourceVersions and resumes from one; a version too old is 410 Expired;
  lists page with limit/continue and select by label and field;
- replicas as read-only pods (`get pods -l serving.kserve.io/inferenceservice=`,
  field selector status.phase, `get pods -w`), `kubectl logs` (whole, --tail,
  -l, -f); `get events -w`;
- server-side apply (managedFields, conflicts naming manager and field,
  --force-conflicts, fields the applier drops removed), JSON patches,
  set-based label selectors, the status subresource, finalizers holding a
  deletion, delete preconditions and propagation policies;
- the KServe SDK's KServeClient creates, waits for, patches and deletes;
- the token is required, for reads too; a kubeconfig with a wrong token is
  Unauthorized; `osprey kubeconfig` prints the file.

kubectl comes from scripts/k8s-testenv.sh's cache: without it these tests
skip, saying how to build it; with OSPREY_REQUIRE_KUBE=1 (make test) they
fail instead."""

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

import harness
from platform_harness import READY_TIMEOUT_S, REPO_ROOT, Platform, example_models, isvc_yaml

NAME = "kc-iris"


def kubectl_binary() -> Path:
    out = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "k8s-testenv.sh"), "bin"],
                         capture_output=True, text=True, check=True)
    binary = Path(out.stdout.strip()) / "kubectl"
    if not os.access(binary, os.X_OK):
        why = f"{binary} is missing (make kube-deps builds it)"
        if os.environ.get("OSPREY_REQUIRE_KUBE", "") not in ("", "0"):
            pytest.fail(f"OSPREY_REQUIRE_KUBE is set but {why}", pytrace=False)
        pytest.skip(why)
    return binary


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("kubectl") / "home").start()
    yield p
    p.stop_everything()


@pytest.fixture(scope="module")
def kubectl(platform):
    binary = kubectl_binary()
    harness.wait_until(lambda: (platform.data_dir / "kubeconfig").exists(), 30,
                       "osprey up to write its kubeconfig")

    def run(*args, check=True, kubeconfig=None, input=None):
        env = dict(os.environ, KUBECONFIG=str(kubeconfig or platform.data_dir / "kubeconfig"))
        r = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env,
                           input=input, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.returncode}\n{r.stderr}")
        return r

    return run


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("kubectl-manifests") / "isvc.yaml"
    path.write_text(isvc_yaml(NAME, "xgboost", example_models() / "xgboost-iris"))
    return path


class Watching:
    """kubectl running a watch (`get ... -w`), its output lines collected."""

    def __init__(self, platform, *args):
        import threading
        env = dict(os.environ, KUBECONFIG=str(platform.data_dir / "kubeconfig"))
        self.proc = subprocess.Popen([str(kubectl_binary()), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                         daemon=True).start()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def ready(kubectl, name=NAME):
    r = kubectl("get", "isvc", name, "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}", check=False)
    return r.returncode == 0 and r.stdout == "True"


def test_discovery(kubectl):
    assert "Server Version: v1.34" in kubectl("version").stdout
    rows = {line.split()[0]: line.split() for line in
            kubectl("api-resources", "--no-headers").stdout.splitlines()}
    assert rows["inferenceservices"][1:] == ["isvc", "serving.kserve.io/v1beta1", "true",
                                             "InferenceService"]
    assert rows["clusterservingruntimes"][1:] == ["csr", "serving.kserve.io/v1alpha1", "false",
                                                  "ClusterServingRuntime"]
    assert rows["services"][1:] == ["ksvc,kservice", "serving.knative.dev/v1", "true", "Service"]
    assert rows["virtualservices"][1:3] == ["vs", "networking.istio.io/v1"]
    # What the platform makes is read-only.
    verbs = kubectl("api-resources", "-o", "wide", "--no-headers").stdout
    deploy = next(line for line in verbs.splitlines() if line.startswith("deployments"))
    assert deploy.split()[5] == "get,list,watch", deploy
    # kubectl explain reads the kinds' OpenAPI schemas.
    explained = kubectl("explain", "isvc.spec.predictor").stdout
    assert "KIND:       InferenceService" in explained, explained
    for field in ("model\t<ModelSpec>", "minReplicas\t<integer>", "canaryTrafficPercent",
                  "sklearn\t<ModelSpec>"):
        assert field in explained, (field, explained)
    nested = kubectl("explain", "isvc.spec.predictor.model.storageUri").stdout
    assert "FIELD: storageUri <string>" in nested and "s3://" in nested, nested
    assert "FIELDS:" in kubectl("explain", "virtualservices").stdout


def test_create_get_and_printer_columns(kubectl, manifest):
    assert kubectl("create", "-f", str(manifest)).stdout.strip() == \
        f"inferenceservice.serving.kserve.io/{NAME} created"
    harness.wait_until(lambda: ready(kubectl), READY_TIMEOUT_S, f"{NAME} Ready")
    lines = kubectl("get", "isvc").stdout.splitlines()
    assert lines[0].split() == ["NAME", "URL", "READY", "PREV", "LATEST",
                                "PREVROLLEDOUTREVISION", "LATESTREADYREVISION", "AGE"]
    row = next(line.split() for line in lines[1:] if line.startswith(NAME + " "))
    assert row[1].startswith(f"http://{NAME}-default.") and row[2] == "True"
    assert row[3] == "100" and row[4] == f"{NAME}-predictor-00001", row
    all_ns = kubectl("get", "isvc", "-A").stdout.splitlines()
    assert all_ns[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == ["default", NAME] for line in all_ns[1:])
    assert kubectl("get", "isvc", "-o", "name").stdout.split() == \
        [f"inferenceservice.serving.kserve.io/{NAME}"]
    obj = yaml.safe_load(kubectl("get", "isvc", NAME, "-o", "yaml").stdout)
    assert obj["kind"] == "InferenceService" and obj["metadata"]["name"] == NAME
    assert obj["spec"]["predictor"]["model"]["modelFormat"]["name"] == "xgboost"
    # The revisions and what runs them, with their columns.
    rev = kubectl("get", "revisions", "--no-headers").stdout.split()
    assert rev[:3] == [f"{NAME}-predictor-00001", NAME, "Ready"], rev
    deploy = kubectl("get", "deploy", "--no-headers").stdout.split()
    assert deploy[:2] == [f"{NAME}-predictor-00001-deployment", "1/1"], deploy
    csr = kubectl("get", "csr", "kserve-xgbserver", "--no-headers").stdout.split()
    assert csr[:3] == ["kserve-xgbserver", "xgboost", "kserve-container"], csr


def test_errors_as_kube_apiserver_words_them(kubectl, manifest):
    r = kubectl("get", "isvc", "nope", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == \
        'Error from server (NotFound): inferenceservices.serving.kserve.io "nope" not found'
    r = kubectl("create", "-f", str(manifest), check=False)
    assert r.returncode == 1 and "(AlreadyExists)" in r.stderr and \
        f'inferenceservices.serving.kserve.io "{NAME}" already exists' in r.stderr, r.stderr
    # An unknown field is refused by the server, naming it; nothing stored changes.
    before = kubectl("get", "isvc", NAME, "-o", "json").stdout
    r = kubectl("patch", "isvc", NAME, "--type", "merge", "-p",
                '{"spec":{"predictor":{"minReplicaz":2}}}', check=False)
    assert r.returncode == 1 and "is invalid" in r.stderr and "minReplicaz" in r.stderr, r.stderr
    bad = manifest.read_text().replace("  predictor:\n", "  predictor:\n    bogusField: 1\n")
    r = kubectl("create", "-f", "-", input=bad.replace(NAME, "kc-bad"), check=False)
    assert r.returncode == 1 and "bogusField" in r.stderr, r.stderr
    assert kubectl("get", "isvc", "kc-bad", check=False).returncode == 1
    after = json.loads(kubectl("get", "isvc", NAME, "-o", "json").stdout)
    assert after["spec"] == json.loads(before)["spec"]
    # Strategic merge patches are refused for these kinds, as for any custom resource.
    r = kubectl("patch", "isvc", NAME, "-p", '{"spec":{}}', check=False)
    assert r.returncode == 1 and "application/merge-patch+json" in r.stderr, r.stderr


def test_apply_patch_and_generation(kubectl, manifest):
    gen = int(kubectl("get", "isvc", NAME, "-o", "jsonpath={.metadata.generation}").stdout)
    changed = manifest.read_text().replace("  predictor:\n", "  predictor:\n    maxReplicas: 3\n")
    r = kubectl("apply", "-f", "-", input=changed)
    assert r.stdout.strip() == f"inferenceservice.serving.kserve.io/{NAME} configured", r.stdout
    obj = json.loads(kubectl("get", "isvc", NAME, "-o", "json").stdout)
    assert obj["spec"]["predictor"]["maxReplicas"] == 3
    assert obj["metadata"]["generation"] == gen + 1
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    # Applied again unchanged: nothing to do.
    assert kubectl("apply", "-f", "-", input=changed).stdout.strip() == \
        f"inferenceservice.serving.kserve.io/{NAME} unchanged"
    kubectl("patch", "isvc", NAME, "--type", "merge", "-p",
            '{"spec":{"predictor":{"maxReplicas":4}}}')
    assert kubectl("get", "isvc", NAME, "-o",
                   "jsonpath={.spec.predictor.maxReplicas}").stdout == "4"
    # Removing a field with a merge patch's null.
    kubectl("patch", "isvc", NAME, "--type", "merge", "-p",
            '{"spec":{"predictor":{"maxReplicas":null}}}')
    obj = json.loads(kubectl("get", "isvc", NAME, "-o", "json").stdout)
    assert "maxReplicas" not in obj["spec"]["predictor"], obj["spec"]


def test_replace_conflicts_and_namespaces(platform, kubectl):
    """kubectl replace with what get -o json printed (status and all) works
    once; a second replace of that same, now stale, version is a conflict."""
    obj = json.loads(kubectl("get", "isvc", NAME, "-o", "json").stdout)
    obj["spec"]["predictor"]["maxReplicas"] = 5
    r = kubectl("replace", "-f", "-", input=json.dumps(obj))
    assert r.stdout.strip() == f"inferenceservice.serving.kserve.io/{NAME} replaced", r.stdout
    after = json.loads(kubectl("get", "isvc", NAME, "-o", "json").stdout)
    assert after["spec"]["predictor"]["maxReplicas"] == 5
    assert int(after["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    obj["spec"]["predictor"]["maxReplicas"] = 6
    r = kubectl("replace", "-f", "-", input=json.dumps(obj), check=False)
    assert r.returncode == 1 and "(Conflict)" in r.stderr and \
        "the object has been modified" in r.stderr, r.stderr
    assert kubectl("get", "isvc", NAME, "-o",
                   "jsonpath={.spec.predictor.maxReplicas}").stdout == "5"
    # An object naming another namespace than the request's: 400, nothing made.
    other = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
             "metadata": {"name": "elsewhere", "namespace": "team-b"},
             "spec": after["spec"]}
    r = requests.post(
        f"{platform.api}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices",
        json=other, headers=platform.auth, timeout=10)
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest", r.text
    # The same in YAML.
    r = requests.post(
        f"{platform.api}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices",
        data=yaml.safe_dump(other), headers=platform.auth, timeout=10)
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest", r.text
    assert "elsewhere" not in kubectl("get", "isvc", "-A").stdout
    # What the platform makes cannot be deleted, dry run or not.
    rev = kubectl("get", "revisions", "-o", "name").stdout.split()[0].split("/")[1]
    for dry in ([], ["--dry-run=server"]):
        r = kubectl("delete", "revision", rev, *dry, check=False)
        assert r.returncode == 1 and "cannot delete" in r.stderr, r.stderr
    # The version a write answers with is the one a watch or update goes on from.
    r = requests.patch(
        f"{platform.api}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{NAME}",
        data=json.dumps({"spec": {"predictor": {"maxReplicas": None}}}),
        headers={**platform.auth, "Content-Type": "application/merge-patch+json"}, timeout=10)
    assert r.status_code == 200, r.text
    assert int(r.json()["metadata"]["resourceVersion"]) > int(
        after["metadata"]["resourceVersion"])


def test_dry_runs_events_and_describe(platform, kubectl, manifest):
    before = json.loads(kubectl("get", "isvc", NAME, "-o", "json").stdout)
    changed = manifest.read_text().replace("  predictor:\n", "  predictor:\n    maxReplicas: 9\n")
    r = kubectl("apply", "--dry-run=server", "-f", "-", input=changed)
    assert "(server dry run)" in r.stdout, r.stdout
    r = kubectl("delete", "isvc", NAME, "--dry-run=server")
    assert "(server dry run)" in r.stdout, r.stdout
    r = kubectl("create", "--dry-run=server", "-f", "-", input=manifest.read_text().replace(
        NAME, "kc-dry"))
    assert "(server dry run)" in r.stdout, r.stdout
    assert kubectl("get", "isvc", "kc-dry", check=False).returncode == 1
    # A dry run is checked against what is stored, as the write would be: a
    # Knative Service cannot take the InferenceService's name.
    ksvc = ("apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: %s}\n"
            "spec: {template: {spec: {containers: [{image: example.com/hello}]}}}\n" % NAME)
    r = kubectl("create", "--dry-run=server", "-f", "-", input=ksvc, check=False)
    assert r.returncode == 1 and "(AlreadyExists)" in r.stderr and \
        "an InferenceService of this name exists" in r.stderr, r.stderr
    after = json.loads(kubectl("get", "isvc", NAME, "-o", "json").stdout)
    assert after["spec"] == before["spec"]
    # (its status may move on meanwhile: a rollout of the last test's change)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    # The platform's events as core Events: kubectl get events, by field, and describe.
    lines = kubectl("get", "events", "--field-selector",
                    f"involvedObject.name={NAME},reason=RevisionReady").stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], lines
    assert len(lines) >= 2 and all(
        f"inferenceservice/{NAME}" in line and "RevisionReady" in line for line in lines[1:])
    described = kubectl("describe", "isvc", NAME).stdout
    events = described[described.index("Events:"):]
    assert "InferenceServiceReady" in events and "osprey" in events, described[-1500:]


def test_pods_and_logs(platform, kubectl, manifest):
    """Replicas as read-only pods with KServe's labels; kubectl logs reads and
    follows their output."""
    name = "kc-pods"  # a service of its own: no rollout of another test's under way
    selector = f"serving.kserve.io/inferenceservice={name}"
    # Pods and events watched from before the service exists.
    pods_watch = Watching(platform, "get", "pods", "-w", "--no-headers", "-l", selector)
    events_watch = Watching(platform, "get", "events", "-w", "--no-headers", "--field-selector",
                            f"involvedObject.name={name}")
    kubectl("create", "-f", "-", input=manifest.read_text().replace(NAME, name))
    harness.wait_until(lambda: ready(kubectl, name), READY_TIMEOUT_S, f"{name} Ready")
    try:
        pod_name = f"{name}-predictor-00001-deployment-0"
        harness.wait_until(lambda: any(line.split()[:3] == [pod_name, "1/1", "Running"]
                                       for line in pods_watch.lines), 10,
                           f"kubectl get pods -w to print {pod_name} Running")
        harness.wait_until(lambda: any("InferenceServiceReady" in line
                                       for line in events_watch.lines), 10,
                           "kubectl get events -w to print InferenceServiceReady")
        assert all(name in line for line in events_watch.lines), events_watch.lines
        # Each event once, though it was listed before and watched after.
        assert len(events_watch.lines) == len(set(events_watch.lines)), events_watch.lines
    finally:
        pods_watch.stop()
        events_watch.stop()
    lines = kubectl("get", "pods", "-l", selector).stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], lines
    running = [line.split() for line in lines[1:] if line.split()[1:3] == ["1/1", "Running"]]
    assert running and running[0][0] == f"{name}-predictor-00001-deployment-0", lines
    pod = running[0][0]
    wide = kubectl("get", "pod", pod, "-o", "wide", "--no-headers").stdout.split()
    assert wide[5:7] == ["127.0.0.1", "osprey"], wide
    assert kubectl("get", "pods", "--field-selector", "status.phase=Running",
                   "-l", selector, "-o", "name").stdout.split() == \
        [f"pod/{r[0]}" for r in running]
    # The replica's own output, whole and its last line.
    revision, index = pod.rsplit("-deployment-", 1)
    log_file = platform.data_dir / "logs" / "default" / revision / f"{index}.log"
    whole = kubectl("logs", pod).stdout
    assert whole and whole == log_file.read_text(), whole[-500:]
    # A pod that is no replica names no file (nor does a path out of the data directory).
    for bogus in (f"{name}-predictor-00009-deployment-0", "..-deployment-0"):
        r = requests.get(f"{platform.api}/api/v1/namespaces/default/pods/{bogus}/log",
                         headers=platform.auth, timeout=10)
        assert r.status_code == 404, (bogus, r.text)
    last = whole.rstrip("\n").split("\n")[-1]
    assert kubectl("logs", pod, "--tail=1").stdout.strip() == last
    assert kubectl("logs", pod, "--limit-bytes=10").stdout == whole[:10]
    # What replica logs cannot answer (they carry no timestamps) is refused, saying so.
    r = kubectl("logs", pod, "--since=1m", check=False)
    assert r.returncode == 1 and "sinceSeconds: not supported" in r.stderr, r.stderr
    assert last in kubectl("logs", "-l", selector, "--tail=1").stdout
    # A big log (past what one streamed write may hold) comes through whole,
    # and its tail is found from the end.
    with open(log_file, "a") as f:
        for i in range(300_000):
            f.write(f"bulk line {i:07d} " + "x" * 40 + "\n")
    big = kubectl("logs", pod).stdout
    assert len(big) == log_file.stat().st_size and big.endswith("bulk line 0299999 " + "x" * 40 + "\n")
    assert kubectl("logs", pod, "--tail=2").stdout.split("\n")[:2] == [
        "bulk line 0299998 " + "x" * 40, "bulk line 0299999 " + "x" * 40]
    # Followed: what the replica writes from then on arrives while kubectl runs.
    import threading
    binary = kubectl_binary()
    env = dict(os.environ, KUBECONFIG=str(platform.data_dir / "kubeconfig"))
    proc = subprocess.Popen([str(binary), "logs", "-f", pod, "--tail=0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    got = []
    threading.Thread(target=lambda: got.extend(iter(proc.stdout.readline, "")),
                     daemon=True).start()
    try:
        # Standing in for the replica: its output file gains lines.
        # Until kubectl's request has reached the API, a line written is
        # before the follow's start (and --tail=0 leaves it out): write one
        # on each look until one comes through.
        marker = f"followed-{os.getpid()}"

        def through():
            with open(log_file, "a") as f:
                f.write(f"{marker}\n")
            return any(marker in line for line in got)

        harness.wait_until(through, 10, "a new line through kubectl logs -f", interval=0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    kubectl("delete", "isvc", name)


def test_server_side_apply(platform, kubectl, manifest, tmp_path):
    """kubectl apply --server-side: the server merges the configuration and
    keeps who set which field (managedFields); a field another manager set
    is a conflict naming it, unless forced; a field the applier stops
    setting is removed, one someone else set stays."""
    name = "kc-ssa"
    base = manifest.read_text().replace(NAME, name)
    config = base.replace(f"name: {name}\n", f"name: {name}\n  labels:\n    team: a\n    tier: gold\n")
    config = config.replace("  predictor:\n", "  predictor:\n    minReplicas: 1\n    maxReplicas: 3\n")
    r = kubectl("apply", "--server-side", "-f", "-", input=config)
    assert r.stdout.strip() == f"inferenceservice.serving.kserve.io/{name} serverside-applied", r.stdout
    obj = json.loads(kubectl("get", "isvc", name, "-o", "json", "--show-managed-fields").stdout)
    managers = {(m["manager"], m["operation"]): m for m in obj["metadata"]["managedFields"]}
    assert list(managers) == [("kubectl", "Apply")], managers
    owned = managers[("kubectl", "Apply")]["fieldsV1"]
    assert owned["f:metadata"]["f:labels"] == {"f:team": {}, "f:tier": {}}, owned
    assert "f:maxReplicas" in owned["f:spec"]["f:predictor"], owned
    assert "managedFields" not in kubectl("get", "isvc", name, "-o", "yaml").stdout
    uid = obj["metadata"]["uid"]
    assert len(uid) == 36 and uid.count("-") == 4, uid

    # Another manager changes a field the applier owns; applying the old
    # value again is a conflict naming manager and field, and changes nothing.
    kubectl("patch", "isvc", name, "--type", "merge", "-p",
            '{"spec":{"predictor":{"maxReplicas":5}}}')
    r = kubectl("apply", "--server-side", "-f", "-", input=config, check=False)
    assert r.returncode == 1, r.stdout
    assert 'conflict with "kubectl-patch"' in r.stderr and ".spec.predictor.maxReplicas" in r.stderr, r.stderr
    assert kubectl("get", "isvc", name, "-o",
                   "jsonpath={.spec.predictor.maxReplicas}").stdout == "5"
    # The same through the API: 409 Conflict with a FieldManagerConflict cause.
    resp = requests.patch(
        f"{platform.api}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{name}"
        "?fieldManager=kubectl",
        data=config, headers={**platform.auth, "Content-Type": "application/apply-patch+yaml"},
        timeout=10)
    assert resp.status_code == 409 and resp.json()["reason"] == "Conflict", resp.text
    assert resp.json()["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message":
         'conflict with "kubectl-patch" using serving.kserve.io/v1beta1',
         "field": ".spec.predictor.maxReplicas"}], resp.text
    # Without a field manager an apply is refused.
    resp = requests.patch(
        f"{platform.api}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{name}",
        data=config, headers={**platform.auth, "Content-Type": "application/apply-patch+yaml"},
        timeout=10)
    assert resp.status_code == 422 and "fieldManager" in resp.json()["message"], resp.text
    # A configuration naming another object than the path's: 400, nothing made.
    resp = requests.patch(
        f"{platform.api}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/"
        f"{name}-other?fieldManager=kubectl",
        data=config, headers={**platform.auth, "Content-Type": "application/apply-patch+yaml"},
        timeout=10)
    assert resp.status_code == 400 and "does not match the name on the URL" in resp.text, resp.text
    assert kubectl("get", "isvc", f"{name}-other", check=False).returncode == 1
    # Forced, the field is the applier's again.
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=config)
    obj = json.loads(kubectl("get", "isvc", name, "-o", "json", "--show-managed-fields").stdout)
    assert obj["spec"]["predictor"]["maxReplicas"] == 3
    assert not any("f:maxReplicas" in json.dumps(m["fieldsV1"]) for m in obj["metadata"]["managedFields"]
                   if m["manager"] == "kubectl-patch"), obj["metadata"]["managedFields"]

    # Another manager adds a label; the applier drops its own tier label and
    # maxReplicas: those go, the other's label stays.
    kubectl("label", "isvc", name, "owner=ops")
    dropped = config.replace("    tier: gold\n", "").replace("    maxReplicas: 3\n", "")
    kubectl("apply", "--server-side", "-f", "-", input=dropped)
    obj = json.loads(kubectl("get", "isvc", name, "-o", "json").stdout)
    assert obj["metadata"]["labels"] == {"team": "a", "owner": "ops"}, obj["metadata"]["labels"]
    assert "maxReplicas" not in obj["spec"]["predictor"], obj["spec"]
    assert obj["metadata"]["uid"] == uid
    # A server dry run of an apply changes nothing.
    kubectl("apply", "--server-side", "--dry-run=server", "-f", "-",
            input=dropped.replace("team: a", "team: b"))
    assert kubectl("get", "isvc", name, "-o", "jsonpath={.metadata.labels.team}").stdout == "a"
    # Selected by a set-based selector.
    assert kubectl("get", "isvc", "-l", "team in (a,b),owner notin (dev)", "-o",
                   "name").stdout.split() == [f"inferenceservice.serving.kserve.io/{name}"]
    assert kubectl("get", "isvc", "-l", "team notin (a)", "-o", "name").stdout.strip() != \
        f"inferenceservice.serving.kserve.io/{name}"
    kubectl("delete", "isvc", name)

    # An object `osprey apply` made: its fields are "before-first-apply"'s.
    made = tmp_path / "made.yaml"
    made.write_text(base.replace("  predictor:\n", "  predictor:\n    maxReplicas: 2\n"))
    platform.cli("apply", "-f", str(made))
    r = kubectl("apply", "--server-side", "-f", "-",
                input=base.replace("  predictor:\n", "  predictor:\n    maxReplicas: 4\n"),
                check=False)
    assert r.returncode == 1 and 'conflict with "before-first-apply"' in r.stderr, r.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
            input=base.replace("  predictor:\n", "  predictor:\n    maxReplicas: 4\n"))
    assert kubectl("get", "isvc", name, "-o",
                   "jsonpath={.spec.predictor.maxReplicas}").stdout == "4"
    kubectl("delete", "isvc", name)


def test_json_patch_status_and_finalizers(platform, kubectl, manifest):
    """kubectl patch --type json (all or nothing), the status subresource,
    finalizers holding a deletion, delete preconditions and policies."""
    name = "kc-final"
    kubectl("create", "-f", "-", input=manifest.read_text().replace(NAME, name))
    kubectl("patch", "isvc", name, "--type", "json", "-p",
            '[{"op":"add","path":"/spec/predictor/maxReplicas","value":2},'
            '{"op":"add","path":"/metadata/finalizers","value":["example.com/hold"]}]')
    obj = json.loads(kubectl("get", "isvc", name, "-o", "json").stdout)
    assert obj["spec"]["predictor"]["maxReplicas"] == 2
    assert obj["metadata"]["finalizers"] == ["example.com/hold"], obj["metadata"]
    # A failing test operation: nothing of the patch applies.
    r = kubectl("patch", "isvc", name, "--type", "json", "-p",
                '[{"op":"replace","path":"/spec/predictor/maxReplicas","value":7},'
                '{"op":"test","path":"/spec/predictor/minReplicas","value":99}]', check=False)
    assert r.returncode == 1 and "testing value /spec/predictor/minReplicas failed" in r.stderr, r.stderr
    assert kubectl("get", "isvc", name, "-o",
                   "jsonpath={.spec.predictor.maxReplicas}").stdout == "2"
    # The status subresource reads the status; writing it is the platform's.
    status = json.loads(kubectl("get", "isvc", name, "--subresource=status", "-o", "json").stdout)
    assert "conditions" in status["status"], status
    resp = requests.patch(
        f"{platform.api}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/"
        f"{name}/status", data="{}",
        headers={**platform.auth, "Content-Type": "application/merge-patch+json"}, timeout=10)
    assert resp.status_code == 405, resp.text

    # Preconditions and propagation policies, as the kubernetes client sends them.
    from kubernetes import client, config as kube_config
    api = client.CustomObjectsApi(kube_config.new_client_from_config(
        str(platform.data_dir / "kubeconfig")))
    args = ("serving.kserve.io", "v1beta1", "default", "inferenceservices", name)
    for body, reason in [({"preconditions": {"uid": "not-its-uid"}}, "Conflict"),
                         ({"preconditions": {"resourceVersion": "1"}}, "Conflict"),
                         ({"propagationPolicy": "Orphan"}, "Invalid")]:
        with pytest.raises(client.ApiException) as e:
            api.delete_namespaced_custom_object(*args, body=body)
        assert json.loads(e.value.body)["reason"] == reason, e.value.body
    # With a finalizer a delete marks the object, which stays (and serves).
    r = kubectl("delete", "isvc", name, "--wait=false")
    assert f'"{name}" deleted' in r.stdout, r.stdout
    obj = json.loads(kubectl("get", "isvc", name, "-o", "json").stdout)
    assert obj["metadata"].get("deletionTimestamp"), obj["metadata"]
    # No new finalizer on an object being deleted.
    r = kubectl("patch", "isvc", name, "--type", "merge", "-p",
                '{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}', check=False)
    assert r.returncode == 1 and "no new finalizers can be added" in r.stderr, r.stderr
    # The last finalizer removed, it is gone.
    kubectl("patch", "isvc", name, "--type", "json", "-p",
            '[{"op":"remove","path":"/metadata/finalizers"}]')
    r = kubectl("get", "isvc", name, check=False)
    assert r.returncode == 1 and "NotFound" in r.stderr, r.stderr
    # Made again, it is another object.
    kubectl("create", "-f", "-", input=manifest.read_text().replace(NAME, name))
    again = json.loads(kubectl("get", "isvc", name, "-o", "json").stdout)
    assert again["metadata"]["uid"] != obj["metadata"]["uid"]
    assert "finalizers" not in again["metadata"] and "deletionTimestamp" not in again["metadata"]
    kubectl("delete", "isvc", name)


def test_reads_need_the_token(platform, kubectl, tmp_path):
    r = requests.get(f"{platform.api}/apis/serving.kserve.io/v1beta1/inferenceservices",
                     timeout=10)
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized", r.text
    wrong = tmp_path / "kubeconfig"
    text = (platform.data_dir / "kubeconfig").read_text()
    token = (platform.data_dir / "token").read_text().strip()
    wrong.write_text(text.replace(token, "f" * len(token)))
    r = kubectl("get", "isvc", kubeconfig=wrong, check=False)
    assert r.returncode == 1 and "You must be logged in to the server" in r.stderr, r.stderr
    assert stat.S_IMODE((platform.data_dir / "kubeconfig").stat().st_mode) == 0o600
    assert platform.cli("kubeconfig").stdout == text


def test_delete(kubectl):
    assert kubectl("delete", "isvc", NAME).stdout.startswith(
        f'inferenceservice.serving.kserve.io "{NAME}" deleted')
    r = kubectl("get", "isvc", NAME, check=False)
    assert r.returncode == 1 and "(NotFound)" in r.stderr


def test_kserve_sdk_client(platform, kubectl, tmp_path):
    """KServeClient as KServe's docs and e2e tests use it: create, wait for
    Ready, get, patch a canary, delete, with the kubeconfig osprey up wrote."""
    from kserve import (KServeClient, V1beta1InferenceService, V1beta1InferenceServiceSpec,
                        V1beta1ModelFormat, V1beta1ModelSpec, V1beta1PredictorSpec, constants)
    from kubernetes import client as k8s

    kserve = KServeClient(config_file=str(platform.data_dir / "kubeconfig"))
    name = "sdk-iris"
    isvc = V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1, kind=constants.KSERVE_KIND,
        metadata=k8s.V1ObjectMeta(name=name, namespace="default"),
        spec=V1beta1InferenceServiceSpec(predictor=V1beta1PredictorSpec(model=V1beta1ModelSpec(
            model_format=V1beta1ModelFormat(name="xgboost"),
            storage_uri=str(example_models() / "xgboost-iris")))))
    created = kserve.create(isvc)
    assert created["metadata"]["name"] == name
    kserve.wait_isvc_ready(name, namespace="default", timeout_seconds=READY_TIMEOUT_S,
                           polling_interval=1)
    got = kserve.get(name, namespace="default")
    assert got["status"]["components"]["predictor"]["latestReadyRevision"] == \
        f"{name}-predictor-00001"
    assert kserve.is_isvc_ready(name, namespace="default")
    # A canary: a new model with 20% of the traffic (as KServe's canary docs patch it).
    import shutil
    shutil.copytree(example_models() / "xgboost-iris", tmp_path / "v2")
    isvc.spec.predictor.canary_traffic_percent = 20
    isvc.spec.predictor.model.storage_uri = str(tmp_path / "v2")
    kserve.patch(name, isvc, namespace="default")
    harness.wait_until(
        lambda: any(t.get("percent") == 20 and t.get("latestRevision") for t in
                    kserve.get(name, namespace="default")["status"]["components"]["predictor"]
                    .get("traffic", [])),
        READY_TIMEOUT_S, "the canary revision to take 20%")
    assert kserve.get(name, namespace="default")["spec"]["predictor"]["canaryTrafficPercent"] == 20
    kserve.delete(name, namespace="default")
    r = kubectl("get", "isvc", name, check=False)
    assert r.returncode == 1 and "(NotFound)" in r.stderr


def test_watches(platform, kubectl, manifest, tmp_path):
    """`kubectl get -w` and the kubernetes Python client's watch."""
    import threading

    from kubernetes import client as k8s
    from kubernetes import config, watch

    binary = kubectl_binary()
    env = dict(os.environ, KUBECONFIG=str(platform.data_dir / "kubeconfig"))
    name = "kc-watch"
    proc = subprocess.Popen([str(binary), "get", "isvc", "-w", "--no-headers"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        api = k8s.CustomObjectsApi(config.new_client_from_config(
            str(platform.data_dir / "kubeconfig")))
        listed = api.list_namespaced_custom_object("serving.kserve.io", "v1beta1", "default",
                                                   "inferenceservices")
        since = listed["metadata"]["resourceVersion"]
        events = []
        w = watch.Watch()

        def follow():
            for e in w.stream(api.list_namespaced_custom_object, "serving.kserve.io",
                              "v1beta1", "default", "inferenceservices",
                              resource_version=since, timeout_seconds=60):
                if e["object"]["metadata"]["name"] == name:
                    events.append((e["type"], e["object"]))
                if e["type"] == "DELETED" and e["object"]["metadata"]["name"] == name:
                    w.stop()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        kubectl("create", "-f", "-", input=manifest.read_text().replace(NAME, name))
        harness.wait_until(lambda: ready(kubectl, name), READY_TIMEOUT_S, f"{name} Ready")
        harness.wait_until(lambda: any(line.split()[:1] == [name] and "True" in line.split()
                                       for line in list(lines)), 30,
                           "kubectl get -w to print the service Ready")
        kubectl("delete", "isvc", name)
        follower.join(timeout=30)
        assert not follower.is_alive(), events
        types = [t for t, _ in events]
        assert types[0] == "ADDED" and types[-1] == "DELETED" and "MODIFIED" in types, types
        versions = [int(o["metadata"]["resourceVersion"]) for _, o in events]
        assert versions == sorted(versions) and len(set(versions)) == len(versions), versions
        assert versions[0] > int(since)
        # The object was made with its API record in one step: its first
        # event already names its uid and who wrote its fields.
        first = events[0][1]["metadata"]
        assert [m["manager"] for m in first["managedFields"]] == ["kubectl-create"], first
        assert {o["metadata"]["uid"] for _, o in events} == {first["uid"]}, events
        # Resuming from the first event's version replays what came after it.
        again = [e["type"] for e in watch.Watch().stream(
            api.list_namespaced_custom_object, "serving.kserve.io", "v1beta1", "default",
            "inferenceservices", resource_version=str(versions[0]), timeout_seconds=1)
            if e["object"]["metadata"]["name"] == name]
        assert again == types[1:], (again, types)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # kubectl -w printed the service's rows as it changed (first not ready, then Ready).
    rows = [line.split() for line in lines if line.startswith(name + " ")]
    assert len(rows) >= 2 and "True" in rows[-1] or any("True" in r for r in rows), lines


def test_lists_page_and_select(platform, kubectl):
    url = f"{platform.api}/apis/serving.kserve.io/v1alpha1/clusterservingruntimes"
    all_items = requests.get(url, headers=platform.auth, timeout=10).json()["items"]
    assert len(all_items) > 5
    names, page = [], requests.get(url, params={"limit": 4}, headers=platform.auth,
                                   timeout=10).json()
    while True:
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        assert len(page["items"]) == 4
        page = requests.get(url, params={"limit": 4, "continue": token}, headers=platform.auth,
                            timeout=10).json()
    assert names == [i["metadata"]["name"] for i in all_items]
    one = requests.get(url, params={"fieldSelector": "metadata.name=kserve-xgbserver"},
                       headers=platform.auth, timeout=10).json()["items"]
    assert [i["metadata"]["name"] for i in one] == ["kserve-xgbserver"]
    r = requests.get(url, params={"labelSelector": "app in a, b"}, headers=platform.auth,
                     timeout=10)
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest", r.text
    # sendInitialEvents: what exists as ADDED, then one bookmark marking their end.
    r = requests.get(url, params={"watch": "1", "sendInitialEvents": "true",
                                  "allowWatchBookmarks": "true", "resourceVersionMatch":
                                  "NotOlderThan", "timeoutSeconds": "1"},
                     headers=platform.auth, timeout=10)
    events = [json.loads(line) for line in r.text.splitlines()]
    assert [e["type"] for e in events[:-1]] == ["ADDED"] * len(all_items), r.text[:500]
    assert events[-1]["type"] == "BOOKMARK" and events[-1]["object"]["metadata"][
        "annotations"]["k8s.io/initial-events-end"] == "true", events[-1]
    # A version older than the changes kept: 410 Expired as the watch's ERROR event.
    r = requests.get(f"{platform.api}/apis/serving.kserve.io/v1beta1/inferenceservices",
                     params={"watch": "1", "resourceVersion": "1"}, headers=platform.auth,
                     timeout=10)
    event = json.loads(r.text.splitlines()[0])
    assert event["type"] == "ERROR" and event["object"]["code"] == 410, r.text
