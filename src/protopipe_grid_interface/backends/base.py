"""The one interface every backend implements; the workflow only ever talks to this.

Calls are bulk by design: one ``submit`` for many jobs, one ``status`` for many jobs, one
``metadata`` for many files, because a grid round trip costs far more than the work it asks for.
Every method raises :class:`~protopipe_grid_interface.exceptions.BackendError` (or a subclass)
on failure; none of them prints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..models import ANY_JOB, JobSelection, JobSpec, JobState, RemoteFile
from .usermeta import Value


class Backend(ABC):
    """Submit, track and kill jobs; list, get, put, replicate and remove catalogued files."""

    #: short name stored with every submitted job ("local", "dirac")
    name: str
    #: whether one instance may be used from several threads at once; when it may not,
    #: parallel work (downloads) runs in worker processes, each with its own copy of the
    #: backend: such a backend must pickle before it connected and connect lazily
    thread_safe: bool = True
    #: the folder this backend keeps its catalog, storage and jobs in on this machine (the
    #: local backend), None for a remote one
    root: Path | None = None

    # --- identity -----------------------------------------------------------------------------
    @abstractmethod
    def home(self) -> str:
        """The user's LFN home directory, e.g. ``/vo.cta.in2p3.fr/user/j/jdoe``."""

    @abstractmethod
    def storage_elements(self) -> list[str]:
        """Names of the storage elements this backend can write to."""

    # --- jobs ---------------------------------------------------------------------------------
    @abstractmethod
    def submit(self, specs: Sequence[JobSpec]) -> list[int]:
        """Submit all ``specs``; return one backend job id per spec, in the same order.

        A submission may be a transaction (DIRAC's parametric jobs are created ``Submitting``,
        then confirmed by the client): it returns only confirmed jobs, and one that fails
        removes the jobs it could not confirm. A client killed inside it leaves jobs that stay
        ``Submitting`` until :meth:`confirm` is called for them."""

    @abstractmethod
    def confirm(self, ids: Sequence[int]) -> None:
        """Confirm jobs a submission created and did not confirm (``Submitting``), so that
        they run; jobs already confirmed, final or unknown are left as they are."""

    @abstractmethod
    def find_jobs(self, names: Sequence[str]) -> dict[str, list[int]]:
        """Ids of the existing jobs with these names (used to recover an interrupted submit)."""

    @abstractmethod
    def select_jobs(self, selection: JobSelection = ANY_JOB) -> list[int]:
        """Ids of the jobs matching every condition of ``selection``, like DIRAC's
        ``selectJobs``."""

    @abstractmethod
    def status(self, ids: Sequence[int]) -> dict[int, JobState]:
        """Current state of each job; unknown ids are left out."""

    @abstractmethod
    def kill(self, ids: Sequence[int]) -> None:
        """Kill the jobs (those already final are left as they are)."""

    @abstractmethod
    def delete(self, ids: Sequence[int]) -> None:
        """Delete the jobs, killing those still active: they end ``Deleted``."""

    @abstractmethod
    def reschedule(self, ids: Sequence[int]) -> None:
        """Send final jobs back to the queue under the same id."""

    @abstractmethod
    def set_failed(self, ids: Sequence[int], reason: str) -> None:
        """Force stuck jobs to ``Failed``; raise if the backend did not apply it."""

    @abstractmethod
    def job_log(self, job_id: int) -> str:
        """The job's standard output and error, as far as it got."""

    @abstractmethod
    def job_input_data(self, job_id: int) -> list[str]:
        """The LFNs the job was given as input data."""

    # --- files --------------------------------------------------------------------------------
    @abstractmethod
    def list_directory(self, path: str, recursive: bool = False) -> list[RemoteFile]:
        """Files inside the catalog directory ``path`` (empty if it does not exist): those
        directly in it, or with ``recursive`` those in all its subdirectories too."""

    @abstractmethod
    def find_files(self, path: str, query: Mapping[str, Value]) -> list[str]:
        """LFNs below ``path`` whose user metadata (own and inherited) match every ``key:
        value`` of ``query`` (all of them for an empty query), like DIRAC's
        ``findFilesByMetadata``; each value is converted to its field's type first, and an
        unknown key is an error. The rules are :mod:`.usermeta`'s."""

    @abstractmethod
    def set_metadata(self, path: str, metadata: Mapping[str, Value]) -> None:
        """Set user metadata on the catalog directory or file ``path`` (DIRAC's
        ``setMetadata``), declaring the keys used for the first time (DIRAC's
        ``addMetadataField``). ``path`` must be in the catalog; where directories are implicit
        (the fake and local catalogs), a directory is there while a file is below it or once
        it holds metadata."""

    @abstractmethod
    def get_metadata(self, path: str) -> dict[str, Value]:
        """The user metadata of the catalog directory or file ``path``, with what it inherits
        from the directories above it."""

    @abstractmethod
    def metadata(self, lfns: Sequence[str]) -> dict[str, RemoteFile]:
        """Size, checksum and replicas of each catalogued LFN; missing LFNs are left out."""

    @abstractmethod
    def get_file(self, lfn: str, destination: Path,
                 known: RemoteFile | None = None) -> str | None:
        """Copy ``lfn`` from one of its replicas to the local path ``destination``; return the
        adler32 of the bytes written if the copy computed it (else None: the caller does).

        ``destination`` may be written in place; callers that need the file to appear complete
        or not at all pass a temporary name and rename it (``collect.fetch_one`` does).
        ``known`` is the catalog entry the caller already holds (from ``list_directory`` or
        ``metadata``): a backend may use its replicas and checksum instead of asking again."""

    @abstractmethod
    def put_file(self, path: Path, lfn: str, se: str) -> RemoteFile:
        """Upload a local file to ``se`` and register it in the catalog as ``lfn``."""

    @abstractmethod
    def replicate(self, lfn: str, se: str) -> None:
        """Add a replica of ``lfn`` on ``se`` (a no-op when it is already there)."""

    @abstractmethod
    def remove(self, lfns: Sequence[str]) -> None:
        """Remove the files, all their replicas and their catalog entries."""
