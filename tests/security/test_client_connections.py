"""Class CLIENT-CONNECTIONS: what the gateway owes the client's socket (RFC 9112 §9).

An HTTP/1.0 client cannot read chunked, so an answer without a length must end with the
connection, or the client waits forever and a pipelined second answer is read as part of
the first body. A client that sends nothing, or half a request head, must not hold a
connection (and a file descriptor) forever: slowloris. `Expect: 100-continue` must not
invite a body the gateway is about to refuse.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pytest_aiohttp import AiohttpServer

from tests.security.raw_client import API, BROWSER, RawClient, cookie, request
from tests.security.scripted_upstream import (
    CHUNKS,
    CLOSE_DELIMITED_BODY,
    ScriptedStack,
    scripted_stack,
)

KEEP_ALIVE = "Connection: keep-alive"
UNFRAMED = [
    pytest.param("close-delimited", CLOSE_DELIMITED_BODY, id="close-delimited"),
    pytest.param("trickle", b"".join(CHUNKS), id="streamed-chunked"),
]


def header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode("latin-1")
    return None


async def first_answer(stack: ScriptedStack, client: RawClient) -> tuple[bytes, bytes, bool]:
    """(head, body, closed) of the first answer: its head must come before the streamed
    body ends (§3.9); then the upstream finishes, and the body is read by its length or,
    without one, until the gateway closes (at most 3 s)."""
    async with asyncio.timeout(5):
        head = await client.reader.readuntil(b"\r\n\r\n")
    stack.upstream.release.set()
    length = header(head, "Content-Length")
    if length is not None:
        async with asyncio.timeout(5):
            return head, await client.reader.readexactly(int(length)), False
    body, closed = await client.collect(within=3)
    return head, body, closed


@pytest.mark.parametrize(("kind", "expected"), UNFRAMED)
async def test_http10_keepalive_client_gets_unframed_answer_with_close_or_length(
    aiohttp_server: AiohttpServer, kind: str, expected: bytes
) -> None:
    """Fails on 1c02853: the answer has neither a length nor `Connection: close`, and the
    gateway keeps the connection open, so the client never learns where the body ends."""
    async with scripted_stack(aiohttp_server) as stack, RawClient(stack.port) as client:
        await client.send(request("GET", f"/public/{kind}", KEEP_ALIVE, version="HTTP/1.0"))
        head, body, closed = await first_answer(stack, client)
        if header(head, "Content-Length") is None:
            assert "close" in (header(head, "Connection") or "").lower(), head
            assert closed, "the gateway kept the connection open after an unframed answer"
        assert body == expected


@pytest.mark.parametrize(("kind", "expected"), UNFRAMED)
async def test_pipelined_answer_is_never_glued_into_unframed_answer(
    aiohttp_server: AiohttpServer, kind: str, expected: bytes
) -> None:
    """Fails on 1c02853: the second answer follows the first body on the same connection,
    where an HTTP/1.0 client reads it as more of the first body."""
    async with scripted_stack(aiohttp_server) as stack, RawClient(stack.port) as client:
        second = request("GET", "/public/echo", KEEP_ALIVE, version="HTTP/1.0")
        await client.send(request("GET", f"/public/{kind}", KEEP_ALIVE, version="HTTP/1.0")
                          + second)
        head, body, closed = await first_answer(stack, client)
        assert body == expected, "another answer was glued into the unframed body"
        if header(head, "Content-Length") is None:
            assert closed, "the gateway kept the connection open after an unframed answer"
        else:  # the second answer, if any, comes whole and on its own
            answer = await client.answer()
            assert answer is None or (answer.status, answer.user) == (200, "")


async def drip(client: RawClient, data: bytes, pause: float) -> None:
    """A slowloris: one byte at a time, `pause` seconds apart (the attacker's own pace)."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            await client.send(bytes([byte]))
            await asyncio.sleep(pause)


SLOW_HEADS = [
    pytest.param(b"", 0.0, id="sends-nothing"),
    pytest.param(b"GET /public/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ab", 0.0,
                 id="half-a-head"),
    pytest.param(b"GET /public/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X" * 200, 0.2,
                 id="one-byte-every-200ms"),
]


@pytest.mark.parametrize(("data", "pause"), SLOW_HEADS)
async def test_slow_request_head_is_cut_off_after_header_timeout(
    aiohttp_server: AiohttpServer, data: bytes, pause: float
) -> None:
    """Needs `server.header_timeout` (1c02853 refuses the key). Fails on 1c02853 without it:
    all three connections are still open after 3 s (aiohttp has no head deadline)."""
    async with scripted_stack(aiohttp_server, server='header_timeout = "1s"') as stack:
        async with RawClient(stack.port) as client:
            sender = asyncio.create_task(drip(client, data, pause) if pause else
                                         client.send(data))
            try:
                got, closed = await client.collect(within=3)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
        assert closed, "the connection was still open 2 s after header_timeout"
        if got:  # a 408 in the JSON envelope is allowed, nothing else (a reset may cut it)
            assert got.split(b" ", 2)[1:2] == [b"408"], got[:200]
            head, found, _ = got.partition(b"\r\n\r\n")
            assert not found or b"application/json" in head.lower(), head
        assert stack.upstream.requests == []


async def test_idle_keepalive_connection_is_closed_after_keepalive_timeout(
    aiohttp_server: AiohttpServer,
) -> None:
    """Needs `server.keepalive_timeout` (1c02853 refuses the key). Fails on 1c02853 without
    it: the idle connection is still open 4 s later (aiohttp's default is 75 s)."""
    async with scripted_stack(aiohttp_server, server='keepalive_timeout = "2s"') as stack:
        async with RawClient(stack.port) as client:
            await client.send(request("GET", "/public/echo"))
            answer = await client.answer()
            assert answer is not None
            assert answer.status == 200
            started = asyncio.get_running_loop().time()
            rest, closed = await client.collect(within=4)
            idle = asyncio.get_running_loop().time() - started
        assert closed, "the idle kept-alive connection was still open 2 s after its timeout"
        assert rest == b""
        assert idle >= 1.0, f"closed after {idle:.2f} s, long before keepalive_timeout"


REFUSED_EXPECT = [
    pytest.param("POST", "/private/echo", (API,), 401, id="api-call-without-session"),
    pytest.param("GET", "/private/echo", (BROWSER, "Sec-Fetch-Mode: navigate"), 303,
                 id="navigation-without-session"),
    pytest.param("POST", "/internal/echo", (API,), 403, id="deny-route"),
]


@pytest.mark.parametrize(("method", "path", "headers", "status"), REFUSED_EXPECT)
async def test_expect_continue_is_refused_without_a_continue(
    aiohttp_server: AiohttpServer, method: str, path: str, headers: tuple[str, ...],
    status: int,
) -> None:
    """Fails on 1c02853: `HTTP/1.1 100 Continue` comes first, inviting a body (maybe a large
    upload) that the gateway is about to refuse anyway."""
    async with scripted_stack(aiohttp_server) as stack, RawClient(stack.port) as client:
        await client.send(request(method, path, "Expect: 100-continue", "Content-Length: 10",
                                  *headers))  # the body waits for the 100
        answer = await client.answer()
        assert answer is not None
        assert answer.status == status, answer.head
        assert stack.upstream.requests == []


@pytest.mark.parametrize("path", ["/private/echo", "/public/echo"])
async def test_expect_continue_with_access_gets_continue_then_answer(
    aiohttp_server: AiohttpServer, path: str
) -> None:
    """Guard (passes on 1c02853): a request that may pass gets the 100, then its answer."""
    async with scripted_stack(aiohttp_server) as stack, RawClient(stack.port) as client:
        alice, session = stack.login("alice@example.com")
        await client.send(request("POST", path, "Expect: 100-continue", "Content-Length: 10",
                                  cookie(session)))
        interim = await client.answer()
        assert interim is not None
        assert interim.head.startswith(b"HTTP/1.1 100 Continue\r\n")
        await client.send(b"0123456789")
        answer = await client.final_answer()  # the upstream's own 100 may follow
        assert answer is not None
        assert answer.status == 200
        assert answer.user == (alice if path.startswith("/private") else "")
        assert [r.body for r in stack.upstream.requests] == [b"0123456789"]
