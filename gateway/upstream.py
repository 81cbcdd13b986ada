"""A lean HTTP/1.1 client for the common request: no body, to an `http://` upstream.

aiohttp's ClientSession spends about a quarter of a proxied request's CPU on what the gateway
never uses there: URL building, header merging, cookie jars, redirects, tracing, and a
request and a response object of ~100 attributes each (docs/performance.md). This keeps the
parts that matter, aiohttp's own protocol and llhttp response parser
(`aiohttp.client_proto.ResponseHandler`), and does the rest in a few lines: one write of the
request head, one read of the answer head, keep-alive connections reused newest first.
Requests with a body, WebSocket handshakes and `https://` upstreams use the ClientSession.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import EofStream, StreamReader
from multidict import CIMultiDictProxy
from yarl import URL

from gateway.errors import BadRequestError

KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default too)
# Methods that carry no body by definition; the others get `Content-Length: 0` when the
# client sent none (as aiohttp does), so no upstream waits for a body.
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Safe to send twice (RFC 9110 §9.2.2): retried once when a kept-alive connection turns out
# to have been closed by the upstream just before it was used.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class UpstreamAnswer:
    """The answer's head and its body stream; `release()` gives the connection back."""

    __slots__ = ("_pool", "_protocol", "content", "headers", "reason", "status")

    def __init__(
        self, pool: UpstreamPool, protocol: ResponseHandler, status: int, reason: str,
        headers: CIMultiDictProxy[str], content: StreamReader,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self._pool = pool
        self._protocol: ResponseHandler | None = protocol

    def release(self) -> None:
        """Reuse the connection if the whole answer was read and both ends keep it open."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            self._pool.put_back(protocol)


class UpstreamPool:
    """Keep-alive connections to one `http://` upstream, opened as needed, closed with it."""

    def __init__(
        self, url: str, *, keepalive_connections: int = 128,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        base = URL(url)
        if base.scheme != "http" or base.raw_host is None:
            raise ValueError(f"not a plain http:// URL: {url!r}")
        self._host = base.raw_host  # as written (IDNA-encoded), never re-encoded
        self._port = base.port or 80
        self._authority = base.host_port_subcomponent or self._host  # the default Host
        self._prefix = base.raw_path.rstrip("/")
        self._clock = clock
        self._most_idle = keepalive_connections  # `upstream.keepalive_connections`
        self._idle: deque[tuple[ResponseHandler, float]] = deque()  # newest on the right
        self._in_use = 0
        self._closed = False
        self._sweep: asyncio.TimerHandle | None = None

    @staticmethod
    def serves(url: str) -> bool:
        """Whether this client can reach `url` (plain HTTP; TLS stays with aiohttp)."""
        return URL(url).scheme == "http"

    @property
    def in_use(self) -> int:
        """Connections handed out and not yet given back (tests check none are leaked)."""
        return self._in_use

    async def request(
        self, method: str, path_qs: str, headers: Mapping[str, str]
    ) -> UpstreamAnswer:
        """Send a bodiless request; the answer once its head has arrived.

        Raises aiohttp.ClientError or OSError when the upstream cannot be reached or breaks
        the exchange, like the ClientSession it stands in for."""
        head = _request_head(method, self._prefix + path_qs, headers, self._authority)
        protocol, reused = await self._connection()
        try:
            return await self._exchange(protocol, method, head)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if not (reused and method in _IDEMPOTENT):
                raise
        # The upstream closed (or reset) a kept-alive connection as we sent on it: once
        # more, on a new connection (what aiohttp's ClientSession does too).
        protocol = await self._connect()
        return await self._exchange(protocol, method, head)

    def put_back(self, protocol: ResponseHandler) -> None:
        self._in_use -= 1
        if (self._closed or protocol.should_close or not protocol.is_connected()
                or len(self._idle) >= self._most_idle):
            protocol.close()
            return
        self._idle.append((protocol, self._clock()))
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(KEEPALIVE, self._swept)

    def close(self) -> None:
        """Close every idle connection; those in use close when given back."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self._idle:
            self._idle.pop()[0].close()

    def _swept(self) -> None:
        """Close what has idled past the keep-alive even when no request comes to notice
        (after a burst, say), then look again while any connection is idle."""
        self._sweep = None
        self._expire_idle()
        if self._idle:
            self._sweep = asyncio.get_running_loop().call_later(KEEPALIVE, self._swept)

    def _expire_idle(self) -> None:
        oldest_allowed = self._clock() - KEEPALIVE
        while self._idle and self._idle[0][1] < oldest_allowed:
            self._idle.popleft()[0].close()  # expired: the upstream may close it any moment

    async def _exchange(
        self, protocol: ResponseHandler, method: str, head: bytes
    ) -> UpstreamAnswer:
        """One request on one connection; the connection is closed unless an answer is
        handed out (which then owns it)."""
        self._in_use += 1
        try:
            protocol.set_response_params(
                skip_payload=method == "HEAD", read_until_eof=True, auto_decompress=False
            )
            assert protocol.transport is not None  # noqa: S101 - checked when taken
            protocol.transport.write(head)
            while True:
                message, payload = await protocol.read()
                if not 100 <= message.code < 200 or message.code == 101:
                    break  # 1xx answers (103 Early Hints) precede the real one: skip them
        except BaseException as exc:
            self._in_use -= 1
            protocol.close()
            if isinstance(exc, HttpProcessingError):
                raise aiohttp.ClientConnectionError("the answer is not valid HTTP") from None
            if isinstance(exc, EofStream):
                raise aiohttp.ServerDisconnectedError() from None
            raise
        return UpstreamAnswer(
            self, protocol, message.code, message.reason, message.headers, payload
        )

    async def _connection(self) -> tuple[ResponseHandler, bool]:
        """The newest idle connection still open and young enough, or a new one."""
        self._expire_idle()
        while self._idle:
            protocol, _ = self._idle.pop()
            # should_close: it also holds anything the upstream sent while the connection
            # was idle (a stray 408, say), which must never pass for the next answer.
            if protocol.is_connected() and not protocol.should_close:
                return protocol, True
            protocol.close()
        return await self._connect(), False

    async def _connect(self) -> ResponseHandler:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            lambda: ResponseHandler(loop), self._host, self._port
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return protocol


def _request_head(
    method: str, target: str, headers: Mapping[str, str], authority: str
) -> bytes:
    """The request line and headers, as one buffer for one write."""
    lines = [f"{method} {target} HTTP/1.1"]
    if "Host" not in headers:
        lines.append(f"Host: {authority}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if method not in _BODYLESS and "Content-Length" not in headers:
        lines.append("Content-Length: 0")
    text = "\r\n".join(lines) + "\r\n\r\n"
    # A CR or LF inside any name or value would start a header of its own (splitting).
    if text.count("\n") != len(lines) + 1 or text.count("\r") != len(lines) + 1:
        raise BadRequestError("a header holds a line break")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequestError("a header is not valid UTF-8") from None
