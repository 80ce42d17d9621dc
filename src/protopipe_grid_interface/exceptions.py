"""One error tree for the whole package.

Every error carries what was wrong and, where we know it, a hint. The CLI maps them to one line
on stderr and an exit code:

- ``InputError`` (bad argument, file or key)           -> 2
- ``ConfigError`` (a configuration file is invalid)     -> 2
- ``BackendError`` (the backend refused or failed)      -> 3
- ``DataError`` (a file is missing, corrupt or mismatched) -> 4
- ``PayloadError`` (a local protopipe step failed)     -> 5
- ``BlockedError`` (``run`` cannot go on without you)   -> 6
- Ctrl-C (``KeyboardInterrupt``)                        -> 130 (:data:`INTERRUPTED`)

``TransientBackendError`` is what the backends retry (``retry.attempts``) before giving up.
"""

from __future__ import annotations

#: exit code of a command interrupted by the user (Ctrl-C), as shells report SIGINT
INTERRUPTED = 130


class PipelineError(Exception):
    """Base class: a message meant for the user, and an exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(PipelineError):
    """A command-line argument or input file is wrong."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file is missing, unreadable or invalid."""


class BackendError(PipelineError):
    """The backend (DIRAC or local) refused a call or failed."""

    exit_code = 3


class TransientBackendError(BackendError):
    """A backend failure worth retrying."""


class DataError(PipelineError):
    """A file is missing, corrupt, or does not match what was expected."""

    exit_code = 4


class PayloadError(PipelineError):
    """A protopipe step run on this machine failed."""

    exit_code = 5


class BlockedError(PipelineError):
    """The analysis cannot move without the user: a step stopped by its failure policy, stale
    jobs to approve, a local step that failed (one line per blocked step)."""

    exit_code = 6
