"""The lean request paths (hook invokes, SES/SMS/push sends) trust what botocore trusts:
an HTTPS endpoint whose certificate a configured CA bundle (``AWS_CA_BUNDLE``) signed is
reached; without that bundle, the same endpoint is refused, as botocore refuses it."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dispatcher.aws import AwsClients

pytestmark = pytest.mark.anyio


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey],
    *, ca: bool,
) -> x509.Certificate:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer[1], hashes.SHA256())


@pytest.fixture
async def https_url(tmp_path: Path, free_tcp_port: int) -> AsyncIterator[str]:
    """An HTTPS server on loopback with a certificate from a CA of this test only; the
    CA's certificate is at ``tmp_path / "ca.pem"``."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, ("test CA", ca_key), ca=True)
    cert = _certificate("127.0.0.1", key, ("test CA", ca_key), ca=False)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", free_tcp_port, ssl_context=server_tls).start()
    try:
        yield f"https://127.0.0.1:{free_tcp_port}/"
    finally:
        await runner.cleanup()


async def post(url: str) -> int:
    clients = AwsClients("us-east-1")
    session = clients.http_session(url, limit=1, connect_timeout=5, read_timeout=5)
    try:
        async with session.post(url, data=b"{}") as response:
            return response.status
    finally:
        await session.close()
        await clients.aclose()


async def test_the_configured_ca_bundle_is_trusted(
    https_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    assert await post(https_url) == 200


async def test_without_the_bundle_the_endpoint_is_refused(
    https_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await post(https_url)
