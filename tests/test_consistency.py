"""A consistent analysis: stale jobs detected after a re-split or a new model, never
overwritten or submitted again silently; training and test files never shared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from analysis_configs import register_inputs, write_configs

from protopipe_grid_interface.backends.fake import FakeBackend
from protopipe_grid_interface.exceptions import InputError
from protopipe_grid_interface.models import JobStatus, Particle, Stage
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow import consistency, submit, track
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.split import SplitInput
from protopipe_grid_interface.workflow.tree import create_analysis

GAMMAS = [f"/vo.cta.in2p3.fr/MC/gamma_20deg_0deg_run{100 + i}___cta-prod3.simtel.zst"
          for i in range(20)]


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(hold=True) as held:
        yield held


@pytest.fixture
def analysis(tmp_path: Path, backend: FakeBackend) -> Analysis:
    tree = create_analysis(tmp_path, "ana", None, grid_home=backend.home())
    write_configs(tree.configs)
    gammas = tmp_path / "gamma.list"
    gammas.write_text("".join(f"{lfn}\n" for lfn in GAMMAS))
    register_inputs(backend, GAMMAS)
    analysis = Analysis.open(tree.metadata_file)
    analysis.split([SplitInput(Particle.GAMMA, gammas, [10, 10, 80])], seed=1)
    return analysis


def submitted(store: Store, backend: FakeBackend, analysis: Analysis, stage: Stage
              ) -> list[str]:
    specs = analysis.plan(stage, Particle.GAMMA, backend.storage_elements()[0])
    submit.submit(store, backend, specs)
    consistency.record(store, backend, analysis, specs)
    return [spec.name for spec in specs]


def test_a_split_with_another_seed_is_refused_then_makes_the_stage_stale(
        analysis: Analysis, backend: FakeBackend, tmp_path: Path) -> None:
    store = analysis.store()
    jobs = submitted(store, backend, analysis, Stage.TRAINING_ENERGY)
    again = [SplitInput(Particle.GAMMA, tmp_path / "gamma.list", [10, 10, 80])]

    with pytest.raises(InputError, match="already exists with a different content"):
        analysis.split(again, seed=2)
    analysis.split(again, seed=2, overwrite=True)

    plan = analysis.plan(Stage.TRAINING_ENERGY, Particle.GAMMA, backend.storage_elements()[0])
    [stale] = consistency.stale(store, backend, analysis, plan)
    assert (stale.stage, stale.particle) == (Stage.TRAINING_ENERGY, Particle.GAMMA)
    assert {r.name for r in stale.jobs} == set(jobs)
    assert "their input files left the list" in stale.line()
    # the files the old jobs trained on are now in the DL2 list: training and test overlap
    [overlap] = consistency.overlaps(analysis, store)
    assert overlap.startswith("gamma: ") and "training-energy and the dl2 data" in overlap


def test_a_new_model_makes_the_dl2_jobs_stale(analysis: Analysis, backend: FakeBackend) -> None:
    store = analysis.store()
    plan = analysis.plan(Stage.DL2, Particle.GAMMA, backend.storage_elements()[0])
    models = plan[0].input_data
    for lfn in models:
        backend.register(lfn, backend.storage_elements()[0], b"model one")
    jobs = submitted(store, backend, analysis, Stage.DL2)
    assert consistency.stale(store, backend, analysis, plan) == []

    regressor = next(lfn for lfn in models if "regressor_LSTCam" in lfn)
    backend.remove([regressor])
    backend.register(regressor, backend.storage_elements()[0], b"model two")

    [stale] = consistency.stale(store, backend, analysis, plan)
    assert {r.name for r in stale.jobs} == set(jobs)
    assert f"{regressor.rpartition('/')[2]} changed since they were submitted" in stale.line()


def test_a_changed_analysis_yaml_makes_every_submitted_job_stale(
        analysis: Analysis, backend: FakeBackend) -> None:
    store = analysis.store()
    jobs = submitted(store, backend, analysis, Stage.TRAINING_ENERGY)
    plan = analysis.plan(Stage.TRAINING_ENERGY, Particle.GAMMA, backend.storage_elements()[0])
    analysis.config_path.write_text(analysis.config_path.read_text() + "# tuned\n")
    [stale] = consistency.stale(store, backend, analysis, plan)
    assert {r.name for r in stale.jobs} == set(jobs)
    assert "analysis.yaml changed" in stale.line()


def test_replan_stops_the_stale_jobs_removes_their_outputs_and_submits_them_anew(
        analysis: Analysis, backend: FakeBackend) -> None:
    store = analysis.store()
    submitted(store, backend, analysis, Stage.TRAINING_ENERGY)
    [first] = store.jobs(stage=Stage.TRAINING_ENERGY)
    backend.register(first.spec.output_lfn, backend.storage_elements()[0], b"old output")
    analysis.config_path.write_text(analysis.config_path.read_text() + "# tuned\n")
    plan = analysis.plan(Stage.TRAINING_ENERGY, Particle.GAMMA, backend.storage_elements()[0])

    again = consistency.replan(store, backend, analysis, plan,
                               consistency.stale(store, backend, analysis, plan))

    assert again == [first.name]
    assert backend.status([first.backend_id or 0])[first.backend_id or 0].status == \
        JobStatus.KILLED
    assert backend.metadata([first.spec.output_lfn]) == {}
    assert consistency.stale(store, backend, analysis, plan) == []
    report = submit.submit(store, backend, plan)
    [(name, new_id)] = report.submitted
    assert name == first.name and new_id != first.backend_id
    track.update(store, backend, store.jobs())
    assert store.jobs(names=[name])[0].attempts == 2


def test_keep_accepts_the_change_and_submits_nothing_again(
        analysis: Analysis, backend: FakeBackend) -> None:
    store = analysis.store()
    submitted(store, backend, analysis, Stage.TRAINING_ENERGY)
    analysis.config_path.write_text(analysis.config_path.read_text() + "# tuned\n")
    plan = analysis.plan(Stage.TRAINING_ENERGY, Particle.GAMMA, backend.storage_elements()[0])
    consistency.keep(store, backend, analysis, plan)
    assert consistency.stale(store, backend, analysis, plan) == []
    assert submit.submit(store, backend, plan).submitted == []


def test_lists_sharing_a_file_are_refused(analysis: Analysis, tmp_path: Path) -> None:
    dl2 = analysis.list_file(Stage.DL2, Particle.GAMMA)
    training = analysis.list_file(Stage.TRAINING_ENERGY, Particle.GAMMA).read_text()
    dl2.write_text(dl2.read_text() + training.splitlines()[0] + "\n")
    [overlap] = consistency.overlaps(analysis, None)
    assert f"e.g. {training.splitlines()[0]}" in overlap


def test_settle_refuses_stale_jobs_unless_replanned_with_approval_or_kept(
        analysis: Analysis, backend: FakeBackend) -> None:
    store = analysis.store()
    submitted(store, backend, analysis, Stage.TRAINING_ENERGY)
    analysis.config_path.write_text(analysis.config_path.read_text() + "# tuned\n")
    plan = analysis.plan(Stage.TRAINING_ENERGY, Particle.GAMMA, backend.storage_elements()[0])

    with pytest.raises(InputError, match="analysis.yaml changed"):
        consistency.settle(store, backend, analysis, plan, False, False, lambda found: True)
    found, again = consistency.settle(store, backend, analysis, plan, True, False,
                                      lambda found: False)
    assert len(found) == 1 and again is None  # declined: nothing changed
    assert all(r.status is not JobStatus.PLANNED for r in store.jobs())
    found, again = consistency.settle(store, backend, analysis, plan, False, True,
                                      lambda found: False)
    assert len(found) == 1 and again == []
    assert consistency.settle(store, backend, analysis, plan, False, False,
                              lambda found: False) == ([], [])
