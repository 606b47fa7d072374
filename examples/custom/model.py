"""A custom KServe model as users write it: it answers each instance with the
sum of its values and the row's largest value."""
import argparse
import json

from kserve import Model, ModelServer, model_server


class RowStats(Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = False

    def load(self):
        self.ready = True

    async def predict(self, payload, headers=None):
        if isinstance(payload, (bytes, str)):  # a body sent without a JSON content type
            payload = json.loads(payload)
        rows = payload["instances"]
        return {"predictions": [{"sum": sum(r), "max": max(r)} for r in rows]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    args, _ = parser.parse_known_args()
    model = RowStats(args.model_name)
    model.load()
    ModelServer().start([model])
