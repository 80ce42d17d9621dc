"""What the performance step reads and what it found.

protopipe 0.5 normalises the IRFs of each particle as ``n_runs x num_use x num_showers``, with
``n_runs`` the number of distinct ``obs_id`` among the ``/reco_events`` rows whose ``success``
is true and the two others from ``particle_information`` in ``performance.yaml``. The truth is
in each merged DL2 file's root attributes: ``num_showers`` (simulated showers, summed by the
merge) times ``shower_reuse``. This module derives the config values from the files (a value
left null in ``performance.yaml``), refuses values that give another total, and writes the
numbers protopipe gets into a copy of ``performance.yaml`` beside the IRFs (the user's file
stays as written).

After the step it reads the IRF file protopipe wrote (FITS): per reconstructed-energy bin the
sensitivity, per true-energy bin the effective area, per reconstructed-energy bin the energy
and angular resolution; bins that are empty, NaN or infinite give warnings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..atomic import write_atomic
from ..config import read_yaml, set_yaml_values
from ..exceptions import ConfigError, DataError
from ..models import Particle
from ..store import Store

#: protopipe 0.5's template ``particle_information`` (num_use, num_showers): an example, never
#: the numbers of a real production
TEMPLATE_SHOWERS: dict[Particle, tuple[int, int]] = {
    Particle.GAMMA: (10, 20000),
    Particle.PROTON: (20, 50000),
    Particle.ELECTRON: (20, 50000),
}
SHOWER_KEYS = ("num_use", "num_showers")
#: the state database's step name of the performance results
STEP = "performance"
#: the copy of performance.yaml protopipe reads, written beside the IRFs
USED_CONFIG = "performance.used.yaml"
Number = int | float


@dataclass(frozen=True)
class SimulatedShowers:
    """What a merged DL2 file says was simulated, and its runs as protopipe counts them."""

    path: Path
    num_showers: int
    shower_reuse: int
    runs: int

    @property
    def total(self) -> int:
        """Simulated showers times their reuse: what the IRFs must be normalised to."""
        return self.num_showers * self.shower_reuse


@dataclass(frozen=True)
class Normalisation:
    """The ``num_use`` and ``num_showers`` protopipe gets for one particle, and whence."""

    particle: Particle
    files: SimulatedShowers
    num_use: Number
    num_showers: Number
    #: "derived" (from the DL2 file), "performance.yaml", or which of the two was derived
    source: str

    @property
    def product(self) -> float:
        """protopipe's ``n_runs x num_use x num_showers``, computed in protopipe's order."""
        return self.files.runs * self.num_use * self.num_showers

    def figures(self) -> dict[str, Any]:
        return {"runs": self.files.runs, "num_use": self.num_use,
                "num_showers": self.num_showers, "file_num_showers": self.files.num_showers,
                "shower_reuse": self.files.shower_reuse, "source": self.source,
                "file": str(self.files.path)}


def read_showers(path: Path) -> SimulatedShowers:
    """The root attributes ``num_showers`` and ``shower_reuse`` of a merged DL2 file, and its
    runs: distinct ``obs_id`` of the ``/reco_events`` rows with ``success`` true."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            attrs = {key: h5.attrs.get(key) for key in ("num_showers", "shower_reuse")}
            events = h5.get("reco_events")
            columns = (events.dtype.names or ()) if isinstance(events, h5py.Dataset) else ()
            if "obs_id" not in columns or "success" not in columns:
                raise DataError(f"{path}: no /reco_events table with obs_id and success columns",
                                "not a protopipe DL2 file")
            obs_id = np.asarray(events.fields("obs_id")[()])
            success = np.asarray(events.fields("success")[()]).astype(bool)
    except OSError as exc:
        raise DataError(f"{path}: not readable as HDF5 ({exc})") from None
    missing = [key for key, value in attrs.items() if value is None]
    if missing:
        raise DataError(f"{path}: no {' or '.join(missing)} root attribute",
                        "a protopipe DL2 file merged by this tool has num_showers and "
                        "shower_reuse")
    runs = len(np.unique(obs_id[success]))
    if runs == 0:
        raise DataError(f"{path}: no event with success true",
                        "protopipe counts runs from those: the IRFs cannot be normalised")
    return SimulatedShowers(Path(path), int(attrs["num_showers"]), int(attrs["shower_reuse"]),
                            runs)


def num_showers_for(total: int, runs: int, num_use: Number) -> Number:
    """The ``num_showers`` that makes protopipe's ``runs x num_use x num_showers`` equal
    ``total``: an int when one does, else a float (its product is ``total`` up to rounding,
    1e-16 relative: for some totals no float gives it exactly)."""
    factor = runs * num_use
    if isinstance(factor, int) and total % factor == 0:
        return total // factor
    return total / factor


def user_value(config: Path, particle: Particle, key: str, value: object) -> Number | None:
    """A ``particle_information`` value as written: a positive number, or None (to derive)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{config}: particle_information.{particle.value}.{key}: expected a "
                          f"positive number or null, got {value!r}",
                          "leave it null to derive it from the DL2 files")
    return value


def normalise(config: Path, particle: Particle, files: SimulatedShowers) -> Normalisation:
    """The numbers protopipe gets for ``particle``: those ``config`` has, the others derived
    from ``files``; values that give another total than the files' are refused."""
    written: object = read_yaml(config)
    for key in ("particle_information", particle.value):
        written = written.get(key) if isinstance(written, dict) else None
    if not isinstance(written, dict):
        raise ConfigError(f"{config}: particle_information.{particle.value}: not found",
                          "protopipe's performance.yaml template has it")
    num_use, num_showers = (user_value(config, particle, key, written.get(key))
                            for key in SHOWER_KEYS)
    if num_use is None and num_showers is None:
        return Normalisation(particle, files, files.shower_reuse,
                             num_showers_for(files.total, files.runs, files.shower_reuse),
                             "derived")
    if num_use is None:
        assert num_showers is not None
        return Normalisation(particle, files, files.total / (files.runs * num_showers),
                             num_showers, "num_showers from performance.yaml, num_use derived")
    if num_showers is None:
        return Normalisation(particle, files, num_use,
                             num_showers_for(files.total, files.runs, num_use),
                             "num_use from performance.yaml, num_showers derived")
    normalisation = Normalisation(particle, files, num_use, num_showers, "performance.yaml")
    if not math.isclose(normalisation.product, files.total, rel_tol=1e-9):
        template = ("; these are protopipe's template numbers, not your production's"
                    if (num_use, num_showers) == TEMPLATE_SHOWERS[particle] else "")
        raise ConfigError(
            f"{config}: particle_information.{particle.value}: n_runs x num_use x num_showers "
            f"= {files.runs} x {count(num_use)} x {count(num_showers)} = "
            f"{count(normalisation.product)}, but "
            f"{files.path} has num_showers x shower_reuse = {files.num_showers} x "
            f"{files.shower_reuse} = {files.total}{template}",
            "set num_use and num_showers to null to derive them from the DL2 files")
    return normalisation


def write_used_config(config: Path, normalisations: Sequence[Normalisation],
                      output: Path) -> Path:
    """A copy of ``config`` with the ``num_use`` and ``num_showers`` protopipe must use."""
    document = read_yaml(config)
    for n in normalisations:
        document["particle_information"][n.particle.value].update(
            num_use=n.num_use, num_showers=n.num_showers)
    header = (f"# written by protopipe-grid-interface from {config}: particle_information's "
              "num_use and num_showers as used for the IRFs (see the merged DL2 files)\n")
    write_atomic(output, header + yaml.safe_dump(document, sort_keys=False))
    return output


def prepare(config: Path, dl2_files: Mapping[Particle, Path], output: Path
            ) -> list[Normalisation]:
    """Normalise every particle from its merged DL2 file; write the config protopipe reads."""
    normalisations = [normalise(config, particle, read_showers(path))
                      for particle, path in dl2_files.items()]
    write_used_config(config, normalisations, output)
    return normalisations


def null_shower_counts(config: Path) -> bool:
    """Set ``num_use`` and ``num_showers`` of every particle to null in a new analysis'
    ``performance.yaml`` (comments kept), so that they are derived from its DL2 files."""
    document = read_yaml(config)
    section = document.get("particle_information") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        return False
    keys: dict[tuple[str, ...], object] = {("particle_information", str(particle), key): None
            for particle, values in section.items() if isinstance(values, dict)
            for key in SHOWER_KEYS if key in values}
    return set_yaml_values(config, keys)


# --- the IRF summary ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EnergyBin:
    """One energy bin (TeV) and the values read in it (NaN and inf kept as read)."""

    low: float
    high: float
    values: dict[str, float]


@dataclass
class IrfSummary:
    """The IRF file's figures per energy bin, the warnings they give, and how many pyirf
    under- and overflow bins (low edge 0 or high edge inf) were left out."""

    path: Path
    sensitivity: list[EnergyBin]
    effective_area: list[EnergyBin]
    resolution: list[EnergyBin]
    left_out: int
    warnings: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        """JSON-able figures (NaN and inf as null: the warnings say which)."""
        def table(bins: list[EnergyBin]) -> list[dict[str, float | None]]:
            return [{"low": b.low, "high": b.high,
                     **{k: v if math.isfinite(v) else None for k, v in b.values.items()}}
                    for b in bins]
        return {"irf_file": str(self.path), "sensitivity": table(self.sensitivity),
                "effective_area": table(self.effective_area),
                "resolution": table(self.resolution), "left_out": self.left_out}


#: columns of SENSITIVITY read, with the names the summary gives them
SENSITIVITY_COLUMNS = {"flux_sensitivity": "flux", "relative_sensitivity": "relative",
                       "n_signal": "n_signal", "n_signal_weighted": "n_signal_weighted",
                       "n_background": "n_background",
                       "n_background_weighted": "n_background_weighted"}


def summarise(path: Path) -> IrfSummary:
    """Read protopipe's IRF file: the figures per bin, and warnings for bad bins."""
    from astropy.io import fits

    try:
        hdus = fits.open(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable as FITS ({exc})") from None
    with hdus:
        def data(name: str) -> Any:
            if name not in hdus:
                raise DataError(f"{path}: no {name} HDU",
                                "protopipe-DL3-EventDisplay 0.5 writes it")
            return hdus[name].data

        sens = data("SENSITIVITY")
        sensitivity = rows(sens["reco_energy_low"], sens["reco_energy_high"],
                           {name: sens[column] for column, name in SENSITIVITY_COLUMNS.items()})
        area = data("EFFECTIVE AREA")
        low, high = np.ravel(area["ENERG_LO"][0]), np.ravel(area["ENERG_HI"][0])
        first_offset = np.asarray(area["EFFAREA"][0]).reshape(-1, len(low))[0]
        effective_area = rows(low, high, {"area_m2": first_offset})
        bias, angular = data("ENERGY_BIAS_RESOLUTION"), data("ANGULAR_RESOLUTION")
        if not np.array_equal(bias["reco_energy_low"], angular["reco_energy_low"]):
            raise DataError(f"{path}: ENERGY_BIAS_RESOLUTION and ANGULAR_RESOLUTION have "
                            "different energy bins")
        resolution = rows(bias["reco_energy_low"], bias["reco_energy_high"],
                          {"bias": bias["bias"], "resolution": bias["resolution"],
                           "angular_resolution_deg": angular["angular_resolution"]})
    left_out = sum(len(table) - len(kept) for table, kept in (
        (sensitivity, analysis_bins(sensitivity)), (effective_area, analysis_bins(effective_area)),
        (resolution, analysis_bins(resolution))))
    summary = IrfSummary(Path(path), analysis_bins(sensitivity), analysis_bins(effective_area),
                         analysis_bins(resolution), left_out)
    summary.warnings = bad_bins(summary)
    return summary


def rows(low: Any, high: Any, columns: Mapping[str, Any]) -> list[EnergyBin]:
    """Energy bins from columns of equal length."""
    return [EnergyBin(float(lo), float(hi), {name: float(values[i])
                                             for name, values in columns.items()})
            for i, (lo, hi) in enumerate(zip(low, high, strict=True))]


def analysis_bins(bins: list[EnergyBin]) -> list[EnergyBin]:
    """The bins of the analysis: pyirf's underflow (low edge 0) and overflow (high edge inf)
    bins left out."""
    return [b for b in bins if b.low > 0 and math.isfinite(b.high)]


def bad_bins(summary: IrfSummary) -> list[str]:
    """One warning per table and kind of bad bin, naming the energy ranges."""
    checks: list[tuple[str, list[EnergyBin], str, str]] = [
        ("sensitivity", summary.sensitivity, "flux", ""),
        ("sensitivity", summary.sensitivity, "n_background", "background"),
        ("effective area", summary.effective_area, "area_m2", "area"),
        ("energy resolution", summary.resolution, "resolution", ""),
        ("angular resolution", summary.resolution, "angular_resolution_deg", ""),
    ]
    warnings = []
    for table, bins, column, zero in checks:
        kinds: dict[str, list[EnergyBin]] = {}
        for b in bins:
            value = b.values[column]
            if math.isnan(value):
                kinds.setdefault("NaN", []).append(b)
            elif math.isinf(value):
                kinds.setdefault("infinite", []).append(b)
            elif value == 0 and zero:
                kinds.setdefault(ZERO_MEANS[zero], []).append(b)
        for kind, found in kinds.items():
            warnings.append(f"{table}: {kind} in {len(found)} of {len(bins)} bins "
                            f"({energy_ranges(found)})")
    return warnings


#: what a zero means, for the columns where it is a problem
ZERO_MEANS = {"background": "no background event after the cuts",
              "area": "empty (no gamma after the cuts)"}


def energy_ranges(bins: Sequence[EnergyBin]) -> str:
    """Contiguous bins as ranges: ``0.0126-0.316, 1-2 TeV``."""
    spans: list[list[float]] = []
    for b in bins:
        if spans and math.isclose(spans[-1][1], b.low):
            spans[-1][1] = b.high
        else:
            spans.append([b.low, b.high])
    return ", ".join(f"{lo:.3g}-{hi:.3g}" for lo, hi in spans) + " TeV"


def record(store: Store, summary: IrfSummary, normalisations: Sequence[Normalisation]) -> None:
    """Keep the summary, its warnings and the normalisation used in the state database."""
    figures = summary.figures()
    figures["normalisation"] = {n.particle.value: n.figures() for n in normalisations}
    store.record_result(STEP, "", figures, summary.warnings)


def count(value: float) -> str:
    """A number of showers as people read it: whole numbers whole, others in 7 digits."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.7g}"


def normalisation_line(n: Normalisation) -> str:
    """How one particle's IRFs were normalised, in a line."""
    return (f"{n.particle.value}: {n.files.runs} run(s) x num_use {count(n.num_use)} x "
            f"num_showers {count(n.num_showers)} = {count(n.product)} = {n.files.num_showers} "
            "simulated showers x "
            f"shower_reuse {n.files.shower_reuse} ({n.source}; {n.files.path.name})")


def overview_lines(summary: IrfSummary) -> list[str]:
    """The summary in a few lines: each table's bins and range, then the warnings."""
    lines = []
    for table, bins in (("sensitivity", summary.sensitivity),
                        ("effective area", summary.effective_area),
                        ("resolution", summary.resolution)):
        span = f"{bins[0].low:.3g}-{bins[-1].high:.3g} TeV" if bins else "no bin"
        lines.append(f"{table}: {len(bins)} bins, {span}")
    lines += [f"WARNING {warning}" for warning in summary.warnings] or ["no empty, NaN or "
                                                                        "infinite bin"]
    lines.append(footnote(summary))
    return lines


def footnote(summary: IrfSummary) -> str:
    return (f"{summary.left_out} pyirf under/overflow bin(s) (low edge 0 or high edge inf) "
            "are not bins of the analysis and are left out")

