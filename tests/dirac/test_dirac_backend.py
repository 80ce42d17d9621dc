"""The DIRAC backend against the live DIRAC box: the backend contract, then what only DIRAC has.

The tests run inside the box venv with the DIRAC client environment (``dirac-box/client-env.sh``),
so ``sys.prefix`` is a Python environment that also exists on the box's worker node: it is the
payload environment of every job here.

The box runs one job at a time through its JobAgent (which polls less often while it finds
nothing to run; the first match can take a minute) and other test modules share it, so:

- every job a test submits is deleted (DIRAC kills it first) when the test ends, so that jobs
  nobody waits for never hold up the next test's jobs;
- jobs that must stay ``Waiting`` ask for a tag no worker has (:data:`HOLD_TAG`): the JobAgent
  never matches them;
- the contract's waits get a longer default bound (:data:`JOB_TIMEOUT`); the contract's own
  explicit bounds (the kill test's 30 s) are kept.

Contract tests that fail because of a known bug in ``src/`` are strict xfails
(:data:`SRC_BUGS`): they start failing as soon as the bug is fixed, so the entry gets removed.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import contract
import pytest
from contract import BackendContract, count_calls, write

from protopipe_grid_interface.backends.dirac import DiracBackend, Environment
from protopipe_grid_interface.exceptions import BackendError, TransientBackendError
from protopipe_grid_interface.iterutils import chunked
from protopipe_grid_interface.models import JobSpec, JobState, JobStatus, Particle, Stage

pytestmark = pytest.mark.dirac

#: a tag no worker of the box offers: jobs asking for it stay Waiting
HOLD_TAG = "pgi-test-hold"
#: default bound of the contract's waits on the box (its own explicit bounds are kept): a job
#: takes 20-60 s, but the box is shared and its JobAgent may be running others' jobs first
JOB_TIMEOUT = 600.0
TRANSIENT_MESSAGE = "Failed to get file catalog configuration"

#: contract tests failing because of a known bug in src/ (test name -> reason)
SRC_BUGS: dict[str, str] = {}


def make_backend(admin_proxy: Path | None, **options: Any) -> DiracBackend:
    return DiracBackend(Environment("venv", sys.prefix), ses=["BOX-SE", "BOX-SE2"],
                        admin_proxy=admin_proxy, **options)


def reap(backend: DiracBackend, ids: Sequence[int]) -> None:
    """Delete (DIRAC kills them first) jobs a test made; check none of them can still run.

    DIRAC's ``deleteJob`` fails now and then for jobs the optimizers are still busy with, and
    answers "Some jobs failed deletion" for ``Killed`` jobs it does delete, so the outcome is
    read back from the job states, and jobs still active are killed.
    """
    for chunk in chunked(list(ids), 1000):
        backend.api.deleteJob(chunk)
        backend.kill(chunk)
        active = {i: s.status for i, s in backend.status(chunk).items()
                  if not s.status.is_final}
        assert not active, f"jobs still active after teardown: {active}"


@pytest.fixture
def reaped() -> Iterator[Callable[[DiracBackend], DiracBackend]]:
    """``reaped(backend)``: the backend, with every job it submits reaped at teardown."""
    made: list[tuple[DiracBackend, list[int]]] = []

    def track(backend: DiracBackend) -> DiracBackend:
        ids: list[int] = []
        real = backend.submit

        def submit(specs: Sequence[JobSpec]) -> list[int]:
            try:
                submitted = real(specs)
            except BaseException:  # chunks submitted before the failure are there too
                found = backend.find_jobs([s.name for s in specs])
                ids.extend(i for name_ids in found.values() for i in name_ids)
                raise
            ids.extend(submitted)
            return submitted

        backend.submit = submit  # type: ignore[method-assign]
        made.append((backend, ids))
        return backend

    yield track
    for backend, ids in made:
        reap(backend, ids)


def fail_first(monkeypatch: pytest.MonkeyPatch, owner: object, method: str, message: str,
               times: int = 1) -> list[int]:
    """Make ``owner.method`` answer DIRAC's ``S_ERROR(message)`` to its first ``times`` calls
    and call the real method after that; return the record of calls (one entry each)."""
    real = getattr(owner, method)
    calls: list[int] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            return {"OK": False, "Message": message}
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, method, wrapper)
    return calls


class TestDiracBackend(BackendContract):
    """The contract, on the box."""

    def test_reschedule_of_failed_job_runs_it_again(
            self, backend: DiracBackend, make_spec: Callable[..., JobSpec]) -> None:
        """On DIRAC: the failed job goes back to the queue under the same id.

        The box does not run it again: after DIRAC's reschedule delay the job is Waiting in
        the JobDB but missing from the TaskQueueDB (seen on DIRAC 9.1.9), so its JobAgent never
        matches it; what we control, the reschedule itself, is checked here.
        """
        spec = make_spec("raise SystemExit(3)")
        [job_id] = backend.submit([spec])
        assert contract.wait_final(backend, [job_id])[job_id].status == JobStatus.FAILED

        backend.reschedule([job_id])

        assert not backend.status([job_id])[job_id].status.is_final
        assert backend.find_jobs([spec.name]) == {spec.name: [job_id]}  # same id, no new job

    @pytest.fixture
    def backend(self, dirac_box: Any, reaped: Callable[[DiracBackend], DiracBackend]
                ) -> DiracBackend:
        return reaped(make_backend(dirac_box.admin_proxy))

    @pytest.fixture(autouse=True)
    def patient_waits(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The contract's waits, with a default bound fit for the box's JobAgent."""
        for name in ("wait_final", "wait_status"):
            real = getattr(contract, name)

            def patient(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
                kwargs.setdefault("timeout", JOB_TIMEOUT)
                return _real(*args, **kwargs)

            monkeypatch.setattr(contract, name, patient)

    @pytest.fixture(autouse=True)
    def known_src_bugs(self, request: pytest.FixtureRequest) -> None:
        reason = SRC_BUGS.get(request.node.originalname)
        if reason:
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


# --- DIRAC only ---------------------------------------------------------------------------------
@pytest.fixture
def backend(dirac_box: Any, reaped: Callable[[DiracBackend], DiracBackend]) -> DiracBackend:
    return reaped(make_backend(dirac_box.admin_proxy, backoff=0.01))


def make_specs(home: str, se: str, codes: Sequence[str], hold: bool = False,
               inputs: Sequence[Sequence[str]] = ()) -> list[JobSpec]:
    """One spec per Python ``code`` (its only step), fresh names; with ``hold`` they stay
    Waiting (they ask for :data:`HOLD_TAG`); ``inputs``: the input LFNs of each."""
    token = uuid.uuid4().hex[:8]
    inputs = inputs or [()] * len(codes)
    return [JobSpec(name=f"pgi_dirac_{token}_{n}", analysis="pgi-dirac-test", stage=Stage.DL2,
                    particle=Particle.GAMMA, input_lfns=tuple(lfns),
                    steps=(("python", "-c", code),), output_file=f"pgi_dirac_{token}_{n}.txt",
                    output_lfn=f"{home}/pgi-dirac-test/{token}/pgi_dirac_{token}_{n}.txt",
                    output_se=se, cpu_time=600, tags=(HOLD_TAG,) if hold else ())
            for n, (code, lfns) in enumerate(zip(codes, inputs, strict=True))]


@pytest.fixture
def specs(dirac_box: Any) -> Callable[..., list[JobSpec]]:
    """``specs(n, hold=True, inputs=())``: n specs of one trivial step each."""
    return lambda n, hold=True, inputs=(): make_specs(dirac_box.home, dirac_box.se,
                                                      ["pass"] * n, hold, inputs)


@pytest.fixture
def input_files(backend: DiracBackend, dirac_box: Any, tmp_path: Path
                ) -> Iterator[Callable[[int], list[str]]]:
    """``input_files(n)``: n small files put in a fresh catalog folder, removed at teardown."""
    folder = f"{dirac_box.home}/pgi-dirac-test/{uuid.uuid4().hex[:12]}"
    made: list[str] = []

    def put(n: int) -> list[str]:
        for i in range(len(made), len(made) + n):
            lfn = f"{folder}/input_{i}.txt"
            backend.put_file(write(tmp_path / f"input_{i}.txt", f"input {i}".encode()), lfn,
                             dirac_box.se)
            made.append(lfn)
        return made[-n:]

    yield put
    backend.remove(made)


def wait_waiting(backend: DiracBackend, ids: Sequence[int]) -> None:
    for job_id in ids:
        contract.wait_status(backend, job_id, frozenset({JobStatus.WAITING}), timeout=60)


def test_parametric_chunks_of_max_parametric(
        backend: DiracBackend, specs: Callable[..., list[JobSpec]],
        input_files: Callable[[int], list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Five jobs, at most two per submission: 2 + 2 + 1, each job with its own input data,
    and one sandbox upload for all three submissions."""
    simtel = input_files(2)
    monkeypatch.setattr(backend, "max_parametric", lambda: 2)
    five = specs(5, inputs=[[simtel[i % 2]] for i in range(5)])
    submit_calls = count_calls(monkeypatch, backend.job_manager, "submitJob")
    uploads = count_calls(monkeypatch, backend.sandboxes, "uploadFilesAsSandbox")
    before = backend.round_trips

    ids = backend.submit(five)

    assert len(ids) == 5 and len(set(ids)) == 5
    assert (len(submit_calls), len(uploads)) == (3, 1)
    assert backend.round_trips - before == 3 + 3 + 1  # submit and confirm each chunk, upload
    assert backend.find_jobs([s.name for s in five]) == {
        s.name: [i] for s, i in zip(five, ids, strict=True)}
    # each job of a parametric chunk runs its own entry of the manifest, with its own input
    # data, to its own output, from the one uploaded sandbox
    sandboxes = set()
    for s, job_id in zip(five, ids, strict=True):
        jdl = backend.call("getJobJDL", backend.api.getJobJDL, job_id)
        assert jdl["JobName"] == s.name
        assert jdl["pgijob"] == s.name
        assert jdl["OutputData"] == f"LFN:{s.output_lfn}"
        assert backend.job_input_data(job_id) == list(s.input_lfns)
        sandboxes.add(jdl["InputSandbox"])
    assert len(sandboxes) == 1 and sandboxes.pop().startswith("SB:")


def test_a_server_limit_below_the_configured_one_is_followed(
        backend: DiracBackend, specs: Callable[..., list[JobSpec]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The CS says 130, the JobManager refuses more than its 100: the backend follows it."""
    server_limit = backend.max_parametric()
    backend._max_parametric = server_limit + 30
    submit_calls = count_calls(monkeypatch, backend.job_manager, "submitJob")
    many = specs(server_limit + 5)

    ids = backend.submit(many)

    assert len(set(ids)) == len(many)
    assert backend.max_parametric() == server_limit
    # the refused request created nothing; then server_limit + 5 jobs
    assert len(submit_calls) == 3
    assert backend.find_jobs([s.name for s in many]) == {
        s.name: [i] for s, i in zip(many, ids, strict=True)}


def test_max_parametric_is_the_servers_limit(backend: DiracBackend) -> None:
    from DIRAC import gConfig

    configured = gConfig.getValue(
        "/Systems/WorkloadManagement/Services/JobManager/MaxParametricJobs")
    assert configured is not None  # the box sets it (100)
    assert backend.max_parametric() == int(configured)


def test_a_single_job_without_input_data_is_submitted(
        backend: DiracBackend, specs: Callable[..., list[JobSpec]]) -> None:
    [job] = specs(1)

    [job_id] = backend.submit([job])

    assert backend.find_jobs([job.name]) == {job.name: [job_id]}


def test_status_of_many_jobs_is_one_get_job_status_call(
        backend: DiracBackend, specs: Callable[..., list[JobSpec]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ids = backend.submit(specs(5))
    unknown = list(range(max(ids) + 1_000_000, max(ids) + 1_000_000 + 1200))
    calls = count_calls(monkeypatch, backend.api, "getJobStatus")
    before = backend.round_trips

    states = backend.status(ids)

    assert (len(calls), backend.round_trips - before) == (1, 1)
    assert sorted(states) == sorted(ids)
    assert all(states[i].status not in (JobStatus.PLANNED, JobStatus.SUBMITTING) for i in ids)

    states = backend.status([*ids, *unknown])  # 1205 ids: two chunks of at most 1000

    assert (len(calls), backend.round_trips - before) == (3, 3)
    assert [len(args[0]) for args in calls[1:]] == [1000, 205]
    assert sorted(states) == sorted(ids)


def test_transient_error_is_retried_then_succeeds(
        backend: DiracBackend, tmp_path: Path, dirac_box: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    lfn = f"{dirac_box.home}/pgi-dirac-test/{uuid.uuid4().hex[:12]}/t.txt"
    put = backend.put_file(write(tmp_path / "t.txt", b"transient"), lfn, dirac_box.se)
    try:
        calls = fail_first(monkeypatch, backend.api, "getLfnMetadata", TRANSIENT_MESSAGE)
        before = backend.round_trips

        found = backend.metadata([lfn])

        assert found == {lfn: put}
        assert len(calls) == 2  # the failure, then the real call
        assert backend.round_trips - before == 3  # getLfnMetadata twice, getReplicas once
    finally:
        monkeypatch.undo()
        backend.remove([lfn])


def test_transient_errors_are_retried_a_bounded_number_of_times(
        dirac_box: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make_backend(dirac_box.admin_proxy, retries=2, backoff=0.01)
    calls = fail_first(monkeypatch, backend.api, "getJobStatus", TRANSIENT_MESSAGE, times=10)

    with pytest.raises(TransientBackendError, match=TRANSIENT_MESSAGE):
        backend.status([1])

    assert len(calls) == 3 == backend.round_trips


def test_non_transient_failure_raises_at_once_with_diracs_message(backend: DiracBackend) -> None:
    from DIRAC.Interfaces.API.Dirac import Dirac

    unknown = 2_000_000_000
    direct = Dirac().rescheduleJob([unknown])
    assert not direct["OK"]
    before = backend.round_trips

    with pytest.raises(BackendError) as raised:
        backend.reschedule([unknown])

    assert direct["Message"] in str(raised.value)
    assert not isinstance(raised.value, TransientBackendError)
    assert backend.round_trips - before == 1  # not retried


def test_home_survives_a_registry_look_up_failure_that_dirac_cached(
        backend: DiracBackend, dirac_box: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry failed once (seen under load): getProxyInfo then answers OK without a
    username, and DIRAC caches the failed look-up of the DN for 5 minutes."""
    from DIRAC import gConfig
    from DIRAC.ConfigurationSystem.Client.Helpers.Registry import getUsernameForDN
    from DIRAC.Core.Security.ProxyInfo import getProxyInfo

    backend.ready()
    with monkeypatch.context() as patch:
        patch.setattr(gConfig, "getSections", lambda *a, **k: {"OK": False, "Message": "down"})
        getUsernameForDN.cache_clear()
        assert "username" not in getProxyInfo()["Value"]
    assert "username" not in getProxyInfo()["Value"]  # the failure is cached

    assert backend.home() == dirac_box.home


def test_job_input_data_of_an_unknown_job_raises_backend_error(backend: DiracBackend) -> None:
    # DIRAC's own Dirac.getJobJDL raises TypeError there (os.path.exists([]))
    with pytest.raises(BackendError):
        backend.job_input_data(2_000_000_000)


def test_set_failed_on_waiting_jobs_with_the_admin_proxy(
        backend: DiracBackend, specs: Callable[..., list[JobSpec]]) -> None:
    ids = backend.submit(specs(2))
    wait_waiting(backend, ids)

    backend.set_failed(ids, "forced by test")

    states = backend.status(ids)
    assert {(s.status, s.minor_status) for s in states.values()} == {
        (JobStatus.FAILED, "forced by test")}


def test_set_failed_without_the_admin_proxy_is_applied_by_a_default_dirac(
        dirac_box: Any, reaped: Callable[[DiracBackend], DiracBackend],
        specs: Callable[..., list[JobSpec]]) -> None:
    """DIRAC's JobStateUpdate service ships with ``Authorization/Default = authenticated`` (the
    box keeps it), and ``set_failed`` forces the state: the owner's own proxy is enough. The
    backend reads the states back after the call, so a server that refuses shows as an error."""
    backend = reaped(make_backend(None))
    ids = backend.submit(specs(2))
    wait_waiting(backend, ids)

    backend.set_failed(ids, "forced by test")

    assert {s.status for s in backend.status(ids).values()} == {JobStatus.FAILED}


# --- a payload that fails on the worker ---------------------------------------------------------
FailedJobs = tuple[DiracBackend, list[JobSpec], list[int], dict[int, JobState]]


@pytest.fixture(scope="module")
def failed_jobs(dirac_box: Any) -> Iterator[FailedJobs]:
    """Two jobs run to the end by the JobAgent, whose payload exits with status 1 and 4."""
    backend = make_backend(dirac_box.admin_proxy)
    failing = make_specs(dirac_box.home, dirac_box.se, [
        "raise RuntimeError('marker-c41d: the payload gave up')",
        "import sys; print('marker-9e07: exiting with 4', flush=True); sys.exit(4)"])
    ids = backend.submit(failing)
    try:
        yield backend, failing, ids, contract.wait_final(backend, ids, timeout=JOB_TIMEOUT)
    finally:
        reap(backend, ids)


def test_payload_exiting_non_zero_ends_failed_with_its_exit_status(
        failed_jobs: FailedJobs) -> None:
    backend, failing, ids, states = failed_jobs

    assert [states[i].status for i in ids] == [JobStatus.FAILED] * 2
    assert {states[i].minor_status for i in ids} == {"Application Finished With Errors"}
    assert "Exited With Status 1" in states[ids[0]].application_status
    assert "Exited With Status 4" in states[ids[1]].application_status
    assert backend.metadata([s.output_lfn for s in failing]) == {}


def test_log_tail_of_a_failed_payload_shows_why(failed_jobs: FailedJobs) -> None:
    backend, _, ids, _ = failed_jobs

    first, second = (backend.job_log(i).strip().splitlines()[-5:] for i in ids)

    assert "RuntimeError: marker-c41d: the payload gave up" in first
    assert first[-1] == "run_job: python exited with status 1"
    assert "marker-9e07: exiting with 4" in second
    assert second[-1] == "run_job: python exited with status 4"
