"""Processes behind the local backend: the queue runner and the job wrapper.

``python -m protopipe_grid_interface.backends.local_worker queue ROOT N SITE...`` matches Waiting
jobs to the SITEs and runs at most N at once, each as ``... job ROOT ID`` in a session of its own
(so a killed CLI does not take its jobs with it), and exits once nothing is waiting or running
(a job held by a fault or banned from every site keeps it polling). A job whose wrapper died
without reporting is set ``Failed`` ("Job stalled"), as DIRAC's StalledJobAgent would.

The job wrapper does what DIRAC's JobWrapper does: stage the input data and sandbox into a
scratch folder, run the steps in the payload environment, upload and register the output; or,
when an injected fault hits the attempt, fail the way that fault says (``faults``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..exceptions import PipelineError
from ..models import FailureClass, JobSpec, JobStatus
from .faults import MINOR_STATUS, STALLED_SECONDS
from .local import DEFAULT_SITES, LocalBackend

POLL_SECONDS = 0.2
IN_FLIGHT = (JobStatus.MATCHED, JobStatus.RUNNING, JobStatus.COMPLETING)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_queue(root: Path, max_parallel: int, sites: list[str]) -> None:
    """Run Waiting jobs at ``sites`` until there are none left; one runner per root at a
    time. It also stops when its root is removed (a test's temporary folder)."""
    with open(root / "runner.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        backend = LocalBackend(root, max_parallel=max_parallel, sites=sites)
        children: dict[int, subprocess.Popen[bytes]] = {}
        while True:
            for job_id, child in list(children.items()):
                if child.poll() is not None:
                    del children[job_id]
            in_flight = backend.job_pids(IN_FLIGHT)
            busy = 0
            for job_id, pid in in_flight:
                if job_id in children or pid_alive(pid):
                    busy += 1
                else:
                    backend.set_status(job_id, JobStatus.FAILED, "Job stalled: worker died",
                                       only_from=IN_FLIGHT)
            for job_id in backend.match_waiting(max(0, max_parallel - busy)):
                child = subprocess.Popen(  # noqa: S603 - fixed argument list
                    [sys.executable, "-m", __spec__.name if __spec__ else __name__,
                     "job", str(root), str(job_id)],
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
                backend.set_process(job_id, child.pid)
                children[job_id] = child
                busy += 1
            if (busy == 0 and not backend.has_waiting()) or not root.is_dir():
                return
            time.sleep(POLL_SECONDS)


def payload_environment(env_path: str) -> dict[str, str]:
    """The process environment of a job: the payload environment's ``bin`` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    if env_path:
        env["VIRTUAL_ENV"] = env_path
        env["PATH"] = os.pathsep.join([str(Path(env_path) / "bin"), env.get("PATH", "")])
    return env


def report_failure(backend: LocalBackend, job_id: int, log_path: Path, minor: str,
                   application: str, detail: str,
                   only_from: tuple[JobStatus, ...] = IN_FLIGHT) -> int:
    """Log an error line, set the job Failed (if still in ``only_from``); the exit code."""
    with open(log_path, "a") as log:
        log.write(f"ERROR {minor}: {detail}\n")
    backend.set_status(job_id, JobStatus.FAILED, minor, application, only_from=only_from)
    return 1


def run_job(root: Path, job_id: int) -> int:
    """Stage inputs, run the steps, upload the output; report every state change."""
    backend = LocalBackend(root)
    spec, env_path = backend.job_spec(job_id)
    job_dir = backend.job_dir(job_id)
    work = job_dir / "work"
    shutil.rmtree(job_dir, ignore_errors=True)
    work.mkdir(parents=True)
    log_path = job_dir / "std.out"

    def fail(minor: str, application: str, detail: str) -> int:
        return report_failure(backend, job_id, log_path, minor, application, detail)

    if not backend.set_status(job_id, JobStatus.RUNNING, "Input Data Resolution",
                              only_from=[JobStatus.MATCHED]):
        return 0
    fault = backend.take_fault(job_id)
    if fault is not None and fault != FailureClass.UPLOAD:
        return act_out(fault, backend, job_id, spec, log_path)
    staged: list[Path] = []
    try:
        for lfn in (*spec.input_lfns, *spec.input_data):
            target = work / Path(lfn).name
            backend.get_file(lfn, target)
            staged.append(target)
        for sandbox_file in spec.input_sandbox:
            shutil.copy2(sandbox_file, work / Path(sandbox_file).name)
    except (PipelineError, OSError) as exc:
        return fail("Input Data Resolution", "", str(exc))

    environment = payload_environment(env_path)
    with open(log_path, "a") as log:
        for step in spec.steps:
            program = Path(step[0]).name
            if not backend.set_status(job_id, JobStatus.RUNNING, "Application",
                                      f"{program} running", only_from=[JobStatus.RUNNING]):
                return 1  # killed or forced to a final state meanwhile: stop here
            log.write(f"=== {' '.join(step)}\n")
            log.flush()
            try:
                code = subprocess.run(  # noqa: S603 - argument list from the job spec
                    list(step), cwd=work, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env=environment, check=False,
                ).returncode
            except OSError as exc:
                return fail("Application Finished With Errors", f"{program} not found",
                            str(exc))
            if code != 0:
                return fail("Application Finished With Errors",
                            f"{program} Exited With Status {code}", f"exit code {code}")
    for path in staged:
        path.unlink(missing_ok=True)

    if not backend.set_status(job_id, JobStatus.COMPLETING, "Uploading Output Data",
                              only_from=[JobStatus.RUNNING]):
        return 1
    output = work / spec.output_file
    if not output.is_file():
        return fail("Application Finished With Errors", "output file missing", str(output))
    try:
        backend.remove([spec.output_lfn])
        backend.put_file(output, spec.output_lfn, spec.output_se)
    except (PipelineError, OSError) as exc:
        return fail("Uploading Job OutputData", "", str(exc))
    output.unlink()
    if fault == FailureClass.UPLOAD:  # the output is registered: DIRAC PR #7758's partial output
        return fail(MINOR_STATUS[fault], "", "injected fault: the output was registered, "
                    "then the upload request failed")
    backend.set_status(job_id, JobStatus.DONE, "Execution Complete", "Job Finished Successfully",
                       only_from=[JobStatus.COMPLETING])
    return 0


def act_out(fault: FailureClass, backend: LocalBackend, job_id: int, spec: JobSpec,
            log_path: Path) -> int:
    """Fail this attempt the way ``fault`` says, with DIRAC's strings (see ``faults``)."""
    minor = MINOR_STATUS[fault]

    def fail(application: str, detail: str,
             only_from: tuple[JobStatus, ...] = IN_FLIGHT) -> int:
        return report_failure(backend, job_id, log_path, minor, application,
                              f"injected fault: {detail}", only_from)

    program = Path(spec.steps[0][0]).name if spec.steps else "payload"
    if fault == FailureClass.INPUT_DATA:
        missing = ", ".join((*spec.input_lfns, *spec.input_data)) or "(no input data)"
        return fail("", f"MissingLFNs: {missing}")
    if fault == FailureClass.STALLED:
        if not backend.set_status(job_id, JobStatus.STALLED, minor, only_from=IN_FLIGHT):
            return 1
        time.sleep(STALLED_SECONDS)
        return fail("", "the pilot stopped reporting",
                    only_from=(JobStatus.STALLED,))
    if fault == FailureClass.RESCHEDULINGS:
        if not backend.set_status(job_id, JobStatus.RESCHEDULED, "Job Rescheduled",
                                  only_from=IN_FLIGHT):
            return 1
        return fail("", "rescheduled too many times",
                    only_from=(JobStatus.RESCHEDULED,))
    if not backend.set_status(job_id, JobStatus.RUNNING, "Application", f"{program} running",
                              only_from=[JobStatus.RUNNING]):
        return 1
    with open(log_path, "a") as log:
        log.write(f"=== {' '.join(spec.steps[0]) if spec.steps else program}\n")
    if fault == FailureClass.WATCHDOG:
        return fail("", f"the watchdog killed {program}")
    return fail(f"{program} Exited With Status 1", f"{program} exited with status 1")


def main(argv: list[str]) -> int:
    command, root = argv[0], Path(argv[1])
    if command == "queue":
        run_queue(root, int(argv[2]), argv[3:] or list(DEFAULT_SITES))
        return 0
    return run_job(root, int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
