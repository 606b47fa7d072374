"""The model repository extension: index, load, unload, models that fail to
load, --no-load-on-start, and model file naming."""

import shutil

import pytest

from harness import (
    MODEL_NAMES,
    assert_close,
    assert_error,
    output_array,
    v2_json_request,
    wait_until,
)

GOOD = ["xgb-iris-softmax", "xgb-iris-binary"]
BROKEN = "broken-model"
EMPTY = "empty-model"
STATES = {"READY", "UNAVAILABLE", "LOADING"}


def write_broken(repo):
    d = repo / BROKEN
    d.mkdir()
    (d / "model.json").write_text('{"learner": this is not an xgboost model')
    return d


def assert_serves(server, fixtures, model, rows=slice(0, 25)):
    X = fixtures.inputs(model)[rows]
    r = server.post(f"/v2/models/{model}/infer", json=v2_json_request(X))
    assert r.status_code == 200, f"{model}: {r.status_code} {r.text[:300]}"
    assert_close(output_array(r.json()["outputs"][0]), fixtures.predictions(model)[rows], model)


def assert_not_served(server, model):
    r = server.post(f"/v2/models/{model}/infer", json=v2_json_request([[1.0, 2.0, 3.0, 4.0]]))
    assert r.status_code in (404, 503), f"{model} still served: {r.status_code} {r.text[:300]}"
    assert_error(r, r.status_code)


def assert_not_ready(server, model):
    r = server.get(f"/v2/models/{model}/ready")
    if r.status_code == 200:
        assert r.json().get("ready") is False, r.text
    else:
        assert r.status_code in (404, 503), r.status_code


def check_entry_fields(entry):
    assert {"name", "version", "state", "reason"} <= set(entry), entry
    assert entry["state"] in STATES, entry


# -- a repository with good models, a corrupt one, an empty directory --------


@pytest.fixture(scope="module")
def mixed_repo(fixtures, tmp_path_factory):
    repo = fixtures.make_repository(tmp_path_factory.mktemp("mixed-repo"), GOOD)
    write_broken(repo)
    (repo / EMPTY).mkdir()
    (repo / "README.txt").write_text("a file at the top of the repository is not a model\n")
    return repo


@pytest.fixture(scope="module")
def mixed(launcher, mixed_repo):
    with launcher.serve(["--model-repository", mixed_repo], label="repo-mixed", ready_models=GOOD) as s:
        # The failed loads must have settled before the tests look at them.
        s.repository_index()
        yield s


def settled_index(server, names):
    """The index once none of the given models is LOADING any more."""
    def settled():
        idx = server.repository_index()
        if all(n in idx and idx[n]["state"] != "LOADING" for n in names):
            return idx
        return None

    return wait_until(settled, 20, f"models {names} to finish loading")


def test_index_lists_every_model(mixed):
    idx = settled_index(mixed, GOOD + [BROKEN, EMPTY])
    assert set(idx) == set(GOOD + [BROKEN, EMPTY]), "README.txt is not a model"
    for entry in idx.values():
        check_entry_fields(entry)
    for name in GOOD:
        assert idx[name]["state"] == "READY", idx[name]
        assert not idx[name]["reason"], idx[name]


def test_broken_model_is_unavailable_with_reason(mixed):
    idx = settled_index(mixed, [BROKEN, EMPTY])
    for name in (BROKEN, EMPTY):
        assert idx[name]["state"] == "UNAVAILABLE", idx[name]
        assert isinstance(idx[name]["reason"], str) and idx[name]["reason"].strip(), idx[name]


def test_broken_model_reason_is_logged(mixed):
    reason = settled_index(mixed, [BROKEN])[BROKEN]["reason"]
    log = mixed.log_text()
    lines = [line for line in log.splitlines() if BROKEN in line]
    assert lines, f"stderr never mentions {BROKEN}:\n{log[-3000:]}"
    first = reason.strip().splitlines()[0][:40]
    assert first in log, f"stderr does not carry the reason {first!r}:\n{log[-3000:]}"


def test_broken_model_infer_is_503_with_reason(mixed):
    reason = settled_index(mixed, [BROKEN])[BROKEN]["reason"]
    r = mixed.post(f"/v2/models/{BROKEN}/infer", json=v2_json_request([[1.0, 2.0, 3.0, 4.0]]))
    message = assert_error(r, 503, "not ready")
    assert reason.strip().splitlines()[0] in message, (message, reason)
    r = mixed.post(f"/v1/models/{BROKEN}:predict", json={"instances": [[1.0, 2.0, 3.0, 4.0]]})
    assert_error(r, 503, "not ready")
    assert_not_ready(mixed, BROKEN)


def test_index_ready_filter(mixed):
    r = mixed.post("/v2/repository/index", json={"ready": True})
    assert r.status_code == 200, r.text
    names = [e["name"] for e in r.json()]
    assert sorted(names) == sorted(GOOD)


def test_index_without_body(mixed):
    """tritonclient posts an empty body."""
    r = mixed.post("/v2/repository/index", data=b"")
    assert r.status_code == 200, r.text
    assert {e["name"] for e in r.json()} == set(GOOD + [BROKEN, EMPTY])


def test_server_not_ready_while_a_model_failed(mixed):
    settled_index(mixed, [BROKEN])
    r = mixed.get("/v2/health/ready")
    assert r.status_code == 503, r.text


def test_good_models_still_serve(mixed, fixtures):
    for model in GOOD:
        assert_serves(mixed, fixtures, model)


def test_v1_lists_the_good_models(mixed):
    r = mixed.get("/v1/models")
    assert r.status_code == 200
    assert set(GOOD) <= set(r.json()["models"])


# -- load and unload (one server per test: they change state) -----------------


def test_load_model_added_after_start(osprey, fixtures, tmp_path):
    repo = fixtures.make_repository(tmp_path / "repo", ["xgb-iris-softmax"])
    server = osprey(["--model-repository", repo], "repo-load-new")
    assert "xgb-regression" not in server.repository_index()
    shutil.copytree(fixtures.model_dir("xgb-regression"), repo / "xgb-regression")
    r = server.post("/v2/repository/models/xgb-regression/load")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "xgb-regression", "load": True}
    assert server.repository_index()["xgb-regression"]["state"] == "READY"
    r = server.get("/v2/models/xgb-regression/ready")
    assert r.status_code == 200 and r.json()["ready"] is True
    assert_serves(server, fixtures, "xgb-regression")
    r = server.get("/v2/models/xgb-regression")
    assert r.json()["inputs"][0]["shape"] == [-1, 10]


def test_unload_then_reload(osprey, fixtures, tmp_path):
    repo = fixtures.make_repository(tmp_path / "repo", GOOD)
    server = osprey(["--model-repository", repo], "repo-unload")
    model = GOOD[0]
    r = server.post(f"/v2/repository/models/{model}/unload")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": model, "unload": True}
    assert_not_served(server, model)
    assert_not_ready(server, model)
    idx = server.repository_index()
    if model in idx:
        assert idx[model]["state"] != "READY", idx[model]
    ready_only = server.post("/v2/repository/index", json={"ready": True}).json()
    assert model not in [e["name"] for e in ready_only]
    # the other model is untouched
    assert_serves(server, fixtures, GOOD[1])
    r = server.post(f"/v2/repository/models/{model}/load")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": model, "load": True}
    assert_serves(server, fixtures, model)


def test_unload_with_tritonclient_body(osprey, fixtures, tmp_path):
    repo = fixtures.make_repository(tmp_path / "repo", GOOD)
    server = osprey(["--model-repository", repo], "repo-unload-params")
    r = server.post(
        f"/v2/repository/models/{GOOD[1]}/unload",
        json={"parameters": {"unload_dependents": False}},
    )
    assert r.status_code == 200, r.text
    assert_not_served(server, GOOD[1])


def test_no_load_on_start(osprey, fixtures, tmp_path):
    repo = fixtures.make_repository(tmp_path / "repo", GOOD)
    server = osprey(["--model-repository", repo, "--no-load-on-start"], "repo-lazy", ready=False)
    idx = server.repository_index()
    assert set(idx) == set(GOOD)
    for entry in idx.values():
        check_entry_fields(entry)
        assert entry["state"] != "READY", entry
    for model in GOOD:
        assert_not_served(server, model)
    r = server.post(f"/v2/repository/models/{GOOD[0]}/load", json={})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": GOOD[0], "load": True}
    assert_serves(server, fixtures, GOOD[0])
    assert server.repository_index()[GOOD[1]]["state"] != "READY"


def test_load_unknown_model(osprey, fixtures, tmp_path):
    repo = fixtures.make_repository(tmp_path / "repo", GOOD[:1])
    server = osprey(["--model-repository", repo], "repo-load-unknown")
    r = server.post("/v2/repository/models/no-such-model/load")
    assert r.status_code in (400, 404), r.status_code
    assert_error(r, r.status_code, "no-such-model")
    r = server.post("/v2/repository/models/no-such-model/unload")
    assert r.status_code in (400, 404), r.status_code
    assert_error(r, r.status_code, "no-such-model")
    assert_serves(server, fixtures, GOOD[0])


def test_load_broken_model_reports_reason(osprey, fixtures, tmp_path):
    repo = fixtures.make_repository(tmp_path / "repo", GOOD[:1])
    server = osprey(["--model-repository", repo], "repo-load-broken")
    write_broken(repo)
    r = server.post(f"/v2/repository/models/{BROKEN}/load")
    assert r.status_code != 200, r.text
    assert_error(r, r.status_code)
    entry = settled_index(server, [BROKEN])[BROKEN]
    assert entry["state"] == "UNAVAILABLE" and entry["reason"].strip(), entry
    assert_not_served(server, BROKEN)
    assert_serves(server, fixtures, GOOD[0])


def test_load_again_picks_up_a_new_model_file(osprey, fixtures, tmp_path):
    """Loading a loaded model reloads it from the repository."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(fixtures.model_dir("xgb-iris-softmax"), repo / "iris")
    server = osprey(["--model-repository", repo], "repo-reload")
    r = server.post("/v2/models/iris/infer", json=v2_json_request(fixtures.inputs("xgb-iris-softmax")[:5]))
    assert_close(output_array(r.json()["outputs"][0]), fixtures.predictions("xgb-iris-softmax")[:5])
    shutil.rmtree(repo / "iris")
    shutil.copytree(fixtures.model_dir("xgb-iris-binary"), repo / "iris")
    r = server.post("/v2/repository/models/iris/load")
    assert r.status_code == 200, r.text
    X = fixtures.inputs("xgb-iris-binary")[:5]
    r = server.post("/v2/models/iris/infer", json=v2_json_request(X))
    assert r.status_code == 200, r.text
    assert_close(output_array(r.json()["outputs"][0]), fixtures.predictions("xgb-iris-binary")[:5])


@pytest.mark.parametrize("file_name", ["iris.json", "booster.ubj", "weights.bst"])
def test_any_model_file_name(osprey, fixtures, tmp_path, file_name):
    src_model = {
        ".json": "xgb-iris-softmax",
        ".ubj": "xgb-iris-softprob",
        ".bst": "xgb-iris-binary",
    }["." + file_name.split(".")[-1]]
    exp = fixtures.expected(src_model)
    d = tmp_path / "repo" / "m"
    d.mkdir(parents=True)
    shutil.copy(fixtures.model_dir(src_model) / exp["file"], d / file_name)
    server = osprey(["--model-repository", tmp_path / "repo"], f"repo-name-{file_name}")
    X = fixtures.inputs(src_model)
    r = server.post("/v2/models/m/infer", json=v2_json_request(X))
    assert r.status_code == 200, r.text
    assert_close(output_array(r.json()["outputs"][0]), fixtures.predictions(src_model))


def test_every_fixture_format_in_one_repository(osprey, fixtures, tmp_path):
    repo = fixtures.make_repository(tmp_path / "repo")
    server = osprey(["--model-repository", repo], "repo-all")
    idx = server.repository_index()
    assert {n: e["state"] for n, e in idx.items()} == {n: "READY" for n in MODEL_NAMES}
