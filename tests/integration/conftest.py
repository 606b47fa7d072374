"""pytest wiring for Osprey's end-to-end suite.

Fixtures:
  osprey_bin   the server binary ($OSPREY_BIN, else build/dev/apps/osprey/osprey);
               a missing binary fails every test that needs it, with the path.
  fixtures     trained models and expected predictions (tests/fixtures/train_iris.py,
               cached under $OSPREY_FIXTURES, else build/fixtures).
  launcher     starts servers: launcher.serve(args, label) is a context manager
               (for module-scoped servers), launcher.start(args, label) returns a
               running server the caller stops.
  osprey       per-test factory: osprey(args, label) -> running server, stopped
               at the end of the test.

When a test fails, the stderr of every server that was running during it is
attached to the report.

gRPC client families (tests/integration/grpc): tritonclient.grpc, the kserve
SDK and stubs generated from proto/inference.proto each register the protobuf
package `inference` in the default descriptor pool, so two of them cannot be
imported into one process. A plain run never collects tests/integration/grpc;
OSPREY_GRPC_SUITE=<family> (`triton`, `kserve`, `stubs`, `gateway`, or the file name, e.g.
test_triton_grpc.py) collects that one family and nothing else. Naming a single
family file on the command line selects it too. tests/run_integration.sh runs
the HTTP suites and then each family in its own process.
"""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness


GRPC_DIR = Path(__file__).resolve().parent / "grpc"
GRPC_FAMILIES = ("test_triton_grpc.py", "test_kserve_grpc.py", "test_stubs_grpc.py",
                 "test_gateway_grpc.py")


def _family_from_env():
    name = os.environ.get("OSPREY_GRPC_SUITE", "").strip()
    if not name:
        return None
    name = Path(name).name
    if not name.endswith(".py"):
        name = f"test_{name}_grpc.py"
    if name not in GRPC_FAMILIES:
        raise pytest.UsageError(
            f"OSPREY_GRPC_SUITE={os.environ['OSPREY_GRPC_SUITE']!r} names no gRPC family; "
            f"use one of {', '.join(GRPC_FAMILIES)} (or triton, kserve, stubs, gateway)"
        )
    return name


def _family_from_args(config):
    """The family file when the command line names exactly one, and nothing else."""
    named = set()
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path.parent != GRPC_DIR or path.name not in GRPC_FAMILIES:
            return None
        named.add(path.name)
    return named.pop() if len(named) == 1 else None


def pytest_configure(config):
    config._osprey_grpc_family = _family_from_env() or _family_from_args(config)


def pytest_ignore_collect(collection_path, config):
    """Keeps each gRPC family alone in its process, and out of plain runs."""
    family = getattr(config, "_osprey_grpc_family", None)
    path = Path(collection_path).resolve()
    if family is None:
        return True if path == GRPC_DIR or GRPC_DIR in path.parents else None
    if path.is_dir():
        return None
    if path.name.startswith("test_") and path.suffix == ".py":
        return True if path != GRPC_DIR / family else None
    return None


def pytest_report_header(config):
    family = getattr(config, "_osprey_grpc_family", None)
    return [
        f"osprey binary: {harness.osprey_binary()}",
        f"osprey fixtures: {harness.fixtures_root()}",
        f"osprey gRPC family: {family or 'none (tests/integration/grpc not collected)'}",
    ]


@pytest.fixture(scope="session")
def osprey_bin():
    path = harness.osprey_binary()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"osprey binary not found or not executable at {path}; build it first "
            f"(or point OSPREY_BIN at it)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def fixtures():
    root = harness.fixtures_root()
    proc = subprocess.run(
        [sys.executable, str(harness.TRAINER), str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"fixture trainer failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )
    return harness.Fixtures(root)


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("osprey-logs")


class Launcher:
    def __init__(self, binary, logs_dir):
        self.binary = binary
        self.logs_dir = logs_dir
        self.count = 0

    def start(self, args, label="osprey", ready=True, ready_models=None, env=None):
        """Starts a server and waits for liveness, then readiness.

        ready=True waits for /v2/health/ready; ready_models waits for those
        models instead; ready=False waits for liveness only.
        """
        self.count += 1
        server = harness.OspreyServer(self.binary, args, self.logs_dir, f"{self.count:02d}-{label}",
                                      env=env)
        server.start()
        try:
            if ready_models is not None:
                server.wait_ready(ready_models)
            elif ready:
                server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    @contextlib.contextmanager
    def serve(self, args, label="osprey", **kw):
        server = self.start(args, label, **kw)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def launcher(osprey_bin, logs_dir):
    return Launcher(osprey_bin, logs_dir)


@pytest.fixture
def osprey(launcher):
    started = []

    def start(args, label="osprey", **kw):
        server = launcher.start(args, label, **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item._osprey_started_at = time.monotonic()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        since = getattr(item, "_osprey_started_at", 0.0)
        for server in harness.relevant_servers(since):
            rep.sections.append(
                (
                    f"osprey stderr: {server.label} ({server.stderr_path})",
                    server.log_tail(),
                )
            )
