"""The proxy the grid clients use: where it is, what it holds, how long it lasts.

The X.509 chain is read with ``cryptography``; the DIRAC group and VOMS attributes with
:mod:`.extensions`. Only times, group and VOMS attributes come out of here, never the file's
content. For the submit path: :func:`check_proxy_for` (raises :class:`ProxyLifetimeError`, exit
code 2) and :func:`proxy_time_left`.
"""

from __future__ import annotations

import math
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import InputError
from .extensions import VomsInfo, dirac_group, extension, voms_info
from .machine import Machine

if TYPE_CHECKING:
    from cryptography import x509

#: how to make a proxy for CTA (DIRAC group cta_user, VOMS attributes added)
PROXY_COMMAND = "dirac-proxy-init -g cta_user -M"
PROXY_CERT_INFO_OID = "1.3.6.1.5.5.7.1.14"  # RFC 3820


@dataclass(frozen=True)
class ProxyInfo:
    """A proxy's times and attributes; never its content."""

    path: Path
    rfc3820: bool
    not_before: datetime  # the latest start in the chain the file holds
    not_after: datetime  # the earliest end in that chain
    group: str | None  # DIRAC group (DIRAC's own extension)
    voms: VomsInfo | None
    mode: int

    @property
    def expires(self) -> datetime:
        """When the proxy, or its VOMS attributes, stop being valid."""
        if self.voms is not None and self.voms.not_after is not None:
            return min(self.not_after, self.voms.not_after)
        return self.not_after

    def time_left(self, now: datetime) -> timedelta:
        return self.expires - now


class ProxyLifetimeError(InputError):
    """The proxy will not last as long as the work needs."""

    def __init__(self, path: Path, left: timedelta, needed_hours: float) -> None:
        self.path = path
        self.left = left
        self.needed_hours = needed_hours
        state = (f"expired {duration(-left)} ago" if left <= timedelta(0)
                 else f"has {duration(left)} left")
        super().__init__(f"the proxy {path} {state}; this needs {needed_hours:g} h",
                         f"renew it: {renew_command(needed_hours)}")


def renew_command(needed_hours: float) -> str:
    hours = max(24, math.ceil(needed_hours + margin(needed_hours).total_seconds() / 3600))
    return f"{PROXY_COMMAND} -v {hours}:00"


def margin(needed_hours: float) -> timedelta:
    """How much more than needed a proxy must have left to be OK (not WARN)."""
    return timedelta(hours=max(1.0, needed_hours / 4))


def duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(0, round(seconds / 60))} min"


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def proxy_location(machine: Machine) -> tuple[Path, str]:
    """Where the proxy is looked for, and why there (as the grid clients do)."""
    if machine.env.get("X509_USER_PROXY"):
        return Path(machine.env["X509_USER_PROXY"]), "$X509_USER_PROXY"
    return machine.tmp / f"x509up_u{machine.uid}", "the default place"


def not_a_proxy(path: Path, why: str) -> InputError:
    return InputError(f"proxy {path}: {why}", f"make one: {PROXY_COMMAND}")


def read_proxy(path: Path) -> ProxyInfo:
    """The times and attributes of the proxy at ``path``; InputError if it is not one."""
    from cryptography import x509  # here: the command line starts faster

    try:
        data = Path(path).read_bytes()
        mode = stat.S_IMODE(Path(path).stat().st_mode)
    except OSError as exc:
        raise not_a_proxy(path, str(exc.strerror or exc)) from None
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise not_a_proxy(path, "no PEM certificate in it") from None
    if b"PRIVATE KEY-----" not in data:
        raise not_a_proxy(path, "holds no private key, it is not a proxy")
    proxies = []
    for cert in chain:
        if not is_proxy(cert):
            break
        proxies.append(cert)
    if not proxies:
        raise not_a_proxy(path, "the first certificate is not a proxy certificate")
    group = next((g for g in map(dirac_group, proxies) if g is not None), None)
    voms = next((v for v in map(voms_info, proxies) if v is not None), None)
    return ProxyInfo(
        path=Path(path), rfc3820=extension(proxies[0], PROXY_CERT_INFO_OID) is not None,
        not_before=max(c.not_valid_before_utc for c in chain),
        not_after=min(c.not_valid_after_utc for c in chain),
        group=group, voms=voms, mode=mode)


def is_proxy(cert: x509.Certificate) -> bool:
    """RFC 3820 proxy, or legacy Globus proxy (last CN ``proxy`` / ``limited proxy``)."""
    from cryptography.x509.oid import NameOID

    if extension(cert, PROXY_CERT_INFO_OID) is not None:
        return True
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return bool(names) and names[-1].value in ("proxy", "limited proxy")


def find_proxy(machine: Machine | None = None) -> ProxyInfo:
    """The proxy the grid clients would use; InputError if there is none."""
    machine = machine or Machine.current()
    path, why = proxy_location(machine)
    if not path.exists():
        raise InputError(f"no proxy at {path} ({why})", f"make one: {PROXY_COMMAND}")
    return read_proxy(path)


def proxy_time_left(machine: Machine | None = None) -> timedelta:
    """Time left on the proxy (and its VOMS attributes); negative once expired."""
    machine = machine or Machine.current()
    return find_proxy(machine).time_left(machine.clock())


def check_proxy_for(hours: float, machine: Machine | None = None) -> ProxyInfo:
    """The proxy, if it lasts ``hours`` more; :class:`ProxyLifetimeError` (exit 2) if not,
    InputError if there is none. Call it before starting work that needs the proxy."""
    machine = machine or Machine.current()
    proxy = find_proxy(machine)
    left = proxy.time_left(machine.clock())
    if left < timedelta(hours=hours):
        raise ProxyLifetimeError(proxy.path, left, hours)
    return proxy
