"""``protopipe-grid``: one command, noun-verb subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..models import Particle, Stage
from . import commands
from .common import (
    ArgumentParser,
    add_backend_options,
    duration,
    positive_int,
    run,
    version_text,
)
from .doctor import register as register_doctor

STAGES = [s.value for s in Stage]
PARTICLES = [p.value for p in Particle]


def analysis_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata", "-m", type=Path, required=True,
                        help="the analysis' analysis_metadata.yaml (or its folder)")


def stage_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--stage", choices=STAGES, required=required, help="grid stage")
    parser.add_argument("--particle", choices=PARTICLES, action="append",
                        help="particle (repeatable; default: all of the stage)")


def wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stuck-after", type=duration, default=duration("24h"),
                        metavar="DURATION",
                        help="stop waiting for a job whose state has not changed for this long "
                             "while not running (default: 24h; unconfirmed jobs: 5m at most)")
    parser.add_argument("--status-every", type=duration, default=duration("1m"),
                        metavar="DURATION",
                        help="when the output is not a terminal, print a status line this "
                             "often (default: 1m)")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="protopipe-grid", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--verbose", action="store_true",
                        help="with --version: also the protopipe compatibility table")
    parser.add_argument("--debug", action="store_true", help="log details; tracebacks on bugs")
    nouns = parser.add_subparsers(dest="noun", metavar="COMMAND", parser_class=ArgumentParser)
    register_doctor(nouns)

    # analysis -----------------------------------------------------------------------------
    analysis = nouns.add_parser("analysis", help="create an analysis").add_subparsers(
        dest="verb", required=True, metavar="VERB", parser_class=ArgumentParser)
    p = analysis.add_parser("create", help="analysis tree, metadata and filled config templates")
    p.add_argument("name", help="analysis name (letters, digits, _ . + -)")
    p.add_argument("--output-path", type=Path, default=Path.home(),
                   help="where shared_folder/ is (default: your home)")
    p.add_argument("--grid-home", default="", help="your LFN home, /vo.cta.in2p3.fr/user/x/xyz")
    p.add_argument("--path-from-home", default="", help="analyses folder below the grid home")
    p.add_argument("--overwrite", action="store_true", help="fill an existing analysis again")
    add_backend_options(p)
    p.set_defaults(func=commands.analysis_create)

    # dataset ------------------------------------------------------------------------------
    dataset = nouns.add_parser("dataset", help="dataset lists").add_subparsers(
        dest="verb", required=True, metavar="VERB", parser_class=ArgumentParser)
    p = dataset.add_parser("split", help="split list files by fractions into stage lists")
    analysis_option(p)
    for particle, default in (("gammas", "10 10 80"), ("protons", "40 60"),
                              ("electrons", "100")):
        p.add_argument(f"--{particle}", type=Path, help=f"list file of {particle}")
        p.add_argument(f"--split-{particle}", type=int, nargs="+",
                       default=[int(x) for x in default.split()],
                       help=f"percentages (default: {default})")
    p.add_argument("--seed", type=int, default=None, help="shuffle first, with this seed")
    p.add_argument("--overwrite", action="store_true",
                   help="replace stage lists that exist with a different content")
    p.set_defaults(func=commands.dataset_split)
    p = dataset.add_parser("dump", help="write the LFNs of a catalog folder or metadata query "
                           "to a list file (with replica sites beside it)")
    p.add_argument("--path", required=True, help="catalog folder to search below")
    p.add_argument("--query", action="append", default=[], metavar="KEY=VALUE",
                   help="catalog metadata to match (repeatable; DIRAC catalog)")
    p.add_argument("-o", "--output", type=Path, required=True, help="list file to write")
    add_backend_options(p)
    p.set_defaults(func=commands.dataset_dump)
    p = dataset.add_parser("register", help="register local files as a production (local "
                           "backend), and write their list file")
    p.add_argument("files", nargs="+", type=Path, help="files to register")
    p.add_argument("--lfn-dir", required=True, help="catalog folder to put them in")
    p.add_argument("--se", default="LOCAL-SE", help="storage element")
    p.add_argument("--list", type=Path, required=True, help="list file to write")
    p.add_argument("--dry-run", action="store_true", help="show the LFNs, register nothing")
    add_backend_options(p)
    p.set_defaults(func=commands.dataset_register)

    # jobs ---------------------------------------------------------------------------------
    jobs = nouns.add_parser("jobs", help="submit and follow grid jobs").add_subparsers(
        dest="verb", required=True, metavar="VERB", parser_class=ArgumentParser)
    p = jobs.add_parser("submit", help="plan and submit a stage (never twice the same job)")
    analysis_option(p)
    stage_options(p)
    p.add_argument("--list", type=Path, help="list file (default: from grid.yaml; "
                   "needs a single --particle)")
    p.add_argument("--files-per-job", type=positive_int, help="override GRID.n_file_per_job")
    p.add_argument("--max-events", type=positive_int, help="events per file")
    p.add_argument("--dry-run", action="store_true", help="show the whole plan, submit nothing")
    p.add_argument("--wait", action="store_true", help="wait until every job is final")
    wait_options(p)
    p.add_argument("--force", action="store_true",
                   help="submit even if the grid proxy may expire before the submission ends")
    add_backend_options(p)
    p.set_defaults(func=commands.jobs_submit)

    p = jobs.add_parser("status", help="job states by stage and particle")
    analysis_option(p)
    stage_options(p, required=False)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-refresh", action="store_true", help="do not ask the backend")
    add_backend_options(p)
    p.set_defaults(func=commands.jobs_status)

    p = jobs.add_parser("wait", help="wait until every job of a stage is final")
    analysis_option(p)
    stage_options(p, required=False)
    p.add_argument("--timeout", type=duration, default=None, metavar="DURATION",
                   help="stop waiting after this long (e.g. 600, 10m)")
    wait_options(p)
    add_backend_options(p)
    p.set_defaults(func=commands.jobs_wait)

    p = jobs.add_parser("resubmit", help="submit again the Failed and Killed jobs")
    analysis_option(p)
    stage_options(p, required=False)
    p.add_argument("--dry-run", action="store_true", help="list them, submit nothing")
    add_backend_options(p)
    p.set_defaults(func=commands.jobs_resubmit)

    for verb, what, func in (("kill", "the active jobs", commands.jobs_kill),
                             ("delete", "the jobs (active ones killed)", commands.jobs_delete)):
        p = jobs.add_parser(verb, help=f"{verb} {what} of a selection")
        analysis_option(p)
        stage_options(p, required=False)
        p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        p.add_argument("--dry-run", action="store_true", help=f"list them, {verb} nothing")
        add_backend_options(p)
        p.set_defaults(func=func)

    p = jobs.add_parser("log", help="a job's output (by name or backend id)")
    analysis_option(p)
    p.add_argument("job", help="job name or backend id")
    add_backend_options(p)
    p.set_defaults(func=commands.jobs_log)

    p = jobs.add_parser("input-lfns", help="the input LFNs of a job (by backend id)")
    p.add_argument("job_id", type=int)
    p.add_argument("--output-file", type=Path, help="write them here (one per line)")
    add_backend_options(p)
    p.set_defaults(func=commands.jobs_input_lfns)

    # data ---------------------------------------------------------------------------------
    data = nouns.add_parser("data", help="download and merge outputs").add_subparsers(
        dest="verb", required=True, metavar="VERB", parser_class=ArgumentParser)
    for verb, func, text in (("download", commands.data_download, "verified, resumable "
                              "download of a stage's outputs (and merge)"),
                             ("merge", commands.data_merge, "merge downloaded outputs")):
        p = data.add_parser(verb, help=text)
        analysis_option(p)
        stage_options(p)
        p.add_argument("--overwrite", action="store_true", help="replace merged files")
        if verb == "download":
            p.add_argument("--workers", type=positive_int, default=4, help="parallel transfers")
            p.add_argument("--no-merge", action="store_true", help="download only")
            p.add_argument("--dry-run", action="store_true", help="list files, fetch nothing")
            add_backend_options(p)
        p.set_defaults(func=func)

    p = data.add_parser("verify", help="check downloaded files against the catalog: missing, "
                        "wrong size, wrong adler32, not in the catalog")
    p.add_argument("--metadata", "-m", type=Path,
                   help="the analysis' analysis_metadata.yaml (or its folder)")
    stage_options(p, required=False)
    p.add_argument("--local-dir", type=Path, help="a download folder (instead of --stage)")
    p.add_argument("--lfn-path", help="with --local-dir: the catalog folder (and its "
                   "subfolders, as files get) or file it was downloaded from")
    p.add_argument("--workers", type=positive_int, default=4, help="files checked in parallel")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_backend_options(p)
    p.set_defaults(func=commands.data_verify)

    # models -------------------------------------------------------------------------------
    models = nouns.add_parser("models", help="build and upload models").add_subparsers(
        dest="verb", required=True, metavar="VERB", parser_class=ArgumentParser)
    p = models.add_parser("build", help="run protopipe-MODEL on the merged training data")
    analysis_option(p)
    p.add_argument("--type", choices=["regressor", "classifier"], required=True)
    p.add_argument("--payload-env", type=Path, default=None)
    p.set_defaults(func=commands.models_build)
    p = models.add_parser("upload", help="upload models + config and replicate them")
    analysis_option(p)
    p.add_argument("--type", choices=["regressor", "classifier"], required=True)
    p.add_argument("--ses", help="comma-separated SEs (default: GRID.upload_sites on the "
                   "backend, or all of the backend's)")
    p.add_argument("--overwrite", action="store_true", help="replace different files")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    add_backend_options(p)
    p.set_defaults(func=commands.models_upload)

    p = nouns.add_parser("performance", help="IRFs with protopipe-DL3-EventDisplay")
    analysis_option(p)
    p.add_argument("--payload-env", type=Path, default=None)
    p.set_defaults(func=commands.performance)

    # files --------------------------------------------------------------------------------
    files = nouns.add_parser("files", help="catalog files").add_subparsers(
        dest="verb", required=True, metavar="VERB", parser_class=ArgumentParser)
    p = files.add_parser("list", help="files in a catalog folder")
    p.add_argument("path")
    add_backend_options(p)
    p.set_defaults(func=commands.files_list)
    p = files.add_parser("put", help="upload a file")
    p.add_argument("path", type=Path)
    p.add_argument("lfn")
    p.add_argument("--se", default=None, help="storage element (default: the backend's first)")
    p.add_argument("--overwrite", action="store_true", help="replace a different file")
    p.add_argument("--dry-run", action="store_true", help="say what would happen")
    add_backend_options(p)
    p.set_defaults(func=commands.files_put)
    p = files.add_parser("get", help="download files or a folder, verified")
    p.add_argument("path", help="LFN of a file or a catalog folder")
    p.add_argument("--outdir", type=Path, default=Path("."))
    p.add_argument("--workers", type=positive_int, default=4)
    add_backend_options(p)
    p.set_defaults(func=commands.files_get)
    p = files.add_parser("remove", help="remove files or a whole catalog folder")
    p.add_argument("path", help="LFN of a file or a catalog folder")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--dry-run", action="store_true")
    add_backend_options(p)
    p.set_defaults(func=commands.files_remove)
    p = files.add_parser("filter-replicas", help="keep the LFNs with a replica on an SE")
    p.add_argument("--input-list", type=Path, required=True)
    p.add_argument("--se", required=True)
    p.add_argument("--outfile", type=Path, default=Path("outfile.list"))
    add_backend_options(p)
    p.set_defaults(func=commands.files_filter_replicas)

    # demo ---------------------------------------------------------------------------------
    p = nouns.add_parser("demo", help="a whole analysis on the local backend, real protopipe")
    p.add_argument("--workdir", type=Path, default=Path("demo-analysis"))
    p.add_argument("--payload-env", type=Path, default=None)
    p.add_argument("--data", type=Path, default=None, help="folder with the sim_telarray files")
    p.add_argument("--fresh", action="store_true", help="start again from nothing")
    p.add_argument("--backend", choices=["local", "dirac"], default="local",
                   help="dirac: a DIRAC test site whose workers are this machine")
    p.set_defaults(func=commands.demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_text(args.verbose))
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    for name in ("particle",):
        if getattr(args, name, None):
            setattr(args, name, [Particle(v) for v in getattr(args, name)])
    if getattr(args, "stage", None):
        args.stage = Stage(args.stage)
    return run(args.func, args, f"protopipe-grid {args.noun} {getattr(args, 'verb', '')}".strip())


if __name__ == "__main__":
    sys.exit(main())
