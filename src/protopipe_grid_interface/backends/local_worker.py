"""Processes behind the local backend: the queue runner and the job wrapper.

``python -m protopipe_grid_interface.backends.local_worker queue ROOT N`` takes Waiting jobs and
runs at most N at once, each as ``... job ROOT ID`` in a session of its own (so a killed CLI does
not take its jobs with it), and exits once nothing is waiting or running. A job whose wrapper
died without reporting is set ``Failed`` ("Job stalled"), as DIRAC's StalledJobAgent would.

The job wrapper does what DIRAC's JobWrapper does: stage the input data and sandbox into a
scratch folder, run the steps in the payload environment, upload and register the output.
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
from ..models import JobStatus
from .local import LocalBackend

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


def run_queue(root: Path, max_parallel: int) -> None:
    """Run Waiting jobs until there are none left; one runner per root at a time."""
    with open(root / "runner.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        backend = LocalBackend(root, max_parallel=max_parallel)
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
            free = max(0, max_parallel - busy)
            for job_id in backend.waiting_jobs(free):
                if not backend.set_status(job_id, JobStatus.MATCHED, "Assigned",
                                          only_from=[JobStatus.WAITING]):
                    continue
                child = subprocess.Popen(  # noqa: S603 - fixed argument list
                    [sys.executable, "-m", __spec__.name if __spec__ else __name__,
                     "job", str(root), str(job_id)],
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
                backend.set_process(job_id, child.pid)
                children[job_id] = child
                busy += 1
            if busy == 0:
                return
            time.sleep(POLL_SECONDS)


def payload_environment(env_path: str) -> dict[str, str]:
    """The process environment of a job: the payload environment's ``bin`` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    if env_path:
        env["VIRTUAL_ENV"] = env_path
        env["PATH"] = os.pathsep.join([str(Path(env_path) / "bin"), env.get("PATH", "")])
    return env


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
        with open(log_path, "a") as log:
            log.write(f"ERROR {minor}: {detail}\n")
        backend.set_status(job_id, JobStatus.FAILED, minor, application, only_from=IN_FLIGHT)
        return 1

    if not backend.set_status(job_id, JobStatus.RUNNING, "Input Data Resolution",
                              only_from=[JobStatus.MATCHED]):
        return 0
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
    backend.set_status(job_id, JobStatus.DONE, "Execution Complete", "Job Finished Successfully",
                       only_from=[JobStatus.COMPLETING])
    return 0


def main(argv: list[str]) -> int:
    command, root = argv[0], Path(argv[1])
    if command == "queue":
        run_queue(root, int(argv[2]))
        return 0
    return run_job(root, int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
