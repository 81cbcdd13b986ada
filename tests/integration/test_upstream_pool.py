"""The lean upstream client (gateway.relay.client): exact request heads, keep-alive reuse, and
every way a kept-alive connection can go wrong, against a scripted raw HTTP server."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.errors import BadRequestError
from gateway.relay.client import KEEPALIVE, UpstreamPool, UpstreamProtocol, _request_head
from tests.unit.fakes import FakeClock

WAIT = 5.0
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class ScriptedUpstream:
    """Answers the n-th request (over all connections) with `script[n]`: bytes to send,
    "close" to close that connection without answering, or "reset" to reset it (RST).
    Records every request head."""

    def __init__(self, *script: bytes | str) -> None:
        self.script = list(script)
        self.heads: list[tuple[int, bytes]] = []  # (connection number, request head)
        self.connections = 0
        self.closed: set[int] = set()  # connections the client closed
        self.port = 0
        self._server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append((number, head))
                answer = self.script.pop(0) if self.script else OK
                if answer == "close":
                    break
                if answer == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                assert isinstance(answer, bytes)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.add(number)
        finally:
            writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    server = ScriptedUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def pool(upstream: ScriptedUpstream, clock: FakeClock) -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}/base/", clock=clock)
    yield pool
    pool.close()


async def fetch(pool: UpstreamPool, method: str = "GET", path: str = "/p",
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with asyncio.timeout(WAIT):
        answer = await pool.request(method, path, headers or {})
        try:
            return answer.status, await answer.content.read()
        finally:
            answer.release()


async def until(condition: object, *, within: float = WAIT) -> None:
    async with asyncio.timeout(within):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - sockets set no Event
            await asyncio.sleep(0.005)


async def test_request_head_is_exactly_what_was_given(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    assert await fetch(pool, path="/p%20q?x=1&y", headers={"X-A": "1", "Cookie": "a=b"}) == (
        200, b"ok"
    )

    assert upstream.heads == [(1, (
        b"GET /base/p%%20q?x=1&y HTTP/1.1\r\n"
        b"Host: 127.0.0.1:%d\r\nX-A: 1\r\nCookie: a=b\r\n\r\n" % upstream.port
    ))]


async def test_a_given_host_is_sent_instead_of_the_upstreams(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    await fetch(pool, headers={"Host": "app.example.com"})

    assert upstream.heads[0][1].count(b"Host:") == 1
    assert b"\r\nHost: app.example.com\r\n" in upstream.heads[0][1]


@pytest.mark.parametrize(("method", "zero_length"), [
    ("GET", False), ("HEAD", False), ("OPTIONS", False), ("DELETE", True), ("POST", True),
])
async def test_bodiless_methods_that_may_carry_a_body_say_it_is_empty(
    pool: UpstreamPool, upstream: ScriptedUpstream, method: str, zero_length: bool
) -> None:
    if method == "HEAD":
        upstream.script.append(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    await fetch(pool, method)

    assert (b"\r\nContent-Length: 0\r\n" in upstream.heads[0][1]) is zero_length


async def test_sequential_requests_share_one_connection(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    for _ in range(3):
        assert await fetch(pool) == (200, b"ok")

    assert [number for number, _ in upstream.heads] == [1, 1, 1]
    assert pool.in_use == 0


async def test_head_answer_has_no_body_and_its_connection_is_not_reused(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    """A body the app sends anyway may arrive after the head was relayed and the next
    request was written: on a reused connection it would be that request's answer."""
    upstream.script.append(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")  # no body: HEAD

    assert await fetch(pool, "HEAD") == (200, b"")
    assert await fetch(pool) == (200, b"ok")
    assert [number for number, _ in upstream.heads] == [1, 2]
    assert pool.in_use == 0


async def test_head_answered_with_a_body_anyway_gives_the_head_and_retires_the_connection(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    """Legacy apps often send the page for HEAD too, in the same write as its head: the
    head is the answer, the page is never taken for the next one."""
    upstream.script.append(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")

    assert await fetch(pool, "HEAD") == (200, b"")
    assert await fetch(pool) == (200, b"ok")
    assert [number for number, _ in upstream.heads] == [1, 2]


HEAD_ANSWER = (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
BARE_LF = HEAD_ANSWER.replace(b"\r\n", b"\n")  # heads the parser accepts from older apps


@pytest.mark.parametrize("body", [b"", b"hello"])
@pytest.mark.parametrize(("answer", "split"), [
    *((HEAD_ANSWER, split) for split in range(1, len(HEAD_ANSWER) + 5)),
    *((BARE_LF, split) for split in range(1, len(BARE_LF) + 5)),
])
async def test_head_answer_split_anywhere_is_read_to_its_final_head(
    answer: bytes, split: int, body: bytes
) -> None:
    """However the packets cut the heads, the final one is the answer and what follows it
    is never parsed; the connection is marked unusable either way (a late body could
    otherwise meet the next request)."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, protocol = await loop.create_connection(lambda: UpstreamProtocol(loop), sock=ours)
    try:
        protocol.idle, protocol.head_only = False, True
        protocol.set_response_params(skip_payload=True, read_until_eof=True)
        data = answer + body
        for piece in (data[:split], data[split:]):
            if piece:
                protocol.data_received(piece)
        async with asyncio.timeout(WAIT):
            interim, _ = await protocol.read()
            final, _ = await protocol.read()
        assert (interim.code, final.code) == (103, 200)
        assert final.headers["Content-Length"] == "5"
        assert protocol.tainted
        assert protocol.idle  # nothing more may arrive for this exchange
        assert protocol.is_connected() is not bool(body)  # a byte after the head closes it
    finally:
        transport.close()
        theirs.close()


async def test_informational_answers_before_the_real_one_are_skipped(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    upstream.script.append(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                           + OK)

    assert await fetch(pool) == (200, b"ok")


async def test_connection_close_from_the_upstream_is_honoured(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    upstream.script.append(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")

    await fetch(pool)
    await fetch(pool)

    assert [number for number, _ in upstream.heads] == [1, 2]


async def test_no_more_idle_connections_are_kept_than_configured(
    upstream: ScriptedUpstream, clock: FakeClock
) -> None:
    pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}", keepalive_connections=1,
                        clock=clock)
    async with asyncio.timeout(WAIT):
        first, second = await asyncio.gather(pool.request("GET", "/a", {}),
                                             pool.request("GET", "/b", {}))
    first.release()
    second.release()

    assert len(pool._idle) == 1
    await until(lambda: len(upstream.closed) == 1)  # the second one went
    pool.close()


async def test_no_keepalive_at_all_when_configured_so(
    upstream: ScriptedUpstream, clock: FakeClock
) -> None:
    pool = UpstreamPool(f"http://127.0.0.1:{upstream.port}", keepalive_connections=0,
                        clock=clock)
    await fetch(pool)
    await fetch(pool)

    assert [number for number, _ in upstream.heads] == [1, 2]
    pool.close()


async def test_an_answer_released_unread_closes_its_connection(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    upstream.script.append(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
    async with asyncio.timeout(WAIT):
        answer = await pool.request("GET", "/big", {})
    answer.release()  # the client left mid-body: the rest must never reach the next request

    assert await fetch(pool) == (200, b"ok")
    assert [number for number, _ in upstream.heads] == [1, 2]
    await until(lambda: 1 in upstream.closed)
    assert pool.in_use == 0


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_kept_alive_connection_closed_by_the_upstream_is_retried_once(
    pool: UpstreamPool, upstream: ScriptedUpstream, method: str, how: str
) -> None:
    empty = b"HTTP/1.1 204 No Content\r\n\r\n"
    upstream.script += [empty, how, empty]

    await fetch(pool)  # a GET: its connection is kept (a HEAD's never is)
    assert await fetch(pool, method) == (204, b"")  # sent on the closed one, then afresh

    assert [number for number, _ in upstream.heads] == [1, 1, 2]


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_request_that_is_not_idempotent_is_never_sent_twice(
    pool: UpstreamPool, upstream: ScriptedUpstream, how: str
) -> None:
    upstream.script += [OK, how]
    await fetch(pool, "POST")

    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await fetch(pool, "POST")

    assert len(upstream.heads) == 2
    assert pool.in_use == 0


async def test_a_fresh_connection_closed_without_an_answer_is_not_retried(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    upstream.script.append("close")

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(pool)

    assert len(upstream.heads) == 1


async def test_idle_connections_older_than_the_keepalive_are_closed_not_reused(
    pool: UpstreamPool, upstream: ScriptedUpstream, clock: FakeClock
) -> None:
    await fetch(pool)
    clock.advance(KEEPALIVE + 1)

    await fetch(pool)

    assert [number for number, _ in upstream.heads] == [1, 2]
    await until(lambda: 1 in upstream.closed)


async def test_what_an_idle_connection_receives_is_never_taken_for_an_answer(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    await fetch(pool)
    idle = pool._idle[0][0]
    upstream.writers[0].write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
    await until(lambda: idle.tainted)  # the stray answer has reached the idle client

    assert await fetch(pool) == (200, b"ok")
    assert [number for number, _ in upstream.heads] == [1, 2]


async def test_a_stray_answer_not_yet_delivered_is_never_taken_for_an_answer(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    """The stray bytes are in the client's socket, but the loop has not run since: only a
    look at the socket itself tells the connection is not quiet."""
    await fetch(pool)
    idle = pool._idle[0][0]
    upstream.writers[0].write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")

    assert await fetch(pool) == (200, b"ok")  # no await in between: nothing was delivered
    assert not idle.is_connected()
    assert [number for number, _ in upstream.heads] == [1, 2]


async def test_idle_connections_are_swept_even_when_no_request_comes(
    pool: UpstreamPool, upstream: ScriptedUpstream, clock: FakeClock
) -> None:
    await fetch(pool)
    assert pool._sweep is not None  # a sweep is due while anything idles
    clock.advance(KEEPALIVE + 1)

    pool._swept()  # what the timer does

    await until(lambda: 1 in upstream.closed)
    assert pool._sweep is None  # nothing idle: nothing to look at again


async def test_an_answer_that_is_not_http_is_a_client_error(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    upstream.script.append(b"NOT HTTP AT ALL\r\n\r\n")

    with pytest.raises(aiohttp.ClientError):
        await fetch(pool)

    assert pool.in_use == 0
    assert await fetch(pool) == (200, b"ok")  # on a new connection
    assert [number for number, _ in upstream.heads] == [1, 2]


async def test_closing_the_pool_closes_idle_connections(
    pool: UpstreamPool, upstream: ScriptedUpstream
) -> None:
    await fetch(pool)

    pool.close()

    await until(lambda: 1 in upstream.closed)


async def test_an_unreachable_upstream_is_an_os_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = UpstreamPool(f"http://127.0.0.1:{port}")

    with pytest.raises(ConnectionRefusedError):
        await fetch(pool)

    assert pool.in_use == 0


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\rb"])
def test_a_line_break_in_a_header_is_refused_not_sent(value: str) -> None:
    with pytest.raises(BadRequestError):
        _request_head("GET", "/", {"X-A": value}, "h", None)
    with pytest.raises(BadRequestError):
        _request_head("GET", "/", {value: "v"}, "h", None)


def test_an_international_host_is_connected_to_as_written() -> None:
    """Decoded to Unicode and encoded again, xn--fa-hia.de would become fass.de."""
    assert UpstreamPool("http://xn--fa-hia.de:3000")._host == "xn--fa-hia.de"


def test_only_http_and_https_upstreams_are_served() -> None:
    assert UpstreamPool("https://app")._port == 443
    assert UpstreamPool("http://app")._port == 80
    with pytest.raises(ValueError, match="not an http"):
        UpstreamPool("ftp://app")
