"""The ctapipe planner: (stage, particle, LFNs, settings) -> job specs, as pure as ``plan.py``.

A stage is a split of the simulation (``train_en``, ``train_cl``, ``test``: see
:mod:`.ctapipe_catalog`); processing needs no model, so every stage can run at once. A job
runs ``ctapipe-process`` on each of its files (several per job: a cold start costs ~27 s of
numba compilation, kept for the job's next files by ``payload/ctapipe_job.py``), each file's
``obs_id`` its run number (ctapipe-merge refuses the same obs_id twice), then merges its parts
with ``ctapipe-merge`` without images. Job ``ctapipe_<analysis>_<split>_<particle>_<token>``,
output ``<particle>_<split>_<token>.DL2.h5`` under CTADIRAC's layout.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import InputError
from ..models import JobSpec, Particle, Stage
from .ctapipe_catalog import SPLITS, Layout
from .plan import MAX_JOB_NAME, RUN_PATTERN, check_plan, job_bunches

PAYLOAD = Path(__file__).resolve().parent.parent / "payload"
JOB_SCRIPT = PAYLOAD / "ctapipe_job.py"
#: what a job's last merge leaves out: analyses read parameters and reconstructions
NO_IMAGES = ("--no-dl1-images", "--no-true-images")


@dataclass(frozen=True)
class ProcessSettings:
    """Everything besides the file list that decides what the process jobs do."""

    analysis: str
    layout: Layout
    #: ctapipe-process configuration files on this machine, in order (sent with each job)
    configs: tuple[str, ...]
    output_se: str
    options: tuple[str, ...] = ()
    files_per_job: int = 5
    cpu_time: int = 6 * 3600
    banned_sites: tuple[str, ...] = ()
    max_jobs: int = -1
    tags: tuple[str, ...] = ()
    job_type: str = "User"


def run_number(lfn: str) -> int | None:
    """The run number in a sim_telarray file name (``..._run101___cta...``), if any."""
    found = RUN_PATTERN.search(lfn.rpartition("/")[2])
    return int(found.group(1)) if found else None


def obs_ids(lfns: Sequence[str]) -> dict[str, int]:
    """Each file's ``obs_id``: its run number, or its position (from 1) in the list for all
    files when some have none or two share one."""
    runs = [run_number(lfn) for lfn in lfns]
    if None in runs or any(n > 1 for n in Counter(runs).values()):
        return {lfn: i for i, lfn in enumerate(lfns, start=1)}
    return {lfn: run for lfn, run in zip(lfns, runs, strict=True) if run is not None}


def output_name(stage: Stage, particle: Particle, token: str) -> str:
    """``gamma_train_en_run101-run105.DL2.h5``."""
    return f"{particle.value}_{SPLITS[stage]}_{token}.DL2.h5"


def job_name(stage: Stage, particle: Particle, analysis: str, token: str) -> str:
    """``ctapipe_<analysis>_<split>_<particle>_<token>``."""
    return f"ctapipe_{analysis}_{SPLITS[stage]}_{particle.value}_{token}"


def tool(*argv: str) -> tuple[str, ...]:
    """A job step running a ctapipe tool through ``ctapipe_job.py``."""
    return ("python", JOB_SCRIPT.name, *argv)


def plan_process_jobs(stage: Stage, particle: Particle, lfns: Sequence[str],
                      settings: ProcessSettings,
                      sites: Mapping[str, Sequence[str]] | None = None) -> list[JobSpec]:
    """Group ``lfns`` into process jobs (see the module docstring); with ``sites``, a job only
    gets files stored at the same storage elements."""
    check_plan(stage, particle, lfns, settings.files_per_job)
    if not settings.configs:
        raise InputError("no ctapipe-process configuration: set Ctapipe.process_configs in "
                         "grid.yaml")
    obs = obs_ids(lfns)
    config_args = tuple(arg for path in settings.configs for arg in ("-c", Path(path).name))
    sandbox = (str(JOB_SCRIPT), *settings.configs)
    specs = []
    for bunch, file_tokens, token in job_bunches(lfns, settings.files_per_job, sites,
                                                 settings.max_jobs):
        name = job_name(stage, particle, settings.analysis, token)
        if len(name) > MAX_JOB_NAME:
            raise InputError(f"job name {name!r} is {len(name)} characters long",
                             f"DIRAC accepts at most {MAX_JOB_NAME}: shorten the analysis name")
        final = output_name(stage, particle, token)
        parts = ([final] if len(bunch) == 1 else
                 [output_name(stage, particle, f"{file_token}_part{offset}")
                  for offset, file_token in enumerate(file_tokens)])
        steps = [tool("ctapipe-process", *config_args, "-i", lfn.rpartition("/")[2],
                      "-o", part, f"--SimTelEventSource.override_obs_id={obs[lfn]}",
                      "--no-progress", *settings.options)
                 for lfn, part in zip(bunch, parts, strict=True)]
        if len(bunch) > 1:
            steps.append(tool("ctapipe-merge", *NO_IMAGES, "-o", final, *parts))
        specs.append(JobSpec(
            name=name, analysis=settings.analysis, stage=stage, particle=particle,
            input_lfns=tuple(bunch), steps=tuple(steps), output_file=final,
            output_lfn=posixpath.join(settings.layout.data_dir(particle, obs[bunch[0]]),
                                      final),
            output_se=settings.output_se, input_sandbox=sandbox,
            cpu_time=settings.cpu_time, banned_sites=settings.banned_sites,
            tags=settings.tags, job_type=settings.job_type,
            intermediate_files=tuple(parts) if len(bunch) > 1 else ()))
    return specs

