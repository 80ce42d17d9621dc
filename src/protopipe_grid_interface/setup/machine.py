"""The machine the set-up checks look at: this process, or one a test builds."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Machine:
    """Environment, home, uid, temporary folder and clock; :meth:`current` is this process."""

    env: Mapping[str, str]
    home: Path
    uid: int
    tmp: Path = Path("/tmp")
    now: datetime | None = None  # None: the clock, read when asked

    @classmethod
    def current(cls) -> Machine:
        return cls(dict(os.environ), Path.home(), os.getuid())

    def clock(self) -> datetime:
        return self.now if self.now is not None else datetime.now(UTC)


def which(program: str, env: Mapping[str, str]) -> Path | None:
    """``program`` on the ``PATH`` of ``env``; None if it is not there."""
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    return Path(found) if found else None
