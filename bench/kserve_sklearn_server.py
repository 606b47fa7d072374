"""KServe sklearnserver reference for the Osprey benchmark: a stock
`kserve.ModelServer` with a `kserve.Model` that loads model.joblib and answers
`predict` on get_predict_input(payload), as KServe's sklearnserver does.

    python bench/kserve_sklearn_server.py --model_dir DIR --model_name iris \
        --http_port PORT --enable_grpc false --workers 1 [--quiet]
"""

import os
from typing import Dict, Union

import joblib
from kserve import InferRequest, InferResponse, Model
from kserve.errors import InferenceError, ModelMissingError
from kserve.utils.utils import get_predict_input, get_predict_response

from kserve_common import make_parser, serve

parser = make_parser("Directory holding model.joblib")


class SKLearnModel(Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self._model = None

    def load(self) -> bool:
        path = os.path.join(self.model_dir, "model.joblib")
        if not os.path.exists(path):
            raise ModelMissingError(path)
        self._model = joblib.load(path)
        self.ready = True
        return self.ready

    def predict(self, payload: Union[Dict, InferRequest],
                headers: Dict[str, str] = None) -> Union[Dict, InferResponse]:
        try:
            return get_predict_response(payload, self._model.predict(get_predict_input(payload)),
                                        self.name)
        except Exception as e:
            raise InferenceError(str(e))


def main() -> None:
    args, _ = parser.parse_known_args()
    serve(SKLearnModel(args.model_name, args.model_dir), args)


if __name__ == "__main__":
    main()
