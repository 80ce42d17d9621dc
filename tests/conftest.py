"""Shared fixtures. Keep this small: helpers used by one module live in that module."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from contract import unavailable
from proxies import Pki, make_pki

from protopipe_grid_interface.models import JobSpec, Particle, Stage
from protopipe_grid_interface.software import default_payload_env

#: LFN home used by tests that build specs without a backend
TEST_HOME = "/vo.cta.in2p3.fr/user/t/tester"

#: the venv running the tests is the payload environment of the local backend: ``python`` works
PAYLOAD_ENV = Path(sys.prefix)

SpecFactory = Callable[..., JobSpec]


@pytest.fixture
def job_spec() -> SpecFactory:
    """Build a small JobSpec: ``job_spec("name", output_lfn=..., steps=...)``.

    By default the single step writes ``out.txt`` (so the job ends Done if it runs) and the
    output LFN is ``<TEST_HOME>/out/<name>.txt``.
    """

    def make(
        name: str,
        *,
        steps: tuple[tuple[str, ...], ...] = (
            ("python", "-c", "open('out.txt', 'w').write('x')"),),
        output_lfn: str | None = None,
        input_lfns: tuple[str, ...] = (),
        home: str = TEST_HOME,
        se: str = "LOCAL-SE",
    ) -> JobSpec:
        return JobSpec(
            name=name,
            analysis="testana",
            stage=Stage.DL2,
            particle=Particle.GAMMA,
            input_lfns=input_lfns,
            steps=steps,
            output_file="out.txt",
            output_lfn=output_lfn or f"{home}/out/{name}.txt",
            output_se=se,
        )

    return make


@pytest.fixture(scope="session")
def protopipe_env() -> Path:
    """The real protopipe payload environment; in CI its absence is a failure, never a skip."""
    env = default_payload_env()
    if not (env / "bin" / "protopipe-TRAINING").exists():
        unavailable(f"no protopipe payload environment at {env} (scripts/install-payload.sh)")
    return env


@pytest.fixture(scope="session")
def pki() -> Pki:
    """A throw-away CA and a user certificate it signed (``proxies.make_proxy`` signs with it)."""
    return make_pki()
