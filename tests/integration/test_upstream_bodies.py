"""The upstream client with bodies and over TLS (gateway.relay.client): framing kept, and a
connection never reused after an early answer or a broken body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol

from gateway.relay.client import ClientBodyError, RequestBody, UpstreamPool
from tests.tls import make_certificate

WAIT = 5.0
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class BodyUpstream:
    """Reads each request whole (by its Content-Length or chunks, kept raw) and answers OK;
    with `early`, answers as soon as the head is in, before reading the body."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection, head, raw body)
        self.connections = 0
        self.early = False
        self.got_head = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.got_head.set()
                if self.early:
                    writer.write(OK)
                body = await _read_body(reader, head)
                self.requests.append((number, head, body))
                if not self.early:
                    writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lower = head.lower()
    if b"\r\ncontent-length: " in lower:
        length = int(lower.split(b"\r\ncontent-length: ")[1].split(b"\r\n")[0])
        return await reader.readexactly(length)
    if b"\r\ntransfer-encoding: chunked" in lower:
        raw = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.strip(), 16)
            raw += size_line + await reader.readexactly(size + 2)
            if size == 0:
                return raw
    return b""


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[BodyUpstream, int]]:
    state = BodyUpstream()
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    yield state, server.sockets[0].getsockname()[1]
    server.close()


class _Connected(BaseProtocol):
    """A client connection that stays open (StreamReader refuses to wait on a closed one)."""

    def __init__(self) -> None:
        super().__init__(asyncio.get_running_loop())
        self.transport = asyncio.Transport()


def body_of(*pieces: bytes, length: int | None, eof: bool = True) -> RequestBody:
    source = StreamReader(_Connected(), 2**16, loop=asyncio.get_running_loop())
    for piece in pieces:
        source.feed_data(piece)
    if eof:
        source.feed_eof()
    return RequestBody(source, length, lambda: None)


async def post(pool: UpstreamPool, body: RequestBody) -> tuple[int, bytes]:
    async with asyncio.timeout(WAIT):
        answer = await pool.request("POST", "/up", {"Content-Encoding": "gzip"}, body)
        try:
            return answer.status, await answer.content.read()
        finally:
            answer.release()


async def test_a_body_with_a_length_keeps_its_length_and_bytes(
    upstream: tuple[BodyUpstream, int],
) -> None:
    state, port = upstream
    pool = UpstreamPool(f"http://127.0.0.1:{port}")
    gzip_bytes = b"\x1f\x8b\x08\x00 not really gzip"

    assert await post(pool, body_of(gzip_bytes[:5], gzip_bytes[5:], length=len(gzip_bytes))) \
        == (200, b"ok")

    _, head, body = state.requests[0]
    assert body == gzip_bytes
    assert f"\r\nContent-Length: {len(gzip_bytes)}\r\n".encode() in head
    assert b"\r\nContent-Encoding: gzip\r\n" in head
    pool.close()


async def test_a_chunked_body_stays_chunked_piece_by_piece(
    upstream: tuple[BodyUpstream, int],
) -> None:
    """Each piece goes out as one chunk as soon as it arrives, not merged with the next."""
    state, port = upstream
    pool = UpstreamPool(f"http://127.0.0.1:{port}")
    body = body_of(b"abc", length=None, eof=False)
    sending = asyncio.ensure_future(post(pool, body))
    async with asyncio.timeout(WAIT):
        while body.source._buffer:  # noqa: ASYNC110 - the first piece is taken, not yet the 2nd
            await asyncio.sleep(0)
    body.source.feed_data(b"defgh")
    body.source.feed_eof()

    assert await sending == (200, b"ok")

    _, head, raw = state.requests[0]
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head
    assert b"Content-Length" not in head
    assert raw == b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"
    pool.close()


async def test_a_clean_exchange_with_a_body_keeps_the_connection(
    upstream: tuple[BodyUpstream, int],
) -> None:
    state, port = upstream
    pool = UpstreamPool(f"http://127.0.0.1:{port}")
    await post(pool, body_of(b"one", length=3))
    await post(pool, body_of(b"two", length=3))

    assert [number for number, _, _ in state.requests] == [1, 1]
    pool.close()


async def test_an_answer_before_the_body_was_sent_retires_the_connection(
    upstream: tuple[BodyUpstream, int],
) -> None:
    """The app answered without waiting for the body: it may read the body's rest as a
    request of its own, so the connection must never carry another one."""
    state, port = upstream
    state.early = True
    pool = UpstreamPool(f"http://127.0.0.1:{port}")
    late = body_of(b"first half ", length=20, eof=False)

    assert await post(pool, late) == (200, b"ok")  # answered while the body was unsent
    state.early = False
    assert await post(pool, body_of(b"x", length=1)) == (200, b"ok")

    assert state.connections == 2
    pool.close()


@pytest.mark.parametrize("length", [100, None], ids=["short-of-its-length", "chunked-cut"])
async def test_a_client_body_that_breaks_off_fails_the_exchange_and_the_connection(
    upstream: tuple[BodyUpstream, int], length: int | None
) -> None:
    state, port = upstream
    pool = UpstreamPool(f"http://127.0.0.1:{port}")
    broken = body_of(b"only this", length=length, eof=False)
    broken.source.set_exception(ConnectionResetError("client gone"))

    with pytest.raises(ClientBodyError):
        await post(pool, broken)

    assert pool.in_use == 0
    assert not pool._idle  # the half-sent request's connection is gone
    assert await post(pool, body_of(b"x", length=1)) == (200, b"ok")
    assert state.connections == 2
    pool.close()


async def test_https_upstreams_are_served_by_the_same_pool(tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    state = BodyUpstream()
    server = await asyncio.start_server(
        state.serve, "127.0.0.1", 0, ssl=certificate.server_context()
    )
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool(f"https://127.0.0.1:{port}", tls=certificate.client_context())

    assert await post(pool, body_of(b"secret", length=6)) == (200, b"ok")
    assert await post(pool, body_of(b"again", length=5)) == (200, b"ok")

    assert [body for _, _, body in state.requests] == [b"secret", b"again"]
    assert state.connections == 1  # kept alive over TLS too
    pool.close()
    server.close()
