"""Black-hole sites: a site that fails most of the jobs it gets is banned for the analysis.

Only failures a site can cause count: an application error or an empty output is the
analysis' own, a job killed by hand is nobody's. A ban is recorded in the state database,
shown by ``run`` and ``status``, applied to every later submission (with the sites each job
already failed at), and lifted by ``run --unban SITE``.
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


def avoiding(store: Store, specs: Sequence[JobSpec]) -> list[JobSpec]:
    """``specs`` with the banned sites, and for each job the sites it failed at, added to its
    banned sites (for the submission of retries and of new jobs)."""
    banned = set(store.bans())
    failed_at: dict[str, set[str]] = {}
    for outcome in store.outcomes([s.name for s in specs]):
        if outcome.outcome not in ("done", *NOT_THE_SITE) and outcome.site not in NO_SITE:
            failed_at.setdefault(outcome.name, set()).add(outcome.site)
    result = []
    for spec in specs:
        avoid = banned | failed_at.get(spec.name, set())
        extra = sorted(avoid - set(spec.banned_sites))
        result.append(replace(spec, banned_sites=(*spec.banned_sites, *extra)) if extra
                      else spec)
    return result
