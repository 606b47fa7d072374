"""InferenceService transformers and custom explainers through `osprey up`.

The user's kserve.Model scripts (tests/fixtures/transformer/) run unchanged
as the transformer and explainer containers, with the arguments Osprey
gives them (--model_name, --predictor_host, --http_port). Through the
service's host:
- an image transformer (base64 PGM images in, the class label out) in front
  of a TorchScript classifier, and a feature transformer (flower ids in,
  features from a local table, the species out) in front of an XGBoost
  classifier, each calling its predictor in REST v1, REST v2 and gRPC v2,
  each answering V1 and V2 clients: the labels are those torch and xgboost
  give for the same tensors, computed here with the frameworks themselves;
- the client's x-request-id reaches the predictor (the SDK forwards it, and
  the predictor's answer echoes it), through the predictor's revision;
- TransformerReady, status.components.transformer, revision names, the
  predictor still reachable on its own host and by path;
- the transformer's own canary: a second version takes its percentage of
  the traffic, the predictor keeps its one revision;
- a transformer that crashes at start: TransformerReady False with a reason;
- a custom explainer answering V1 :explain (an occlusion attribution from
  its own predictor calls, checked against xgboost), while :predict still
  goes through the transformer to the predictor.
"""

import base64
import csv
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

import harness
from platform_harness import READY_TIMEOUT_S, Platform

torch = pytest.importorskip("torch")
xgb = pytest.importorskip("xgboost")

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"
SCRIPTS = FIXTURES_DIR / "transformer"
sys.path.insert(0, str(FIXTURES_DIR))
import train_image_classifier as image_fixture  # noqa: E402

PROTOCOLS = ("v1", "v2", "grpc-v2")  # the transformer's protocol to its predictor
SPECIES = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_MODEL = "xgb-iris-softprob"


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def image_model():
    """The trained TorchScript classifier's directory (cached)."""
    return image_fixture.build(harness.fixtures_root())


@pytest.fixture(scope="module")
def image_net(image_model):
    net = torch.jit.load(str(image_model / "model.pt"))
    net.eval()
    return net


@pytest.fixture(scope="module")
def scripts(tmp_path_factory, image_model):
    """The transformer and explainer directories (their STORAGE_URI)."""
    root = tmp_path_factory.mktemp("transformer-scripts")
    image = root / "image"
    image.mkdir()
    shutil.copy(SCRIPTS / "image_transformer.py", image)
    shutil.copy(image_model / "labels.json", image)
    features = root / "features"
    features.mkdir()
    for name in ("feature_transformer.py", "features.csv", "explainer.py"):
        shutil.copy(SCRIPTS / name, features)
    crash = root / "crash"
    crash.mkdir()
    (crash / "transformer.py").write_text(
        "raise RuntimeError('the feature store is unreachable')\n")
    return {"image": image, "features": features, "crash": crash}


@pytest.fixture(scope="module")
def feature_table():
    with open(SCRIPTS / "features.csv", newline="") as f:
        return {r["flower_id"]: [float(r[c]) for c in FEATURES] for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def iris_booster(fixtures):
    booster = xgb.Booster(model_file=str(fixtures.model_dir(IRIS_MODEL) / "model.ubj"))
    booster.set_param({"nthread": 1})
    return booster


def iris_probabilities(booster, rows):
    return booster.predict(xgb.DMatrix(np.asarray(rows, dtype=np.float32), nthread=1))


def image_isvc(name, protocol, image_model, scripts):
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    model:
      modelFormat:
        name: pytorch
      storageUri: {image_model}
  transformer:
    containers:
      - name: kserve-container
        image: example.com/image-transformer:1
        command: ["python3", "image_transformer.py"]
        args: ["--protocol", "{protocol}"]
        env:
          - name: STORAGE_URI
            value: {scripts["image"]}
"""


def feature_isvc(name, protocol, iris_dir, scripts, transformer_extra="", env_extra="",
                 explainer=False):
    explainer_yaml = f"""
  explainer:
    containers:
      - name: kserve-container
        image: example.com/occlusion-explainer:1
        command: ["python3", "explainer.py"]
        env:
          - name: STORAGE_URI
            value: {scripts["features"]}
""" if explainer else ""
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    model:
      modelFormat:
        name: xgboost
      storageUri: {iris_dir}
  transformer:{transformer_extra}
    containers:
      - name: kserve-container
        image: example.com/feature-transformer:1
        command: ["python3", "feature_transformer.py"]
        args: ["--predictor_protocol={protocol}"]
        env:
          - name: STORAGE_URI
            value: {scripts["features"]}{env_extra}
""" + explainer_yaml


def image_name(protocol):
    return f"img-{protocol}"


def feature_name(protocol):
    return f"flowers-{protocol}"


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, fixtures, image_model, scripts):
    """One platform; the six protocol variants applied at once, each test
    waiting for the one it needs (a failure stays with its test)."""
    p = Platform(osprey_bin, tmp_path_factory.mktemp("transformer") / "home").start()
    docs = [image_isvc(image_name(proto), proto, image_model, scripts) for proto in PROTOCOLS]
    docs += [feature_isvc(feature_name(proto), proto, fixtures.model_dir(IRIS_MODEL), scripts)
             for proto in PROTOCOLS]
    try:
        p.apply_text("---\n".join(docs), wait=False)
        yield p
    finally:
        p.stop_everything()


# ---------------------------------------------------------------- helpers

def conditions(platform, name):
    return {c["type"]: c for c in platform.isvc(name)["status"].get("conditions", [])}


def wait_ready(platform, name, timeout=READY_TIMEOUT_S):
    def ready():
        c = conditions(platform, name)
        return c.get("Ready", {}).get("status") == "True" and c
    try:
        return harness.wait_until(ready, timeout, f"{name} Ready", interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}\nconditions: {conditions(platform, name)}\n"
                             f"--- osprey up log ---\n{platform.log()}") from None


def post(platform, host, path, body, headers=None):
    h = {"Host": host, **(headers or {})}
    return requests.post(f"{platform.gateway}{path}", json=body, headers=h,
                         timeout=harness.HTTP_TIMEOUT_S)


def isvc_host(platform, name):
    return platform.host(name)


def pgm_b64(pixels):
    data = b"P5\n# drawn by the test\n8 8\n255\n" + np.asarray(pixels, np.uint8).tobytes()
    return base64.b64encode(data).decode()


def images_and_labels(net, seed):
    """Images of every pattern, and the labels torch gives their tensors."""
    rng = np.random.default_rng(seed)
    images = [image_fixture.draw(label, rng) for label in image_fixture.LABELS for _ in range(2)]
    x = torch.from_numpy(image_fixture.normalize(np.stack(images))[:, None, :, :])
    with torch.no_grad():
        classes = net(x).argmax(dim=1).tolist()
    labels = [image_fixture.LABELS[c] for c in classes]
    # The probe must tell a wrong mapping from a right one.
    assert len(set(labels)) >= 3, labels
    return images, classes, labels


def v2_outputs(r):
    assert r.status_code == 200, r.text
    return {o["name"]: o for o in r.json()["outputs"]}


# ---------------------------------------------------------------- the image transformer

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_image_transformer_labels_what_the_classifier_gives(platform, image_net, protocol):
    name = image_name(protocol)
    wait_ready(platform, name)
    images, classes, labels = images_and_labels(image_net, seed=11)
    b64 = [pgm_b64(im) for im in images]
    host = isvc_host(platform, name)

    r = post(platform, host, f"/v1/models/{name}:predict",
             {"instances": [{"image_bytes": {"b64": b}} for b in b64]})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [{"label": l, "class": c}
                                        for l, c in zip(labels, classes)]}
    # The service's host reaches the transformer first.
    assert r.headers["x-osprey-revision"] == f"{name}-transformer-00001"

    r = post(platform, host, f"/v2/models/{name}/infer", {"inputs": [
        {"name": "image", "shape": [len(b64)], "datatype": "BYTES", "data": b64}]})
    outs = v2_outputs(r)
    assert outs["label"]["data"] == labels and outs["label"]["datatype"] == "BYTES"
    assert outs["class"]["data"] == classes
    assert r.headers["x-osprey-revision"] == f"{name}-transformer-00001"

    # A body that is no image is the transformer's 400, not the predictor's.
    r = post(platform, host, f"/v1/models/{name}:predict",
             {"instances": [{"image_bytes": {"b64": base64.b64encode(b"GIF89a").decode()}}]})
    assert r.status_code == 400, r.text
    assert "PGM" in r.text


def test_predictor_reachable_on_its_own_host_and_by_path(platform, image_net):
    name = image_name("v2")
    wait_ready(platform, name)
    images, _, _ = images_and_labels(image_net, seed=12)
    x = image_fixture.normalize(np.stack(images))[:, None, :, :]
    with torch.no_grad():
        logits = image_net(torch.from_numpy(x)).numpy()
    body = {"inputs": [{"name": "INPUT__0", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}
    for host, path in ((f"{name}-predictor-default.example.com", f"/v2/models/{name}/infer"),
                       ("anything.example.com",
                        f"/serving/default/{name}-predictor/v2/models/{name}/infer")):
        r = post(platform, host, path, body)
        out = v2_outputs(r)["OUTPUT__0"]
        np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), logits,
                                   rtol=1e-5, atol=1e-5)
        assert r.headers["x-osprey-revision"] == f"{name}-predictor-00001", (host, path)


def test_transformer_status_and_revisions(platform):
    name = image_name("v1")
    conds = wait_ready(platform, name)
    assert conds["TransformerReady"]["status"] == "True", conds
    assert conds["PredictorReady"]["status"] == "True", conds
    status = platform.isvc(name)["status"]
    transformer = status["components"]["transformer"]
    assert transformer["latestCreatedRevision"] == f"{name}-transformer-00001", transformer
    assert transformer["latestReadyRevision"] == f"{name}-transformer-00001", transformer
    assert [(t["revisionName"], t["percent"]) for t in transformer["traffic"]] == [
        (f"{name}-transformer-00001", 100)], transformer
    port = platform.gateway_port
    assert transformer["url"] == f"http://{name}-transformer-default.example.com:{port}", \
        transformer
    predictor = status["components"]["predictor"]
    assert predictor["latestReadyRevision"] == f"{name}-predictor-00001", predictor
    # The service's URL stays the service's own host (reached through the transformer).
    assert status["url"] == f"http://{name}-default.example.com:{port}", status
    assert predictor["url"] == f"http://{name}-predictor-default.example.com:{port}", predictor
    revisions = {r["metadata"]["name"]: r for r in platform.revisions(name)}
    assert set(revisions) == {f"{name}-predictor-00001", f"{name}-transformer-00001"}, revisions
    assert revisions[f"{name}-transformer-00001"]["spec"]["component"] == "transformer"
    # The transformer's own host answers too.
    r = requests.get(f"{platform.gateway}/v1/models/{name}",
                     headers={"Host": f"{name}-transformer-default.example.com"},
                     timeout=harness.HTTP_TIMEOUT_S)
    assert r.status_code == 200 and r.json()["ready"] is True, r.text
    assert r.headers["x-osprey-revision"] == f"{name}-transformer-00001"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_transformers_get_kserve_arguments(platform, protocol):
    """--model_name, --http_port, --enable_grpc=false, and --predictor_host:
    the gateway's path to the predictor for REST, its gRPC ingress for
    predictors with --protocol / --predictor_protocol grpc-v2 (both flags'
    spellings: `--protocol grpc-v2` and `--predictor_protocol=grpc-v2`)."""
    for name in (image_name(protocol), feature_name(protocol)):
        wait_ready(platform, name)
        revs = {r["spec"]["component"]: r for r in platform.revisions(name)}
        argv = revs["transformer"]["status"]["local"]["command"]
        flags = {a: b for a, b in zip(argv, argv[1:]) if a.startswith("--")}
        assert flags.get("--model_name") == name, argv
        assert "--http_port" in flags and "--enable_grpc=false" in argv, argv
        host = flags["--predictor_host"]
        if protocol == "grpc-v2":
            address, port = host.split(":")
            predictor_ports = {r["port"] for r in revs["predictor"]["status"]["replicaStatuses"]}
            assert address == "127.0.0.1" and port.isdigit(), argv
            assert int(port) not in {platform.gateway_port, *predictor_ports}, argv
        else:
            assert host == f"127.0.0.1:{platform.gateway_port}/serving/default/{name}-predictor", \
                argv


# ---------------------------------------------------------------- the feature transformer

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_feature_transformer_answers_what_xgboost_gives(platform, feature_table, iris_booster,
                                                        protocol):
    name = feature_name(protocol)
    wait_ready(platform, name)
    ids = ["f-01", "f-05", "f-10", "f-07", "f-03"]
    probs = iris_probabilities(iris_booster, [feature_table[i] for i in ids])
    species = [SPECIES[c] for c in probs.argmax(axis=1)]
    assert len(set(species)) == 3, species
    best = probs.max(axis=1)
    host = isvc_host(platform, name)

    r = post(platform, host, f"/v1/models/{name}:predict",
             {"instances": [{"flower_id": i} for i in ids]})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert [(p["flower_id"], p["species"]) for p in got] == list(zip(ids, species)), got
    np.testing.assert_allclose([p["probability"] for p in got], best, rtol=1e-6)
    assert r.headers["x-osprey-revision"] == f"{name}-transformer-00001"

    r = post(platform, host, f"/v2/models/{name}/infer", {"inputs": [
        {"name": "flower_id", "shape": [len(ids)], "datatype": "BYTES", "data": ids}]})
    outs = v2_outputs(r)
    assert outs["species"]["data"] == species
    np.testing.assert_allclose(outs["probability"]["data"], best, rtol=1e-6)

    # The transformer's own refusal passes through as it gave it.
    r = post(platform, host, f"/v1/models/{name}:predict",
             {"instances": [{"flower_id": "f-99"}]})
    assert r.status_code == 400, r.text
    assert "unknown flower_id f-99" in r.text


@pytest.mark.parametrize("protocol", ("v1", "v2"))
def test_request_id_reaches_the_predictor_through_its_revision(platform, protocol):
    """The SDK forwards the client's x-request-id to the predictor (REST);
    the predictor echoes it on its answer, which the transformer reports
    with the revision that answered."""
    name = feature_name(protocol)
    wait_ready(platform, name)
    request_id = f"transformer-test-{uuid.uuid4()}"
    r = post(platform, isvc_host(platform, name), f"/v1/models/{name}:predict",
             {"instances": [{"flower_id": "f-02"}]}, headers={"x-request-id": request_id})
    assert r.status_code == 200, r.text
    assert r.json()["predictor"] == {"x-request-id": request_id,
                                     "x-osprey-revision": f"{name}-predictor-00001"}, r.json()


# ---------------------------------------------------------------- the transformer's canary

def test_transformer_canary_splits_the_transformer_only(platform, fixtures, scripts):
    name = "flowers-canary"
    iris_dir = fixtures.model_dir(IRIS_MODEL)

    def version(n, canary=None):
        extra = f"\n    canaryTrafficPercent: {canary}" if canary is not None else ""
        env = f"\n          - name: TRANSFORMER_VERSION\n            value: \"{n}\""
        return feature_isvc(name, "v1", iris_dir, scripts, transformer_extra=extra, env_extra=env)

    platform.apply_text(version(1))
    wait_ready(platform, name)
    platform.apply_text(version(2, canary=30))
    wait_ready(platform, name)

    def split_in_status():
        t = platform.isvc(name)["status"]["components"]["transformer"]
        return {x["revisionName"]: x["percent"] for x in t["traffic"]}

    rev1, rev2 = f"{name}-transformer-00001", f"{name}-transformer-00002"
    harness.wait_until(lambda: split_in_status() == {rev1: 70, rev2: 30}, READY_TIMEOUT_S,
                       f"traffic 70/30 in status (now {split_in_status()})", interval=0.2)
    status = platform.isvc(name)["status"]
    assert status["components"]["transformer"]["latestReadyRevision"] == rev2, status
    assert conditions(platform, name)["TransformerReady"]["status"] == "True"
    # The predictor did not change: one revision, all the traffic.
    predictor = status["components"]["predictor"]
    assert predictor["latestCreatedRevision"] == f"{name}-predictor-00001", predictor
    assert [(t["revisionName"], t["percent"]) for t in predictor["traffic"]] == [
        (f"{name}-predictor-00001", 100)], predictor

    counts = {}
    n = 400
    with requests.Session() as s:
        for _ in range(n):
            r = s.post(f"{platform.gateway}/v1/models/{name}:predict",
                       json={"instances": [{"flower_id": "f-04"}]},
                       headers={"Host": isvc_host(platform, name)}, timeout=harness.HTTP_TIMEOUT_S)
            assert r.status_code == 200, r.text
            assert r.json()["predictions"][0]["species"] == "versicolor"
            rev = r.headers["x-osprey-revision"]
            counts[rev] = counts.get(rev, 0) + 1
    assert set(counts) == {rev1, rev2}, counts
    # 30% of 400: the standard deviation is 9 answers; 7 of them either way.
    assert abs(counts[rev2] - 0.3 * n) <= 64, counts

    # Promoted: the second version takes all the transformer's traffic.
    platform.apply_text(version(2))
    harness.wait_until(lambda: split_in_status() == {rev2: 100}, READY_TIMEOUT_S,
                       f"traffic 100 to {rev2} (now {split_in_status()})", interval=0.2)
    r = post(platform, isvc_host(platform, name), f"/v1/models/{name}:predict",
             {"instances": [{"flower_id": "f-04"}]})
    assert r.status_code == 200 and r.headers["x-osprey-revision"] == rev2, r.text


# ---------------------------------------------------------------- a transformer that fails

def test_transformer_crashing_at_start_is_reported(platform, fixtures, scripts):
    name = "flowers-crash"
    yaml = feature_isvc(name, "v1", fixtures.model_dir(IRIS_MODEL), scripts).replace(
        'command: ["python3", "feature_transformer.py"]', 'command: ["python3", "transformer.py"]'
    ).replace(f"value: {scripts['features']}", f"value: {scripts['crash']}")
    assert "transformer.py" in yaml and str(scripts["crash"]) in yaml
    platform.apply_text(yaml, wait=False)

    def failed():
        c = conditions(platform, name).get("TransformerReady", {})
        return (c.get("status") == "False" and "the feature store is unreachable"
                in c.get("message", "") and c)
    try:
        cond = harness.wait_until(failed, READY_TIMEOUT_S,
                                  f"{name} TransformerReady False with the script's error",
                                  interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}\nconditions: {conditions(platform, name)}") from None
    assert cond["reason"], cond
    conds = conditions(platform, name)
    assert conds["Ready"]["status"] == "False", conds
    # The predictor itself is fine, and says so.
    harness.wait_until(
        lambda: conditions(platform, name).get("PredictorReady", {}).get("status") == "True",
        READY_TIMEOUT_S, f"{name} PredictorReady", interval=0.2)
    transformer = platform.isvc(name)["status"]["components"]["transformer"]
    assert transformer["latestCreatedRevision"] == f"{name}-transformer-00001", transformer
    assert not transformer.get("latestReadyRevision"), transformer
    # The service does not bypass its transformer: no answer from the predictor.
    r = post(platform, isvc_host(platform, name), f"/v1/models/{name}:predict",
             {"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert r.status_code == 503, (r.status_code, r.text)
    assert "x-osprey-revision" not in r.headers, r.headers


# ---------------------------------------------------------------- the custom explainer

def test_custom_explainer_answers_explain_while_predict_goes_through_the_transformer(
        platform, fixtures, scripts, feature_table, iris_booster):
    name = "flowers-explained"
    platform.apply_text(feature_isvc(name, "v1", fixtures.model_dir(IRIS_MODEL), scripts,
                                     explainer=True), wait=False)
    conds = wait_ready(platform, name)
    assert conds["ExplainerReady"]["status"] == "True", conds
    assert conds["TransformerReady"]["status"] == "True", conds
    explainer = platform.isvc(name)["status"]["components"]["explainer"]
    assert explainer["latestReadyRevision"] == f"{name}-explainer-00001", explainer
    assert [(t["revisionName"], t["percent"]) for t in explainer["traffic"]] == [
        (f"{name}-explainer-00001", 100)], explainer
    host = isvc_host(platform, name)

    rows = [feature_table[i] for i in ("f-05", "f-08", "f-10")]
    request_id = f"explain-{uuid.uuid4()}"
    r = post(platform, host, f"/v1/models/{name}:explain", {"instances": rows},
             headers={"x-request-id": request_id})
    assert r.status_code == 200, r.text
    assert r.headers["x-osprey-revision"] == f"{name}-explainer-00001"
    got = r.json()
    assert got["method"] == "occlusion"
    # The same attribution, computed here with xgboost itself.
    x = np.asarray(rows, dtype=np.float32)
    probs = iris_probabilities(iris_booster, x)
    occluded = np.repeat(x, x.shape[1], axis=0)
    occluded[np.arange(len(occluded)), np.tile(np.arange(x.shape[1]), len(x))] = 0.0
    probs_occluded = iris_probabilities(iris_booster, occluded).reshape(len(x), x.shape[1], -1)
    assert len(got["explanations"]) == len(rows)
    nonzero = 0
    for i, e in enumerate(got["explanations"]):
        c = int(probs[i].argmax())
        assert e["class"] == c, (i, e)
        np.testing.assert_allclose(e["probability"], probs[i, c], rtol=1e-6)
        want = probs[i, c] - probs_occluded[i, :, c]
        np.testing.assert_allclose(e["attributions"], want, rtol=1e-5, atol=1e-6)
        nonzero += int(np.count_nonzero(np.abs(want) > 1e-3))
    assert nonzero > 0  # the probe rows move the answer

    # The same :explain by the service's path and by model name on any host.
    for path, via_host in ((f"/serving/default/{name}/v1/models/{name}:explain", "localhost"),
                           (f"/v1/models/{name}:explain", "localhost")):
        r = post(platform, via_host, path, {"instances": rows})
        assert r.status_code == 200, (path, r.text)
        assert r.headers["x-osprey-revision"] == f"{name}-explainer-00001", path
        assert len(r.json()["explanations"]) == len(rows), path

    # :predict on the same host still goes through the transformer.
    r = post(platform, host, f"/v1/models/{name}:predict",
             {"instances": [{"flower_id": "f-05"}]}, headers={"x-request-id": request_id})
    assert r.status_code == 200, r.text
    assert r.headers["x-osprey-revision"] == f"{name}-transformer-00001"
    p = iris_probabilities(iris_booster, [feature_table["f-05"]])[0]
    assert r.json()["predictions"][0]["species"] == SPECIES[int(p.argmax())]
    assert r.json()["predictor"]["x-osprey-revision"] == f"{name}-predictor-00001"

    # The explainer's own host: KServe's default predict forwards to the predictor.
    r = post(platform, f"{name}-explainer-default.example.com", f"/v1/models/{name}:predict",
             {"instances": rows})
    assert r.status_code == 200, r.text
    assert r.headers["x-osprey-revision"] == f"{name}-explainer-00001"
    np.testing.assert_allclose(np.asarray(r.json()["predictions"]), probs, rtol=1e-6)
