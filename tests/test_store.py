"""The state database: planning is idempotent, state changes are atomic and recorded."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protopipe_grid_interface.exceptions import DataError
from protopipe_grid_interface.models import JobSpec, JobState, JobStatus, Particle, Stage
from protopipe_grid_interface.store import SCHEMA_VERSION, Download, JobRow, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "state.sqlite")
    yield opened
    opened.close()


@pytest.fixture
def specs(job_spec: Callable[..., JobSpec]) -> list[JobSpec]:
    return [job_spec(f"job_{i}") for i in range(3)]


def submitted(store: Store, specs: list[JobSpec], first_id: int = 100) -> dict[str, int]:
    """Take ``specs`` through Sending to Received with ids first_id, first_id + 1, ..."""
    ids = {s.name: first_id + n for n, s in enumerate(specs)}
    store.mark_sending(list(ids))
    store.mark_submitted("local", list(ids.items()))
    return ids


def test_add_planned_is_idempotent(store: Store, specs: list[JobSpec]) -> None:
    assert store.add_planned(specs) == (3, 0)
    assert store.add_planned(specs) == (0, 0)
    assert store.add_planned(reversed(specs)) == (0, 0)

    records = store.jobs()
    assert [r.name for r in records] == sorted(s.name for s in specs)
    assert all(r.status == JobStatus.PLANNED and r.backend_id is None for r in records)
    assert [r.spec for r in records] == sorted(specs, key=lambda s: s.name)


def test_add_planned_refreshes_planned_specs_only(store: Store, specs: list[JobSpec]) -> None:
    store.add_planned(specs)
    submitted(store, specs[:1])
    changed = [dataclasses.replace(s, cpu_time=s.cpu_time + 1) for s in specs]

    assert store.add_planned(changed) == (0, 2)

    by_name = {r.name: r.spec for r in store.jobs()}
    assert by_name[specs[0].name] == specs[0]  # submitted: keeps what it was submitted with
    assert by_name[specs[1].name] == changed[1]
    assert by_name[specs[2].name] == changed[2]
    assert store.add_planned(changed) == (0, 0)


def test_state_survives_reopening_and_schema_version_is_recorded(
        tmp_path: Path, specs: list[JobSpec]) -> None:
    path = tmp_path / "state.sqlite"
    first = Store(path)
    first.add_planned(specs)
    first.close()

    again = Store(path)
    assert [r.name for r in again.jobs()] == sorted(s.name for s in specs)
    again.close()
    raw = sqlite3.connect(path)
    version = raw.execute("PRAGMA user_version").fetchone()[0]
    raw.close()
    assert version == SCHEMA_VERSION


def test_a_version_1_database_is_migrated_and_tells_our_submitting_from_diracs(
        tmp_path: Path, specs: list[JobSpec]) -> None:
    """Version 1 called our own "under way" state Submitting, like DIRAC's unconfirmed jobs;
    opened by version 2, ours (recorded without a backend id) becomes Sending."""
    path = tmp_path / "state.sqlite"
    store = Store(path)
    store.add_planned(specs)
    ours, diracs, running = (s.name for s in specs)
    ids = submitted(store, specs[1:])
    store.update_states({diracs: JobState(ids[diracs], JobStatus.SUBMITTING,
                                          "Bulk transaction confirmation"),
                         running: JobState(ids[running], JobStatus.RUNNING, "Application")})
    store.mark_sending([ours])
    store.close()
    raw = sqlite3.connect(path)  # as version 1 wrote it
    raw.execute("UPDATE jobs SET status = 'Submitting' WHERE status = 'Sending'")
    raw.execute("UPDATE history SET status = 'Submitting' WHERE status = 'Sending'")
    raw.execute("ALTER TABLE downloads DROP COLUMN mtime_ns")  # new in version 3
    raw.execute("DROP TABLE merges")
    raw.execute("ALTER TABLE jobs DROP COLUMN not_before")  # new in version 5
    raw.execute("ALTER TABLE jobs ADD COLUMN spec TEXT NOT NULL DEFAULT ''")  # apart since 6
    raw.execute("UPDATE jobs SET spec = (SELECT spec FROM specs WHERE specs.name = jobs.name)")
    raw.execute("DROP TABLE specs")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()

    migrated = Store(path)

    by_name = {r.name: r.status for r in migrated.jobs()}
    assert by_name == {ours: JobStatus.SENDING, diracs: JobStatus.SUBMITTING,
                       running: JobStatus.RUNNING}
    assert [h[0] for h in migrated.history(diracs)] == ["Sending", "Received", "Submitting"]
    assert [h[0] for h in migrated.history(ours)] == ["Sending"]
    assert {r.name: r.spec for r in migrated.jobs()} == {s.name: s for s in specs}
    migrated.record_downloads([Download("/vo/a", tmp_path / "a", 1, "00000001", "fetched", 5)])
    assert migrated.downloads()["/vo/a"].mtime_ns == 5
    migrated.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()

    with pytest.raises(DataError, match="newer"):
        Store(path)


def test_transaction_is_all_or_nothing(store: Store, specs: list[JobSpec]) -> None:
    store.add_planned(specs)

    with pytest.raises(KeyboardInterrupt), store.transaction() as db:
        db.execute("UPDATE jobs SET status = 'Done'")
        raise KeyboardInterrupt

    assert {r.status for r in store.jobs()} == {JobStatus.PLANNED}


def test_mark_submitted_records_each_attempt(store: Store, specs: list[JobSpec]) -> None:
    store.add_planned(specs)
    first = submitted(store, specs)
    store.mark_planned([specs[0].name], "resubmission requested")
    second = submitted(store, specs[:1], first_id=500)

    by_name = {r.name: r for r in store.jobs()}
    record = by_name[specs[0].name]
    assert (record.backend, record.backend_id, record.attempts, record.status) == (
        "local", 500, 2, JobStatus.RECEIVED)
    assert by_name[specs[1].name].attempts == 1
    assert store.known_backend_ids([specs[0].name]) == {first[specs[0].name],
                                                        second[specs[0].name]}
    statuses = [h[0] for h in store.history(specs[0].name)]
    assert statuses == ["Sending", "Received", "Planned", "Sending", "Received"]


def test_update_states_applies_changes_once_and_ignores_stale_ids(
        store: Store, specs: list[JobSpec]) -> None:
    store.add_planned(specs)
    ids = submitted(store, specs)
    a, b, c = (s.name for s in specs)
    states = {
        a: JobState(ids[a], JobStatus.RUNNING, "Application", "protopipe running", "LCG.X.fr"),
        b: JobState(ids[b], JobStatus.FAILED, "Application Finished With Errors"),
        c: JobState(ids[c] + 999, JobStatus.DONE, "Execution Complete"),  # an older attempt's id
    }

    assert store.update_states(states) == 2
    assert store.update_states(states) == 0

    by_name = {r.name: r for r in store.jobs()}
    assert (by_name[a].status, by_name[a].application_status, by_name[a].site) == (
        JobStatus.RUNNING, "protopipe running", "LCG.X.fr")
    assert by_name[b].status == JobStatus.FAILED
    assert by_name[c].status == JobStatus.RECEIVED
    assert [h[0] for h in store.history(a)] == ["Sending", "Received", "Running"]


def test_update_states_writes_history_only_for_jobs_whose_state_changed(
        store: Store, specs: list[JobSpec]) -> None:
    store.add_planned(specs)
    ids = submitted(store, specs)
    same, moved, site_only = (s.name for s in specs)
    received = {name: JobState(ids[name], JobStatus.RECEIVED, "Job accepted")
                for name in (same, moved, site_only)}
    store.update_states({name: JobState(ids[name], JobStatus.WAITING, "Pilot Agent Submission")
                         for name in (moved, site_only)})
    before = {name: store.history(name) for name in (same, moved, site_only)}

    changed = store.update_states({
        same: received[same],
        moved: JobState(ids[moved], JobStatus.RUNNING, "Application", "protopipe", "LCG.A.fr"),
        site_only: JobState(ids[site_only], JobStatus.WAITING, "Pilot Agent Submission", "",
                            "LCG.B.fr"),
        "not_a_job": JobState(1, JobStatus.DONE),
    })

    assert changed == 2
    assert store.history(same) == before[same]
    [(status, minor, application, _)] = store.history(moved)[len(before[moved]):]
    assert (status, minor, application) == ("Running", "Application", "protopipe")
    assert [h[:3] for h in store.history(site_only)[len(before[site_only]):]] == [
        ("Waiting", "Pilot Agent Submission", "")]
    assert store.history("not_a_job") == []
    rows = {r.name: r for r in store.jobs()}
    assert rows[site_only].site == "LCG.B.fr"
    assert rows[moved].updated == store.history(moved)[-1][3]
    assert rows[same].updated == before[same][-1][3]


def test_job_rows_are_the_jobs_without_their_specs(
        store: Store, job_spec: Callable[..., JobSpec]) -> None:
    gamma = [job_spec(f"g{i}") for i in range(4)]
    proton = [dataclasses.replace(job_spec(f"p{i}"), particle=Particle.PROTON,
                                  stage=Stage.TRAINING_CLASSIFICATION) for i in range(3)]
    store.add_planned(proton + gamma)
    ids = submitted(store, gamma[:3] + proton[:1])
    store.update_states({"g0": JobState(ids["g0"], JobStatus.DONE, "Execution Complete", "ok",
                                        "LCG.A.fr"),
                         "g1": JobState(ids["g1"], JobStatus.FAILED, "Stalled", "", "LCG.B.fr")})
    store.set_output([("g0", 12, "0000000c")])
    store.mark_planned(["g1"], "retry", not_before="2026-01-01T00:00:00.000+00:00")
    filters: list[dict[str, Any]] = [
        {}, {"stage": Stage.DL2}, {"particle": Particle.PROTON},
        {"statuses": [JobStatus.RECEIVED, JobStatus.PLANNED]},
        {"stage": Stage.DL2, "statuses": [JobStatus.DONE]},
        {"names": ["p0", "g3", "g1", "nope"]}, {"names": []},
    ]

    for chosen in filters:
        records, rows = store.jobs(**chosen), store.job_rows(**chosen)
        assert [tuple(getattr(r, field) for field in JobRow._fields) for r in records] \
            == [tuple(row) for row in rows], chosen
    rows = {row.name: row for row in store.job_rows()}
    assert (rows["g0"].status, rows["g0"].output_size, rows["g0"].output_lfn) == (
        JobStatus.DONE, 12, gamma[0].output_lfn)
    assert rows["g1"].not_before == "2026-01-01T00:00:00.000+00:00"


def test_job_rows_decode_no_spec(store: Store, specs: list[JobSpec],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store.add_planned(specs)

    def refuse(data: dict[str, Any]) -> JobSpec:
        raise AssertionError("a spec was decoded")

    monkeypatch.setattr(JobSpec, "from_dict", refuse)
    assert [row.name for row in store.job_rows()] == sorted(s.name for s in specs)


def test_add_planned_in_one_call_with_a_name_twice_keeps_the_last_spec(
        store: Store, specs: list[JobSpec]) -> None:
    changed = dataclasses.replace(specs[0], cpu_time=specs[0].cpu_time + 1)

    assert store.add_planned([specs[0], specs[1], changed, specs[1]]) == (2, 1)

    assert {r.name: r.spec for r in store.jobs()} == {specs[0].name: changed,
                                                      specs[1].name: specs[1]}


def test_mark_output_present_and_set_output(store: Store, specs: list[JobSpec]) -> None:
    store.add_planned(specs)
    submitted(store, specs[1:])

    store.mark_output_present([(specs[0].name, 1234, "0badcafe")])
    store.set_output([(specs[1].name, 99, "00000001")])

    by_name = {r.name: r for r in store.jobs()}
    assert (by_name[specs[0].name].status, by_name[specs[0].name].output_size,
            by_name[specs[0].name].output_checksum) == (JobStatus.DONE, 1234, "0badcafe")
    assert by_name[specs[1].name].status == JobStatus.RECEIVED
    assert (by_name[specs[1].name].output_size, by_name[specs[1].name].output_checksum) == (
        99, "00000001")
    store.set_output([(specs[1].name, 99, "00000002")])
    assert store.jobs(names=[specs[1].name])[0].output_checksum == "00000002"


def test_jobs_filters_and_counts(store: Store, job_spec: Callable[..., JobSpec]) -> None:
    gamma = [job_spec(f"g{i}") for i in range(3)]
    proton = [dataclasses.replace(job_spec(f"p{i}"), particle=Particle.PROTON,
                                  stage=Stage.TRAINING_CLASSIFICATION) for i in range(2)]
    store.add_planned(gamma + proton)
    submitted(store, gamma[:1])

    assert [r.name for r in store.jobs(particle=Particle.PROTON)] == ["p0", "p1"]
    assert [r.name for r in store.jobs(stage=Stage.DL2, statuses=[JobStatus.PLANNED])] == [
        "g1", "g2"]
    assert [r.name for r in store.jobs(names=["p1", "g0", "nope"])] == ["g0", "p1"]
    assert store.counts() == [("dl2", "gamma", "Planned", 2, 0), ("dl2", "gamma", "Received", 1, 0),
                              ("training-classification", "proton", "Planned", 2, 0)]


def test_downloads_manifest_keeps_the_latest_outcome(store: Store, tmp_path: Path) -> None:
    lfn = "/vo.cta.in2p3.fr/user/t/tester/a.h5"
    store.record_downloads([Download(lfn, tmp_path / "a.h5", 10, "0000000a", "failed")])
    store.record_downloads([Download(lfn, tmp_path / "a.h5", 10, "0000000a", "fetched", 42)])

    assert store.downloads() == {lfn: Download(lfn, tmp_path / "a.h5", 10, "0000000a",
                                               "fetched", 42)}
    assert store.downloads([lfn, "/vo/other"]) == store.downloads()


def test_commands_are_recorded(store: Store) -> None:
    command = store.start_command(["protopipe-grid", "submit"], "0.5.0", {"grid.yaml": "abc"})
    store.finish_command(command, 0)

    [row] = store.commands()
    assert row["id"] == command
    assert (row["argv"], row["version"], row["exit_code"]) == (
        '["protopipe-grid", "submit"]', "0.5.0", 0)
    assert row["finished"] is not None


def test_results_keep_the_latest_of_each_step_and_particle(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    store.record_result("merge dl2", "gamma", {"rows": {"reco_events": 10}})
    store.record_result("merge dl2", "gamma", {"rows": {"reco_events": 12}}, ["thin"])
    store.record_result("performance", "", {"bins": 3})
    results = store.results("merge dl2")
    assert [(r.particle, r.figures, r.warnings) for r in results] == [
        ("gamma", {"rows": {"reco_events": 12}}, ("thin",))]
    assert [r.step for r in Store(tmp_path / "state.sqlite").results()] == [
        "merge dl2", "performance"]


def test_fingerprints_are_kept_per_stage_and_particle(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    assert store.fingerprint(Stage.DL2, Particle.GAMMA) is None
    store.record_fingerprint(Stage.DL2, Particle.GAMMA, {"list": "ab"})
    store.record_fingerprint(Stage.DL2, Particle.GAMMA, {"list": "cd"})
    assert store.fingerprint(Stage.DL2, Particle.GAMMA) == {"list": "cd"}
    assert store.fingerprint(Stage.DL2, Particle.PROTON) is None
