"""workflow/performance.py: the IRFs' normalisation from the merged DL2 files; the IRF summary."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tables
import yaml
from astropy.io import fits
from astropy.table import Table

from protopipe_grid_interface.config import read_yaml
from protopipe_grid_interface.exceptions import ConfigError, DataError
from protopipe_grid_interface.models import Particle, Stage
from protopipe_grid_interface.software import example_configs
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow import local_steps, performance
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.tree import create_analysis

#: the columns protopipe-DL3-EventDisplay reads from /reco_events, with protopipe's types
DL2_COLUMNS: dict[str, Any] = {
    "obs_id": tables.Int16Col(pos=0), "event_id": tables.Int64Col(pos=1),
    "true_energy": tables.Float32Col(pos=2), "reco_energy": tables.Float32Col(pos=3),
    "gammaness": tables.Float32Col(pos=4), "NTels_reco": tables.Int16Col(pos=5),
    "reco_alt": tables.Float32Col(pos=6), "reco_az": tables.Float32Col(pos=7),
    "true_alt": tables.Float32Col(pos=8), "true_az": tables.Float32Col(pos=9),
    "pointing_alt": tables.Float32Col(pos=10), "pointing_az": tables.Float32Col(pos=11),
    "success": tables.BoolCol(pos=12),
}

PERFORMANCE_YAML = """\
analysis:
  obs_time:
    value: 50 # hours
    unit: "h"
particle_information:
  # WARNING: this hardcoded here! It depends on the production...
  gamma:
    num_use: {gamma_use}
    num_showers: {gamma_showers} # per run
    e_min: 0.003
  proton:
    num_use: {proton_use}
    num_showers: {proton_showers}
    e_min: 0.004
  electron:
    num_use: {electron_use}
    num_showers: {electron_showers}
    e_min: 0.003
"""


def dl2_file(path: Path, obs_ids: list[int], success: list[bool], num_showers: int | None = 3000,
             shower_reuse: int | None = 10, rows: np.ndarray | None = None) -> Path:
    """A merged DL2 file as protopipe and our merge write it: /reco_events, root attributes."""
    if rows is None:
        rows = np.zeros(len(obs_ids), tables.Description(DL2_COLUMNS)._v_dtype)
        rows["obs_id"], rows["success"] = obs_ids, success
    path.parent.mkdir(parents=True, exist_ok=True)
    with tables.open_file(str(path), "w") as h5:
        h5.create_table("/", "reco_events", DL2_COLUMNS).append(rows)
        h5.root._v_attrs["status"] = "complete"
        if num_showers is not None:
            h5.root._v_attrs["num_showers"] = num_showers
        if shower_reuse is not None:
            h5.root._v_attrs["shower_reuse"] = shower_reuse
    return path


def config(tmp_path: Path, **values: object) -> Path:
    """performance.yaml with every num_use and num_showers null but those given."""
    keys = {f"{p.value}_{k}": "null" for p in Particle for k in ("use", "showers")}
    keys.update({key: str(value) for key, value in values.items()})
    path = tmp_path / "performance.yaml"
    path.write_text(PERFORMANCE_YAML.format(**keys))
    return path


@pytest.fixture
def gamma_file(tmp_path: Path) -> Path:
    """Runs 1 and 2 have successful events; runs 3 and 4 only failed ones: 2 runs."""
    return dl2_file(tmp_path / "DL2_tail_gamma_merged.h5", [1, 1, 2, 3, 4],
                    [True, True, True, False, False])


# --- the simulated showers and the normalisation -----------------------------------------------
def test_runs_are_counted_from_successful_events_only(gamma_file: Path) -> None:
    showers = performance.read_showers(gamma_file)

    assert (showers.runs, showers.num_showers, showers.shower_reuse) == (2, 3000, 10)
    assert showers.total == 30000


def test_null_values_are_derived_from_the_file(tmp_path: Path, gamma_file: Path) -> None:
    n = performance.normalise(config(tmp_path), Particle.GAMMA,
                              performance.read_showers(gamma_file))

    assert (n.num_use, n.num_showers, n.source) == (10, 1500, "derived")
    assert n.product == 30000


def test_one_null_value_is_derived_from_the_other(tmp_path: Path, gamma_file: Path) -> None:
    n = performance.normalise(config(tmp_path, gamma_use=5), Particle.GAMMA,
                              performance.read_showers(gamma_file))

    assert (n.num_use, n.num_showers) == (5, 3000)
    assert "num_showers derived" in n.source


def test_a_count_not_divisible_by_the_runs_gives_a_float(tmp_path: Path) -> None:
    path = dl2_file(tmp_path / "g.h5", [1, 2, 3], [True] * 3, num_showers=1000, shower_reuse=7)
    n = performance.normalise(config(tmp_path), Particle.GAMMA, performance.read_showers(path))

    assert isinstance(n.num_showers, float)
    assert math.isclose(3 * n.num_use * n.num_showers, 7000, rel_tol=1e-15)  # protopipe's


def test_the_template_numbers_are_refused_with_both_totals(tmp_path: Path,
                                                           gamma_file: Path) -> None:
    path = config(tmp_path, gamma_use=10, gamma_showers=20000)

    with pytest.raises(ConfigError) as error:
        performance.normalise(path, Particle.GAMMA, performance.read_showers(gamma_file))

    message = str(error.value)
    assert "\n" not in message
    assert f"{path}: particle_information.gamma" in message
    assert "2 x 10 x 20000 = 400000" in message
    assert f"{gamma_file} has num_showers x shower_reuse = 3000 x 10 = 30000" in message
    assert "protopipe's template numbers" in message


def test_other_wrong_numbers_are_refused_without_the_template_note(tmp_path: Path,
                                                                  gamma_file: Path) -> None:
    with pytest.raises(ConfigError) as error:
        performance.normalise(config(tmp_path, gamma_use=10, gamma_showers=1000),
                              Particle.GAMMA, performance.read_showers(gamma_file))
    assert "2 x 10 x 1000 = 20000, but" in str(error.value)
    assert "template" not in str(error.value)


def test_numbers_that_agree_with_the_file_are_accepted(tmp_path: Path, gamma_file: Path) -> None:
    n = performance.normalise(config(tmp_path, gamma_use=5, gamma_showers=3000),
                              Particle.GAMMA, performance.read_showers(gamma_file))

    assert (n.num_use, n.num_showers, n.source) == (5, 3000, "performance.yaml")


def test_a_value_that_is_not_a_number_names_its_key(tmp_path: Path, gamma_file: Path) -> None:
    path = config(tmp_path, gamma_showers='"many"')

    with pytest.raises(ConfigError, match=r"particle_information\.gamma\.num_showers: expected "
                                          "a positive number or null, got 'many'"):
        performance.normalise(path, Particle.GAMMA, performance.read_showers(gamma_file))


@pytest.mark.parametrize("missing", ["num_showers", "shower_reuse"])
def test_a_file_without_the_attributes_is_a_data_error(tmp_path: Path, missing: str) -> None:
    path = dl2_file(tmp_path / "old.h5", [1], [True],
                    **{missing: None})  # type: ignore[arg-type]

    with pytest.raises(DataError, match=f"{path}: no {missing} root attribute"):
        performance.read_showers(path)


def test_a_file_without_successful_events_is_a_data_error(tmp_path: Path) -> None:
    path = dl2_file(tmp_path / "failed.h5", [1, 2], [False, False])

    with pytest.raises(DataError, match=f"{path}: no event with success true"):
        performance.read_showers(path)


def test_the_copy_has_the_numbers_and_the_users_file_is_unchanged(tmp_path: Path) -> None:
    user = config(tmp_path, proton_use=20)
    before = user.read_bytes()
    files = {Particle.GAMMA: dl2_file(tmp_path / "g.h5", [1, 2], [True, True]),
             Particle.PROTON: dl2_file(tmp_path / "p.h5", [5], [True], num_showers=8000,
                                       shower_reuse=20),
             Particle.ELECTRON: dl2_file(tmp_path / "e.h5", [7, 8, 9], [True] * 3,
                                         num_showers=900, shower_reuse=5)}
    used = tmp_path / "DL3" / performance.USED_CONFIG

    normalisations = performance.prepare(user, files, used)

    assert user.read_bytes() == before
    info = read_yaml(used)["particle_information"]
    assert info["gamma"] == {"num_use": 10, "num_showers": 1500, "e_min": 0.003}
    assert info["proton"] == {"num_use": 20, "num_showers": 8000, "e_min": 0.004}
    assert info["electron"] == {"num_use": 5, "num_showers": 300, "e_min": 0.003}
    assert read_yaml(used)["analysis"] == read_yaml(user)["analysis"]
    assert [n.source for n in normalisations] == [
        "derived", "num_use from performance.yaml, num_showers derived", "derived"]


def test_a_new_analysis_derives_the_shower_counts(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    written = config(templates, **{f"{p.value}_{k}": n for p in Particle
                                   for k, n in (("use", 10), ("showers", 20000))})
    (templates / "analysis.yaml").write_text("General:\n  config_name: ANALYSIS_NAME\n")

    tree = create_analysis(tmp_path / "out", "ana", templates)

    text = (tree.configs / "performance.yaml").read_text()
    assert text == written.read_text().replace("num_use: 10", "num_use: null") \
        .replace("num_showers: 20000", "num_showers: null")
    assert "# per run" in text  # comments kept
    assert all(read_yaml(tree.configs / "performance.yaml")["particle_information"][p.value]
               ["num_use"] is None for p in Particle)


# --- the IRF summary ---------------------------------------------------------------------------
def irf_file(path: Path) -> Path:
    """An IRF file laid out as protopipe-DL3-EventDisplay 0.5 writes it: 3 sensitivity bins
    between pyirf's under- and overflow bins (one finite, one NaN, one inf), 3 effective area
    bins (one empty), 3 resolution bins (one NaN)."""
    edges = [0.0, 0.1, 1.0, 10.0, 100.0, math.inf]
    sensitivity = Table({
        "reco_energy_low": edges[:-1], "reco_energy_high": edges[1:],
        "reco_energy_center": [0.05, 0.3, 3, 30, math.inf],
        "n_signal": [math.nan, 12.0, math.nan, math.nan, math.nan],
        "n_signal_weighted": [math.nan, 10.0, math.nan, math.nan, math.nan],
        "n_background": [0.0, 4.0, 3.0, 0.0, 0.0],
        "n_background_weighted": [0.0, 40.0, 30.0, 0.0, 0.0],
        "relative_sensitivity": [math.inf, 0.5, math.nan, math.inf, math.inf],
        "flux_sensitivity": [math.inf, 1e-11, math.nan, math.inf, math.inf]})
    area = Table({"ENERG_LO": [[0.1, 1.0, 10.0]], "ENERG_HI": [[1.0, 10.0, 100.0]],
                  "THETA_LO": [0.0], "THETA_HI": [0.5],
                  "EFFAREA": [[[1e4, 5e4, 0.0]]]})
    bins = {"reco_energy_low": [0.1, 1.0, 10.0], "reco_energy_high": [1.0, 10.0, 100.0],
            "reco_energy_center": [0.3, 3.0, 30.0]}
    bias = Table({**bins, "bias": [0.01, -0.02, math.nan],
                  "resolution": [0.2, 0.1, math.nan]})
    angular = Table({**bins, "angular_resolution": [0.3, 0.1, math.nan]})
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(sensitivity, name="SENSITIVITY"),
                  fits.BinTableHDU(area, name="EFFECTIVE AREA"),
                  fits.BinTableHDU(angular, name="ANGULAR_RESOLUTION"),
                  fits.BinTableHDU(bias, name="ENERGY_BIAS_RESOLUTION")]).writeto(path)
    return path


def test_the_summary_leaves_out_under_and_overflow_bins(tmp_path: Path) -> None:
    summary = performance.summarise(irf_file(tmp_path / "irf.fits.gz"))

    assert [(b.low, b.high) for b in summary.sensitivity] == [(0.1, 1), (1, 10), (10, 100)]
    assert summary.left_out == 2
    assert [b.values["area_m2"] for b in summary.effective_area] == [1e4, 5e4, 0.0]
    assert summary.resolution[1].values == {"bias": -0.02, "resolution": 0.1,
                                            "angular_resolution_deg": 0.1}


def test_the_summary_warns_of_nan_infinite_and_empty_bins(tmp_path: Path) -> None:
    summary = performance.summarise(irf_file(tmp_path / "irf.fits.gz"))

    assert summary.warnings == [
        "sensitivity: NaN in 1 of 3 bins (1-10 TeV)",
        "sensitivity: infinite in 1 of 3 bins (10-100 TeV)",
        "sensitivity: no background event after the cuts in 1 of 3 bins (10-100 TeV)",
        "effective area: empty (no gamma after the cuts) in 1 of 3 bins (10-100 TeV)",
        "energy resolution: NaN in 1 of 3 bins (10-100 TeV)",
        "angular resolution: NaN in 1 of 3 bins (10-100 TeV)",
    ]


def test_a_file_without_an_irf_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "irf.fits"
    fits.HDUList([fits.PrimaryHDU()]).writeto(path)

    with pytest.raises(DataError, match=f"{path}: no SENSITIVITY HDU"):
        performance.summarise(path)


def test_the_summary_and_normalisation_are_recorded(tmp_path: Path, gamma_file: Path) -> None:
    summary = performance.summarise(irf_file(tmp_path / "irf.fits.gz"))
    n = performance.normalise(config(tmp_path), Particle.GAMMA,
                              performance.read_showers(gamma_file))
    store = Store(tmp_path / "state.sqlite")

    performance.record(store, summary, [n])

    [result] = store.results("performance")
    store.close()
    assert result.warnings == tuple(summary.warnings)
    assert result.figures["normalisation"]["gamma"] == {
        "runs": 2, "num_use": 10, "num_showers": 1500, "file_num_showers": 3000,
        "shower_reuse": 10, "source": "derived", "file": str(gamma_file)}
    assert [b["flux"] for b in result.figures["sensitivity"]] == [1e-11, None, None]
    json.dumps(result.figures, allow_nan=False)  # standard JSON: NaN and inf stored as null


def test_the_summary_tables_show_every_bin_and_the_warnings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from protopipe_grid_interface.cli import render

    summary = performance.summarise(irf_file(tmp_path / "irf.fits.gz"))

    render.irf_tables(summary)

    out = capsys.readouterr().out
    assert "0.1-1" in out and "1e-11" in out and "nan" in out and "inf" in out
    assert "WARNING sensitivity: NaN in 1 of 3 bins (1-10 TeV)" in out
    assert "2 pyirf under/overflow bin(s) (low edge 0 or high edge inf)" in out


# --- the real protopipe-DL3-EventDisplay --------------------------------------------------------
def synthetic_dl2(path: Path, particle: Particle, runs: int, seed: int) -> Path:
    """Events protopipe-DL3-EventDisplay can make IRFs of: gammas from the pointing direction,
    gammaness near 1; protons and electrons diffuse, gammaness near 0."""
    rng = np.random.default_rng(seed)
    n = 1500
    rows = np.zeros(n, tables.Description(DL2_COLUMNS)._v_dtype)
    rows["obs_id"] = 1 + np.arange(n) % runs
    rows["event_id"] = np.arange(n)
    rows["true_energy"] = 10 ** rng.uniform(-2, 2.5, n)
    rows["reco_energy"] = rows["true_energy"] * rng.normal(1, 0.1, n)
    gamma = particle is Particle.GAMMA
    rows["gammaness"] = rng.beta(8, 1, n) if gamma else rng.beta(1, 8, n)
    rows["NTels_reco"] = rng.integers(3, 10, n)
    rows["pointing_alt"], rows["pointing_az"] = 70.0, 180.0
    spread = 0.1 if gamma else 3.0
    rows["true_alt"] = 70.0 + (0 if gamma else rng.normal(0, spread, n))
    rows["true_az"] = 180.0 + (0 if gamma else rng.normal(0, spread, n))
    rows["reco_alt"] = rows["true_alt"] + rng.normal(0, 0.1, n)
    rows["reco_az"] = rows["true_az"] + rng.normal(0, 0.1, n)
    rows["success"] = rng.random(n) < 0.9
    return dl2_file(path, [], [], num_showers=runs * 100000, shower_reuse=10, rows=rows)


@pytest.mark.payload
def test_real_irfs_are_normalised_from_the_dl2_files(tmp_path: Path,
                                                     protopipe_env: Path) -> None:
    tree = create_analysis(tmp_path, "irf", example_configs(protopipe_env))
    for seed, particle in enumerate(Particle):
        synthetic_dl2(tree.data_dir(Stage.DL2, particle) /
                      f"DL2_tail_{particle.value}_merged.h5", particle, 2 + seed, seed)
    analysis = Analysis.open(tree.metadata_file)
    user_config = (tree.configs / "performance.yaml").read_bytes()
    store = Store(tree.state_db)

    report = local_steps.make_performance(analysis, protopipe_env, store)

    [result] = store.results("performance")
    store.close()
    assert (tree.configs / "performance.yaml").read_bytes() == user_config
    log = (tree.dl3 / "protopipe-DL3-EventDisplay.log").read_text()
    for particle, runs in ((Particle.GAMMA, 2), (Particle.PROTON, 3), (Particle.ELECTRON, 4)):
        showers = runs * 100000 * 10
        assert f"n_showers={showers}" in log  # what protopipe normalised with: the files' total
        assert result.figures["normalisation"][particle.value]["runs"] == runs
    assert report.irf.is_file() and len(report.summary.sensitivity) == 21
    assert yaml.safe_load(report.config.read_text())["particle_information"]["gamma"][
        "num_showers"] == 100000
