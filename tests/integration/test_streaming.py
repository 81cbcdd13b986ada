"""Bodies stream both ways unaltered; WebSockets; 502 / 504
(docs/reference.md#bodies-and-websockets)."""

from __future__ import annotations

import asyncio
import gzip
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.conftest import Stack, StackFactory


async def test_sse_first_event_arrives_before_upstream_sends_the_last(stack: Stack) -> None:
    cookie, _ = stack.login()
    async with asyncio.timeout(5):
        response = await stack.client.get("/sse", headers=stack.cookie(cookie))
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await response.content.readuntil(b"\n\n")
        assert first == b"data: first\n\n"
        assert not stack.upstream.release.is_set()  # the upstream is still holding the last
        stack.upstream.release.set()
        rest = await response.content.read()
    assert rest == b"data: last\n\n"


async def test_compressed_body_is_passed_through_undecoded(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.get(
        "/gzip", headers=stack.cookie(cookie), auto_decompress=False
    )
    assert response.headers["Content-Encoding"] == "gzip"
    raw = await response.read()
    assert gzip.decompress(raw) == b"hello " * 100


async def test_several_set_cookie_headers_survive(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.get("/cookies", headers=stack.cookie(cookie))
    assert response.headers.getall("Set-Cookie") == [
        "a=1; Path=/", "b=2; Path=/; HttpOnly", "c=3; Path=/; SameSite=Lax"
    ]


async def test_upload_streams_to_upstream_with_length(stack: Stack) -> None:
    cookie, _ = stack.login()
    body = b"z" * (3 * 1024 * 1024 + 7)
    response = await stack.client.post(
        "/upload", data=io.BytesIO(body),
        headers={**stack.cookie(cookie), "Content-Length": str(len(body))},
    )
    assert response.status == 200
    seen = stack.upstream.last()
    assert seen.body_size == len(body)
    assert stack.upstream.header("Content-Length") == [str(len(body))]


async def test_chunked_upload_is_forwarded(stack: Stack) -> None:
    cookie, _ = stack.login()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"k" * 1000

    response = await stack.client.post("/upload", data=chunks(), headers=stack.cookie(cookie))
    assert response.status == 200
    assert stack.upstream.last().body_size == 10_000


async def test_large_download_streams(stack: Stack) -> None:
    cookie, _ = stack.login()
    size = 8 * 1024 * 1024
    response = await stack.client.get(f"/download?size={size}", headers=stack.cookie(cookie))
    total = 0
    async for chunk in response.content.iter_any():
        total += len(chunk)
    assert total == size
    assert response.headers["Content-Length"] == str(size)


async def test_head_request_has_no_body(stack: Stack) -> None:
    response = await stack.client.head("/public/x")
    assert response.status == 200
    assert await response.read() == b""


async def test_upstream_status_and_body_pass_through(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.get("/status/418", headers=stack.cookie(cookie))
    assert response.status == 418


async def test_upstream_down_is_502(make_stack: StackFactory) -> None:
    stack = await make_stack()
    await stack.upstream_server.close()
    response = await stack.client.get("/public/x", headers={"Accept": "application/json"})
    assert response.status == 502
    assert (await response.json())["error"]["id"] == "upstream_unavailable"


async def test_upstream_too_slow_is_504(make_stack: StackFactory) -> None:
    stack = await make_stack(upstream_timeout="200ms")
    cookie, _ = stack.login()
    async with asyncio.timeout(5):
        response = await stack.client.get(
            "/hang", headers={**stack.cookie(cookie), "Accept": "application/json"}
        )
    assert response.status == 504
    assert (await response.json())["error"]["id"] == "upstream_timeout"
    stack.upstream.release.set()


async def test_websocket_bridged_both_ways_with_identity(stack: Stack) -> None:
    cookie, _ = stack.login("ws@example.com")
    async with asyncio.timeout(5):
        ws = await stack.client.ws_connect(
            "/ws", headers={**stack.cookie(cookie), "Origin": stack.origin}, protocols=("chat",)
        )
        assert ws.protocol == "chat"
        assert (await ws.receive_str()) == "hello ws@example.com"
        await ws.send_str("ping")
        assert (await ws.receive_str()) == "echo: ping"
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive_bytes()) == b"\x00\x01"
        await ws.send_str("close-4001")
        message = await ws.receive()
        assert message.type == WSMsgType.CLOSE
        assert ws.close_code == 4001 or message.data == 4001
        await ws.close()


async def test_websocket_without_session_is_refused(stack: Stack) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await stack.client.ws_connect("/ws", headers={"Origin": stack.origin})
    assert caught.value.status == 401


async def test_cross_site_websocket_upgrade_is_refused(stack: Stack) -> None:
    cookie, _ = stack.login()
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await stack.client.ws_connect(
            "/ws", headers={**stack.cookie(cookie), "Origin": "https://evil.example"}
        )
    assert caught.value.status == 403
    assert [s for s in stack.upstream.seen if s.method == "WS"] == []


async def test_websocket_origin_in_allowed_origins_is_accepted(make_stack: StackFactory) -> None:
    stack = await make_stack(server='allowed_origins = ["https://partner.example"]')
    cookie, _ = stack.login()
    async with asyncio.timeout(5):
        ws = await stack.client.ws_connect(
            "/ws", headers={**stack.cookie(cookie), "Origin": "https://partner.example"}
        )
        assert (await ws.receive_str()).startswith("hello")
        await ws.close()


async def test_client_closing_websocket_carries_its_code_upstream(stack: Stack) -> None:
    cookie, _ = stack.login()
    async with asyncio.timeout(5):
        ws = await stack.client.ws_connect("/ws", headers=stack.cookie(cookie))
        await ws.receive_str()
        await ws.close(code=4002)
        assert await stack.upstream.ws_closed.get() == 4002
