"""TorchServe model archives through `osprey up` with KServe's YAML
(`predictor.pytorch.storageUri` pointing at KServe's torchserve layout:
model-store/*.mar and config/config.properties), run with TorchServe's own
handlers from the torchserve package and answered as KServe's torchserve
runtime answers:

- the served names are the store's (config.properties' model_snapshot), not
  the InferenceService's; the service is Ready once every model is;
- V1 {"instances": [{"data": "<base64 image>"}]} through the kserve envelope:
  a custom ImageClassifier handler on an eager model (model.py + state_dict)
  answers the digits, the built-in image_classifier on a TorchScript model
  answers top-5 labels from index_to_name.json, the built-in
  image_segmenter each pixel's class and probability, the built-in
  object_detector labelled boxes above its threshold, the built-in
  text_classifier labels with probabilities of a cleaned, tokenized text,
  a handler module's handle() function answers row sums; each equal to the
  same torch computation here;
- V1 :explain: the vision handler's integrated gradients (captum);
- V2 through the kserve SDK's REST client and plain JSON (kservev2 envelope:
  outputs named after the inputs), also on KServe's V2 shape of the service
  (model.modelFormat pytorch, protocolVersion v2);
- bad data gets 400 naming the problem and other requests are unaffected; a
  store whose configuration names a missing archive fails its revision with
  that reason.

V2 over gRPC: grpc/test_triton_grpc.py."""

import asyncio
import json

import numpy as np
import pytest
import requests

import harness
from platform_harness import Platform

import torchserve_models as ts_models

FAILURE_DEADLINE_S = 30

ISVC = """apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    pytorch:
      storageUri: file://{store}
"""


ISVC_V2 = """apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    model:
      modelFormat:
        name: pytorch
      protocolVersion: v2
      storageUri: file://{store}
"""

MODELS = ("mnist", "tiny", "sums", "seg", "det", "text")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ts_models.make_store(tmp_path_factory.mktemp("torchserve") / "store", models=MODELS)


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, store):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("torchserve") / "home").start()
    p.apply_text(ISVC.format(name="torchserve", store=store))
    yield p
    p.stop_everything()


def call(platform, method, path, name="torchserve", **kw):
    return requests.request(method, f"{platform.gateway}{path}",
                            headers={"Host": platform.host(name)},
                            timeout=harness.HTTP_TIMEOUT_S, **kw)


def predict(platform, model, instances, verb="predict"):
    return call(platform, "POST", f"/v1/models/{model}:{verb}", json={"instances": instances})


def test_the_store_serves_its_models_under_their_own_names(platform):
    assert platform.condition("torchserve")["status"] == "True"
    for model in MODELS:
        r = call(platform, "GET", f"/v2/models/{model}/ready")
        assert r.status_code == 200, (model, r.text)
        meta = call(platform, "GET", f"/v2/models/{model}").json()
        assert meta["name"] == model and meta["platform"] == "pytorch_torchserve", meta
    # The InferenceService's own name is no model of the store.
    assert call(platform, "GET", "/v1/models/torchserve").status_code == 404


def test_v1_custom_handler_on_an_eager_model(platform):
    pngs = [ts_models.digit_png(seed) for seed in range(3)]
    want = ts_models.mnist_reference(pngs)
    assert len(set(want)) == 3, want  # three different answers to tell apart
    r = predict(platform, "mnist", [{"data": ts_models.b64(p)} for p in pngs])
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": want}


def test_v1_builtin_image_classifier_answers_labels(platform):
    pngs = [ts_models.color_png(seed) for seed in range(2)]
    r = predict(platform, "tiny", [{"data": ts_models.b64(p)} for p in pngs])
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    want = ts_models.tiny_reference(pngs)
    assert len(got) == 2
    for g, w in zip(got, want):
        assert list(g) == list(w)  # the labels, most probable first
        np.testing.assert_allclose(list(g.values()), list(w.values()), rtol=1e-5)


def test_v1_builtin_image_segmenter_answers_each_pixels_class(platform):
    png = ts_models.color_png(4)
    r = predict(platform, "seg", [{"data": ts_models.b64(png)}])
    assert r.status_code == 200, r.text
    got = np.asarray(r.json()["predictions"])
    want = np.asarray(ts_models.seg_reference([png]))
    assert got.shape == want.shape == (1, 28, 28, 2)
    np.testing.assert_array_equal(got[..., 0], want[..., 0])  # the classes
    np.testing.assert_allclose(got[..., 1], want[..., 1], rtol=1e-5)


def test_v1_builtin_object_detector_answers_labelled_boxes(platform):
    # One image with one box over the threshold, one with two.
    pngs = [ts_models.solid_png((250, 10, 10)), ts_models.solid_png((0, 0, 0))]
    want = ts_models.det_reference(pngs)
    assert [len(w) for w in want] == [1, 2], want
    r = predict(platform, "det", [{"data": ts_models.b64(p)} for p in pngs])
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert [[sorted(box) for box in image] for image in got] == \
        [[sorted(box) for box in image] for image in want]
    for g_image, w_image in zip(got, want):
        for g, w in zip(g_image, w_image):
            assert g["score"] == pytest.approx(w["score"], rel=1e-5)
            assert {k: v for k, v in g.items() if k != "score"} == \
                {k: v for k, v in w.items() if k != "score"}


def test_v1_builtin_text_classifier_answers_labels(platform):
    for text in ts_models.TEXTS:
        r = predict(platform, "text", [{"data": text}])
        assert r.status_code == 200, r.text
        (got,) = r.json()["predictions"]
        want = ts_models.text_reference(text)
        assert list(got) == list(want)
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-5)


def test_v1_function_entry_point(platform):
    r = predict(platform, "sums", [[1, 2, 3], [4.5, 5, 6]])
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [6.0, 15.5]}


def test_v1_explain_is_the_handlers_integrated_gradients(platform):
    png = ts_models.digit_png(1)
    r = predict(platform, "mnist", [{"data": ts_models.b64(png)}], verb="explain")
    assert r.status_code == 200, r.text
    got = np.asarray(r.json()["explanations"])
    want = ts_models.mnist_attributions(png)
    assert got.shape == want.shape == (1, 1, 28, 28)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_v2_through_the_kserve_rest_client(platform):
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    png = ts_models.digit_png(2)
    image = InferInput("input-0", [1], "BYTES")
    image.set_data_from_numpy(np.array([ts_models.b64(png)], dtype=object))

    async def run():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=harness.HTTP_TIMEOUT_S))
        try:
            return await client.infer(platform.gateway,
                                      InferRequest(model_name="mnist", infer_inputs=[image]),
                                      model_name="mnist",
                                      headers={"Host": platform.host("torchserve")})
        finally:
            await client.close()

    res = asyncio.run(run())
    assert res.model_name == "mnist"
    out = res.outputs[0]
    assert out.name == "input-0" and out.datatype == "INT64"
    assert out.as_numpy().tolist() == ts_models.mnist_reference([png])


def test_v2_json_function_handler_names_outputs_after_inputs(platform):
    body = {"inputs": [
        {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "b", "shape": [1, 3], "datatype": "INT64", "data": [[5, 6, 7]]}]}
    r = call(platform, "POST", "/v2/models/sums/infer", json=body)
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    assert outputs["a"]["data"] == [3.0, 7.0] and outputs["a"]["shape"] == [2]
    assert outputs["b"]["data"] == [18.0] and outputs["b"]["shape"] == [1]


def test_kserves_v2_shape_of_the_service(platform, store):
    """model.modelFormat pytorch with protocolVersion v2, as KServe's V2
    torchserve samples write it: the same store, V2 answers."""
    platform.apply_text(ISVC_V2.format(name="torchserve-v2", store=store))
    png = ts_models.digit_png(5)
    body = {"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES",
                        "data": [ts_models.b64(png)]}]}
    r = call(platform, "POST", "/v2/models/mnist/infer", name="torchserve-v2", json=body)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["data"] == ts_models.mnist_reference([png]), out
    r = call(platform, "GET", "/v2/models/text", name="torchserve-v2")
    assert r.status_code == 200 and r.json()["platform"] == "pytorch_torchserve", r.text


def test_v2_labels_come_back_as_json_text(platform):
    png = ts_models.color_png(3)
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                        "data": [ts_models.b64(png)]}]}
    r = call(platform, "POST", "/v2/models/tiny/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "image" and out["datatype"] == "BYTES"
    got = json.loads(out["data"][0])
    want = ts_models.tiny_reference([png])[0]
    assert list(got) == list(want)


def test_bad_requests_are_400_and_harm_nothing(platform):
    r = predict(platform, "mnist", [{"data": "not base64!!"}])
    assert r.status_code == 400, r.text
    assert "cannot be decoded" in r.json()["error"], r.text
    r = predict(platform, "mnist", [{"data": ts_models.b64(b"not an image at all")}])
    assert r.status_code == 400, r.text
    assert "cannot identify image" in r.json()["error"], r.text
    r = call(platform, "POST", "/v1/models/mnist:predict", json={"inputs": [1]})
    assert r.status_code == 400 and '"instances"' in r.json()["error"], r.text
    r = call(platform, "POST", "/v1/models/mnist:predict", data=b"{not json")
    assert r.status_code == 400, r.text
    # The workers are still there and answer.
    png = ts_models.digit_png(0)
    r = predict(platform, "mnist", [{"data": ts_models.b64(png)}])
    assert r.status_code == 200 and r.json() == {"predictions": ts_models.mnist_reference([png])}


def test_a_store_naming_a_missing_archive_fails_its_revision(platform, tmp_path):
    store = ts_models.make_store(
        tmp_path / "store", models=("sums",),
        properties=ts_models.snapshot_properties({"sums": "gone.mar"}))
    platform.apply_text(ISVC.format(name="ts-broken", store=store), wait=False)

    def failed():
        items = platform.revisions("ts-broken")
        return items and items[0]["status"].get("phase") == "Failed"

    harness.wait_until(failed, FAILURE_DEADLINE_S, "the revision Failed with the store's error")
    message = platform.revisions("ts-broken")[0]["status"]["message"]
    assert "gone.mar" in message, message
    cond = platform.condition("ts-broken")
    assert cond["status"] == "False", cond
