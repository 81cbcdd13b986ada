"""A client that vanishes mid-upload or mid-download: the gateway must stop the matching
upstream exchange promptly (not at `upstream.timeout`), free its connection, and serve on.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from pytest_aiohttp import AiohttpServer

from tests.security.conftest import Gate, GateFactory
from tests.security.leaks import assert_nothing_left
from tests.security.stream_upstream import StreamLog, build_stream_upstream

PROMPTLY = 3.0  # seconds; upstream.timeout below is 60 s, so waiting for it would fail


@pytest.fixture
def log() -> StreamLog:
    return StreamLog()


@pytest.fixture
async def gate(
    log: StreamLog, aiohttp_server: AiohttpServer, make_gate: GateFactory
) -> AsyncIterator[Gate]:
    server = await aiohttp_server(build_stream_upstream(log))
    yield await make_gate(str(server.make_url("")).rstrip("/"), upstream='timeout = "60s"')
    log.release.set()  # whatever still waits on the upstream ends before the gateway stops


async def vanish(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    if reset:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


async def assert_serves_again(gate: Gate, cookie: str) -> None:
    response = await gate.http.get(gate.url("/admin/ok"), headers=gate.cookie(cookie))
    assert response.status == 200
    await assert_nothing_left(gate.services)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_client_vanishing_mid_upload_ends_the_upstream_upload(
    gate: Gate, log: StreamLog, reset: bool
) -> None:
    cookie = gate.login()
    async with asyncio.timeout(PROMPTLY):
        _, writer = await asyncio.open_connection("127.0.0.1", gate.port)
        writer.write(
            b"POST /admin/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Cookie: ory_kratos_session={cookie}\r\n".encode()
            + b"Content-Length: 52428800\r\n\r\n" + b"u" * (1024 * 1024)
        )
        await writer.drain()
        await log.upload_started.wait()
        await vanish(writer, reset=reset)
        outcome, received = await log.ended.get()
    assert outcome != "upload complete"
    assert received <= 1024 * 1024
    await assert_nothing_left(gate.services)
    await assert_serves_again(gate, cookie)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_client_vanishing_mid_download_ends_the_upstream_download(
    gate: Gate, log: StreamLog, reset: bool
) -> None:
    cookie = gate.login()
    async with asyncio.timeout(PROMPTLY):
        reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
        writer.write(b"GET /admin/download HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     + f"Cookie: ory_kratos_session={cookie}\r\n\r\n".encode())
        await writer.drain()
        await reader.readexactly(1024 * 1024)
        await vanish(writer, reset=reset)
        outcome, sent = await log.ended.get()
    assert outcome.startswith("download broken")
    assert sent < 256 * 1024 * 1024
    await assert_nothing_left(gate.services)
    await assert_serves_again(gate, cookie)


# aiohttp's TestServer turns handler_cancellation on, which would hide a server.start_site
# that forgot it; this test runs the real process stack.
async def test_client_vanishing_from_an_idle_stream_frees_the_upstream(
    gate: Gate, log: StreamLog
) -> None:
    cookie = gate.login()
    async with asyncio.timeout(PROMPTLY):
        reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
        writer.write(b"GET /admin/poll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     + f"Cookie: ory_kratos_session={cookie}\r\n\r\n".encode())
        await writer.drain()
        await reader.readuntil(b": open\n\n")
        await vanish(writer, reset=False)
        outcome, _ = await log.ended.get()
    assert outcome.startswith("poll broken")
    await assert_nothing_left(gate.services)
    log.release.set()
