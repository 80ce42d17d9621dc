"""The planner: (stage, particle, LFNs, settings) -> a deterministic list of job specs.

A pure function: no I/O, no backend. The same inputs always give the same jobs, names and
outputs, which is what makes every later command idempotent. Names and files follow the
original tool: job ``protopipe_<analysis>_TRAINING_energy_gamma_run101-run110``, output
``TRAINING_energy_gamma_tail_run101-run110.h5``; jobs with several files run protopipe once per
file and merge the outputs inside the job.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from ..exceptions import InputError
from ..models import JobSpec, Particle, Stage
from ..paths import OUTPUT_PREFIX, STAGE_PARTICLES, model_file_name

#: DIRAC's JobDB stores JobName in a VARCHAR(128)
MAX_JOB_NAME = 128
RUN_PATTERN = re.compile(r"run(\d+)")
MERGE_SCRIPT = "merge_tables.py"
#: a canary job's name ends with this; its output goes to this folder of the stage's outputs
CANARY_SUFFIX = "_canary"
CANARY_FOLDER = "canary"


@dataclass(frozen=True)
class PlanSettings:
    """Everything besides the file list that decides what the jobs do."""

    analysis: str
    lfn_stage_dir: str
    lfn_estimators: str
    analysis_config: str
    cam_ids: tuple[str, ...]
    output_se: str
    mode: str = "tail"
    files_per_job: int = 10
    regressor_method: str | None = "RandomForestRegressor"
    classifier_method: str | None = "RandomForestClassifier"
    merge_script: str = ""
    cpu_time: int = 6 * 3600
    banned_sites: tuple[str, ...] = ()
    max_events: int | None = None
    max_jobs: int = -1
    force_tailcut_for_extended_cleaning: bool = False
    save_images: bool = False
    debug: bool = False
    tags: tuple[str, ...] = ()
    job_type: str = "User"


def run_token(lfn: str, index: int) -> str:
    """``run101`` for ``gamma_20deg_0deg_run101___cta-prod3_...simtel.gz``, else ``file<index>``."""
    name = lfn.rpartition("/")[2]
    fields = name.split("_", 4)
    if len(fields) > 3 and (token := RUN_PATTERN.match(fields[3])):
        return token.group(0)
    found = RUN_PATTERN.search(name)
    return f"run{found.group(1)}" if found else f"file{index}"


def model_inputs(stage: Stage, settings: PlanSettings) -> tuple[str, ...]:
    """Model and model-config LFNs a job needs as input data."""
    wanted: list[tuple[str, str | None]] = []
    if stage is Stage.TRAINING_CLASSIFICATION:
        wanted = [("regressor", settings.regressor_method)]
    elif stage is Stage.DL2:
        wanted = [("regressor", settings.regressor_method),
                  ("classifier", settings.classifier_method)]
    lfns: list[str] = []
    for model_type, method in wanted:
        if not method or method.lower() == "none":
            continue
        lfns.append(posixpath.join(settings.lfn_estimators, f"{method}.yaml"))
        lfns += [posixpath.join(settings.lfn_estimators, model_file_name(model_type, cam, method))
                 for cam in settings.cam_ids]
    return tuple(lfns)


def step_template(stage: Stage, settings: PlanSettings) -> Callable[[str, str], tuple[str, ...]]:
    """``make(outfile, infile)``: the protopipe command for one input file, with the original
    tool's arguments. Built once per plan: only the two file names change from job to job."""
    head: tuple[str, ...] = (
        "protopipe-DL2" if stage is Stage.DL2 else "protopipe-TRAINING",
        "--config_file", posixpath.basename(settings.analysis_config), "--outfile")
    middle = ("--indir", "./", "--infile_list")
    tail: tuple[str, ...] = ()
    if settings.max_events is not None:
        tail += ("--max_events", str(settings.max_events))
    tail += (f"--{settings.mode}",)
    regressor: tuple[str, ...] = ()
    if settings.regressor_method and settings.regressor_method.lower() != "none":
        regressor = ("--regressor_config", f"{settings.regressor_method}.yaml",
                     "--regressor_dir", "./")
    if stage is Stage.DL2:
        tail += regressor
        if settings.classifier_method and settings.classifier_method.lower() != "none":
            tail += ("--classifier_config", f"{settings.classifier_method}.yaml",
                     "--classifier_dir", "./")
        if settings.force_tailcut_for_extended_cleaning:
            tail += ("--force_tailcut_for_extended_cleaning",)
    elif stage is Stage.TRAINING_CLASSIFICATION:
        tail += ("--estimate_energy", "True", *regressor)
    tail += ("--cam_ids", *settings.cam_ids)
    if settings.save_images:
        tail += ("--save_images",)
    if settings.debug:
        tail += ("--debug",)

    def make(outfile: str, infile: str) -> tuple[str, ...]:
        return (*head, outfile, *middle, infile, *tail)

    return make


def output_name(stage: Stage, particle: Particle, mode: str, token: str) -> str:
    """``TRAINING_energy_gamma_tail_run101.h5`` / ``DL2_gamma_tail_run101-run110.h5``."""
    return f"{OUTPUT_PREFIX[stage]}_{particle.value}_{mode}_{token}.h5"


def job_name(stage: Stage, particle: Particle, analysis: str, token: str) -> str:
    """``protopipe_<analysis>_TRAINING_energy_<particle>_<token>`` (``_DL2_`` for DL2)."""
    return f"protopipe_{analysis}_{OUTPUT_PREFIX[stage]}_{particle.value}_{token}"


def site_groups(lfns: Sequence[str], sites: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """``lfns`` grouped by the set of storage elements holding them, like DIRAC's
    ``splitInputData``: groups in order of first appearance, LFNs in their given order."""
    groups: dict[frozenset[str], list[str]] = {}
    for lfn in lfns:
        groups.setdefault(frozenset(sites.get(lfn, ())), []).append(lfn)
    return list(groups.values())


def check_plan(stage: Stage, particle: Particle, lfns: Sequence[str], files_per_job: int
               ) -> None:
    """What every planner refuses: a particle the stage has not, a files-per-job count below
    one, an input LFN listed twice."""
    if particle not in STAGE_PARTICLES[stage]:
        allowed = ", ".join(p.value for p in STAGE_PARTICLES[stage])
        raise InputError(f"particle {particle.value!r} has no {stage.value} stage",
                         f"expected one of: {allowed}")
    if files_per_job <= 0:
        raise InputError(f"files per job must be positive, got {files_per_job}")
    if len(set(lfns)) != len(lfns):
        duplicate = next(lfn for lfn, n in Counter(lfns).items() if n > 1)
        raise InputError(f"duplicate input LFN {duplicate}")


class Bunch(NamedTuple):
    """The input files of one job, each file's token (``run101``) and the job's
    (``run101-run110``)."""

    lfns: Sequence[str]
    file_tokens: list[str]
    token: str


def job_bunches(lfns: Sequence[str], size: int, sites: Mapping[str, Sequence[str]] | None,
                max_jobs: int = -1) -> list[Bunch]:
    """``lfns`` cut into jobs of ``size`` files (of one site each, with ``sites``), at most
    ``max_jobs`` of them (-1: all); a token repeated between jobs gets the job's index."""
    groups: Sequence[Sequence[str]] = site_groups(lfns, sites) if sites else [lfns]
    bunches = [group[i:i + size] for group in groups for i in range(0, len(group), size)]
    if max_jobs > 0:
        bunches = bunches[:max_jobs]
    # a file without a run number is named after its position in the list
    position = {lfn: i for i, lfn in enumerate(lfns)} if len(groups) > 1 else None
    file_tokens, start = [], 0
    for bunch in bunches:
        file_tokens.append([run_token(lfn, position[lfn] if position else start + offset)
                            for offset, lfn in enumerate(bunch)])
        start += len(bunch)
    tokens = [ft[0] if len(ft) == 1 else f"{ft[0]}-{ft[-1]}" for ft in file_tokens]
    repeated = {t for t, n in Counter(tokens).items() if n > 1}
    tokens = [f"{t}_j{i}" if t in repeated else t for i, t in enumerate(tokens)]
    return [Bunch(*job) for job in zip(bunches, file_tokens, tokens, strict=True)]


def plan_jobs(
    stage: Stage,
    particle: Particle,
    lfns: Sequence[str],
    settings: PlanSettings,
    sites: Mapping[str, Sequence[str]] | None = None,
) -> list[JobSpec]:
    """Group ``lfns`` into jobs of ``settings.files_per_job`` files; see the module docstring.

    With ``sites`` (LFN -> storage elements of its replicas), a job only gets files stored at
    the same storage elements, so that it can run where all its input data is.
    """
    check_plan(stage, particle, lfns, settings.files_per_job)
    if not settings.cam_ids:
        raise InputError("no camera types: set General.cam_id_list in analysis.yaml")
    if stage is not Stage.TRAINING_ENERGY and not model_inputs(stage, settings):
        raise InputError(f"the {stage.value} stage needs models: set EnergyRegressor."
                         "method_name in analysis.yaml")

    if settings.files_per_job > 1 and len(lfns) > 1 and not settings.merge_script:
        raise InputError("jobs with several files need the merge script",
                         "set PlanSettings.merge_script")
    models = model_inputs(stage, settings)
    sandbox = tuple(p for p in (settings.analysis_config, settings.merge_script) if p)
    bunches = job_bunches(lfns, settings.files_per_job, sites, settings.max_jobs)
    make_step = step_template(stage, settings)
    lfn_stage_dir = settings.lfn_stage_dir.rstrip("/") + "/"
    specs: list[JobSpec] = []
    for bunch, file_tokens, token in bunches:
        name = job_name(stage, particle, settings.analysis, token)
        if len(name) > MAX_JOB_NAME:
            raise InputError(f"job name {name!r} is {len(name)} characters long",
                             f"DIRAC accepts at most {MAX_JOB_NAME}: shorten the analysis name")
        final = output_name(stage, particle, settings.mode, token)
        files = [lfn.rpartition("/")[2] for lfn in bunch]
        parts: list[str] = []
        if len(bunch) == 1:
            steps: tuple[tuple[str, ...], ...] = (make_step(final, files[0]),)
        else:
            parts = [output_name(stage, particle, settings.mode, f"{file_token}_part{offset}")
                     for offset, file_token in enumerate(file_tokens)]
            steps = (*(make_step(part, file) for part, file in zip(parts, files, strict=True)),
                     ("python", MERGE_SCRIPT, "-o", final, *parts))
        specs.append(JobSpec(
            name=name,
            analysis=settings.analysis,
            stage=stage,
            particle=particle,
            input_lfns=tuple(bunch),
            steps=steps,
            output_file=final,
            output_lfn=lfn_stage_dir + final,
            output_se=settings.output_se,
            input_sandbox=sandbox,
            input_data=models,
            cpu_time=settings.cpu_time,
            banned_sites=settings.banned_sites,
            tags=settings.tags,
            job_type=settings.job_type,
            intermediate_files=tuple(parts),
        ))
    return specs


def canary_job(spec: JobSpec) -> JobSpec:
    """The canary of ``spec``: the same job on its first input file alone (its first step,
    then, if the job merges its parts, its last step with that one part: a job's merge step
    ends with the parts), named ``<name>_canary`` (shortened with a digest to DIRAC's limit),
    its output in the ``canary`` folder beside the stage's."""
    steps, parts = spec.steps[:1], spec.intermediate_files[:1]
    if parts:
        merge = spec.steps[-1]
        steps += ((*merge[:len(merge) - len(spec.intermediate_files)], *parts),)
    name = spec.name + CANARY_SUFFIX
    if len(name) > MAX_JOB_NAME:
        digest = hashlib.sha256(spec.name.encode()).hexdigest()[:6]
        name = f"{spec.name[:MAX_JOB_NAME - len(CANARY_SUFFIX) - 7]}~{digest}{CANARY_SUFFIX}"
    folder, _, file_name = spec.output_lfn.rpartition("/")
    return replace(spec, name=name, input_lfns=spec.input_lfns[:1], steps=steps,
                   intermediate_files=parts,
                   output_lfn=posixpath.join(folder, CANARY_FOLDER, file_name))


def is_canary(name: str) -> bool:
    """True for the name of a canary job (:func:`canary_job`)."""
    return name.endswith(CANARY_SUFFIX)
