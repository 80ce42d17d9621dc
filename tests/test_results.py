"""What a local step produced, said after it and kept in the state database: the rows of each
merged table, the models' scores, and the warnings a user must not miss (an empty table, a
classifier at chance, an absurd energy resolution), which never fail the step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tables

from protopipe_grid_interface.cli import render
from protopipe_grid_interface.cli.main import main
from protopipe_grid_interface.models import Particle, Stage
from protopipe_grid_interface.paths import merged_file_name
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow import collect, local_steps
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.results import (
    ModelResult,
    RegressorScore,
    classification_reports,
    classifier_scores,
    table_rows,
)
from protopipe_grid_interface.workflow.tree import create_analysis

#: the classifier part of a real protopipe-MODEL log (the demo analysis, local backend)
REAL_CLASSIFIER_LOG = """\
INPUT SIGNAL FILE PATH= /tmp/demo/data/TRAINING/for_particle_classification/gamma/TRAINING_classification_tail_gamma_enlarged.h5
GETTING CAMERAS FROM SIGNAL TRAINING FILE
Going to use the following features to train the model:
['h_max', 'impact_dist', 'hillas_width', 'hillas_length', 'concentration_pixel', 'log10_intensity', 'log10_reco_energy', 'log10_reco_energy_tel']
Using sklearn.ensemble.RandomForestClassifier for model construction
LIST OF CAMERAS TO USE = ['LSTCam', 'NectarCam']
### Building model for LSTCam
Going to split 2366 SIGNAL images and 2368 BACKGROUND images
Training sample: sig 1892 and bkg 1894
Test sample: sig 474 and bkg 474
              precision    recall  f1-score   support

           0       0.99      0.96      0.98       474
           1       0.96      0.99      0.98       474

    accuracy                           0.98       948
   macro avg       0.98      0.98      0.98       948
weighted avg       0.98      0.98      0.98       948

### Building model for NectarCam
Going to split 2044 SIGNAL images and 2098 BACKGROUND images
Training sample: sig 1635 and bkg 1678
Test sample: sig 409 and bkg 420
              precision    recall  f1-score   support

           0       1.00      0.93      0.96       420
           1       0.93      1.00      0.96       409

    accuracy                           0.96       829
   macro avg       0.97      0.96      0.96       829
weighted avg       0.97      0.96      0.96       829
"""  # noqa: E501

#: a made-up classifier that calls everything a gamma: chance
CHANCE_LOG = """\
### Building model for LSTCam
Going to split 600 SIGNAL images and 600 BACKGROUND images
Training sample: sig 500 and bkg 500
Test sample: sig 100 and bkg 100
              precision    recall  f1-score   support

           0       0.00      0.00      0.00       100
           1       0.50      1.00      0.67       100

    accuracy                           0.50       200
   macro avg       0.25      0.50      0.33       200
weighted avg       0.25      0.50      0.33       200

"""


def training_file(path: Path, rows: dict[str, int], showers: int = 100) -> Path:
    """A protopipe-like TRAINING file: one table per camera at the root (``rows`` each)."""
    with tables.open_file(path, "w") as h5:
        for camera, count in rows.items():
            data = np.zeros(count, dtype=[("obs_id", np.int16), ("event_id", np.int64),
                                          ("hillas_width", np.float32)])
            data["event_id"] = np.arange(count)
            h5.create_table("/", camera, obj=data)
        h5.root._v_attrs.status = "complete"
        h5.root._v_attrs.num_showers = showers
        h5.root._v_attrs.shower_reuse = 10
    return path


def dl2_file(path: Path, rows: int, obs_id: int) -> Path:
    """A protopipe-like DL2 file: one ``/reco_events`` table."""
    with tables.open_file(path, "w") as h5:
        data = np.zeros(rows, dtype=[("obs_id", np.int16), ("event_id", np.int64),
                                     ("gammaness", np.float32)])
        data["obs_id"] = obs_id
        h5.create_table("/", "reco_events", obj=data)
        h5.root._v_attrs.status = "complete"
        h5.root._v_attrs.num_showers = 1000
        h5.root._v_attrs.shower_reuse = 10
    return path


# --- merges ------------------------------------------------------------------------------------
def test_a_training_merge_counts_the_rows_of_each_camera_table(tmp_path: Path) -> None:
    inputs = [training_file(tmp_path / f"in{i}.h5", {"LSTCam": 3 + i, "NectarCam": 10})
              for i in range(3)]

    result = collect.merge(inputs, tmp_path / "merged.h5")

    assert dict(result.tables) == {"/LSTCam": 3 + 4 + 5, "/NectarCam": 30}
    assert result.warnings == []
    assert "rows: LSTCam 12, NectarCam 30" in render.merge_lines([result])[0]


def test_a_dl2_merge_counts_reco_events(tmp_path: Path) -> None:
    inputs = [dl2_file(tmp_path / f"dl2_{i}.h5", 7, obs_id=i) for i in range(2)]

    result = collect.merge(inputs, tmp_path / "merged.h5")

    assert (dict(result.tables), result.showers, result.warnings) == (
        {"/reco_events": 14}, 2000, [])


def test_an_empty_table_or_a_file_without_table_is_a_warning(tmp_path: Path) -> None:
    inputs = [training_file(tmp_path / f"in{i}.h5", {"LSTCam": 4, "NectarCam": 0})
              for i in range(2)]
    result = collect.merge(inputs, tmp_path / "merged.h5")
    assert result.warnings == ["merged.h5: table /NectarCam has no rows"]
    assert "  WARNING: merged.h5: table /NectarCam has no rows" in render.merge_lines([result])

    bare = training_file(tmp_path / "bare.h5", {})
    assert table_rows(bare) == {}
    empty = collect.merge([bare], tmp_path / "nothing.h5")
    assert empty.warnings == ["nothing.h5 has no table"]


def test_a_merge_is_recorded_in_the_state_database_even_when_up_to_date(tmp_path: Path) -> None:
    tree = create_analysis(tmp_path / "ws", "ana", None)
    stage, particle = Stage.TRAINING_ENERGY, Particle.GAMMA
    folder = tree.data_dir(stage, particle)
    folder.mkdir(parents=True, exist_ok=True)
    for run in (1, 2):  # outputs of jobs another tool submitted: taken from the folder
        training_file(folder / f"TRAINING_energy_gamma_tail_run{run}.h5",
                      {"LSTCam": 5 * run, "NectarCam": 0})
    store = Store(tree.state_db)
    try:
        [first] = collect.merge_particles(store, tree, "tail", stage, [particle])
        [again] = collect.merge_particles(store, tree, "tail", stage, [particle])
        [result] = store.results("merge training-energy")
    finally:
        store.close()

    assert (first.up_to_date, again.up_to_date) == (False, True)
    assert dict(again.tables) == {"/LSTCam": 15, "/NectarCam": 0}
    assert result.particle == "gamma"
    assert result.figures["tables"] == {"/LSTCam": 15, "/NectarCam": 0}
    assert (result.figures["files"], result.figures["showers"]) == (2, 200)
    assert result.warnings == (f"{merged_file_name(stage, particle, 'tail')}: table "
                               "/NectarCam has no rows",)


# --- models ------------------------------------------------------------------------------------
def test_the_classification_report_is_read_from_a_real_protopipe_log() -> None:
    reports = classification_reports(REAL_CLASSIFIER_LOG)

    lst, nectar = reports["LSTCam"], reports["NectarCam"]
    assert (lst.test_size, lst.test_signal, lst.test_background, lst.accuracy) == (
        948, 474, 474, 0.98)
    assert lst.precision == {"background": 0.99, "signal": 0.96}
    assert lst.recall == {"background": 0.96, "signal": 0.99}
    assert (nectar.test_size, nectar.test_signal, nectar.test_background) == (829, 409, 420)
    assert (nectar.accuracy, nectar.precision["background"], nectar.recall["signal"]) == (
        0.96, 1.0, 1.0)
    assert lst.warnings() == nectar.warnings() == []


def test_a_classifier_at_chance_is_a_warning() -> None:
    [score] = classifier_scores(["LSTCam"], CHANCE_LOG, {"LSTCam": {"auc": 0.5}})

    assert (score.accuracy, score.test_size) == (0.5, 200)
    assert score.warnings() == [
        "classifier LSTCam: test accuracy 0.50 is chance level (<= 0.55): it does not tell "
        "gammas from background",
        "classifier LSTCam: ROC AUC 0.50 is chance level (<= 0.55): it does not tell gammas "
        "from background"]


def test_a_camera_missing_from_the_log_or_not_scored_is_a_warning() -> None:
    scores = classifier_scores(["LSTCam", "ASTRICam"], REAL_CLASSIFIER_LOG,
                               {"LSTCam": {"error": "not scored (model_scores exited 1)"}})

    assert [s.warnings() for s in scores] == [
        ["classifier LSTCam: not scored (model_scores exited 1)"],
        ["classifier ASTRICam: no classification report in the protopipe-MODEL log"]]
    assert scores[0].accuracy == 0.98  # the report is kept


@pytest.mark.parametrize(("score", "expected"), [
    (RegressorScore("LSTCam", 400, 0.02, 0.15), []),
    (RegressorScore("LSTCam", 400, 0.02, 1.3), ["energy resolution 130% is absurd"]),
    (RegressorScore("LSTCam", 400, -0.6, 0.3), ["energy bias -60% is absurd"]),
    (RegressorScore("LSTCam", 0), ["the test sample is empty"]),
])
def test_an_absurd_regressor_is_a_warning(score: RegressorScore, expected: list[str]) -> None:
    assert [w.split(": ", 1)[1].split(" (")[0] for w in score.warnings()] == expected


@pytest.mark.payload
def test_the_regressor_is_scored_on_its_test_sample_as_protopipe_applies_it(
        tmp_path: Path, protopipe_env: Path) -> None:
    """A model that predicts log10(E_true * k) exactly, from features it only finds in
    protopipe's order (sorted, the derived one computed): the scores are those of k."""
    factors = np.array([0.5, 0.8, 0.9, 1.0, 1.05, 1.1, 1.2, 1.3, 2.0, 3.0])
    energies = np.geomspace(0.03, 30, len(factors))
    make = f"""
import numpy as np, pandas as pd, joblib
from sklearn.linear_model import LinearRegression
rng = np.random.default_rng(1)
a = rng.uniform(-2, 2, 200); b = rng.uniform(-1, 1, 200)
model = LinearRegression().fit(np.column_stack([a, b, a + b]), a)  # features a, b, c = a + b
joblib.dump(model, "regressor_LSTCam_RandomForestRegressor.pkl.gz")
energy = np.array({energies.tolist()}); factor = np.array({factors.tolist()})
test = pd.DataFrame({{"b": np.zeros(len(energy)), "true_energy": energy,
                      "a": np.log10(energy * factor)}})
test.to_pickle("data_test_regressor_RandomForestRegressor_LSTCam.pkl.gz")
"""
    subprocess.run([str(protopipe_env / "bin" / "python"), "-c", make], cwd=tmp_path,
                   check=True, capture_output=True)
    config = tmp_path / "RandomForestRegressor.yaml"
    config.write_text("Method:\n  log_10_target: True\n"
                      "FeatureList:\n  Basic: [b, a]\n  Derived:\n    c: a + b\n")
    log = tmp_path / "protopipe-MODEL_regressor.log"
    log.write_text("protopipe-MODEL says nothing of a regressor's scores\n")

    result = local_steps.score_model(protopipe_env, "regressor", "RandomForestRegressor",
                                     config, tmp_path, ["LSTCam", "NectarCam"], log)

    lst, nectar = result.scores
    assert isinstance(lst, RegressorScore)
    assert lst.test_size == len(factors)
    assert lst.bias == pytest.approx(np.median(factors - 1))
    assert lst.resolution == pytest.approx(np.percentile(np.abs(factors - 1), 68))
    assert result.warnings == ("regressor NectarCam: regressor_NectarCam_RandomForestRegressor"
                               ".pkl.gz not found",)


# --- recorded and rendered ---------------------------------------------------------------------
#: stands in for protopipe-MODEL: the log protopipe writes, a model file per camera
FAKE_MODEL = """#!{python}
import pathlib, sys
args = sys.argv
outdir = pathlib.Path(args[args.index("-o") + 1])
outdir.mkdir(parents=True, exist_ok=True)
for camera in ("LSTCam", "NectarCam"):
    (outdir / f"classifier_{{camera}}_RandomForestClassifier.pkl.gz").write_bytes(b"model")
print({log!r})
"""
#: stands in for the payload's python running model_scores.py: the ROC AUC of each camera
FAKE_PYTHON = """#!{python}
import json, sys
args = sys.argv
cameras = args[args.index("-o") + 2:]
json.dump({{"type": "classifier", "cameras": {{c: {{"auc": 0.91}} for c in cameras}}}},
          open(args[args.index("-o") + 1], "w"))
"""
ANALYSIS_YAML = """\
General:
  config_name: "ana"
  cam_id_list: ["LSTCam", "NectarCam"]
GammaHadronClassifier:
  method_name: "RandomForestClassifier"
"""


def fake_payload(folder: Path, log: str) -> Path:
    for name, text in (("protopipe-MODEL", FAKE_MODEL), ("python", FAKE_PYTHON)):
        program = folder / "bin" / name
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text(text.format(python=sys.executable, log=log))
        program.chmod(0o755)
    return folder


@pytest.mark.parametrize(("log", "accuracy", "warned"), [
    (REAL_CLASSIFIER_LOG, "0.98", 0),
    (CHANCE_LOG, "0.50", 2),  # LSTCam at chance; no NectarCam report in this log
])
def test_models_build_records_and_shows_the_scores_and_succeeds_with_warnings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], log: str, accuracy: str,
        warned: int) -> None:
    tree = create_analysis(tmp_path / "ws", "ana", None)
    (tree.configs / "analysis.yaml").write_text(ANALYSIS_YAML)
    (tree.configs / "RandomForestClassifier.yaml").write_text("FeatureList: {}\n")
    stage = Stage.TRAINING_CLASSIFICATION
    for particle in (Particle.GAMMA, Particle.PROTON):
        merged = tree.data_dir(stage, particle) / merged_file_name(stage, particle, "tail")
        merged.parent.mkdir(parents=True, exist_ok=True)
        merged.write_bytes(b"training table")
    env = fake_payload(tmp_path / "payload", log)

    code = main(["models", "build", "-m", str(tree.metadata_file), "--type", "classifier",
                 "--payload-env", str(env)])

    out = capsys.readouterr().out
    assert code == 0
    table = [line for line in out.splitlines() if line.lstrip("│ ").startswith("LSTCam")]
    assert len(table) == 1 and accuracy in table[0] and "0.910" in table[0]
    store = Analysis.open(tree.metadata_file).store()
    try:
        [result] = store.results("model classifier")
    finally:
        store.close()
    assert result.figures["cameras"]["LSTCam"]["accuracy"] == float(accuracy)
    assert result.figures["cameras"]["NectarCam"]["auc"] == 0.91
    assert len(result.warnings) == warned
    if warned:
        assert all(f"WARNING: {warning}" in out for warning in result.warnings)
        assert "classifier built, with 2 warnings: look at them before using it" in out
    else:
        assert "classifier: no warning" in out


def test_model_figures_are_plain_json() -> None:
    scores = classifier_scores(["LSTCam"], REAL_CLASSIFIER_LOG, {"LSTCam": {"auc": 0.98}})
    result = ModelResult("classifier", "RandomForestClassifier",
                         (Path("classifier_LSTCam_RandomForestClassifier.pkl.gz"),), scores)

    figures = json.loads(json.dumps(result.figures()))

    assert figures["cameras"]["LSTCam"]["recall"] == {"background": 0.96, "signal": 0.99}
    assert figures["files"] == ["classifier_LSTCam_RandomForestClassifier.pkl.gz"]
