"""The original ``protopipe-*`` commands, with their option names and defaults, without their bugs.

protopipe-grid-interface 0.4 shipped twelve scripts. Each is kept here under its name, with the
options it had (DIRAC-style ``--name=value`` switches included), as a thin adapter over the same
workflow functions ``protopipe-grid`` uses. What changed, on purpose:

- ``protopipe-SUBMIT_JOBS``: ``--dry=True`` shows the whole plan (every job) and submits nothing;
  ``--test=True`` submits exactly one job; a job is never submitted twice and never when its
  output already exists (the analysis' state database, not a two-day look-up); boolean switches
  accept ``True``/``true``/``False``/``false`` or a bare flag. The analysis configuration is
  uploaded next to the outputs, to ``GRID.upload_sites``, never to hard-coded SEs.
- ``protopipe-DOWNLOAD_AND_MERGE`` / ``protopipe-DOWNLOAD_FILES``: verified, resumable downloads
  (no file is silently skipped); a failure is a non-zero exit.
- ``protopipe-DELETE_FILES`` and ``protopipe-FORCE_JOB_TO_FAILED`` show what they would act on
  and ask first (``--yes`` answers); the latter refuses a selection by date alone.
- ``protopipe-FILTER-REPLICAS`` honours ``--filter_disks``; ``protopipe-UPLOAD_FILE`` works;
  ``protopipe-GET_INPUT_LFNS`` reports a failure; ``protopipe-CREATE_ANALYSIS`` works without
  ``--GRID-is-DIRAC``; ``protopipe-SPLIT_DATASET`` labels lists by particle, never by position.
- No shell strings anywhere; every error is one line on stderr and a non-zero exit code.

Every command also takes ``--backend``, ``--local-root`` and ``--payload-env``, so it runs on the
local backend as well as on DIRAC.
"""

from __future__ import annotations

import argparse
import logging
import posixpath
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..atomic import write_lines
from ..backends.base import Backend
from ..exceptions import ConfigError, DataError, InputError
from ..models import (
    BOOKKEEPING_STATES,
    FINAL_STATES,
    RESUBMITTABLE_STATES,
    JobSpec,
    JobStatus,
    Particle,
    Stage,
)
from ..paths import STAGE_PARTICLES, AnalysisTree, create_paths, validate_lfn
from ..software import check_payload_env, default_payload_env, example_configs
from ..workflow import collect, submit, track, upload
from ..workflow.split import SplitInput, read_list, split_files
from . import render
from .common import (
    ArgumentParser,
    add_backend_options,
    comma_list,
    confirm,
    console,
    make_backend,
    positive_int,
    progress_bar,
    run,
    tracker,
)

if TYPE_CHECKING:  # heavy modules (pydantic, rich tables) are imported when a command needs them
    from ..store import Store
    from ..workflow.analysis import Analysis

log = logging.getLogger(__name__)
#: what ``say`` prints, also kept in the log file (but never repeated on stderr)
user_log = logging.getLogger(f"{__name__}.user")

DEFAULT_GRID_HOME = "/vo.cta.in2p3.fr/user/x/xxx"
DEFAULT_SE = "CC-IN2P3-USER"
DEFAULT_MAX_EVENTS = 10000000000
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.+-]+$")
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
LOG_LEVELS = ("INFO", "DEBUG", "WARNING", "ERROR", "CRITICAL")
DATA_TYPES = {
    "TRAINING/for_energy_estimation": Stage.TRAINING_ENERGY,
    "TRAINING/for_particle_classification": Stage.TRAINING_CLASSIFICATION,
    "DL2": Stage.DL2,
}
MODEL_NAMES = {
    "regressor": ("RandomForestRegressor", "AdaBoostRegressor"),
    "classifier": ("RandomForestClassifier",),
}
#: states a user may select jobs by (ours, Planned and Sending, never exist on a backend)
SELECTABLE_STATES = tuple(s.value for s in JobStatus if s not in BOOKKEEPING_STATES)


# --- shared helpers -----------------------------------------------------------------------------
def say(text: str) -> None:
    """One line for the user (and for the log file, when there is one)."""
    console.print(text, markup=False, soft_wrap=True)
    user_log.info(text)


def switch(value: str) -> bool:
    """A DIRAC-style boolean switch value: True/true/False/false (also yes/no, 1/0)."""
    text = value.strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_switch(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    """``--name``, ``--name=True``, ``--name=false``: all work; absent means False."""
    parser.add_argument(name, type=switch, nargs="?", const=True, default=False,
                        metavar="True|False", help=help_text)


def new_parser(prog: str, description: str) -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description=description, allow_abbrev=False,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="tracebacks on internal errors")
    return parser


def entry(build: Callable[[], ArgumentParser], func: Callable[[argparse.Namespace], int],
          argv: Sequence[str] | None) -> int:
    """Parse ``argv``, run ``func``; return the exit code (never raise SystemExit)."""
    parser = build()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad argument already reported in one line
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return run(func, args, parser.prog)


def log_to_file(path: Path | str | None, append: bool = True, level: str = "DEBUG") -> None:
    """Also log to ``path`` (the original's ``--log_file``), in the original's format."""
    if not path:
        return
    root = logging.getLogger()
    for handler in root.handlers:  # keep stderr as quiet as it was
        if handler.level == logging.NOTSET:
            handler.setLevel(root.level)
    handler = logging.FileHandler(path, mode="a" if append else "w")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, handler.level))


def set_stream_level(level: str) -> None:
    """Level of the messages logged to stderr (``--log_level``, ``--loglevel_stream``)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(level)
            handler.addFilter(lambda record: record.name != user_log.name)
    root.setLevel(min(root.level or logging.WARNING, logging.getLevelName(level)))


def check_ses(backend: Backend, ses: Sequence[str], option: str) -> list[str]:
    """``ses`` if the backend can write to all of them; a one-line error naming the first not."""
    known = backend.storage_elements()
    for se in ses:
        if se not in known:
            raise InputError(f"{option} {se}: unknown storage element on the {backend.name} "
                             "backend", f"known: {', '.join(known)}")
    return list(dict.fromkeys(ses))


@contextmanager
def recorded(analysis: Analysis) -> Iterator[Store]:
    """The analysis' state database, with this command recorded in it (as ``protopipe-grid``)."""
    store = analysis.store()
    command = store.start_command(sys.argv, __version__, analysis.config_hashes())
    code = 1
    try:
        yield store
        code = 0
    finally:
        store.finish_command(command, code)
        store.close()


def legacy_analysis(metadata: str | None, analysis_name: str | None, local_path: str | None,
                    grid_home: str | None, path_from_home: str, mode: str) -> Analysis:
    """The analysis, from ``--metadata`` or from ``--local_path`` + ``--analysis_name``.

    As in the original, the metadata wins; without it the folder is
    ``<local_path>/shared_folder/analyses/<analysis_name>`` and the grid paths come from
    ``--GRID-home`` and ``--GRID-path-from-home`` (or the backend's home).
    """
    from ..config import AnalysisConfig, GridConfig
    from ..workflow.analysis import Analysis

    if metadata:
        analysis = Analysis.open(Path(metadata))
        if grid_home and not analysis.tree.grid_home:
            analysis = analysis.with_home(grid_home)
        return analysis
    if not analysis_name:
        raise InputError("no analysis given",
                         "use --metadata, or --analysis_name (with --local_path)")
    analyses = (Path(local_path or ".") / "shared_folder" / "analyses").resolve()
    root = analyses / analysis_name
    if (root / "analysis_metadata.yaml").is_file():
        analysis = Analysis.open(root / "analysis_metadata.yaml")
    elif root.is_dir():
        analysis = Analysis(AnalysisTree(analyses, analysis_name),
                            GridConfig.model_validate({"General": {"mode": mode}}),
                            AnalysisConfig())
    else:
        raise InputError(f"{root}: analysis folder not found",
                         "check --local_path and --analysis_name, or use --metadata")
    if grid_home:
        tree = AnalysisTree(analysis.tree.analyses_directory, analysis.tree.name, grid_home,
                            path_from_home)
        analysis = Analysis(tree, analysis.grid, analysis.protopipe)
    return analysis


def add_analysis_options(parser: argparse.ArgumentParser) -> None:
    """The original's way to name an analysis: metadata file, or name + local path + grid home."""
    parser.add_argument("--metadata", default=None,
                        help="analysis_metadata.yaml of the analysis (recommended)")
    parser.add_argument("--GRID-home", default=None,
                        help="your LFN home (default: from the metadata, or the backend's)")
    parser.add_argument("--GRID-path-from-home", default="",
                        help="analyses folder below the home (default: '')")
    parser.add_argument("--analysis_name", default=None, help="analysis name (without --metadata)")


# --- protopipe-CREATE_ANALYSIS ------------------------------------------------------------------
def build_create_analysis() -> ArgumentParser:
    parser = new_parser(
        "protopipe-CREATE_ANALYSIS",
        "Create a directory structure for a CTA data analysis using the protopipe prototype "
        "pipeline.\nWARNING: check that the version of protopipe is the one you intend to use!")
    parser.add_argument("--analysis_name", required=True, help="name of the analysis")
    parser.add_argument("--analysis_directory_tree", default=None,
                        help="YAML file with the folder tree (default: the standard workflow)")
    parser.add_argument("--log_file", default=None,
                        help="accepted for compatibility: the log is <analysis>/analysis.log")
    parser.add_argument("--output_path", type=Path, default=Path.home(),
                        help="where shared_folder/ is created or reused (default: $HOME)")
    add_switch(parser, "--GRID-is-DIRAC", "the grid is DIRAC (the user name is taken from "
               "--GRID-home)")
    parser.add_argument("--GRID-home", default=DEFAULT_GRID_HOME,
                        help=f"your LFN home (default: {DEFAULT_GRID_HOME})")
    parser.add_argument("--GRID-path-from-home", default="",
                        help="analyses folder below the home (default: '')")
    add_switch(parser, "--overwrite-analysis", "fill an existing analysis again (its configs "
               "are rewritten)")
    add_backend_options(parser)
    return parser


def run_create_analysis(args: argparse.Namespace) -> int:
    from ..config import read_yaml
    from ..workflow.tree import create_analysis as create_analysis_tree

    name = args.analysis_name
    if not NAME_PATTERN.match(name):
        raise InputError(f"--analysis_name {name!r}: invalid analysis name",
                         "use letters, digits and _ . + -")
    workflow = None
    if args.analysis_directory_tree:
        tree_file = Path(args.analysis_directory_tree)
        workflow = read_yaml(tree_file)
        try:
            create_paths(workflow)
        except InputError as exc:
            raise ConfigError(f"{tree_file}: {exc.message}") from None
    templates = example_configs(check_payload_env(args.payload_env or default_payload_env()))
    tree = create_analysis_tree(
        args.output_path, name, templates, workflow, grid_is_dirac=args.GRID_is_DIRAC,
        grid_home=args.GRID_home, path_from_home=args.GRID_path_from_home,
        overwrite=args.overwrite_analysis)
    log_to_file(tree.root / "analysis.log", append=False)
    say(f"Directory structure ready for protopipe analysis: {tree.root}")
    say("Auxiliary scripts and configuration files have been stored and partially filled.")
    say(f"next: protopipe-SPLIT_DATASET --metadata {tree.metadata_file} --input_gammas G.list "
        "--input_protons P.list --input_electrons E.list")
    return 0


def create_analysis(argv: Sequence[str] | None = None) -> int:
    """``protopipe-CREATE_ANALYSIS``."""
    return entry(build_create_analysis, run_create_analysis, argv)


# --- protopipe-SPLIT_DATASET --------------------------------------------------------------------
def build_split_dataset() -> ArgumentParser:
    parser = new_parser(
        "protopipe-SPLIT_DATASET",
        "Split lists of simtel files into training and performance lists.\n"
        "Gammas go to TRAINING_ENERGY, TRAINING_CLASSIFICATION and PERFORMANCE; protons to\n"
        "TRAINING_CLASSIFICATION and PERFORMANCE; electrons to PERFORMANCE. Every percentage\n"
        "but the last takes round(p/100*N) lines, the last one the rest.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--metadata", default=None,
                       help="analysis_metadata.yaml: write to <analysis>/data/simtel and fill "
                            "grid.yaml")
    where.add_argument("--output_path", default=None, help="folder for the split lists")
    for particle, default in (("gammas", [10, 10, 80]), ("protons", [40, 60]),
                              ("electrons", [100])):
        parser.add_argument(f"--input_{particle}", default=None, help=f"list file of {particle}")
        parser.add_argument(f"--split_{particle}", type=int, nargs="+", default=default,
                            help=f"percentages (default: {' '.join(map(str, default))})")
    parser.add_argument("--seed", type=int, default=None,
                        help="shuffle each list with this seed first (default: keep the order)")
    add_switch(parser, "--overwrite", "replace existing split lists with a different content")
    parser.add_argument("--log_file", default=None, help="also log to this file")
    add_backend_options(parser)
    return parser


def run_split_dataset(args: argparse.Namespace) -> int:
    from ..workflow.analysis import Analysis

    log_to_file(args.log_file)
    given = [(Particle.GAMMA, args.input_gammas, args.split_gammas, "gammas"),
             (Particle.PROTON, args.input_protons, args.split_protons, "protons"),
             (Particle.ELECTRON, args.input_electrons, args.split_electrons, "electrons")]
    if not args.metadata and not args.output_path:
        raise InputError("no destination given", "use --metadata or --output_path")
    if not any(path for _, path, _, _ in given):
        raise InputError("no list given",
                         "use --input_gammas, --input_protons and/or --input_electrons")
    inputs = [SplitInput(particle, Path(path), fractions, f"--split_{label}")
              for particle, path, fractions, label in given if path]
    if args.metadata:
        results = Analysis.open(Path(args.metadata)).split(inputs, args.seed, args.overwrite)
    else:
        results = [(stage_list, False) for stage_list in split_files(
            inputs, Path(args.output_path), args.seed, args.overwrite, require_lfn=False)]
    for line in render.split_lines(results):
        say(line)
    return 0


def split_dataset(argv: Sequence[str] | None = None) -> int:
    """``protopipe-SPLIT_DATASET``."""
    return entry(build_split_dataset, run_split_dataset, argv)


# --- protopipe-SUBMIT_JOBS ----------------------------------------------------------------------
def build_submit_jobs() -> ArgumentParser:
    parser = new_parser(
        "protopipe-SUBMIT_JOBS",
        "Submit the jobs of one stage and particle (chosen in grid.yaml) of an analysis.\n"
        "TRAINING with General.estimate_energy False: energy training; True: classification\n"
        "training; DL2: DL2. Jobs already submitted, or whose output exists, are skipped.")
    parser.add_argument("--analysis_path", required=True, help="the analysis folder")
    parser.add_argument("--output_type", required=True, choices=["TRAINING", "DL2"],
                        help="TRAINING or DL2")
    parser.add_argument("--max_events", type=positive_int, default=DEFAULT_MAX_EVENTS,
                        help=f"events per file (default: {DEFAULT_MAX_EVENTS}, i.e. all)")
    add_switch(parser, "--dry", "show the whole plan, submit nothing")
    add_switch(parser, "--test", "submit exactly one job")
    add_switch(parser, "--save_images", "save images in the outputs (protopipe --save_images)")
    add_switch(parser, "--debug_script", "run protopipe with --debug")
    add_switch(parser, "--DataReprocessing", "DIRAC job type DataReprocessing (DIRAC only)")
    parser.add_argument("--tag", default=None, help="job tag (DIRAC setTag)")
    parser.add_argument("--upload_analysis_cfg", type=switch, nargs="?", const=True,
                        default=True, metavar="True|False",
                        help="upload the analysis configuration next to the outputs "
                             "(default: True)")
    parser.add_argument("--log_file", default=None, help="also log to this file")
    add_backend_options(parser)
    return parser


def legacy_stage(analysis: Analysis, output_type: str) -> tuple[Stage, Particle]:
    """The stage and particle grid.yaml's ``General`` section selects for ``--output_type``."""
    general = analysis.grid.General
    where = analysis.tree.grid_config
    if general.particle is None:
        raise ConfigError(f"{where}: General.particle is not set",
                          "set it to gamma, proton or electron")
    if output_type == "DL2":
        stage = Stage.DL2
    elif general.estimate_energy:
        stage = Stage.TRAINING_CLASSIFICATION
    else:
        stage = Stage.TRAINING_ENERGY
    if general.particle not in STAGE_PARTICLES[stage]:
        allowed = ", ".join(p.value for p in STAGE_PARTICLES[stage])
        raise ConfigError(f"{where}: General.particle: {general.particle.value} has no "
                          f"{stage.value} stage (--output_type {output_type}, "
                          f"General.estimate_energy {general.estimate_energy})",
                          f"expected one of: {allowed}")
    return stage, general.particle


def upload_sites(analysis: Analysis, backend: Backend) -> list[str]:
    """``GRID.upload_sites`` the backend has; all of the backend's if none (as models upload)."""
    known = backend.storage_elements()
    return [se for se in analysis.grid.GRID.upload_sites if se in known] or known


def show_plan(analysis: Analysis, backend: Backend, stage: Stage, particle: Particle,
              specs: Sequence[JobSpec], config_lfn: str | None) -> None:
    """The whole plan, one line per job, with what a real run would do with it."""
    states: dict[str, JobStatus] = {}
    if analysis.tree.state_db.exists():
        store = analysis.store()
        try:
            states = {r.name: r.status for r in store.jobs(names=[s.name for s in specs])}
        finally:
            store.close()
    present = backend.metadata([s.output_lfn for s in specs])
    files = sum(len(s.input_lfns) for s in specs)
    say("This is a DRY RUN! -- NO job has been submitted!")
    say(f"plan: {stage.value} {particle.value}, {len(specs)} job(s) for {files} file(s) "
        f"(at most {analysis.grid.GRID.n_file_per_job} per job) on the {backend.name} backend")
    todo = 0
    for spec in specs:
        state = states.get(spec.name)
        if spec.output_lfn in present:
            note = "output exists: skipped"
        elif state is not None and state != JobStatus.PLANNED:
            note = f"already submitted ({state.value}): skipped"
        else:
            note = "to submit"
            todo += 1
        say(f"  {spec.name}: {len(spec.input_lfns)} file(s) from {spec.input_lfns[0]} "
            f"-> {spec.output_lfn} [{note}]")
    if specs:
        extra = sorted({lfn for spec in specs for lfn in spec.input_data})
        say(f"input data besides simulations: {', '.join(extra) or 'none'}")
        say(f"output SE: {specs[0].output_se}; CPU time per job: {specs[0].cpu_time} s; "
            f"banned sites: {', '.join(specs[0].banned_sites) or 'none'}")
    if config_lfn:
        say(f"{analysis.config_path} would be uploaded to {config_lfn} (not now: dry run)")
    say(f"{todo} job(s) would be submitted")


def upload_analysis_config(analysis: Analysis, backend: Backend, lfn: str) -> None:
    """Provenance: the analysis configuration next to the outputs it produces."""
    ses = upload_sites(analysis, backend)
    report = upload.UploadReport()
    try:
        upload.upload_file(backend, analysis.config_path, lfn, ses[0], report)
    except DataError:
        raise DataError(f"{lfn} holds a different {analysis.config_path.name} than "
                        f"{analysis.config_path}",
                        "outputs of this stage were made with another configuration: restore "
                        "it, or remove that folder's files (protopipe-DELETE_FILES) to start "
                        "the stage again") from None
    upload.replicate_all(backend, [lfn], ses[1:], report)
    if report.uploaded:
        say(f"{analysis.config_path.name} uploaded to {lfn} ({', '.join(ses)})")


def first_new(store: Store, backend: Backend, specs: Sequence[JobSpec]) -> list[JobSpec]:
    """The first job that is neither submitted yet nor done (``--test``)."""
    states = {r.name: r.status for r in store.jobs(names=[s.name for s in specs])}
    present = backend.metadata([s.output_lfn for s in specs])
    for spec in specs:
        if spec.output_lfn not in present and states.get(spec.name, JobStatus.PLANNED) == \
                JobStatus.PLANNED:
            return [spec]
    return []


def run_submit_jobs(args: argparse.Namespace) -> int:
    from ..workflow.analysis import Analysis
    from ..workflow.tree import open_tree

    path = Path(args.analysis_path)
    if not path.is_dir():
        raise InputError(f"--analysis_path {path}: analysis folder not found",
                         "create it with protopipe-CREATE_ANALYSIS")
    metadata = path / "analysis_metadata.yaml"
    described = open_tree(metadata).root
    if described.resolve() != path.resolve():
        raise InputError(f"--analysis_path {path}: its analysis_metadata.yaml describes "
                         f"{described}", "use that folder, or fix analyses_directory "
                         "and analysis_name in the metadata")
    analysis = Analysis.open(metadata)
    log_to_file(args.log_file, append=False)
    stage, particle = legacy_stage(analysis, args.output_type)
    backend = make_backend(args, analysis.grid)
    analysis = analysis.with_home(backend.home)
    overrides: dict[str, object] = {}
    if args.max_events != DEFAULT_MAX_EVENTS:
        overrides["max_events"] = args.max_events
    if args.save_images:
        overrides["save_images"] = True
    if args.tag:
        overrides["tags"] = (args.tag,)
    if args.debug_script:
        overrides["debug"] = True
    if args.DataReprocessing:
        overrides["job_type"] = "DataReprocessing"
    specs = analysis.plan(stage, particle, backend.storage_elements()[0], None, **overrides)
    config_lfn = None
    if args.upload_analysis_cfg:
        config_lfn = validate_lfn(posixpath.join(analysis.tree.lfn_data_dir(stage, particle),
                                                 analysis.config_path.name))
    if args.dry:
        show_plan(analysis, backend, stage, particle, specs, config_lfn)
        return 0

    with recorded(analysis) as store:
        if config_lfn:
            upload_analysis_config(analysis, backend, config_lfn)
        if args.test:
            specs = first_new(store, backend, specs)
            say("This is a TEST RUN! -- Only ONE job will be submitted!")
        with progress_bar(f"submitting {stage.value}", len(specs)) as advance:
            report = submit.submit(store, backend, specs, progress=advance)
        track.refresh(store, backend, stage)
        names = {spec.name for spec in specs}
        failed = [r for r in store.jobs(stage=stage, particle=particle)
                  if r.name in names and r.status in RESUBMITTABLE_STATES]
    for name, job_id in report.submitted:
        log.debug("submitted %s as job %d", name, job_id)
    say(f"{stage.value} {particle.value}: {len(report.submitted)} job(s) have been submitted, "
        f"{report.skipped_existing} skipped (output exists), {report.already_submitted} already "
        f"submitted, {report.recovered} recovered from an interrupted run")
    if failed:
        say(f"{len(failed)} job(s) of this plan ended Failed or Killed and are not submitted "
            "again; to do so: protopipe-grid jobs resubmit --metadata "
            f"{analysis.tree.metadata_file} --stage {stage.value}")
    return 0


def submit_jobs(argv: Sequence[str] | None = None) -> int:
    """``protopipe-SUBMIT_JOBS``."""
    return entry(build_submit_jobs, run_submit_jobs, argv)


# --- protopipe-DOWNLOAD_AND_MERGE ---------------------------------------------------------------
def build_download_and_merge() -> ArgumentParser:
    parser = new_parser(
        "protopipe-DOWNLOAD_AND_MERGE",
        "Download the outputs of a stage (verified, resumable) and merge them per particle\n"
        "into <analysis>/data/<data_type>/<particle>/<TYPE>_<mode>_<particle>_merged.h5.")
    add_analysis_options(parser)
    parser.add_argument("--local_path", default=None,
                        help="folder holding shared_folder/ (without --metadata)")
    add_switch(parser, "--disable_download", "do not download")
    add_switch(parser, "--disable_sync", "accepted for compatibility: downloads are always "
               "checked against the catalog (size and adler32)")
    add_switch(parser, "--disable_merge", "do not merge")
    parser.add_argument("--indir", default=None, help="ignored, as in the original")
    parser.add_argument("--outdir", default=None, help="ignored, as in the original")
    parser.add_argument("--data_type", required=True, choices=list(DATA_TYPES),
                        help="which outputs")
    parser.add_argument("--particle_types", required=True, nargs="*",
                        choices=[p.value for p in Particle], help="particles")
    parser.add_argument("--n_jobs", type=positive_int, default=1,
                        help="parallel downloads (default: 1)")
    parser.add_argument("--cleaning_mode", choices=["tail", "wave"], default="tail",
                        help="deprecated: grid.yaml's General.mode is used when there is one")
    add_switch(parser, "--overwrite", "replace existing merged files")
    parser.add_argument("--log_file", default=None, help="also log to this file")
    add_backend_options(parser)
    return parser


def legacy_particles(stage: Stage, names: Sequence[str], option: str, value: str
                     ) -> list[Particle]:
    if not names:
        raise InputError(f"{option}: give at least one particle",
                         f"expected: {', '.join(p.value for p in STAGE_PARTICLES[stage])}")
    particles = [Particle(name) for name in dict.fromkeys(names)]
    for particle in particles:
        if particle not in STAGE_PARTICLES[stage]:
            raise InputError(f"{option} {particle.value}: not part of {value}",
                             f"expected: {', '.join(p.value for p in STAGE_PARTICLES[stage])}")
    return particles


def run_download_and_merge(args: argparse.Namespace) -> int:

    stage = DATA_TYPES[args.data_type]
    particles = legacy_particles(stage, args.particle_types, "--particle_types",
                                 f"--data_type {args.data_type}")
    analysis = legacy_analysis(args.metadata, args.analysis_name, args.local_path,
                               args.GRID_home, args.GRID_path_from_home, args.cleaning_mode)
    log_to_file(args.log_file)
    if args.indir or args.outdir:
        say("note: --indir and --outdir are ignored: paths come from the analysis")
    if args.disable_download and args.disable_merge:
        say("nothing to do: both download and merge are disabled")
        return 0
    mode, failed = analysis.grid.General.mode, 0
    if args.disable_download:
        with recorded(analysis) as store:
            lines = render.merge_lines(collect.merge_particles(
                store, analysis.tree, mode, stage, particles, args.overwrite))
    else:
        backend = make_backend(args, analysis.grid)
        analysis = analysis.with_home(backend.home)
        with recorded(analysis) as store, tracker() as progress:
            reports = collect.collect(store, backend, analysis.tree, mode, stage, particles,
                                      args.n_jobs, not args.disable_merge, args.overwrite,
                                      progress)
        lines = render.collect_lines(reports)
        failed = sum(len(report.download.failed) for report in reports)
    for line in lines:
        say(line)
    if failed:
        raise DataError(f"{failed} file(s) could not be downloaded",
                        "run the same command again to retry")
    return 0


def download_and_merge(argv: Sequence[str] | None = None) -> int:
    """``protopipe-DOWNLOAD_AND_MERGE``."""
    return entry(build_download_and_merge, run_download_and_merge, argv)


# --- protopipe-MERGE_FILES ----------------------------------------------------------------------
def build_merge_files() -> ArgumentParser:
    parser = new_parser("protopipe-MERGE_FILES",
                        "Merge the HDF5 files {indir}/{template_file_name}*.h5 into one file.")
    parser.add_argument("--indir", default="./", help="input folder (default: ./)")
    parser.add_argument("--template_file_name", default="features_event",
                        help="file name prefix, glob patterns allowed (default: features_event)")
    parser.add_argument("--outfile", required=True, help="merged file")
    add_switch(parser, "--overwrite", "replace an existing merged file")
    parser.add_argument("--log_file", default=None, help="also log to this file")
    add_backend_options(parser)
    return parser


def run_merge_files(args: argparse.Namespace) -> int:
    indir = Path(args.indir)
    if not indir.is_dir():
        raise InputError(f"--indir {indir}: folder not found")
    log_to_file(args.log_file, append=False)
    for line in render.merge_lines([collect.merge_folder(
            indir, args.template_file_name, Path(args.outfile), args.overwrite)]):
        say(line)
    return 0


def merge_files(argv: Sequence[str] | None = None) -> int:
    """``protopipe-MERGE_FILES``."""
    return entry(build_merge_files, run_merge_files, argv)


# --- protopipe-UPLOAD_MODELS --------------------------------------------------------------------
def build_upload_models() -> ArgumentParser:
    parser = new_parser(
        "protopipe-UPLOAD_MODELS",
        "Upload a model's configuration and per-camera model files to <analysis>/estimators/\n"
        "on --SE, then replicate them to --list-of-SEs.")
    add_analysis_options(parser)
    parser.add_argument("--local_path", default="",
                        help="folder holding shared_folder/ (without --metadata)")
    parser.add_argument("--cameras", required=True, nargs="+", help="camera types")
    parser.add_argument("--model_type", required=True, choices=list(MODEL_NAMES))
    parser.add_argument("--model_name", required=True,
                        choices=[n for names in MODEL_NAMES.values() for n in names])
    parser.add_argument("--cleaning_mode", choices=["tail", "wave"], default="tail",
                        help="deprecated, unused")
    parser.add_argument("--SE", default=DEFAULT_SE,
                        help=f"storage element to upload to (default: {DEFAULT_SE})")
    parser.add_argument("--list-of-SEs", nargs="*",
                        default=["DESY-ZN-USER", "CNAF-USER", "CEA-USER"],
                        help="storage elements to replicate to "
                             "(default: DESY-ZN-USER CNAF-USER CEA-USER)")
    add_switch(parser, "--overwrite", "replace uploaded files whose content differs")
    add_switch(parser, "--dry-run", "list what would be uploaded")
    parser.add_argument("--log_file", default=None, help="also log to this file")
    add_backend_options(parser)
    return parser


def run_upload_models(args: argparse.Namespace) -> int:
    if args.model_name not in MODEL_NAMES[args.model_type]:
        raise InputError(f"--model_name {args.model_name}: not a {args.model_type}",
                         f"expected one of: {', '.join(MODEL_NAMES[args.model_type])}")
    analysis = legacy_analysis(args.metadata, args.analysis_name, args.local_path,
                               args.GRID_home, args.GRID_path_from_home, args.cleaning_mode)
    log_to_file(args.log_file)
    backend = make_backend(args, analysis.grid)
    analysis = analysis.with_home(backend.home)
    ses = check_ses(backend, [args.SE], "--SE") + [
        se for se in check_ses(backend, args.list_of_SEs, "--list-of-SEs") if se != args.SE]
    cameras = list(dict.fromkeys(args.cameras))
    pairs = upload.model_files(analysis.tree, args.model_type, args.model_name, cameras)
    if args.dry_run:
        for path, lfn in pairs:
            say(f"{path} -> {lfn} on {', '.join(ses)}")
        return 0
    report = upload.upload_models(backend, analysis.tree, args.model_type, args.model_name,
                                  cameras, ses, args.overwrite)
    say(f"{len(report.uploaded)} uploaded, {len(report.unchanged)} unchanged, "
        f"{len(report.replicated)} replica(s) made on {', '.join(ses)}")
    say("Models and configuration files have been uploaded.")
    return 0


def upload_models(argv: Sequence[str] | None = None) -> int:
    """``protopipe-UPLOAD_MODELS``."""
    return entry(build_upload_models, run_upload_models, argv)


# --- protopipe-DOWNLOAD_FILES -------------------------------------------------------------------
def build_download_files() -> ArgumentParser:
    parser = new_parser("protopipe-DOWNLOAD_FILES",
                        "Download a file, or the files of a catalog folder, verified.")
    parser.add_argument("--indir", required=True, help="catalog folder (or file LFN)")
    parser.add_argument("--outdir", default="", help="local folder (default: current folder)")
    parser.add_argument("--n_jobs", type=positive_int, default=4,
                        help="parallel downloads (default: 4)")
    add_backend_options(parser)
    return parser


def run_download_files(args: argparse.Namespace) -> int:
    from . import commands

    args.path = args.indir
    args.outdir = Path(args.outdir or ".")
    args.workers = args.n_jobs
    return commands.files_get(args)


def download_files(argv: Sequence[str] | None = None) -> int:
    """``protopipe-DOWNLOAD_FILES``."""
    return entry(build_download_files, run_download_files, argv)


# --- protopipe-UPLOAD_FILE ----------------------------------------------------------------------
def build_upload_file() -> ArgumentParser:
    parser = new_parser("protopipe-UPLOAD_FILE",
                        "Upload {indir}/{infile} to the catalog as {outdir}/{infile}.")
    parser.add_argument("--indir", required=True, help="local folder")
    parser.add_argument("--infile", required=True, help="file name")
    parser.add_argument("--outdir", required=True, help="catalog folder")
    parser.add_argument("--SE", default=DEFAULT_SE,
                        help=f"storage element (default: {DEFAULT_SE})")
    parser.add_argument("--loglevel_stream", choices=LOG_LEVELS, default="INFO")
    parser.add_argument("--loglevel_file", choices=LOG_LEVELS, default="DEBUG")
    parser.add_argument("--log_file", default=None,
                        help="also log to this file, at --loglevel_file")
    add_switch(parser, "--overwrite", "replace a catalogued file whose content differs")
    add_switch(parser, "--dry-run", "show what would be uploaded")
    add_backend_options(parser)
    return parser


def run_upload_file(args: argparse.Namespace) -> int:
    if "/" in args.infile:
        raise InputError(f"--infile {args.infile!r}: expected a file name, not a path",
                         "put the folder in --indir")
    lfn = validate_lfn(posixpath.join(args.outdir, args.infile), "--outdir/--infile")
    path = Path(args.indir) / args.infile
    if not path.is_file():
        raise InputError(f"{path}: file to upload not found")
    set_stream_level(args.loglevel_stream)
    log_to_file(args.log_file, level=args.loglevel_file)
    backend = make_backend(args)
    check_ses(backend, [args.SE], "--SE")
    args.path, args.lfn, args.se = path, lfn, args.SE
    user_log.info("upload %s to %s on %s", path, lfn, args.SE)
    from . import commands

    return commands.files_put(args)


def upload_file(argv: Sequence[str] | None = None) -> int:
    """``protopipe-UPLOAD_FILE``."""
    return entry(build_upload_file, run_upload_file, argv)


# --- protopipe-DELETE_FILES ---------------------------------------------------------------------
def build_delete_files() -> ArgumentParser:
    parser = new_parser("protopipe-DELETE_FILES",
                        "Remove a file, or the files of a catalog folder, with all replicas.\n"
                        "Shows them and asks first.")
    parser.add_argument("--indir", required=True, help="catalog folder (or file LFN)")
    add_switch(parser, "--yes", "do not ask for confirmation")
    add_switch(parser, "--dry-run", "list the files, remove nothing")
    add_backend_options(parser)
    return parser


def run_delete_files(args: argparse.Namespace) -> int:
    from . import commands

    validate_lfn(args.indir, "--indir")
    say(f"Delete file from: {args.indir}")
    args.path = args.indir
    return commands.files_remove(args)


def delete_files(argv: Sequence[str] | None = None) -> int:
    """``protopipe-DELETE_FILES``."""
    return entry(build_delete_files, run_delete_files, argv)


# --- protopipe-GET_INPUT_LFNS -------------------------------------------------------------------
def build_get_input_lfns() -> ArgumentParser:
    parser = new_parser("protopipe-GET_INPUT_LFNS",
                        "Write the input LFNs of a job (models left out), one per line.")
    parser.add_argument("--job_id", type=positive_int, required=True, help="backend job id")
    parser.add_argument("--output_file", default=None,
                        help="output list (default: <job_id>_FLNs.list, as the original)")
    add_backend_options(parser)
    return parser


def run_get_input_lfns(args: argparse.Namespace) -> int:
    from . import commands

    args.output_file = Path(args.output_file or f"{args.job_id}_FLNs.list")
    return commands.jobs_input_lfns(args)


def get_input_lfns(argv: Sequence[str] | None = None) -> int:
    """``protopipe-GET_INPUT_LFNS``."""
    return entry(build_get_input_lfns, run_get_input_lfns, argv)


# --- protopipe-FILTER-REPLICAS ------------------------------------------------------------------
def build_filter_replicas() -> ArgumentParser:
    parser = new_parser("protopipe-FILTER-REPLICAS",
                        "Keep the LFNs of a list that have a replica on one of --filter_disks.")
    parser.add_argument("--input_list", required=True, help="list of LFNs")
    parser.add_argument("--filter_disks", required=True, type=comma_list,
                        help="storage element(s), comma-separated, e.g. CC-IN2P3-Disk")
    parser.add_argument("--outfile", default="./outfile.list",
                        help="output list (default: ./outfile.list)")
    parser.add_argument("--max_files", type=positive_int, default=None,
                        help="only the first N LFNs of the list (default: all)")
    parser.add_argument("--n_cpu", type=positive_int, default=1,
                        help="accepted for compatibility: the catalog is asked in bulk")
    parser.add_argument("--log_level", choices=LOG_LEVELS, default="INFO")
    parser.add_argument("--chunk_size", type=positive_int, default=1,
                        help="accepted for compatibility: the catalog is asked in bulk")
    add_backend_options(parser)
    return parser


def run_filter_replicas(args: argparse.Namespace) -> int:
    if not args.filter_disks:
        raise InputError("--filter_disks: give at least one storage element")
    set_stream_level(args.log_level)
    lfns = read_list(Path(args.input_list))
    if args.max_files:
        lfns = lfns[:args.max_files]
    backend = make_backend(args)
    found = backend.metadata(lfns)
    wanted = set(args.filter_disks)
    kept = [lfn for lfn in lfns if lfn in found and wanted & set(found[lfn].replicas)]
    unknown = [lfn for lfn in lfns if lfn not in found]
    if unknown:
        log.warning("%d LFN(s) not in the catalog, e.g. %s", len(unknown), unknown[0])
    write_lines(Path(args.outfile), kept)
    say(f"{len(kept)} of {len(lfns)} LFN(s) have a replica on {', '.join(args.filter_disks)}"
        f" ({len(unknown)} not in the catalog): {args.outfile}")
    return 0


def filter_replicas(argv: Sequence[str] | None = None) -> int:
    """``protopipe-FILTER-REPLICAS``."""
    return entry(build_filter_replicas, run_filter_replicas, argv)


# --- protopipe-FORCE_JOB_TO_FAILED --------------------------------------------------------------
def build_force_job_to_failed() -> ArgumentParser:
    parser = new_parser(
        "protopipe-FORCE_JOB_TO_FAILED",
        "Set stuck jobs to Failed. Select them by at least one of --Status, --JobGroup,\n"
        "--Site, --MinorStatus, --ApplicationStatus (and --Date, default today); the selection\n"
        "is shown, and nothing happens without confirmation (or --yes).")
    parser.add_argument("--Status", default=None, help=f"one of {', '.join(SELECTABLE_STATES)}")
    parser.add_argument("--MinorStatus", default=None)
    parser.add_argument("--ApplicationStatus", default=None)
    parser.add_argument("--Site", default=None)
    parser.add_argument("--Owner", default=None, help="only this user's jobs")
    parser.add_argument("--JobGroup", default=None, help="job group(s), comma-separated")
    parser.add_argument("--Date", default=None, help="submission day YYYY-MM-DD (default: today)")
    add_switch(parser, "--yes", "do not ask for confirmation")
    add_switch(parser, "--dry-run", "show the selection, change nothing")
    add_backend_options(parser)
    return parser


def job_groups(value: str | None) -> list[str | None]:
    """``--JobGroup`` values; numeric ones normalised (``007`` -> ``7``), as the original."""
    if not value:
        return [None]
    groups = comma_list(value)
    if not groups:
        raise InputError(f"--JobGroup {value!r}: no job group given")
    return [str(int(g)) if g.isdigit() else g for g in groups]


def run_force_job_to_failed(args: argparse.Namespace) -> int:
    scope = (args.Status, args.JobGroup, args.Site, args.MinorStatus, args.ApplicationStatus)
    if not any(scope):
        raise InputError("refusing to select jobs by date alone",
                         "give at least one of --Status, --JobGroup, --Site, --MinorStatus, "
                         "--ApplicationStatus")
    if args.Status and args.Status not in SELECTABLE_STATES:
        raise InputError(f"--Status {args.Status!r}: unknown job status",
                         f"expected one of: {', '.join(SELECTABLE_STATES)}")
    if args.Date is None:
        day = datetime.now(UTC).date().isoformat()
    else:
        try:
            day = date.fromisoformat(args.Date).isoformat()
        except ValueError:
            raise InputError(f"--Date {args.Date!r}: expected a day as YYYY-MM-DD") from None
    groups = job_groups(args.JobGroup)
    backend = make_backend(args)
    conditions = ", ".join(f"{key}={value}" for key, value in (
        ("Status", args.Status), ("MinorStatus", args.MinorStatus),
        ("ApplicationStatus", args.ApplicationStatus), ("Site", args.Site),
        ("Owner", args.Owner), ("JobGroup", args.JobGroup), ("Date", day)) if value)
    ids = sorted({job_id for group in groups for job_id in backend.select_jobs(
        args.Status, args.MinorStatus, args.ApplicationStatus, args.Site, group, day,
        args.Owner)})
    if not ids:
        say(f"No jobs were selected with conditions: {conditions}")
        return 0
    states = backend.status(ids)
    say(f"==> Selected {len(ids)} jobs with conditions: {conditions}")
    for job_id in ids:
        state = states.get(job_id)
        if state is not None:
            say(f"  {job_id}  {state.status.value}  {state.minor_status}  {state.site}")
    active = [i for i in ids if i in states and states[i].status not in FINAL_STATES]
    if len(active) < len(ids):
        say(f"{len(ids) - len(active)} of them are already final and are left as they are")
    if not active or args.dry_run:
        return 0
    if not confirm(f"set these {len(active)} job(s) to Failed?", args.yes):
        return 1
    backend.set_failed(active, "Forced to Failed by the user")
    say(f"{len(active)} job(s) set to Failed")
    return 0


def force_job_to_failed(argv: Sequence[str] | None = None) -> int:
    """``protopipe-FORCE_JOB_TO_FAILED``."""
    return entry(build_force_job_to_failed, run_force_job_to_failed, argv)
