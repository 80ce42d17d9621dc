"""Tables people read: plans, job states, summaries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from rich.table import Table

from ..models import JobStatus, Particle, RemoteFile, Stage
from ..paths import AnalysisTree
from ..store import JobRecord
from ..text import duration_text
from ..workflow import performance
from ..workflow.canary import CanaryPlan
from ..workflow.collect import CollectReport, MergeResult
from ..workflow.local_steps import PerformanceReport
from ..workflow.plan import is_canary
from ..workflow.results import ClassifierScore, ModelResult, RegressorScore
from ..workflow.split import StageList
from ..workflow.submit import PlannedJob, SubmitReport
from ..workflow.track import UNCONFIRMED_LIMIT, Stuck
from ..workflow.upload import UploadReport
from ..workflow.verify import FileCheck, Verdict, VerifyReport
from .common import console, print_lines

#: rows of the table of bad files shown on a terminal (--json has them all)
MAX_BAD_ROWS = 50
VERDICT_STYLE = {Verdict.OK: "green", Verdict.MISSING: "red", Verdict.WRONG_SIZE: "red",
                 Verdict.WRONG_CHECKSUM: "red", Verdict.EXTRA: "yellow"}
STATUS_STYLE = {"Done": "green", "Failed": "red", "Killed": "red", "Running": "cyan",
                "Waiting": "yellow", "Planned": "dim"}


def plan_table(planned: Sequence[PlannedJob], backend: str) -> None:
    """The whole plan: every job, its files, its output, what a submission would do."""
    table = Table(title=f"plan: {plural(len(planned), 'job')} on the {backend} backend")
    for column in ("job", "files", "first input", "output LFN", "now"):
        table.add_column(column, overflow="fold")
    for job in planned:
        spec = job.spec
        table.add_row(spec.name, str(len(spec.input_lfns)), spec.input_lfns[0], spec.output_lfn,
                      job.state)
    console.print(table)
    if planned:
        specs = [job.spec for job in planned]
        extra = sorted({lfn for spec in specs for lfn in spec.input_data})
        print_lines([f"steps per job: up to {max(len(s.steps) for s in specs)}; input data "
                     f"besides simulations: {', '.join(extra) or 'none'}; output SE: "
                     f"{specs[0].output_se}; CPU time: {specs[0].cpu_time} s",
                     f"{sum(job.to_submit for job in planned)} job(s) would be submitted"])


def canary_plan_line(plan: CanaryPlan) -> str:
    """What a submission does before the stage: its canary, or why none runs."""
    if plan.canary is None:
        return plan.reason
    job = plan.canary
    return (f"a canary runs first ({plan.reason}): {job.name} on {job.input_lfns[0]}; the "
            "stage is submitted only if its output is good")


def legacy_plan_lines(planned: Sequence[PlannedJob], stage: Stage, particle: Particle,
                      backend: str, files_per_job: int) -> list[str]:
    """``protopipe-SUBMIT_JOBS --dry``: the whole plan, a line per job."""
    specs = [job.spec for job in planned]
    lines = ["This is a DRY RUN! -- NO job has been submitted!",
             f"plan: {stage.value} {particle.value}, {len(specs)} job(s) for "
             f"{sum(len(s.input_lfns) for s in specs)} file(s) (at most {files_per_job} per "
             f"job) on the {backend} backend"]
    lines += [f"  {job.spec.name}: {len(job.spec.input_lfns)} file(s) from "
              f"{job.spec.input_lfns[0]} -> {job.spec.output_lfn} "
              f"[{job.state if job.to_submit else job.state + ': skipped'}]" for job in planned]
    if specs:
        extra = sorted({lfn for spec in specs for lfn in spec.input_data})
        lines += [f"input data besides simulations: {', '.join(extra) or 'none'}",
                  f"output SE: {specs[0].output_se}; CPU time per job: {specs[0].cpu_time} s; "
                  f"banned sites: {', '.join(specs[0].banned_sites) or 'none'}"]
    return lines


def submit_line(stage: Stage, report: SubmitReport) -> str:
    """What a submission did."""
    confirmed = f", {report.confirmed} unconfirmed job(s) confirmed" if report.confirmed else ""
    return (f"{stage.value}: {len(report.submitted)} submitted, {report.skipped_existing} "
            f"skipped (output exists), {report.already_submitted} already submitted, "
            f"{report.recovered} recovered from an interrupted run{confirmed}")


def upload_line(report: UploadReport, ses: Sequence[str]) -> str:
    return (f"{len(report.uploaded)} uploaded, {len(report.unchanged)} unchanged, "
            f"{len(report.replicated)} replica(s) made on {', '.join(ses)}")


def created_lines(tree: AnalysisTree) -> list[str]:
    """A new analysis, what to fill in before its first submission, and the next step (a
    ctapipe analysis has no analysis.yaml: its grid.yaml's Ctapipe section instead)."""
    protopipe = (tree.configs / "analysis.yaml").is_file()
    fill = (f"{tree.configs / 'analysis.yaml'} (General: production, site, array, cam_id_list; "
            "the models' method_name) and " if protopipe else "")
    more = "Software" if protopipe else "Software; Ctapipe: the production's CTADIRAC keys"
    return [f"analysis created: {tree.root}",
            f"before submitting, fill in {fill}{tree.grid_config} (GRID: upload_sites, "
            f"output_se; {more})",
            f"next: protopipe-grid dataset split -m {tree.metadata_file} --gammas G.list "
            "--protons P.list --electrons E.list" + ("" if protopipe else
                                                     f", or dataset split-catalog -m "
                                                     f"{tree.metadata_file} --path P")]


def dump_table(files: Sequence[RemoteFile], per_se: Counter[str], output: Path) -> None:
    """A dataset dump: files per storage element, and where the lists went."""
    table = Table(title=f"{plural(len(files), 'file')}, "
                        f"{sum(f.size for f in files) / 1e6:.1f} MB")
    table.add_column("storage element")
    table.add_column("replicas", justify="right")
    for se, count in per_se.most_common():
        table.add_row(se, str(count))
    console.print(table)
    print_lines([f"list: {output}; replicas: {output}.replicas"])


def outputs_table(outputs: Mapping[str, Path]) -> None:
    table = Table(title="outputs")
    table.add_column("what")
    table.add_column("where", overflow="fold")
    for what, path in outputs.items():
        table.add_row(what, str(path))
    console.print(table)


def status_table(records: Sequence[JobRecord]) -> None:
    """Jobs per stage (a stage's canary jobs on a row of their own), particle and state."""
    counts = Counter((f"{r.stage.value} canary" if is_canary(r.name) else r.stage.value,
                      r.particle.value, r.status.value) for r in records)
    states = sorted({state for _, _, state in counts})
    table = Table(title="jobs by stage, particle and state")
    table.add_column("stage")
    table.add_column("particle")
    for state in states:
        table.add_column(state, justify="right", style=STATUS_STYLE.get(state))
    table.add_column("total", justify="right")
    for stage, particle in sorted({(s, p) for s, p, _ in counts}):
        row = [counts.get((stage, particle, state), 0) for state in states]
        table.add_row(stage, particle, *[str(n) if n else "" for n in row], str(sum(row)))
    console.print(table)


def collect_lines(reports: Sequence[CollectReport]) -> list[str]:
    """Per particle: outputs, what was fetched, what failed, the merge."""
    lines = []
    for r in reports:
        waiting = f"; {plural(r.unfinished, 'job')} not finished yet" if r.unfinished else ""
        lines.append(f"{r.particle.value}: {len(r.download.fetched)} fetched, "
                     f"{len(r.download.present)} already present, {len(r.download.failed)} "
                     f"failed -> {r.outdir}{waiting}")
        lines += [f"  FAILED {lfn}: {problem}" for lfn, problem in r.download.failed.items()]
        lines += merge_lines([r.merged] if r.merged else [])
    return lines


def merge_lines(results: Sequence[MergeResult]) -> list[str]:
    """Each merged file, its inputs and simulated showers, and what the merge noted."""
    lines = []
    for m in results:
        done = "up to date" if m.up_to_date else "merged"
        lines.append(f"{m.path}: {m.files} of {m.inputs} file(s) {done}, {m.showers} simulated "
                     f"showers; {rows_text(m.tables)}")
        lines += [f"  note: {note}" for note in m.notes]
        lines += warning_lines(m.warnings)
    return lines


def rows_text(tables: Mapping[str, int]) -> str:
    """``rows: LSTCam 2366, NectarCam 2044`` (table paths without the root's slash)."""
    if not tables:
        return "no table"
    return "rows: " + ", ".join(f"{name.lstrip('/')} {rows}" for name, rows in tables.items())


def warning_lines(warnings: Sequence[str]) -> list[str]:
    return [f"  WARNING: {warning}" for warning in warnings]


def performance_report(report: PerformanceReport) -> None:
    """The performance step: how each particle was normalised, the IRF summary, warnings."""
    print_lines([f"IRFs: {report.irf}", f"normalisation (protopipe read {report.config}):"]
                + [f"  {performance.normalisation_line(n)}" for n in report.normalisations])
    irf_tables(report.summary)


def irf_tables(summary: performance.IrfSummary) -> None:
    """Sensitivity per reconstructed-energy bin, effective area per true-energy bin, energy
    and angular resolution per reconstructed-energy bin; then the warnings and a footnote."""
    sensitivity = Table(title="sensitivity (reconstructed energy)")
    for column in ("E (TeV)", "flux (cm-2 s-1 TeV-1)", "relative to Crab", "signal",
                   "background"):
        sensitivity.add_column(column, justify="right")
    for b in summary.sensitivity:
        v = b.values
        sensitivity.add_row(energy_text(b), number(v["flux"]), number(v["relative"]),
                            f"{number(v['n_signal'])} ({number(v['n_signal_weighted'])})",
                            f"{number(v['n_background'])} "
                            f"({number(v['n_background_weighted'])})")
    console.print(sensitivity)
    area = Table(title="effective area (true energy, first offset bin)")
    for column in ("E (TeV)", "area (m2)"):
        area.add_column(column, justify="right")
    for b in summary.effective_area:
        area.add_row(energy_text(b), number(b.values["area_m2"]))
    console.print(area)
    resolution = Table(title="resolution (reconstructed energy)")
    for column in ("E (TeV)", "energy bias", "energy resolution", "angular resolution (deg)"):
        resolution.add_column(column, justify="right")
    for b in summary.resolution:
        v = b.values
        resolution.add_row(energy_text(b), number(v["bias"]), number(v["resolution"]),
                           number(v["angular_resolution_deg"]))
    console.print(resolution)
    print_lines([f"WARNING {warning}" for warning in summary.warnings]
                + ["counts: unweighted (weighted to the observation time)",
                   performance.footnote(summary)])


def energy_text(b: performance.EnergyBin) -> str:
    return f"{b.low:.3g}-{b.high:.3g}"




def plural(count: int, noun: str) -> str:
    """``1 job``, ``2 jobs``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def split_lines(results: Sequence[tuple[StageList, bool]]) -> list[str]:
    """One line per list a split wrote: its path, its size, whether grid.yaml names it."""
    return [f"{stage_list.path}: {len(stage_list.lfns)} file(s)"
            + (" (set in grid.yaml)" if named else "") for stage_list, named in results]


def status_line(records: Sequence[JobRecord]) -> str:
    """One line for logs: the time, then how many jobs are in each state."""
    counts = Counter(r.status for r in records)
    states = ", ".join(f"{counts[s]} {s.value}" for s in JobStatus if counts[s])
    return f"{datetime.now().strftime('%H:%M:%S')} {len(records)} job(s): {states}"


def names_text(records: Sequence[JobRecord], shown: int = 5) -> str:
    """The first ``shown`` job names, and how many more."""
    names = ", ".join(r.name for r in records[:shown])
    return names + (f" and {len(records) - shown} more" if len(records) > shown else "")


def stuck_lines(cause: Stuck, records: Sequence[JobRecord], metadata: Path,
                stuck_after: float) -> list[str]:
    """One line per stage: which jobs cannot progress, and the command that moves them on."""
    lines = []
    for stage in sorted({r.stage for r in records}):
        mine = [r for r in records if r.stage == stage]
        states = ", ".join(sorted({f"{r.status.value} / {r.minor_status}".rstrip(" /")
                                   for r in mine}))
        submit = f"protopipe-grid jobs submit -m {metadata} --stage {stage.value}"
        if cause == Stuck.NOT_SUBMITTED:
            what, todo = "not submitted yet", f"submit them: {submit}"
        elif cause == Stuck.UNCONFIRMED:
            what = (f"created by an interrupted submission and never confirmed "
                    f"(for more than {duration_text(min(stuck_after, UNCONFIRMED_LIMIT))})")
            todo = f"confirm them: {submit}"
        else:
            what = f"without a change of state for more than {duration_text(stuck_after)}"
            todo = (f"look at them (protopipe-grid jobs status -m {metadata}), then kill and "
                    "resubmit them (jobs kill, jobs resubmit)")
        lines.append(f"{len(mine)} {stage.value} job(s) {what} ({states}): {names_text(mine)}; "
                     f"{todo}")
    return lines


def failures_table(records: Sequence[JobRecord], tails: dict[str, str]) -> None:
    """Failed jobs with their statuses and the end of their log."""
    table = Table(title="failed jobs")
    for column in ("job", "id", "minor status", "application status", "log tail"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(r.name, str(r.backend_id), r.minor_status, r.application_status,
                      tails.get(r.name, ""))
    console.print(table)


def records_json(records: Sequence[JobRecord]) -> str:
    return json.dumps([{
        "name": r.name, "stage": r.stage.value, "particle": r.particle.value,
        "backend": r.backend, "backend_id": r.backend_id, "status": r.status.value,
        "minor_status": r.minor_status, "application_status": r.application_status,
        "site": r.site, "attempts": r.attempts, "output_lfn": r.spec.output_lfn,
        "output_size": r.output_size, "output_checksum": r.output_checksum,
    } for r in records], indent=2)


def verify_tables(reports: Sequence[VerifyReport]) -> None:
    """Verdicts per checked folder, then every bad or extra file (the first MAX_BAD_ROWS)."""
    table = Table(title="downloaded files against the catalog")
    table.add_column("set")
    table.add_column("folder", overflow="fold")
    table.add_column("in catalog", justify="right")
    for verdict in Verdict:
        table.add_column(verdict.value, justify="right", style=VERDICT_STYLE[verdict])
    for report in reports:
        counts = report.counts
        table.add_row(report.label, str(report.folder), str(report.catalogued),
                      *[str(counts[v]) if counts[v] else "" for v in Verdict])
    console.print(table)
    problems = [(report.label, check) for report in reports
                for check in report.bad + report.extra]
    if not problems:
        return
    table = Table(title="files that are not ok")
    for column in ("set", "file", "state", "expected", "found"):
        table.add_column(column, overflow="fold")
    for label, check in problems[:MAX_BAD_ROWS]:
        table.add_row(label, check.path.name, check.verdict.value, expected_text(check),
                      found_text(check), style=VERDICT_STYLE[check.verdict])
    console.print(table)
    if len(problems) > MAX_BAD_ROWS:
        console.print(f"... and {len(problems) - MAX_BAD_ROWS} more (--json lists them all)",
                      markup=False)


def expected_text(check: FileCheck) -> str:
    if check.lfn is None:
        return ""
    return f"{check.expected_size} B, adler32 {check.expected_checksum}"


def found_text(check: FileCheck) -> str:
    if check.verdict == Verdict.MISSING:
        return "no file"
    found = f"{check.size} B"
    return f"{found}, adler32 {check.checksum}" if check.checksum else found


def verify_json(reports: Sequence[VerifyReport]) -> str:
    return json.dumps({
        "complete": all(r.complete for r in reports),
        "sets": [{
            "label": r.label, "folder": str(r.folder), "source": r.source,
            "catalogued": r.catalogued, "complete": r.complete,
            "counts": {verdict.value: n for verdict, n in r.counts.items()},
            "files": [{
                "path": str(c.path), "state": c.verdict.value, "lfn": c.lfn,
                "expected_size": c.expected_size, "size": c.size,
                "expected_adler32": c.expected_checksum, "adler32": c.checksum,
            } for c in r.checks],
        } for r in reports],
    }, indent=2)


def model_table(result: ModelResult) -> None:
    """A model's scores per camera, on protopipe's test sample."""
    table = Table(title=f"{result.model_type} ({result.method}) on protopipe's test sample")
    classifier = result.model_type == "classifier"
    columns = (("camera", "test images (signal/bkg)", "accuracy", "precision signal/bkg",
                "recall signal/bkg", "ROC AUC") if classifier else
               ("camera", "test images", "energy bias", "energy resolution (68 %)"))
    for column in columns:
        table.add_column(column, justify="left" if column == "camera" else "right")
    for score in result.scores:
        warned = "red" if score.warnings() else None
        if isinstance(score, ClassifierScore):
            table.add_row(score.camera, classifier_size(score), number(score.accuracy, ".2f"),
                          pair(score.precision), pair(score.recall), number(score.auc, ".3f"),
                          style=warned)
        elif isinstance(score, RegressorScore):
            table.add_row(score.camera, number(score.test_size, "d"), number(score.bias, "+.1%"),
                          number(score.resolution, ".1%"), style=warned)
    console.print(table)


def model_verdict_lines(result: ModelResult) -> list[str]:
    """The model's warnings, then whether it looks usable (warnings never fail the step)."""
    if not result.warnings:
        return [f"{result.model_type}: no warning"]
    return [*warning_lines(result.warnings),
            f"{result.model_type} built, with {plural(len(result.warnings), 'warning')}: "
            "look at them before using it"]


def classifier_size(score: ClassifierScore) -> str:
    if score.test_size is None:
        return "-"
    if score.test_signal is None:
        return str(score.test_size)
    return f"{score.test_size} ({score.test_signal}/{score.test_background})"


def number(value: float | None, spec: str = ".3g") -> str:
    """``value`` formatted (3 significant digits by default; NaN and inf as they are), or
    ``-`` when it is unknown."""
    return "-" if value is None else format(value, spec)


def pair(by_class: Mapping[str, float]) -> str:
    """A signal/background pair of scores."""
    return "/".join(number(by_class.get(name), ".2f") for name in ("signal", "background"))
