"""The fake backend: the contract suite, plus what only the fake offers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract import BackendContract

from protopipe_grid_interface.backends.fake import FakeBackend


@pytest.fixture
def fake_backend(tmp_path: Path) -> Iterator[FakeBackend]:
    with FakeBackend(tmp_path / "fake") as backend:
        yield backend
    assert [t.name for t in threading.enumerate() if t.name.startswith("pgi-fake")] == []


class TestFakeBackend(BackendContract):
    @pytest.fixture
    def backend(self, fake_backend: FakeBackend) -> FakeBackend:
        return fake_backend
