"""The local CA behind `falkit emulator --tls`: made once, reused while valid, strict-clean."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import certifi
import httpx
import pytest
from cryptography import x509

from falkit.emulator import EmulatorConfig, run_emulator
from falkit.emulator import tls as tls_module
from falkit.emulator.tls import TlsFiles, ensure_tls

from .conftest import AUTH


def snapshot(files: TlsFiles) -> dict[str, bytes]:
    paths = (files.ca_cert, files.ca_key, files.cert, files.key)
    return {path.name: path.read_bytes() for path in paths}


def alt_names(files: TlsFiles) -> set[str]:
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} | set(
        names.get_values_for_type(x509.DNSName)
    )


def test_made_once_private_keys_0600_and_reused(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    files = ensure_tls(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for key in (files.ca_key, files.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    made = snapshot(files)
    assert ensure_tls(folder) == files
    assert snapshot(files) == made
    assert alt_names(files) == {"127.0.0.1", "::1", "localhost"}
    bundle = files.bundle.read_bytes()
    assert bundle.startswith(files.ca_cert.read_bytes())
    assert Path(certifi.where()).read_bytes() in bundle  # real https sites stay reachable


def test_another_host_gets_a_new_server_certificate_from_the_same_ca(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    before = snapshot(files)
    ensure_tls(tmp_path, ["192.0.2.7", "0.0.0.0", "[::]"])
    after = snapshot(files)
    assert after["ca.pem"] == before["ca.pem"]
    assert after["server.pem"] != before["server.pem"]
    assert alt_names(files) == {"127.0.0.1", "::1", "localhost", "192.0.2.7"}
    ensure_tls(tmp_path)  # a subset of what it covers: reused
    assert snapshot(files) == after


def test_a_broken_key_or_ca_is_replaced(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    before = snapshot(files)
    files.key.write_text("garbage")
    ensure_tls(tmp_path)
    assert snapshot(files)["ca.pem"] == before["ca.pem"]
    assert snapshot(files)["server-key.pem"] != b"garbage"
    files.ca_key.write_text("garbage")
    ensure_tls(tmp_path)
    assert snapshot(files)["ca.pem"] != before["ca.pem"]
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    x509.load_pem_x509_certificate(files.cert.read_bytes()).verify_directly_issued_by(ca)


def test_certificates_close_to_expiry_are_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = ensure_tls(tmp_path)
    before = snapshot(files)
    monkeypatch.setattr(tls_module, "RENEW_BEFORE", dt.timedelta(days=tls_module.CA_DAYS + 1))
    ensure_tls(tmp_path)
    after = snapshot(files)
    assert after["ca.pem"] != before["ca.pem"]
    assert after["server.pem"] != before["server.pem"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_strict_x509_verification_accepts_the_emulator(tmp_path: Path, host: str) -> None:
    files = ensure_tls(tmp_path)
    trust = ssl.create_default_context(cafile=str(files.bundle))
    trust.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default
    with run_emulator(EmulatorConfig(latency=0.01), ssl=(files.cert, files.key)) as emu:
        port = emu.base_url.rsplit(":", 1)[1]
        url = f"https://{host}:{port}/run/fal-ai/flux/schnell"
        response = httpx.post(url, json={"prompt": "x"}, headers=AUTH, verify=trust)
    assert response.status_code == 200
