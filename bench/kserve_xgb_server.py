"""KServe reference server for the Osprey benchmark.

A stock `kserve.ModelServer` serving an XGBoost Booster through a
`kserve.Model`, written the way KServe's own xgbserver does it for the
installed kserve release (0.14): load() reads the Booster, predict() turns the
payload into a numpy array with kserve's get_predict_input (V1 "instances" or
the first V2 input tensor), runs `xgb.DMatrix(...)` -> `booster.predict`, and
answers with get_predict_response (a V1 dict or a V2 InferResponse).

    python bench/kserve_xgb_server.py --model_dir DIR --model_name iris \
        --http_port PORT --enable_grpc false --workers 1 [--quiet]

All kserve.ModelServer flags (--http_port, --workers, --enable_grpc, ...) are
accepted as-is. --quiet turns off the per-request log lines (uvicorn access
log, per-request latency and timing lines), which is how the benchmark runs it
by default so that the reference pays no logging cost Osprey does not pay.
"""

import argparse
import logging
import os
from typing import Dict, Union

import numpy as np  # noqa: F401  (the payload arrives as numpy arrays)
import xgboost as xgb

import kserve
from kserve import InferRequest, InferResponse, Model
from kserve.errors import InferenceError, ModelMissingError
from kserve.utils.utils import get_predict_input, get_predict_response

MODEL_FILE_EXTENSIONS = (".json", ".ubj", ".bst")

parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
parser.add_argument("--model_dir", required=True, help="Directory holding the model file")
parser.add_argument("--nthread", default=1, type=int, help="XGBoost threads")
parser.add_argument(
    "--quiet",
    action="store_true",
    help="Disable per-request log lines (access log, latency and timing logs)",
)


class XGBoostModel(Model):
    def __init__(self, name: str, model_dir: str, nthread: int):
        super().__init__(name)
        self.model_dir = model_dir
        self.nthread = nthread
        self._booster = None

    def load(self) -> bool:
        files = sorted(
            os.path.join(self.model_dir, f)
            for f in os.listdir(self.model_dir)
            if f.endswith(MODEL_FILE_EXTENSIONS)
            and os.path.isfile(os.path.join(self.model_dir, f))
        )
        if not files:
            raise ModelMissingError(self.model_dir)
        if len(files) > 1:
            raise RuntimeError(f"more than one model file in {self.model_dir}: {files}")
        self._booster = xgb.Booster(params={"nthread": self.nthread}, model_file=files[0])
        self.ready = True
        return self.ready

    def predict(
        self, payload: Union[Dict, InferRequest], headers: Dict[str, str] = None
    ) -> Union[Dict, InferResponse]:
        try:
            instances = get_predict_input(payload)
            dmatrix = xgb.DMatrix(instances, nthread=self.nthread)
            result = self._booster.predict(dmatrix)
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e))


def main() -> None:
    args, _ = parser.parse_known_args()
    if args.configure_logging:
        kserve.logging.configure_logging(args.log_config_file)
    if args.quiet:
        for name in ("uvicorn.access", kserve.logging.KSERVE_TRACE_LOGGER_NAME):
            logging.getLogger(name).setLevel(logging.WARNING)
    model = XGBoostModel(args.model_name, args.model_dir, args.nthread)
    model.load()
    server = kserve.ModelServer(
        enable_latency_logging=False if args.quiet else args.enable_latency_logging
    )
    server.start([model])


if __name__ == "__main__":
    main()
