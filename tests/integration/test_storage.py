"""`osprey storage pull` end to end: the storage initializer against real servers.

- s3://  versitygw (an S3 gateway over a POSIX directory, Apache-2.0) started
  here on a free port with its own root directory and keys; it checks SigV4
  signatures. Buckets and objects are made with boto3. scripts/deps.sh installs
  versitygw into build/.deps/bin; without it these tests skip, saying so.
- http://  a Python http.server in a thread, counting the requests it answers.
- pvc:// and file://  local directories.

gs:// has no public server here; its URL mapping and listing are covered by the
unit tests (src/storage/uri_test.cc, storage_test.cc with STORAGE_EMULATOR_HOST).
"""

import http.server
import io
import os
import secrets
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

import harness

VERSITYGW = harness.REPO_ROOT / "build" / ".deps" / "bin" / "versitygw"
PULL_TIMEOUT_S = 60
REGION = "us-east-1"

MODEL_FILES = {
    "model.bst": b"xgboost booster bytes \x00\x01\x02",
    "config/settings.json": b'{"objective": "multi:softprob"}',
}


def tar_gz(members):
    """A .tar.gz holding `members` ({name: bytes}), names written as given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name=name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tree(root):
    """{relative path: bytes} of every file under root."""
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def clean_env(**extra):
    """The environment without any S3/AWS/cache setting of the caller's, plus extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "S3_", "OSPREY_CACHE", "STORAGE_EMULATOR"))
    }
    env.update(extra)
    return env


def pull(binary, uri, dest, cache, env=None, args=()):
    return subprocess.run(
        [str(binary), "storage", "pull", uri, str(dest), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=PULL_TIMEOUT_S,
        env=env if env is not None else clean_env(),
    )


def describe(proc):
    return f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"


# --------------------------------------------------------------------------
# s3:// against versitygw


class VersityGw:
    def __init__(self, root, log_path):
        self.port = harness.free_port()
        self.endpoint = f"http://{harness.HOST}:{self.port}"
        self.access_key = "OSPREY" + secrets.token_hex(6).upper()
        self.secret_key = secrets.token_urlsafe(24)
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [
                str(VERSITYGW),
                "--access", self.access_key,
                "--secret", self.secret_key,
                "--region", REGION,
                "--port", f"{harness.HOST}:{self.port}",
                "posix", str(root),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    def wait_ready(self, client):
        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"versitygw exited with {self.proc.returncode}:\n"
                    f"{Path(self.log_path).read_text(errors='replace')}"
                )
            try:
                client.list_buckets()
                return True
            except Exception:  # not listening yet
                return False

        harness.wait_until(answers, 20, f"versitygw on {self.endpoint}", interval=0.1)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def env(self, **overrides):
        """The storage initializer's environment for this server (KServe's variable names)."""
        values = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }
        values.update(overrides)
        return clean_env(**{k: v for k, v in values.items() if v is not None})


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    if not VERSITYGW.is_file():
        pytest.skip(f"versitygw not installed at {VERSITYGW} (scripts/deps.sh installs it)")
    try:
        import boto3  # noqa: F401
    except ImportError:
        pytest.skip("boto3 not installed in the venv (scripts/requirements.txt lists it)")
    base = tmp_path_factory.mktemp("versitygw")
    (base / "root").mkdir()
    gw = VersityGw(base / "root", base / "versitygw.log")
    try:
        client = gw.client()
        gw.wait_ready(client)
        client.create_bucket(Bucket="models")
        for name, data in MODEL_FILES.items():
            client.put_object(Bucket="models", Key=f"iris/v1/{name}", Body=data)
        # A sibling whose key starts with the prefix "iris/v1" but is not under it.
        client.put_object(Bucket="models", Key="iris/v10/other.bst", Body=b"not this one")
        client.put_object(
            Bucket="models", Key="archives/iris.tar.gz", Body=tar_gz(MODEL_FILES)
        )
        yield gw
    finally:
        gw.stop()


@pytest.mark.parametrize("style", ["endpoint-url", "s3-endpoint-host"])
def test_s3_prefix_downloads_every_object_under_it(osprey_bin, s3, tmp_path, style):
    if style == "endpoint-url":
        env = s3.env()
    else:  # KServe's older spelling: host:port plus S3_USE_HTTPS=0
        env = s3.env(AWS_ENDPOINT_URL=None, S3_ENDPOINT=f"{harness.HOST}:{s3.port}", S3_USE_HTTPS="0")
    dest = tmp_path / "model"
    proc = pull(osprey_bin, "s3://models/iris/v1", dest, tmp_path / "cache", env)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.strip() == str(dest)
    assert tree(dest) == MODEL_FILES
    assert "downloading" in proc.stderr and "done" in proc.stderr, proc.stderr


def test_s3_single_archive_is_unpacked(osprey_bin, s3, tmp_path):
    dest = tmp_path / "model"
    proc = pull(osprey_bin, "s3://models/archives/iris.tar.gz", dest, tmp_path / "cache", s3.env())
    assert proc.returncode == 0, describe(proc)
    assert tree(dest) == MODEL_FILES
    assert "unpacking" in proc.stderr


def test_s3_wrong_secret_is_refused_for_its_signature(osprey_bin, s3, tmp_path):
    env = s3.env(AWS_SECRET_ACCESS_KEY=s3.secret_key + "x")
    proc = pull(osprey_bin, "s3://models/iris/v1", tmp_path / "model", tmp_path / "cache", env)
    assert proc.returncode == 1, describe(proc)
    assert "osprey storage:" in proc.stderr
    assert "signature" in proc.stderr.lower(), proc.stderr
    assert "s3://models/iris/v1" in proc.stderr
    assert not (tmp_path / "model").exists() or not any((tmp_path / "model").iterdir())


def test_s3_unknown_access_key_is_refused(osprey_bin, s3, tmp_path):
    env = s3.env(AWS_ACCESS_KEY_ID="NOSUCHKEY0000000")
    proc = pull(osprey_bin, "s3://models/iris/v1", tmp_path / "model", tmp_path / "cache", env)
    assert proc.returncode == 1, describe(proc)
    # AWS says InvalidAccessKeyId (403); versitygw XAdminUserNotFound (404).
    assert "access key" in proc.stderr.lower(), proc.stderr


def test_s3_missing_key_is_named(osprey_bin, s3, tmp_path):
    proc = pull(osprey_bin, "s3://models/no/such/model", tmp_path / "m", tmp_path / "cache", s3.env())
    assert proc.returncode == 1, describe(proc)
    assert "s3://models/no/such/model" in proc.stderr, proc.stderr


def test_s3_missing_bucket_is_named(osprey_bin, s3, tmp_path):
    proc = pull(osprey_bin, "s3://nosuchbucket/m", tmp_path / "m", tmp_path / "cache", s3.env())
    assert proc.returncode == 1, describe(proc)
    assert "NoSuchBucket" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------
# http:// against a counting http.server


class CountingServer:
    """Serves `routes` ({path: bytes}); anything else is a 404. Counts requests."""

    def __init__(self, routes):
        self.routes = routes
        self.lock = threading.Lock()
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with outer.lock:
                    outer.requests.append(self.path)
                body = outer.routes.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_error(404, "no such model")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((harness.HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://{harness.HOST}:{self.server.server_address[1]}{path}"

    def count(self, path):
        with self.lock:
            return sum(1 for p in self.requests if p.split("?", 1)[0] == path)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def web():
    server = CountingServer(
        {
            "/models/iris.tar.gz": tar_gz(MODEL_FILES),
            "/models/evil.tar.gz": tar_gz({"model.bst": b"ok", "../escaped.txt": b"pwned"}),
            "/models/model.bst": MODEL_FILES["model.bst"],
        }
    )
    yield server
    server.stop()


def test_http_archive_is_unpacked_and_second_pull_comes_from_cache(osprey_bin, web, tmp_path):
    cache = tmp_path / "cache"
    uri = web.url("/models/iris.tar.gz")
    first = pull(osprey_bin, uri, tmp_path / "a", cache)
    assert first.returncode == 0, describe(first)
    assert tree(tmp_path / "a") == MODEL_FILES
    assert web.count("/models/iris.tar.gz") == 1

    second = pull(osprey_bin, uri, tmp_path / "b", cache)
    assert second.returncode == 0, describe(second)
    assert tree(tmp_path / "b") == MODEL_FILES
    assert "cached" in second.stderr, second.stderr
    assert web.count("/models/iris.tar.gz") == 1, "the second pull went to the network"


def test_http_single_file(osprey_bin, web, tmp_path):
    proc = pull(osprey_bin, web.url("/models/model.bst"), tmp_path / "m", tmp_path / "cache")
    assert proc.returncode == 0, describe(proc)
    assert tree(tmp_path / "m") == {"model.bst": MODEL_FILES["model.bst"]}


def test_http_archive_escaping_its_directory_is_refused(osprey_bin, web, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    proc = pull(osprey_bin, web.url("/models/evil.tar.gz"), work / "m", work / "cache")
    assert proc.returncode == 1, describe(proc)
    assert "'../escaped.txt'" in proc.stderr, proc.stderr
    assert not list(tmp_path.rglob("escaped.txt"))


def test_http_404_is_named(osprey_bin, web, tmp_path):
    uri = web.url("/models/missing.bst")
    proc = pull(osprey_bin, uri, tmp_path / "m", tmp_path / "cache")
    assert proc.returncode == 1, describe(proc)
    assert uri in proc.stderr and "404" in proc.stderr, proc.stderr
    assert web.count("/models/missing.bst") == 1, "a 404 is not retried"


# --------------------------------------------------------------------------
# pvc:// and file://


@pytest.fixture
def local_model(tmp_path):
    root = tmp_path / "pvcs" / "claim" / "models" / "iris"
    for name, data in MODEL_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_pvc_maps_under_the_pvc_root(osprey_bin, local_model, tmp_path):
    dest = tmp_path / "m"
    proc = pull(
        osprey_bin, "pvc://claim/models/iris", dest, tmp_path / "cache",
        args=("--pvc-root", str(tmp_path / "pvcs")),
    )
    assert proc.returncode == 0, describe(proc)
    assert tree(dest) == MODEL_FILES


def test_pvc_without_root_or_path_fails(osprey_bin, local_model, tmp_path):
    proc = pull(osprey_bin, "pvc://claim/models/iris", tmp_path / "m", tmp_path / "cache")
    assert proc.returncode == 1 and "--pvc-root" in proc.stderr, describe(proc)
    proc = pull(
        osprey_bin, "pvc://claim/models/none", tmp_path / "m", tmp_path / "cache",
        args=("--pvc-root", str(tmp_path / "pvcs")),
    )
    assert proc.returncode == 1 and "does not exist" in proc.stderr, describe(proc)


def test_file_uri_and_bare_path(osprey_bin, local_model, tmp_path):
    proc = pull(osprey_bin, f"file://{local_model}", tmp_path / "a", tmp_path / "cache")
    assert proc.returncode == 0, describe(proc)
    assert tree(tmp_path / "a") == MODEL_FILES
    proc = pull(osprey_bin, str(local_model / "model.bst"), tmp_path / "b", tmp_path / "cache")
    assert proc.returncode == 0, describe(proc)
    assert tree(tmp_path / "b") == {"model.bst": MODEL_FILES["model.bst"]}
    proc = pull(osprey_bin, f"file://{tmp_path}/nothing", tmp_path / "c", tmp_path / "cache")
    assert proc.returncode == 1 and "no such file" in proc.stderr, describe(proc)


def test_help_and_usage(osprey_bin):
    proc = subprocess.run([str(osprey_bin), "storage", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "usage: osprey storage pull URI DIR" in proc.stdout
    proc = subprocess.run([str(osprey_bin), "storage", "pull"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
