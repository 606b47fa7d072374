"""Trains the example model `make run` serves: an iris classifier (XGBoost,
multi:softmax), written as OUT_DIR/model.json. Skips the work if it exists."""
import os
import sys

out_dir = sys.argv[1] if len(sys.argv) > 1 else "build/example/iris"
path = os.path.join(out_dir, "model.json")
if not os.path.exists(path):
    import xgboost as xgb
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    os.makedirs(out_dir, exist_ok=True)
    booster = xgb.train({"objective": "multi:softmax", "num_class": 3, "nthread": 1, "seed": 0},
                        xgb.DMatrix(x, label=y), num_boost_round=10)
    booster.save_model(path)
    print(f"trained example model -> {path}")
