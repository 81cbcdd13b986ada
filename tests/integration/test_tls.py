"""`server.tls_cert` / `server.tls_key` (docs/reference.md#tls): the public listener speaks
HTTPS, bad material is a `gateway check` error, and a reload reads the files again
(docs/reference.md#reload)."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer

from gateway.standin import OryStandin
from tests.integration.live_gateway import ROOT, LiveGateway, Upstream
from tests.tls import Certificate, make_certificate

BOUND = 10.0


def config(ory: str, upstream: str, cert: Path | str | None, key: Path | str | None) -> str:
    tls = "".join(f'{name} = "{path}"\n' for name, path in
                  (("tls_cert", cert), ("tls_key", key)) if path is not None)
    return f"""
[server]
listen = "127.0.0.1:0"
{tls}
[ory]
url = "{ory}"
[upstream]
url = "{upstream}"
[[routes]]
path = "/open/**"
access = "public"
"""


def check(tmp_path: Path, cert: Path | str | None, key: Path | str | None
          ) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "check.toml"
    path.write_text(config("http://127.0.0.1:9", "http://127.0.0.1:9", cert, key))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(path)],
                          capture_output=True, text=True, timeout=30, env=env, cwd=ROOT,
                          check=False)


def der(certificate: Certificate) -> bytes:
    return ssl.PEM_cert_to_DER_cert(certificate.cert.read_text())


async def served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The certificate a new connection is shown (the handshake verifies it by `context`)."""
    async with asyncio.timeout(BOUND):
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        shown = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert isinstance(shown, bytes)
        return shown
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    (tmp_path / "tls").mkdir()
    return make_certificate(tmp_path / "tls")


@pytest.fixture
def other(tmp_path: Path) -> Certificate:
    (tmp_path / "other").mkdir()
    return make_certificate(tmp_path / "other")


@pytest.fixture
async def https(aiohttp_server: AiohttpServer, tmp_path: Path, certificate: Certificate
                ) -> AsyncIterator[LiveGateway]:
    ory_server = await aiohttp_server(OryStandin().build_app())
    upstream_server = await aiohttp_server(Upstream().app())
    text = config(str(ory_server.make_url("")).rstrip("/"),
                  str(upstream_server.make_url("")).rstrip("/"),
                  certificate.cert, certificate.key)
    async with LiveGateway(tmp_path, text) as gateway:
        yield gateway


async def test_the_listener_speaks_https_through_to_the_upstream(
    https: LiveGateway, certificate: Certificate
) -> None:
    assert https.scheme == "https", https.log()
    assert https.count(f"listening on https://127.0.0.1:{https.port}") == 1
    async with (
        aiohttp.ClientSession() as http, asyncio.timeout(BOUND),
        http.get(f"{https.origin}/open/x", ssl=certificate.client_context()) as answer,
    ):
        assert answer.status == 200
        seen = (await answer.json())["headers"]
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == f"127.0.0.1:{https.port}"
    tls12 = certificate.client_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2  # "TLS 1.2 and newer"
    assert await served_certificate(https.port, tls12) == der(certificate)


async def test_plain_http_to_the_https_port_gets_no_answer(https: LiveGateway) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(BOUND):
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{https.port}/open/x") as answer:
                await answer.read()


async def test_a_reload_serves_replaced_certificate_files_to_new_connections(
    https: LiveGateway, certificate: Certificate, other: Certificate
) -> None:
    old_context, old_der = certificate.client_context(), der(certificate)
    assert await served_certificate(https.port, old_context) == old_der
    shutil.copyfile(other.cert, certificate.cert)  # renewed in place, as certbot does
    shutil.copyfile(other.key, certificate.key)
    await https.reload()
    assert await served_certificate(https.port, other.client_context()) == der(other)
    with pytest.raises(ssl.SSLCertVerificationError):
        await served_certificate(https.port, old_context)
    async with (
        aiohttp.ClientSession() as http, asyncio.timeout(BOUND),
        http.get(f"{https.origin}/open/x", ssl=other.client_context()) as answer,
    ):
        assert answer.status == 200


async def test_a_reload_with_a_mismatched_key_changes_nothing(
    https: LiveGateway, certificate: Certificate, other: Certificate
) -> None:
    """A renewal caught half-way (the new certificate, the old key) is an invalid
    configuration: logged, and the old certificate and key keep serving."""
    old_context, old_der = certificate.client_context(), der(certificate)
    shutil.copyfile(other.cert, certificate.cert)
    await https.reload(expect="config reload failed, nothing changed: server.tls_cert: ")
    assert https.count("config reloaded") == 0
    assert await served_certificate(https.port, old_context) == old_der
    async with (
        aiohttp.ClientSession() as http, asyncio.timeout(BOUND),
        http.get(f"{https.origin}/open/x", ssl=old_context) as answer,
    ):
        assert answer.status == 200


async def test_turning_tls_off_by_reload_needs_a_restart(
    https: LiveGateway, certificate: Certificate
) -> None:
    https.config.write_text(https.config.read_text().replace("tls_", "# tls_"))
    await https.reload()
    reported = [line for line in https.lines if "server.tls_cert" in line and "restart" in line]
    assert len(reported) == 1, https.log()
    assert await served_certificate(https.port, certificate.client_context()) == der(certificate)


# (tmp_path, a certificate, another one) -> the files to configure
Files = Callable[[Path, Certificate, Certificate], tuple[Path | None, Path | None]]
CASES: dict[str, tuple[Files, str]] = {
    "missing cert": (lambda t, c, o: (t / "nope.pem", c.key), "server.tls_cert: "),
    "missing key": (lambda t, c, o: (c.cert, t / "nope.pem"), "server.tls_key: "),
    # a directory: open() fails even for root, who reads any file whatever its mode
    "unreadable cert": (lambda t, c, o: (t, c.key), "server.tls_cert: "),
    "not PEM": (lambda t, c, o: (c.key, c.key), "server.tls_cert: "),
    "key of another cert": (lambda t, c, o: (c.cert, o.key), "server.tls_cert: "),
    "cert only": (lambda t, c, o: (c.cert, None), "server.tls_key: "),
    "key only": (lambda t, c, o: (None, c.key), "server.tls_cert: "),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_refuses_unusable_tls_material(
    tmp_path: Path, certificate: Certificate, other: Certificate, case: str
) -> None:
    files, expected = CASES[case]
    cert, key = files(tmp_path, certificate, other)
    result = check(tmp_path, cert, key)
    assert result.returncode == 1, result.stdout + result.stderr
    assert any(line.startswith(expected) for line in result.stderr.splitlines()), result.stderr
    assert "Traceback" not in result.stderr


def test_check_accepts_a_certificate_and_its_key(tmp_path: Path,
                                                 certificate: Certificate) -> None:
    result = check(tmp_path, certificate.cert, certificate.key)
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout


def test_serve_does_not_start_with_a_mismatched_key(
    tmp_path: Path, certificate: Certificate, other: Certificate
) -> None:
    path = tmp_path / "serve.toml"
    path.write_text(config("http://127.0.0.1:9", "http://127.0.0.1:9", certificate.cert,
                           other.key))
    result = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=30, cwd=ROOT, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("server.tls_cert: "), result.stderr
    assert "listening on" not in result.stderr
    assert "Traceback" not in result.stderr
