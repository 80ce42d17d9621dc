#!/usr/bin/env python
"""Score the models protopipe-MODEL built, on the test sample it kept (payload environment).

    python model_scores.py --type regressor|classifier --config METHOD.yaml \
        --model-dir DIR --method METHOD -o SCORES.json CAMERA [CAMERA ...]

protopipe-MODEL saves, next to each camera's model, its test sample as a pandas pickle
(``data_test_<type>_<method>_<camera>.pkl.gz``: the images kept after the fiducial cuts,
with their derived features). The model is applied to it as protopipe applies it
(``protopipe.scripts.write_dl2``): the config's features Basic + Derived, sorted by name;
a regressor with ``Method.log_10_target`` (the default) predicts log10(energy).

Per camera, the JSON output holds
  - regressor: test_size (images), bias (median of E_reco/E_true - 1) and resolution
    (68 % containment of |E_reco/E_true - 1|);
  - classifier: test_size, auc (ROC AUC of the gamma probability against the label; null
    when the test sample holds one class only);
  - or error: why that camera could not be scored (no test sample ...).
Exit status: 0 when the output is written, 1 on error, 2 on bad usage.
Python >= 3.6 with numpy, pandas, scikit-learn, joblib and PyYAML (protopipe's environment).
"""
import argparse
import json
import os
import sys

import numpy as np

PROG = "model_scores"
#: the fraction of |E_reco/E_true - 1| under the resolution
CONTAINMENT = 68.0


def derived(cfg):
    """The derived features: name -> expression."""
    return cfg["FeatureList"].get("Derived") or {}


def features(cfg):
    """protopipe's feature order: Basic + Derived names, sorted."""
    return sorted(list(cfg["FeatureList"].get("Basic") or []) + list(derived(cfg)))


def inputs(data, cfg):
    """The feature matrix of a test sample (derived features computed if absent)."""
    for name, expression in derived(cfg).items():
        if name not in data.columns:
            data.eval("%s = %s" % (name, expression), inplace=True)
    return data[features(cfg)].to_numpy()


def regressor_score(model, data, cfg):
    log_target = cfg["Method"].get("log_10_target", True)
    if len(data) == 0:
        return {"test_size": 0, "bias": None, "resolution": None}
    predicted = model.predict(inputs(data, cfg))
    reco = 10 ** predicted if log_target else predicted
    migration = reco / data["true_energy"].to_numpy() - 1.0
    return {"test_size": int(len(data)), "bias": float(np.median(migration)),
            "resolution": float(np.percentile(np.abs(migration), CONTAINMENT))}


def classifier_score(model, data, cfg):
    from sklearn.metrics import roc_auc_score

    labels = data["label"].to_numpy() if len(data) else np.array([])
    if len(np.unique(labels)) < 2:
        return {"test_size": int(len(data)), "auc": None}
    gammaness = model.predict_proba(inputs(data, cfg))[:, list(model.classes_).index(1)]
    return {"test_size": int(len(data)), "auc": float(roc_auc_score(labels, gammaness))}


def score(model_type, cfg, model_dir, method, camera):
    import joblib
    import pandas as pd

    model_path = os.path.join(model_dir, "%s_%s_%s.pkl.gz" % (model_type, camera, method))
    test_path = os.path.join(model_dir, "data_test_%s_%s_%s.pkl.gz" % (model_type, method, camera))
    for path in (model_path, test_path):
        if not os.path.isfile(path):
            return {"error": "%s not found" % os.path.basename(path)}
    model = joblib.load(model_path)
    data = pd.read_pickle(test_path)
    scorer = regressor_score if model_type == "regressor" else classifier_score
    try:
        return scorer(model, data, cfg)
    except (KeyError, ValueError) as exc:  # a feature missing, a shape the model refuses
        return {"error": "%s: %s" % (type(exc).__name__, exc)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--type", required=True, choices=("regressor", "classifier"))
    parser.add_argument("--config", required=True, help="the model's configuration file")
    parser.add_argument("--model-dir", required=True, help="where protopipe-MODEL wrote")
    parser.add_argument("--method", required=True, help="the model class, as in file names")
    parser.add_argument("-o", "--output", required=True, help="JSON output")
    parser.add_argument("cameras", nargs="+")
    args = parser.parse_args(argv)
    import yaml

    try:
        with open(args.config) as stream:
            cfg = yaml.safe_load(stream)
        features(cfg)
    except (OSError, yaml.YAMLError) as exc:
        sys.stderr.write("%s: error: %s: %s\n" % (PROG, args.config, exc))
        return 1
    except (KeyError, TypeError, AttributeError):
        sys.stderr.write("%s: error: %s: no FeatureList section\n" % (PROG, args.config))
        return 1
    scores = {camera: score(args.type, cfg, args.model_dir, args.method, camera)
              for camera in args.cameras}
    part = args.output + ".part"
    with open(part, "w") as stream:
        json.dump({"type": args.type, "cameras": scores}, stream, indent=1)
    os.replace(part, args.output)
    print(json.dumps(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
