"""The subcommands of ``protopipe-grid``: parse results in, workflow calls, rendering out."""

from __future__ import annotations

import argparse
import math
import posixpath
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..atomic import write_atomic, write_lines
from ..backends.base import Backend
from ..exceptions import DataError, InputError
from ..models import BOOKKEEPING_STATES, RESUBMITTABLE_STATES, JobStatus, Particle, RemoteFile
from ..paths import merged_file_name, validate_lfn
from ..settings import environment
from ..software import default_payload_env, example_configs
from ..store import JobRecord, Store
from ..workflow import collect, submit, track, upload
from ..workflow.analysis import Analysis, stage_particles
from ..workflow.split import SplitInput, read_list
from ..workflow.tree import create_analysis
from . import render
from .common import (
    confirm,
    console,
    errors,
    make_backend,
    no_progress,
    print_lines,
    progress_bar,
    tracker,
)


@dataclass
class Session:
    analysis: Analysis
    store: Store
    backend: Backend


@contextmanager
def session(args: argparse.Namespace, with_backend: bool = True) -> Iterator[Session]:
    """Open the analysis, its state database and the backend; record the command run."""
    analysis = Analysis.open(args.metadata)
    backend = make_backend(args, analysis.grid) if with_backend else None
    if backend is not None:
        analysis = analysis.with_home(backend.home)
    store = analysis.store()
    command = store.start_command(sys.argv, __version__, analysis.config_hashes())
    code = 1
    try:
        yield Session(analysis, store, backend)  # type: ignore[arg-type]
        code = 0
    finally:
        store.finish_command(command, code)
        store.close()


def payload_env(args: argparse.Namespace, configured: str = "") -> Path:
    return args.payload_env or (Path(configured) if configured else default_payload_env())


# --- analysis ----------------------------------------------------------------------------------
def analysis_create(args: argparse.Namespace) -> int:
    templates = example_configs(payload_env(args))
    tree = create_analysis(args.output_path, args.name, templates, grid_is_dirac=bool(
        args.grid_home), grid_home=args.grid_home, path_from_home=args.path_from_home,
        overwrite=args.overwrite)
    console.print(f"analysis created: {tree.root}", markup=False)
    console.print(f"next: protopipe-grid dataset split --metadata {tree.metadata_file} "
                  "--gammas G.list --protons P.list --electrons E.list", markup=False,
                  soft_wrap=True)
    return 0


# --- dataset -----------------------------------------------------------------------------------
def dataset_split(args: argparse.Namespace) -> int:
    inputs = [SplitInput(p, getattr(args, f"{p.value}s"), getattr(args, f"split_{p.value}s"),
                         f"--split-{p.value}s") for p in Particle if getattr(args, f"{p.value}s")]
    if not inputs:
        raise InputError("no list given", "use --gammas, --protons and/or --electrons")
    for line in render.split_lines(Analysis.open(args.metadata).split(inputs, args.seed,
                                                                       args.overwrite)):
        console.print(line, markup=False, soft_wrap=True)
    return 0


def dataset_dump(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..workflow.datasets import dump

    query = {}
    for item in args.query:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--query {item!r}: expected KEY=VALUE")
        query[key] = value
    backend = make_backend(args)
    files, per_se = dump(backend, validate_lfn(args.path), query, args.output)
    table = Table(title=f"{len(files)} file(s), {sum(f.size for f in files) / 1e6:.1f} MB")
    table.add_column("storage element")
    table.add_column("replicas", justify="right")
    for se, count in per_se.most_common():
        table.add_row(se, str(count))
    console.print(table)
    console.print(f"list: {args.output}; replicas: {args.output}.replicas", markup=False)
    return 0


def dataset_register(args: argparse.Namespace) -> int:
    backend = make_backend(args)
    lfn_dir = validate_lfn(args.lfn_dir.rstrip("/"))
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: file not found")
    lfns = []
    report = upload.UploadReport()
    if args.dry_run:
        for path in args.files:
            lfn = validate_lfn(posixpath.join(lfn_dir, path.name))
            console.print(f"{path} -> {lfn} on {args.se}", markup=False)
        return 0
    with progress_bar("registering", len(args.files)) as advance:
        for path in args.files:
            lfn = validate_lfn(posixpath.join(lfn_dir, path.name))
            upload.upload_file(backend, path, lfn, args.se, report)
            lfns.append(lfn)
            advance(1)
    write_lines(args.list, lfns)
    console.print(f"{len(report.uploaded)} registered, {len(report.unchanged)} already there; "
                  f"list: {args.list}", markup=False)
    return 0


# --- jobs --------------------------------------------------------------------------------------
def jobs_submit(args: argparse.Namespace) -> int:
    particles = stage_particles(args.stage, args.particle)
    if args.list and len(particles) != 1:
        raise InputError("--list needs exactly one --particle")
    overrides: dict[str, object] = {}
    if args.files_per_job:
        overrides["files_per_job"] = args.files_per_job
    if args.max_events:
        overrides["max_events"] = args.max_events
    analysis = Analysis.open(args.metadata)
    backend = make_backend(args, analysis.grid)
    analysis = analysis.with_home(backend.home)
    se = backend.storage_elements()[0]
    specs = [spec for particle in particles
             for spec in analysis.plan(args.stage, particle, se, args.list, **overrides)]
    if args.dry_run:
        render.plan_table(specs, backend.name)
        return 0
    if backend.name == "dirac" and not args.force:
        from ..setup.proxy import check_proxy_for

        check_proxy_for(submission_hours(len(specs)))
    with session(args) as s:
        with progress_bar(f"submitting {args.stage.value}", len(specs)) as advance:
            report = submit.submit(s.store, s.backend, specs, progress=advance)
        console.print(
            f"{args.stage.value}: {len(report.submitted)} submitted, {report.skipped_existing} "
            f"skipped (output exists), {report.already_submitted} already submitted, "
            f"{report.recovered} recovered from an interrupted run"
            + (f", {report.confirmed} unconfirmed job(s) confirmed" if report.confirmed else ""),
            markup=False, soft_wrap=True)
        if args.wait:
            return wait_for(s, args, [spec.name for spec in specs])
    return 0


def submission_hours(jobs: int) -> float:
    """Proxy lifetime a submission needs: an hour, plus a generous second per job."""
    return 1.0 + jobs / 3600


def wait_for(s: Session, args: argparse.Namespace, names: list[str]) -> int:
    """Wait for the jobs (a progress bar on a terminal, a status line every ``--status-every``
    elsewhere), then show their states, why the failed ones failed and what to do about the
    stuck ones."""
    warned: set[str] = set()
    last_line = [-math.inf]
    with progress_bar("jobs final", len(names)) as advance:
        seen = [0]

        def update(records: list[JobRecord], stuck: dict[track.Stuck, list[JobRecord]]) -> None:
            final = sum(1 for r in records if r.status.is_final)
            advance(final - seen[0])
            seen[0] = final
            if not console.is_terminal and time.monotonic() - last_line[0] >= args.status_every:
                last_line[0] = time.monotonic()
                console.print(render.status_line(records), markup=False, soft_wrap=True)
            fresh = [r for found in stuck.values() for r in found if r.name not in warned]
            if fresh and len(warned) + len(fresh) < sum(not r.status.is_final for r in records):
                warned.update(r.name for r in fresh)
                console.print(f"{len(fresh)} job(s) cannot progress (details at the end); "
                              "waiting for the others", markup=False)

        result = track.wait(s.store, s.backend, names, timeout=getattr(args, "timeout", None),
                            held_after=args.stuck_after, on_update=update)
    render.status_table(result.records)
    failed = [r for r in result.records if r.status.is_final and r.status != JobStatus.DONE]
    if failed:
        show_failures(s, failed)
    for cause, records in result.stuck.items():
        for line in render.stuck_lines(cause, records, args.metadata, args.stuck_after):
            errors.print(line, markup=False, soft_wrap=True)
    if result.timed_out:
        left = sum(not r.status.is_final for r in result.records)
        errors.print(f"timed out with {left} job(s) not final", markup=False)
    return 0 if all(r.status == JobStatus.DONE for r in result.records) else 1


def show_failures(s: Session, records: list) -> None:  # type: ignore[type-arg]
    tails = {}
    for r in records:
        if r.status.is_final and r.backend_id is not None:
            lines = s.backend.job_log(r.backend_id).strip().splitlines()
            tails[r.name] = "\n".join(lines[-3:])
    render.failures_table(records, tails)


def selected(s: Session, args: argparse.Namespace) -> list:  # type: ignore[type-arg]
    records = s.store.jobs(stage=args.stage)
    if args.particle:
        records = [r for r in records if r.particle in args.particle]
    return records


def jobs_status(args: argparse.Namespace) -> int:
    with session(args) as s:
        if not args.no_refresh:
            track.refresh(s.store, s.backend, args.stage)
        records = selected(s, args)
        if args.json:
            print(render.records_json(records))
            return 0
        if not records:
            console.print("no jobs yet: protopipe-grid jobs submit ...", markup=False)
            return 0
        render.status_table(records)
        failed = [r for r in records if r.status == JobStatus.FAILED]
        if failed:
            show_failures(s, failed)
    return 0


def jobs_wait(args: argparse.Namespace) -> int:
    with session(args) as s:
        names = [r.name for r in selected(s, args) if r.status != JobStatus.PLANNED]
        return wait_for(s, args, names)


def jobs_resubmit(args: argparse.Namespace) -> int:
    with session(args) as s:
        track.refresh(s.store, s.backend, args.stage)
        chosen = [r for r in selected(s, args) if r.status in RESUBMITTABLE_STATES]
        if args.dry_run or not chosen:
            for r in chosen:
                console.print(f"would resubmit {r.name} ({r.status.value}: {r.minor_status})",
                              markup=False)
            console.print(f"{len(chosen)} job(s) to resubmit", markup=False)
            return 0
        names = submit.requeue_failed(s.store, [r.name for r in chosen])
        report = submit.submit(s.store, s.backend, [r.spec for r in chosen])
        console.print(f"{len(report.submitted)} of {len(names)} job(s) resubmitted", markup=False)
    return 0


def jobs_kill(args: argparse.Namespace) -> int:
    return act_on_selection(args, lambda b, ids: b.kill(ids), "kill", "killed",
                            lambda r: r.status.is_active)


def jobs_delete(args: argparse.Namespace) -> int:
    return act_on_selection(args, lambda b, ids: b.delete(ids), "delete", "deleted",
                            lambda r: r.status not in (*BOOKKEEPING_STATES, JobStatus.DELETED))


def act_on_selection(args: argparse.Namespace, action: Callable[[Backend, list[int]], None],
                     verb: str, done: str, wanted: Callable[[JobRecord], bool]) -> int:
    """List the submitted jobs of the selection that ``wanted`` keeps, ask, apply ``action``
    to them on the backend, then record the state of each (final ones too)."""
    with session(args) as s:
        track.refresh(s.store, s.backend, args.stage)
        chosen = [r for r in selected(s, args) if r.backend_id is not None and wanted(r)]
        for r in chosen:
            console.print(f"{r.name} ({r.backend_id}, {r.status.value})", markup=False)
        if not chosen:
            console.print(f"no job to {verb} in this selection", markup=False)
            return 0
        if args.dry_run or not confirm(f"{verb} these {len(chosen)} job(s)?", args.yes):
            return 0 if args.dry_run else 1
        action(s.backend, [r.backend_id for r in chosen if r.backend_id is not None])
        track.update(s.store, s.backend, chosen)
        console.print(f"{len(chosen)} job(s) {done}", markup=False)
    return 0


def jobs_log(args: argparse.Namespace) -> int:
    with session(args) as s:
        records = [r for r in s.store.jobs() if r.name == args.job or str(r.backend_id) ==
                   args.job]
        if not records or records[0].backend_id is None:
            raise InputError(f"no submitted job named {args.job!r} in this analysis")
        print(s.backend.job_log(records[0].backend_id), end="")
    return 0


def jobs_input_lfns(args: argparse.Namespace) -> int:
    backend = make_backend(args)
    lfns = [lfn for lfn in backend.job_input_data(args.job_id) if "/estimators/" not in lfn]
    text = "".join(f"{lfn}\n" for lfn in lfns)
    if args.output_file:
        write_atomic(args.output_file, text)
        console.print(f"{len(lfns)} LFN(s) written to {args.output_file}", markup=False)
    else:
        print(text, end="")
    return 0


# --- data --------------------------------------------------------------------------------------
def data_download(args: argparse.Namespace) -> int:
    particles = stage_particles(args.stage, args.particle)
    with session(args) as s:
        tree, mode = s.analysis.tree, s.analysis.grid.General.mode
        if args.dry_run:
            for particle in particles:
                outdir = tree.data_dir(args.stage, particle)
                for f in collect.stage_outputs(s.store, s.backend, tree, args.stage, particle,
                                               mode):
                    console.print(f"{f.lfn} -> {outdir / Path(f.lfn).name} ({f.size} B)",
                                  markup=False, soft_wrap=True)
            return 0
        with tracker() as progress:
            reports = collect.collect(s.store, s.backend, tree, mode, args.stage, particles,
                                      args.workers, not args.no_merge, args.overwrite, progress)
        print_lines(render.collect_lines(reports))
        failed = sum(len(report.download.failed) for report in reports)
        if failed:
            raise DataError(f"{failed} file(s) could not be downloaded",
                            "run the same command again to retry")
    return 0


def verify_mode(args: argparse.Namespace) -> None:
    """Refuse an incomplete or mixed choice of what to verify, before anything is opened."""
    folder_mode = args.local_dir is not None or args.lfn_path is not None
    if args.stage is not None and folder_mode:
        raise InputError("--stage and --local-dir/--lfn-path: give one or the other",
                         "--stage checks an analysis' downloads, --local-dir any folder")
    if args.stage is not None and args.metadata is None:
        raise InputError("--stage needs --metadata (the analysis whose downloads to check)")
    if args.stage is None and not folder_mode:
        raise InputError("nothing to verify",
                         "give --metadata and --stage, or --local-dir and --lfn-path")
    if args.particle and args.stage is None:
        raise InputError("--particle needs --stage")
    if folder_mode:
        if args.local_dir is None or args.lfn_path is None:
            missing = "--lfn-path" if args.lfn_path is None else "--local-dir"
            raise InputError(f"{missing} is missing",
                             "--local-dir and --lfn-path go together")
        if not args.local_dir.is_dir():
            raise InputError(f"--local-dir {args.local_dir}: folder not found")
        validate_lfn(args.lfn_path, "--lfn-path")


def data_verify(args: argparse.Namespace) -> int:
    from ..workflow.verify import VerifyReport, verify

    verify_mode(args)
    reports: list[VerifyReport] = []

    def check(remote: list[RemoteFile], folder: Path, source: str, label: str,
              ignore: tuple[str, ...] = ()) -> None:
        title = f"verifying {label}"
        with (no_progress() if args.json else progress_bar(title, len(remote))) as advance:
            reports.append(verify(remote, folder, source, label, args.workers, ignore,
                                  progress=lambda f: advance(1)))

    if args.stage is not None:
        particles = stage_particles(args.stage, args.particle)
        with session(args) as s:
            mode = s.analysis.grid.General.mode
            for particle in particles:
                check(collect.stage_outputs(s.store, s.backend, s.analysis.tree, args.stage,
                                            particle, mode),
                      s.analysis.tree.data_dir(args.stage, particle),
                      s.analysis.tree.lfn_data_dir(args.stage, particle), particle.value,
                      (merged_file_name(args.stage, particle, mode),))
    else:
        grid = Analysis.open(args.metadata).grid if args.metadata else None
        backend = make_backend(args, grid)
        remote = remote_files(backend, args.lfn_path)
        if not remote:
            raise DataError(f"{args.lfn_path}: no such file or folder in the catalog")
        check(remote, args.local_dir, args.lfn_path, args.local_dir.name)
    if not any(r.catalogued for r in reports):
        where = ", ".join(r.source for r in reports)
        raise DataError(f"nothing to verify: no {args.stage.value} outputs in the catalog "
                        f"under {where}", "were the jobs run (protopipe-grid jobs status)?")
    if args.json:
        print(render.verify_json(reports))
    else:
        render.verify_tables(reports)
    bad = sum(len(r.bad) for r in reports)
    if bad:
        total = sum(r.catalogued for r in reports)
        again = ("protopipe-grid data download with the same options" if args.stage
                 else "protopipe-grid files get")
        raise DataError(f"{bad} of {total} catalogued file(s) missing or wrong",
                        f"{again} fetches them again")
    return 0


def data_merge(args: argparse.Namespace) -> int:
    particles = stage_particles(args.stage, args.particle)
    with session(args, with_backend=False) as s:
        print_lines(render.merge_lines(collect.merge_particles(
            s.store, s.analysis.tree, s.analysis.grid.General.mode, args.stage, particles,
            args.overwrite)))
    return 0


# --- models and performance --------------------------------------------------------------------
def models_build(args: argparse.Namespace) -> int:
    from ..workflow import local_steps

    with session(args, with_backend=False) as s:
        env = payload_env(args, s.analysis.grid.Software.local_env)
        files = local_steps.build_model(s.analysis, args.type, env)
        for path in files:
            console.print(f"model: {path}", markup=False)
    return 0


def models_upload(args: argparse.Namespace) -> int:
    with session(args) as s:
        method = s.analysis.method(args.type)
        if not method:
            raise InputError(f"analysis.yaml sets no method_name for the {args.type}")
        ses = args.ses.split(",") if args.ses else [
            se for se in s.analysis.grid.GRID.upload_sites if se in s.backend.storage_elements()
        ] or s.backend.storage_elements()
        if args.dry_run:
            for path, lfn in upload.model_files(s.analysis.tree, args.type, method,
                                                s.analysis.cam_ids):
                console.print(f"{path} -> {lfn} on {', '.join(ses)}", markup=False)
            return 0
        report = upload.upload_models(s.backend, s.analysis.tree, args.type, method,
                                      s.analysis.cam_ids, ses, args.overwrite)
        console.print(f"{len(report.uploaded)} uploaded, {len(report.unchanged)} unchanged, "
                      f"{len(report.replicated)} replica(s) made on {', '.join(ses)}",
                      markup=False)
    return 0


def performance(args: argparse.Namespace) -> int:
    from ..workflow import local_steps

    with session(args, with_backend=False) as s:
        env = payload_env(args, s.analysis.grid.Software.local_env)
        output = local_steps.make_performance(s.analysis, env)
        console.print(f"IRFs: {output}", markup=False)
    return 0


# --- files -------------------------------------------------------------------------------------
def files_list(args: argparse.Namespace) -> int:
    backend = make_backend(args)
    for f in backend.list_directory(args.path):  # one tab-separated line per file, for scripts
        print(f"{f.lfn}\t{f.size}\t{f.checksum}\t{','.join(f.replicas)}")
    return 0


def files_put(args: argparse.Namespace) -> int:
    backend = make_backend(args)
    report = upload.UploadReport()
    se = args.se or backend.storage_elements()[0]
    if args.dry_run:
        exists = validate_lfn(args.lfn) in backend.metadata([args.lfn])
        note = " (already catalogued: replaced only with --overwrite)" if exists else ""
        console.print(f"{args.path} -> {args.lfn} on {se}{note}", markup=False)
        return 0
    upload.upload_file(backend, args.path, validate_lfn(args.lfn), se, report, args.overwrite)
    state = "uploaded" if report.uploaded else "already there, same content"
    console.print(f"{args.lfn}: {state}", markup=False)
    return 0


def remote_files(backend: Backend, path: str) -> list[RemoteFile]:
    """The file ``path`` itself, or the files of the folder ``path`` and its subfolders."""
    validate_lfn(path)
    found = backend.metadata([path])
    return [found[path]] if path in found else backend.list_directory(path, recursive=True)


def files_get(args: argparse.Namespace) -> int:
    backend = make_backend(args)
    remote = remote_files(backend, args.path)
    if not remote:
        raise DataError(f"{args.path}: no such file or folder in the catalog")
    with progress_bar("downloading", len(remote)) as advance:
        report = collect.download(backend, remote, args.outdir, workers=args.workers,
                                  progress=lambda f: advance(1))
    console.print(f"{len(report.fetched)} fetched, {len(report.present)} already present, "
                  f"{len(report.failed)} failed", markup=False)
    if report.failed:
        raise DataError(f"{len(report.failed)} file(s) not downloaded: "
                        f"{next(iter(report.failed))}")
    return 0


def files_remove(args: argparse.Namespace) -> int:
    backend = make_backend(args)
    remote = remote_files(backend, args.path)
    if not remote:
        raise DataError(f"{args.path}: no such file or folder in the catalog")
    for f in remote:
        console.print(f"{f.lfn} ({f.size} B, {','.join(f.replicas)})", markup=False)
    if args.dry_run:
        return 0
    if not confirm(f"remove these {len(remote)} file(s) and all their replicas?", args.yes):
        return 1
    backend.remove([f.lfn for f in remote])
    left = backend.metadata([f.lfn for f in remote])
    if left:
        raise DataError(f"{len(left)} file(s) still in the catalog, e.g. {next(iter(left))}")
    console.print(f"{len(remote)} file(s) removed", markup=False)
    return 0


def files_filter_replicas(args: argparse.Namespace) -> int:
    backend = make_backend(args)
    lfns = read_list(args.input_list)
    found = backend.metadata(lfns)
    kept = [lfn for lfn in lfns if lfn in found and args.se in found[lfn].replicas]
    write_lines(args.outfile, kept)
    console.print(f"{len(kept)} of {len(lfns)} LFN(s) have a replica on {args.se}: "
                  f"{args.outfile}", markup=False)
    return 0


# --- demo ---------------------------------------------------------------------------------------
def demo(args: argparse.Namespace) -> int:
    import time

    from rich.table import Table

    from ..workflow import demo as demo_workflow

    start = time.monotonic()
    backend = None
    if (args.backend or environment().backend) == "dirac":
        from ..backends.dirac import DiracBackend, Environment

        env = payload_env(args)
        backend = DiracBackend(Environment("venv", str(env)))
    result = demo_workflow.run(args.workdir, args.payload_env, args.data, args.fresh,
                               lambda text: console.print(text, markup=False, soft_wrap=True),
                               backend)
    store = result.analysis.store()
    try:
        render.status_table(store.jobs())
    finally:
        store.close()
    table = Table(title="outputs")
    table.add_column("what")
    table.add_column("where", overflow="fold")
    for what, path in result.outputs.items():
        table.add_row(what, str(path))
    console.print(table)
    console.print(f"demo finished in {time.monotonic() - start:.0f} s", markup=False)
    return 0
