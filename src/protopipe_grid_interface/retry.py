"""The one retry policy: a bounded number of attempts, exponential backoff, each retry logged.

Built on tenacity. Use it as a loop of attempts; the block is tried again when it raises one of
``on``, and the last failure is raised as it is::

    for attempt in attempts(TransientBackendError, times=4, backoff=1.0, what="getJobStatus"):
        with attempt:
            ...
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from tenacity import (
    AttemptManager,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

log = logging.getLogger(__name__)


def attempts(on: type[BaseException] | tuple[type[BaseException], ...], times: int,
             backoff: float, what: str) -> Iterator[AttemptManager]:
    """At most ``times`` attempts; before attempt n + 1, wait ``backoff * 2 ** (n - 1)`` s
    and log what failed (``what``: the operation, for the log line)."""

    def note(state: RetryCallState) -> None:
        problem = state.outcome.exception() if state.outcome is not None else None
        log.warning("%s: %s (attempt %d of %d failed, retrying)", what, problem,
                    state.attempt_number, times)

    return iter(Retrying(stop=stop_after_attempt(max(1, times)),
                         wait=wait_exponential(multiplier=backoff, min=backoff),
                         retry=retry_if_exception_type(on), reraise=True, before_sleep=note))
