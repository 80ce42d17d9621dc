"""The live DIRAC box for the tests in tests/dirac/ (see dirac-box/README.md).

Start it first: ``bash dirac-box/up.sh`` (add ``--project`` to also install this package, with
pytest, into the box venv). Convention for every test module here::

    import pytest

    pytestmark = pytest.mark.dirac          # the marker declared in pyproject.toml


    def test_something(dirac_box):
        dirac_box.run([str(dirac_box.python), "-c", "..."])   # a DIRAC client process

``dirac_box`` checks once per session that the box answers (user proxy valid, every DIRAC service
pings, the optimizers and the JobAgent run). If it does not: with CI set (CI=true) the test FAILS,
loudly, never skips; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from contract import unavailable

BOX_SCRIPTS = Path(__file__).resolve().parents[2] / "dirac-box"

#: run by the box venv's Python in the client environment; prints one JSON line
_HEALTH_CHECK = r"""
import importlib.util, json, os, sys
import DIRAC
DIRAC.initialize()
from DIRAC import gConfig
from DIRAC.Core.Base.Client import Client
from DIRAC.Core.Security.ProxyInfo import getProxyInfo
out = {"dirac": DIRAC.version, "python": sys.version.split()[0], "problems": [],
       "project": importlib.util.find_spec("protopipe_grid_interface") is not None}
pi = getProxyInfo()
if not pi["OK"]:
    out["problems"].append("user proxy: " + pi["Message"])
else:
    v = pi["Value"]
    out["proxy"] = {k: v.get(k) for k in ("username", "group", "secondsLeft")}
    if v.get("secondsLeft", 0) < 3600:
        out["problems"].append(f"user proxy has {v.get('secondsLeft')} s left (< 1 h)")
urls = {"Configuration/Server"}
for system in gConfig.getSections("/Systems").get("Value", []):
    services = gConfig.getOptions(f"/Systems/{system}/URLs").get("Value", [])
    urls |= {f"{system}/{service}" for service in services}
for url in sorted(urls):
    r = Client(url=url).ping()
    if not r["OK"]:
        out["problems"].append(f"ping {url}: {r['Message']}")
out["pinged"] = len(urls)
print(json.dumps(out))
"""


def _pid_alive(root: Path, name: str) -> bool:
    """Is $BOX/run/<name>.pid a live process of this box (command line mentions the box root)?"""
    try:
        pid = int((root / "run" / f"{name}.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return False
    return f"{root}/" in cmdline


@dataclass(frozen=True)
class DiracBox:
    """A running DIRAC box, as seen by a DIRAC client (diracuser@cta_user)."""

    root: Path  #: $BOX_ROOT, default /tmp/dirac-box
    python: Path  #: the box venv's Python: has the DIRAC client (and this package after --project)
    env: dict[str, str] = field(repr=False)  #: full environment for a DIRAC client subprocess
    user_proxy: Path  #: X509_USER_PROXY of env: diracuser@cta_user
    admin_proxy: Path  #: diracuser@dirac_admin (JobAdministrator: force job states)
    vo: str
    user: str
    se: str  #: the storage element jobs and uploads use (BOX-SE; BOX-SE2 exists for replicas)
    dirac_version: str
    python_version: str
    project_installed: bool  #: protopipe_grid_interface importable by ``python``

    @property
    def home(self) -> str:
        """The user's LFN home directory."""
        return f"/{self.vo}/user/{self.user[0]}/{self.user}"

    def run(
        self, args: Sequence[str | Path], *, check: bool = True, timeout: float = 600, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the client environment (text output captured)."""
        return subprocess.run(
            [str(a) for a in args],
            env=self.env,
            check=check,
            timeout=timeout,
            capture_output=True,
            text=True,
            **kwargs,
        )


def _box_or_reason() -> DiracBox | str:
    root = Path(os.environ.get("BOX_ROOT", "/tmp/dirac-box").rstrip("/"))
    up = "start it with `bash dirac-box/up.sh`"
    python = root / "venv" / "bin" / "python"
    if not python.exists():
        return f"no DIRAC box installed under {root} ({python} missing): {up}"
    try:
        proc = subprocess.run(
            ["bash", str(BOX_SCRIPTS / "client-env.sh"), "--json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"dirac-box/client-env.sh --json failed: {exc}"
    spec = json.loads(proc.stdout)
    env = {k: v for k, v in os.environ.items() if k not in spec["unset"]}
    env.update(spec["env"])
    env["PATH"] = spec["path_prepend"] + os.pathsep + os.environ.get("PATH", "")
    user_proxy = Path(env["X509_USER_PROXY"])
    if not user_proxy.exists():
        return f"DIRAC box under {root} has no user proxy {user_proxy}: {up}"
    down = [n for n in ("Optimizers", "JobAgent") if not _pid_alive(root, n)]
    if down:
        return f"DIRAC box under {root}: {', '.join(down)} not running: {up}"
    try:
        check = subprocess.run(
            [str(python), "-c", _HEALTH_CHECK],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=root,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"DIRAC box health check could not run: {exc}"
    try:
        health = json.loads(check.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (check.stdout + check.stderr)[-2000:]
        return f"DIRAC box health check failed (exit {check.returncode}):\n{tail}"
    if health["problems"]:
        return f"DIRAC box under {root} is not healthy: " + "; ".join(health["problems"])
    return DiracBox(
        root=root,
        python=python,
        env=env,
        user_proxy=user_proxy,
        admin_proxy=Path(env["BOX_ADMIN_PROXY"]),
        vo=env["BOX_VO"],
        user=env["BOX_USER"],
        se=env["BOX_SE"],
        dirac_version=health["dirac"],
        python_version=health["python"],
        project_installed=health["project"],
    )


@pytest.fixture(scope="session")
def dirac_box() -> DiracBox:
    """The live DIRAC box; fails under CI, skips elsewhere, when it is not up."""
    box = _box_or_reason()
    if isinstance(box, str):
        unavailable(f"DIRAC box not available: {box}")
    return box
