"""The steps of a ctapipe analysis that ``run`` does on this machine, and its catalog step.

Each takes the analysis and the ctapipe environment, calls :mod:`.ctapipe_steps` (the tools)
with the analysis' files, records what it found in the state database, and returns its output
files and the lines ``run`` shows. Local files of a stage and particle, in its data folder:
``<particle>_<split>_merged.DL2.h5`` (ctapipe-merge of the jobs' outputs), ``..._enlarged``
(the demo's stand-in), ``..._applied`` (the models applied); the models
``energy_model.pkl`` and ``classifier_model.pkl`` (CTADIRAC's names) in the estimators folder;
the event selection and IRFs in the DL3 folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..backends.base import Backend
from ..models import JobStatus, Particle, Stage
from ..paths import CTAPIPE_WORK, AnalysisTree
from ..store import Store
from . import ctapipe_steps
from .analysis import Analysis
from .collect import Merger, MergeResult
from .ctapipe_catalog import SPLITS
from .ctapipe_plan import run_number
from .plan import is_canary
from .results import table_rows

Kind = Literal["merged", "enlarged", "applied"]
MODEL_FILES = {"regressor": "energy_model.pkl", "classifier": "classifier_model.pkl"}
#: the tables a merge reports: array events triggered, showers simulated, and reconstructed
KEY_TABLES = ("/dl1/event/subarray/trigger", "/simulation/event/subarray/shower")


@dataclass
class Done:
    """What a local step made, and what ``run`` says of it."""

    files: list[Path]
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def data_file(tree: AnalysisTree, stage: Stage, particle: Particle, kind: Kind = "merged"
              ) -> Path:
    """``<data folder>/gamma_train_en_merged.DL2.h5`` and its enlarged and applied copies."""
    return tree.data_dir(stage, particle) / f"{particle.value}_{SPLITS[stage]}_{kind}.DL2.h5"


def model_file(tree: AnalysisTree, model_type: str) -> Path:
    return tree.estimator_dir(model_type) / MODEL_FILES[model_type]


def work_folder(tree: AnalysisTree) -> Path:
    """Where the tools keep their numba and astropy caches between local steps."""
    return tree.root / CTAPIPE_WORK


def merger(env: Path, tree: AnalysisTree) -> Merger:
    """A collect step's merge: ``ctapipe-merge`` without images."""

    def merge(inputs: Sequence[Path], output: Path, overwrite: bool) -> MergeResult:
        ctapipe_steps.merge(env, inputs, output, workdir=work_folder(tree))
        figures = ctapipe_steps.summarise(output)
        tables = {t: n for t, n in table_rows(output).items() if t in KEY_TABLES}
        return MergeResult(output, len(inputs), figures.get("simulated_showers", 0),
                           len(inputs), tables=tables)

    return merge


def enlarge(analysis: Analysis, env: Path, stage: Stage, particle: Particle,
            options: Mapping[str, Any]) -> Done:
    """The demo's stand-in: the merged real events cloned into a larger file (not physics)."""
    tree = analysis.tree
    source, output = data_file(tree, stage, particle), data_file(tree, stage, particle,
                                                                   "enlarged")
    ctapipe_steps.enlarge(env, source, output, particle=particle.value,
                          workdir=work_folder(tree), **dict(options))
    figures = ctapipe_steps.summarise(output)
    return Done([output], [f"NOTE: {source.name} cloned into {output.name} "
                           f"({figures.get('array_events', '?')} array events of "
                           f"{figures.get('simulated_showers', '?')} simulated showers; energies "
                           "and directions drawn anew): a stand-in for statistics that do not "
                           "exist offline, not physics"])


def inputs_of(options: Mapping[str, Any]) -> Kind:
    """Which files of a stage a local step reads: ``inputs: enlarged`` or the merged ones."""
    return "enlarged" if options.get("inputs") == "enlarged" else "merged"


def train(analysis: Analysis, env: Path, store: Store, model_type: str, kind: Kind) -> Done:
    """``ctapipe-train-energy-regressor`` on the energy split's gammas (``kind``: merged or
    enlarged), or ``ctapipe-train-particle-classifier`` on the classification split's gammas
    and protons with the energy applied."""
    tree, configs = analysis.tree, analysis.tree.configs
    output = model_file(tree, model_type)
    output.parent.mkdir(parents=True, exist_ok=True)
    if model_type == "regressor":
        ctapipe_steps.train_energy(env, configs, data_file(tree, Stage.TRAINING_ENERGY,
                                                           Particle.GAMMA, kind),
                                   output, workdir=work_folder(tree))
    else:
        stage = Stage.TRAINING_CLASSIFICATION
        ctapipe_steps.train_classifier(env, configs,
                                       data_file(tree, stage, Particle.GAMMA, "applied"),
                                       data_file(tree, stage, Particle.PROTON, "applied"),
                                       output, workdir=work_folder(tree))
    scores = ctapipe_steps.training_scores(ctapipe_steps.log_path(output))
    score = "ROC AUC" if model_type == "classifier" else "R^2"
    store.record_result(f"model {model_type}", "", {"file": output.name, "score": score,
                                                    "cross_validation": scores})
    low = [f"{telescope} {value:.2f}" for telescope, value in scores.items() if value < 0.6]
    return Done([output], [f"{output.name} trained; mean {score} from cross-validation: " +
                           (", ".join(f"{t} {v:.3f}" for t, v in scores.items()) or "none")],
                [f"{output.name}: {score} {', '.join(low)}: barely better than chance"]
                if low else [])


def apply(analysis: Analysis, env: Path, store: Store, stage: Stage, particle: Particle,
          models: Sequence[str], kind: Kind) -> Done:
    """``ctapipe-apply-models`` with ``models`` on a stage's merged (or enlarged) file."""
    tree = analysis.tree
    source, output = data_file(tree, stage, particle, kind), data_file(tree, stage, particle,
                                                                         "applied")
    ctapipe_steps.apply_models(env, source, output, [model_file(tree, m) for m in models],
                               workdir=work_folder(tree),
                               parameters=stage is not Stage.DL2)  # the IRFs need none
    figures = ctapipe_steps.summarise(output)
    store.record_result(f"apply {stage.value}", particle.value, dict(figures))
    valid = ", ".join(f"{key.split('_', 2)[1]} {value}" for key, value in figures.items()
                      if key.startswith("dl2_"))
    return Done([output], [f"{', '.join(models)} applied -> {output.name} "
                           f"({figures.get('array_events', 0)} events; valid: {valid})"])


def performance(analysis: Analysis, env: Path, store: Store) -> Done:
    """``ctapipe-optimize-event-selection`` then ``ctapipe-compute-irf`` on the test split's
    applied gammas, protons and electrons; the IRFs' headline figures recorded."""
    tree = analysis.tree
    files = {p: data_file(tree, Stage.DL2, p, "applied") for p in Particle}
    tree.dl3.mkdir(parents=True, exist_ok=True)
    irf = ctapipe_steps.optimise_and_irf(env, tree.configs, files[Particle.GAMMA],
                                         files[Particle.PROTON], files[Particle.ELECTRON],
                                         tree.dl3, workdir=work_folder(tree))
    summary = dict(ctapipe_steps.irf_summary(irf))
    warnings = ([] if summary.get("effective_area_bins_above_zero") else
                ["the effective area is zero in every bin"])
    store.record_result("performance ctapipe", "", {"irf": str(irf.irf), **summary}, warnings)
    made = [p for p in (irf.cuts, irf.irf, irf.benchmarks) if p is not None]
    lines = [f"event selection and IRFs (ctapipe): {', '.join(p.name for p in made)}"]
    lines += [f"{key}: {shown(value)}" for key, value in summary.items()]
    return Done(made, lines, warnings)


def shown(value: Any) -> str:
    """A figure for a line: floats to 3 significant digits, ranges as ``low-high``."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list) and len(value) == 2:
        return "-".join(map(shown, value))
    return str(value)


def register(analysis: Analysis, backend: Backend, store: Store, stage: Stage,
             particle: Particle) -> Done:
    """Give a stage's outputs CTADIRAC's metadata: each folder its keys (top first), each
    Done job's output file its own (``split``, ``nsb``, ``runNumber``, ``jobID``). Setting
    the same values again changes nothing, so a step interrupted is simply done again."""
    layout = analysis.layout
    records = [r for r in store.jobs(stage=stage, particle=particle)
               if not is_canary(r.name) and r.status == JobStatus.DONE]
    folders = {lfn.rpartition("/")[0] for lfn in (r.spec.output_lfn for r in records)}
    for folder, keys in layout.levels(particle):
        backend.set_metadata(folder, keys)
    tagged = []
    for record in records:
        spec = record.spec
        backend.set_metadata(spec.output_lfn, layout.file_metadata(
            stage, run_number(spec.input_lfns[0]), record.backend_id))
        tagged.append(spec.output_lfn)
    return Done([], [f"{len(tagged)} output(s) in {len(folders)} folder(s) carry CTADIRAC's "
                     f"metadata (split={SPLITS[stage]}, particle={particle.value})"])

