"""Throw-away certificates for TLS tests, made with ``cryptography``.

``Pki(directory)`` makes a test CA (``directory/ca.pem``, what a ``ca_file``
setting points at); :meth:`Pki.leaf` adds a server certificate it signs (or a
self-signed one) for the names and IP addresses given, valid when told, as
``NAME.crt`` and ``NAME.key``; :meth:`Pki.server_context` serves it.

The certificates carry what strict verification (Python 3.13's default
``VERIFY_X509_STRICT``) asks for: key identifiers, a critical CA constraint and
``serverAuth``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = timedelta(days=1)
LOCAL_NAMES = ("127.0.0.1", "localhost")

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Leaf:
    """A server's certificate and key, as PEM files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


class Pki:
    """A test CA in ``directory`` and the leaves made with :meth:`leaf`, by name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.now = datetime.now(UTC)  # what validity is counted from
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca = _certificate(
            "Calcifer test CA",
            self._ca_key,
            issuer=None,
            not_before=self.now - DAY,
            not_after=self.now + 30 * DAY,
            ca=True,
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(_pem(self._ca))
        self.leaves: dict[str, Leaf] = {}

    def leaf(
        self,
        name: str,
        *,
        names: tuple[str, ...] = LOCAL_NAMES,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        self_signed: bool = False,
    ) -> Leaf:
        """A certificate for ``names`` (DNS names or IP addresses), valid from a day
        ago for 300 days unless told otherwise, signed by the CA unless ``self_signed``."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(
            f"{name}.test",
            key,
            issuer=None if self_signed else (self._ca, self._ca_key),
            not_before=self.now - DAY if not_before is None else not_before,
            not_after=self.now + 300 * DAY if not_after is None else not_after,
            names=names,
        )
        leaf = Leaf(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        leaf.cert.write_bytes(_pem(cert))
        leaf.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.leaves[name] = leaf
        return leaf

    def server_context(self, name: str) -> ssl.SSLContext:
        """A TLS server context that presents the leaf ``name``."""
        return self.leaves[name].server_context()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _certificate(
    cn: str,
    key: Key,
    *,
    issuer: tuple[x509.Certificate, Key] | None,
    not_before: datetime,
    not_after: datetime,
    ca: bool = False,
    names: tuple[str, ...] = LOCAL_NAMES,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        server_auth = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
        builder = builder.add_extension(server_auth, critical=False)
    return builder.sign(signer, hashes.SHA256())


__all__ = ["DAY", "LOCAL_NAMES", "Leaf", "Pki"]
