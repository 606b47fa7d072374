"""Trains the example models the manifests in examples/ serve: an iris
classifier in XGBoost (ROOT/xgboost-iris/model.json) and in scikit-learn
(ROOT/sklearn-iris/model.joblib). Skips what already exists.

usage: train_example.py [ROOT]   (default build/examples)
"""
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "build/examples"


def iris():
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


xgb_path = os.path.join(root, "xgboost-iris", "model.json")
if not os.path.exists(xgb_path):
    import xgboost as xgb

    x, y = iris()
    os.makedirs(os.path.dirname(xgb_path), exist_ok=True)
    booster = xgb.train({"objective": "multi:softmax", "num_class": 3, "nthread": 1, "seed": 0},
                        xgb.DMatrix(x, label=y), num_boost_round=10)
    booster.save_model(xgb_path)
    print(f"trained example model -> {xgb_path}")

skl_path = os.path.join(root, "sklearn-iris", "model.joblib")
if not os.path.exists(skl_path):
    import joblib
    from sklearn.svm import SVC

    x, y = iris()
    os.makedirs(os.path.dirname(skl_path), exist_ok=True)
    joblib.dump(SVC(gamma="scale").fit(x, y), skl_path)
    print(f"trained example model -> {skl_path}")
