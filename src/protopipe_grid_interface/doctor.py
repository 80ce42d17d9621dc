"""Is this machine set up to use the grid? ``protopipe-grid doctor``'s checks, as typed results.

Each check gives a :class:`Verdict` (OK, WARN, FAIL), what it saw, and the exact fix. Nothing
here prints; proxy and certificate contents are never logged or returned (only their times,
group and VOMS attributes).

The checks, in order:

- ``X509_CERT_DIR``, ``X509_VOMS_DIR``, ``X509_VOMSES``: set, pointing at existing paths;
- ``conda env vars``: in a conda environment, whether those are kept as the environment's
  variables (``conda-meta/state``), with the ``conda env config vars set`` lines if not;
- ``VOMS client`` (``voms-proxy-init``, ``voms-proxy-info``) and ``DIRAC client``;
- ``proxy`` (``$X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``), ``proxy lifetime`` against
  the hours the planned submission needs, ``proxy identity`` (DIRAC group, VOMS VO);
- ``clock``: there is no NTP offline, so the reference is the proxy's certificate chain: a chain
  that starts (latest notBefore: the proxy's, or the CA-issued user certificate's) in the future
  means the clock is behind. A clock ahead cannot be seen this way. No proxy: WARN;
- ``dirac.cfg`` (found where DIRAC looks, see :mod:`.diraccfg`), ``Setup``, ``configuration
  servers`` (at least two distinct hosts), one ``server host:port`` row per server (TCP connect,
  short timeout), ``UseServerCertificate`` (must be ``no``);
- ``payload environment`` (usable) and ``protopipe`` (against the compatibility table of
  :mod:`.software`).

For the submit path: :func:`proxy_time_left`, :func:`check_proxy_for` (raises
:class:`ProxyLifetimeError`, exit code 2) and :func:`require_protopipe`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import diraccfg
from .exceptions import ConfigError, InputError
from .software import (
    COMPATIBILITY,
    SUPPORTED,
    check_payload_env,
    default_payload_env,
    protopipe_location,
)

if TYPE_CHECKING:
    from cryptography import x509

log = logging.getLogger(__name__)

#: how to make a proxy for CTA (DIRAC group cta_user, VOMS attributes added)
PROXY_COMMAND = "dirac-proxy-init -g cta_user -M"
CONFIGURE_COMMAND = "protopipe-grid dirac configure"
DEFAULT_NEEDED_HOURS = 12.0
DEFAULT_TIMEOUT = 3.0

PROXY_CERT_INFO_OID = "1.3.6.1.5.5.7.1.14"  # RFC 3820
DIRAC_GROUP_OID = "1.2.42.42"
VOMS_EXTENSION_OID = "1.3.6.1.4.1.8005.100.100.5"
VOMS_FQANS_OID = "1.3.6.1.4.1.8005.100.100.4"

#: the three VOMS variables: (name, what it points at, folder under etc/grid-security/)
X509_VARIABLES = (
    ("X509_CERT_DIR", "CA certificates folder", "certificates"),
    ("X509_VOMS_DIR", "VOMS servers folder", "vomsdir"),
    ("X509_VOMSES", "vomses file or folder", "vomses"),
)
SYSTEM_X509 = {"X509_CERT_DIR": "/etc/grid-security/certificates",
               "X509_VOMS_DIR": "/etc/grid-security/vomsdir", "X509_VOMSES": "/etc/vomses"}


class Verdict(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


SEVERITY = {Verdict.OK: 0, Verdict.WARN: 1, Verdict.FAIL: 2}


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def verdict(self) -> Verdict:
        return max((c.verdict for c in self.checks), key=SEVERITY.__getitem__,
                   default=Verdict.OK)

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


@dataclass(frozen=True)
class Machine:
    """What the checks look at. :meth:`current` is this process; tests build their own."""

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


@dataclass(frozen=True)
class DoctorOptions:
    needed_hours: float = DEFAULT_NEEDED_HOURS
    timeout: float = DEFAULT_TIMEOUT
    payload_env: Path | None = None
    settings: diraccfg.DiracSettings | None = None  # None: the CTA production settings


# -- proxies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VomsInfo:
    """What could be read of a proxy's VOMS attribute certificate (its signature is not
    checked: the servers do that)."""

    vo: str | None
    fqans: tuple[str, ...]
    not_before: datetime | None
    not_after: datetime | None


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


def read_proxy(path: Path) -> ProxyInfo:
    """The times and attributes of the proxy at ``path``; InputError if it is not one."""
    from cryptography import x509  # here: the command line starts faster

    try:
        data = Path(path).read_bytes()
        mode = stat.S_IMODE(Path(path).stat().st_mode)
    except OSError as exc:
        raise InputError(f"proxy {path}: {exc.strerror or exc}",
                         f"make one: {PROXY_COMMAND}") from None
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InputError(f"proxy {path}: no PEM certificate in it",
                         f"make one: {PROXY_COMMAND}") from None
    if b"PRIVATE KEY-----" not in data:
        raise InputError(f"proxy {path}: holds no private key, it is not a proxy",
                         f"make one: {PROXY_COMMAND}")
    proxies = []
    for cert in chain:
        if not is_proxy(cert):
            break
        proxies.append(cert)
    if not proxies:
        raise InputError(f"proxy {path}: the first certificate is not a proxy certificate",
                         f"make one: {PROXY_COMMAND}")
    group = next((g for g in map(dirac_group, proxies) if g is not None), None)
    voms = next((v for v in map(voms_info, proxies) if v is not None), None)
    return ProxyInfo(
        path=Path(path), rfc3820=extension(proxies[0], PROXY_CERT_INFO_OID) is not None,
        not_before=max(c.not_valid_before_utc for c in chain),
        not_after=min(c.not_valid_after_utc for c in chain),
        group=group, voms=voms, mode=mode)


def extension(cert: x509.Certificate, oid: str) -> bytes | None:
    """The DER value of an extension we have no class for."""
    from cryptography import x509

    for ext in cert.extensions:
        if ext.oid.dotted_string == oid and isinstance(ext.value, x509.UnrecognizedExtension):
            return ext.value.value
    return None


def is_proxy(cert: x509.Certificate) -> bool:
    """RFC 3820 proxy, or legacy Globus proxy (last CN ``proxy`` / ``limited proxy``)."""
    from cryptography.x509.oid import NameOID

    if extension(cert, PROXY_CERT_INFO_OID) is not None:
        return True
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return bool(names) and names[-1].value in ("proxy", "limited proxy")


def dirac_group(cert: x509.Certificate) -> str | None:
    """The DIRAC group DIRAC writes in its own extension (an IA5String); None if absent."""
    value = extension(cert, DIRAC_GROUP_OID)
    if value is None:
        return None
    try:
        tag, content = der_items(value)[0]
        return content.decode() if tag in (0x0C, 0x13, 0x16) else None
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def voms_info(cert: x509.Certificate) -> VomsInfo | None:
    """What can be read of the VOMS attribute certificate (RFC 5755 / GFD.182): VO, FQANs and
    validity. None without a VOMS extension; empty fields where it cannot be read."""
    value = extension(cert, VOMS_EXTENSION_OID)
    if value is None:
        return None
    vo: str | None = None
    fqans: list[str] = []
    start = end = None
    fqan_oid = encode_oid(VOMS_FQANS_OID)
    try:
        for items in sibling_lists(value):
            if start is None and len(items) == 2 and all(t == 0x18 for t, _ in items):
                start, end = (generalized_time(c) for _, c in items)
            for (tag, content), (next_tag, next_content) in zip(items, items[1:], strict=False):
                if tag != 0x06 or content != fqan_oid or next_tag != 0x31 or fqans:
                    continue
                for _, attribute in der_items(next_content):  # IetfAttrSyntax
                    for part_tag, part in der_items(attribute):
                        if part_tag == 0xA0:  # policyAuthority: "vo://host:port"
                            vo = next((c.decode().split(":")[0] for t, c in der_items(part)
                                       if t == 0x86), vo)
                        elif part_tag == 0x30:
                            fqans += [c.decode() for t, c in der_items(part)
                                      if t in (0x04, 0x0C)]
    except (ValueError, UnicodeDecodeError):
        log.debug("VOMS extension only partly readable")
    if vo is None and fqans:
        vo = fqans[0].strip("/").split("/")[0] or None
    return VomsInfo(vo, tuple(fqans), start, end)


def der_items(data: bytes) -> list[tuple[int, bytes]]:
    """The DER elements of ``data``, one after the other: (tag, content)."""
    items = []
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise ValueError("truncated")
        tag = data[i]
        if tag & 0x1F == 0x1F:
            raise ValueError("high tag number")
        length = data[i + 1]
        i += 2
        if length & 0x80:
            count = length & 0x7F
            if not 0 < count <= 4:
                raise ValueError("bad length")
            length = int.from_bytes(data[i:i + count], "big")
            i += count
        if i + length > len(data):
            raise ValueError("truncated")
        items.append((tag, data[i:i + length]))
        i += length
    return items


def sibling_lists(data: bytes, depth: int = 0) -> Iterator[list[tuple[int, bytes]]]:
    """Every list of sibling DER elements in ``data``, depth first."""
    items = der_items(data)
    yield items
    for tag, content in items:
        if tag & 0x20 and depth < 32:
            try:
                yield from sibling_lists(content, depth + 1)
            except ValueError:
                continue


def encode_oid(dotted: str) -> bytes:
    numbers = [int(n) for n in dotted.split(".")]
    out = bytearray([40 * numbers[0] + numbers[1]])
    for number in numbers[2:]:
        chunk = [number & 0x7F]
        while number > 0x7F:
            number >>= 7
            chunk.append(0x80 | (number & 0x7F))
        out += bytes(reversed(chunk))
    return bytes(out)


def generalized_time(content: bytes) -> datetime:
    return datetime.strptime(content.decode()[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


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


# -- protopipe ----------------------------------------------------------------------------------


def require_protopipe(env: Path) -> str:
    """The version of protopipe in the payload environment ``env``, if this interface supports
    it (:data:`.software.COMPATIBILITY`); InputError naming what is wrong if not."""
    check_payload_env(env)
    version, _ = protopipe_location(env)
    if version not in SUPPORTED:
        drives = COMPATIBILITY.get(version)
        why = f"it goes with interface {drives}" if drives else "not in the compatibility table"
        raise InputError(f"protopipe {version} in {env} is not supported: {why}",
                         f"supported: protopipe {', '.join(SUPPORTED)} "
                         "(scripts/install-payload.sh installs it)")
    return version


# -- the checks ---------------------------------------------------------------------------------


@dataclass
class _Context:
    machine: Machine
    options: DoctorOptions
    settings: diraccfg.DiracSettings
    root: tuple[Path, str] | None
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, verdict: Verdict, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, verdict, detail, fix))

    @property
    def env(self) -> Mapping[str, str]:
        return self.machine.env

    @property
    def conda(self) -> Path | None:
        prefix = self.env.get("CONDA_PREFIX")
        return Path(prefix) if prefix else None


def run_checks(machine: Machine | None = None, options: DoctorOptions | None = None) -> Report:
    """Every check, in the order of the module docstring."""
    machine = machine or Machine.current()
    options = options or DoctorOptions()
    settings = options.settings or diraccfg.load_settings()
    context = _Context(machine, options, settings, diraccfg.dirac_root(machine.env))
    check_variables(context)
    check_conda_variables(context)
    check_clients(context)
    proxy = check_proxy(context)
    check_clock(context, proxy)
    check_dirac_cfg(context)
    check_payload(context)
    return Report(tuple(context.checks))


def suggested_x509(context: _Context, name: str, folder: str) -> tuple[Path, str]:
    """Where ``name`` should point, and a note if that does not exist yet."""
    base = context.conda or (context.root[0] if context.root else None)
    if base is None:
        path = Path(SYSTEM_X509[name])
        return path, "" if path.exists() else \
            f"({path} does not exist: install the grid CA certificates and VOMS files)"
    path = base / "etc" / "grid-security" / folder
    return path, "" if path.exists() else \
        f"({path} does not exist yet: dirac-configure installs it)"


def set_variable_lines(context: _Context, values: Mapping[str, str]) -> list[str]:
    if context.conda is not None:
        name = context.env.get("CONDA_DEFAULT_ENV") or str(context.conda)
        return ([f"conda env config vars set {k}={v}" for k, v in values.items()]
                + [f"conda deactivate && conda activate {name}"])
    return [f"export {k}={v}" for k, v in values.items()]


def check_variables(context: _Context) -> None:
    for name, what, folder in X509_VARIABLES:
        suggestion, note = suggested_x509(context, name, folder)
        fix = "\n".join(set_variable_lines(context, {name: str(suggestion)})
                        + ([note] if note else []))
        value = context.env.get(name)
        if not value:
            context.add(name, Verdict.FAIL, f"not set ({what})", fix)
            continue
        path = Path(value)
        if not path.exists():
            context.add(name, Verdict.FAIL, f"{value} does not exist", fix)
        elif name != "X509_VOMSES" and not path.is_dir():
            context.add(name, Verdict.FAIL, f"{value} is not a folder", fix)
        elif path.is_dir() and not any(path.iterdir()):
            context.add(name, Verdict.WARN, f"{value} is empty", fix)
        else:
            context.add(name, Verdict.OK, value)


def check_conda_variables(context: _Context) -> None:
    name = "conda env vars"
    if context.conda is None:
        context.add(name, Verdict.OK, "not in a conda environment: nothing to keep")
        return
    state = context.conda / "conda-meta" / "state"
    try:
        kept = json.loads(state.read_text()).get("env_vars", {}) if state.exists() else {}
        if not isinstance(kept, dict):
            raise ValueError("env_vars is not a mapping")
    except (OSError, ValueError) as exc:
        context.add(name, Verdict.WARN, f"cannot read {state}: {exc}")
        return
    variables = [v for v, _, _ in X509_VARIABLES]
    missing = [v for v in variables if v not in kept]
    if missing:
        values = {}
        for variable, _, folder in X509_VARIABLES:
            if variable in missing:
                current = context.env.get(variable)
                values[variable] = (current if current and Path(current).exists()
                                    else str(suggested_x509(context, variable, folder)[0]))
        context.add(name, Verdict.WARN,
                    f"not kept in {context.conda.name}'s variables: {', '.join(missing)} "
                    "(lost at the next activation)",
                    "\n".join(set_variable_lines(context, values)))
        return
    stale = [v for v in variables if context.env.get(v) != kept[v]]
    if stale:
        context.add(name, Verdict.WARN,
                    f"{', '.join(stale)}: the environment's variables say otherwise than the "
                    "shell (reactivate the environment)",
                    set_variable_lines(context, {})[-1])
        return
    context.add(name, Verdict.OK, f"kept in {context.conda.name}'s variables")


def check_clients(context: _Context) -> None:
    tools = {p: diraccfg.which(p, context.env) for p in ("voms-proxy-init", "voms-proxy-info")}
    missing = [p for p, where in tools.items() if where is None]
    if missing:
        context.add("VOMS client", Verdict.FAIL, f"not on PATH: {', '.join(missing)}",
                    "conda install -c conda-forge voms  (Debian: apt-get install voms-clients)")
    else:
        context.add("VOMS client", Verdict.OK, ", ".join(str(p) for p in tools.values()))
    script = diraccfg.which("dirac-proxy-init", context.env)
    if script is not None:
        context.add("DIRAC client", Verdict.OK, str(script))
    elif importlib.util.find_spec("DIRAC") is not None:
        try:
            version = f"DIRAC {importlib.metadata.version('DIRAC')}"
        except importlib.metadata.PackageNotFoundError:
            version = "DIRAC"
        context.add("DIRAC client", Verdict.OK,
                    f"{version} importable here (its commands are not on PATH)")
    else:
        context.add("DIRAC client", Verdict.FAIL,
                    "dirac-proxy-init not on PATH, and DIRAC not importable",
                    "conda install -c conda-forge dirac-grid  "
                    "(or: pip install 'protopipe-grid-interface[dirac]')")


def check_proxy(context: _Context) -> ProxyInfo | None:
    path, why = proxy_location(context.machine)
    if not path.exists():
        context.add("proxy", Verdict.FAIL, f"no proxy at {path} ({why})", PROXY_COMMAND)
        return None
    try:
        proxy = read_proxy(path)
    except InputError as exc:
        context.add("proxy", Verdict.FAIL, exc.message, PROXY_COMMAND)
        return None
    kind = "RFC 3820 proxy" if proxy.rfc3820 else "legacy Globus proxy"
    if proxy.mode & 0o077:
        context.add("proxy", Verdict.WARN,
                    f"{path} ({kind}) is readable by others (mode {proxy.mode:04o})",
                    f"chmod 600 {path}")
    else:
        context.add("proxy", Verdict.OK, f"{path} ({kind}, {why})")

    now = context.machine.clock()
    needed = context.options.needed_hours
    left = proxy.time_left(now)
    fix = renew_command(needed)
    first = " (its VOMS attributes end first)" if proxy.expires < proxy.not_after else ""
    if left <= timedelta(0):
        context.add("proxy lifetime", Verdict.FAIL,
                    f"expired {duration(-left)} ago, at {when(proxy.expires)}{first}", fix)
    elif left < timedelta(hours=needed):
        context.add("proxy lifetime", Verdict.FAIL,
                    f"{duration(left)} left{first}; the planned submission needs {needed:g} h",
                    fix)
    elif left < timedelta(hours=needed) + margin(needed):
        context.add("proxy lifetime", Verdict.WARN,
                    f"{duration(left)} left{first}: less than the {needed:g} h needed plus "
                    f"{duration(margin(needed))} of margin", fix)
    else:
        context.add("proxy lifetime", Verdict.OK,
                    f"{duration(left)} left, until {when(proxy.expires)}{first}; "
                    f"needs {needed:g} h")

    voms = proxy.voms
    group = proxy.group or "unknown"
    if voms is None:
        vo_text = "no VOMS attributes (storage elements may refuse the proxy)"
    elif voms.vo is None:
        vo_text = "VOMS attributes present, VO unknown (not readable)"
    else:
        vo_text = f"VOMS VO {voms.vo}" + (f": {', '.join(voms.fqans)}" if voms.fqans else "")
    verdict = Verdict.OK if proxy.group and voms is not None and voms.vo else Verdict.WARN
    context.add("proxy identity", verdict, f"DIRAC group {group}; {vo_text}",
                "" if verdict is Verdict.OK else PROXY_COMMAND)
    return proxy


def check_clock(context: _Context, proxy: ProxyInfo | None) -> None:
    if proxy is None:
        context.add("clock", Verdict.WARN,
                    "cannot be checked offline: no reference without a proxy (the reference "
                    "is the proxy chain's start)")
        return
    now = context.machine.clock()
    if proxy.not_before > now:
        context.add("clock", Verdict.FAIL,
                    f"behind by at least {duration(proxy.not_before - now)}: the proxy chain "
                    f"starts at {when(proxy.not_before)}",
                    f"set the clock (sudo timedatectl set-ntp true), then {PROXY_COMMAND}")
        return
    context.add("clock", Verdict.OK,
                f"not behind the proxy chain's start ({when(proxy.not_before)}), the only "
                "reference offline (a clock ahead cannot be seen)")


def check_dirac_cfg(context: _Context) -> None:
    candidates = diraccfg.cfg_candidates(context.env, context.machine.home, context.root)
    try:
        config = diraccfg.effective_config(candidates)
    except ConfigError as exc:
        context.add("dirac.cfg", Verdict.FAIL, exc.message, "fix the file by hand, or move it "
                    f"away and run: {CONFIGURE_COMMAND}")
        return
    if not config.files:
        looked = ", ".join(f"{c.path} ({c.origin})" for c in candidates)
        if context.root is None:
            looked += "; DIRAC's installation not found"
        context.add("dirac.cfg", Verdict.FAIL, f"none found: looked at {looked}",
                    CONFIGURE_COMMAND)
        return
    context.add("dirac.cfg", Verdict.OK,
                "read: " + ", ".join(f"{c.path} ({c.origin})" for c in config.files))

    setup, expected = config.value(diraccfg.SETUP), context.settings.setup
    if setup is None:
        context.add("Setup", Verdict.WARN, f"not set (DIRAC >= 9 ignores it, older clients "
                    f"need it; CTA: {expected})", CONFIGURE_COMMAND)
    elif expected is not None and setup != expected:
        context.add("Setup", Verdict.WARN, f"{setup}, CTA production is {expected}",
                    CONFIGURE_COMMAND)
    else:
        context.add("Setup", Verdict.OK, setup)

    check_servers(context, config)

    use = config.value(diraccfg.USE_SERVER_CERTIFICATE)
    if use is None:
        context.add("UseServerCertificate", Verdict.OK, "not set (DIRAC's default: no)")
    elif use.strip().lower() in ("no", "false", "n", "0"):
        context.add("UseServerCertificate", Verdict.OK, use)
    else:
        context.add("UseServerCertificate", Verdict.FAIL,
                    f"{use}: the client would present a host certificate, not your proxy",
                    CONFIGURE_COMMAND)


def check_servers(context: _Context, config: diraccfg.EffectiveConfig) -> None:
    name = "configuration servers"
    urls = diraccfg.as_list(config.value(diraccfg.SERVERS))
    origin = config.origin(diraccfg.SERVERS)
    where = f" (from {origin.path})" if origin else ""
    if not urls:
        context.add(name, Verdict.FAIL, "none in DIRAC/Configuration/Servers",
                    CONFIGURE_COMMAND)
        return
    addresses: list[tuple[str, int]] = []
    for url in urls:
        try:
            address = diraccfg.server_address(url)
        except InputError as exc:
            context.add(name, Verdict.FAIL, exc.message + where, CONFIGURE_COMMAND)
            return
        if address not in addresses:
            addresses.append(address)
    hosts = sorted({host for host, _ in addresses})
    if len(hosts) < 2:
        context.add(name, Verdict.WARN, f"{len(urls)} server(s) on one host, {hosts[0]}: no "
                    f"redundancy{where}", CONFIGURE_COMMAND)
    else:
        context.add(name, Verdict.OK, f"{len(urls)} servers on {len(hosts)} hosts{where}")

    results = probe(addresses, context.options.timeout)
    reachable = sum(1 for error in results.values() if error is None)
    for (host, port), error in results.items():
        row = f"server {host}:{port}"
        if error is None:
            context.add(row, Verdict.OK, "reachable (TCP)")
        else:
            context.add(row, Verdict.WARN if reachable else Verdict.FAIL,
                        f"unreachable: {error}",
                        f"check that this machine reaches {host}:{port} (network, firewall); "
                        f"if the server was retired: {CONFIGURE_COMMAND}")


def probe(addresses: Sequence[tuple[str, int]], timeout: float) -> dict[tuple[str, int],
                                                                         str | None]:
    """TCP connect to each address, in parallel, within ``timeout`` seconds in all: None for
    reachable, else why not."""
    results: dict[tuple[str, int], str | None] = {}

    def connect(address: tuple[str, int]) -> None:
        try:
            with socket.create_connection(address, timeout=timeout):
                results[address] = None
        except socket.gaierror:
            results[address] = "name does not resolve"
        except TimeoutError:
            results[address] = f"no answer in {timeout:g} s"
        except OSError as exc:
            results[address] = (exc.strerror or str(exc)).lower()

    threads = [threading.Thread(target=connect, args=(a,), daemon=True) for a in addresses]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {a: results.get(a, f"no answer in {timeout:g} s") for a in addresses}


def check_payload(context: _Context) -> None:
    env = context.options.payload_env or default_payload_env()
    try:
        check_payload_env(env)
    except InputError as exc:
        context.add("payload environment", Verdict.FAIL, exc.message, exc.hint or "")
        context.add("protopipe", Verdict.FAIL, "not checked: no usable payload environment",
                    exc.hint or "")
        return
    context.add("payload environment", Verdict.OK, str(env))
    try:
        version = require_protopipe(env)
    except InputError as exc:
        context.add("protopipe", Verdict.FAIL, exc.message, exc.hint or "")
        return
    context.add("protopipe", Verdict.OK,
                f"protopipe {version}: interface {COMPATIBILITY.get(version, '?')}")
