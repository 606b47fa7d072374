"""Fixtures shared by the gRPC client families.

Nothing here imports a protobuf module of package `inference`: each family
module brings its own (tritonclient.grpc, the kserve SDK, or stubs generated
from proto/inference.proto), and only one family runs per process (see
tests/integration/conftest.py).
"""

import pytest

from grpc_common import wait_grpc_ready


@pytest.fixture(scope="module")
def server(request, launcher, fixtures, tmp_path_factory):
    """One server per module with every fixture model, HTTP and gRPC on free ports."""
    label = request.module.__name__.removeprefix("test_")
    repo = fixtures.make_repository(tmp_path_factory.mktemp(f"{label}-repo"))
    with launcher.serve(["--model-repository", repo], label=label) as s:
        wait_grpc_ready(s)
        yield s
