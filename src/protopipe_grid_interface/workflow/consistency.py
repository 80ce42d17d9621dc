"""A consistent analysis: the jobs of a stage were made from the inputs the analysis has now.

When a stage's jobs are submitted, what they are made from is fingerprinted per particle: the
content of ``analysis.yaml`` and the catalog checksums of the models and model configs they
read. Their input files and commands are in each job's spec. A later plan is compared with both:

- a job submitted with other input files or another command (the list was split again, a
  setting changed) is stale, and so is one the new plan no longer has;
- every submitted job of a particle is stale once ``analysis.yaml`` or a model it read changed.

Nothing stale is overwritten or submitted again silently: the user chooses between planning it
again (:func:`replan`: stale jobs stopped, their outputs removed from the catalog, then planned
anew) and keeping it (:func:`keep`: the new fingerprint is accepted). Files must also never be
in two stages of a particle (:func:`overlaps`): training on events the IRFs are computed from
biases the result.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from ..backends.base import Backend
from ..exceptions import InputError
from ..models import JobSpec, JobStatus, Particle, Stage
from ..paths import STAGE_PARTICLES
from ..store import JobRecord, Store
from .analysis import Analysis
from .plan import is_canary
from .split import read_list


@dataclass(frozen=True)
class Stale:
    """Submitted jobs of a stage and particle that the current plan would not make."""

    stage: Stage
    particle: Particle
    reasons: tuple[str, ...]
    jobs: tuple[JobRecord, ...]

    def line(self) -> str:
        return (f"{self.stage.value} {self.particle.value}: {len(self.jobs)} submitted job(s) "
                f"stale: {'; '.join(self.reasons)}")


def groups(specs: Sequence[JobSpec]) -> dict[tuple[Stage, Particle], list[JobSpec]]:
    by_group: dict[tuple[Stage, Particle], list[JobSpec]] = defaultdict(list)
    for spec in specs:
        by_group[spec.stage, spec.particle].append(spec)
    return dict(by_group)


def fingerprint(analysis: Analysis, backend: Backend, specs: Sequence[JobSpec]
                ) -> dict[str, str]:
    """What the jobs of one stage and particle read besides their input files: the content of
    each configuration they are sent (protopipe's analysis.yaml, ctapipe-process's configs),
    and each model's (and model config's) checksum in the catalog."""
    configs = sorted({Path(p) for spec in specs for p in spec.input_sandbox
                      if p.endswith(".yaml")})
    digests = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16] for path in configs}
    models = sorted({lfn for spec in specs for lfn in spec.input_data})
    present = backend.metadata(models)
    found = {lfn: present[lfn].checksum if lfn in present else "missing" for lfn in models}
    return {**digests, **found}


def made_from(spec: JobSpec) -> tuple[object, ...]:
    """What decides a job's output: its input files, its commands and the models it reads."""
    return spec.input_lfns, spec.steps, spec.input_data


def stale(store: Store, backend: Backend, analysis: Analysis, specs: Sequence[JobSpec]
          ) -> list[Stale]:
    """The submitted jobs the plan ``specs`` would not make as they are, with why."""
    found = []
    for (stage, particle), planned in groups(specs).items():
        submitted = [r for r in store.jobs(stage=stage, particle=particle)
                     if r.status is not JobStatus.PLANNED and not is_canary(r.name)]
        if not submitted:
            continue
        plan = {spec.name: spec for spec in planned}
        gone = [r for r in submitted if r.name not in plan]
        changed = [r for r in submitted if r.name in plan
                   and made_from(r.spec) != made_from(plan[r.name])]
        reasons = []
        if gone:
            reasons.append(f"{len(gone)} no longer in the plan (their input files left the list)")
        if changed:
            reasons.append(f"{len(changed)} planned from other input files or settings")
        stale_jobs = gone + changed
        recorded = store.fingerprint(stage, particle)
        if recorded is not None:
            now = fingerprint(analysis, backend, planned)
            moved = [name.rpartition("/")[2] for name in sorted(set(recorded) | set(now))
                     if recorded.get(name) != now.get(name)]
            if moved:
                reasons.append(f"{', '.join(moved)} changed since they were submitted")
                stale_jobs = submitted
        if reasons:
            found.append(Stale(stage, particle, tuple(reasons), tuple(stale_jobs)))
    return found


def record(store: Store, backend: Backend, analysis: Analysis, specs: Sequence[JobSpec],
           replace: bool = False) -> None:
    """Fingerprint what each stage and particle of ``specs`` is submitted with, unless it is
    recorded already (``replace``: record it anew, the user kept or replanned the change)."""
    for (stage, particle), planned in groups(specs).items():
        if replace or store.fingerprint(stage, particle) is None:
            store.record_fingerprint(stage, particle, fingerprint(analysis, backend, planned))


def keep(store: Store, backend: Backend, analysis: Analysis, specs: Sequence[JobSpec]) -> None:
    """Accept the change: the stale jobs stay as they are, the new fingerprint is recorded."""
    record(store, backend, analysis, specs, replace=True)


def replan(store: Store, backend: Backend, analysis: Analysis, specs: Sequence[JobSpec],
           found: Sequence[Stale]) -> list[str]:
    """Plan the stale jobs again: the active ones are killed, their outputs removed from the
    catalog, those the plan no longer has forgotten, the others set back to ``Planned`` (the
    next submission sends them with the new spec); returns the names set back."""
    records = [r for entry in found for r in entry.jobs]
    active = [r.backend_id for r in records if r.status.is_active and r.backend_id is not None]
    if active:
        backend.kill(active)
    outputs = [r.spec.output_lfn for r in records]
    present = backend.metadata(outputs)
    backend.remove([lfn for lfn in outputs if lfn in present])
    planned = {spec.name for spec in specs}
    store.forget([r.name for r in records if r.name not in planned])
    again = [r.name for r in records if r.name in planned]
    store.mark_planned(again, "planned again: its inputs changed")
    record(store, backend, analysis, specs, replace=True)
    return again


def settle(store: Store, backend: Backend, analysis: Analysis, specs: Sequence[JobSpec],
           replan_them: bool, keep_them: bool, approve: Callable[[list[Stale]], bool]
           ) -> tuple[list[Stale], list[str] | None]:
    """Before a submission: refuse stale jobs unless the user chose to plan them again
    (``replan_them``, once ``approve`` agrees) or to keep them. Returns the stale jobs found and
    the names planned again (None when ``approve`` declined the replan)."""
    found = stale(store, backend, analysis, specs)
    if not found:
        return found, []
    if not (replan_them or keep_them):
        raise InputError("\n".join(entry.line() for entry in found),
                         "--replan plans them again (their outputs are removed from the "
                         "catalog), --keep-stale keeps them as they are")
    if keep_them:
        keep(store, backend, analysis, specs)
        return found, []
    if not approve(found):
        return found, None
    return found, replan(store, backend, analysis, specs, found)


def overlaps(analysis: Analysis, store: Store | None) -> list[str]:
    """Files that are in two stages of one particle: in the lists grid.yaml names, or read by
    jobs already submitted; one line per pair of stages."""
    problems = []
    for particle in Particle:
        files: dict[Stage, set[str]] = {}
        for stage in (s for s in Stage if particle in STAGE_PARTICLES[s]):
            lfns: set[str] = set()
            try:
                lfns.update(read_list(analysis.list_file(stage, particle)))
            except InputError:
                pass  # no list yet: nothing to compare
            if store is not None:
                lfns.update(lfn for r in store.jobs(stage=stage, particle=particle)
                            if r.status is not JobStatus.PLANNED for lfn in r.spec.input_lfns)
            files[stage] = lfns
        for first, second in combinations(files, 2):
            shared = sorted(files[first] & files[second])
            if shared:
                problems.append(f"{particle.value}: {len(shared)} file(s) in both the "
                                f"{first.value} and the {second.value} data, e.g. {shared[0]} "
                                "(training and test data must not overlap)")
    return problems
