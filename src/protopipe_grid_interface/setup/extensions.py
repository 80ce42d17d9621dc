"""The proxy extensions ``cryptography`` has no class for, decoded with ``pyasn1``.

- DIRAC's group (OID 1.2.42.42): a string;
- VOMS attributes (OID 1.3.6.1.4.1.8005.100.100.5, GFD.182): a sequence of sequences of RFC 5755
  attribute certificates. The first is read (as GFD.182 requires of clients): its validity and
  its FQAN attribute (OID 1.3.6.1.4.1.8005.100.100.4, an ``IetfAttrSyntax`` whose policy
  authority is ``vo://host:port``). Its signature is not checked: the servers do that.

An extension that cannot be decoded gives empty fields, never an error: the doctor reports
what it could read. Nothing here logs an extension's content.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pyasn1.codec.der import decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, univ
from pyasn1_modules import rfc5755

if TYPE_CHECKING:
    from cryptography import x509

log = logging.getLogger(__name__)

DIRAC_GROUP_OID = "1.2.42.42"
VOMS_EXTENSION_OID = "1.3.6.1.4.1.8005.100.100.5"
VOMS_FQANS_OID = "1.3.6.1.4.1.8005.100.100.4"


class _AttributeCertificates(univ.SequenceOf):
    componentType = rfc5755.AttributeCertificate()


class _VomsExtension(univ.SequenceOf):
    """GFD.182's ``ACSeq``: one sequence of attribute certificates per VOMS server."""

    componentType = _AttributeCertificates()


@dataclass(frozen=True)
class VomsInfo:
    """What could be read of a proxy's VOMS attribute certificate."""

    vo: str | None
    fqans: tuple[str, ...]
    not_before: datetime | None
    not_after: datetime | None


UNREADABLE = VomsInfo(None, (), None, None)


def extension(cert: x509.Certificate, oid: str) -> bytes | None:
    """The DER value of an extension ``cryptography`` has no class for; None if absent."""
    from cryptography import x509  # here: the command line starts faster

    for ext in cert.extensions:
        if ext.oid.dotted_string == oid and isinstance(ext.value, x509.UnrecognizedExtension):
            return ext.value.value
    return None


def dirac_group(cert: x509.Certificate) -> str | None:
    """The DIRAC group DIRAC writes in its own extension; None if absent or unreadable."""
    value = extension(cert, DIRAC_GROUP_OID)
    if value is None:
        return None
    try:
        group, _ = decoder.decode(value)
    except PyAsn1Error:
        log.debug("DIRAC group extension not readable")
        return None
    strings = (char.UTF8String, char.PrintableString, char.IA5String)
    return str(group) if isinstance(group, strings) else None


def voms_info(cert: x509.Certificate) -> VomsInfo | None:
    """VO, FQANs and validity of the VOMS attributes; None without a VOMS extension, empty
    fields where it cannot be read."""
    value = extension(cert, VOMS_EXTENSION_OID)
    if value is None:
        return None
    try:
        servers, _ = decoder.decode(value, asn1Spec=_VomsExtension())
        info = servers[0][0]["acinfo"]
        period = info["attrCertValidityPeriod"]
        start, end = (utc(period[t].asDateTime) for t in ("notBeforeTime", "notAfterTime"))
    except (PyAsn1Error, IndexError, ValueError):
        log.debug("VOMS extension not readable")
        return UNREADABLE
    try:
        vo, fqans = read_fqans(info["attributes"])
    except (PyAsn1Error, UnicodeDecodeError):
        log.debug("VOMS FQAN attribute not readable")
        vo, fqans = None, ()
    if vo is None and fqans:
        vo = fqans[0].strip("/").split("/")[0] or None
    return VomsInfo(vo, fqans, start, end)


def read_fqans(attributes: Any) -> tuple[str | None, tuple[str, ...]]:
    """(VO, FQANs) of the FQAN attribute among an attribute certificate's ``attributes``."""
    fqan_oid = univ.ObjectIdentifier(VOMS_FQANS_OID)
    for attribute in attributes:
        if attribute["type"] != fqan_oid or not len(attribute["values"]):
            continue
        syntax, _ = decoder.decode(attribute["values"][0], asn1Spec=rfc5755.IetfAttrSyntax())
        vo = None
        if syntax["policyAuthority"].isValue:
            uris = [str(name["uniformResourceIdentifier"]) for name in syntax["policyAuthority"]
                    if name.getName() == "uniformResourceIdentifier"]
            vo = uris[0].split(":")[0] if uris else None
        fqans = tuple(value_text(v) for v in syntax["values"] if v.getName() != "oid")
        return vo or None, fqans
    return None, ()


def value_text(value: Any) -> str:
    """An ``IetfAttrSyntax`` value (octets or UTF8String) as text."""
    component = value.getComponent()
    if value.getName() == "octets":
        return bytes(component).decode()
    return str(component)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC (GeneralizedTime without a zone is UTC, as DER requires)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
