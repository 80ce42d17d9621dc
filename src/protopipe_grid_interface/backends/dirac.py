"""The DIRAC backend: the only module that imports DIRAC, lazily, after ``DIRAC.initialize()``.

Jobs go to DIRAC in bulk: specs that share their sandbox, models, group and site bans form a
group, whose input sandbox (every job's steps in ``jobs.json``, the payload scripts, the job
description) is uploaded once; then one parametric job per chunk of at most
``MaxParametricJobs`` (asked of the server) refers to it, each job with its own name, input data
and output LFN. A parametric submission is a transaction: the JobManager creates the jobs
``Submitting``, and they run once the client confirms them (:meth:`DiracBackend.confirm`). Each
job runs ``pgi_job.sh``, which activates the payload environment (CVMFS
conda on the grid, a Python environment at a fixed path elsewhere) and runs the job's steps from
``jobs.json`` with ``run_job.py``: argument lists, never a shell string. Outputs are uploaded
and registered by DIRAC's job wrapper.

Every DIRAC result (``{'OK': ..., 'Value' | 'Message'}``, ``Successful`` / ``Failed`` maps) is
checked; failures become :class:`BackendError` with DIRAC's message; transient ones are retried
a bounded number of times with backoff.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import BackendError, DataError, TransientBackendError
from ..iterutils import chunked
from ..models import ANY_JOB, JobSelection, JobSpec, JobState, JobStatus, RemoteFile
from ..retry import attempts
from .base import Backend
from .usermeta import DIRECTORY, FILE, Field, Value, coerce, declare, missing, normalized

log = logging.getLogger(__name__)

PAYLOAD = Path(__file__).resolve().parent.parent / "payload"
MAX_PARAMETRIC_PATH = "/Systems/WorkloadManagement/Services/JobManager/MaxParametricJobs"
#: DIRAC's shipped ConfigTemplate; a server with a lower limit says so, and we follow it
DEFAULT_MAX_PARAMETRIC = 100
PARAMETRIC_LIMIT = re.compile(r"exceeds the limit of (\d+)")
TRANSIENT = ("Failed to get file catalog configuration", "Connection refused", "timed out",
             "Peer closed connection", "Cannot connect", "Temporary failure")
NO_SUCH_FILE = ("No such file", "not found", "does not exist")
BULK = 1000
#: seconds a delete waits for killed jobs to stop, and between two looks
KILL_WAIT, POLL_SECONDS = 120.0, 2.0


@dataclass(frozen=True)
class Environment:
    """How a job activates the payload: ``conda`` (setup script + env) or ``venv`` (a path)."""

    kind: str
    location: str
    name: str = ""

    def arguments(self, job: str) -> str:
        """Arguments of ``pgi_job.sh`` (no value may hold a space: DIRAC drops them)."""
        values = [self.kind, self.location, *([self.name] if self.kind == "conda" else []), job]
        if any(not v or " " in v for v in values):
            raise BackendError(f"payload environment {values!r}: empty or with spaces")
        return " ".join(values)


class DiracBackend(Backend):
    """Jobs and files on DIRAC; see the module docstring."""

    name = "dirac"
    #: the DIRAC client is not thread safe: downloads run in processes, one client each
    thread_safe = False

    def __init__(
        self,
        environment: Environment,
        ses: Sequence[str] = (),
        admin_proxy: Path | None = None,
        retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.environment = environment
        self.ses = list(ses)
        self.admin_proxy = admin_proxy
        self.retries = retries
        self.backoff = backoff
        self.round_trips = 0
        self._api: Any = None
        self._job_manager: Any = None
        self._sandboxes: Any = None
        self._max_parametric: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Picklable, also after ``ready()``: the copy initialises DIRAC again in its own
        process (download workers)."""
        state = dict(self.__dict__)
        state.update(_api=None, _job_manager=None, _sandboxes=None)
        return state

    # --- DIRAC, lazily ------------------------------------------------------------------------
    @property
    def api(self) -> Any:
        """The ``Dirac()`` API object, after initialising DIRAC once."""
        self.ready()
        return self._api

    @property
    def job_manager(self) -> Any:
        """DIRAC's ``JobManagerClient``: submits, confirms and removes jobs."""
        self.ready()
        return self._job_manager

    @property
    def sandboxes(self) -> Any:
        """DIRAC's ``SandboxStoreClient``, which uploads input sandboxes."""
        self.ready()
        return self._sandboxes

    def ready(self) -> None:
        """Initialise DIRAC once (it reads dirac.cfg and the proxy)."""
        if self._api is None:
            try:
                import DIRAC

                DIRAC.initialize()
                from DIRAC.Interfaces.API.Dirac import Dirac
                from DIRAC.WorkloadManagementSystem.Client.JobManagerClient import (
                    JobManagerClient,
                )
                from DIRAC.WorkloadManagementSystem.Client.SandboxStoreClient import (
                    SandboxStoreClient,
                )
            except ImportError:
                raise BackendError("the DIRAC client is not installed",
                                   "pip install 'protopipe-grid-interface[dirac]'") from None
            except Exception as exc:  # DIRAC.initialize raises plain exceptions
                raise BackendError(f"DIRAC could not start: {exc}",
                                   "check your proxy (dirac-proxy-init) and dirac.cfg") from None
            if not log.isEnabledFor(logging.DEBUG):  # DIRAC logs to stdout: keep it quiet
                from DIRAC import gLogger

                gLogger.setLevel("FATAL")
            self._api = Dirac()
            self._job_manager = JobManagerClient()
            self._sandboxes = SandboxStoreClient()

    def call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call DIRAC; return ``Value``; retry transient failures; raise BackendError."""
        return self.checked(what, function, args, kwargs, self.retries)

    def call_once(self, what: str, function: Callable[..., Any], *args: Any,
                  **kwargs: Any) -> Any:
        """:meth:`call` without retries, for calls that must not happen twice (a submission
        that timed out may still have created its jobs)."""
        return self.checked(what, function, args, kwargs, 0)

    def checked(self, what: str, function: Callable[..., Any], args: Sequence[Any],
                kwargs: Mapping[str, Any], retries: int) -> Any:
        """``function(*args, **kwargs)``'s ``Value``; transient failures are tried again, up
        to ``retries`` times."""
        for attempt in attempts(TransientBackendError, retries + 1, self.backoff, what):
            with attempt:
                self.round_trips += 1
                result = function(*args, **kwargs)
                if result.get("OK"):
                    return result.get("Value")
                message = str(result.get("Message", "unknown error"))
                transient = any(t in message for t in TRANSIENT)
                raise (TransientBackendError if transient else BackendError)(f"{what}: {message}")
        raise AssertionError("unreachable")

    def bulk(self, what: str, function: Callable[..., Any], items: Sequence[str],
             *args: Any, missing_ok: bool = False, **kwargs: Any) -> dict[str, Any]:
        """A ``Successful``/``Failed`` call over ``items``; raise on failures (but missing)."""
        successful: dict[str, Any] = {}
        for chunk in chunked(list(items), BULK):
            value = self.call(what, function, chunk, *args, **kwargs)
            failed = {k: v for k, v in value.get("Failed", {}).items()
                      if not (missing_ok and any(n in str(v) for n in NO_SUCH_FILE))}
            if failed:
                lfn, message = next(iter(failed.items()))
                raise BackendError(f"{what}: {lfn}: {message}",
                                   f"{len(failed)} of {len(chunk)} failed")
            successful.update(value.get("Successful", {}))
        return successful

    def catalog(self) -> Any:
        """A FileCatalog client; its configuration is read again if it failed to load."""
        self.ready()
        from DIRAC.Resources.Catalog.FileCatalog import FileCatalog

        for attempt in attempts(TransientBackendError, self.retries + 1, self.backoff,
                                "FileCatalog"):
            with attempt:
                catalog = FileCatalog()
                if not catalog.isOK():
                    raise TransientBackendError(
                        "Failed to get file catalog configuration",
                        "check /Resources/FileCatalogs in the DIRAC configuration")
                return catalog
        raise AssertionError("unreachable")

    # --- identity -----------------------------------------------------------------------------
    def home(self) -> str:
        """``/<vo>/user/<u>/<username>`` of the proxy's DIRAC user.

        ``getProxyInfo`` answers OK without a username when the look-up of the proxy's DN in
        the configuration's registry fails (seen now and then in the tests' long-lived
        processes), and DIRAC caches that failure for 5 minutes: the cache is cleared and the
        question asked again, a bounded number of times."""
        self.ready()
        from DIRAC.ConfigurationSystem.Client.Helpers.Registry import (
            getUsernameForDN,
            getVOForGroup,
        )
        from DIRAC.Core.Security.ProxyInfo import getProxyInfo

        for attempt in attempts(TransientBackendError, self.retries + 1, self.backoff, "proxy"):
            with attempt:
                info = self.call("proxy", getProxyInfo)
                if "username" not in info:
                    getUsernameForDN.cache_clear()
                    raise TransientBackendError(
                        f"the proxy's identity {info.get('identity', '?')!r} is not a DIRAC "
                        "user", "check the proxy (dirac-proxy-info) and the configuration "
                        "servers of dirac.cfg")
        user, group = info["username"], info.get("group", "")
        vo = getVOForGroup(group) or "vo.cta.in2p3.fr"
        return f"/{vo}/user/{user[0]}/{user}"

    def storage_elements(self) -> list[str]:
        if self.ses:
            return list(self.ses)
        self.ready()
        from DIRAC import gConfig

        names = self.call("storage elements", gConfig.getSections,
                          "/Resources/StorageElements")
        return [name for name in names if not name.endswith("SandboxSE")]

    def max_parametric(self) -> int:
        """The server's limit of jobs per parametric submission, as its configuration says."""
        if self._max_parametric is None:
            self.ready()
            from DIRAC import gConfig

            value = gConfig.getValue(MAX_PARAMETRIC_PATH)
            self._max_parametric = int(value) if value else DEFAULT_MAX_PARAMETRIC
        return self._max_parametric

    # --- jobs ---------------------------------------------------------------------------------
    def submit(self, specs: Sequence[JobSpec]) -> list[int]:
        ids: dict[str, int] = {}
        for group in submission_groups(specs):
            sandbox = self.upload_sandbox(group)
            start = 0
            while start < len(group):
                chunk = group[start:start + self.max_parametric()]
                try:
                    chunk_ids = self.submit_chunk(chunk, group[0], sandbox)
                except BackendError as exc:  # a server whose limit is below what its CS says
                    limit = PARAMETRIC_LIMIT.search(str(exc))
                    if not limit or not 0 < int(limit.group(1)) < len(chunk):
                        raise
                    log.warning("the server takes at most %s jobs per submission", limit[1])
                    self._max_parametric = int(limit.group(1))
                    continue
                ids.update(zip((s.name for s in chunk), chunk_ids, strict=True))
                start += len(chunk)
        return [ids[spec.name] for spec in specs]

    def upload_sandbox(self, specs: Sequence[JobSpec]) -> str:
        """Upload, once for all ``specs`` (one submission group), what their jobs need: the
        steps of every job (``jobs.json``), the payload scripts, the group's sandbox files and
        the job description; return its ``SB:`` reference, which every chunk reuses."""
        with tempfile.TemporaryDirectory(prefix="pgi-submit-") as tmp:
            manifest = Path(tmp) / "jobs.json"
            manifest.write_text(json.dumps({"jobs": {s.name: job_entry(s) for s in specs}}))
            # the workflow is the same for every chunk of the group: what differs is in the JDL
            description = Path(tmp) / "jobDescription.xml"
            description.write_text(self.chunk_job(specs[:1], specs[0], "")._toXML())
            files = [manifest, description, PAYLOAD / "run_job.py", PAYLOAD / "pgi_job.sh",
                     *map(Path, specs[0].input_sandbox)]
            missing = [f for f in files if not f.is_file()]
            if missing:
                raise DataError(f"input sandbox file not found: {missing[0]}")
            value = self.call("uploadFilesAsSandbox", self.sandboxes.uploadFilesAsSandbox,
                              [str(f) for f in files])
        return str(value)

    def chunk_job(self, chunk: Sequence[JobSpec], first: JobSpec, sandbox: str) -> Any:
        """The parametric DIRAC ``Job`` of ``chunk``, whose group starts with ``first``: the
        settings shared by the group, and one value per job for name, inputs and output."""
        from DIRAC.Interfaces.API.Job import Job

        job = Job()
        job.setJobGroup(first.job_group)
        if sandbox:
            job.setInputSandbox([sandbox])
        job.setOutputSandbox(["std.out", "std.err"])
        job.setCPUTime(first.cpu_time)
        if first.banned_sites:
            job.setBannedSites(list(first.banned_sites))
        if first.tags:
            job.setTag(list(first.tags))
        if first.job_type != "User":
            job.setType(first.job_type)
        job.setName(first.name)
        names = [s.name for s in chunk]
        job.setParameterSequence("JobName", names)
        job.setParameterSequence("pgijob", names)
        job.setExecutable("pgi_job.sh", arguments=self.environment.arguments("%(pgijob)s"))
        if first.input_lfns or first.input_data:  # the same for the whole group
            job.setParameterSequence("InputData",
                                     [[*s.input_lfns, *s.input_data] for s in chunk],
                                     addToWorkflow="ParametricInputData")
        job.setOutputData([f"LFN:{first.output_lfn}"], outputSE=first.output_se)
        job.setParameterSequence("OutputData", [f"LFN:{s.output_lfn}" for s in chunk])
        return job

    def submit_chunk(self, chunk: Sequence[JobSpec], first: JobSpec, sandbox: str) -> list[int]:
        """One parametric submission for at most ``MaxParametricJobs`` jobs: DIRAC's bulk
        transaction, done as its ``WMSClient.submitJob`` does it.

        ``JobManager.submitJob`` creates the jobs ``Submitting`` / "Bulk transaction
        confirmation" (``JobManagerHandler.export_submitJob``); they run only once
        ``confirmBulkSubmission`` is called for them. Jobs that cannot be confirmed are removed,
        so a submission that fails leaves no job behind; a client killed between the two calls
        leaves unconfirmed jobs, which the next submission finds by name and confirms
        (``workflow.submit.recover_interrupted``).
        """
        job = self.chunk_job(chunk, first, sandbox)
        errors = getattr(job, "errorDict", {})
        if errors:
            method, messages = next(iter(errors.items()))
            raise BackendError(f"job description: {method}: {'; '.join(messages)}")
        # the job description is in the uploaded sandbox: nothing is uploaded here
        jdl = job._toJDL(jobDescriptionObject=io.StringIO("")).strip()
        value = self.call_once("submitJob", self.job_manager.submitJob, f"[{jdl}]")
        ids = [int(i) for i in (value if isinstance(value, list) else [value])]
        try:
            if len(ids) != len(chunk):
                raise BackendError(f"submitJob returned {len(ids)} ids for {len(chunk)} jobs")
            self.confirm(ids)
        except BackendError:
            self.remove_unconfirmed(ids)
            raise
        return ids

    def confirm(self, ids: Sequence[int]) -> None:
        """DIRAC's ``confirmBulkSubmission``. The server confirms a list whose jobs are all
        ``Submitting`` (or all already confirmed) and refuses any other: then the states are
        read and the jobs still ``Submitting`` are confirmed alone."""
        for chunk in chunked([int(i) for i in ids], BULK):
            try:
                self.call("confirmBulkSubmission", self.job_manager.confirmBulkSubmission, chunk)
            except BackendError:
                unconfirmed = [i for i, s in self.status(chunk).items()
                               if s.status == JobStatus.SUBMITTING]
                if unconfirmed:
                    self.call("confirmBulkSubmission", self.job_manager.confirmBulkSubmission,
                              unconfirmed)

    def remove_unconfirmed(self, ids: Sequence[int]) -> None:
        """Remove the jobs of ``ids`` still unconfirmed, as ``WMSClient.submitJob`` does when it
        cannot confirm; if that fails too, the next submission confirms them."""
        try:
            unconfirmed = [i for i, s in self.status(ids).items()
                           if s.status == JobStatus.SUBMITTING]
            if unconfirmed:
                self.call("removeJob", self.job_manager.removeJob, unconfirmed)
        except BackendError as exc:
            log.warning("unconfirmed jobs not removed (%s): the next submission confirms them",
                        exc)

    def find_jobs(self, names: Sequence[str]) -> dict[str, list[int]]:
        from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import (
            JobMonitoringClient,
        )

        self.ready()
        monitoring = JobMonitoringClient()
        found: dict[str, list[int]] = {}
        wanted = set(names)
        for chunk in chunked(list(names), BULK):
            ids = self.call("getJobs", monitoring.getJobs, {"JobName": chunk})
            if not ids:
                continue
            summary = self.call("getJobsSummary", monitoring.getJobsSummary,
                                [int(i) for i in ids])
            for job_id, attributes in summary.items():
                name = attributes.get("JobName")
                if name in wanted:
                    found.setdefault(name, []).append(int(job_id))
        return {name: sorted(ids) for name, ids in found.items()}

    def status(self, ids: Sequence[int]) -> dict[int, JobState]:
        states: dict[int, JobState] = {}
        for chunk in chunked([int(i) for i in ids], BULK):
            value = self.call("getJobStatus", self.api.getJobStatus, chunk)
            for job_id, info in value.items():
                try:
                    status = JobStatus(info["Status"])
                except ValueError:
                    raise BackendError(f"job {job_id}: unknown status {info['Status']!r}") from None
                states[int(job_id)] = JobState(int(job_id), status, info.get("MinorStatus", ""),
                                               info.get("ApplicationStatus", ""),
                                               info.get("Site", ""))
        return states

    def select_jobs(self, selection: JobSelection = ANY_JOB) -> list[int]:
        s = selection
        value = self.call("selectJobs", self.api.selectJobs, status=s.status,
                          minorStatus=s.minor_status, applicationStatus=s.application_status,
                          site=s.site, owner=s.owner, jobGroup=s.job_group, date=s.date,
                          printErrors=False)
        return sorted(int(i) for i in value or [])

    def kill(self, ids: Sequence[int]) -> None:
        """DIRAC's ``killJob`` for the active jobs, read back: it answers OK also when it left
        a job as it was (seen once on the box, for a job killed right after its submission,
        which went on to Waiting), so jobs still active are killed again, a bounded number of
        times."""
        active = [i for i, s in self.status(ids).items() if not s.status.is_final]
        for attempt in attempts(TransientBackendError, self.retries + 1, self.backoff, "killJob"):
            with attempt:
                if active:
                    self.call("killJob", self.api.killJob, active)
                active = [i for i, s in self.status(active).items() if not s.status.is_final]
                if active:
                    raise TransientBackendError(f"{len(active)} job(s) still active after "
                                                f"killJob, e.g. {active[0]}")

    def delete(self, ids: Sequence[int]) -> None:
        """Kill, wait until stopped, then DIRAC's ``deleteJob``, read back.

        A job deleted while it runs goes on reporting (Running, then Failed) over its Deleted
        state, so active jobs are killed first and deleted once final (or after
        :data:`KILL_WAIT` s). ``deleteJob`` answers "Some jobs failed deletion" for Killed jobs
        it does delete, and now and then leaves one: the states are read back.
        """
        left = [int(i) for i in ids]
        self.kill(left)
        deadline = time.monotonic() + KILL_WAIT
        while time.monotonic() < deadline and not all(
                s.status.is_final for s in self.status(left).values()):
            time.sleep(POLL_SECONDS)
        for attempt in attempts(TransientBackendError, self.retries + 1, self.backoff,
                                "deleteJob"):
            with attempt:
                for chunk in chunked(left, BULK):
                    try:
                        self.call("deleteJob", self.api.deleteJob, chunk)
                    except BackendError as exc:
                        if "failed deletion" not in str(exc):
                            raise
                left = [i for i, s in self.status(left).items()
                        if s.status != JobStatus.DELETED]
                if left:
                    raise TransientBackendError(f"{len(left)} job(s) not deleted, e.g. {left[0]}")

    def reschedule(self, ids: Sequence[int]) -> None:
        self.call("rescheduleJob", self.api.rescheduleJob, [int(i) for i in ids])

    def set_failed(self, ids: Sequence[int], reason: str) -> None:
        from DIRAC.WorkloadManagementSystem.Client.JobStateUpdateClient import (
            JobStateUpdateClient,
        )

        self.ready()
        options = {"proxyLocation": str(self.admin_proxy)} if self.admin_proxy else {}
        client = JobStateUpdateClient(**options)
        active = [i for i, s in self.status(ids).items() if not s.status.is_final]
        for job_id in active:  # final jobs are left as they are (and reported below)
            self.call("setJobStatus", client.setJobStatus, int(job_id), "Failed", reason,
                      "protopipe-grid", None, True)
        # the call returns OK without effect when not allowed: read the states again
        left = [i for i, s in self.status(ids).items() if s.status != JobStatus.FAILED]
        if left:
            raise BackendError(f"{len(left)} job(s) not set to Failed, e.g. {left[0]}",
                               "this needs a JobAdministrator proxy")

    def job_log(self, job_id: int) -> str:
        """The job's std.out and std.err; its DIRAC logging record if it never ran."""
        with tempfile.TemporaryDirectory(prefix="pgi-log-") as tmp:
            try:
                self.call("getOutputSandbox", self.api.getOutputSandbox, int(job_id),
                          outputDir=tmp)
            except BackendError as exc:
                if "No Output sandbox" not in str(exc):
                    raise
                records = self.call("getJobLoggingInfo", self.api.getJobLoggingInfo,
                                    int(job_id))
                return "".join(f"{r[3]} {r[0]}: {r[1]} ({r[2]})\n" for r in records)
            folder = Path(tmp) / str(job_id)
            # DIRAC's wrapper log first, the payload's own output (ScriptN_CodeOutput.log) last
            paths = [folder / "std.out", folder / "std.err",
                     *sorted(folder.glob("*CodeOutput.log"))]
            return "".join(p.read_text(errors="replace") for p in paths if p.is_file())

    def job_input_data(self, job_id: int) -> list[str]:
        from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import (
            JobMonitoringClient,
        )

        self.ready()
        text = self.call("getJobJDL", JobMonitoringClient().getJobJDL, int(job_id), False)
        if not text:
            raise BackendError(f"no job {job_id} on DIRAC")
        from DIRAC.Core.Utilities.ClassAd.ClassAdLight import ClassAd

        classad = ClassAd(text)
        jdl = {"InputData": classad.getListFromExpression("InputData")
               if classad.lookupAttribute("InputData") else []}
        value = jdl.get("InputData", [])
        items = value if isinstance(value, list) else str(value).strip("{}").split(",")
        return [item.strip().strip('"').removeprefix("LFN:") for item in items if item.strip()]

    # --- files --------------------------------------------------------------------------------
    def list_directory(self, path: str, recursive: bool = False) -> list[RemoteFile]:
        catalog = self.catalog()
        folders, lfns = [path.rstrip("/")], []
        while folders:
            value = self.call("listDirectory", catalog.listDirectory, folders)
            for folder, failure in value.get("Failed", {}).items():
                if not any(n in str(failure) for n in NO_SUCH_FILE):
                    raise BackendError(f"listDirectory {folder}: {failure}")
            folders = []
            for content in value.get("Successful", {}).values():
                lfns += sorted(content.get("Files", {}))
                if recursive:
                    folders += sorted(content.get("SubDirs", {}))
        found = self.metadata(lfns)
        return [found[lfn] for lfn in lfns if lfn in found]

    def find_files(self, path: str, query: Mapping[str, Value]) -> list[str]:
        """DIRAC's ``findFilesByMetadata``, its query checked first (DIRAC ignores an unknown
        key, and would return every file); a folder that is not in the catalog has no file.

        DIRAC compares in MySQL, unlike the other backends: a VARCHAR regardless of case, and
        a FLOAT in single precision, so only values exact in binary (2.5, not 0.1) are found."""
        if not query:
            return sorted(f.lfn for f in self.list_directory(path, recursive=True))
        catalog = self.catalog()
        path = normalized(path)
        wanted = coerce(query, self.metadata_fields(catalog))
        if not self.bulk("isDirectory", catalog.isDirectory, [path], missing_ok=True).get(path):
            return []
        found = self.call("findFilesByMetadata", catalog.findFilesByMetadata, wanted, path=path)
        return sorted(found or [])

    def set_metadata(self, path: str, metadata: Mapping[str, Value]) -> None:
        """DIRAC's ``setMetadata``, after checking ``metadata`` against the declared fields
        (DIRAC would keep a key of the other level as an unsearchable parameter) and declaring
        the new ones with ``addMetadataField``."""
        catalog = self.catalog()
        path = normalized(path)
        level = self.path_level(catalog, path, f"set metadata {', '.join(metadata)} on")
        values, new = declare(path, level, metadata, self.metadata_fields(catalog))
        for key, field in new.items():
            self.call("addMetadataField", catalog.addMetadataField, key, field.type,
                      "-d" if field.level == DIRECTORY else "-f")
        self.call("setMetadata", catalog.setMetadata, path, values)

    def get_metadata(self, path: str) -> dict[str, Value]:
        """DIRAC's ``getDirectoryUserMetadata`` or ``getFileUserMetadata`` (which adds what
        the file's directory has and inherits)."""
        catalog = self.catalog()
        path = normalized(path)
        level = self.path_level(catalog, path, "read the metadata of")
        function = (catalog.getDirectoryUserMetadata if level == DIRECTORY
                    else catalog.getFileUserMetadata)
        found = self.call(f"user metadata of {path}", function, path)
        return {k: v if isinstance(v, str | int | float) else str(v) for k, v in found.items()}

    def metadata_fields(self, catalog: Any) -> dict[str, Field]:
        """The metadata keys the catalog declared, with their level and DIRAC type."""
        value = self.call("getMetadataFields", catalog.getMetadataFields)
        return {**{k: Field(DIRECTORY, t) for k, t in value["DirectoryMetaFields"].items()},
                **{k: Field(FILE, t) for k, t in value["FileMetaFields"].items()}}

    def path_level(self, catalog: Any, path: str, doing: str) -> str:
        """:data:`~.usermeta.DIRECTORY` or :data:`~.usermeta.FILE`; raise when ``path`` is not
        in the catalog (``doing``: what could not be done)."""
        if self.bulk("isDirectory", catalog.isDirectory, [path], missing_ok=True).get(path):
            return DIRECTORY
        if self.bulk("isFile", catalog.isFile, [path], missing_ok=True).get(path):
            return FILE
        raise missing(path, doing)

    def metadata(self, lfns: Sequence[str]) -> dict[str, RemoteFile]:
        if not lfns:
            return {}
        meta = {lfn: m for lfn, m in self.bulk("getLfnMetadata", self.api.getLfnMetadata, lfns,
                                               missing_ok=True).items() if "Size" in m}
        replicas = self.bulk("getReplicas", self.api.getReplicas, list(meta), missing_ok=True)
        return {lfn: RemoteFile(lfn, int(m["Size"]), str(m.get("Checksum", "")),
                                tuple(sorted(replicas.get(lfn, {}))))
                for lfn, m in meta.items()}

    def get_file(self, lfn: str, destination: Path,
                 known: RemoteFile | None = None) -> str | None:
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".pgi-get-", dir=destination.parent) as tmp:
            try:
                self.bulk("getFile", self.api.getFile, [lfn], destDir=tmp)
            except BackendError as exc:
                raise DataError(str(exc)) from None
            os.replace(Path(tmp) / Path(lfn).name, destination)
        return None

    def put_file(self, path: Path, lfn: str, se: str) -> RemoteFile:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"local file not found: {path}")
        if self.metadata([lfn]):
            raise BackendError(f"file already registered: {lfn}", "remove it first")
        with tempfile.TemporaryDirectory(prefix="pgi-put-") as tmp:
            staged = Path(tmp) / Path(lfn).name  # DIRAC names the file as the LFN does
            shutil.copyfile(path, staged)
            self.bulk("addFile", lambda lfns: self.api.addFile(lfns[0], str(staged), se), [lfn])
        return self.metadata([lfn])[lfn]

    def replicate(self, lfn: str, se: str) -> None:
        found = self.metadata([lfn]).get(lfn)
        if found is None:
            raise DataError(f"no such file in the catalog: {lfn}")
        if se not in found.replicas:
            self.bulk("replicateFile", lambda lfns: self.api.replicateFile(lfns[0], se), [lfn])

    def remove(self, lfns: Sequence[str]) -> None:
        if lfns:
            self.bulk("removeFile", self.api.removeFile, list(lfns), missing_ok=True)


def submission_groups(specs: Sequence[JobSpec]) -> list[list[JobSpec]]:
    """``specs`` grouped by everything their parametric job shares (sandbox, models, group,
    output SE, CPU time, bans, tags, type, whether they have input data), in order."""
    groups: dict[tuple[object, ...], list[JobSpec]] = {}
    for spec in specs:
        key = (spec.job_group, spec.output_se, spec.input_sandbox, spec.input_data,
               spec.cpu_time, spec.banned_sites, spec.tags, spec.job_type,
               bool(spec.input_lfns or spec.input_data))
        groups.setdefault(key, []).append(spec)
    return list(groups.values())


def job_entry(spec: JobSpec) -> dict[str, object]:
    """What ``run_job.py`` needs of a job: its steps, its output, what to clean up after."""
    return {"steps": [list(step) for step in spec.steps], "output_file": spec.output_file,
            # DIRAC uploads the local file named like the output LFN
            "upload_name": Path(spec.output_lfn).name,
            "cleanup": [Path(lfn).name for lfn in (*spec.input_lfns, *spec.input_data)]
            + list(spec.intermediate_files)}
