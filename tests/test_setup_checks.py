"""``protopipe-grid doctor`` against real set-ups built here: environments with each variable
missing or wrong, real RFC 3820 proxies signed by a user certificate of a throw-away CA (valid,
nearly expired, expired, not yet valid, with and without DIRAC group and VOMS attributes),
``dirac.cfg`` files with one, two, unreachable (a closed local port) and reachable (a listening
socket on 127.0.0.1) configuration servers, and payload environments; and the local backend,
which needs none of the grid set-up (its rows are SKIP). Each case asserts the exact verdict. No
network beyond 127.0.0.1. The proxies come from ``proxies.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from proxies import FQANS, HOUR, NOW, VO, Pki, make_proxy

from protopipe_grid_interface.cli.main import main
from protopipe_grid_interface.exceptions import InputError
from protopipe_grid_interface.setup.checks import DoctorOptions, require_protopipe, run_checks
from protopipe_grid_interface.setup.machine import Machine
from protopipe_grid_interface.setup.report import Check, Report, Verdict

BIN = Path(sys.executable).parent
CTA_SERVERS = "dips://dcta-servers02.pic.es:9135/Configuration/Server"

# -- a machine built in tmp_path --------------------------------------------------------------


def executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_payload_env(root: Path, version: str = "0.0.0") -> Path:
    """A payload environment whose ``python`` is this one with a protopipe ``version`` on its
    path (PyPI calls protopipe 0.5.0 "0.0.0")."""
    site = root / "site"
    (site / "protopipe").mkdir(parents=True)
    (site / "protopipe" / "__init__.py").write_text("")
    dist = site / f"protopipe-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: protopipe\nVersion: {version}\n")
    executable(root / "bin" / "python", f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(site))} "
               f"exec {shlex.quote(sys.executable)} -S \"$@\"\n")  # -S: starts faster
    for program in ("protopipe-TRAINING", "protopipe-MODEL", "protopipe-DL2"):
        executable(root / "bin" / program)
    return root


def listening() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections, while the generator runs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def listener() -> Iterator[int]:
    yield from listening()


@pytest.fixture
def listener2() -> Iterator[int]:
    yield from listening()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server(host: str, port: int) -> str:
    return f"dips://{host}:{port}/Configuration/Server"


def dirac_cfg(servers: list[str], setup: str | None = "CTA", use_server_cert: str | None = "no",
              extra: str = "") -> str:
    lines = ["DIRAC", "{"]
    if setup is not None:
        lines.append(f"  Setup = {setup}")
    lines += ["  Configuration", "  {"]
    lines += [f"    Servers {'=' if i == 0 else '+='} {s}" for i, s in enumerate(servers)]
    lines.append("  }")
    if use_server_cert is not None:
        lines += ["  Security", "  {", f"    UseServerCertificate = {use_server_cert}", "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n" + extra


@dataclass
class World:
    """A machine laid out in a temporary folder: HOME, PATH, a DIRAC root, grid-security, a
    payload environment; ``env`` is what the doctor sees."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def dirac_root(self) -> Path:
        return self.root / "dirac"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def proxy(self) -> Path:
        return self.root / "proxy.pem"

    def write_cfg(self, text: str) -> Path:
        path = self.dirac_root / "etc" / "dirac.cfg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def machine(self, now: datetime = NOW) -> Machine:
        return Machine(env=dict(self.env), home=self.home, uid=4242, tmp=self.root / "tmp",
                       now=now)

    def run(self, needed_hours: float = 12.0, payload: Path | None = None,
            now: datetime = NOW, grid: bool = True) -> Report:
        return run_checks(self.machine(now), DoctorOptions(
            grid=grid, needed_hours=needed_hours, timeout=1.0,
            payload_env=payload or self.root / "payload"))


@pytest.fixture
def no_dirac_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this test's Python has installed, DIRAC is not importable for the doctor."""
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "DIRAC" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.fixture
def world(tmp_path: Path, no_dirac_here: None) -> World:
    """Everything in order but the proxy and dirac.cfg, which each test adds."""
    w = World(tmp_path)
    for folder in ("certificates", "vomsdir", "vomses"):
        (w.root / "grid-security" / folder).mkdir(parents=True)
        (w.root / "grid-security" / folder / "item").write_text("x")
    for program in ("voms-proxy-init", "voms-proxy-info", "dirac-proxy-init"):
        executable(w.bin / program)
    w.home.mkdir()
    (w.root / "tmp").mkdir()
    fake_payload_env(w.root / "payload")
    w.env.update({
        "PATH": str(w.bin), "HOME": str(w.home), "DIRAC_ROOT_PATH": str(w.dirac_root),
        "X509_CERT_DIR": str(w.root / "grid-security" / "certificates"),
        "X509_VOMS_DIR": str(w.root / "grid-security" / "vomsdir"),
        "X509_VOMSES": str(w.root / "grid-security" / "vomses"),
        "X509_USER_PROXY": str(w.proxy),
    })
    return w


def verdicts(report: Report) -> dict[str, Verdict]:
    return {c.name: c.verdict for c in report.checks}


def check(report: Report, name: str) -> Check:
    return report.by_name()[name]


# -- the VOMS variables -----------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["X509_CERT_DIR", "X509_VOMS_DIR", "X509_VOMSES"])
def test_variable_missing_fails_with_export_line(world: World, variable: str) -> None:
    del world.env[variable]
    report = world.run()
    row = check(report, variable)
    assert row.verdict is Verdict.FAIL
    assert row.detail.startswith("not set")
    folder = {"X509_CERT_DIR": "certificates", "X509_VOMS_DIR": "vomsdir",
              "X509_VOMSES": "vomses"}[variable]
    assert row.fix.splitlines()[0] == \
        f"export {variable}={world.dirac_root}/etc/grid-security/{folder}"
    assert "dirac-configure installs it" in row.fix
    others = {"X509_CERT_DIR", "X509_VOMS_DIR", "X509_VOMSES"} - {variable}
    assert all(verdicts(report)[o] is Verdict.OK for o in others)
    assert report.exit_code == 1


@pytest.mark.parametrize("variable", ["X509_CERT_DIR", "X509_VOMS_DIR", "X509_VOMSES"])
def test_variable_pointing_nowhere_fails(world: World, variable: str) -> None:
    world.env[variable] = str(world.root / "nowhere")
    row = check(world.run(), variable)
    assert (row.verdict, row.detail) == (Verdict.FAIL, f"{world.root / 'nowhere'} does not exist")


def test_cert_dir_that_is_a_file_fails_but_a_vomses_file_is_fine(world: World) -> None:
    a_file = world.root / "vomses-file"
    a_file.write_text('"vo.cta.in2p3.fr" "voms.test" "15008" "/CN=voms.test" "vo.cta.in2p3.fr"\n')
    world.env["X509_CERT_DIR"] = str(a_file)
    world.env["X509_VOMSES"] = str(a_file)
    report = world.run()
    assert check(report, "X509_CERT_DIR").verdict is Verdict.FAIL
    assert check(report, "X509_CERT_DIR").detail == f"{a_file} is not a folder"
    assert check(report, "X509_VOMSES").verdict is Verdict.OK


def test_empty_certificates_folder_warns(world: World) -> None:
    empty = world.root / "empty"
    empty.mkdir()
    world.env["X509_CERT_DIR"] = str(empty)
    row = check(world.run(), "X509_CERT_DIR")
    assert (row.verdict, row.detail) == (Verdict.WARN, f"{empty} is empty")


# -- conda environment variables --------------------------------------------------------------


def conda_env(world: World, kept: Mapping[str, str] | None) -> Path:
    prefix = world.root / "conda" / "envs" / "pgi"
    (prefix / "conda-meta").mkdir(parents=True)
    if kept is not None:
        (prefix / "conda-meta" / "state").write_text(json.dumps({"env_vars": dict(kept)}))
    world.env.update({"CONDA_PREFIX": str(prefix), "CONDA_DEFAULT_ENV": "pgi"})
    return prefix


def test_outside_conda_nothing_to_keep(world: World) -> None:
    assert verdicts(world.run())["conda env vars"] is Verdict.OK


def test_conda_variables_not_kept_warns_with_the_set_lines(world: World) -> None:
    conda_env(world, kept=None)
    row = check(world.run(), "conda env vars")
    assert row.verdict is Verdict.WARN
    assert "X509_CERT_DIR, X509_VOMS_DIR, X509_VOMSES" in row.detail
    assert row.fix.splitlines() == [
        f"conda env config vars set X509_CERT_DIR={world.env['X509_CERT_DIR']}",
        f"conda env config vars set X509_VOMS_DIR={world.env['X509_VOMS_DIR']}",
        f"conda env config vars set X509_VOMSES={world.env['X509_VOMSES']}",
        "conda deactivate && conda activate pgi",
    ]


def test_conda_variable_missing_suggests_the_environment_folder(world: World) -> None:
    prefix = conda_env(world, kept={"X509_VOMS_DIR": world.env["X509_VOMS_DIR"],
                                    "X509_VOMSES": world.env["X509_VOMSES"]})
    del world.env["X509_CERT_DIR"]
    report = world.run()
    expected = f"conda env config vars set X509_CERT_DIR={prefix}/etc/grid-security/certificates"
    assert check(report, "X509_CERT_DIR").verdict is Verdict.FAIL
    assert check(report, "X509_CERT_DIR").fix.splitlines()[:2] == [
        expected, "conda deactivate && conda activate pgi"]
    conda_row = check(report, "conda env vars")
    assert conda_row.verdict is Verdict.WARN
    assert conda_row.fix.splitlines() == [expected, "conda deactivate && conda activate pgi"]


def test_conda_variables_kept_ok_and_stale_warns(world: World) -> None:
    kept = {v: world.env[v] for v in ("X509_CERT_DIR", "X509_VOMS_DIR", "X509_VOMSES")}
    conda_env(world, kept=kept)
    assert verdicts(world.run())["conda env vars"] is Verdict.OK
    world.env["X509_VOMSES"] = str(world.root / "grid-security" / "vomsdir")
    row = check(world.run(), "conda env vars")
    assert (row.verdict, row.fix) == (Verdict.WARN, "conda deactivate && conda activate pgi")
    assert row.detail.startswith("X509_VOMSES:")


# -- clients ----------------------------------------------------------------------------------


def test_clients_present(world: World) -> None:
    report = world.run()
    assert check(report, "VOMS client").verdict is Verdict.OK
    assert check(report, "DIRAC client") == Check(
        "DIRAC client", Verdict.OK, str(world.bin / "dirac-proxy-init"))


def test_clients_missing_fail(world: World) -> None:
    for program in ("voms-proxy-info", "dirac-proxy-init"):
        (world.bin / program).unlink()
    report = world.run()
    assert check(report, "VOMS client").verdict is Verdict.FAIL
    assert check(report, "VOMS client").detail == "not on PATH: voms-proxy-info"
    assert check(report, "DIRAC client").verdict is Verdict.FAIL
    assert "dirac-grid" in check(report, "DIRAC client").fix


# -- the proxy --------------------------------------------------------------------------------


def test_no_proxy(world: World) -> None:
    del world.env["X509_USER_PROXY"]
    report = world.run()
    row = check(report, "proxy")
    assert row.verdict is Verdict.FAIL
    assert row.detail == f"no proxy at {world.root / 'tmp' / 'x509up_u4242'} (the default place)"
    assert row.fix == "dirac-proxy-init -g cta_user -M"
    assert "proxy lifetime" not in report.by_name()
    clock = check(report, "clock")
    assert clock.verdict is Verdict.WARN and clock.detail.startswith("cannot be checked offline")


def test_proxy_from_x509_user_proxy_that_does_not_exist(world: World) -> None:
    row = check(world.run(), "proxy")
    assert (row.verdict, row.detail) == (
        Verdict.FAIL, f"no proxy at {world.proxy} ($X509_USER_PROXY)")


def test_valid_proxy_in_the_default_place(world: World, pki: Pki) -> None:
    del world.env["X509_USER_PROXY"]
    path = make_proxy(pki, world.root / "tmp" / "x509up_u4242")
    report = world.run()
    assert verdicts(report)["proxy"] is Verdict.OK
    assert check(report, "proxy").detail == f"{path} (RFC 3820 proxy, the default place)"
    lifetime = check(report, "proxy lifetime")
    assert lifetime.verdict is Verdict.OK
    assert lifetime.detail.startswith("48.0 h left")
    identity = check(report, "proxy identity")
    assert identity.verdict is Verdict.OK
    assert identity.detail == f"DIRAC group cta_user; VOMS VO {VO}: {', '.join(FQANS)}"
    assert check(report, "clock").verdict is Verdict.OK


def test_proxy_hours_left_between_needed_and_margin_warns(world: World, pki: Pki) -> None:
    make_proxy(pki, world.proxy, end=NOW + 14 * HOUR)
    row = check(world.run(needed_hours=12), "proxy lifetime")
    assert row.verdict is Verdict.WARN
    assert row.detail == "14.0 h left: less than the 12 h needed plus 3.0 h of margin"
    assert row.fix == "dirac-proxy-init -g cta_user -M -v 24:00"
    assert check(world.run(needed_hours=10), "proxy lifetime").verdict is Verdict.OK


def test_nearly_expired_proxy_fails(world: World, pki: Pki) -> None:
    make_proxy(pki, world.proxy, end=NOW + timedelta(minutes=10))
    report = world.run(needed_hours=12)
    row = check(report, "proxy lifetime")
    assert row.verdict is Verdict.FAIL
    assert row.detail == "10 min left; the planned submission needs 12 h"
    assert report.exit_code == 1
    assert check(world.run(needed_hours=0.1), "proxy lifetime").verdict is Verdict.WARN


def test_expired_proxy_fails(world: World, pki: Pki) -> None:
    end = NOW - 2 * HOUR
    make_proxy(pki, world.proxy, start=NOW - 26 * HOUR, end=end)
    row = check(world.run(), "proxy lifetime")
    assert row.verdict is Verdict.FAIL
    assert row.detail == f"expired 2.0 h ago, at {end.strftime('%Y-%m-%d %H:%M')} UTC"
    assert check(world.run(), "clock").verdict is Verdict.OK


def test_voms_attributes_ending_first_count(world: World, pki: Pki) -> None:
    make_proxy(pki, world.proxy, end=NOW + 48 * HOUR, voms_end=NOW + 2 * HOUR)
    row = check(world.run(), "proxy lifetime")
    assert row.verdict is Verdict.FAIL
    assert row.detail == ("2.0 h left (its VOMS attributes end first); the planned submission "
                          "needs 12 h")


def test_proxy_without_group_or_voms_reports_unknown(world: World, pki: Pki) -> None:
    make_proxy(pki, world.proxy, group=None, voms=False)
    report = world.run()
    row = check(report, "proxy identity")
    assert row.verdict is Verdict.WARN
    assert row.detail == ("DIRAC group unknown; no VOMS attributes (storage elements may refuse "
                          "the proxy)")
    assert check(report, "proxy lifetime").verdict is Verdict.OK


def test_unreadable_voms_extension_reports_unknown(world: World, pki: Pki) -> None:
    make_proxy(pki, world.proxy, voms=False, extra=b"\x30\x08\x30\x06\x06\x09\x2b")
    row = check(world.run(), "proxy identity")
    assert row.verdict is Verdict.WARN
    assert row.detail == "DIRAC group cta_user; VOMS attributes present, VO unknown (not readable)"


def test_proxy_readable_by_others_warns(world: World, pki: Pki) -> None:
    make_proxy(pki, world.proxy, mode=0o644)
    row = check(world.run(), "proxy")
    assert (row.verdict, row.fix) == (Verdict.WARN, f"chmod 600 {world.proxy}")


def test_a_certificate_that_is_no_proxy_fails(world: World, pki: Pki) -> None:
    key = pki.user_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    world.proxy.write_bytes(pki.user.public_bytes(serialization.Encoding.PEM) + key)
    report = world.run()
    assert check(report, "proxy").verdict is Verdict.FAIL
    assert check(report, "proxy").detail == \
        f"proxy {world.proxy}: the first certificate is not a proxy certificate"
    world.proxy.write_text("not a certificate\n")
    assert check(world.run(), "proxy").detail == f"proxy {world.proxy}: no PEM certificate in it"


def test_clock_behind_a_proxy_that_starts_in_the_future(world: World, pki: Pki) -> None:
    make_proxy(pki, world.proxy, start=NOW + 2 * HOUR, end=NOW + 26 * HOUR)
    row = check(world.run(), "clock")
    assert row.verdict is Verdict.FAIL
    assert row.detail.startswith("behind by at least 2.0 h")


def test_proxy_content_never_reported(world: World, pki: Pki) -> None:
    make_proxy(pki, world.proxy)
    text = world.run().to_json()
    assert "BEGIN" not in text and "tester" not in text and "PGI test" not in text


# -- dirac.cfg and its servers ----------------------------------------------------------------


def test_no_dirac_cfg(world: World) -> None:
    report = world.run()
    row = check(report, "dirac.cfg")
    assert row.verdict is Verdict.FAIL
    assert row.detail.startswith(f"none found: looked at {world.home / '.dirac.cfg'}")
    assert row.fix == "protopipe-grid dirac configure"
    assert "configuration servers" not in report.by_name()


def test_one_reachable_server_warns_no_redundancy(world: World, listener: int) -> None:
    path = world.write_cfg(dirac_cfg([server("127.0.0.1", listener)]))
    report = world.run()
    assert check(report, "dirac.cfg").detail == f"read: {path} (etc/dirac.cfg of $DIRAC_ROOT_PATH)"
    assert check(report, "Setup") == Check("Setup", Verdict.OK, "CTA")
    servers = check(report, "configuration servers")
    assert servers.verdict is Verdict.WARN
    assert servers.detail == f"1 server(s) on one host, 127.0.0.1: no redundancy (from {path})"
    assert verdicts(report)[f"server 127.0.0.1:{listener}"] is Verdict.OK
    assert verdicts(report)["UseServerCertificate"] is Verdict.OK


def test_two_reachable_hosts_ok(world: World, listener: int, listener2: int) -> None:
    world.write_cfg(dirac_cfg([server("127.0.0.1", listener), server("localhost", listener2)]))
    report = world.run()
    assert check(report, "configuration servers").verdict is Verdict.OK
    assert verdicts(report)[f"server 127.0.0.1:{listener}"] is Verdict.OK
    assert verdicts(report)[f"server localhost:{listener2}"] is Verdict.OK


def test_two_servers_one_unreachable_warns(world: World, listener: int,
                                           closed_port: int) -> None:
    world.write_cfg(dirac_cfg([server("127.0.0.1", listener), server("localhost", closed_port)]))
    report = world.run()
    assert check(report, "configuration servers").verdict is Verdict.OK
    assert verdicts(report)[f"server 127.0.0.1:{listener}"] is Verdict.OK
    row = check(report, f"server localhost:{closed_port}")
    assert (row.verdict, row.detail) == (Verdict.WARN, "unreachable: connection refused")


def test_only_unreachable_servers_fail(world: World, closed_port: int) -> None:
    world.write_cfg(dirac_cfg([server("127.0.0.1", closed_port)]))
    report = world.run()
    assert verdicts(report)[f"server 127.0.0.1:{closed_port}"] is Verdict.FAIL
    assert report.exit_code == 1


def test_two_urls_on_one_host_are_not_redundant(world: World, listener: int,
                                                listener2: int) -> None:
    world.write_cfg(dirac_cfg([server("127.0.0.1", listener), server("127.0.0.1", listener2)]))
    assert verdicts(world.run())["configuration servers"] is Verdict.WARN


def test_no_servers_fails(world: World) -> None:
    world.write_cfg("DIRAC\n{\n  Setup = CTA\n}\n")
    row = check(world.run(), "configuration servers")
    assert (row.verdict, row.detail) == (Verdict.FAIL, "none in DIRAC/Configuration/Servers")


def test_setup_and_server_certificate(world: World, listener: int) -> None:
    servers = [server("127.0.0.1", listener)]
    world.write_cfg(dirac_cfg(servers, setup=None, use_server_cert=None))
    report = world.run()
    assert verdicts(report)["Setup"] is Verdict.WARN
    assert check(report, "UseServerCertificate") == Check(
        "UseServerCertificate", Verdict.OK, "not set (DIRAC's default: no)")
    world.write_cfg(dirac_cfg(servers, setup="LHCb-Production", use_server_cert="yes"))
    report = world.run()
    assert check(report, "Setup").detail == "LHCb-Production, CTA production is CTA"
    assert verdicts(report)["Setup"] is Verdict.WARN
    row = check(report, "UseServerCertificate")
    assert (row.verdict, row.fix) == (Verdict.FAIL, "protopipe-grid dirac configure")


def test_home_dirac_cfg_wins(world: World, listener: int, closed_port: int) -> None:
    world.write_cfg(dirac_cfg([server("127.0.0.1", closed_port)], use_server_cert="yes"))
    home_cfg = world.home / ".dirac.cfg"
    home_cfg.write_text(dirac_cfg([server("127.0.0.1", listener), server("localhost", listener)]))
    report = world.run()
    assert check(report, "dirac.cfg").detail.startswith(f"read: {home_cfg} (~/.dirac.cfg), ")
    assert check(report, "configuration servers").detail.endswith(f"(from {home_cfg})")
    assert verdicts(report)["UseServerCertificate"] is Verdict.OK
    assert f"server 127.0.0.1:{closed_port}" not in report.by_name()


def test_unparsable_dirac_cfg_fails(world: World) -> None:
    path = world.write_cfg("DIRAC\n{\n  Setup = CTA\n")
    row = check(world.run(), "dirac.cfg")
    assert row.verdict is Verdict.FAIL
    assert row.detail.startswith(f"{path}: not a valid DIRAC cfg file")


# -- protopipe ----------------------------------------------------------------------------------


def test_protopipe_supported(world: World) -> None:
    report = world.run()
    assert check(report, "payload environment").verdict is Verdict.OK
    assert check(report, "protopipe") == Check(
        "protopipe", Verdict.OK, "protopipe 0.5.0: interface 0.5.x (this release)")


def test_protopipe_of_another_interface_fails(world: World) -> None:
    env = fake_payload_env(world.root / "old-payload", "0.4.0")
    row = check(world.run(payload=env), "protopipe")
    assert row.verdict is Verdict.FAIL
    assert row.detail == (f"protopipe 0.4.0 in {env} is not supported: it goes with interface "
                          "0.4.x (the original scripts; not driven by this release)")
    with pytest.raises(InputError, match="0.4.0"):
        require_protopipe(env)


def test_payload_environment_missing_fails(world: World) -> None:
    report = world.run(payload=world.root / "none")
    assert check(report, "payload environment").verdict is Verdict.FAIL
    assert check(report, "payload environment").detail == \
        f"payload environment {world.root / 'none'}: bin/python not found"
    assert check(report, "protopipe").verdict is Verdict.FAIL


@pytest.mark.payload
def test_real_payload_environment(world: World, protopipe_env: Path) -> None:
    report = world.run(payload=protopipe_env)
    assert verdicts(report)["payload environment"] is Verdict.OK
    assert verdicts(report)["protopipe"] is Verdict.OK


# -- all together, and the command ------------------------------------------------------------


def test_everything_in_order(world: World, pki: Pki, listener: int, listener2: int) -> None:
    make_proxy(pki, world.proxy)
    world.write_cfg(dirac_cfg([server("127.0.0.1", listener), server("localhost", listener2)]))
    report = world.run()
    assert {c.name: c.verdict for c in report.checks if c.verdict is not Verdict.OK} == {}
    assert report.exit_code == 0


def test_command_json_and_exit_codes(world: World, pki: Pki, listener: int, listener2: int,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    make_proxy(pki, world.proxy)
    world.write_cfg(dirac_cfg([server("127.0.0.1", listener), server("localhost", listener2)]))
    payload = ["--backend", "dirac", "--payload-env", str(world.root / "payload"), "--timeout",
               "1"]
    done = subprocess.run([str(BIN / "protopipe-grid"), "doctor", "--json", *payload],
                          env=world.env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["verdict"] == "OK" and data["exit_code"] == 0
    # HOME is the world's: no ctapipe environment there, which only ctapipe analyses need
    assert {c["name"]: c["verdict"] for c in data["checks"] if c["verdict"] != "OK"} == {
        "ctapipe environment": "SKIP"}
    assert data["checks"][0] == {"name": "X509_CERT_DIR", "verdict": "OK",
                                 "detail": world.env["X509_CERT_DIR"], "fix": ""}

    # the same machine, in this process
    for variable in ("CONDA_PREFIX", "CONDA_DEFAULT_ENV", "DIRACSYSCONFIG"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in world.env.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["doctor", "--needed-hours", "100", *payload]) == 1
    out, err = capsys.readouterr()
    assert "proxy lifetime" in out and "FAIL" in out
    assert "BEGIN" not in out + err

    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--needed-hours", "0"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "positive number" in err


# -- the local backend: the grid set-up is not needed -------------------------------------------

GRID_ROWS = ["X509_CERT_DIR", "X509_VOMS_DIR", "X509_VOMSES", "conda env vars", "VOMS client",
             "DIRAC client", "proxy", "clock", "dirac.cfg"]


def test_local_backend_skips_the_grid_checks(world: World) -> None:
    """Nothing of the grid set-up is there (no variables, no clients, no proxy, no dirac.cfg):
    the local backend needs none of it, so nothing fails."""
    world.env = {"PATH": str(world.root / "empty"), "HOME": str(world.home)}
    grid = world.run(grid=True)
    assert {verdicts(grid)[name] for name in ("X509_CERT_DIR", "proxy", "dirac.cfg")} == \
        {Verdict.FAIL}
    report = world.run(grid=False)
    assert [c.name for c in report.checks] == [*GRID_ROWS, "payload environment", "protopipe",
                                               "ctapipe environment"]
    assert all(check(report, name) == Check(name, Verdict.SKIP,
                                            "not needed for the local backend")
               for name in GRID_ROWS)
    assert verdicts(report)["protopipe"] is Verdict.OK
    assert (report.verdict, report.exit_code) == (Verdict.OK, 0)
    # what the local backend needs still fails
    broken = world.run(grid=False, payload=world.root / "none")
    assert verdicts(broken)["payload environment"] is Verdict.FAIL
    assert (broken.verdict, broken.exit_code) == (Verdict.FAIL, 1)


def test_skipped_rows_never_decide_the_verdict() -> None:
    skip = Check("proxy", Verdict.SKIP, "not needed for the local backend")
    assert (Report((skip,)).verdict, Report((skip,)).exit_code) == (Verdict.OK, 0)
    warn = Check("protopipe", Verdict.WARN, "")
    assert Report((skip, warn)).verdict is Verdict.WARN
    assert Report((Check("a", Verdict.FAIL, ""), skip)).exit_code == 1


def doctor_command(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "protopipe-grid"), "doctor", *args], env=dict(env),
                          capture_output=True, text=True, check=False, timeout=60)


def test_command_on_the_local_backend(world: World) -> None:
    """``protopipe-grid doctor`` on a machine with no grid set-up at all: the default backend
    is local, so no FAIL and exit 0; ``PGI_BACKEND=dirac`` or ``--backend dirac`` check it."""
    env = {"PATH": str(world.root / "empty"), "HOME": str(world.home),
           "XDG_CACHE_HOME": str(world.root / "cache"), "COLUMNS": "200"}
    payload = ["--payload-env", str(world.root / "payload")]
    done = doctor_command(env, *payload)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert "not needed for the local backend" in done.stdout
    # the summary; the ctapipe environment is skipped: not under this XDG_CACHE_HOME
    assert done.stdout.count("FAIL") == 1 and "0 FAIL, 10 SKIP" in done.stdout

    data = json.loads(doctor_command(env, "--json", *payload).stdout)
    assert {c["name"]: c["verdict"] for c in data["checks"]} == {
        **dict.fromkeys(GRID_ROWS, "SKIP"), "payload environment": "OK", "protopipe": "OK",
        "ctapipe environment": "SKIP"}
    assert (data["verdict"], data["exit_code"]) == ("OK", 0)

    for grid_env, args in (({**env, "PGI_BACKEND": "dirac"}, ()), (env, ("--backend", "dirac"))):
        done = doctor_command(grid_env, "--json", "--timeout", "1", *args, *payload)
        assert done.returncode == 1
        rows = {c["name"]: c["verdict"] for c in json.loads(done.stdout)["checks"]}
        assert rows["proxy"] == rows["dirac.cfg"] == rows["X509_CERT_DIR"] == "FAIL"
        assert [name for name, verdict in rows.items() if verdict == "SKIP"] == [
            "ctapipe environment"]  # no grid row skipped


@pytest.mark.payload
def test_command_on_the_local_backend_with_the_real_payload(protopipe_env: Path) -> None:
    """This machine as it is, with the installed payload environment and the default options."""
    env = {k: v for k, v in os.environ.items() if k != "PGI_BACKEND"}
    done = doctor_command(env, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert "FAIL" not in {c["verdict"] for c in data["checks"]}
    assert {c["name"]: c["detail"] for c in data["checks"]}["payload environment"] == \
        str(protopipe_env)
