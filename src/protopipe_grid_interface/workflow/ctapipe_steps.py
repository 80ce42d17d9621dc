"""The ctapipe 0.32 tool chain, one function per step, run on this machine.

The order the chain must follow (each step reads what the one before wrote):

1. :func:`process` each simulation file (``PROCESS_CONFIGS``: DL1 parameters + DL2 geometry),
   each with its own obs_id, then :func:`merge` them per particle and split;
2. :func:`train_energy` on the gammas of the energy-training split;
3. :func:`apply_models` with the energy model to the gammas and protons of the
   classifier-training split: the classifier's features include the reconstructed energy
   (``<regressor>_energy``, ``<regressor>_tel_energy``), so ctapipe 0.32 refuses raw files;
4. :func:`train_classifier` on those two energy-applied files;
5. :func:`apply_models` with both models to the test gammas, protons and electrons;
6. :func:`optimise_and_irf`: the cuts from the three test files, then the IRFs with them.

Every tool runs in the payload environment through ``payload/ctapipe_job.py`` (caches and
HOME in ``workdir``, one thread), its output and error in ``<output>.log``, its provenance
in ``<output>.provenance.log``. Outputs appear
whole or not at all: the tool writes ``<stem>.part<extension>`` (ctapipe checks extensions),
renamed when it succeeds; an existing output is replaced. A failed tool is a PayloadError
naming its log and its error line. Each ``*_argv`` function is the tool's argument list for
a grid job step (``python ctapipe_job.py <argv>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_all, write_with
from ..exceptions import InputError, PayloadError
from .ctapipe_configs import (
    CLASSIFIER_CONFIG,
    ENERGY_CONFIG,
    IRF_CONFIG,
    OPTIMISE_CONFIG,
    PROCESS_CONFIGS,
    model_prefixes,
)
from .local_steps import PAYLOAD_SCRIPTS, run_payload

JOB_SCRIPT = PAYLOAD_SCRIPTS / "ctapipe_job.py"
ENLARGE_SCRIPT = PAYLOAD_SCRIPTS / "ctapipe_enlarge.py"
CUTS_FILE = "cuts.fits"  # optimize-event-selection cannot write .fits.gz
IRF_FILE = "irf.fits.gz"
BENCHMARKS_FILE = "benchmarks.fits.gz"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ERROR_LINE = re.compile(r"\b(CRITICAL|ERROR)\b|^\s*\w*(Error|Exception)\b")
GENERIC = ("Caught SystemExit", "Use --help", "Traceback")
LOG_PREFIX = re.compile(r"^\S+ \S+ (CRITICAL|ERROR)\s+\[[^]]*\] \([^)]*\): ")
CV_TYPE = re.compile(r"for type (\S+?)\.?$")
CV_SCORE = re.compile(r"Mean (ROC AUC|R\^2) score from CV: ([-0-9.]+)")


@dataclass(frozen=True)
class IrfFiles:
    """What :func:`optimise_and_irf` wrote: the cuts, the IRFs, the benchmarks (if any)."""

    cuts: Path
    irf: Path
    benchmarks: Path | None


# --- argument lists (a grid job step is ``python ctapipe_job.py <argv>``) ------------------

def process_argv(configs: Sequence[Path], input: Path, output: Path,
                 obs_id: int | None = None) -> list[str]:
    """``ctapipe-process`` of one simulation file; ``obs_id`` replaces the file's run number
    (ctapipe-merge refuses two inputs with one obs_id)."""
    argv = ["ctapipe-process", *config_args(configs), "--input", str(input),
            "--output", str(output), "--no-progress", "--overwrite"]
    if obs_id is not None:
        argv.append(f"--SimTelEventSource.override_obs_id={obs_id}")
    return argv


def merge_argv(inputs: Sequence[Path], output: Path, images: bool = False) -> list[str]:
    """``ctapipe-merge``; without ``images`` the DL1 and true images are left out."""
    argv = ["ctapipe-merge", "--output", str(output), "--overwrite"]
    if not images:
        argv += ["--no-dl1-images", "--no-true-images"]
    return [*argv, *map(str, inputs)]


def train_energy_argv(configs: Path, gamma: Path, output: Path) -> list[str]:
    """``ctapipe-train-energy-regressor``; INFO logs hold the cross-validation scores."""
    return ["ctapipe-train-energy-regressor", "--config", str(Path(configs) / ENERGY_CONFIG),
            "--input", str(gamma), "--output", str(output), "--log-level", "INFO",
            "--overwrite"]


def train_classifier_argv(configs: Path, gamma: Path, proton: Path, output: Path
                          ) -> list[str]:
    """``ctapipe-train-particle-classifier`` on energy-applied gammas and protons."""
    return ["ctapipe-train-particle-classifier", "--config",
            str(Path(configs) / CLASSIFIER_CONFIG), "--signal", str(gamma),
            "--background", str(proton), "--output", str(output), "--log-level", "INFO",
            "--overwrite"]


def apply_models_argv(input: Path, output: Path, models: Sequence[Path],
                      parameters: bool = True) -> list[str]:
    """``ctapipe-apply-models``; without ``parameters`` the output keeps no DL1 or true
    parameters (all the optimisation and IRF tools need is DL2 and the simulation)."""
    argv = ["ctapipe-apply-models", "--input", str(input), "--output", str(output),
            *[f"--reconstructor={model}" for model in models], "--no-progress", "--overwrite"]
    if not parameters:
        argv += ["--no-dl1-parameters", "--no-true-parameters"]
    return argv


def optimise_argv(configs: Path, gamma: Path, proton: Path, electron: Path, output: Path
                  ) -> list[str]:
    """``ctapipe-optimize-event-selection``: gamma/hadron and direction cuts."""
    return ["ctapipe-optimize-event-selection", "--config",
            str(Path(configs) / OPTIMISE_CONFIG), "--gamma-file", str(gamma),
            "--proton-file", str(proton), "--electron-file", str(electron),
            "--output", str(output), "--overwrite"]


def irf_argv(configs: Path, cuts: Path, gamma: Path, proton: Path, electron: Path,
             output: Path, benchmarks: Path | None = None) -> list[str]:
    """``ctapipe-compute-irf`` with the background from protons and electrons."""
    argv = ["ctapipe-compute-irf", "--config", str(Path(configs) / IRF_CONFIG),
            "--cuts", str(cuts), "--gamma-file", str(gamma), "--proton-file", str(proton),
            "--electron-file", str(electron), "--do-background", "--output", str(output),
            "--overwrite"]
    if benchmarks is not None:
        argv += ["--benchmark-output", str(benchmarks)]
    return argv


def config_args(configs: Sequence[Path]) -> list[str]:
    return [arg for config in configs for arg in ("--config", str(config))]


# --- local steps ------------------------------------------------------------------------------

def process(env: Path, configs: Path, input: Path, output: Path, *, workdir: Path,
            obs_id: int | None = None) -> Path:
    """DL1 parameters and DL2 geometry of one simulation file, with ``PROCESS_CONFIGS`` of
    the ``configs`` folder."""
    files = [Path(configs) / name for name in PROCESS_CONFIGS]
    require(*files, input)
    return run_tool(env, lambda out: process_argv(files, input, out, obs_id), output,
                    workdir)


def merge(env: Path, inputs: Sequence[Path], output: Path, *, workdir: Path,
          images: bool = False) -> Path:
    """One file of several ctapipe files (distinct obs_ids, one subarray)."""
    if not inputs:
        raise InputError(f"{output}: nothing to merge")
    require(*inputs)
    return run_tool(env, lambda out: merge_argv(inputs, out, images), output, workdir)


def enlarge(env: Path, source: Path, output: Path, *, particle: str, events: int, seed: int,
            workdir: Path, obs_id: int | None = None,
            energy_range: tuple[float, float] | None = None, spectral_index: float = -1.5,
            viewcone: tuple[float, float] | None = None, jitter: float | None = None,
            hadron_widening: float | None = None) -> Path:
    """A demo stand-in, NOT PHYSICS: ``events`` clones of the real events of ``source`` as
    ``particle`` (``payload/ctapipe_enlarge.py`` says how), in one run ``obs_id`` (default
    10000 + ``seed``). Defaults of the energy range (TeV) and viewcone (deg): gammas
    0.05-10 point-like, electrons 0.05-10 within 0-6, protons 0.1-20 within 0-6."""
    if particle not in ("gamma", "proton", "electron"):
        raise InputError(f"particle {particle!r}: expected gamma, proton or electron")
    require(source)
    argv = ["--particle", particle, "--events", str(events), "--seed", str(seed),
            "--obs-id", str(10000 + seed if obs_id is None else obs_id),
            "--spectral-index", str(spectral_index)]
    for flag, pair in (("--energy-range", energy_range), ("--viewcone", viewcone)):
        if pair is not None:
            argv += [flag, *map(str, pair)]
    for flag, value in (("--jitter", jitter), ("--hadron-widening", hadron_widening)):
        if value is not None:
            argv += [flag, str(value)]

    def write(partial: Path) -> None:
        run_payload(env, ["python", str(ENLARGE_SCRIPT), str(source), str(partial), *argv],
                    log_path(output), cwd=workdir, failure_line=failure_line)
        if not partial.is_file():
            raise PayloadError(f"ctapipe_enlarge.py wrote no {output}",
                               f"full log: {log_path(output)}")

    Path(workdir).mkdir(parents=True, exist_ok=True)
    write_with(output, write, keep_extension=True)
    return Path(output)


def train_energy(env: Path, configs: Path, gamma: Path, output: Path, *, workdir: Path
                 ) -> Path:
    """The energy regressor (a ``.pkl``) from processed, merged gammas."""
    require(Path(configs) / ENERGY_CONFIG, gamma)
    return run_tool(env, lambda out: train_energy_argv(configs, gamma, out), output, workdir)


def train_classifier(env: Path, configs: Path, gamma: Path, proton: Path, output: Path, *,
                     workdir: Path) -> Path:
    """The gamma/hadron classifier (a ``.pkl``) from gammas and protons the energy model
    was applied to (:func:`apply_models`); a raw file is refused before the tool runs."""
    require(Path(configs) / CLASSIFIER_CONFIG, gamma, proton)
    energy = model_prefixes(configs).energy
    for path in (gamma, proton):
        require_table(path, f"/dl2/event/subarray/energy/{energy}",
                      "apply the energy model to it first (apply_models)")
    return run_tool(env, lambda out: train_classifier_argv(configs, gamma, proton, out),
                    output, workdir)


def apply_models(env: Path, input: Path, output: Path, models: Sequence[Path], *,
                 workdir: Path, parameters: bool = True) -> Path:
    """``input`` with the reconstructions of ``models`` added (see :func:`apply_models_argv`
    for ``parameters``)."""
    if not models:
        raise InputError(f"{output}: no model to apply")
    require(input, *models)
    return run_tool(env, lambda out: apply_models_argv(input, out, models, parameters),
                    output, workdir)


def optimise_and_irf(env: Path, configs: Path, gamma: Path, proton: Path, electron: Path,
                     outdir: Path, *, workdir: Path) -> IrfFiles:
    """Cuts (``cuts.fits``) optimised on the test files, then the IRFs (``irf.fits.gz``) and
    benchmarks (``benchmarks.fits.gz``) with those cuts, all in ``outdir``."""
    configs = Path(configs)
    require(configs / OPTIMISE_CONFIG, configs / IRF_CONFIG, gamma, proton, electron)
    prefixes = model_prefixes(configs)
    for path in (gamma, proton, electron):
        for kind, prefix in (("energy", prefixes.energy),
                             ("particle_type", prefixes.classifier)):
            require_table(path, f"/dl2/event/subarray/{kind}/{prefix}",
                          "apply both models to it first (apply_models)")
    outdir = Path(outdir)
    cuts = run_tool(env, lambda out: optimise_argv(configs, gamma, proton, electron, out),
                    outdir / CUTS_FILE, workdir)
    irf, benchmarks = outdir / IRF_FILE, outdir / BENCHMARKS_FILE
    benchmarks.unlink(missing_ok=True)

    def compute(partials: list[Path]) -> None:
        argv = irf_argv(configs, cuts, gamma, proton, electron, *partials)
        run_payload(env, job_argv([*argv, "--provenance-log", str(provenance_path(irf))]),
                    log_path(irf), cwd=workdir, failure_line=failure_line)
        if not partials[0].is_file():
            raise PayloadError(f"ctapipe-compute-irf wrote no {irf}",
                               f"full log: {log_path(irf)}")

    write_all([irf, benchmarks], compute, keep_extension=True)
    return IrfFiles(cuts, irf, benchmarks if benchmarks.is_file() else None)


# --- running ----------------------------------------------------------------------------------

def job_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` run by ``ctapipe_job.py`` with the environment's python."""
    return ["python", str(JOB_SCRIPT), *argv]


def log_path(output: Path) -> Path:
    """Where a step writing ``output`` logs: ``<output>.log``."""
    return Path(output).with_name(Path(output).name + ".log")


def provenance_path(output: Path) -> Path:
    """Where ctapipe appends the provenance of the step writing ``output``."""
    return Path(output).with_name(Path(output).name + ".provenance.log")


def run_tool(env: Path, argv: Callable[[Path], list[str]], output: Path, workdir: Path) -> Path:
    """Run the tool ``argv(partial)`` writing ``output`` under its partial name; rename it."""
    output = Path(output)
    Path(workdir).mkdir(parents=True, exist_ok=True)

    def write(partial: Path) -> None:
        run_payload(env, job_argv([*argv(partial), "--provenance-log",
                                   str(provenance_path(output))]),
                    log_path(output), cwd=workdir, failure_line=failure_line)
        if not partial.is_file():
            raise PayloadError(f"{argv(partial)[0]} wrote no {output}",
                               f"full log: {log_path(output)}")

    write_with(output, write, keep_extension=True)
    return output


def failure_line(lines: list[str]) -> str:
    """The line of a ctapipe log that says why it failed: the last error line that is not
    boilerplate, without its time stamp and logger; else the last line."""
    cleaned = [ANSI.sub("", line).strip() for line in lines]
    for line in reversed(cleaned):
        if ERROR_LINE.search(line) and not any(text in line for text in GENERIC):
            return LOG_PREFIX.sub("", line)
    return next((line for line in reversed(cleaned) if line), "")


def require(*paths: Path) -> None:
    """Refuse a missing input before a tool starts."""
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"{path}: not found")


def require_table(path: Path, table: str, hint: str) -> None:
    """Refuse an input without ``table`` (PyTables)."""
    import tables

    with tables.open_file(str(path), "r") as h5:
        if table not in h5:
            raise InputError(f"{path}: no {table}", hint)


# --- summaries --------------------------------------------------------------------------------

def summarise(path: Path) -> dict[str, int]:
    """Headline counts of a ctapipe file: runs, simulated showers, array and telescope
    events, and per DL2 reconstruction (``dl2_<kind>_<name>``) its valid events."""
    import tables

    counts: dict[str, int] = {}
    with tables.open_file(str(path), "r") as h5:
        if "/configuration/simulation/run" in h5:
            run = h5.get_node("/configuration/simulation/run").read()
            counts["runs"] = len(run)
            counts["simulated_showers"] = int((run["n_showers"] * run["shower_reuse"]).sum())
        for key, node in (("simulated_events", "/simulation/event/subarray/shower"),
                          ("array_events", "/dl1/event/subarray/trigger"),
                          ("telescope_events", "/dl1/event/telescope/trigger")):
            if node in h5:
                counts[key] = int(h5.get_node(node).nrows)
        if "/dl2/event/subarray" in h5:
            for table in h5.walk_nodes("/dl2/event/subarray", "Table"):
                kind, name = table._v_pathname.split("/")[-2:]
                valid = f"{name}_is_valid"
                counts[f"dl2_{kind}_{name}"] = (int(table.col(valid).sum())
                                                if valid in table.colnames else int(table.nrows))
    return counts


def training_scores(log: Path) -> dict[str, float]:
    """The mean cross-validation score per telescope type a training log reports (ROC AUC of
    a classifier, R^2 of a regressor)."""
    scores: dict[str, float] = {}
    telescope = "?"
    for line in ANSI.sub("", Path(log).read_text(errors="replace")).splitlines():
        found = CV_TYPE.search(line)
        if found:
            telescope = found.group(1)
        score = CV_SCORE.search(line)
        if score:
            scores[telescope] = float(score.group(2))
    return scores


def irf_summary(files: IrfFiles) -> dict[str, Any]:
    """A few headline numbers of the cuts, IRFs and benchmarks (astropy.io.fits): effective
    area bins above zero, its maximum, the energy bias and resolution ranges and angular
    resolution where a benchmark bin holds at least 10 events, the finite sensitivity bins."""
    import numpy as np
    from astropy.io import fits

    summary: dict[str, Any] = {}
    with fits.open(files.irf) as irf:
        area = np.asarray(irf["EFFECTIVE AREA"].data["EFFAREA"][0], dtype=float)
        summary["effective_area_bins"] = int(area.size)
        summary["effective_area_bins_above_zero"] = int(np.sum(np.nan_to_num(area) > 0))
        summary["effective_area_max_m2"] = float(np.nanmax(area)) if np.any(area > 0) else 0.0
    with fits.open(files.cuts) as cuts:
        valid = cuts["VALID_ENERGY"].data
        summary["valid_energy_tev"] = [float(valid["energy_min"][0]),
                                       float(valid["energy_max"][0])]
        summary["gh_cut_range"] = finite_range(cuts["GH_CUTS"].data["cut"])
    if files.benchmarks is not None:
        with fits.open(files.benchmarks) as bench:
            energy = bench["ENERGY BIAS RESOLUTION"].data
            filled = np.asarray(energy["N_EVENTS"][0]) >= 10
            summary["energy_bias_range"] = finite_range(energy["BIAS"][0][filled])
            summary["energy_resolution_range"] = finite_range(energy["RESOLUTION"][0][filled])
            angular = bench["ANGULAR RESOLUTION"].data
            filled = np.asarray(angular["N_EVENTS"][0]) >= 10
            summary["angular_resolution_68_deg_range"] = finite_range(
                angular["ANGULAR_RESOLUTION_68"][0][filled])
            sensitivity = np.asarray(bench["SENSITIVITY"].data["RELATIVE_SENSITIVITY"][0])
            summary["sensitivity_finite_bins"] = int(np.sum(np.isfinite(sensitivity)))
    return summary


def finite_range(values: Any) -> list[float] | None:
    """``[min, max]`` of the finite values of an array, None if there are none."""
    import numpy as np

    finite = np.ravel(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite)]
    return [float(finite.min()), float(finite.max())] if finite.size else None
