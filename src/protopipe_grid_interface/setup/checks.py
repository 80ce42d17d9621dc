"""Is this machine set up to run analyses? ``protopipe-grid doctor``'s checks, as a
:class:`.Report`.

Each check gives a :class:`.Verdict` (OK, WARN, FAIL, or SKIP when the chosen backend does not
need it), what it saw, and the exact fix. Nothing here prints; proxy and certificate contents
are never logged or returned (only their times, group and VOMS attributes).

The checks, in order; the grid ones (all but the last two) only for the ``dirac`` backend
(:attr:`DoctorOptions.grid`), reported as SKIP, "not needed for the local backend", otherwise:

- ``X509_CERT_DIR``, ``X509_VOMS_DIR``, ``X509_VOMSES``: set, pointing at existing paths;
- ``conda env vars``: in a conda environment, whether those are kept as the environment's
  variables (``conda-meta/state``), with the ``conda env config vars set`` lines if not;
- ``VOMS client`` (``voms-proxy-init``, ``voms-proxy-info``) and ``DIRAC client``;
- ``proxy`` (``$X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``), ``proxy lifetime`` against
  the hours the planned submission needs, ``proxy identity`` (DIRAC group, VOMS VO);
- ``clock``: there is no NTP offline, so the reference is the proxy's certificate chain: a chain
  that starts (latest notBefore: the proxy's, or the CA-issued user certificate's) in the future
  means the clock is behind. A clock ahead cannot be seen this way. No proxy: WARN;
- ``dirac.cfg`` (found where DIRAC looks, see :mod:`.dirac_client`), ``Setup``, ``configuration
  servers`` (at least two distinct hosts), one ``server host:port`` row per server (TCP connect,
  short timeout), ``UseServerCertificate`` (must be ``no``);
- ``payload environment`` (usable) and ``protopipe`` (against the compatibility table of
  :mod:`..software`, :func:`require_protopipe`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from ..exceptions import ConfigError, InputError
from ..software import (
    COMPATIBILITY,
    CTAPIPE_VERSION,
    SUPPORTED,
    check_payload_env,
    default_payload_env,
    protopipe_location,
)
from . import DEFAULT_NEEDED_HOURS, DEFAULT_TIMEOUT, diraccfg
from .dirac_client import EffectiveConfig, cfg_candidates, dirac_root, effective_config
from .machine import Machine, which
from .proxy import (
    PROXY_COMMAND,
    ProxyInfo,
    duration,
    margin,
    proxy_location,
    read_proxy,
    renew_command,
    when,
)
from .report import Check, Report, Verdict

CONFIGURE_COMMAND = "protopipe-grid dirac configure"
NOT_NEEDED = "not needed for the local backend"

#: the three VOMS variables: (name, what it points at, folder under etc/grid-security/)
X509_VARIABLES = (
    ("X509_CERT_DIR", "CA certificates folder", "certificates"),
    ("X509_VOMS_DIR", "VOMS servers folder", "vomsdir"),
    ("X509_VOMSES", "vomses file or folder", "vomses"),
)
SYSTEM_X509 = {"X509_CERT_DIR": "/etc/grid-security/certificates",
               "X509_VOMS_DIR": "/etc/grid-security/vomsdir", "X509_VOMSES": "/etc/vomses"}


@dataclass(frozen=True)
class DoctorOptions:
    grid: bool = False  # True: the dirac backend, whose grid set-up is checked too
    needed_hours: float = DEFAULT_NEEDED_HOURS
    timeout: float = DEFAULT_TIMEOUT
    payload_env: Path | None = None
    settings: diraccfg.DiracSettings | None = None  # None: the CTA production settings


@dataclass
class _Context:
    machine: Machine
    options: DoctorOptions
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


@dataclass(kw_only=True)
class _GridContext(_Context):
    """What the grid checks share besides: the settings expected, DIRAC's root."""

    settings: diraccfg.DiracSettings
    root: tuple[Path, str] | None


#: the grid checks' rows when they are skipped: one per check, not one per detail
GRID_ROWS = (*(name for name, _, _ in X509_VARIABLES), "conda env vars", "VOMS client",
             "DIRAC client", "proxy", "clock", "dirac.cfg")


def run_checks(machine: Machine | None = None, options: DoctorOptions | None = None) -> Report:
    """Every check, in the order of the module docstring."""
    machine = machine or Machine.current()
    options = options or DoctorOptions()
    if options.grid:
        context: _Context = run_grid_checks(machine, options)
    else:
        context = _Context(machine, options)
        for name in GRID_ROWS:
            context.add(name, Verdict.SKIP, NOT_NEEDED)
    check_payload(context)
    check_ctapipe(context)
    return Report(tuple(context.checks))


def run_grid_checks(machine: Machine, options: DoctorOptions) -> _GridContext:
    settings = options.settings or diraccfg.load_settings()
    context = _GridContext(machine, options, settings=settings, root=dirac_root(machine.env))
    check_variables(context)
    check_conda_variables(context)
    check_clients(context)
    proxy = check_proxy(context)
    check_clock(context, proxy)
    check_dirac_cfg(context)
    return context


def suggested_x509(context: _GridContext, name: str, folder: str) -> tuple[Path, str]:
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


def check_variables(context: _GridContext) -> None:
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


def check_conda_variables(context: _GridContext) -> None:
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


def check_clients(context: _GridContext) -> None:
    tools = {p: which(p, context.env) for p in ("voms-proxy-init", "voms-proxy-info")}
    missing = [p for p, where in tools.items() if where is None]
    if missing:
        context.add("VOMS client", Verdict.FAIL, f"not on PATH: {', '.join(missing)}",
                    "conda install -c conda-forge voms  (Debian: apt-get install voms-clients)")
    else:
        context.add("VOMS client", Verdict.OK, ", ".join(str(p) for p in tools.values()))
    script = which("dirac-proxy-init", context.env)
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


def check_proxy(context: _GridContext) -> ProxyInfo | None:
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
    check_lifetime(context, proxy)
    check_identity(context, proxy)
    return proxy


def check_lifetime(context: _GridContext, proxy: ProxyInfo) -> None:
    needed = context.options.needed_hours
    left = proxy.time_left(context.machine.clock())
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


def check_identity(context: _GridContext, proxy: ProxyInfo) -> None:
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


def check_clock(context: _GridContext, proxy: ProxyInfo | None) -> None:
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


def check_dirac_cfg(context: _GridContext) -> None:
    candidates = cfg_candidates(context.env, context.machine.home, context.root)
    try:
        config = effective_config(candidates)
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


def check_servers(context: _GridContext, config: EffectiveConfig) -> None:
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


# -- protopipe ----------------------------------------------------------------------------------


def require_protopipe(env: Path) -> str:
    """The version of protopipe in the payload environment ``env``, if this interface supports
    it (:data:`..software.COMPATIBILITY`); InputError naming what is wrong if not."""
    check_payload_env(env)
    version, _ = protopipe_location(env)
    if version not in SUPPORTED:
        drives = COMPATIBILITY.get(version)
        why = f"it goes with interface {drives}" if drives else "not in the compatibility table"
        raise InputError(f"protopipe {version} in {env} is not supported: {why}",
                         f"supported: protopipe {', '.join(SUPPORTED)} "
                         "(scripts/install-payload.sh installs it)")
    return version


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


def check_ctapipe(context: _Context) -> None:
    """The ctapipe profile's environment: skipped when it is not installed (only ctapipe
    analyses need it), failed when it is there without its tools."""
    env = default_payload_env("ctapipe")
    if not env.is_dir():
        context.add("ctapipe environment", Verdict.SKIP,
                    f"{env} not installed: only ctapipe analyses need it",
                    "scripts/install-payload.sh installs it")
        return
    try:
        check_payload_env(env, "ctapipe")
    except InputError as exc:
        context.add("ctapipe environment", Verdict.FAIL, exc.message, exc.hint or "")
        return
    context.add("ctapipe environment", Verdict.OK, f"ctapipe {CTAPIPE_VERSION} tools in {env}")
