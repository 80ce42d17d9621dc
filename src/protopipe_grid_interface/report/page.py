"""The report as one self-contained HTML page: inline style, plots as embedded PNGs, the data
they were drawn from embedded as JSON (``<script type="application/json" id="report-data">``);
no script runs and nothing is fetched, so it opens anywhere, offline."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any, NamedTuple

from ..text import size_text
from ..workflow.overview import counts_text
from . import plots

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; }
caption { text-align: left; font-weight: 600; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.finished { color: #1a7f37; } .blocked, .warning, .failed { color: #c62828; }
.running, .ready { color: #0b6e99; } .waiting { color: #777; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; width: 32em; max-width: 100%; }
figure img { width: 100%; } figcaption { font-size: 0.9em; color: #555; }
.empty { color: #777; font-style: italic; } pre { white-space: pre-wrap; font-size: 0.85em; }
.muted { color: #666; }
"""


def render(data: Mapping[str, Any]) -> str:
    """The page of the report's data."""
    analysis, view = data["analysis"], data["overview"]
    body = [f"<h1>Analysis {escape(analysis['name'])}</h1>",
            f"<p class='muted'>{escape(analysis['folder'])}: {escape(analysis['backend'])} "
            f"backend; report of {escape(analysis['generated'])}, from the state database and "
            "the analysis folder (<code>protopipe-grid report</code> rebuilds it)</p>",
            f"<p><strong>{escape(view['progress'])}.</strong></p>",
            *jobs_section(data), *physics_section(data), *provenance_section(data),
            "<script type='application/json' id='report-data'>"
            + json.dumps(data, default=str).replace("</", "<\\/") + "</script>"]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(analysis['name'])}: protopipe-grid report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")


# --- sections -------------------------------------------------------------------------------
def jobs_section(data: Mapping[str, Any]) -> list[str]:
    view = data["overview"]
    rows = []
    for task in view["tasks"]:
        rows.append([task["step"], task["particle"],
                     cell(task["state"], task["state"]), counts_text(task["jobs"]),
                     cell(counts_text(task["failures"]), "failed"), task["outputs_text"],
                     "" if task["state"] == "finished" else task["next"]])
    sites = [[s["site"], num(s["done"]), num(s["failed"]),
              num("" if s["success_rate"] is None else f"{s['success_rate']:.0%}"),
              cell(s["banned"], "warning")] for s in view["sites"]]
    volume = sum(t["output_bytes"] for t in view["tasks"])
    here = sum(t["downloaded_bytes"] for t in view["tasks"])
    return [
        "<h2>Jobs</h2>",
        table("The workflow", ["step", "particle", "state", "jobs", "failures", "outputs",
                               "next"], rows),
        table("Jobs by state", ["state", "jobs"],
              [[state, num(n)] for state, n in data["jobs"]["by_state"].items()]),
        f"<p>Output volume: {size_text(volume)} in the catalog, {size_text(here)} "
        "downloaded here and verified.</p>",
        table("Sites (attempts)", ["site", "done", "failed", "success", "ban"], sites)
        if sites else "<p class='empty'>No attempt has ended at a site yet.</p>",
        figures([
            ("job-states", "Job states over time", plots.job_states(data["timeline"]),
             "no state change recorded yet"),
            ("throughput", "Jobs Done over the campaign", plots.throughput(data["throughput"]),
             "no job Done yet"),
            ("failures", "Failed attempts by class and by site", plots.failures(view),
             "no failed attempt"),
            ("sites", "Attempts Done per site", plots.site_efficiency(view),
             "no attempt has ended at a site yet"),
            ("run-seconds", "Time from Running to the end, per attempt (status history; the "
             "backend's CPU time is not collected)", plots.run_seconds(data["run_seconds"]),
             "no attempt seen Running and ended")]),
    ]


def physics_section(data: Mapping[str, Any]) -> list[str]:
    results = data["results"]
    merges = [r for r in results if r["step"].startswith("merge ")]
    events = [[r["step"].removeprefix("merge "), r["particle"], r["figures"].get("file", ""),
               num(r["figures"].get("files", "")), num(r["figures"].get("showers", "")),
               ", ".join(f"{t.lstrip('/')} {n}" for t, n in
                         r["figures"].get("tables", {}).items())] for r in merges]
    dl2, irf = data["dl2"], data["irf"]
    why = irf.get("problem", "no finite value")
    irf_figures = [(f"irf-{name.replace(' ', '-')}", name.capitalize(), image,
                    irf.get("background", {}).get("problem", why)
                    if name == "background rate" else why)
                   for name, image in plots.irf_plots(irf).items()]
    return [
        "<h2>Physics</h2>",
        table("Events per particle and step (merged files)",
              ["step", "particle", "file", "files", "simulated showers", "rows"], events)
        if events else "<p class='empty'>Nothing merged yet.</p>",
        *models_tables(results),
        figures([
            ("reco-energy", "Reconstructed energy of the merged DL2 events (log10 E/TeV)",
             plots.dl2_histogram(dl2, "log_energy", "log10(reconstructed energy / TeV)"),
             "no merged DL2 file yet"),
            ("gammaness", "Gammaness of the merged DL2 events",
             plots.dl2_histogram(dl2, "gammaness", "gammaness"), "no merged DL2 file yet")]),
        "<h3>Instrument response functions</h3>",
        f"<p class='muted'>{escape(str(irf.get('irf_file', irf.get('problem', ''))))}; "
        f"pyirf's under- and overflow bins left out ({irf.get('left_out', 0)})</p>",
        figures(irf_figures),
        results_table(results),
    ]


def models_tables(results: Sequence[Mapping[str, Any]]) -> list[str]:
    tables = []
    for result in results:
        if not result["step"].startswith("model "):
            continue
        cameras = result["figures"].get("cameras", {})
        keys = sorted({k for c in cameras.values() for k, v in c.items()
                       if isinstance(v, int | float) and not isinstance(v, bool)})
        rows = [[camera, *[num(fmt(c.get(k))) for k in keys], cell(c.get("problem", ""),
                                                                   "warning")]
                for camera, c in cameras.items()]
        tables.append(table(f"{result['step'].removeprefix('model ').capitalize()} "
                            f"({result['figures'].get('method', '')}) on protopipe's test "
                            "sample", ["camera", *keys, "problem"], rows))
    return tables


def results_table(results: Sequence[Mapping[str, Any]]) -> str:
    rows = [[r["step"], r["particle"], r["recorded"][:19],
             cell("; ".join(r["warnings"]) or "none", "warning" if r["warnings"] else ""),
             f"<details><summary>figures</summary><pre>"
             f"{escape(json.dumps(r['figures'], indent=1))}</pre></details>"]
            for r in results]
    return (table("What each step recorded (warnings flagged)",
                  ["step", "particle", "recorded", "warnings", "figures"], rows, raw=(4,))
            if rows else "<p class='empty'>No step has recorded a result yet.</p>")


def provenance_section(data: Mapping[str, Any]) -> list[str]:
    software = [[name, value if isinstance(value, str) else json.dumps(value)]
                for name, value in data["software"].items()]
    commands = [[num(c["id"]), " ".join(json.loads(str(c["argv"]))), c["version"],
                 str(c["started"])[:19], str(c["finished"] or "")[:19],
                 num("" if c["exit_code"] is None else c["exit_code"])]
                for c in data["commands"]]
    return ["<h2>Provenance</h2>",
            table("Configuration files (sha256, first 16 digits, now)", ["file", "hash"],
                  [[name, f"<code>{escape(h)}</code>"] for name, h in data["configs"].items()],
                  raw=(1,)),
            table("Software", ["", "version"], software),
            table("Every command run on this analysis", ["#", "command", "version", "started",
                                                         "finished", "exit"], commands)]


# --- pieces ---------------------------------------------------------------------------------
class Cell(NamedTuple):
    """Text with a CSS class, for :func:`table`."""

    text: str
    css: str


def cell(text: str, css: str) -> Cell:
    return Cell(text, css)


def num(value: object) -> Cell:
    return cell(str(value), "num")


def fmt(value: object) -> object:
    return f"{value:.3g}" if isinstance(value, float) else ("" if value is None else value)


def table(caption: str, header: Sequence[str], rows: Iterable[Sequence[object]],
          raw: Sequence[int] = ()) -> str:
    """An HTML table; every cell escaped but those of the ``raw`` columns (already HTML)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    lines = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            css = f" class='{value.css}'" if isinstance(value, Cell) and value.css else ""
            content = value.text if isinstance(value, Cell) else str(value)
            text = content if i in raw else escape(content)
            cells.append(f"<td{css}>{text}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return (f"<table><caption>{escape(caption)}</caption><tr>{head}</tr>"
            f"{''.join(lines)}</table>")


def figures(items: Sequence[tuple[str, str, bytes | None, str]]) -> str:
    """Plots with their captions; in place of a plot with nothing to draw, why."""
    parts = []
    for ident, caption, image, why in items:
        if image is None:
            parts.append(f"<figure id='{ident}'><p class='empty'>{escape(caption)}: "
                         f"{escape(why)}</p></figure>")
            continue
        source = base64.b64encode(image).decode()
        parts.append(f"<figure><img class='plot' id='{ident}' alt='{escape(caption)}' "
                     f"src='data:image/png;base64,{source}'><figcaption>{escape(caption)}"
                     "</figcaption></figure>")
    return f"<div class='plots'>{''.join(parts)}</div>"
