"""``dirac.cfg``: where DIRAC reads it, the CTA settings, and ``dirac configure`` keeping every
setting the user has (checked with DIRAC's own parser, ``diraccfg``)."""

from __future__ import annotations

import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from diraccfg import CFG

from protopipe_grid_interface.cli.main import main
from protopipe_grid_interface.exceptions import ConfigError, InputError
from protopipe_grid_interface.setup import dirac_client, diraccfg
from protopipe_grid_interface.setup.dirac_client import (
    CfgFile,
    cfg_candidates,
    default_target,
    dirac_root,
    effective_config,
)
from protopipe_grid_interface.setup.diraccfg import load_settings, plan_configure, write_configure

BIN = Path(sys.executable).parent
NOW = datetime(2026, 11, 25, 12, 0, 0)

USER_CFG = """\
# written by dirac-configure, then edited by hand
DIRAC
{
  # the VO of this client
  VirtualOrganization = vo.cta.in2p3.fr

  Configuration
  {
    Servers = dips://dcta-servers02.pic.es:9135/Configuration/Server
    Name = CTA-Production
  }
  Security
  {
    UseServerCertificate = yes
    CALocation = /opt/grid/certificates
  }
}
LocalSite
{
  Site = LCG.PIC.es
  CPUTimeLeft = 12345
}
Resources
{
  FileCatalogs
  {
    DIRACFileCatalog
    {
      AccessType = Read-Write
    }
  }
}
"""


def parse(text: str) -> CFG:
    return CFG().loadFromBuffer(text)


def values(cfg: CFG, option: str) -> list[str]:
    return diraccfg.as_list(cfg.getOption(option))


# -- the CTA settings ---------------------------------------------------------------------------


def test_cta_settings_are_redundant() -> None:
    settings = load_settings()
    assert settings.setup == "CTA"
    hosts = {urlsplit(url).hostname for url in settings.servers}
    assert len(settings.servers) == len(set(settings.servers)) >= 2
    assert len(hosts) >= 2
    assert settings.root["/DIRAC/Security/UseServerCertificate"] == "no"
    assert settings.root["/LocalInstallation/SkipCAChecks"] == "True"
    assert diraccfg.as_list(settings.root["/LocalInstallation/ConfigurationServer"]) == \
        settings.servers


def test_settings_refuse_yaml_booleans_and_bad_paths(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("/DIRAC/Security/UseServerCertificate: no\n")
    with pytest.raises(ConfigError, match="quote yes/no") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)
    path.write_text("DIRAC/Setup: CTA\n")
    with pytest.raises(ConfigError, match="not an option path"):
        load_settings(path)
    path.write_text("/DIRAC/Setup: [CTA\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(path)


def test_settings_from_a_cfg_file(tmp_path: Path) -> None:
    path = tmp_path / "site.cfg"
    path.write_text("DIRAC\n{\n  Setup = Box\n  Configuration\n  {\n    Servers = dips://a:1/C/S\n"
                    "    Servers += dips://b:2/C/S\n  }\n}\n")
    settings = load_settings(path)
    assert settings.setup == "Box"
    assert settings.servers == ["dips://a:1/C/S", "dips://b:2/C/S"]


def test_server_address() -> None:
    assert diraccfg.server_address("dips://h.example:9135/Configuration/Server") == \
        ("h.example", 9135)
    assert diraccfg.server_address("dips://h.example/Configuration/Server") == ("h.example", 9135)
    assert diraccfg.server_address("https://h.example/Configuration/Server") == ("h.example", 443)
    with pytest.raises(InputError, match="not a server URL"):
        diraccfg.server_address("Configuration/Server")


# -- dirac configure ----------------------------------------------------------------------------


def test_configure_keeps_every_user_setting(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "dirac.cfg"
    path.parent.mkdir()
    path.write_text(USER_CFG)
    path.chmod(0o600)
    settings = load_settings()
    plan = plan_configure(path, settings)
    assert plan.changed
    backup = write_configure(plan, NOW)
    assert backup == path.with_name("dirac.cfg.bak-20261125T120000")
    assert backup.read_text() == USER_CFG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    old, new = parse(USER_CFG), parse(path.read_text())
    # every option the user had is still there, with its value, unless the CTA settings name it
    for option, value in diraccfg.cfg_options(old).items():
        if option not in settings.root:
            assert diraccfg.cfg_options(new)[option] == value, option
    # the CTA settings are in force
    for option, value in settings.root.items():
        assert values(new, option) == diraccfg.as_list(value), option
    assert new.getOption("/DIRAC/Configuration/Name") == "CTA-Production"
    assert new.getOption("/Resources/FileCatalogs/DIRACFileCatalog/AccessType") == "Read-Write"
    assert new.getComment("DIRAC").strip() == "written by dirac-configure, then edited by hand"
    # comments stay with what they describe (DIRAC's serialization drops the blank lines)
    dirac = new["DIRAC"]
    assert isinstance(dirac, CFG)
    assert dirac.getComment("VirtualOrganization").strip() == "the VO of this client"
    # the diff shows every option the settings changed, and no other option
    removed = [line for line in plan.diff.splitlines()
               if line.startswith("-") and not line.startswith("---") and "=" in line]
    assert removed == ["-    UseServerCertificate = yes"]  # the first server is CTA's already
    added = {line.split("=")[0].strip("+ ") for line in plan.diff.splitlines()
             if line.startswith("+") and not line.startswith("+++") and "=" in line}
    assert added == {"Setup", "Servers", "UseServerCertificate", "ConfigurationServer",
                     "SkipCAChecks"}

    again = plan_configure(path, settings)
    assert not again.changed and again.diff == ""
    assert write_configure(again, NOW) is None
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "dirac.cfg", "dirac.cfg.bak-20261125T120000"]


def test_configure_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "root" / "etc" / "dirac.cfg"
    plan = plan_configure(path, load_settings())
    assert plan.diff.startswith("--- /dev/null\n")
    assert write_configure(plan) is None
    cfg = parse(path.read_text())
    assert cfg.getOption("/DIRAC/Setup") == "CTA"
    assert values(cfg, "/DIRAC/Configuration/Servers") == load_settings().servers
    assert cfg.getOption("/LocalInstallation/SkipCAChecks") == "True"


def test_configure_an_unusual_layout(tmp_path: Path) -> None:
    path = tmp_path / "dirac.cfg"
    # DIRAC reads a section name split over two lines as one name
    path.write_text("Local\nSite\n{\n  Site = X\n}\n")
    write_configure(plan_configure(path, load_settings()), NOW)
    cfg = parse(path.read_text())
    assert cfg.getOption("/LocalSite/Site") == "X"
    assert cfg.getOption("/DIRAC/Setup") == "CTA"


def test_configure_leaves_a_file_that_has_the_settings_alone(tmp_path: Path) -> None:
    """Written otherwise than DIRAC writes it (lists on one line, blank lines, comments, other
    options): what DIRAC reads is already right, so not a byte changes and no backup is made."""
    servers = load_settings().servers
    text = f"""\
# by hand

DIRAC
{{
  Setup = CTA
  Extra = 1

  Configuration
  {{
    Servers = {",".join(servers)}
  }}
  Security
  {{
    UseServerCertificate = no
  }}
}}
LocalInstallation
{{
  Setup = CTA
  ConfigurationServer = {", ".join(servers)}
  SkipCAChecks = True
}}
"""
    path = tmp_path / "dirac.cfg"
    path.write_text(text)
    plan = plan_configure(path, load_settings())
    assert not plan.changed and plan.diff == ""
    assert write_configure(plan, NOW) is None
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["dirac.cfg"]
    path.write_text(text.replace("SkipCAChecks = True", "SkipCAChecks = False"))
    assert plan_configure(path, load_settings()).changed


def test_configure_backups_never_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "dirac.cfg"
    path.write_text(USER_CFG)
    taken = path.with_name("dirac.cfg.bak-20261125T120000")
    taken.write_text("older backup")
    backup = write_configure(plan_configure(path, load_settings()), NOW)
    assert backup == path.with_name("dirac.cfg.bak-20261125T120000.1")
    assert taken.read_text() == "older backup"


@pytest.mark.parametrize("text, message", [
    ("DIRAC\n{\n  Setup = CTA\n", "not a valid DIRAC cfg file"),
    ("DIRAC\n{\n  Configuration = here\n}\n", "/DIRAC/Configuration is an option"),
    ("DIRAC\n{\n  Setup\n  {\n  }\n}\n", "/DIRAC/Setup is a section"),
])
def test_configure_refuses_what_it_cannot_merge(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "dirac.cfg"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        plan_configure(path, load_settings())
    assert caught.value.exit_code == 2
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["dirac.cfg"]


def protopipe_grid(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``protopipe-grid ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_command_dry_run_then_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dirac.cfg"
    path.write_text(USER_CFG)
    code, out, _ = protopipe_grid(["dirac", "configure", "--file", str(path), "--dry-run"], capsys)
    assert code == 0
    assert "+    Servers += dips://ccdcta-web01.in2p3.fr:9135/Configuration/Server" in out
    assert "dry run: nothing written" in out
    assert path.read_text() == USER_CFG
    assert [p.name for p in tmp_path.iterdir()] == ["dirac.cfg"]

    code, out, _ = protopipe_grid(["dirac", "configure", "--file", str(path)], capsys)
    assert code == 0
    backups = sorted(tmp_path.glob("dirac.cfg.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == USER_CFG
    assert f"wrote {path} (the old file is {backups[0]})" in out
    assert parse(path.read_text()).getOption("/LocalSite/CPUTimeLeft") == "12345"

    code, out, _ = protopipe_grid(["dirac", "configure", "--file", str(path)], capsys)
    assert code == 0
    assert "already has these settings: nothing to do" in out

    path.write_text("DIRAC\n{\n")
    code, _, err = protopipe_grid(["dirac", "configure", "--file", str(path)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "not a valid DIRAC cfg file" in err


def test_command_as_installed(tmp_path: Path) -> None:
    path = tmp_path / "dirac.cfg"
    done = subprocess.run([str(BIN / "protopipe-grid"), "dirac", "configure", "--file", str(path),
                           "--dry-run"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("--- /dev/null\n")
    assert not path.exists()


# -- where DIRAC reads dirac.cfg ----------------------------------------------------------------


def test_lookup_order_and_precedence(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    home.mkdir()
    sys_a, sys_b = tmp_path / "a.cfg", tmp_path / "b.cfg"
    env = {"DIRAC_ROOT_PATH": str(root), "DIRACSYSCONFIG": f"{sys_a}, {sys_b}"}
    candidates = cfg_candidates(env, home)
    assert candidates == [
        CfgFile(home / ".dirac.cfg", "~/.dirac.cfg"),
        CfgFile(sys_a, "$DIRACSYSCONFIG"), CfgFile(sys_b, "$DIRACSYSCONFIG"),
        CfgFile(root / "etc" / "dirac.cfg", "etc/dirac.cfg of $DIRAC_ROOT_PATH"),
    ]
    with pytest.raises(InputError):
        default_target({}, tmp_path / "nobody")
    assert default_target(env, home) == root / "etc" / "dirac.cfg"

    (root / "etc" / "dirac.cfg").write_text(
        "DIRAC\n{\n  Setup = Root\n  Extra = root\n}\nLocalSite\n{\n  Site = R\n}\n")
    sys_b.write_text("DIRAC\n{\n  Setup = B\n}\n")
    sys_a.write_text("DIRAC\n{\n  Setup = A\n}\n")
    config = effective_config(candidates)
    assert config.value("/DIRAC/Setup") == "A"
    assert config.value("/DIRAC/Extra") == "root"
    assert config.origin("/DIRAC/Setup") == CfgFile(sys_a, "$DIRACSYSCONFIG")
    assert default_target(env, home) == sys_a

    (home / ".dirac.cfg").write_text("DIRAC\n{\n  Setup = Home\n}\n")
    config = effective_config(candidates)
    assert config.value("/DIRAC/Setup") == "Home"
    assert config.value("/LocalSite/Site") == "R"
    assert len(config.files) == 4
    assert default_target(env, home) == home / ".dirac.cfg"


def test_dirac_root_from_the_python_running_dirac_proxy_init(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "dirac-proxy-init"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nraise SystemExit(0)\n")
    script.chmod(0o755)
    env = {"PATH": str(script.parent)}
    assert dirac_root(env) == (Path(sys.base_prefix).resolve(),
                               f"the DIRAC installation of {script}")
    assert dirac_root({**env, "DIRAC_ROOT_PATH": "/opt/dirac"}) == \
        (Path("/opt/dirac"), "$DIRAC_ROOT_PATH")


def test_script_interpreter_forms(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/opt/conda/envs/x/bin/python3.11\n")
    assert dirac_client.script_interpreter(script, {}) == Path("/opt/conda/envs/x/bin/python3.11")
    script.write_text("#!/bin/sh\n'''exec' \"/very/long/path/bin/python\" \"$0\" \"$@\"\n' '''\n")
    assert dirac_client.script_interpreter(script, {}) == Path("/very/long/path/bin/python")
    script.write_text("#!/usr/bin/env python3\n")
    assert dirac_client.script_interpreter(script, {"PATH": str(BIN)}) == BIN / "python3"
    script.write_text("no shebang\n")
    assert dirac_client.script_interpreter(script, {}) is None


def test_dirac_root_in_a_conda_environment(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dirac_client.importlib.util, "find_spec", lambda name: None)
    assert dirac_root({"PATH": str(tmp_path), "CONDA_PREFIX": "/opt/conda/envs/pgi"}) == \
        (Path("/opt/conda/envs/pgi"), "$CONDA_PREFIX")
    assert dirac_root({"PATH": str(tmp_path)}) is None
