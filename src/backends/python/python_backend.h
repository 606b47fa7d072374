#pragma once

// Python runtime: models only Python can run, in worker processes
// (python/osprey_worker.py) fed over pipes, so a crash or a framework's native
// libraries never reach the server. Several workers per model serve requests
// in parallel (LoadOptions::workers, `--python-workers`, default 2); a worker
// that dies is replaced, and only the request it was running fails (500,
// saying how the worker ended). Workers run the interpreter named in the
// build (OSPREY_PYTHON, the project's .venv made from Debian's python3;
// overridable with the OSPREY_PYTHON environment variable).
//
// Formats:
//   sklearn  model.joblib, model.pkl or model.pickle, answered as KServe's
//            sklearnserver does: predict(), or predict_proba() when the
//            environment has PREDICT_PROBA=true. Pipelines that select
//            columns by name (ColumnTransformer) take rows as records or as
//            text (BYTES); numbers are parsed per column.
//   onnx     one *.onnx file (or model.onnx among several) through
//            onnxruntime, one thread per call; tensors by the model's own
//            names and types; classifiers exported with zipmap=False (maps
//            and sequences are refused at load, naming the output).
//   custom   model.py with a kserve.Model subclass, run unchanged as
//            __main__; the models it passes to kserve.ModelServer().start()
//            are served (the one named like the Osprey model, else the
//            first). V1 bodies reach it as the dicts clients sent (with the
//            request's headers, names lower-cased), V2 as kserve.InferRequest;
//            sync and async methods; :explain calls explain(). Its answers go
//            back as it returns them.
//   tensorflow  a SavedModel (saved_model.pb, in numeric version directories
//            as TF Serving keeps them), answered as TF Serving: V1 bodies in
//            the row ("instances") or columnar ("inputs") form, with
//            "signature_name" and {"b64": ...} values, answers
//            {"predictions": ...} / {"outputs": ...}; V2 tensors by the default
//            signature's input names.
//   paddle   one *.pdmodel + *.pdiparams (paddle.inference), as KServe's
//            paddleserver loads and calls it; the metadata declares the
//            program's feed and fetch shapes and datatypes (an NCHW image
//            input is [-1, 3, H, W]) and inputs are cast to them.
//   python   a model of Triton's Python backend (its config.pbtxt says
//            backend: "python"; never recognised from files alone): model.py
//            with class TritonPythonModel, run unchanged with Osprey's
//            triton_python_backend_utils (python/). One worker per instance
//            of its instance groups; initialize(args) gets Triton's args,
//            execute() every request of a dynamic batch as one list (the
//            requests are not merged), each answered with its outputs or
//            its TritonError (INVALID_ARG: 400, NOT_FOUND: 404,
//            UNAVAILABLE: 503, UNSUPPORTED: 501, else 500).
//   mlflow   an MLflow model directory (an MLmodel file; sklearn, xgboost,
//            lightgbm, python_function and other flavors) through
//            mlflow.pyfunc, as MLServer's MLflow runtime serves it: V2
//            metadata from the signature (one [-1, 1] input per column, or
//            the tensor specs; content types as tensor and model parameters),
//            requests read by their content type (parameters.content_type,
//            else the signature's: pd, np or dict), answers named by what
//            predict() returns (DataFrame columns, output-1 for an array).
//            V1 bodies are read as MLflow's scoring server reads them.
//            Requests reach the worker as sent (raw_requests).
//   torchserve  KServe's torchserve layout (torchserve_store.h; the backend
//            is named pytorch, as KServe's model format): the store's model
//            of this name, its .mar run by TorchServe's own model loader
//            (the torchserve package: built-in handlers image_classifier,
//            image_segmenter, object_detector, text_classifier, or the
//            archive's handler .py, class or function entry point; extra
//            files such as index_to_name.json beside it), with KServe's
//            request envelopes: V1 bodies (raw) through the kserve envelope
//            ({"instances": [...]} to the handler, {"predictions": [...]}
//            back; :explain sets the explain header), V2 tensors (REST and
//            gRPC) through the kservev2 one (one handler row per input,
//            outputs named after the inputs).
//   art      KServe's ART explainer (spec.explainer.art), no files: its
//            settings are LoadOptions::args as KServe's artserver takes them
//            (--predictor_host, --adversary_type SquareAttack, --nb_classes,
//            --max_iter). :explain of V1 {"instances": [image, [label]]} runs
//            the adversarial-robustness-toolbox's SquareAttack on a black-box
//            classifier that calls the predictor's V1 :predict; the answer is
//            {"explanations": {"adversarial_example", "L2 error",
//            "adversarial_prediction", "prediction"}}, as KServe's. :predict
//            is passed to the predictor.
//
// A worker may answer that a request did not fit the model ("invalid"): the
// client gets 400 with its message, as for any other invalid request.
//
// With Triton's configuration (LoadOptions::config: onnx and python), the
// worker takes the file it names, declares its tensors (an ONNX model's are
// checked against the model's own), applies its reshapes, and batches only
// as its dynamic_batching says; the workers are its instances.
//
// Without a configuration, requests are batched adaptively (concurrent
// requests merged while workers are busy, no added delay) unless server flags
// say otherwise.

#include "backends/backend.h"

namespace osprey {

const Backend& SklearnBackend();
const Backend& OnnxBackend();
const Backend& CustomBackend();
const Backend& TensorflowBackend();
const Backend& PaddleBackend();
const Backend& TritonPythonBackend();
const Backend& MlflowBackend();
const Backend& TorchServeBackend();
const Backend& ArtExplainerBackend();

}  // namespace osprey
