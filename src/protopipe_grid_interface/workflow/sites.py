"""Black-hole sites: a site that fails most of the jobs it gets is banned for the analysis.

Only failures a site can cause count: an application error or an empty output is the
analysis' own, a job killed by hand is nobody's. A ban is recorded in the state database,
shown by ``run`` and ``status``, applied to every later submission (with, for a retry, the
site its last attempt failed at), and lifted by ``run --unban SITE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..config import BlackHolePolicy
from ..exceptions import InputError
from ..models import FailureClass, JobSpec
from ..store import Store

#: outcomes that say nothing about the site
NOT_THE_SITE = frozenset({FailureClass.APPLICATION.value, FailureClass.EMPTY_OUTPUT.value,
                          FailureClass.UNKNOWN.value})
#: failures a retry avoids the site of
SITE_FAULTS = frozenset({FailureClass.STALLED.value, FailureClass.WATCHDOG.value,
                         FailureClass.UPLOAD.value, FailureClass.RESCHEDULINGS.value, "held"})
#: site names that are not a site (a job failed before it was matched)
NO_SITE = frozenset({"", "ANY", "Unknown"})


@dataclass(frozen=True)
class BlackHole:
    site: str
    failed: int
    finished: int

    @property
    def reason(self) -> str:
        return f"{self.failed} of its last {self.finished} jobs failed"


def black_holes(store: Store, policy: BlackHolePolicy) -> list[BlackHole]:
    """Sites not banned yet whose recent failure rate is above the policy's threshold."""
    banned = store.bans()
    found = []
    for site, outcomes in sorted(store.site_outcomes(policy.window).items()):
        counted = [o for o in outcomes if o not in NOT_THE_SITE]
        failed = sum(o != "done" for o in counted)
        if (site not in banned and site not in NO_SITE and len(counted) >= policy.min_jobs
                and failed > policy.failure_rate * len(counted)):
            found.append(BlackHole(site, failed, len(counted)))
    return found


def ban_black_holes(store: Store, policy: BlackHolePolicy) -> list[BlackHole]:
    """Ban the black holes found now; return them."""
    found = black_holes(store, policy)
    for hole in found:
        store.ban(hole.site, hole.reason)
    return found


def unban(store: Store, site: str) -> None:
    """Lift a site's ban (``run --unban``)."""
    if not store.unban(site):
        banned = ", ".join(store.bans()) or "none"
        raise InputError(f"--unban {site}: not a banned site", f"banned: {banned}")


def avoiding(store: Store, specs: Sequence[JobSpec], configured: Sequence[str]
             ) -> list[JobSpec]:
    """``specs`` banned from the ``configured`` sites (``GRID.banned_sites``), the banned
    black holes, and for a retry the site its last attempt failed at when the failure was the
    site's doing (:data:`SITE_FAULTS`): only the last, so that a job that failed at every site
    still has one to go to; never after an input-data failure, since the site may hold the
    only replica of the job's input."""
    banned = set(store.bans())
    last_failed_at: dict[str, str] = {}
    for outcome in store.outcomes([s.name for s in specs]):  # oldest first: the last wins
        if outcome.outcome != "done":
            last_failed_at.pop(outcome.name, None)
        if outcome.outcome in SITE_FAULTS and outcome.site not in NO_SITE:
            last_failed_at[outcome.name] = outcome.site
    result = []
    for spec in specs:
        avoid = banned | ({last_failed_at[spec.name]} if spec.name in last_failed_at else set())
        sites = (*configured, *sorted(avoid - set(configured)))
        result.append(spec if sites == spec.banned_sites else replace(spec, banned_sites=sites))
    return result
