"""The planner: names, grouping, models, determinism and refusals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import subprocess
import sys
from pathlib import Path

import pytest

from protopipe_grid_interface.exceptions import InputError
from protopipe_grid_interface.models import JobSpec, Particle, Stage
from protopipe_grid_interface.workflow.plan import (
    MAX_JOB_NAME,
    PlanSettings,
    plan_jobs,
    run_token,
)

MERGE_SCRIPT = (Path(__file__).resolve().parents[1] / "src" / "protopipe_grid_interface"
                / "payload" / "merge_tables.py")
HOME = "/vo.cta.in2p3.fr/user/j/jdoe/analyses/myana"
SIM = "/vo.cta.in2p3.fr/MC/PROD3/Paranal/{p}/simtel/1234/Data/000xxx"
PROD3_NAME = "{p}_20deg_{az}deg_run{n}___cta-prod3_desert-2150m-Paranal-merged.simtel.gz"


def lfns(count: int, particle: str = "gamma", first: int = 101, az: int = 0) -> list[str]:
    return [posixpath.join(SIM.format(p=particle), PROD3_NAME.format(p=particle, az=az, n=n))
            for n in range(first, first + count)]


def settings(**overrides: object) -> PlanSettings:
    values: dict[str, object] = dict(
        analysis="myana",
        lfn_stage_dir=f"{HOME}/data/TRAINING/for_energy_estimation/gamma",
        lfn_estimators=f"{HOME}/estimators",
        analysis_config="/home/jdoe/myana/configs/analysis.yaml",
        cam_ids=("LSTCam", "NectarCam"),
        output_se="CC-IN2P3-USER",
        merge_script=str(MERGE_SCRIPT),
    )
    values.update(overrides)
    return PlanSettings(**values)  # type: ignore[arg-type]


def arg(step: tuple[str, ...], option: str) -> str:
    """The value following ``option`` in a step."""
    assert step.count(option) == 1, (option, step)
    return step[step.index(option) + 1]


# --- naming -----------------------------------------------------------------------------------
def test_run_token_of_a_prod3_file_name() -> None:
    name = "gamma_20deg_0deg_run101___cta-prod3_desert-2150m-Paranal-merged.simtel.gz"
    assert run_token(name, 0) == "run101"
    assert run_token(f"{SIM.format(p='gamma')}/{name}", 5) == "run101"


def test_run_token_falls_back_to_any_run_number_then_to_the_index() -> None:
    assert run_token("/vo/MC/proton_run42.simtel.gz", 3) == "run42"
    assert run_token("/vo/MC/dir_with_many_run9_parts/electron.simtel.gz", 7) == "file7"


def test_job_and_output_names_follow_the_original_tool() -> None:
    [spec] = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(10), settings())

    assert spec.name == "protopipe_myana_TRAINING_energy_gamma_run101-run110"
    assert spec.output_file == "TRAINING_energy_gamma_tail_run101-run110.h5"
    assert spec.output_lfn == (f"{HOME}/data/TRAINING/for_energy_estimation/gamma/"
                               "TRAINING_energy_gamma_tail_run101-run110.h5")
    assert (spec.analysis, spec.stage, spec.particle, spec.output_se) == (
        "myana", Stage.TRAINING_ENERGY, Particle.GAMMA, "CC-IN2P3-USER")
    assert spec.job_group == "myana.TRE"


@pytest.mark.parametrize(("stage", "particle", "name", "output"), [
    (Stage.TRAINING_CLASSIFICATION, Particle.PROTON,
     "protopipe_myana_TRAINING_classification_proton_run7",
     "TRAINING_classification_proton_wave_run7.h5"),
    (Stage.DL2, Particle.ELECTRON, "protopipe_myana_DL2_electron_run7",
     "DL2_electron_wave_run7.h5"),
])
def test_single_file_job_names(stage: Stage, particle: Particle, name: str, output: str) -> None:
    [spec] = plan_jobs(stage, particle, lfns(1, particle.value, first=7),
                       settings(mode="wave", files_per_job=1))

    assert (spec.name, spec.output_file) == (name, output)
    assert spec.output_lfn.endswith("/" + output)


# --- grouping ---------------------------------------------------------------------------------
def test_25_files_10_per_job_make_3_jobs_the_last_with_5() -> None:
    files = lfns(25)

    specs = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, files, settings(files_per_job=10))

    assert [len(s.input_lfns) for s in specs] == [10, 10, 5]
    assert [lfn for s in specs for lfn in s.input_lfns] == files
    assert [s.name.rsplit("_", 1)[1] for s in specs] == [
        "run101-run110", "run111-run120", "run121-run125"]


def test_multi_file_job_runs_protopipe_per_file_then_merges() -> None:
    [spec] = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(4), settings())

    *runs, merge = spec.steps
    assert len(runs) == 4
    assert all(step[0] == "protopipe-TRAINING" for step in runs)
    assert [arg(step, "--infile_list") for step in runs] == [
        posixpath.basename(lfn) for lfn in spec.input_lfns]
    parts = [arg(step, "--outfile") for step in runs]
    assert len(set(parts)) == 4 and spec.output_file not in parts
    assert all(p.startswith("TRAINING_energy_gamma_tail_run") and p.endswith(".h5")
               for p in parts)
    assert merge[:2] == ("python", "merge_tables.py")
    assert merge[2] in ("-o", "--output")  # what payload/merge_tables.py accepts
    assert merge[3:] == (spec.output_file, *parts)
    assert spec.intermediate_files == tuple(parts)  # what the job removes once merged


def test_single_file_job_writes_the_final_output_directly() -> None:
    specs = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(21), settings())

    last = specs[-1]
    assert last.input_lfns == (lfns(21)[-1],)
    [step] = last.steps
    assert arg(step, "--outfile") == last.output_file == "TRAINING_energy_gamma_tail_run121.h5"
    assert last.intermediate_files == ()


def test_merge_step_is_accepted_by_the_shipped_merge_script(tmp_path: Path) -> None:
    [spec] = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(2), settings())
    merge = spec.steps[-1]
    assert Path(merge[1]).name == MERGE_SCRIPT.name

    # the parts do not exist: the script must fail on them (exit 1), not on its usage (exit 2)
    result = subprocess.run([sys.executable, str(MERGE_SCRIPT), *merge[2:]], cwd=tmp_path,
                            capture_output=True, text=True, check=False)

    assert result.returncode == 1, result.stderr


def test_protopipe_arguments_for_each_stage() -> None:
    base = settings(max_events=500, files_per_job=1)
    [energy] = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(1), base)
    [classification] = plan_jobs(Stage.TRAINING_CLASSIFICATION, Particle.PROTON,
                                 lfns(1, "proton"), base)
    [dl2] = plan_jobs(Stage.DL2, Particle.GAMMA, lfns(1),
                      dataclasses.replace(base, force_tailcut_for_extended_cleaning=True))
    infile = posixpath.basename(lfns(1)[0])

    assert energy.steps == ((
        "protopipe-TRAINING", "--config_file", "analysis.yaml",
        "--outfile", "TRAINING_energy_gamma_tail_run101.h5", "--indir", "./",
        "--infile_list", infile, "--max_events", "500", "--tail",
        "--cam_ids", "LSTCam", "NectarCam"),)
    [step] = classification.steps
    assert step[0] == "protopipe-TRAINING"
    assert (arg(step, "--estimate_energy"), arg(step, "--regressor_config"),
            arg(step, "--regressor_dir")) == ("True", "RandomForestRegressor.yaml", "./")
    [step] = dl2.steps
    assert step[0] == "protopipe-DL2"
    assert (arg(step, "--regressor_config"), arg(step, "--classifier_config")) == (
        "RandomForestRegressor.yaml", "RandomForestClassifier.yaml")
    assert "--force_tailcut_for_extended_cleaning" in step
    assert step[-3:] == ("--cam_ids", "LSTCam", "NectarCam")


def test_every_file_a_step_names_is_staged_or_in_the_sandbox() -> None:
    for stage, particle in [(Stage.TRAINING_ENERGY, Particle.GAMMA),
                            (Stage.TRAINING_CLASSIFICATION, Particle.GAMMA),
                            (Stage.DL2, Particle.PROTON)]:
        for spec in plan_jobs(stage, particle, lfns(13, particle.value), settings()):
            staged = {posixpath.basename(p) for p in (*spec.input_lfns, *spec.input_data,
                                                      *spec.input_sandbox)}
            written: set[str] = set()
            for step in spec.steps:
                if step[0] == "python":
                    assert step[1] in staged
                    assert set(step[4:]) <= written  # merge only what earlier steps wrote
                    continue
                for option in ("--config_file", "--infile_list", "--regressor_config",
                               "--classifier_config"):
                    if option in step:
                        assert arg(step, option) in staged, (option, spec.name)
                written.add(arg(step, "--outfile"))
            assert spec.output_file in written | {spec.steps[-1][3]}


# --- models -----------------------------------------------------------------------------------
def test_model_inputs_per_stage() -> None:
    est = f"{HOME}/estimators"
    [energy] = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(1), settings())
    [classification] = plan_jobs(Stage.TRAINING_CLASSIFICATION, Particle.GAMMA, lfns(1),
                                 settings())
    [dl2] = plan_jobs(Stage.DL2, Particle.ELECTRON, lfns(1, "electron"), settings())
    [dl2_no_classifier] = plan_jobs(Stage.DL2, Particle.GAMMA, lfns(1),
                                    settings(classifier_method="None"))

    regressor = (f"{est}/RandomForestRegressor.yaml",
                 f"{est}/regressor_LSTCam_RandomForestRegressor.pkl.gz",
                 f"{est}/regressor_NectarCam_RandomForestRegressor.pkl.gz")
    classifier = (f"{est}/RandomForestClassifier.yaml",
                  f"{est}/classifier_LSTCam_RandomForestClassifier.pkl.gz",
                  f"{est}/classifier_NectarCam_RandomForestClassifier.pkl.gz")
    assert energy.input_data == ()
    assert classification.input_data == regressor
    assert dl2.input_data == regressor + classifier
    assert dl2_no_classifier.input_data == regressor
    assert "--classifier_config" not in dl2_no_classifier.steps[0]


def test_sandbox_holds_the_analysis_config_and_the_merge_script() -> None:
    [spec] = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(3), settings())
    assert spec.input_sandbox == ("/home/jdoe/myana/configs/analysis.yaml", str(MERGE_SCRIPT))


# --- determinism and uniqueness ---------------------------------------------------------------
def test_same_inputs_give_identical_specs() -> None:
    files = lfns(95)
    first = plan_jobs(Stage.DL2, Particle.GAMMA, files, settings())
    second = plan_jobs(Stage.DL2, Particle.GAMMA, list(files), settings())

    assert [s.spec_hash for s in first] == [s.spec_hash for s in second]
    assert first == second
    assert all(JobSpec.from_dict(s.to_dict()) == s for s in first)
    changed = plan_jobs(Stage.DL2, Particle.GAMMA, files, settings(cpu_time=3600))
    assert not {s.spec_hash for s in changed} & {s.spec_hash for s in first}


def test_spec_hashes_stay_those_recorded_by_earlier_versions() -> None:
    """to_dict no longer deep-copies (``dataclasses.asdict``), but gives the same fields and
    values: a spec hashes as before, so a database planned earlier sees no spec as changed."""
    spec = plan_jobs(Stage.DL2, Particle.GAMMA, lfns(3), settings())[0]

    assert spec.to_dict() == dataclasses.asdict(spec)
    blob = json.dumps(dataclasses.asdict(spec), sort_keys=True).encode()
    assert spec.spec_hash == hashlib.sha256(blob).hexdigest()[:16]


@pytest.mark.parametrize("per_job", [1, 10])
def test_names_and_outputs_are_unique_even_when_run_numbers_collide(per_job: int) -> None:
    # two pointings of the same production reuse the same run numbers
    files = lfns(20, az=0) + lfns(20, az=180)

    specs = plan_jobs(Stage.DL2, Particle.GAMMA, files, settings(files_per_job=per_job))

    assert len(specs) == 40 // per_job
    assert len({s.name for s in specs}) == len(specs)
    assert len({s.output_lfn for s in specs}) == len(specs)
    assert len({s.output_file for s in specs}) == len(specs)
    for spec in specs:
        parts = [arg(step, "--outfile") for step in spec.steps if step[0] != "python"]
        assert len(set(parts)) == len(parts)


def test_max_jobs_caps_the_plan() -> None:
    files = lfns(25)
    assert [s.input_lfns for s in plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, files,
                                            settings(max_jobs=2))] == [
        tuple(files[:10]), tuple(files[10:20])]
    assert len(plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, files,
                         settings(max_jobs=-1))) == 3


# --- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("per_job", [0, -1])
def test_files_per_job_must_be_positive(per_job: int) -> None:
    with pytest.raises(InputError, match="files per job"):
        plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(3),
                  settings(files_per_job=per_job))


@pytest.mark.parametrize(("stage", "particle"), [
    (Stage.TRAINING_ENERGY, Particle.PROTON),
    (Stage.TRAINING_ENERGY, Particle.ELECTRON),
    (Stage.TRAINING_CLASSIFICATION, Particle.ELECTRON),
])
def test_wrong_particle_for_the_stage(stage: Stage, particle: Particle) -> None:
    with pytest.raises(InputError, match=particle.value):
        plan_jobs(stage, particle, lfns(3, particle.value), settings())


def test_job_name_longer_than_dirac_accepts() -> None:
    fixed = len("protopipe__TRAINING_energy_gamma_run101")
    fits = "a" * (MAX_JOB_NAME - fixed)
    [spec] = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(1), settings(analysis=fits))
    assert len(spec.name) == MAX_JOB_NAME

    with pytest.raises(InputError, match=str(MAX_JOB_NAME)):
        plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(1), settings(analysis=fits + "a"))


def test_duplicate_lfn_is_named() -> None:
    files = lfns(5)
    with pytest.raises(InputError, match=PROD3_NAME.format(p="gamma", az=0, n=103)):
        plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, [*files, files[2]], settings())


def test_missing_cameras_or_models_are_refused() -> None:
    with pytest.raises(InputError, match="cam"):
        plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(1), settings(cam_ids=()))
    with pytest.raises(InputError, match="models"):
        plan_jobs(Stage.DL2, Particle.GAMMA, lfns(1),
                  settings(regressor_method=None, classifier_method="none"))


# --- input-data sites -------------------------------------------------------------------------
def test_with_sites_each_job_reads_files_of_one_site_only() -> None:
    files = lfns(12)
    # interleaved: even runs at CNAF only, odd runs at both DESY and CNAF
    sites = {lfn: ("CNAF-Disk",) if i % 2 == 0 else ("DESY-ZN-Disk", "CNAF-Disk")
             for i, lfn in enumerate(files)}
    specs = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, files, settings(files_per_job=4),
                      sites=sites)

    assert [len(s.input_lfns) for s in specs] == [4, 2, 4, 2]
    for spec in specs:
        assert len({frozenset(sites[lfn]) for lfn in spec.input_lfns}) == 1, spec.input_lfns
    assert sorted(lfn for s in specs for lfn in s.input_lfns) == sorted(files)
    # order within a site is kept, and names still follow the runs they hold
    assert specs[0].input_lfns == tuple(files[0:8:2])
    assert specs[0].name.endswith("run101-run107")


def test_sites_that_all_agree_change_nothing() -> None:
    files = lfns(25)
    plain = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, files, settings())
    same_site = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, files, settings(),
                          sites={lfn: ("CNAF-Disk",) for lfn in files})
    assert same_site == plain


def test_files_without_known_replicas_form_their_own_jobs() -> None:
    files = lfns(5)
    sites = {lfn: ("CNAF-Disk",) for lfn in files[:3]}
    specs = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, files, settings(), sites=sites)
    assert [s.input_lfns for s in specs] == [tuple(files[:3]), tuple(files[3:])]


def test_dirac_submission_groups_share_everything_a_parametric_job_shares() -> None:
    """What goes into one parametric DIRAC submission (no DIRAC needed to decide it)."""
    from protopipe_grid_interface.backends.dirac import submission_groups

    files = lfns(6)
    energy = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, files[:4], settings(files_per_job=1))
    other_se = plan_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, files[4:],
                         settings(files_per_job=1, output_se="DESY-ZN-USER"))
    without_inputs = dataclasses.replace(energy[3], name="no-input", input_lfns=())
    mixed = [energy[0], other_se[0], energy[1], without_inputs, other_se[1], energy[2]]

    groups = submission_groups(mixed)

    assert [[s.name for s in g] for g in groups] == [
        [energy[0].name, energy[1].name, energy[2].name],
        [other_se[0].name, other_se[1].name],
        ["no-input"]]
