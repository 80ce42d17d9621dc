"""The ctapipe profile's planning: process jobs, their canary, CTADIRAC's catalog layout, and a
ctapipe analysis opened, planned and checked like a protopipe one (no payload needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from protopipe_grid_interface.config import CtapipeSection, load_metadata
from protopipe_grid_interface.exceptions import ConfigError, InputError
from protopipe_grid_interface.models import Particle, Stage
from protopipe_grid_interface.workflow import consistency, steps, validate
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.ctapipe_catalog import Layout
from protopipe_grid_interface.workflow.ctapipe_plan import (
    ProcessSettings,
    obs_ids,
    plan_process_jobs,
)
from protopipe_grid_interface.workflow.plan import canary_job
from protopipe_grid_interface.workflow.tree import create_analysis

ROOT = "/vo.cta.in2p3.fr/user/j/jdoe/ana"
LAYOUT = Layout(ROOT, CtapipeSection())
SETTINGS = ProcessSettings("ana", LAYOUT, ("/cfg/base_config.yaml", "/cfg/ml.yaml"), "SE-1",
                           files_per_job=2)


def lfns(runs: list[int], particle: str = "gamma") -> list[str]:
    return [f"/vo/MC/PROD6/{particle}/{particle}_20deg_180deg_run{run}___cta-prod6.simtel.zst"
            for run in runs]


def test_jobs_process_each_file_with_its_run_as_obs_id_then_merge_without_images() -> None:
    specs = plan_process_jobs(Stage.TRAINING_ENERGY, Particle.GAMMA, lfns([1001, 1002, 1003]),
                              SETTINGS)
    assert [s.name for s in specs] == ["ctapipe_ana_train_en_gamma_run1001-run1002",
                                       "ctapipe_ana_train_en_gamma_run1003"]
    first, last = specs
    assert first.output_file == "gamma_train_en_run1001-run1002.DL2.h5"
    assert first.output_lfn == (f"{ROOT}/PROD6/LaPalma/gamma/ctapipe-process/0000/Data/001xxx/"
                                "gamma_train_en_run1001-run1002.DL2.h5")
    process, second, merge = first.steps
    assert process[:3] == ("python", "ctapipe_job.py", "ctapipe-process")
    assert process[3:7] == ("-c", "base_config.yaml", "-c", "ml.yaml")
    assert "--SimTelEventSource.override_obs_id=1001" in process
    assert "--SimTelEventSource.override_obs_id=1002" in second
    assert merge[2:] == ("ctapipe-merge", "--no-dl1-images", "--no-true-images", "-o",
                         first.output_file, *first.intermediate_files)
    assert first.input_sandbox[0].endswith("payload/ctapipe_job.py")
    # one file: processed straight into the output, nothing to merge
    assert len(last.steps) == 1 and last.intermediate_files == ()
    assert last.steps[0][last.steps[0].index("-o") + 1] == last.output_file


def test_obs_ids_fall_back_to_positions_when_runs_are_missing_or_repeated() -> None:
    assert obs_ids(lfns([7, 9])) == dict(zip(lfns([7, 9]), [7, 9], strict=True))
    same = [*lfns([5]), *lfns([5], "other")]
    assert list(obs_ids(same).values()) == [1, 2]
    assert list(obs_ids(["/a/x.simtel.zst", "/a/y.simtel.zst"]).values()) == [1, 2]


def test_the_canary_processes_one_file_and_merges_that_one_part() -> None:
    spec = plan_process_jobs(Stage.DL2, Particle.PROTON, lfns([1, 2], "proton"), SETTINGS)[0]
    canary = canary_job(spec)
    assert canary.input_lfns == spec.input_lfns[:1]
    assert canary.steps[0] == spec.steps[0]
    assert canary.steps[1][-3:] == ("-o", spec.output_file, spec.intermediate_files[0])
    assert "/canary/" in canary.output_lfn


def test_layout_levels_carry_ctadirac_keys_top_down() -> None:
    levels = dict(LAYOUT.levels(Particle.PROTON))
    data = f"{ROOT}/PROD6/LaPalma/proton/ctapipe-process/0000/Data"
    assert levels[f"{ROOT}/PROD6"] == {"MCCampaign": "PROD6"}
    assert levels[f"{ROOT}/PROD6/LaPalma/proton"] == {"particle": "proton"}
    assert levels[data]["data_level"] == 2 and levels[data]["outputType"] == "Data"
    version = levels[f"{ROOT}/PROD6/LaPalma/proton/ctapipe-process/0000"]
    assert version["analysis_prog_version"] == "v0.32.0" and version["phiP"] == 180.0
    assert LAYOUT.file_metadata(Stage.TRAINING_CLASSIFICATION, 12, 77) == {
        "split": "train_cl", "nsb": 1, "runNumber": 12, "jobID": 77}
    assert "runNumber" not in LAYOUT.file_metadata(Stage.DL2, None, None)


@pytest.fixture
def ctapipe_analysis(tmp_path: Path) -> Analysis:
    """A ctapipe analysis without ctapipe's configurations (quickstart needs the payload):
    stand-in process configurations, and a list of the energy split's gammas."""
    tree = create_analysis(tmp_path, "cta", None, grid_home="/vo/user/j/jdoe",
                           pipeline="ctapipe")
    for name in CtapipeSection().process_configs:
        (tree.configs / name).write_text("DataWriter: {write_dl1_parameters: true}\n")
    listed = tree.simtel_lists / "gamma_train_en.list"
    listed.parent.mkdir(parents=True, exist_ok=True)
    listed.write_text("\n".join(lfns([1, 2, 3])) + "\n")
    grid = yaml.safe_load(tree.grid_config.read_text())
    grid["EnergyRegressor"]["gamma_list"] = str(listed)
    tree.grid_config.write_text(yaml.safe_dump(grid))
    return Analysis.open(tree.metadata_file)


def test_a_ctapipe_analysis_opens_and_plans_with_its_own_planner(ctapipe_analysis: Analysis
                                                                  ) -> None:
    analysis = ctapipe_analysis
    assert analysis.pipeline == "ctapipe"
    assert load_metadata(analysis.tree.metadata_file).pipeline == "ctapipe"
    assert steps.load_workflow(analysis.tree.root / steps.FILE_NAME).document.pipeline == \
        "ctapipe"
    specs = analysis.plan(Stage.TRAINING_ENERGY, Particle.GAMMA, "SE-1")
    assert [len(s.input_lfns) for s in specs] == [3]  # n_file_per_job 10 by default
    assert specs[0].output_lfn.startswith(f"{analysis.tree.lfn_root}/PROD6/LaPalma/gamma/")
    # the consistency fingerprint is taken from the configurations the jobs are sent
    sent = consistency.fingerprint(analysis, _NoModels(), specs)
    assert set(sent) == {"base_config.yaml", "ml_preprocessing_config.yaml"}


def test_a_missing_process_config_is_refused_before_the_grid(ctapipe_analysis: Analysis
                                                              ) -> None:
    (ctapipe_analysis.tree.configs / "ml_preprocessing_config.yaml").unlink()
    with pytest.raises(ConfigError, match=r"Ctapipe.process_configs: "
                                          r"ml_preprocessing_config.yaml: not found"):
        validate.check_analysis(ctapipe_analysis, None)


def test_the_ctapipe_workflow_runs_every_split_at_once_and_trains_after_merging() -> None:
    workflow = steps.Workflow(steps.WorkflowFile.model_validate(
        yaml.safe_load(steps.template("ctapipe"))))
    assert [s.name for s in workflow.document.steps if s.kind == "grid" and s.needs] == []
    assert {"regressor", "collect-training-energy"} <= workflow.upstream("classifier")
    assert "apply-dl2" in workflow.upstream("performance")


def test_a_protopipe_analysis_metadata_stays_as_it_was(tmp_path: Path) -> None:
    tree = create_analysis(tmp_path, "pp", None)
    assert "pipeline" not in yaml.safe_load(tree.metadata_file.read_text())


class _NoModels:
    """A backend stand-in for a fingerprint of jobs that read no model."""

    def metadata(self, lfns: object) -> dict[str, object]:
        return {}


def test_stage_lists_come_from_the_catalogs_split_metadata(ctapipe_analysis: Analysis) -> None:
    from protopipe_grid_interface.backends.fake import FakeBackend

    backend = FakeBackend()
    production = "/vo/MC/PROD6/LaPalma"
    for particle, runs in (("gamma", [1, 2, 3]), ("proton", [4, 5])):
        for lfn in lfns(runs, particle):
            backend.register(f"{production}/{particle}/{lfn.rpartition('/')[2]}", "LOCAL-SE",
                             b"x")
        backend.set_metadata(f"{production}/{particle}", {"particle": particle})
    splits = {1: "train_en", 2: "test", 3: "test", 4: "train_cl", 5: "test"}
    for lfn in backend.find_files(production, {}):
        run = int(lfn.split("_run")[1].split("_")[0])
        backend.set_metadata(lfn, {"split": splits[run]})
    written = ctapipe_analysis.split_from_catalog(backend, production, {}, overwrite=True)
    counts = {(s.particle.value, s.stage.value): len(s.lfns) for s, _ in written}
    assert counts == {("gamma", "training-energy"): 1, ("gamma", "dl2"): 2,
                      ("proton", "training-classification"): 1, ("proton", "dl2"): 1}
    test_gammas = ctapipe_analysis.list_file(Stage.DL2, Particle.GAMMA)
    assert test_gammas.read_text().count("\n") == 2
    with pytest.raises(InputError, match="no file below /vo/MC/PROD5"):
        ctapipe_analysis.split_from_catalog(backend, "/vo/MC/PROD5", {})


def test_a_protopipe_workflow_refuses_ctapipe_steps() -> None:
    document = {"steps": [{"name": "tag", "kind": "catalog", "stage": "dl2"}]}
    with pytest.raises(ValueError, match="catalog steps are for the ctapipe pipeline"):
        steps.WorkflowFile.model_validate(document)
