"""A private certificate authority for the local stack's TLS listeners (Kafka, Redis).

Layout (``<data_dir>/tls``, keys 0600):
  ca.pem / ca.key                the CA: clients trust ca.pem (STREAMER_KAFKA_SSL_CAFILE,
                                 STREAMER_REDIS_TLS_CA_FILE)
  <name>.pem / <name>.key        a server certificate for 127.0.0.1 and localhost
  <name>.p12 / <name>.p12.pass   the same key and chain as a PKCS12 keystore (for the JVM)

Made once with ``cryptography`` and reused; a server certificate is re-made when it
was not signed by the current CA or expires within a week. ``cryptography`` is an optional
extra (``devstack``): without it, a TLS stack fails with a :class:`StackError` that says
what to install.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from streamer.devstack._proc import StackError, file_lock

DEVSTACK_INSTALL = "pip install 'streamer[devstack]'"
_CA_DAYS = 3650
_SERVER_DAYS = 825
_RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class ServerTLS:
    ca_file: Path
    cert_file: Path  # server certificate followed by the CA (PEM)
    key_file: Path
    keystore: Path  # PKCS12
    keystore_password: str


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read (created 0600 before writing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    path.chmod(0o600)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_server_tls(directory: Path, name: str = "server") -> ServerTLS:
    """CA + a server certificate for 127.0.0.1/localhost under ``directory`` (made once)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import pkcs12
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:  # the devstack extra is not installed
        raise StackError(
            "TLS for the local stack (SASL_SSL Kafka, rediss:// Redis) needs the "
            f"'cryptography' package, an optional extra: {DEVSTACK_INSTALL}"
        ) from exc

    ca_file, ca_key_file = directory / "ca.pem", directory / "ca.key"
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    keystore, keystore_pass = directory / f"{name}.p12", directory / f"{name}.p12.pass"

    def load_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
        try:
            cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
            key = serialization.load_pem_private_key(ca_key_file.read_bytes(), None)
        except (OSError, ValueError):
            return None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            return None
        if cert.not_valid_after_utc - _RENEW_BEFORE < _now():
            return None
        return cert, key

    def server_ok(ca: x509.Certificate) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
            ok = all(p.is_file() for p in (key_file, keystore, keystore_pass))
        except (OSError, ValueError):
            return False
        return (ok and cert.issuer == ca.subject
                and cert.not_valid_after_utc - _RENEW_BEFORE > _now())

    with file_lock(directory / ".lock"):
        loaded = load_ca()
        if loaded is None:
            ca_key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamer local CA")])
            ca_cert = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(subject)
                .public_key(ca_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(_now() - dt.timedelta(minutes=5))
                .not_valid_after(_now() + dt.timedelta(days=_CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                  content_commitment=False, key_encipherment=False,
                                  data_encipherment=False, key_agreement=False,
                                  encipher_only=False, decipher_only=False),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256())
            )
            _write_private(ca_key_file, ca_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        else:
            ca_cert, ca_key = loaded
        if not server_ok(ca_cert):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(_now() - dt.timedelta(minutes=5))
                .not_valid_after(_now() + dt.timedelta(days=_SERVER_DAYS))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256())
            )
            password = secrets.token_urlsafe(24)
            encryption = (
                serialization.PrivateFormat.PKCS12.encryption_builder()
                .kdf_rounds(50_000)
                .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                .hmac_hash(hashes.SHA256())
                .build(password.encode())
            )
            _write_private(keystore, pkcs12.serialize_key_and_certificates(
                name.encode(), key, cert, [ca_cert], encryption))
            _write_private(keystore_pass, password.encode())
            _write_private(key_file, key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                                  + ca_cert.public_bytes(serialization.Encoding.PEM))
    return ServerTLS(ca_file=ca_file, cert_file=cert_file, key_file=key_file,
                     keystore=keystore, keystore_password=keystore_pass.read_text().strip())
