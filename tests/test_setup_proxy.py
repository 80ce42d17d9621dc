"""Reading a proxy file: the X.509 chain, the DIRAC group and the VOMS attribute certificate,
from real proxies signed by a throw-away CA (``proxies.py``) whose extensions are encoded as
the grid clients encode them; and the lifetime check before a submission."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from analysis_configs import write_configs
from proxies import FQANS, HOUR, NOW, VO, Pki, fqan_values, make_proxy, name, tlv, voms_extension

from protopipe_grid_interface.exceptions import InputError
from protopipe_grid_interface.setup.extensions import VomsInfo
from protopipe_grid_interface.setup.machine import Machine
from protopipe_grid_interface.setup.proxy import (
    ProxyLifetimeError,
    check_proxy_for,
    proxy_time_left,
    read_proxy,
)


def test_read_proxy(pki: Pki, tmp_path: Path) -> None:
    start, end = NOW - HOUR, NOW + 30 * HOUR
    proxy = read_proxy(make_proxy(pki, tmp_path / "proxy", start=start, end=end,
                                  voms_end=NOW + 20 * HOUR, mode=0o640))
    assert proxy.rfc3820 and proxy.group == "cta_user" and proxy.mode == 0o640
    assert proxy.voms == VomsInfo(VO, FQANS, start, NOW + 20 * HOUR)
    assert (proxy.not_before, proxy.not_after) == (start, end)  # the proxy's, not the user's
    assert proxy.expires == NOW + 20 * HOUR  # the VOMS attributes end first
    assert proxy.time_left(NOW) == 20 * HOUR


def test_vo_from_the_fqans_without_a_policy_authority(pki: Pki, tmp_path: Path) -> None:
    extension = voms_extension(name("tester"), NOW, NOW + HOUR, authority=False)
    proxy = read_proxy(make_proxy(pki, tmp_path / "proxy", voms=False, extra=extension))
    assert proxy.voms == VomsInfo(VO, FQANS, NOW, NOW + HOUR)


def test_utf8_fqans(pki: Pki, tmp_path: Path) -> None:
    values = fqan_values(("/vo.example/ops",), tag=0x0C)
    extension = voms_extension(name("tester"), NOW, NOW + HOUR, values=values)
    voms = read_proxy(make_proxy(pki, tmp_path / "proxy", voms=False, extra=extension)).voms
    assert voms is not None and voms.fqans == ("/vo.example/ops",) and voms.vo == VO


def test_unreadable_fqans_keep_the_times(pki: Pki, tmp_path: Path) -> None:
    values = tlv(0x30, tlv(0x02, b"\x07"))  # an INTEGER is not an IetfAttrSyntax value
    extension = voms_extension(name("tester"), NOW, NOW + HOUR, values=values)
    voms = read_proxy(make_proxy(pki, tmp_path / "proxy", voms=False, extra=extension)).voms
    assert voms == VomsInfo(None, (), NOW, NOW + HOUR)


@pytest.mark.parametrize("raw", [
    b"\x30\x08\x30\x06\x06\x09\x2b",  # truncated
    tlv(0x30, tlv(0x30, tlv(0x02, b"\x01"))),  # a sequence, but of no attribute certificate
    tlv(0x30),  # no attribute certificate at all
])
def test_unreadable_voms_extension(pki: Pki, tmp_path: Path, raw: bytes) -> None:
    proxy = read_proxy(make_proxy(pki, tmp_path / "proxy", voms=False, extra=raw))
    assert proxy.voms == VomsInfo(None, (), None, None)
    assert proxy.expires == proxy.not_after


def test_no_voms_extension(pki: Pki, tmp_path: Path) -> None:
    assert read_proxy(make_proxy(pki, tmp_path / "proxy", voms=False)).voms is None


@pytest.mark.parametrize("der, group", [
    (tlv(0x16, b"cta_user"), "cta_user"),  # IA5String, as DIRAC writes it
    (tlv(0x0C, b"cta_prod"), "cta_prod"),  # UTF8String
    (tlv(0x13, b"cta_admin"), "cta_admin"),  # PrintableString
    (tlv(0x02, b"\x05"), None),  # an INTEGER is no group
    (b"\x16\x05ab", None),  # truncated
])
def test_dirac_group(pki: Pki, tmp_path: Path, der: bytes, group: str | None) -> None:
    assert read_proxy(make_proxy(pki, tmp_path / "proxy", group_der=der)).group == group


def test_not_a_proxy_is_one_line(pki: Pki, tmp_path: Path) -> None:
    keyless = tmp_path / "keyless"
    keyless.write_bytes(re.sub(rb"-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----\n", b"",
                               make_proxy(pki, tmp_path / "proxy").read_bytes(), flags=re.S))
    text = tmp_path / "text"
    text.write_text("not a certificate\n")
    for path, message in ((keyless, "holds no private key, it is not a proxy"),
                          (text, "no PEM certificate in it"),
                          (tmp_path / "none", "No such file or directory")):
        with pytest.raises(InputError) as caught:
            read_proxy(path)
        assert caught.value.message == f"proxy {path}: {message}"
        assert "\n" not in str(caught.value)


def machine(tmp_path: Path, proxy: Path) -> Machine:
    return Machine(env={"X509_USER_PROXY": str(proxy)}, home=tmp_path, uid=4242, tmp=tmp_path,
                   now=NOW)


def test_check_proxy_for_submission(pki: Pki, tmp_path: Path) -> None:
    proxy = tmp_path / "proxy.pem"
    here = machine(tmp_path, proxy)
    with pytest.raises(InputError, match="no proxy at"):
        check_proxy_for(12, here)
    make_proxy(pki, proxy, end=NOW + 5 * HOUR)
    assert proxy_time_left(here) == 5 * HOUR
    assert check_proxy_for(4, here).group == "cta_user"
    with pytest.raises(ProxyLifetimeError) as caught:
        check_proxy_for(12, here)
    error = caught.value
    assert error.exit_code == 2
    assert "\n" not in str(error)
    assert str(error) == (f"the proxy {proxy} has 5.0 h left; this needs 12 h (renew it: "
                          "dirac-proxy-init -g cta_user -M -v 24:00)")
    make_proxy(pki, proxy, start=NOW - 30 * HOUR, end=NOW - HOUR)
    with pytest.raises(ProxyLifetimeError, match="expired 1.0 h ago"):
        check_proxy_for(1, here)


def test_machine_current_reads_this_process() -> None:
    here = Machine.current()
    assert here.uid == os.getuid()
    assert abs(here.clock() - datetime.now(UTC)) < timedelta(seconds=5)


def test_submission_refuses_to_start_with_a_proxy_that_expires_too_soon(
        pki: Pki, tmp_path: Path) -> None:
    """`jobs submit` on DIRAC: exit 2 with one line before any work; --force goes past it."""
    proxy = tmp_path / "x509up"
    make_proxy(pki, proxy, end=datetime.now(UTC) + timedelta(minutes=20))
    analysis = tmp_path / "shared_folder" / "analyses" / "ana"
    (analysis / "configs").mkdir(parents=True)
    (analysis / "analysis_metadata.yaml").write_text(yaml.safe_dump({
        "analyses_directory": str(analysis.parent), "analysis_name": "ana",
        "Home directory on the GRID": "/vo.cta.in2p3.fr/user/t/tester"}))
    lfns = tmp_path / "gamma.list"
    lfns.write_text("/vo.cta.in2p3.fr/MC/gamma_20deg_0deg_run1___x.simtel.gz\n")
    (analysis / "configs" / "grid.yaml").write_text(yaml.safe_dump({
        "GRID": {"upload_sites": ["SE-1"]}, "EnergyRegressor": {"gamma_list": str(lfns)}}))
    write_configs(analysis / "configs", ["LSTCam"])
    env = {**os.environ, "X509_USER_PROXY": str(proxy)}
    argv = [str(Path(sys.executable).parent / "protopipe-grid"), "jobs", "submit",
            "--metadata", str(analysis), "--stage", "training-energy", "--backend", "dirac"]
    refused = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "proxy" in refused.stderr and str(proxy) in refused.stderr
    assert not (analysis / "state.sqlite").exists()
    forced = subprocess.run([*argv, "--force"], capture_output=True, text=True, env=env)
    # past the proxy check: it fails later, on DIRAC itself, not on the proxy
    assert forced.returncode != 2 and str(proxy) not in forced.stderr, forced.stderr
