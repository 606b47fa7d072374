"""KServe's ART explainer (`spec.explainer.art`) through `osprey up`, with
KServe's sample shape: an sklearn digit classifier as the predictor (8x8
images scaled to [-0.5, 0.5], flattened), `art: {type: SquareAttack,
config: {nb_classes: "10", ...}}` as the explainer, and
`/v1/models/{name}:explain` with {"instances": [image, [label]]}:

- the answer is KServe's: the adversarial example (the image's shape), its
  L2 distance to the image, and the predictor's classes of both, each checked
  against the sklearn model itself; the example stays within SquareAttack's
  L-inf budget and, for the image nearest a class boundary, changes the class;
- the explainer really asked the predictor (the predictor's request count grew);
- requests that are not [image, label] get 400 naming the shape wanted;
- an ART type other than SquareAttack is refused at apply, naming the field.
"""

import numpy as np
import pytest
import requests

import harness
from platform_harness import Platform

import art  # noqa: F401 (installed by scripts/deps.sh: a missing one fails, never skips)
import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

EPS = 0.3  # SquareAttack's default L-inf budget

ISVC = """apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: artserver
spec:
  predictor:
    sklearn:
      storageUri: file://{model_dir}
  explainer:
    art:
      type: {type}
      config:
        nb_classes: "10"
        max_iter: "200"
"""


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    images = data.images / 16.0 - 0.5  # [-0.5, 0.5], as KServe's MNIST sample
    return images, data.target


@pytest.fixture(scope="module")
def model(digits, tmp_path_factory):
    images, labels = digits
    clf = LogisticRegression(max_iter=2000).fit(images.reshape(len(images), -1), labels)
    model_dir = tmp_path_factory.mktemp("art-digits")
    joblib.dump(clf, model_dir / "model.joblib")
    return clf, model_dir


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, model):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("art") / "home").start()
    p.apply_text(ISVC.format(model_dir=model[1], type="SquareAttack"))
    yield p
    p.stop_everything()


def explain(platform, body):
    return requests.post(f"{platform.gateway}/v1/models/artserver:explain", json=body,
                         headers={"Host": platform.host("artserver")},
                         timeout=harness.HTTP_TIMEOUT_S)


def predictor_requests(platform):
    text = requests.get(f"{platform.api}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("osprey_gateway_requests_total{") and 'component="predictor"' in line \
                and 'inferenceservice="artserver"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def nearest_to_a_boundary(clf, images, labels):
    """The correctly classified image nearest a class boundary (SquareAttack
    leaves a misclassified one as it is)."""
    flat = images.reshape(len(images), -1)
    scores = np.sort(clf.decision_function(flat), axis=1)
    margin = scores[:, -1] - scores[:, -2]
    margin[clf.predict(flat) != labels] = np.inf
    return int(np.argmin(margin))


def test_explain_answers_an_adversarial_example_as_kserve(platform, model, digits):
    clf, _ = model
    images, labels = digits
    i = nearest_to_a_boundary(clf, images[:200], labels[:200])
    image = images[i].reshape(1, 8, 8, 1)
    before = predictor_requests(platform)
    r = explain(platform, {"instances": [image.tolist(), [int(labels[i])]]})
    assert r.status_code == 200, r.text
    got = r.json()["explanations"]
    assert set(got) == {"adversarial_example", "L2 error", "adversarial_prediction",
                        "prediction"}
    adversarial = np.asarray(got["adversarial_example"])
    assert adversarial.shape == image.shape
    assert got["prediction"] == int(clf.predict(image.reshape(1, -1))[0])
    assert got["adversarial_prediction"] == int(clf.predict(adversarial.reshape(1, -1))[0])
    assert got["L2 error"] == pytest.approx(np.linalg.norm((adversarial - image).ravel()))
    assert np.abs(adversarial - image).max() <= EPS + 1e-6  # ART computes in float32
    # Near a boundary, SquareAttack's budget is enough to cross it.
    assert got["adversarial_prediction"] != got["prediction"], got
    # Every probe was a :predict of the predictor, through the gateway.
    assert predictor_requests(platform) >= before + 2


def test_requests_that_are_not_an_image_and_label(platform, digits):
    images, _ = digits
    for body, words in (
            ({"instances": [images[0].reshape(1, 8, 8, 1).tolist()]}, "[image, label]"),
            ({"instances": [images[0].tolist(), [1]]}, "batch of images"),
            ({"instances": [[["a"]], [1]]}, "not a numeric array"),
            ({"rows": []}, "[image, label]")):
        r = explain(platform, body)
        assert r.status_code == 400, (body, r.text)
        assert words in r.json()["error"], r.text
    # A label that is no class is refused before the predictor is asked anything.
    before = predictor_requests(platform)
    r = explain(platform, {"instances": [images[0].reshape(1, 8, 8, 1).tolist(), [10]]})
    assert r.status_code == 400 and "class index below 10" in r.json()["error"], r.text
    assert predictor_requests(platform) == before
    # Still answering.
    r = explain(platform, {"instances": [images[1].reshape(1, 8, 8, 1).tolist(), [1]]})
    assert r.status_code == 200, r.text


def test_other_adversaries_are_refused_at_apply(platform, model):
    r = platform.apply_text(ISVC.format(model_dir=model[1], type="HopSkipJump"), wait=False,
                            check=False)
    assert r.returncode != 0
    assert "spec.explainer.art.type" in r.stderr and "SquareAttack" in r.stderr, r.stderr
