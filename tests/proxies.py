"""A throw-away CA, a user certificate and real RFC 3820 proxies signed by it, written as the grid
clients write them, for the tests of the proxy and of ``doctor``.

The proxy extensions are encoded here byte by byte, as ``voms-proxy-init`` and DIRAC write them,
independently of the ``pyasn1`` schemas the package decodes them with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR = timedelta(hours=1)
VO = "vo.cta.in2p3.fr"
FQANS = (f"/{VO}", f"/{VO}/Role=NULL/Capability=NULL")
VOMS_OID = "1.3.6.1.4.1.8005.100.100.5"


def tlv(tag: int, *parts: bytes) -> bytes:
    """One DER element."""
    content = b"".join(parts)
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def der_oid(dotted: str) -> bytes:
    numbers = [int(n) for n in dotted.split(".")]
    body = bytearray([40 * numbers[0] + numbers[1]])
    for number in numbers[2:]:
        groups = [number & 0x7F]
        while number > 0x7F:
            number >>= 7
            groups.append(0x80 | (number & 0x7F))
        body += bytes(reversed(groups))
    return tlv(0x06, bytes(body))


def der_time(moment: datetime) -> bytes:
    return tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


def fqan_values(fqans: tuple[str, ...] = FQANS, tag: int = 0x04) -> bytes:
    """The ``values`` of an IetfAttrSyntax: octet strings (0x04) as VOMS writes, or UTF8."""
    return tlv(0x30, *(tlv(tag, f.encode()) for f in fqans))


def voms_extension(holder: x509.Name, start: datetime, end: datetime, *,
                   authority: bool = True, values: bytes | None = None) -> bytes:
    """A VOMS attribute certificate extension shaped as voms-proxy-init writes it (RFC 5755 AC,
    GFD.182 FQAN attribute); the signature is a dummy, as nothing here checks it. ``values``
    replaces the FQAN values (raw DER); without ``authority`` the VO is only in the FQANs."""
    sha256_rsa = tlv(0x30, der_oid("1.2.840.113549.1.1.11"), tlv(0x05))
    directory = tlv(0xA4, holder.public_bytes())  # GeneralName directoryName
    voms_server = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voms.test")])
    policy = tlv(0xA0, tlv(0x86, f"{VO}://voms.test:15008".encode())) if authority else b""
    fqan_attribute = tlv(0x30, der_oid("1.3.6.1.4.1.8005.100.100.4"),
                         tlv(0x31, tlv(0x30, policy, values or fqan_values())))
    acinfo = tlv(0x30,
                 tlv(0x02, b"\x01"),  # version v2
                 tlv(0x30, tlv(0xA0, tlv(0x30, directory), tlv(0x02, b"\x05"))),  # holder
                 tlv(0xA0, tlv(0x30, tlv(0xA4, voms_server.public_bytes()))),  # v2Form issuer
                 sha256_rsa,
                 tlv(0x02, b"\x2a"),  # serial
                 tlv(0x30, der_time(start), der_time(end)),
                 tlv(0x30, fqan_attribute))
    ac = tlv(0x30, acinfo, sha256_rsa, tlv(0x03, b"\x00" + bytes(16)))
    return tlv(0x30, tlv(0x30, ac))


@dataclass
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    user_key: ec.EllipticCurvePrivateKey
    user: x509.Certificate


def name(*cns: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "ch"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PGI test"),
                      *(x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns)])


def make_pki() -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(NOW - 30 * 24 * HOUR).not_valid_after(NOW + 365 * 24 * HOUR)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    user_key = ec.generate_private_key(ec.SECP256R1())
    user = (x509.CertificateBuilder().subject_name(name("tester")).issuer_name(ca.subject)
            .public_key(user_key.public_key()).serial_number(2)
            .not_valid_before(NOW - 7 * 24 * HOUR).not_valid_after(NOW + 300 * 24 * HOUR)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return Pki(ca_key, ca, user_key, user)


def make_proxy(pki: Pki, path: Path, *, start: datetime | None = None,
               end: datetime | None = None, group: str | None = "cta_user",
               group_der: bytes | None = None, voms_end: datetime | None = None,
               voms: bool = True, extra: bytes = b"", mode: int = 0o600) -> Path:
    """An RFC 3820 proxy signed by the user certificate, written as the grid clients do (proxy
    certificate, its key, the user certificate). ``group_der`` replaces the DIRAC group's DER
    (an IA5String of ``group``); ``extra`` is raw bytes as the VOMS extension."""
    start = start or NOW - timedelta(minutes=15)
    end = end or NOW + 48 * HOUR
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(name("tester", "1234567890")).issuer_name(pki.user.subject)
               .public_key(key.public_key()).serial_number(1234567890)
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.KeyUsage(True, False, True, False, False, False, False,
                                            False, False), critical=True)
               .add_extension(x509.UnrecognizedExtension(  # ProxyCertInfo, inherit all
                   x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14"),
                   tlv(0x30, tlv(0x30, der_oid("1.3.6.1.5.5.7.21.1")))), critical=True))
    if group is not None or group_der is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.2.42.42"),
            group_der or tlv(0x16, (group or "").encode())), critical=False)
    if voms:
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier(VOMS_OID),
            voms_extension(pki.user.subject, start, voms_end or end)), critical=False)
    if extra:
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier(VOMS_OID), extra), critical=False)
    proxy = builder.sign(pki.user_key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proxy.public_bytes(serialization.Encoding.PEM) + key_pem
                     + pki.user.public_bytes(serialization.Encoding.PEM))
    path.chmod(mode)
    return path
