"""A 1 GiB upload and a 1 GiB download through a gateway process grow its RSS by < 50 MB:
bodies stream with backpressure both ways and are never held
(docs/reference.md#bodies-and-websockets).

The client writes and reads raw sockets so that the test's own process stays cheap; RSS is
sampled from /proc while the bytes flow, against a baseline taken after a warm-up transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.security.process_stack import ProcessStack, gateway_process

GIB = 1024 * 1024 * 1024
BLOCK = b"g" * (1024 * 1024)
LIMIT = 50 * 1000 * 1000  # bytes of RSS growth allowed for a whole GiB


async def sink(request: web.Request) -> web.StreamResponse:
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
    return web.Response(text=str(size))


async def source(request: web.Request) -> web.StreamResponse:
    size = int(request.query["size"])
    response = web.StreamResponse(headers={"Content-Length": str(size)})
    await response.prepare(request)
    sent = 0
    while sent < size:
        piece = BLOCK if size - sent >= len(BLOCK) else BLOCK[: size - sent]
        await response.write(piece)
        sent += len(piece)
    await response.write_eof()
    return response


def bulk_upstream() -> web.Application:
    app = web.Application(client_max_size=0)
    app.router.add_post("/big/sink", sink)
    app.router.add_get("/big/source", source)
    return app


@pytest.fixture
async def stack(aiohttp_server: AiohttpServer) -> AsyncIterator[ProcessStack]:
    async with gateway_process(aiohttp_server, bulk_upstream(), cache_ttl="1h") as running:
        yield running


async def upload(stack: ProcessStack, cookie: str, size: int) -> int:
    """POST `size` bytes with Content-Length; the upstream's count of what it got."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.gateway.port)
    try:
        writer.write(f"POST /big/sink HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     f"Cookie: ory_kratos_session={cookie}\r\nContent-Length: {size}\r\n\r\n"
                     .encode())
        sent = 0
        while sent < size:
            piece = BLOCK if size - sent >= len(BLOCK) else BLOCK[: size - sent]
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
        answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return int(body)


async def download(stack: ProcessStack, cookie: str, size: int) -> int:
    """GET `size` bytes; how many body bytes arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.gateway.port)
    try:
        writer.write(f"GET /big/source?size={size} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Connection: close\r\nCookie: ory_kratos_session={cookie}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        received = 0
        while chunk := await reader.read(4 * 1024 * 1024):
            received += len(chunk)
    finally:
        writer.close()
    return received


async def peak_rss_during(stack: ProcessStack, transfer: asyncio.Task[int]) -> int:
    peak = stack.gateway.rss_bytes()
    while not transfer.done():
        peak = max(peak, stack.gateway.rss_bytes())
        await asyncio.wait({transfer}, timeout=0.02)
    return peak


@pytest.mark.parametrize("direction", ["upload", "download"])
async def test_gibibyte_transfer_grows_gateway_rss_by_less_than_50mb(
    stack: ProcessStack, direction: str
) -> None:
    cookie, _ = stack.login(f"{direction}@example.com")
    move = upload if direction == "upload" else download
    async with asyncio.timeout(60):
        assert await move(stack, cookie, 32 * 1024 * 1024) == 32 * 1024 * 1024  # warm-up
        baseline = stack.gateway.rss_bytes()
        transfer = asyncio.ensure_future(move(stack, cookie, GIB))
        peak = await peak_rss_during(stack, transfer)
        moved = await transfer
    assert moved == GIB
    growth = peak - baseline
    assert growth < LIMIT, (
        f"{direction}: RSS {baseline / 2**20:.1f} MiB -> peak {peak / 2**20:.1f} MiB"
    )
