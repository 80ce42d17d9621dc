"""The ctapipe profile's local chain: ctapipe_job.py, the configs, the steps, the stand-in.

The unit tests need no ctapipe; ``test_local_chain`` runs the whole chain on the real
sim_telarray file in the ctapipe payload environment (``scripts/install-payload.sh``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tables
from contract import unavailable

from protopipe_grid_interface.atomic import partial_path
from protopipe_grid_interface.exceptions import ConfigError, InputError, PayloadError
from protopipe_grid_interface.report.data import ctapipe_dl2
from protopipe_grid_interface.settings import environment
from protopipe_grid_interface.workflow import ctapipe_configs, ctapipe_steps
from protopipe_grid_interface.workflow.ctapipe_configs import Contact
from protopipe_grid_interface.workflow.local_steps import PAYLOAD_SCRIPTS

JOB = PAYLOAD_SCRIPTS / "ctapipe_job.py"
ENLARGE = PAYLOAD_SCRIPTS / "ctapipe_enlarge.py"

# --- ctapipe_job.py ---------------------------------------------------------------------------

TOOL = """#!/bin/sh
echo "home=$HOME numba=$NUMBA_CACHE_DIR xdg=$XDG_CACHE_HOME omp=$OMP_NUM_THREADS"
echo "args=$*"
echo "stdin=[$(cat)]"
echo "which={which}"
exit 3
"""


def tool(folder: Path, which: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fake-tool"
    path.write_text(TOOL.format(which=which))
    path.chmod(0o755)


def test_job_runs_the_tool_in_the_folder_and_returns_its_status(tmp_path: Path) -> None:
    env_bin = tmp_path / "env" / "bin"
    tool(env_bin, "beside")
    tool(tmp_path / "path", "on-path")
    (env_bin / "python").symlink_to(sys.executable)
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [str(env_bin / "python"), str(JOB), "fake-tool", "a", "b c"], cwd=work,
        input="typed", capture_output=True, text=True, check=False,
        env={**os.environ, "PATH": f"{tmp_path / 'path'}:{os.environ['PATH']}"})
    assert result.returncode == 3
    out = result.stdout
    assert "which=beside" in out  # beside sys.executable before PATH
    assert f"home={work}/.home numba={work}/.numba_cache xdg={work}/.cache omp=1" in out
    assert "args=a b c" in out
    assert "stdin=[]" in out  # never the caller's stdin
    assert (work / ".cache" / "astropy").is_dir()


def test_job_names_a_missing_tool(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(JOB), "ctapipe-nothere"], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 127
    assert "ctapipe-nothere not found beside" in result.stderr


# --- argument lists ---------------------------------------------------------------------------

def test_argument_lists() -> None:
    configs = [Path("c/base_config.yaml"), Path("c/ml_preprocessing_config.yaml")]
    argv = ctapipe_steps.process_argv(configs, Path("in.simtel.zst"), Path("o.part.h5"), 7)
    assert argv[:5] == ["ctapipe-process", "--config", "c/base_config.yaml", "--config",
                        "c/ml_preprocessing_config.yaml"]
    assert "--SimTelEventSource.override_obs_id=7" in argv
    merge = ctapipe_steps.merge_argv([Path("a.h5"), Path("b.h5")], Path("m.h5"))
    assert merge[-2:] == ["a.h5", "b.h5"] and "--no-dl1-images" in merge
    assert "--no-true-images" in merge
    assert "--no-dl1-images" not in ctapipe_steps.merge_argv([Path("a.h5")], Path("m.h5"),
                                                             images=True)
    apply = ctapipe_steps.apply_models_argv(Path("i.h5"), Path("o.h5"),
                                            [Path("e.pkl"), Path("c.pkl")], parameters=False)
    assert "--reconstructor=e.pkl" in apply and "--reconstructor=c.pkl" in apply
    assert "--no-dl1-parameters" in apply
    irf = ctapipe_steps.irf_argv(Path("c"), Path("cuts.fits"), Path("g"), Path("p"), Path("e"),
                                 Path("irf.fits.gz"), Path("b.fits.gz"))
    assert "--do-background" in irf and irf[-2:] == ["--benchmark-output", "b.fits.gz"]
    assert irf[2] == str(Path("c") / "compute_irf.yaml")


def test_partial_names_keep_the_extension() -> None:
    assert partial_path(Path("d/irf.fits.gz"), True) == Path("d/irf.part.fits.gz")
    assert partial_path(Path("gamma.DL2.h5"), True) == Path("gamma.DL2.part.h5")
    assert partial_path(Path("gamma.h5")) == Path("gamma.h5.part")


# --- configs ----------------------------------------------------------------------------------

SMALL_CONFIGS = {
    "base_config.yaml": "ShowerProcessor:\n  reconstructor_types: [HillasReconstructor]\n",
    "ml_preprocessing_config.yaml": "DataWriter:\n  write_dl1_parameters: true\n"
                                    "  write_dl2: true\n",
    "train_energy_regressor.yaml": "TrainEnergyRegressor:\n  EnergyRegressor:\n"
                                   "    model_cls: ExtraTreesRegressor\n",
    "train_particle_classifier.yaml": "TrainParticleClassifier:\n  ParticleClassifier:\n"
                                      "    model_cls: ExtraTreesClassifier\n"
                                      "    features: [hillas_width, ExtraTreesRegressor_energy]\n",
    "optimize_cuts.yaml": """\
# cuts
DL2EventPreprocessor:
  energy_reconstructor: "RandomForestRegressor"  # the regressor
  geometry_reconstructor: "HillasReconstructor"
  gammaness_classifier: "RandomForestClassifier"
  DL2EventQualityQuery:
    quality_criteria:
      - ["valid classifier", "RandomForestClassifier_is_valid"]
      - ["valid energy reco", "RandomForestRegressor_is_valid & HillasReconstructor_is_valid"]
""",
    "compute_irf.yaml": """\
IrfTool:
  DL2EventPreprocessor:
    energy_reconstructor: "RandomForestRegressor"
DefaultFoVOffsetBins:
  fov_offset_min: 0 deg
  fov_offset_n_bins: 3  # three rings
PSF3DMaker:
  fov_offset_n_bins: 3
""",
}


def small_configs(folder: Path, **changes: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**SMALL_CONFIGS, **changes}.items():
        (folder / name).write_text(text)
    return folder


def test_align_makes_the_selection_configs_read_the_trained_columns(tmp_path: Path) -> None:
    folder = small_configs(tmp_path)
    with pytest.raises(ConfigError, match=r"optimize_cuts.yaml: DL2EventPreprocessor\."
                                          r"energy_reconstructor: 'RandomForestRegressor'"):
        ctapipe_configs.check_configs(folder)
    changed = ctapipe_configs.align(folder)
    assert sorted(p.name for p in changed) == ["compute_irf.yaml", "optimize_cuts.yaml"]
    ctapipe_configs.check_configs(folder)
    cuts = (folder / "optimize_cuts.yaml").read_text()
    assert cuts.startswith("# cuts\n") and "# the regressor" in cuts  # comments kept
    assert 'energy_reconstructor: "ExtraTreesRegressor"' in cuts
    assert '"ExtraTreesRegressor_is_valid & HillasReconstructor_is_valid"' in cuts
    assert "RandomForest" not in cuts
    irf = ctapipe_configs.read_mapping(folder / "compute_irf.yaml")
    assert irf["IrfTool"]["DL2EventPreprocessor"]["gammaness_classifier"] == (
        "ExtraTreesClassifier")
    assert irf["DefaultFoVOffsetBins"]["fov_offset_n_bins"] == 1  # point-like gammas
    assert irf["PSF3DMaker"]["fov_offset_n_bins"] == 1
    assert "# three rings" in (folder / "compute_irf.yaml").read_text()
    assert ctapipe_configs.align(folder) == []  # nothing left to do


def test_align_keeps_the_offset_bins_of_diffuse_gammas_and_follows_a_prefix(
        tmp_path: Path) -> None:
    folder = small_configs(tmp_path, **{
        "train_energy_regressor.yaml": "EnergyRegressor:\n  prefix: energy_model\n"
                                       "  model_cls: ExtraTreesRegressor\n",
        "train_particle_classifier.yaml": "TrainParticleClassifier:\n  ParticleClassifier:\n"
                                          "    model_cls: ExtraTreesClassifier\n"
                                          "    features: [energy_model_energy]\n"})
    ctapipe_configs.align(folder, gamma_diffuse=True)
    irf = ctapipe_configs.read_mapping(folder / "compute_irf.yaml")
    assert irf["DefaultFoVOffsetBins"]["fov_offset_n_bins"] == 3
    assert irf["IrfTool"]["DL2EventPreprocessor"]["energy_reconstructor"] == "energy_model"
    ctapipe_configs.check_configs(folder)


@pytest.mark.parametrize(("changes", "message"), [
    ({"train_particle_classifier.yaml": SMALL_CONFIGS["train_particle_classifier.yaml"]
      .replace("ExtraTreesRegressor_energy", "RandomForestRegressor_energy")},
     r"train_particle_classifier.yaml: TrainParticleClassifier.ParticleClassifier.features: "
     r"RandomForestRegressor_energy"),
    ({"ml_preprocessing_config.yaml": "DataWriter:\n  write_dl2: true\n"},
     r"ml_preprocessing_config.yaml: DataWriter.write_dl1_parameters: not true"),
    ({"train_energy_regressor.yaml": "TrainEnergyRegressor: {}\n"},
     r"train_energy_regressor.yaml: TrainEnergyRegressor.EnergyRegressor.model_cls: not set"),
])
def test_check_configs_names_file_and_key(tmp_path: Path, changes: dict[str, str],
                                          message: str) -> None:
    folder = small_configs(tmp_path, **changes)
    with pytest.raises(InputError, match=message):
        ctapipe_configs.align(folder)
        ctapipe_configs.check_configs(folder)


def test_check_configs_names_a_missing_file(tmp_path: Path) -> None:
    folder = small_configs(tmp_path)
    (folder / "compute_irf.yaml").unlink()
    with pytest.raises(InputError, match=r"compute_irf.yaml: not found"):
        ctapipe_configs.check_configs(folder)


def test_write_configs_refuses_before_running_quickstart(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="contact email: empty"):
        ctapipe_configs.write_configs(tmp_path / "env", tmp_path / "c", Contact("A", " ", "O"))
    folder = small_configs(tmp_path / "c")
    with pytest.raises(InputError, match=r"c/base_config.yaml: already there"):
        ctapipe_configs.write_configs(tmp_path / "env", folder, Contact("A", "a@b.c", "O"))


# --- failures ---------------------------------------------------------------------------------

CTAPIPE_FAILURE = (
    "ctapipe_job: /env/bin/ctapipe-merge -o x.h5\n"
    "2026-12-04 05:34:40,894 \x1b[1;31mERROR\x1b[0m [ctapipe.ctapipe-merge] (tool.run): "
    "Same file given multiple times.\n"
    "2026-12-04 05:34:40,894 \x1b[1;31mERROR\x1b[0m [ctapipe.ctapipe-merge] (tool.run): "
    "Use --help for more info\n")


def test_failure_line_is_the_tools_reason() -> None:
    assert ctapipe_steps.failure_line(CTAPIPE_FAILURE.splitlines()) == (
        "Same file given multiple times.")
    traceback = ["Traceback (most recent call last):", '  File "x.py"', "KeyError: 'E_energy'"]
    assert ctapipe_steps.failure_line(traceback) == "KeyError: 'E_energy'"
    assert ctapipe_steps.failure_line(["done", ""]) == "done"


def fake_env(folder: Path, script: str) -> Path:
    """A payload environment whose python prints ``script``'s output and fails."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f"#!/bin/sh\nprintf '{script}'\nexit 1\n")
    python.chmod(0o755)
    return folder


def test_a_failed_tool_names_its_log_and_leaves_no_output(tmp_path: Path) -> None:
    env = fake_env(tmp_path / "env", CTAPIPE_FAILURE.replace("\x1b", "\\033"))
    inputs = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for path in inputs:
        path.write_bytes(b"")
    output = tmp_path / "out" / "merged.h5"
    with pytest.raises(PayloadError) as failure:
        ctapipe_steps.merge(env, inputs, output, workdir=tmp_path / "work")
    assert "Same file given multiple times." in str(failure.value)
    assert str(output) + ".log" in str(failure.value)
    assert sorted(p.name for p in output.parent.iterdir()) == ["merged.h5.log"]


def test_inputs_are_checked_before_a_tool_runs(tmp_path: Path) -> None:
    env = tmp_path / "no-env"
    raw = tmp_path / "gamma.h5"
    with tables.open_file(raw, "w") as h5:
        h5.create_group("/", "dl2")
    folder = small_configs(tmp_path / "configs")
    with pytest.raises(InputError, match=r"gamma.h5: no /dl2/event/subarray/energy/"
                                         r"ExtraTreesRegressor \(apply the energy model"):
        ctapipe_steps.train_classifier(env, folder, raw, raw, tmp_path / "c.pkl",
                                       workdir=tmp_path)
    with pytest.raises(InputError, match=r"e.pkl: not found"):
        ctapipe_steps.apply_models(env, raw, tmp_path / "o.h5", [tmp_path / "e.pkl"],
                                   workdir=tmp_path)
    with pytest.raises(InputError, match=r"particle 'muon'"):
        ctapipe_steps.enlarge(env, raw, tmp_path / "o.h5", particle="muon", events=1, seed=1,
                              workdir=tmp_path)


def test_training_scores_from_the_log(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(
        "x INFO [a] (sklearn.__call__): Starting cross-validation with 5 folds for type "
        "LST_LST_LSTCam.\n"
        "x \x1b[1;32mINFO\x1b[0m [a] (sklearn.__call__): Mean ROC AUC score from CV: 0.9624 ± "
        "0.0114\n"
        "x INFO [a] (sklearn.__call__): Starting cross-validation with 5 folds for type "
        "MST_MST_NectarCam.\n"
        "x INFO [a] (sklearn.__call__): Mean ROC AUC score from CV: 0.9475 ± 0.0063\n")
    assert ctapipe_steps.training_scores(log) == {"LST_LST_LSTCam": 0.9624,
                                                  "MST_MST_NectarCam": 0.9475}


# --- the stand-in -----------------------------------------------------------------------------

def tiny_ctapipe_file(path: Path) -> None:
    """The tables ctapipe_enlarge.py rewrites, with ctapipe's names: 2 runs of 3 events."""
    keys = [(obs, event) for obs in (1, 2) for event in (10, 20, 30)]
    events = np.array(keys, dtype=[("obs_id", "i8"), ("event_id", "i8")])
    shower = np.zeros(6, dtype=[("obs_id", "i8"), ("event_id", "i8"), ("true_energy", "f8"),
                                ("true_alt", "f8"), ("true_az", "f8"),
                                ("true_shower_primary_id", "i8")])
    shower["obs_id"], shower["event_id"] = events["obs_id"], events["event_id"]
    shower["true_energy"], shower["true_alt"], shower["true_az"] = [0.1, 1, 10] * 2, 70, 0
    params = np.zeros(12, dtype=[("obs_id", "i8"), ("event_id", "i8"), ("tel_id", "i2"),
                                 ("hillas_intensity", "f8"), ("hillas_width", "f8")])
    params["obs_id"] = np.repeat(events["obs_id"], 2)
    params["event_id"] = np.repeat(events["event_id"], 2)
    params["tel_id"], params["hillas_intensity"], params["hillas_width"] = [1, 2] * 6, 100, 0.1
    geometry = np.zeros(6, dtype=[("obs_id", "i8"), ("event_id", "i8"),
                                  ("HillasReconstructor_alt", "f8"),
                                  ("HillasReconstructor_az", "f8")])
    geometry["obs_id"], geometry["event_id"] = events["obs_id"], events["event_id"]
    geometry["HillasReconstructor_alt"] = 70.1
    geometry["HillasReconstructor_az"] = [0.2, 359.8] * 3  # errors of +-0.2 deg in azimuth
    run = np.zeros(2, dtype=[("obs_id", "i8"), ("n_showers", "i8"), ("shower_reuse", "i8"),
                             ("energy_range_min", "f4"), ("energy_range_max", "f4"),
                             ("spectral_index", "f8"), ("min_viewcone_radius", "f4"),
                             ("max_viewcone_radius", "f4"), ("diffuse", "i8")])
    run["obs_id"], run["n_showers"], run["shower_reuse"] = [1, 2], 10, 10
    distribution = np.zeros(2, dtype=[("obs_id", "i8"), ("n_entries", "i8"),
                                      ("bins_energy", "f8", (5,)),
                                      ("histogram", "f4", (4, 3))])
    distribution["obs_id"], distribution["n_entries"] = [1, 2], 100
    distribution["bins_energy"] = np.logspace(-2, 2, 5)
    distribution["histogram"] = 100 / 12
    with tables.open_file(path, "w") as h5:
        for where, data in (("/dl1/event/subarray/trigger", events),
                            ("/simulation/event/subarray/shower", shower),
                            ("/dl1/event/telescope/parameters/tel_001", params),
                            ("/dl2/event/subarray/geometry/HillasReconstructor", geometry),
                            ("/configuration/simulation/run", run),
                            ("/simulation/service/shower_distribution", distribution)):
            group, name = where.rsplit("/", 1)
            h5.create_table(group, name, data, createparents=True)


def separation(alt1: Any, az1: Any, alt2: Any, az2: Any) -> Any:
    """Angle between directions, all in degrees."""
    a1, z1, a2, z2 = (np.radians(x) for x in (alt1, az1, alt2, az2))
    cos = np.sin(a1) * np.sin(a2) + np.cos(a1) * np.cos(a2) * np.cos(z1 - z2)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_enlarge_clones_events_with_consistent_shower_counts(tmp_path: Path) -> None:
    source, output = tmp_path / "real.h5", tmp_path / "protons.h5"
    tiny_ctapipe_file(source)
    result = subprocess.run(
        [sys.executable, str(ENLARGE), str(source), str(output), "--particle", "proton",
         "--events", "300", "--seed", "1", "--obs-id", "7", "--viewcone", "0", "6"],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "NOT PHYSICS" in result.stdout
    with tables.open_file(output) as h5:
        run = h5.root.configuration.simulation.run.read()
        histogram = h5.root.simulation.service.shower_distribution.read()
        shower = h5.root.simulation.event.subarray.shower.read()
        params = h5.get_node("/dl1/event/telescope/parameters/tel_001").read()
        geometry = h5.get_node("/dl2/event/subarray/geometry/HillasReconstructor").read()
        note = h5.root._v_attrs["PGI_STAND_IN"]
    assert "NOT PHYSICS" in note
    assert list(run["obs_id"]) == [7] and list(histogram["obs_id"]) == [7]
    # 6 real events of 200 thrown showers -> 300 clones of 10000 thrown
    assert int(run["n_showers"][0] * run["shower_reuse"][0]) == histogram["n_entries"][0]
    assert histogram["n_entries"][0] == 10000
    assert histogram["histogram"].sum() == pytest.approx(10000, rel=1e-4)
    assert run["spectral_index"][0] == -1.5 and run["max_viewcone_radius"][0] == 6
    assert run["diffuse"][0] == 1
    assert list(shower["event_id"]) == list(range(1, 301))
    assert set(shower["obs_id"]) == {7} and set(shower["true_shower_primary_id"]) == {101}
    assert 0.1 <= shower["true_energy"].min() and shower["true_energy"].max() <= 20
    assert len(params) == 600 and set(params["event_id"]) == set(range(1, 301))
    offsets = separation(shower["true_alt"], shower["true_az"], 70, 0)
    assert 5 < offsets.max() <= 6.0001 and np.median(offsets) > 3  # uniform in 0-6 deg
    assert np.allclose(geometry["HillasReconstructor_alt"] - shower["true_alt"], 0.1)
    error = separation(shower["true_alt"], shower["true_az"],
                       geometry["HillasReconstructor_alt"], geometry["HillasReconstructor_az"])
    assert error.max() < 0.2  # the real reconstruction error (0.12 deg), not the move
    assert params["hillas_width"].max() > 0.14  # widened protons


# --- the whole local chain on real data -------------------------------------------------------

CHAIN_EVENTS = {"gamma_train_en": 600, "gamma_train_cl": 600, "proton_train_cl": 600,
                "gamma_test": 1000, "proton_test": 1000, "electron_test": 500}


@pytest.fixture(scope="module")
def ctapipe_env() -> Path:
    """The ctapipe payload environment; under CI its absence fails the test."""
    env = environment().payload_root / "ctapipe-0.32.0"
    if not (env / "bin" / "ctapipe-process").exists():
        unavailable(f"no ctapipe payload environment at {env} (scripts/install-payload.sh)")
    return env


@pytest.mark.payload
def test_local_chain(ctapipe_env: Path, tmp_path: Path) -> None:
    simtel = environment().payload_root / "data" / "mono_trigger.simtel.zst"
    if not simtel.is_file():
        unavailable(f"no {simtel} (scripts/install-payload.sh)")
    env, work = ctapipe_env, tmp_path / "work"
    timings: dict[str, float] = {}

    def timed(name: str, step: Callable[[], Any]) -> Any:
        start = time.monotonic()
        result = step()
        timings[name] = time.monotonic() - start
        return result

    def parallel(steps: dict[str, Callable[[], Any]]) -> dict[str, Any]:
        with ThreadPoolExecutor(2) as pool:  # CI has 2 cores
            futures = {name: pool.submit(timed, name, step) for name, step in steps.items()}
            return {name: future.result() for name, future in futures.items()}

    configs = tmp_path / "configs"
    timed("configs", lambda: ctapipe_configs.write_configs(
        env, configs, Contact("Test", "test@example.org", "PGI"), gamma_diffuse=True,
        workdir=work))  # quickstart fills the numba cache the later steps use
    ctapipe_configs.check_configs(configs)

    dl2 = tmp_path / "dl2"
    runs = [dl2 / f"gamma_run{obs}.DL2.h5" for obs in (1, 2, 3)]
    # the first run adds to the numba cache of ``work``; the two others then run side by side
    timed("process_1", lambda: ctapipe_steps.process(env, configs, simtel, runs[0],
                                                     workdir=work, obs_id=1))
    parallel({f"process_{obs}": (lambda obs=obs: ctapipe_steps.process(
        env, configs, simtel, runs[obs - 1], workdir=work, obs_id=obs)) for obs in (2, 3)})
    merged = timed("merge", lambda: ctapipe_steps.merge(env, runs, dl2 / "gamma_merged.h5",
                                                        workdir=work))
    real = ctapipe_steps.summarise(merged)
    assert real["runs"] == 3 and real["array_events"] == 15
    assert real["simulated_showers"] == 300

    stand_in = tmp_path / "stand-in"
    options: dict[str, dict[str, Any]] = {
        "gamma_test": {"viewcone": (0.0, 5.0)}}
    samples = parallel({name: (lambda name=name, seed=seed: ctapipe_steps.enlarge(
        env, merged, stand_in / f"{name}.h5", particle=name.split("_")[0],
        events=CHAIN_EVENTS[name], seed=seed, workdir=work, **options.get(name, {})))
        for seed, name in enumerate(CHAIN_EVENTS, start=1)})
    log = ctapipe_steps.log_path(samples["proton_test"]).read_text()
    assert "NOT PHYSICS" in log

    models = tmp_path / "models"
    energy = timed("train_energy", lambda: ctapipe_steps.train_energy(
        env, configs, samples["gamma_train_en"], models / "energy_model.pkl", workdir=work))
    applied = parallel({f"apply_energy_{name}": (lambda name=name: ctapipe_steps.apply_models(
        env, samples[name], stand_in / f"{name}_energy.h5", [energy], workdir=work))
        for name in ("gamma_train_cl", "proton_train_cl")})
    classifier = timed("train_classifier", lambda: ctapipe_steps.train_classifier(
        env, configs, applied["apply_energy_gamma_train_cl"],
        applied["apply_energy_proton_train_cl"], models / "classifier_model.pkl",
        workdir=work))
    tests = parallel({name: (lambda name=name: ctapipe_steps.apply_models(
        env, samples[name], dl2 / f"{name}.DL2.h5", [energy, classifier], workdir=work,
        parameters=False)) for name in ("gamma_test", "proton_test", "electron_test")})
    irf = timed("optimise_and_irf", lambda: ctapipe_steps.optimise_and_irf(
        env, configs, tests["gamma_test"], tests["proton_test"], tests["electron_test"],
        tmp_path / "irf", workdir=work))

    energy_r2 = ctapipe_steps.training_scores(ctapipe_steps.log_path(energy))
    auc = ctapipe_steps.training_scores(ctapipe_steps.log_path(classifier))
    gamma = ctapipe_steps.summarise(tests["gamma_test"])
    summary = ctapipe_steps.irf_summary(irf)
    report = {"timings_s": {k: round(v, 1) for k, v in timings.items()},
              "energy_r2": energy_r2, "classifier_auc": auc, "gamma_test": gamma,
              "irf": summary}
    print(f"\nctapipe chain: {report}")
    assert len(auc) == 2, auc  # LST and NectarCam
    assert all(0.6 < value < 1.0 for value in auc.values()), auc
    assert all(value > 0.5 for value in energy_r2.values()), energy_r2
    assert gamma["array_events"] == CHAIN_EVENTS["gamma_test"]
    # what the report histograms: reconstructed energy and gammaness of the applied file
    energies, gammaness = ctapipe_dl2(tests["gamma_test"])
    assert len(energies) == len(gammaness) == CHAIN_EVENTS["gamma_test"]
    assert np.nanmin(gammaness) >= 0 and np.nanmax(gammaness) <= 1
    assert gamma["dl2_energy_ExtraTreesRegressor"] > 0.3 * CHAIN_EVENTS["gamma_test"]
    assert gamma["dl2_particle_type_ExtraTreesClassifier"] > 0.3 * CHAIN_EVENTS["gamma_test"]
    assert irf.cuts.is_file() and irf.irf.is_file() and irf.benchmarks is not None
    assert not list((tmp_path / "irf").glob("*.part*"))
    assert 10 <= summary["effective_area_bins_above_zero"] < summary["effective_area_bins"]
    assert 1e3 < summary["effective_area_max_m2"] < 1e7
    low, high = summary["energy_resolution_range"]
    assert 0 < low <= high < 1
