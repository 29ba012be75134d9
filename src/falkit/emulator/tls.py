"""A local certificate authority and server certificate for ``falkit emulator --tls``.

fal-client speaks only https to the hosts in ``FAL_RUN_HOST`` / ``FAL_QUEUE_RUN_HOST``, so the
emulator serves TLS with a certificate from its own CA, and the client trusts that CA through
``SSL_CERT_FILE`` (httpx honours it). Everything lives in one folder (by default
``FALKIT_HOME/emulator/tls``) and is reused while valid::

    ca.pem           the CA certificate
    ca-key.pem       its private key (0600)
    server.pem       the server certificate, then the CA certificate (the chain)
    server-key.pem   its private key (0600)
    ca-bundle.pem    the CA plus certifi's public roots: what SSL_CERT_FILE points at, so an
                     app trusting it can still reach real https sites

The certificates satisfy OpenSSL's strict X.509 checks (Python 3.13's default): key identifiers,
critical basic constraints, key usages, serverAuth, and subject alternative names covering
127.0.0.1, ::1, localhost and any other host asked for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")
CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=7)
"""A certificate that expires sooner than this is replaced."""
CA_NAME = "falkit emulator local CA"


@dataclass(frozen=True)
class TlsFiles:
    """Where the CA and the server's certificate and key are."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    @property
    def cert(self) -> Path:
        """The server's certificate chain (what uvicorn's ``ssl_certfile`` takes)."""
        return self.folder / "server.pem"

    @property
    def key(self) -> Path:
        return self.folder / "server-key.pem"

    @property
    def bundle(self) -> Path:
        """What ``SSL_CERT_FILE`` should name: this CA plus the public roots."""
        return self.folder / "ca-bundle.pem"


def ensure_tls(folder: Path, hosts: Iterable[str] = ()) -> TlsFiles:
    """The CA and a server certificate for ``LOCAL_HOSTS`` plus ``hosts``, made if needed.

    Files still valid (and, for the server certificate, issued by this CA for every host asked
    for) are reused, so ``SSL_CERT_FILE`` stays the same path with the same CA between runs.
    """
    files = TlsFiles(folder)
    wanted = _wanted_hosts(hosts)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(folder):
        ca = _load_ca(files)
        if ca is None:
            ca = _new_ca()
            _write_private(files.ca_key, _key_pem(ca[1]))
            _write(files.ca_cert, _cert_pem(ca[0]))
        if not _server_ok(files, ca[0], wanted):
            cert, key = _new_server(ca, wanted)
            _write_private(files.key, _key_pem(key))
            _write(files.cert, _cert_pem(cert) + _cert_pem(ca[0]))
        _write_bundle(files)
    return files


def _wanted_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    extra = [h.strip("[]") for h in hosts if h.strip("[]") not in ("", "0.0.0.0", "::")]
    return tuple(dict.fromkeys([*LOCAL_HOSTS, *extra]))


# ---- files ----


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One process at a time makes certificates in ``folder`` (POSIX; elsewhere best effort)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write atomically (a temporary file renamed over ``path``) with ``mode``."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _write_private(path: Path, data: bytes) -> None:
    _write(path, data, 0o600)


def _write_bundle(files: TlsFiles) -> None:
    bundle = files.ca_cert.read_bytes() + _public_roots()
    if not files.bundle.exists() or files.bundle.read_bytes() != bundle:
        _write(files.bundle, bundle)


def _public_roots() -> bytes:
    try:
        import certifi
    except ImportError:  # pragma: no cover - httpx depends on certifi
        return b""
    return b"\n" + Path(certifi.where()).read_bytes()


# ---- loading and checking ----


def _load_ca(files: TlsFiles) -> tuple[x509.Certificate, EllipticCurvePrivateKey] | None:
    """The cached CA, if both files parse, match and stay valid a while longer."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        key = load_pem_private_key(files.ca_key.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _fresh(cert):
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def _server_ok(files: TlsFiles, ca: x509.Certificate, hosts: tuple[str, ...]) -> bool:
    """The cached server certificate: issued by ``ca``, fresh, for ``hosts``, with its key."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        key = load_pem_private_key(files.key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    if cert.public_key() != key.public_key() or not _fresh(cert):
        return False
    have = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    have |= set(names.get_values_for_type(x509.DNSName))
    return {_normal(h) for h in hosts} <= have


def _fresh(cert: x509.Certificate) -> bool:
    now = dt.datetime.now(dt.UTC)
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


def _normal(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


# ---- making ----


def _new_key() -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "falkit"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject: x509.Name, issuer: x509.Name, days: int) -> x509.CertificateBuilder:
    from cryptography import x509

    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _new_ca() -> tuple[x509.Certificate, EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _new_key()
    name = _name(CA_NAME)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _builder(name, name, CA_DAYS)
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _alt_names(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host.lower()))
    return x509.SubjectAlternativeName(names)


def _new_server(
    ca: tuple[x509.Certificate, EllipticCurvePrivateKey], hosts: tuple[str, ...]
) -> tuple[x509.Certificate, EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_cert, ca_key = ca
    key = _new_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(_name("falkit emulator"), ca_cert.subject, SERVER_DAYS)
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_alt_names(hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _cert_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


def _key_pem(key: EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
