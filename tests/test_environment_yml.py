"""``environment.yml`` (the conda recipe of CTA users) agrees with ``pyproject.toml``: its
Python satisfies ``requires-python``, every dependency it takes from conda-forge has at least
pyproject's lower bound, and pip installs this package from the repository. Only the two files
are compared: conda cannot be reached here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
#: PyPI names whose conda-forge package is called otherwise
CONDA_NAMES = {"tables": "pytables", "dirac": "dirac-grid"}
#: conda-forge packages the grid set-up needs besides pyproject's (the VOMS clients)
GRID_TOOLS = {"dirac-grid", "voms"}


def conda_spec(text: str) -> tuple[str, SpecifierSet]:
    """A conda match spec (``numpy>=1.26``, ``python=3.11``, ``voms``) as (name, PEP 440 set);
    conda's ``=3.11`` means ``3.11.*``."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", text)
    assert match, f"environment.yml: {text!r} is not a conda package spec"
    name, spec = match.groups()
    spec = re.sub(r"(?<![<>=!~])=(?!=)\s*([0-9][0-9.]*)$", r"==\1.*", spec.replace(" ", ""))
    return canonicalize_name(name), SpecifierSet(spec)


def lower_bound(specifiers: SpecifierSet) -> Version | None:
    """The lowest version ``specifiers`` allow from below (None: no lower bound)."""
    bounds = [Version(s.version.removesuffix(".*")) for s in specifiers
              if s.operator in (">=", ">", "==", "~=", "===")]
    return max(bounds, default=None)


def environment(path: Path = ROOT / "environment.yml") -> tuple[dict[str, Any], dict[
        str, SpecifierSet], list[str]]:
    """(the file, its conda packages by name, its pip lines)."""
    data = yaml.safe_load(path.read_text())
    conda: dict[str, SpecifierSet] = {}
    pip: list[str] = []
    for item in data["dependencies"]:
        if isinstance(item, dict):
            pip += item["pip"]
        else:
            name, spec = conda_spec(item)
            assert name not in conda, f"environment.yml: {name} listed twice"
            conda[name] = spec
    return data, conda, pip


def runtime_requirements() -> list[Requirement]:
    """pyproject's dependencies, and its [dirac] extra (conda's dirac-grid)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in
            (*project["dependencies"], *project["optional-dependencies"]["dirac"])]


def test_channel_and_python() -> None:
    data, conda, _ = environment()
    assert data["channels"] == ["conda-forge"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = conda["python"]
    version = lower_bound(python)
    assert version is not None, "environment.yml: python has no version"
    assert SpecifierSet(project["requires-python"]).contains(version), \
        f"environment.yml: python {python} does not satisfy {project['requires-python']}"
    assert GRID_TOOLS | {"pip"} <= conda.keys()


def bounds_too_low(conda: dict[str, SpecifierSet],
                   requirements: list[Requirement]) -> tuple[list[str], list[str]]:
    """(the conda packages compared with pyproject's requirements, one line per package whose
    conda spec allows versions below pyproject's lower bound)."""
    compared, problems = [], []
    for requirement in requirements:
        name = canonicalize_name(CONDA_NAMES.get(requirement.name.lower(), requirement.name))
        if name not in conda:
            continue  # pip installs it
        compared.append(name)
        needed, given = lower_bound(requirement.specifier), lower_bound(conda[name])
        if needed is not None and (given is None or given < needed):
            problems.append(f"environment.yml: {name} {conda[name] or '(no bound)'} allows "
                            f"versions below pyproject.toml's {requirement}")
    return compared, problems


def test_conda_packages_have_at_least_pyprojects_lower_bounds() -> None:
    _, conda, _ = environment()
    compared, problems = bounds_too_low(conda, runtime_requirements())
    assert problems == []
    # the compiled dependencies come from conda-forge, not from pip
    assert {"numpy", "pytables", "h5py", "cryptography", "dirac-grid"} <= set(compared)


@pytest.mark.parametrize("old, new, package", [
    ("numpy>=1.26", "numpy>=1.20", "numpy"),
    ("pytables>=3.9", "pytables", "pytables"),
    ("dirac-grid>=9.1", "dirac-grid>=8.0", "dirac-grid"),
])
def test_a_bound_below_pyprojects_is_caught(tmp_path: Path, old: str, new: str,
                                            package: str) -> None:
    text = (ROOT / "environment.yml").read_text()
    assert old in text
    (tmp_path / "environment.yml").write_text(text.replace(old, new))
    _, conda, _ = environment(tmp_path / "environment.yml")
    _, problems = bounds_too_low(conda, runtime_requirements())
    assert len(problems) == 1 and problems[0].startswith(f"environment.yml: {package} ")


def test_pip_installs_this_package_from_the_repository() -> None:
    _, _, pip = environment()
    local = [line for line in pip if re.fullmatch(r"(-e\s+)?\.(\[[\w,\-]+\])?", line.strip())]
    assert len(local) == 1, f"environment.yml: pip should install '.' once, has {pip}"
    assert [line for line in pip if line not in local] == [], \
        "environment.yml: pip installs nothing but this package (the rest is conda-forge's)"


@pytest.mark.parametrize("spec, name, lowest", [
    ("python=3.11", "python", "3.11"),
    ("numpy >=1.26,<3", "numpy", "1.26"),
    ("voms", "voms", None),
    ("pyasn1-modules>=0.4", "pyasn1-modules", "0.4"),
])
def test_conda_spec(spec: str, name: str, lowest: str | None) -> None:
    parsed_name, specifiers = conda_spec(spec)
    assert parsed_name == name
    assert lower_bound(specifiers) == (Version(lowest) if lowest else None)
