"""Stages that run on this machine in the payload environment: models and performance.

``protopipe-MODEL`` trains the energy regressor or the gamma/hadron classifier from the merged
TRAINING files; ``protopipe-DL3-EventDisplay`` computes the IRFs from the merged DL2 files.
Both get their inputs and outputs as arguments, so the configuration files stay as the user
wrote them. A model built is scored on the test sample protopipe kept (``payload/model_scores.py``
and protopipe's own classification report), its scores recorded in the state database; the IRFs'
normalisation goes to protopipe in a derived copy of performance.yaml.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import InputError, PayloadError
from ..models import Particle, Stage
from ..paths import merged_file_name, model_file_name
from ..store import Store
from . import performance
from .analysis import Analysis
from .results import CameraScore, ModelResult, classifier_scores, regressor_scores

PAYLOAD_SCRIPTS = Path(__file__).resolve().parent.parent / "payload"


def run_payload(env: Path, argv: Sequence[str], log: Path, cwd: Path | None = None,
                failure_line: Callable[[list[str]], str] | None = None) -> None:
    """Run one payload command with its output in ``log``; a failure names the log, and the
    line of the log that says why (``failure_line`` picks it; the last line by default)."""
    program = Path(env) / "bin" / argv[0]
    if not program.exists():
        raise InputError(f"payload environment {env}: bin/{argv[0]} not found",
                         "run scripts/install-payload.sh or pass --payload-env")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as stream:
        code = subprocess.run(  # noqa: S603 - argument list
            [str(program), *argv[1:]], stdout=stream, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=cwd, check=False,
        ).returncode
    if code != 0:
        lines = log.read_text(errors="replace").strip().splitlines()
        why = failure_line(lines) if failure_line else (lines[-1] if lines else "")
        raise PayloadError(f"{argv[0]} exited with status {code}: {why[:200]}",
                           f"full log: {log}")


def build_model(
    analysis: Analysis,
    model_type: str,
    env: Path,
    store: Store,
    signal: Path | None = None,
    background: Path | None = None,
) -> ModelResult:
    """Train a model with ``protopipe-MODEL``, score it, record its scores in ``store``.

    Order of work: check the inputs; run protopipe-MODEL (its log in the model folder); check
    each camera's model file is there; score the models on protopipe's test samples
    (:func:`score_model`); record the scores and their warnings (a model at chance, an absurd
    energy resolution ...), which never fail the step.
    """
    method = analysis.model_method(model_type)
    tree = analysis.tree
    mode = analysis.grid.General.mode
    stage = Stage.TRAINING_ENERGY if model_type == "regressor" else Stage.TRAINING_CLASSIFICATION
    signal = signal or tree.data_dir(stage, Particle.GAMMA) / merged_file_name(
        stage, Particle.GAMMA, mode)
    config = tree.configs / f"{method}.yaml"
    outdir = tree.estimator_dir(model_type)
    argv = ["protopipe-MODEL", "--config_file", str(config), f"--{mode}",
            "--indir_signal", str(signal.parent), "--infile_signal", signal.name,
            "-o", str(outdir), "--cameras_from_file"]
    if model_type == "classifier":
        background = background or tree.data_dir(stage, Particle.PROTON) / merged_file_name(
            stage, Particle.PROTON, mode)
        argv += ["--indir_background", str(background.parent),
                 "--infile_background", background.name]
    for path in (config, signal, background):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: not found", "download and merge the training data first")
    log = outdir / f"protopipe-MODEL_{model_type}.log"
    run_payload(env, argv, log)
    files = [outdir / model_file_name(model_type, cam, method) for cam in analysis.cam_ids]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise PayloadError(f"protopipe-MODEL wrote no {missing[0]}",
                           "check General.cam_id_list in analysis.yaml")
    result = score_model(env, model_type, method, config, outdir, analysis.cam_ids, log,
                         tuple(files))
    result.record(store)
    return result


def score_model(env: Path, model_type: str, method: str, config: Path, outdir: Path,
                cameras: Sequence[str], log: Path, files: tuple[Path, ...] = ()
                ) -> ModelResult:
    """The scores of the models protopipe-MODEL wrote in ``outdir`` (its output in ``log``).

    ``payload/model_scores.py`` applies each model to its test sample, in the payload
    environment (the regressor's bias and resolution, the classifier's ROC AUC); the
    classifier's report comes from the log. A scoring failure is a warning of each camera.
    """
    scores_file = outdir / f"scores_{model_type}.json"
    argv = ["python", str(PAYLOAD_SCRIPTS / "model_scores.py"), "--type", model_type,
            "--config", str(config), "--model-dir", str(outdir), "--method", method,
            "-o", str(scores_file), *cameras]
    try:
        run_payload(env, argv, scores_file.with_suffix(".log"))
        computed = json.loads(scores_file.read_text())["cameras"]
    except (PayloadError, OSError, ValueError, KeyError) as exc:
        computed = {camera: {"error": f"not scored ({exc})"} for camera in cameras}
    scores: tuple[CameraScore, ...]
    if model_type == "classifier":
        scores = classifier_scores(cameras, log.read_text(errors="replace"), computed)
    else:
        scores = regressor_scores(cameras, computed)
    return ModelResult(model_type, method, files, scores)


@dataclass(frozen=True)
class PerformanceReport:
    """What the performance step used and found: the IRF file, the copy of performance.yaml
    protopipe read, each particle's normalisation, and the IRF summary."""

    irf: Path
    config: Path
    normalisations: list[performance.Normalisation]
    summary: performance.IrfSummary


def make_performance(analysis: Analysis, env: Path, store: Store,
                     template: str = "DL2_{}_{}_merged.h5",
                     name: str = "performance") -> PerformanceReport:
    """IRFs from the merged DL2 files with ``protopipe-DL3-EventDisplay``.

    The IRFs are normalised from the DL2 files (:func:`performance.prepare`: protopipe reads a
    copy of performance.yaml with the derived numbers); the summary of the IRF file and the
    normalisation are recorded in ``store``.
    """
    tree = analysis.tree
    mode = analysis.grid.General.mode
    dl2 = {particle: tree.data_dir(Stage.DL2, particle) / template.format(mode, particle.value)
           for particle in Particle}
    for path in dl2.values():
        if not path.is_file():
            raise InputError(f"{path}: not found", "download and merge the DL2 data first")
    config = tree.dl3 / performance.USED_CONFIG
    normalisations = performance.prepare(tree.configs / "performance.yaml", dl2, config)
    argv = ["protopipe-DL3-EventDisplay", "--config_file", str(config), f"--{mode}",
            "--indir_parent", str(tree.root / "data" / "DL2"),
            "--indir_gamma", "gamma", "--indir_proton", "proton", "--indir_electron", "electron",
            "--template_input_file", template, "--outdir_path", str(tree.dl3),
            "--out_file_name", name]
    run_payload(env, argv, tree.dl3 / "protopipe-DL3-EventDisplay.log")
    output = tree.dl3 / f"{name}.fits.gz"
    if not output.is_file():
        raise PayloadError(f"protopipe-DL3-EventDisplay wrote no {output}")
    summary = performance.summarise(output)
    performance.record(store, summary, normalisations)
    return PerformanceReport(output, config, normalisations, summary)


def enlarge(env: Path, inputs: Sequence[Path], output: Path, rows: int, seed: int,
            as_background: bool = False, extra: Sequence[str] = ()) -> Path:
    """Resample thin real tables into a bigger file of the same layout (a demo aid)."""
    argv = ["python", str(PAYLOAD_SCRIPTS / "enlarge_tables.py"), "-o", str(output),
            "--n", str(rows), "--seed", str(seed), *extra]
    if as_background:
        argv.append("--as-background")
    run_payload(env, [*argv, *map(str, inputs)], output.with_suffix(".log"))
    return output
