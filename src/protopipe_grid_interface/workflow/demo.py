"""A whole protopipe analysis on one machine, with real protopipe on real files.

It runs on any backend: the local one by default, or DIRAC (a test box whose worker nodes are
this machine, so the payload environment is reachable at a fixed path).

Only one real Prod3 Paranal file fits one analysis configuration offline (9 gamma events), and
there is no proton or electron simulation: the demo registers copies of that file as a small
production with realistic LFNs, standing in for protons and electrons too. Training models and
computing IRFs need more events than that: before those two local steps the demo enlarges the
merged real tables by resampling (``payload/enlarge_tables.py``), and says so; the DL2 rows get
true energies spread over the IRFs' energy range, and the IRFs are normalised from the enlarged
files' own simulated showers, as any analysis's. Every grid stage runs real protopipe on real
files; the enlarged tables are a demo aid, not physics.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..backends import open_backend
from ..backends.base import Backend
from ..config import SoftwareSection, set_yaml_values
from ..exceptions import DataError, InputError
from ..models import JobStatus, Particle, Stage
from ..paths import STAGE_PARTICLES, analyses_directory, merged_file_name
from ..software import check_payload_env, default_demo_data, default_payload_env, example_configs
from . import (
    canary,
    collect,
    consistency,
    local_steps,
    performance,
    submit,
    track,
    upload,
    validate,
)
from .analysis import Analysis
from .split import DEFAULT_FRACTIONS, SplitInput
from .tree import create_analysis

Say = Callable[[str], None]

NAME = "demo"
SOURCE_FILE = "gamma_test.simtel.gz"
PRODUCTION = "/vo.cta.in2p3.fr/MC/PROD3/Paranal/{particle}/sim_telarray/demo/Data/000xxx"
FILE_NAME = "{particle}_20deg_0deg_run{run}___cta-prod3-demo_desert-2150m-Paranal-merged.simtel.gz"
FILES = {Particle.GAMMA: 5, Particle.PROTON: 5, Particle.ELECTRON: 2}
FIRST_RUN = {Particle.GAMMA: 101, Particle.PROTON: 201, Particle.ELECTRON: 301}
FILES_PER_JOB = 2
ANALYSIS_FILL: dict[str, object] = {
    "production": "Prod3b",
    "site": "south",
    "array": list(range(1, 29)),  # LSTs and MSTs of this Paranal file (no ASTRI: it crashes)
    "cam_id_list": ["LSTCam", "NectarCam"],
}
ENLARGED_ROWS = 3000
#: DL2 enlargement per particle: rows, runs (distinct obs_ids), first obs_id, and the simulated
#: showers written in the file's num_showers attribute (the IRFs are normalised from it)
DL2_ENLARGEMENT = {
    Particle.GAMMA: ("5000", "5", "101", "100000"),
    Particle.PROTON: ("5000", "10", "201", "500000"),
    Particle.ELECTRON: ("2000", "3", "301", "150000"),
}
#: true energies (TeV) of the enlarged DL2 rows, log-uniform: protopipe 0.5's fixed sensitivity
#: bins (0.0126-200 TeV) and the IRF bins of performance.yaml (0.0125-198 TeV) all get events
DL2_ENERGY_RANGE = ("0.01", "250")
JOB_TIMEOUT = 1200.0


@dataclass
class DemoResult:
    """What the demo made, for the closing summary."""

    analysis: Analysis
    outputs: dict[str, Path] = field(default_factory=dict)


def fill_configs(analysis_dir: Path, ses: list[str], worker_env: str) -> None:
    """Fill what protopipe's templates leave to the user, for the demo's Paranal file."""
    configs = analysis_dir / "configs"
    set_yaml_values(configs / "analysis.yaml",
                    {("General", key): value for key, value in ANALYSIS_FILL.items()})
    for name in ("RandomForestRegressor.yaml", "RandomForestClassifier.yaml"):
        set_yaml_values(configs / name,
                        {("General", "cam_id_list"): ANALYSIS_FILL["cam_id_list"]})
    set_yaml_values(configs / "grid.yaml", {
        ("GRID", "n_file_per_job"): FILES_PER_JOB, ("GRID", "upload_sites"): ses,
        ("GRID", "banned_sites"): [], ("Software", "worker_env"): worker_env})


def register_production(backend: Backend, ses: list[str], source: Path, lists: Path,
                        say: Say) -> dict[Particle, Path]:
    """Register copies of the real file as a production; write one list file per particle."""
    files = {}
    report = upload.UploadReport()
    for particle, count in FILES.items():
        lfns = []
        for run in range(FIRST_RUN[particle], FIRST_RUN[particle] + count):
            lfn = (PRODUCTION.format(particle=particle.value) + "/" +
                   FILE_NAME.format(particle=particle.value, run=run))
            upload.upload_file(backend, source, lfn, ses[0], report)
            lfns.append(lfn)
        upload.replicate_all(backend, lfns, ses, report)
        path = lists / f"{particle.value}.list"
        path.write_text("".join(f"{lfn}\n" for lfn in lfns))
        files[particle] = path
    say(f"production: {sum(FILES.values())} LFNs registered on {', '.join(ses)} "
        f"({len(report.uploaded)} new), each a copy of the real {source.name}; protons and "
        "electrons are gamma files standing in")
    return files


def grid_stage(analysis: Analysis, backend: Backend, stage: Stage, env: Path, say: Say) -> None:
    """Check the analysis and the stage's inputs, submit the stage for all its particles (its
    canary first), wait, download and merge."""
    store = analysis.store()
    try:
        validate.check_analysis(analysis, store)
        specs = [spec for particle in STAGE_PARTICLES[stage]
                 for spec in analysis.plan(stage, particle, backend.storage_elements()[0])]
        validate.check_inputs(backend, specs)
        passed = canary.run_canary(store, backend, specs, analysis.cam_ids, canary.CanaryOptions(
            analysis.grid.GRID.canary, env, timeout=JOB_TIMEOUT))
        if passed is not None:
            say(passed.describe())
        report = submit.submit(store, backend, specs)
        consistency.record(store, backend, analysis, specs)
        say(f"{stage.value}: {len(specs)} job(s) planned, {len(report.submitted)} submitted, "
            f"{report.skipped_existing} skipped (output exists), "
            f"{report.already_submitted} already submitted")
        records = track.wait(store, backend, [s.name for s in specs], timeout=JOB_TIMEOUT,
                             held_after=JOB_TIMEOUT).records
        failed = [r for r in records if r.status != JobStatus.DONE]
        if failed:
            tail = backend.job_log(failed[0].backend_id or 0).strip().splitlines()[-1:]
            raise InputError(f"{len(failed)} {stage.value} job(s) did not finish: "
                             f"{failed[0].name} {failed[0].status.value} "
                             f"({failed[0].application_status}) {tail}")
        for collected in collect.collect(store, backend, analysis.tree,
                                         analysis.grid.General.mode, stage,
                                         STAGE_PARTICLES[stage], overwrite=True):
            if collected.download.failed or collected.merged is None:
                problems = list(collected.download.failed.values()) or ["nothing to merge"]
                raise DataError(f"{stage.value} {collected.particle.value}: {problems[0]}")
            merged = collected.merged
            rows = ", ".join(f"{table.lstrip('/')} {count}"
                             for table, count in merged.tables.items()) or "no table"
            say(f"  {collected.particle.value}: {len(collected.download.fetched)} downloaded "
                f"(adler32 verified), {merged.files} merged -> {merged.path.name} "
                f"({merged.showers} showers; rows: {rows})")
            for warning in merged.warnings:
                say(f"  WARNING: {warning}")
    finally:
        store.close()


def enlarged(env: Path, merged: Path, seed: int, as_background: bool, say: Say,
             rows: int = ENLARGED_ROWS, extra: tuple[str, ...] = ()) -> Path:
    output = merged.with_name(merged.name.replace("_merged", "_enlarged"))
    local_steps.enlarge(env, [merged], output, rows, seed, as_background, extra)
    kind = "a hadron-like stand-in" if as_background else "resampled"
    say(f"  NOTE: {merged.name} enlarged to {rows} rows per table ({kind}) -> "
        f"{output.name}: a demo aid, not physics")
    return output


def build_and_upload(analysis: Analysis, backend: Backend, env: Path, ses: list[str],
                     model_type: str, signal: Path, background: Path | None, say: Say) -> None:
    """protopipe-MODEL on this machine, then the models to the first SE, replicated."""
    store = analysis.store()
    try:
        model = local_steps.build_model(analysis, model_type, env, store, signal, background)
    finally:
        store.close()
    say(f"{model_type} (protopipe-MODEL): {', '.join(p.name for p in model.files)}")
    for score in model.scores:
        say(f"  {score.summary()}")
    for warning in model.warnings:
        say(f"  WARNING: {warning}")
    report = upload.upload_models(backend, analysis.tree, model_type,
                                  analysis.method(model_type) or "", analysis.cam_ids, ses)
    say(f"{model_type} uploaded to {ses[0]}, replicated to {', '.join(ses[1:])} "
        f"({len(report.uploaded)} new file(s))")


def run(workdir: Path, payload_env: Path | None, data: Path | None, fresh: bool, say: Say,
        backend_name: str | None = None) -> DemoResult:
    """Run the whole demo in ``workdir``, on a local backend inside it (or ``dirac``: a test
    site whose workers are this machine, with the payload environment at the same path);
    resumable: a second run reuses what is done."""
    env = check_payload_env(payload_env or default_payload_env())
    source = (data or default_demo_data()) / SOURCE_FILE
    if not source.is_file():
        raise InputError(f"{source}: demo data not found", "run scripts/install-payload.sh")
    workdir = workdir.resolve()
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    local_root = workdir / "local-grid"
    backend = open_backend(backend_name or "local", local_root,
                           SoftwareSection(worker_env=str(env)), env)
    ses = backend.storage_elements()[:2]
    if fresh:  # the analysis' files on the backend go too (the production is kept)
        left = backend.list_directory(f"{backend.home()}/{NAME}", recursive=True)
        backend.remove([f.lfn for f in left])
        if left:
            say(f"removed {len(left)} file(s) of an earlier demo from the {backend.name} backend")
    metadata = analyses_directory(workdir) / NAME / "analysis_metadata.yaml"
    if not metadata.exists():
        tree = create_analysis(workdir, NAME, example_configs(env), grid_home=backend.home(),
                               overwrite=True, backend=backend.name, local_root=local_root)
        fill_configs(tree.root, ses, str(env))
        say(f"analysis created: {tree.root} ({backend.name} backend)")
    analysis = Analysis.open(metadata)
    lists = register_production(backend, ses, source, analysis.tree.simtel_lists, say)

    split = analysis.split([SplitInput(particle, lists[particle], DEFAULT_FRACTIONS[particle])
                            for particle in Particle], overwrite=True)
    say("split: " + ", ".join(f"{stage_list.path.name} ({len(stage_list.lfns)})"
                              for stage_list, _ in split))

    mode = analysis.grid.General.mode
    tree = analysis.tree
    result = DemoResult(analysis)

    grid_stage(analysis, backend, Stage.TRAINING_ENERGY, env, say)
    energy = tree.data_dir(Stage.TRAINING_ENERGY, Particle.GAMMA) / merged_file_name(
        Stage.TRAINING_ENERGY, Particle.GAMMA, mode)
    signal = enlarged(env, energy, 1, False, say)
    build_and_upload(analysis, backend, env, ses, "regressor", signal, None, say)

    grid_stage(analysis, backend, Stage.TRAINING_CLASSIFICATION, env, say)
    stage = Stage.TRAINING_CLASSIFICATION
    gammas = enlarged(env, tree.data_dir(stage, Particle.GAMMA) / merged_file_name(
        stage, Particle.GAMMA, mode), 2, False, say)
    protons = enlarged(env, tree.data_dir(stage, Particle.PROTON) / merged_file_name(
        stage, Particle.PROTON, mode), 3, True, say)
    build_and_upload(analysis, backend, env, ses, "classifier", gammas, protons, say)

    grid_stage(analysis, backend, Stage.DL2, env, say)
    for seed, particle in enumerate(Particle, start=4):
        merged = tree.data_dir(Stage.DL2, particle) / merged_file_name(Stage.DL2, particle, mode)
        rows, runs, first_obs_id, showers = DL2_ENLARGEMENT[particle]
        enlarged(env, merged, seed, particle is not Particle.GAMMA, say, int(rows),
                 ("--n-runs", runs, "--first-obs-id", first_obs_id, "--num-showers", showers,
                  "--energy-range", *DL2_ENERGY_RANGE))
    say(f"  NOTE: the enlarged DL2 rows have true energies spread log-uniformly over "
        f"{'-'.join(DL2_ENERGY_RANGE)} TeV, so that every IRF bin has events")
    store = analysis.store()
    try:
        report = local_steps.make_performance(analysis, env, store,
                                              template="DL2_{}_{}_enlarged.h5",
                                              name="performance_demo")
    finally:
        store.close()
    say(f"IRFs (protopipe-DL3-EventDisplay): {report.irf}, normalised from the enlarged DL2 "
        f"files' own attributes (protopipe read {report.config.name}):")
    for normalisation in report.normalisations:
        say(f"  {performance.normalisation_line(normalisation)}")
    for line in performance.overview_lines(report.summary):
        say(f"  {line}")
    result.outputs = {"analysis": tree.root, "IRFs": report.irf,
                      "state database": tree.state_db}
    if backend.name == "local":
        result.outputs["local grid"] = local_root
    return result
