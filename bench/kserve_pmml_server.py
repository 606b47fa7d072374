"""KServe-style PMML reference server for the Osprey benchmark.

KServe's pmmlserver is a `kserve.Model` that evaluates PMML with JPMML through
a JVM gateway (py4j): load() builds the evaluator and reads its input field
names, predict() zips each V1 instance with them, evaluates record by record
and answers {"predictions": [records]}. This is that server, with pypmml
(the PMML4S evaluator, also a JVM behind py4j) in JPMML's place.

    python bench/kserve_pmml_server.py --model_dir DIR --model_name iris \
        --http_port PORT --enable_grpc false --workers 1 [--quiet]
"""

import os
from typing import Dict, Union

from kserve import InferRequest, InferResponse, Model
from kserve.errors import InferenceError, ModelMissingError
from kserve.utils.utils import get_predict_input, get_predict_response

from kserve_common import make_parser, serve
from pypmml import Model as PmmlModel

parser = make_parser("Directory holding model.pmml")


class PMMLModel(Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self.evaluator = None
        self.input_fields = []

    def load(self) -> bool:
        path = os.path.join(self.model_dir, "model.pmml")
        if not os.path.exists(path):
            raise ModelMissingError(path)
        self.evaluator = PmmlModel.fromFile(path)
        self.input_fields = list(self.evaluator.inputNames)
        self.ready = True
        return self.ready

    def predict(self, payload: Union[Dict, InferRequest],
                headers: Dict[str, str] = None) -> Union[Dict, InferResponse]:
        try:
            instances = get_predict_input(payload)
            results = [dict(self.evaluator.predict(dict(zip(self.input_fields, list(instance)))))
                       for instance in instances]
            return get_predict_response(payload, results, self.name)
        except Exception as e:
            raise InferenceError(str(e))


def main() -> None:
    args, _ = parser.parse_known_args()
    serve(PMMLModel(args.model_name, args.model_dir), args)


if __name__ == "__main__":
    main()
