"""The report's plots, drawn with matplotlib from the report's data (:mod:`.data`), each a PNG
for the page to embed. A plot with nothing to draw is None: the page says why instead."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

#: inches and dots per inch of every plot
SIZE = (6.4, 3.6)
DPI = 100
STATE_COLOURS = {"Done": "tab:green", "Failed": "tab:red", "Killed": "tab:brown",
                 "Running": "tab:cyan", "Waiting": "tab:gray", "Stalled": "tab:orange"}
PARTICLE_COLOURS = {"gamma": "tab:blue", "proton": "tab:red", "electron": "tab:green"}

Data = dict[str, Any]


def png(draw: Callable[[Axes], None]) -> bytes:
    """One figure, drawn by ``draw`` on its axes, as PNG bytes."""
    figure, axes = plt.subplots(figsize=SIZE, dpi=DPI, layout="constrained")
    try:
        draw(axes)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def job_states(timeline: Data) -> bytes | None:
    if not timeline.get("seconds"):
        return None
    unit, size = ("minutes", 60) if timeline["seconds"][-1] < 7200 else ("hours", 3600)
    moments = [s / size for s in timeline["seconds"]]

    def draw(ax: Axes) -> None:
        for state, counts in timeline["states"].items():
            ax.plot(moments, counts, label=state, color=STATE_COLOURS.get(state))
        ax.set(xlabel=f"{unit} since the first recorded state", ylabel="jobs")
        ax.legend(fontsize="small", ncols=2)
    return png(draw)


def throughput(data: Data) -> bytes | None:
    if not data.get("done"):
        return None

    def draw(ax: Axes) -> None:
        ax.bar(data["start"], data["done"], width=1.0, align="edge", color="tab:green")
        ax.set(xlabel=f"{data['unit']} of the campaign", ylabel=f"jobs Done per {data['unit']}")
    return png(draw)


def failures(overview: Data) -> bytes | None:
    """Failed attempts by class (left) and by site (right)."""
    by_class: dict[str, int] = {}
    for task in overview["tasks"]:
        for kind, count in task["failures"].items():
            by_class[kind] = by_class.get(kind, 0) + count
    by_site = {s["site"]: s["failed"] for s in overview["sites"] if s["failed"]}
    if not by_class and not by_site:
        return None

    def draw(ax: Axes) -> None:
        labels = [f"class: {k}" for k in by_class] + [f"site: {s}" for s in by_site]
        values = list(by_class.values()) + list(by_site.values())
        ax.barh(labels, values, color=["tab:red"] * len(by_class) + ["tab:orange"] * len(by_site))
        ax.set(xlabel="failed attempts")
        ax.invert_yaxis()
    return png(draw)


def site_efficiency(overview: Data) -> bytes | None:
    sites = [s for s in overview["sites"] if s["success_rate"] is not None]
    if not sites:
        return None

    def draw(ax: Axes) -> None:
        ax.bar([s["site"] for s in sites], [100 * s["success_rate"] for s in sites],
               color=["tab:red" if s["banned"] else "tab:green" for s in sites])
        ax.set(ylabel="attempts Done (%)", ylim=(0, 105))
    return png(draw)


def run_seconds(data: dict[str, list[float]]) -> bytes | None:
    if not any(data.values()):
        return None

    def draw(ax: Axes) -> None:
        ax.hist([v for v in data.values()], bins=20, stacked=True, label=list(data))
        ax.set(xlabel="seconds from Running to the end", ylabel="attempts")
        ax.legend(fontsize="small")
    return png(draw)


def dl2_histogram(dl2: Data, key: str, xlabel: str) -> bytes | None:
    shown = {p: d[key] for p, d in dl2.items() if key in d}
    if not shown:
        return None

    def draw(ax: Axes) -> None:
        for particle, hist in shown.items():
            ax.stairs(hist["counts"], hist["edges"], label=particle,
                      color=PARTICLE_COLOURS.get(particle))
        ax.set(xlabel=xlabel, ylabel="events")
        ax.legend(fontsize="small")
    return png(draw)


def against_energy(bins: Sequence[Data], series: dict[str, str], ylabel: str,
                   log_y: bool = True) -> bytes | None:
    """Values of IRF energy bins (``series``: key -> label) against energy, as steps."""
    if not bins or not any(b.get(key) is not None for b in bins for key in series):
        return None

    def draw(ax: Axes) -> None:
        edges = [b["low"] for b in bins] + [bins[-1]["high"]]
        for key, label in series.items():
            values = [b.get(key) for b in bins]
            ax.stairs([float("nan") if v is None else v for v in values], edges, label=label)
        ax.set_xscale("log")
        if log_y and any(v is not None and v > 0 for b in bins for v in
                         (b.get(key) for key in series)):
            ax.set_yscale("log")  # values all 0 (no background after the cuts) stay linear
        ax.set(xlabel="energy (TeV)", ylabel=ylabel)
        if len(series) > 1:
            ax.legend(fontsize="small")
    return png(draw)


def irf_plots(irf: Data) -> dict[str, bytes | None]:
    """Effective area, energy resolution and bias, angular resolution, background rate and
    sensitivity, against energy."""
    background = irf.get("background", {})
    background_bins = [{"low": lo, "high": hi, "rate": r} for lo, hi, r in zip(
        background.get("low", []), background.get("high", []), background.get("rate", []),
        strict=True)]
    return {
        "effective area": against_energy(irf.get("effective_area", []),
                                         {"area_m2": "effective area"}, "m²"),
        "energy resolution and bias": against_energy(
            irf.get("resolution", []), {"resolution": "resolution", "bias": "bias"},
            "resolution, bias", log_y=False),
        "angular resolution": against_energy(irf.get("resolution", []),
                                             {"angular_resolution_deg": "68 % containment"},
                                             "degrees", log_y=False),
        "background rate": against_energy(background_bins, {"rate": "background"},
                                          background.get("unit") or "rate"),
        "sensitivity": against_energy(irf.get("sensitivity", []), {"relative": "relative"},
                                      "relative to the Crab"),
    }
