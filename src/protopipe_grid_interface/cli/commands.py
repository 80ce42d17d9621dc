"""The subcommands of ``protopipe-grid``: parsed options in, one workflow call, rendering out."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

from ..atomic import write_lines
from ..backends.base import Backend
from ..exceptions import DataError, InputError
from ..models import RESUBMITTABLE_STATES, JobStatus, Particle
from ..paths import validate_lfn
from ..store import JobRecord, Store
from ..workflow import (
    canary,
    collect,
    consistency,
    files,
    jobs,
    local_steps,
    submit,
    track,
    upload,
    validate,
)
from ..workflow.analysis import Analysis, stage_particles
from ..workflow.session import existing_store, recorded
from ..workflow.split import SplitInput
from ..workflow.tree import create_pipeline_analysis
from . import render
from .common import (
    attach,
    confirm,
    console,
    errors,
    get_files,
    key_values,
    make_backend,
    payload_env,
    print_lines,
    remove_files,
    session,
    tracker,
)


# --- analysis and datasets ---------------------------------------------------------------------
def analysis_create(args: argparse.Namespace) -> int:
    tree = create_pipeline_analysis(args.output_path, args.name, args.pipeline,
                                    args.payload_env, args.contact, grid_home=args.grid_home,
                                    path_from_home=args.path_from_home,
                                    overwrite=args.overwrite, backend=args.backend,
                                    local_root=args.local_root)
    print_lines(render.created_lines(tree))
    return 0


def dataset_split(args: argparse.Namespace) -> int:
    inputs = [SplitInput(p, getattr(args, f"{p.value}s"), getattr(args, f"split_{p.value}s"),
                         f"--split-{p.value}s") for p in Particle if getattr(args, f"{p.value}s")]
    if not inputs:
        raise InputError("no list given", "use --gammas, --protons and/or --electrons")
    print_lines(render.split_lines(Analysis.open(args.metadata).split(inputs, args.seed,
                                                                      args.overwrite)))
    return 0


def dataset_split_catalog(args: argparse.Namespace) -> int:
    analysis, backend = attach(args, Analysis.open(args.metadata))
    print_lines(render.split_lines(analysis.split_from_catalog(
        backend, args.path, key_values(args.query, "--query"), args.overwrite)))
    return 0


def dataset_dump(args: argparse.Namespace) -> int:
    from ..workflow.datasets import dump

    found, per_se = dump(make_backend(args), args.path, key_values(args.query, "--query"),
                         args.output)
    render.dump_table(found, per_se, args.output)
    return 0


def dataset_register(args: argparse.Namespace) -> int:
    backend = make_backend(args)
    if args.dry_run:
        print_lines([f"{path} -> {args.lfn_dir.rstrip('/')}/{path.name} on {args.se}"
                     for path in args.files])
        return 0
    _, report = files.register(backend, args.files, args.lfn_dir, args.se, args.list)
    print_lines([f"{len(report.uploaded)} registered, {len(report.unchanged)} already there; "
                 f"list: {args.list}"])
    return 0


# --- jobs --------------------------------------------------------------------------------------
def jobs_submit(args: argparse.Namespace) -> int:
    overrides = {key: value for key, value in (("files_per_job", args.files_per_job),
                                               ("max_events", args.max_events)) if value}
    analysis = Analysis.open(args.metadata)
    analysis, backend = attach(args, analysis)
    mode = "off" if args.no_canary else analysis.grid.GRID.canary
    with existing_store(analysis) as store:
        validate.check_analysis(analysis, store)
        specs = analysis.plan_stage(backend, args.stage, args.particle, args.list, **overrides)
        if not (args.dry_run or args.force):
            submit.check_proxy(backend, len(specs))
        validate.check_inputs(backend, specs)
        if args.dry_run:
            render.plan_table(submit.preview(store, backend, specs), backend.name)
            found = consistency.stale(store, backend, analysis, specs) if store else []
            print_lines([entry.line() for entry in found])
            print_lines([render.canary_plan_line(canary.plan_for(analysis.tree.state_db,
                                                                 specs, mode))])
            return 0
    with recorded(analysis, backend) as store:
        def approve(found: list[consistency.Stale]) -> bool:
            print_lines([entry.line() for entry in found])
            return confirm(f"kill these {sum(len(e.jobs) for e in found)} job(s) where "
                           "active, remove their outputs and plan them again?", args.yes)

        found, again = consistency.settle(store, backend, analysis, specs, args.replan,
                                          args.keep_stale, approve)
        if again is None:
            return 1
        if found:
            print_lines([entry.line() for entry in found] if args.keep_stale else [
                f"{sum(len(e.jobs) for e in found)} stale job(s) stopped and their outputs "
                f"removed; {len(again)} planned again"])
        passed = canary.run_canary(
            store, backend, specs, analysis.cam_ids,
            canary.CanaryOptions(mode, payload_env(args, analysis)),
            lambda plan: print_lines([render.canary_plan_line(plan)]))
        if passed is not None:
            print_lines([passed.describe()])
        with tracker() as progress:  # closed before the wait draws its own
            report = submit.submit(store, backend, specs,
                                   progress=progress(f"submitting {args.stage}", len(specs)))
        consistency.record(store, backend, analysis, specs)
        print_lines([render.submit_line(args.stage, report)])
        return wait_for(store, backend, args, [s.name for s in specs]) if args.wait else 0


def wait_for(store: Store, backend: Backend, args: argparse.Namespace,
             names: list[str]) -> int:
    """Wait for the jobs (a progress bar on a terminal, a status line every ``--status-every``
    elsewhere), then show their states, why the failed ones failed and what to do about the
    stuck ones."""
    warned: set[str] = set()
    last_line = [-math.inf]
    with tracker() as progress:
        advance, seen = progress("jobs final", len(names)), [0]

        def update(records: list[JobRecord], stuck: dict[track.Stuck, list[JobRecord]]) -> None:
            final = sum(1 for r in records if r.status.is_final)
            advance(final - seen[0])
            seen[0] = final
            if not console.is_terminal and time.monotonic() - last_line[0] >= args.status_every:
                last_line[0] = time.monotonic()
                print_lines([render.status_line(records)])
            fresh = [r for found in stuck.values() for r in found if r.name not in warned]
            if fresh and len(warned) + len(fresh) < sum(not r.status.is_final for r in records):
                warned.update(r.name for r in fresh)
                print_lines([f"{len(fresh)} job(s) cannot progress (details at the end); "
                             "waiting for the others"])

        result = track.wait(store, backend, names, timeout=getattr(args, "timeout", None),
                            held_after=args.stuck_after, on_update=update)
    render.status_table(result.records)
    failed = [r for r in result.records if r.status.is_final and r.status != JobStatus.DONE]
    if failed:
        render.failures_table(failed, jobs.log_tails(backend, failed))
    for cause, stuck in result.stuck.items():
        for line in render.stuck_lines(cause, stuck, args.metadata, args.stuck_after):
            errors.print(line, markup=False, soft_wrap=True)
    if result.timed_out:
        errors.print(f"timed out with {sum(not r.status.is_final for r in result.records)} "
                     "job(s) not final", markup=False)
    return 0 if all(r.status == JobStatus.DONE for r in result.records) else 1


def jobs_status(args: argparse.Namespace) -> int:
    with session(args) as s:
        if not args.no_refresh:
            track.refresh(s.store, s.backend, args.stage)
        records = jobs.select(s.store, args.stage, args.particle)
        if args.json:
            print(render.records_json(records))
        elif not records:
            print_lines(["no jobs yet: protopipe-grid jobs submit ..."])
        else:
            render.status_table(records)
            failed = [r for r in records if r.status == JobStatus.FAILED]
            if failed:
                render.failures_table(failed, jobs.log_tails(s.backend, failed))
    return 0


def jobs_wait(args: argparse.Namespace) -> int:
    with session(args) as s:
        names = [r.name for r in jobs.select(s.store, args.stage, args.particle)
                 if r.status != JobStatus.PLANNED]
        return wait_for(s.store, s.backend, args, names)


def jobs_resubmit(args: argparse.Namespace) -> int:
    with session(args) as s:
        track.refresh(s.store, s.backend, args.stage)
        chosen = jobs.select(s.store, args.stage, args.particle,
                             lambda r: r.status in RESUBMITTABLE_STATES)
        if args.dry_run or not chosen:
            print_lines([f"would resubmit {r.name} ({r.status.value}: {r.minor_status})"
                         for r in chosen] + [f"{len(chosen)} job(s) to resubmit"])
            return 0
        report = submit.resubmit(s.store, s.backend, chosen)
        print_lines([f"{len(report.submitted)} of {len(chosen)} job(s) resubmitted"])
    return 0


def jobs_kill(args: argparse.Namespace) -> int:
    return act_on_selection(args, lambda backend, ids: backend.kill(ids), "kill", "killed",
                            lambda r: r.status.is_active)


def jobs_delete(args: argparse.Namespace) -> int:
    return act_on_selection(args, lambda backend, ids: backend.delete(ids), "delete", "deleted",
                            lambda r: jobs.submitted(r) and r.status != JobStatus.DELETED)


def act_on_selection(args: argparse.Namespace, action: Callable[[Backend, list[int]], None],
                     verb: str, done: str, wanted: Callable[[JobRecord], bool]) -> int:
    """List the jobs of the selection that ``wanted`` keeps, ask, act, show their states."""
    with session(args) as s:
        track.refresh(s.store, s.backend, args.stage)
        chosen = jobs.select(s.store, args.stage, args.particle, wanted)
        print_lines([f"{r.name} ({r.backend_id}, {r.status.value})" for r in chosen])
        if not chosen:
            print_lines([f"no job to {verb} in this selection"])
            return 0
        if args.dry_run or not confirm(f"{verb} these {len(chosen)} job(s)?", args.yes):
            return 0 if args.dry_run else 1
        jobs.act(s.store, s.backend, chosen, action)
        print_lines([f"{len(chosen)} job(s) {done}"])
    return 0


def jobs_log(args: argparse.Namespace) -> int:
    with session(args) as s:
        record = jobs.job_by_name_or_id(s.store, args.job)
        print(s.backend.job_log(record.backend_id or 0), end="")
    return 0


def jobs_input_lfns(args: argparse.Namespace) -> int:
    lfns = jobs.input_lfns(make_backend(args), args.job_id)
    if args.output_file:
        write_lines(args.output_file, lfns)
        print_lines([f"{len(lfns)} LFN(s) written to {args.output_file}"])
    else:
        print("".join(f"{lfn}\n" for lfn in lfns), end="")
    return 0


# --- data --------------------------------------------------------------------------------------
def data_download(args: argparse.Namespace) -> int:
    particles = stage_particles(args.stage, args.particle)
    with session(args) as s:
        tree, mode = s.analysis.tree, s.analysis.grid.General.mode
        if args.dry_run:
            print_lines([f"{f.lfn} -> {tree.data_dir(args.stage, p) / Path(f.lfn).name} "
                         f"({f.size} B)" for p in particles for f in collect.stage_outputs(
                             s.store, s.backend, tree, args.stage, p, mode)])
            return 0
        with tracker() as progress:
            reports = collect.collect(s.store, s.backend, tree, mode, args.stage, particles,
                                      args.workers, not args.no_merge, args.overwrite, progress)
        print_lines(render.collect_lines(reports))
        collect.check_downloaded(reports)
    return 0


def data_merge(args: argparse.Namespace) -> int:
    particles = stage_particles(args.stage, args.particle)
    analysis = Analysis.open(args.metadata)
    with recorded(analysis) as store:
        print_lines(render.merge_lines(collect.merge_particles(
            store, analysis.tree, analysis.grid.General.mode, args.stage, particles,
            args.overwrite)))
    return 0


def data_verify(args: argparse.Namespace) -> int:
    from ..workflow.verify import verify_folder, verify_stage

    check_verify_options(args)
    with tracker() as progress:
        if args.stage is not None:
            particles = stage_particles(args.stage, args.particle)
            with session(args) as s:
                reports = verify_stage(s.store, s.backend, s.analysis.tree,
                                       s.analysis.grid.General.mode, args.stage, particles,
                                       args.workers, None if args.json else progress)
        else:
            analysis = Analysis.open(args.metadata) if args.metadata else None
            reports = [verify_folder(make_backend(args, analysis), args.local_dir,
                                     args.lfn_path, args.workers, None if args.json else progress)]
    if args.json:
        print(render.verify_json(reports))
    else:
        render.verify_tables(reports)
    bad = sum(len(r.bad) for r in reports)
    if bad:
        again = "data download with the same options" if args.stage else "files get"
        raise DataError(f"{bad} of {sum(r.catalogued for r in reports)} catalogued file(s) "
                        "missing or wrong", f"protopipe-grid {again} fetches them again")
    return 0


def check_verify_options(args: argparse.Namespace) -> None:
    """Refuse an incomplete or mixed choice of what to verify, before anything is opened."""
    folder = args.local_dir is not None or args.lfn_path is not None
    if args.stage is not None and folder:
        raise InputError("--stage and --local-dir/--lfn-path: give one or the other",
                         "--stage checks an analysis' downloads, --local-dir any folder")
    if args.stage is not None and args.metadata is None:
        raise InputError("--stage needs --metadata (the analysis whose downloads to check)")
    if args.stage is None and not folder:
        raise InputError("nothing to verify",
                         "give --metadata and --stage, or --local-dir and --lfn-path")
    if args.particle and args.stage is None:
        raise InputError("--particle needs --stage")
    if folder and (args.local_dir is None or args.lfn_path is None):
        raise InputError(f"{'--lfn-path' if args.lfn_path is None else '--local-dir'} is "
                         "missing", "--local-dir and --lfn-path go together")
    if folder:
        validate_lfn(args.lfn_path, "--lfn-path")


# --- models and performance --------------------------------------------------------------------
def models_build(args: argparse.Namespace) -> int:
    analysis = Analysis.open(args.metadata)
    with recorded(analysis) as store:
        result = local_steps.build_model(analysis, args.type, payload_env(args, analysis), store)
    print_lines([f"model: {path}" for path in result.files])
    render.model_table(result)
    print_lines(render.model_verdict_lines(result))
    return 0


def models_upload(args: argparse.Namespace) -> int:
    with session(args) as s:
        ses = upload.storage_elements(s.backend, s.analysis.grid.GRID.upload_sites,
                                      args.ses.split(",") if args.ses else ())
        model = (s.analysis.tree, args.type, s.analysis.model_method(args.type),
                 s.analysis.cam_ids)
        if args.dry_run:
            print_lines([f"{path} -> {lfn} on {', '.join(ses)}"
                         for path, lfn in upload.model_files(*model)])
            return 0
        report = upload.upload_models(s.backend, *model, ses, args.overwrite)
        print_lines([render.upload_line(report, ses)])
    return 0


def performance(args: argparse.Namespace) -> int:
    analysis = Analysis.open(args.metadata)
    validate.check_performance(analysis)
    with recorded(analysis) as store:
        report = local_steps.make_performance(analysis, payload_env(args, analysis), store)
    render.performance_report(report)
    return 0


# --- files -------------------------------------------------------------------------------------
def files_list(args: argparse.Namespace) -> int:
    for f in make_backend(args).list_directory(args.path):  # tab-separated, for scripts
        print(f"{f.lfn}\t{f.size}\t{f.checksum}\t{','.join(f.replicas)}")
    return 0


def files_put(args: argparse.Namespace) -> int:
    backend = make_backend(args)
    se = upload.storage_elements(backend, (), [args.se] if args.se else (), "--se")[0]
    if args.dry_run:
        exists = validate_lfn(args.lfn) in backend.metadata([args.lfn])
        note = " (already catalogued: replaced only with --overwrite)" if exists else ""
        print_lines([f"{args.path} -> {args.lfn} on {se}{note}"])
        return 0
    report = upload.UploadReport()
    upload.upload_file(backend, args.path, validate_lfn(args.lfn), se, report, args.overwrite)
    print_lines([f"{args.lfn}: {'uploaded' if report.uploaded else 'already there, same content'}"])
    return 0


def files_get(args: argparse.Namespace) -> int:
    return get_files(make_backend(args), args.path, args.outdir, args.workers)


def files_remove(args: argparse.Namespace) -> int:
    return remove_files(make_backend(args), args.path, args.yes, args.dry_run)


def files_filter_replicas(args: argparse.Namespace) -> int:
    kept, unknown, read = files.filter_replicas(make_backend(args), args.input_list, [args.se],
                                                args.outfile)
    print_lines([f"{len(kept)} of {read} LFN(s) have a replica on {args.se}: {args.outfile}"])
    return 0


# --- demo ---------------------------------------------------------------------------------------
def demo(args: argparse.Namespace) -> int:
    from ..workflow import demo as demo_workflow
    from .run import show

    start = time.monotonic()
    shown: dict[str, str] = {}
    result = demo_workflow.run(args.workdir, args.payload_env, args.data, args.fresh,
                               lambda text: print_lines([text]), lambda it: show(it, shown),
                               args.backend, args.pipeline)
    with existing_store(result.analysis) as store:
        render.status_table(store.jobs() if store else [])
    render.outputs_table(result.outputs)
    print_lines([f"demo finished in {time.monotonic() - start:.0f} s"])
    return 0
