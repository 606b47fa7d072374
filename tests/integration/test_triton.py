"""Triton model repositories through `osprey up`, with KServe's YAML and
tritonclient.http, as a KServe user serves them with the kserve-tritonserver
runtime: `modelFormat: triton` (no protocolVersion: KServe's default is v2)
with a storageUri naming the repository, each model then called by its
directory's name (/v2/models/<model>/infer on the InferenceService's host).

The repository, built here by the frameworks themselves:
- mlp: TorchScript (pytorch_libtorch), two versions, version_policy all,
  dynamic batching, two instances; answers equal torch's own forward, per
  version. flat: the same with its input and output reshaped.
- classifier: a scikit-learn logistic regression exported with skl2onnx
  (onnxruntime_onnx), its label output reshaped as Triton configurations
  write it, three instances (three worker processes); answers equal
  scikit-learn's and onnxruntime's own.
- add_sub: a model of Triton's Python backend (model.py, TritonPythonModel,
  triton_python_backend_utils), dynamic batching (its execute() gets the
  batch as a list of requests), two instances; TritonError and exceptions
  answered with their status.
- auto: a Python model whose config.pbtxt names only its backend; its
  auto_complete_config() declares the tensors (BYTES in, as bytes).
A second InferenceService (KServe's legacy `triton:` key) whose repository
asks for a GPU and TensorRT is refused at load, naming the reasons.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import requests

torch = pytest.importorskip("torch")
triton = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

import harness  # noqa: E402
from platform_harness import Platform, isvc_yaml  # noqa: E402

MLP_CONFIG = """
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
version_policy: { all { } }
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
"""

# The client sends 2x2 matrices; forward() takes them as rows of 4, and its
# rows of 3 are reported as 3x1.
FLAT_CONFIG = """
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 2, 2 ] reshape: { shape: [ 4 ] } } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3, 1 ] reshape: { shape: [ 3 ] } } ]
"""

CLASSIFIER_CONFIG = """
name: "classifier"
backend: "onnxruntime"
max_batch_size: 16
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [
  { name: "label" data_type: TYPE_INT64 dims: [ 1 ] reshape: { shape: [ ] } },
  { name: "probabilities" data_type: TYPE_FP32 dims: [ 3 ] }
]
instance_group [ { count: 3 kind: KIND_CPU } ]
"""

# Four rows (four one-row requests, or one of four rows) run at once; fewer
# wait for company up to 5 s.
ADD_SUB_CONFIG = """
name: "add_sub"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
         { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] },
         { name: "REQUESTS" data_type: TYPE_INT32 dims: [ 1 ] },
         { name: "WHO" data_type: TYPE_STRING dims: [ 1 ] } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 5000000 }
parameters { key: "scale" value: { string_value: "1" } }
"""

# Written as Triton's Python backend documents its models.
ADD_SUB_PY = '''
import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.args = args
        self.model_config = json.loads(args["model_config"])
        out0 = pb_utils.get_output_config_by_name(self.model_config, "OUTPUT0")
        self.out_dtype = pb_utils.triton_string_to_numpy(out0["data_type"])
        self.scale = float(self.model_config["parameters"]["scale"]["string_value"])

    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            if (a == -1).all():
                raise pb_utils.TritonModelException("INPUT0 of all -1 breaks the whole batch")
            if (a < 0).any():
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[],
                    error=pb_utils.TritonError("INPUT0 must not be negative",
                                               pb_utils.TritonError.INVALID_ARG)))
                continue
            rows = a.shape[0]
            who = json.dumps({"instance": self.args["model_instance_name"],
                              "kind": self.args["model_instance_kind"],
                              "version": self.args["model_version"],
                              "repository": self.args["model_repository"],
                              "id": request.request_id()})
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", ((a + b) * self.scale).astype(self.out_dtype)),
                pb_utils.Tensor("OUTPUT1", ((a - b) * self.scale).astype(self.out_dtype)),
                pb_utils.Tensor("REQUESTS", np.full((rows, 1), len(requests), np.int32)),
                pb_utils.Tensor("WHO", np.array([[who.encode()]] * rows, dtype=np.object_)),
            ]))
        return responses
'''

# No tensors in its config.pbtxt: the model declares them itself.
AUTO_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        auto_complete_model_config.add_input(
            {"name": "TEXT", "data_type": "TYPE_STRING", "dims": [-1]})
        auto_complete_model_config.add_output(
            {"name": "LENGTH", "data_type": "TYPE_INT64", "dims": [-1]})
        auto_complete_model_config.set_max_batch_size(0)
        return auto_complete_model_config

    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            lengths = np.array([len(t) for t in text], dtype=np.int64)  # bytes, as Triton gives
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("LENGTH", lengths)]))
        return responses
'''

GPU_CONFIG = """
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]
"""


def mlp(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 3)).eval()


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("triton-repo")
    nets = {}
    for version, seed in (("1", 1), ("2", 2)):
        nets[version] = mlp(seed)
        (root / "mlp" / version).mkdir(parents=True)
        torch.jit.script(nets[version]).save(str(root / "mlp" / version / "model.pt"))
    (root / "mlp" / "config.pbtxt").write_text(MLP_CONFIG)
    (root / "flat" / "1").mkdir(parents=True)
    torch.jit.script(nets["1"]).save(str(root / "flat" / "1" / "model.pt"))
    (root / "flat" / "config.pbtxt").write_text(FLAT_CONFIG)

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    lr = LogisticRegression(max_iter=500).fit(X, y)
    (root / "classifier" / "1").mkdir(parents=True)
    onnx_model = to_onnx(lr, X[:1], options={id(lr): {"zipmap": False}})
    (root / "classifier" / "1" / "model.onnx").write_bytes(onnx_model.SerializeToString())
    (root / "classifier" / "config.pbtxt").write_text(CLASSIFIER_CONFIG)

    (root / "add_sub" / "1").mkdir(parents=True)
    (root / "add_sub" / "1" / "model.py").write_text(ADD_SUB_PY)
    (root / "add_sub" / "config.pbtxt").write_text(ADD_SUB_CONFIG)

    (root / "auto" / "1").mkdir(parents=True)
    (root / "auto" / "1" / "model.py").write_text(AUTO_PY)
    (root / "auto" / "config.pbtxt").write_text('backend: "python"\n')

    gpu = tmp_path_factory.mktemp("triton-gpu-repo")
    (gpu / "on_gpu" / "1").mkdir(parents=True)
    torch.jit.script(nets["1"]).save(str(gpu / "on_gpu" / "1" / "model.pt"))
    (gpu / "on_gpu" / "config.pbtxt").write_text(GPU_CONFIG)
    (gpu / "plan" / "1").mkdir(parents=True)
    (gpu / "plan" / "1" / "model.plan").write_bytes(b"not really a plan")
    (gpu / "plan" / "config.pbtxt").write_text('platform: "tensorrt_plan"\nmax_batch_size: 1\n')
    return {"root": root, "gpu": gpu, "nets": nets, "lr": lr, "X": X,
            "onnx": root / "classifier" / "1" / "model.onnx"}


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, repository):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("triton") / "home").start()
    # KServe's YAML: modelFormat triton, no protocolVersion, the repository's root.
    p.apply_text(isvc_yaml("triton-repo", "triton", repository["root"]))
    yield p
    p.stop_everything()


@pytest.fixture(scope="module")
def client(platform):
    c = triton.InferenceServerClient(f"{harness.HOST}:{platform.gateway_port}", concurrency=8,
                                     connection_timeout=30, network_timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="module")
def host(platform):
    return {"Host": platform.host("triton-repo")}


def fp32_input(name, array):
    i = triton.InferInput(name, list(array.shape), "FP32")
    i.set_data_from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return i


def worker_count(platform, isvc, model):
    """Python worker processes of `model` under the isvc's replica."""
    [replica] = platform.revisions(isvc)[0]["status"]["replicaStatuses"]
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == replica["pid"] and b"osprey_worker.py" in b" ".join(cmdline) and \
                cmdline[cmdline.index(b"--model-name") + 1] == model.encode():
            count += 1
    return count


def test_the_repository_is_served_whole_over_v2(platform, client, host):
    st = platform.isvc("triton-repo")["status"]
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", st
    rev = platform.revisions("triton-repo")[0]
    assert json.dumps(rev).count('"protocolVersion": "v2"') >= 1, rev
    assert client.is_server_ready(headers=host)
    index = client.get_model_repository_index(headers=host)
    assert sorted((m["name"], m["version"], m["state"]) for m in index) == [
        ("add_sub", "1", "READY"), ("auto", "1", "READY"), ("classifier", "1", "READY"),
        ("flat", "1", "READY"), ("mlp", "1", "READY"), ("mlp", "2", "READY")]
    for model in ("mlp", "classifier", "add_sub", "auto"):
        assert client.is_model_ready(model, headers=host)


def test_torchscript_answers_as_torch_per_version(client, host, repository):
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    for version in ("", "1", "2"):
        r = client.infer("mlp", [fp32_input("INPUT__0", X)], model_version=version, headers=host)
        served = version or "2"  # no version asked: the highest
        assert r.get_response()["model_version"] == served
        with torch.no_grad():
            want = repository["nets"][served](torch.from_numpy(X)).numpy()
        np.testing.assert_allclose(r.as_numpy("OUTPUT__0"), want, rtol=1e-5, atol=1e-6)
    meta = client.get_model_metadata("mlp", headers=host)
    assert meta["versions"] == ["1", "2"] and meta["platform"] == "pytorch_libtorch"
    assert meta["inputs"] == [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 4]}]
    with pytest.raises(InferenceServerException) as e:
        client.infer("mlp", [fp32_input("INPUT__0", X)], model_version="3", headers=host)
    assert "version" in str(e.value) and "3" in str(e.value)


def test_torchscript_reshapes_as_configured(client, host, repository):
    X = np.random.default_rng(1).normal(size=(3, 2, 2)).astype(np.float32)
    r = client.infer("flat", [fp32_input("INPUT__0", X)], headers=host)
    with torch.no_grad():
        want = repository["nets"]["1"](torch.from_numpy(X.reshape(3, 4))).numpy()
    out = r.as_numpy("OUTPUT__0")
    assert out.shape == (3, 3, 1)
    np.testing.assert_allclose(out[:, :, 0], want, rtol=1e-5, atol=1e-6)


def test_onnx_answers_as_sklearn_and_onnxruntime(platform, client, host, repository):
    import onnxruntime as ort

    X = repository["X"][::10]
    r = client.infer("classifier", [fp32_input("X", X)], headers=host)
    label, proba = r.as_numpy("label"), r.as_numpy("probabilities")
    assert label.shape == (len(X), 1)  # dims [1], the model's own [N] reshaped
    np.testing.assert_array_equal(label[:, 0], repository["lr"].predict(X))
    np.testing.assert_allclose(proba, repository["lr"].predict_proba(X), atol=1e-5)
    session = ort.InferenceSession(str(repository["onnx"]), providers=["CPUExecutionProvider"])
    own_label, own_proba = session.run(["label", "probabilities"], {"X": X})
    np.testing.assert_array_equal(label[:, 0], own_label)
    np.testing.assert_array_equal(proba, own_proba)
    # instance_group count 3: three worker processes.
    assert worker_count(platform, "triton-repo", "classifier") == 3
    with pytest.raises(InferenceServerException) as e:
        client.infer("classifier", [fp32_input("X", np.zeros((2, 5)))], headers=host)
    assert "X" in str(e.value) and "400" in str(e.value.status())


def test_python_backend_model_runs_unchanged(platform, client, host, repository):
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    b = np.ones((4, 4), np.float32)
    r = client.infer("add_sub", [fp32_input("INPUT0", a), fp32_input("INPUT1", b)],
                     request_id="req-7", headers=host)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    who = json.loads(r.as_numpy("WHO")[0, 0])
    assert who["instance"] in ("add_sub_0_0", "add_sub_0_1"), who
    assert who["kind"] == "CPU" and who["version"] == "1" and who["id"] == "req-7"
    assert who["repository"].endswith("add_sub"), who
    assert r.get_response()["id"] == "req-7"
    assert worker_count(platform, "triton-repo", "add_sub") == 2


def test_python_backend_gets_a_dynamic_batch_as_a_list(client, host):
    a = np.full((1, 4), 2, np.float32)
    pending = [client.async_infer("add_sub", [fp32_input("INPUT0", a * i),
                                              fp32_input("INPUT1", a)], headers=host)
               for i in range(4)]
    results = [p.get_result() for p in pending]
    for i, r in enumerate(results):
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a * i + a)
        # Four one-row requests reached execute() together, not merged.
        assert r.as_numpy("REQUESTS").tolist() == [[4]]


def test_python_backend_errors_answer_their_request(client, host):
    a = np.ones((4, 4), np.float32)
    with pytest.raises(InferenceServerException) as e:
        client.infer("add_sub", [fp32_input("INPUT0", -a * 2), fp32_input("INPUT1", a)],
                     headers=host)
    assert "400" in str(e.value.status()) and "must not be negative" in str(e.value)
    with pytest.raises(InferenceServerException) as e:
        client.infer("add_sub", [fp32_input("INPUT0", -a), fp32_input("INPUT1", a)],
                     headers=host)
    assert "500" in str(e.value.status()) and "breaks the whole batch" in str(e.value)
    # The model still answers.
    r = client.infer("add_sub", [fp32_input("INPUT0", a), fp32_input("INPUT1", a)],
                     headers=host)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), 2 * a)


def test_python_model_completes_its_own_config(client, host):
    meta = client.get_model_metadata("auto", headers=host)
    assert meta["platform"] == "python"
    assert meta["inputs"] == [{"name": "TEXT", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "LENGTH", "datatype": "INT64", "shape": [-1]}]
    text = triton.InferInput("TEXT", [3], "BYTES")
    text.set_data_from_numpy(np.array(["ab", "héllo", ""], dtype=np.object_))
    r = client.infer("auto", [text], headers=host)
    assert r.as_numpy("LENGTH").tolist() == [2, 6, 0]
    config = client.get_model_config("auto", headers=host)
    assert config["input"][0]["name"] == "TEXT" and config["input"][0]["dims"] == [-1]


def test_model_config_is_tritons(client, host):
    config = client.get_model_config("add_sub", headers=host)
    assert config["name"] == "add_sub" and config["backend"] == "python"
    assert config["max_batch_size"] == 8
    assert config["input"][0]["dims"] == [4] and config["input"][0]["data_type"] == "TYPE_FP32"
    assert config["output"][3]["data_type"] == "TYPE_STRING"
    assert config["dynamic_batching"]["preferred_batch_size"] == [4]
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    assert config["instance_group"][0]["count"] == 2
    assert config["parameters"] == {"scale": {"string_value": "1"}}
    mlp_config = client.get_model_config("mlp", headers=host)
    assert mlp_config["platform"] == "pytorch_libtorch" and mlp_config["backend"] == "pytorch"
    assert mlp_config["version_policy"] == {"all": {}}
    assert mlp_config["default_model_filename"] == "model.pt"
    onnx_config = client.get_model_config("classifier", headers=host)
    assert onnx_config["platform"] == "onnxruntime_onnx"
    assert onnx_config["output"][0]["reshape"] == {"shape": []}
    assert onnx_config["instance_group"][0]["count"] == 3


def test_a_repository_asking_for_a_gpu_is_refused_with_the_reason(platform, repository):
    # KServe's legacy predictor key: `triton:`.
    out = platform.apply_text(f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: triton-gpu
spec:
  predictor:
    triton:
      storageUri: {repository["gpu"]}
""", check=False)
    assert out.returncode != 0
    st = platform.isvc("triton-gpu")["status"]
    info = st["modelStatus"]["lastFailureInfo"]
    assert info["reason"] == "ModelLoadFailed", st
    assert "model on_gpu failed to load" in info["message"], info
    assert "KIND_GPU" in info["message"], info
    assert "model plan failed to load" in info["message"] and "TensorRT" in info["message"], info
    # The repository that runs on CPU is not disturbed.
    r = requests.get(f"{platform.gateway}/v2/models/mlp/ready",
                     headers={"Host": platform.host("triton-repo")}, timeout=10)
    assert r.status_code == 200
