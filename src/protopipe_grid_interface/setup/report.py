"""``protopipe-grid doctor``'s results: one :class:`Check` per row, gathered in a
:class:`Report` that knows the overall verdict and the exit code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not needed for the chosen backend: never counts against the machine


SEVERITY = {Verdict.SKIP: 0, Verdict.OK: 0, Verdict.WARN: 1, Verdict.FAIL: 2}


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table: what was checked, the verdict, what was seen, the fix."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of the checks that applied (OK when none did)."""
        applied = (c.verdict for c in self.checks if c.verdict is not Verdict.SKIP)
        return max(applied, key=SEVERITY.__getitem__, default=Verdict.OK)

    @property
    def exit_code(self) -> int:
        """Non-zero when any check failed."""
        return 1 if self.verdict is Verdict.FAIL else 0

    def by_name(self) -> dict[str, Check]:
        return {c.name: c for c in self.checks}

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "exit_code": self.exit_code,
                "checks": [{**asdict(c), "verdict": c.verdict.value} for c in self.checks]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)
