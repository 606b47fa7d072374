"""pytest wiring for Osprey's Kubernetes end-to-end tests (tests/kube).

These run against a real control plane: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, built by
`scripts/k8s-testenv.sh build` and started on loopback for the session. Only
the kubelet is played by the tests (kubelet.py).

Fixtures:
  kube        session: the running control plane (kubeenv.KubeEnv): kube.api (REST
              client as cluster-admin), kube.kubectl(*args), kube.kubeconfig,
              kube.env (KUBECONFIG and the built binaries first on PATH). Stopped at
              session end.
  kube_node   session: the node `osprey-node-0` (kubelet.KubeNode), started after
              `kube`. Container commands are looked for in the directory of
              $OSPREY_BIN (default build/dev/apps/osprey/osprey) first, so a
              container with command ["osprey", ...] runs the built binary.
  crds        session: KServe's CRDs and the built-in ClusterServingRuntimes.
  knative_crd session: Knative Serving's Service CRD (deploy/kubernetes/knative).
  namespace   per test: a fresh namespace, deleted after the test (the namespace
              controller deletes what is in it, the node stops its pods).

When the binaries are missing the tests that need them are skipped, naming the
build command; with OSPREY_REQUIRE_KUBE=1 they fail instead. When a test fails,
the report includes what the node knows of the pods it ran during the test and
the last lines of their output.
"""

import os
import re
import time
from pathlib import Path

import pytest

from kubeenv import REPO_ROOT, KubeEnv, binaries_dir, missing_binaries, wait_until  # noqa: F401
from kubelet import NODE_NAME, KubeNode

KUBE_DIR = Path(__file__).resolve().parent
DEFAULT_OSPREY_BIN = REPO_ROOT / "build" / "dev" / "apps" / "osprey" / "osprey"
KUBE_FIXTURES = {"kube", "kube_node", "namespace", "crds", "knative_crd"}


def require_kube() -> bool:
    return os.environ.get("OSPREY_REQUIRE_KUBE", "") not in ("", "0")


def missing_reason():
    """Why the control plane cannot start here, or None."""
    bin_dir = binaries_dir()
    missing = missing_binaries(bin_dir)
    if not missing:
        return None
    return (f"Kubernetes test binaries missing in {bin_dir} ({', '.join(missing)}); "
            f"build them with scripts/k8s-testenv.sh build (about 12 minutes)")


def osprey_bin_dir() -> Path:
    return Path(os.environ.get("OSPREY_BIN") or DEFAULT_OSPREY_BIN).resolve().parent


def pytest_report_header(config):
    return [f"kube binaries: {binaries_dir()}", f"kube node PATH first: {osprey_bin_dir()}"]


def pytest_collection_modifyitems(config, items):
    mine = [i for i in items if KUBE_DIR in Path(str(i.path)).resolve().parents
            and KUBE_FIXTURES & set(i.fixturenames)]
    if not mine or require_kube():
        return
    reason = missing_reason()
    if reason:
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def kube(tmp_path_factory):
    reason = missing_reason()
    if reason:  # only reached with OSPREY_REQUIRE_KUBE set
        pytest.fail(f"OSPREY_REQUIRE_KUBE is set but {reason}", pytrace=False)
    env = KubeEnv(tmp_path_factory.mktemp("kube"))
    try:
        env.start()
        yield env
    finally:
        env.stop()


@pytest.fixture(scope="session")
def kube_node(kube):
    node = KubeNode(kube, NODE_NAME, path=[osprey_bin_dir()])
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def crds(kube):
    """KServe's CRDs and the built-in ClusterServingRuntimes from deploy/kubernetes."""
    kube.kubectl("apply", "-k", REPO_ROOT / "deploy" / "kubernetes" / "crds")
    kube.kubectl("wait", "--for", "condition=established", "crd",
                 "-l", "app.kubernetes.io/part-of=osprey", "--timeout=60s")
    kube.kubectl("apply", "-f", REPO_ROOT / "deploy" / "kubernetes" / "clusterservingruntimes.yaml")


@pytest.fixture(scope="session")
def knative_crd(kube):
    """Knative Serving's Service kind, from deploy/kubernetes/knative. An
    operator or gateway started after it watches Knative Services."""
    kube.kubectl("apply", "-k", REPO_ROOT / "deploy" / "kubernetes" / "knative")
    kube.kubectl("wait", "--for", "condition=established", "crd/services.serving.knative.dev",
                 "--timeout=60s")


@pytest.fixture
def namespace(kube, request):
    """A fresh namespace named after the test; deleted (without waiting) after it."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{os.urandom(3).hex()}"
    kube.api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name}})
    yield name
    kube.api.delete(f"/api/v1/namespaces/{name}", missing_ok=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item._osprey_kube_started_at = time.monotonic()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or "kube_node" not in getattr(item, "fixturenames", ()):
        return
    node = item.funcargs.get("kube_node") if hasattr(item, "funcargs") else None
    if node is None:
        return
    since = getattr(item, "_osprey_kube_started_at", None)
    rep.sections.append((f"osprey test node {node.name}: pods", node.report(since)))
    try:
        tail = node.log_path.read_text(errors="replace").splitlines()[-40:]
        rep.sections.append((f"osprey test node {node.name}: log ({node.log_path})", "\n".join(tail)))
    except (OSError, AttributeError):
        pass
