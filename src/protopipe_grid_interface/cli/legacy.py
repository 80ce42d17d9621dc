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
from collections.abc import Callable, Sequence
from pathlib import Path

from ..atomic import write_lines
from ..exceptions import InputError
from ..models import Particle, Stage
from ..paths import validate_lfn
from ..workflow import collect, files, jobs, submit, upload, validate
from ..workflow.analysis import Analysis, stage_particles
from ..workflow.session import existing_store, recorded
from ..workflow.split import SplitInput, split_files
from ..workflow.tree import create_analysis as create_tree
from ..workflow.tree import load_workflow_tree
from . import render
from .common import (
    ArgumentParser,
    add_backend_options,
    attach,
    comma_list,
    confirm,
    console,
    get_files,
    make_backend,
    positive_int,
    remove_files,
    run,
    templates,
    tracker,
)

#: what ``say`` prints, also kept in the log file (but never repeated on stderr)
user_log = logging.getLogger(f"{__name__}.user")
DEFAULT_GRID_HOME = "/vo.cta.in2p3.fr/user/x/xxx"
DEFAULT_SE = "CC-IN2P3-USER"
DEFAULT_MAX_EVENTS = 10000000000
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
LOG_LEVELS = ("INFO", "DEBUG", "WARNING", "ERROR", "CRITICAL")
DATA_TYPES = {"TRAINING/for_energy_estimation": Stage.TRAINING_ENERGY,
              "TRAINING/for_particle_classification": Stage.TRAINING_CLASSIFICATION,
              "DL2": Stage.DL2}
MODEL_NAMES = {"regressor": ("RandomForestRegressor", "AdaBoostRegressor"),
               "classifier": ("RandomForestClassifier",)}


# --- shared helpers -----------------------------------------------------------------------------
def say(*lines: str) -> None:
    """Lines for the user (and for the log file, when there is one)."""
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)
        user_log.info(line)


def switch(value: str) -> bool:
    """A DIRAC-style boolean switch value: True/true/False/false (also yes/no, 1/0)."""
    text = value.strip().lower()
    if text in ("true", "yes", "1", "false", "no", "0"):
        return text in ("true", "yes", "1")
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_switch(parser: argparse.ArgumentParser, name: str, help_text: str,
               default: bool = False) -> None:
    """``--name``, ``--name=True``, ``--name=false``: all work."""
    parser.add_argument(name, type=switch, nargs="?", const=True, default=default,
                        metavar="True|False", help=help_text)


def command(prog: str, description: str, build: Callable[[ArgumentParser], None],
            func: Callable[[argparse.Namespace], int]) -> Callable[[Sequence[str] | None], int]:
    """The console script ``prog``: its parser (with ``build``'s options, ``--debug`` and the
    backend options), then ``func``; returns the exit code, never raises SystemExit."""

    def main(argv: Sequence[str] | None = None) -> int:
        parser = ArgumentParser(prog=prog, description=description, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--debug", action="store_true", help="tracebacks on internal errors")
        build(parser)
        add_backend_options(parser)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, or a bad argument already reported in one line
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        return run(func, args, prog)

    main.__doc__ = f"``{prog}``."
    return main


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


def analysis_options(parser: argparse.ArgumentParser, local_path: str | None = None) -> None:
    """The original's ways to name an analysis: metadata file, or name + local path + home."""
    parser.add_argument("--metadata", type=Path, help="analysis_metadata.yaml (recommended)")
    parser.add_argument("--GRID-home", help="your LFN home (default: from the metadata, or the "
                        "backend's)")
    parser.add_argument("--GRID-path-from-home", default="", help="analyses folder below the "
                        "home (default: '')")
    parser.add_argument("--analysis_name", help="analysis name (without --metadata)")
    parser.add_argument("--local_path", type=Path, default=local_path,
                        help="folder holding shared_folder/ (without --metadata)")
    parser.add_argument("--cleaning_mode", choices=["tail", "wave"], default="tail",
                        help="deprecated: grid.yaml's General.mode is used when there is one")


def named_analysis(args: argparse.Namespace) -> Analysis:
    return Analysis.open_legacy(args.metadata, args.analysis_name, args.local_path,
                                args.GRID_home, args.GRID_path_from_home, args.cleaning_mode)


# --- protopipe-CREATE_ANALYSIS ------------------------------------------------------------------
def create_options(p: ArgumentParser) -> None:
    p.add_argument("--analysis_name", required=True, help="name of the analysis")
    p.add_argument("--analysis_directory_tree", type=Path,
                   help="YAML file with the folder tree (default: the standard workflow)")
    p.add_argument("--log_file", help="accepted for compatibility: the log is "
                   "<analysis>/analysis.log")
    p.add_argument("--output_path", type=Path, default=Path.home(),
                   help="where shared_folder/ is created or reused (default: $HOME)")
    add_switch(p, "--GRID-is-DIRAC", "the grid is DIRAC (the user name is taken from "
               "--GRID-home)")
    p.add_argument("--GRID-home", default=DEFAULT_GRID_HOME,
                   help=f"your LFN home (default: {DEFAULT_GRID_HOME})")
    p.add_argument("--GRID-path-from-home", default="",
                   help="analyses folder below the home (default: '')")
    add_switch(p, "--overwrite-analysis", "fill an existing analysis again (its configs are "
               "rewritten)")


def run_create_analysis(args: argparse.Namespace) -> int:
    if not all(c.isalnum() or c in "_.+-" for c in args.analysis_name):
        raise InputError(f"--analysis_name {args.analysis_name!r}: invalid analysis name",
                         "use letters, digits and _ . + -")
    folders = load_workflow_tree(args.analysis_directory_tree) \
        if args.analysis_directory_tree else None
    tree = create_tree(args.output_path, args.analysis_name, templates(args.payload_env),
                       folders, args.GRID_is_DIRAC, args.GRID_home, args.GRID_path_from_home,
                       args.overwrite_analysis)
    log_to_file(tree.root / "analysis.log", append=False)
    say(f"Directory structure ready for protopipe analysis: {tree.root}",
        "Auxiliary scripts and configuration files have been stored and partially filled.",
        f"next: protopipe-SPLIT_DATASET --metadata {tree.metadata_file} --input_gammas G.list "
        "--input_protons P.list --input_electrons E.list")
    return 0


create_analysis = command(
    "protopipe-CREATE_ANALYSIS", "Create a directory structure for a CTA data analysis using "
    "the protopipe prototype pipeline.\nWARNING: check that the version of protopipe is the "
    "one you intend to use!", create_options, run_create_analysis)


# --- protopipe-SPLIT_DATASET --------------------------------------------------------------------
def split_options(p: ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--metadata", type=Path, help="analysis_metadata.yaml: write to "
                       "<analysis>/data/simtel and fill grid.yaml")
    where.add_argument("--output_path", type=Path, help="folder for the split lists")
    for particle, default in (("gammas", [10, 10, 80]), ("protons", [40, 60]),
                              ("electrons", [100])):
        p.add_argument(f"--input_{particle}", type=Path, help=f"list file of {particle}")
        p.add_argument(f"--split_{particle}", type=int, nargs="+", default=default,
                       help=f"percentages (default: {' '.join(map(str, default))})")
    p.add_argument("--seed", type=int, help="shuffle each list with this seed first (default: "
                   "keep the order)")
    add_switch(p, "--overwrite", "replace existing split lists with a different content")
    p.add_argument("--log_file", help="also log to this file")


def run_split_dataset(args: argparse.Namespace) -> int:
    log_to_file(args.log_file)
    if not args.metadata and not args.output_path:
        raise InputError("no destination given", "use --metadata or --output_path")
    inputs = [SplitInput(p, path, getattr(args, f"split_{p.value}s"), f"--split_{p.value}s")
              for p in Particle if (path := getattr(args, f"input_{p.value}s"))]
    if not inputs:
        raise InputError("no list given",
                         "use --input_gammas, --input_protons and/or --input_electrons")
    if args.metadata:
        results = Analysis.open(args.metadata).split(inputs, args.seed, args.overwrite)
    else:
        results = [(stage_list, False) for stage_list in split_files(
            inputs, args.output_path, args.seed, args.overwrite, require_lfn=False)]
    say(*render.split_lines(results))
    return 0


split_dataset = command(
    "protopipe-SPLIT_DATASET", "Split lists of simtel files into training and performance "
    "lists.\nGammas go to TRAINING_ENERGY, TRAINING_CLASSIFICATION and PERFORMANCE; protons to"
    "\nTRAINING_CLASSIFICATION and PERFORMANCE; electrons to PERFORMANCE. Every percentage\nbut "
    "the last takes round(p/100*N) lines, the last one the rest.", split_options,
    run_split_dataset)


# --- protopipe-SUBMIT_JOBS ----------------------------------------------------------------------
def submit_options(p: ArgumentParser) -> None:
    p.add_argument("--analysis_path", type=Path, required=True, help="the analysis folder")
    p.add_argument("--output_type", required=True, choices=["TRAINING", "DL2"])
    p.add_argument("--max_events", type=positive_int, default=DEFAULT_MAX_EVENTS,
                   help=f"events per file (default: {DEFAULT_MAX_EVENTS}, i.e. all)")
    add_switch(p, "--dry", "show the whole plan, submit nothing")
    add_switch(p, "--test", "submit exactly one job")
    add_switch(p, "--save_images", "save images in the outputs (protopipe --save_images)")
    add_switch(p, "--debug_script", "run protopipe with --debug")
    add_switch(p, "--DataReprocessing", "DIRAC job type DataReprocessing (DIRAC only)")
    p.add_argument("--tag", help="job tag (DIRAC setTag)")
    add_switch(p, "--upload_analysis_cfg", "upload the analysis configuration next to the "
               "outputs (default: True)", default=True)
    p.add_argument("--log_file", help="also log to this file")


def run_submit_jobs(args: argparse.Namespace) -> int:
    analysis = Analysis.open_folder(args.analysis_path, "--analysis_path")
    log_to_file(args.log_file, append=False)
    stage, particle = analysis.legacy_stage(args.output_type)
    analysis, backend = attach(args, analysis)
    overrides: dict[str, object] = {key: value for key, value, wanted in (
        ("max_events", args.max_events, args.max_events != DEFAULT_MAX_EVENTS),
        ("save_images", True, args.save_images), ("tags", (args.tag,), args.tag),
        ("debug", True, args.debug_script),
        ("job_type", "DataReprocessing", args.DataReprocessing)) if wanted}
    with existing_store(analysis) as store:
        validate.check_analysis(analysis, store)
        specs = analysis.plan_stage(backend, stage, [particle], None, **overrides)
        validate.check_inputs(backend, specs)
        planned = submit.preview(store, backend, specs) if args.dry else []
    config = analysis.config_path
    config_lfn = analysis.config_lfn(stage, particle) if args.upload_analysis_cfg else None
    if args.dry:
        say(*render.legacy_plan_lines(planned, stage, particle, backend.name,
                                      analysis.grid.GRID.n_file_per_job),
            *([f"{config} would be uploaded to {config_lfn} (not now: dry run)"]
              if config_lfn else []),
            f"{sum(job.to_submit for job in planned)} job(s) would be submitted")
        return 0
    with recorded(analysis, backend) as store:
        ses = upload.storage_elements(backend, analysis.grid.GRID.upload_sites)
        if config_lfn and upload.upload_config(backend, config, config_lfn, ses):
            say(f"{config.name} uploaded to {config_lfn} ({', '.join(ses)})")
        if args.test:
            specs = [job.spec for job in submit.preview(store, backend, specs)
                     if job.to_submit][:1]
            say("This is a TEST RUN! -- Only ONE job will be submitted!")
        with tracker() as progress:
            report = submit.submit(store, backend, specs,
                                   progress=progress(f"submitting {stage.value}", len(specs)))
        failed = submit.not_resubmitted(store, backend, specs)
    say(f"{stage.value} {particle.value}: {len(report.submitted)} job(s) have been submitted, "
        f"{report.skipped_existing} skipped (output exists), {report.already_submitted} already "
        f"submitted, {report.recovered} recovered from an interrupted run")
    if failed:
        say(f"{len(failed)} job(s) of this plan ended Failed or Killed and are not submitted "
            f"again; to do so: protopipe-grid jobs resubmit --metadata "
            f"{analysis.tree.metadata_file} --stage {stage.value}")
    return 0


submit_jobs = command(
    "protopipe-SUBMIT_JOBS", "Submit the jobs of one stage and particle (chosen in grid.yaml) "
    "of an analysis.\nTRAINING with General.estimate_energy False: energy training; True: "
    "classification\ntraining; DL2: DL2. Jobs already submitted, or whose output exists, are "
    "skipped.", submit_options, run_submit_jobs)


# --- protopipe-DOWNLOAD_AND_MERGE, protopipe-MERGE_FILES ----------------------------------------
def download_options(p: ArgumentParser) -> None:
    analysis_options(p)
    add_switch(p, "--disable_download", "do not download")
    add_switch(p, "--disable_sync", "accepted for compatibility: downloads are always checked "
               "against the catalog (size and adler32)")
    add_switch(p, "--disable_merge", "do not merge")
    p.add_argument("--indir", help="ignored, as in the original")
    p.add_argument("--outdir", help="ignored, as in the original")
    p.add_argument("--data_type", required=True, choices=list(DATA_TYPES), help="which outputs")
    p.add_argument("--particle_types", required=True, nargs="*",
                   choices=[p.value for p in Particle], help="particles")
    p.add_argument("--n_jobs", type=positive_int, default=1, help="parallel downloads "
                   "(default: 1)")
    add_switch(p, "--overwrite", "replace existing merged files")
    p.add_argument("--log_file", help="also log to this file")


def run_download_and_merge(args: argparse.Namespace) -> int:
    stage = DATA_TYPES[args.data_type]
    if not args.particle_types:
        raise InputError("--particle_types: give at least one particle")
    particles = stage_particles(stage, [Particle(n) for n in args.particle_types],
                                "--particle_types")
    analysis = named_analysis(args)
    log_to_file(args.log_file)
    if args.indir or args.outdir:
        say("note: --indir and --outdir are ignored: paths come from the analysis")
    if args.disable_download and args.disable_merge:
        say("nothing to do: both download and merge are disabled")
        return 0
    mode = analysis.grid.General.mode
    if args.disable_download:
        with recorded(analysis) as store:
            say(*render.merge_lines(collect.merge_particles(
                store, analysis.tree, mode, stage, particles, args.overwrite)))
        return 0
    analysis, backend = attach(args, analysis)
    with recorded(analysis, backend) as store, tracker() as progress:
        reports = collect.collect(store, backend, analysis.tree, mode, stage, particles,
                                  args.n_jobs, not args.disable_merge, args.overwrite, progress)
    say(*render.collect_lines(reports))
    collect.check_downloaded(reports)
    return 0


download_and_merge = command(
    "protopipe-DOWNLOAD_AND_MERGE", "Download the outputs of a stage (verified, resumable) and "
    "merge them per particle\ninto <analysis>/data/<data_type>/<particle>/<TYPE>_<mode>_"
    "<particle>_merged.h5.", download_options, run_download_and_merge)


def merge_options(p: ArgumentParser) -> None:
    p.add_argument("--indir", type=Path, default=Path("./"), help="input folder (default: ./)")
    p.add_argument("--template_file_name", default="features_event", help="file name prefix, "
                   "glob patterns allowed (default: features_event)")
    p.add_argument("--outfile", type=Path, required=True, help="merged file")
    add_switch(p, "--overwrite", "replace an existing merged file")
    p.add_argument("--log_file", help="also log to this file")


def run_merge_files(args: argparse.Namespace) -> int:
    if not args.indir.is_dir():
        raise InputError(f"--indir {args.indir}: folder not found")
    log_to_file(args.log_file, append=False)
    say(*render.merge_lines([collect.merge_folder(args.indir, args.template_file_name,
                                                  args.outfile, args.overwrite)]))
    return 0


merge_files = command("protopipe-MERGE_FILES", "Merge the HDF5 files "
                      "{indir}/{template_file_name}*.h5 into one file.", merge_options,
                      run_merge_files)


# --- protopipe-UPLOAD_MODELS, protopipe-UPLOAD_FILE ---------------------------------------------
def upload_models_options(p: ArgumentParser) -> None:
    analysis_options(p, local_path="")
    p.add_argument("--cameras", required=True, nargs="+", help="camera types")
    p.add_argument("--model_type", required=True, choices=list(MODEL_NAMES))
    p.add_argument("--model_name", required=True,
                   choices=[n for names in MODEL_NAMES.values() for n in names])
    p.add_argument("--SE", default=DEFAULT_SE, help=f"storage element to upload to (default: "
                   f"{DEFAULT_SE})")
    p.add_argument("--list-of-SEs", nargs="*", default=["DESY-ZN-USER", "CNAF-USER", "CEA-USER"],
                   help="storage elements to replicate to (default: DESY-ZN-USER CNAF-USER "
                   "CEA-USER)")
    add_switch(p, "--overwrite", "replace uploaded files whose content differs")
    add_switch(p, "--dry-run", "list what would be uploaded")
    p.add_argument("--log_file", help="also log to this file")


def run_upload_models(args: argparse.Namespace) -> int:
    if args.model_name not in MODEL_NAMES[args.model_type]:
        raise InputError(f"--model_name {args.model_name}: not a {args.model_type}",
                         f"expected one of: {', '.join(MODEL_NAMES[args.model_type])}")
    analysis = named_analysis(args)
    log_to_file(args.log_file)
    analysis, backend = attach(args, analysis)
    ses = list(dict.fromkeys([*upload.storage_elements(backend, (), [args.SE], "--SE"),
                              *upload.storage_elements(backend, (), args.list_of_SEs,
                                                       "--list-of-SEs")]))
    model = (analysis.tree, args.model_type, args.model_name, list(dict.fromkeys(args.cameras)))
    if args.dry_run:
        say(*[f"{path} -> {lfn} on {', '.join(ses)}" for path, lfn in upload.model_files(*model)])
        return 0
    report = upload.upload_models(backend, *model, ses, args.overwrite)
    say(render.upload_line(report, ses), "Models and configuration files have been uploaded.")
    return 0


upload_models = command(
    "protopipe-UPLOAD_MODELS", "Upload a model's configuration and per-camera model files to "
    "<analysis>/estimators/\non --SE, then replicate them to --list-of-SEs.",
    upload_models_options, run_upload_models)


def upload_file_options(p: ArgumentParser) -> None:
    p.add_argument("--indir", type=Path, required=True, help="local folder")
    p.add_argument("--infile", required=True, help="file name")
    p.add_argument("--outdir", required=True, help="catalog folder")
    p.add_argument("--SE", default=DEFAULT_SE, help=f"storage element (default: {DEFAULT_SE})")
    p.add_argument("--loglevel_stream", choices=LOG_LEVELS, default="INFO")
    p.add_argument("--loglevel_file", choices=LOG_LEVELS, default="DEBUG")
    p.add_argument("--log_file", help="also log to this file, at --loglevel_file")
    add_switch(p, "--overwrite", "replace a catalogued file whose content differs")
    add_switch(p, "--dry-run", "show what would be uploaded")


def run_upload_file(args: argparse.Namespace) -> int:
    if "/" in args.infile:
        raise InputError(f"--infile {args.infile!r}: expected a file name, not a path",
                         "put the folder in --indir")
    lfn = validate_lfn(posixpath.join(args.outdir, args.infile), "--outdir/--infile")
    path = args.indir / args.infile
    if not path.is_file():
        raise InputError(f"{path}: file to upload not found")
    set_stream_level(args.loglevel_stream)
    log_to_file(args.log_file, level=args.loglevel_file)
    backend = make_backend(args)
    [se] = upload.storage_elements(backend, (), [args.SE], "--SE")
    if args.dry_run:
        say(f"{path} -> {lfn} on {se}")
        return 0
    user_log.info("upload %s to %s on %s", path, lfn, se)
    report = upload.UploadReport()
    upload.upload_file(backend, path, lfn, se, report, args.overwrite)
    say(f"{lfn}: {'uploaded' if report.uploaded else 'already there, same content'}")
    return 0


upload_file = command("protopipe-UPLOAD_FILE", "Upload {indir}/{infile} to the catalog as "
                      "{outdir}/{infile}.", upload_file_options, run_upload_file)


# --- protopipe-DOWNLOAD_FILES, protopipe-DELETE_FILES -------------------------------------------
def download_files_options(p: ArgumentParser) -> None:
    p.add_argument("--indir", required=True, help="catalog folder (or file LFN)")
    p.add_argument("--outdir", type=Path, default=Path("."),
                   help="local folder (default: current folder)")
    p.add_argument("--n_jobs", type=positive_int, default=4, help="parallel downloads "
                   "(default: 4)")


def run_download_files(args: argparse.Namespace) -> int:
    return get_files(make_backend(args), args.indir, args.outdir, args.n_jobs)


download_files = command("protopipe-DOWNLOAD_FILES", "Download a file, or the files of a "
                         "catalog folder, verified.", download_files_options, run_download_files)


def delete_files_options(p: ArgumentParser) -> None:
    p.add_argument("--indir", required=True, help="catalog folder (or file LFN)")
    add_switch(p, "--yes", "do not ask for confirmation")
    add_switch(p, "--dry-run", "list the files, remove nothing")


def run_delete_files(args: argparse.Namespace) -> int:
    validate_lfn(args.indir, "--indir")
    say(f"Delete file from: {args.indir}")
    return remove_files(make_backend(args), args.indir, args.yes, args.dry_run)


delete_files = command("protopipe-DELETE_FILES", "Remove a file, or the files of a catalog "
                       "folder, with all replicas.\nShows them and asks first.",
                       delete_files_options, run_delete_files)


# --- protopipe-GET_INPUT_LFNS, protopipe-FILTER-REPLICAS ----------------------------------------
def input_lfns_options(p: ArgumentParser) -> None:
    p.add_argument("--job_id", type=positive_int, required=True, help="backend job id")
    p.add_argument("--output_file", type=Path, help="output list (default: <job_id>_FLNs.list, "
                   "as the original)")


def run_get_input_lfns(args: argparse.Namespace) -> int:
    lfns = jobs.input_lfns(make_backend(args), args.job_id)
    output = args.output_file or Path(f"{args.job_id}_FLNs.list")
    write_lines(output, lfns)
    say(f"{len(lfns)} LFN(s) written to {output}")
    return 0


get_input_lfns = command("protopipe-GET_INPUT_LFNS", "Write the input LFNs of a job (models "
                         "left out), one per line.", input_lfns_options, run_get_input_lfns)


def filter_options(p: ArgumentParser) -> None:
    p.add_argument("--input_list", type=Path, required=True, help="list of LFNs")
    p.add_argument("--filter_disks", required=True, type=comma_list,
                   help="storage element(s), comma-separated, e.g. CC-IN2P3-Disk")
    p.add_argument("--outfile", type=Path, default=Path("./outfile.list"),
                   help="output list (default: ./outfile.list)")
    p.add_argument("--max_files", type=positive_int, help="only the first N LFNs of the list "
                   "(default: all)")
    p.add_argument("--n_cpu", type=positive_int, default=1, help="accepted for compatibility: "
                   "the catalog is asked in bulk")
    p.add_argument("--log_level", choices=LOG_LEVELS, default="INFO")
    p.add_argument("--chunk_size", type=positive_int, default=1, help="accepted for "
                   "compatibility: the catalog is asked in bulk")


def run_filter_replicas(args: argparse.Namespace) -> int:
    if not args.filter_disks:
        raise InputError("--filter_disks: give at least one storage element")
    set_stream_level(args.log_level)
    kept, unknown, read = files.filter_replicas(make_backend(args), args.input_list,
                                                args.filter_disks, args.outfile, args.max_files)
    if unknown:
        logging.getLogger(__name__).warning("%d LFN(s) not in the catalog, e.g. %s",
                                            len(unknown), unknown[0])
    say(f"{len(kept)} of {read} LFN(s) have a replica on {', '.join(args.filter_disks)} "
        f"({len(unknown)} not in the catalog): {args.outfile}")
    return 0


filter_replicas = command("protopipe-FILTER-REPLICAS", "Keep the LFNs of a list that have a "
                          "replica on one of --filter_disks.", filter_options,
                          run_filter_replicas)


# --- protopipe-FORCE_JOB_TO_FAILED --------------------------------------------------------------
def force_options(p: ArgumentParser) -> None:
    p.add_argument("--Status", help=f"one of {', '.join(jobs.selectable_states())}")
    for name in ("--MinorStatus", "--ApplicationStatus", "--Site"):
        p.add_argument(name)
    p.add_argument("--Owner", help="only this user's jobs")
    p.add_argument("--JobGroup", help="job group(s), comma-separated")
    p.add_argument("--Date", help="submission day YYYY-MM-DD (default: today)")
    add_switch(p, "--yes", "do not ask for confirmation")
    add_switch(p, "--dry-run", "show the selection, change nothing")


def run_force_job_to_failed(args: argparse.Namespace) -> int:
    selection = jobs.checked_selection(args.Status, args.MinorStatus, args.ApplicationStatus,
                                       args.Site, args.Owner, args.JobGroup, args.Date)
    backend = make_backend(args)
    states = jobs.select_on_backend(backend, selection)
    if not states:
        say(f"No jobs were selected with conditions: {selection.describe()}")
        return 0
    say(f"==> Selected {len(states)} jobs with conditions: {selection.describe()}",
        *[f"  {i}  {s.status.value}  {s.minor_status}  {s.site}" for i, s in states.items()])
    active = jobs.active(states)
    if len(active) < len(states):
        say(f"{len(states) - len(active)} of them are already final and are left as they are")
    if not active or args.dry_run:
        return 0
    if not confirm(f"set these {len(active)} job(s) to Failed?", args.yes):
        return 1
    backend.set_failed(active, "Forced to Failed by the user")
    say(f"{len(active)} job(s) set to Failed")
    return 0


force_job_to_failed = command(
    "protopipe-FORCE_JOB_TO_FAILED", "Set stuck jobs to Failed. Select them by at least one of "
    "--Status, --JobGroup,\n--Site, --MinorStatus, --ApplicationStatus (and --Date, default "
    "today); the selection\nis shown, and nothing happens without confirmation (or --yes).",
    force_options, run_force_job_to_failed)
