"""The upstream client: every request to the app, with or without a body, over `http://` or
`https://`, through one pool of keep-alive connections (docs/reference.md#bodies-and-framing).

aiohttp's ClientSession spends about a quarter of a proxied request's CPU on what a proxy
never uses (URL building, header merging, cookie jars, redirects), and its connector reuses
an idle connection without asking whether the app sent anything on it meanwhile: an extra
answer there is then handed to the next user's request. This keeps the parts that matter,
aiohttp's protocol and llhttp response parser (`ResponseHandler`), and owns the rest: one
write of the request head, the body streamed with the framing it arrived with, and a
connection given back for reuse only when nothing unexpected happened on it:

* the whole answer was read, and no byte beyond it (`_leftover`);
* the request body had been sent in full before the answer began (an early answer means
  the app may not have read the body, and would read its rest as a request of its own);
* nothing arrived while the connection sat idle (`UpstreamProtocol.tainted`, and a poll of
  the socket just before reuse for bytes not yet delivered to the protocol);
* no error, and neither side asked to close.

aiohttp internals used here (pinned by tests/unit/test_aiohttp_internals.py):
`aiohttp.client_proto.ResponseHandler` (`set_response_params`, `read`, `should_close`,
`data_received`, `_parser`, `_drain_helper`) and the parser's `feed_eof()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.http import RawResponseMessage
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import EofStream, StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.errors import BadRequestError

KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default too)
# Methods that carry no body by definition; the others get `Content-Length: 0` when the
# client sent none (as aiohttp does), so no upstream waits for a body.
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Safe to send twice (RFC 9110 §9.2.2): retried once when a kept-alive connection turns out
# to have been closed by the upstream just before it was used.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# The framing of a request body is the gateway's to write, from what it actually sends.
_FRAMING = frozenset({"content-length", "transfer-encoding"})


class AsSentRequest(aiohttp.ClientRequest):
    """The WebSocket ClientSession's request class: adds none of aiohttp's automatic headers
    (`update_auto_headers` is aiohttp's own step; `skip_auto_headers` would rebuild its
    multidict on every request)."""

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        self._skip_auto_headers = _SKIPPED


_SKIPPED: CIMultiDict[None] = CIMultiDict(
    (name, None) for name in ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
)


def websocket_session() -> aiohttp.ClientSession:
    """For WebSocket handshakes only: every handshake on a connection of its own, never kept
    alive (a refused handshake leaves the connection in an unknown state)."""
    return aiohttp.ClientSession(
        auto_decompress=False,
        request_class=AsSentRequest,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, force_close=True),
    )


class ClientBodyError(Exception):
    """The client's body broke off or broke its framing: the client's fault, not the app's."""


class RequestBody(NamedTuple):
    """A client's body as it arrives: `length` bytes, or chunked when `length` is None."""

    source: StreamReader
    length: int | None
    progress: Callable[[], None]  # called per chunk sent (pushes the answer deadline back)


_HEAD_END = re.compile(rb"\n\r?\n")  # the empty line after a head (CRLF or bare LF)


class UpstreamProtocol(ResponseHandler):
    """aiohttp's response protocol, plus a note of any byte that arrives while the connection
    is idle: such bytes are never parsed, and the connection is closed at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.idle = True  # no request in flight: nothing may arrive now
        self.tainted = False
        self.poller: select.poll | None = None  # the socket, for `_is_quiet`
        self.head_only = False  # answering HEAD: no byte after the final head belongs to it
        self._carry = b""  # the last bytes of a HEAD answer's unfinished head

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.poller = select.poll()  # made once: reuse costs one poll(2), nothing more
            self.poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)

    def data_received(self, data: bytes) -> None:
        if self.idle:
            if data:
                self.tainted = True
                self.close()
            return
        if self.head_only:
            self._head_answer(data)
            return
        ResponseHandler.data_received(self, data)  # what super() finds, without the lookup

    def _head_answer(self, data: bytes) -> None:
        """An answer to HEAD is its head alone, whatever else the app sends. Many legacy
        apps send the page anyway, in the head's packet or a later one: the parser would
        take it for the next answer (a 502 now, or, on a reused connection, the next
        request's answer). So the head is fed up to its end (an empty line, CRLF or bare LF
        as the parser accepts), one head at a time (1xx ones may come first); once the final
        head is in, the connection counts as idle and is never reused: anything after the
        head closes it, and it is closed when given back."""
        while data:
            seen = self._carry + data
            end = _HEAD_END.search(seen)
            if end is None:
                self._carry = seen[-2:]
                ResponseHandler.data_received(self, data)
                return
            cut = end.end() - len(self._carry)
            self._carry = b""
            ResponseHandler.data_received(self, data[:cut])
            data = data[cut:]
            if self.exception() is not None:
                return  # not valid HTTP: the exchange fails, the connection is closed
            answers = self._buffer  # aiohttp internal: ((head, body), size) not yet read
            if answers and answers[-1][0][0].code >= 200:
                self.head_only = False
                self.idle = self.tainted = True
                self.data_received(data)
                return


class UpstreamAnswer:
    """The answer's head and its body stream; `release()` gives the connection back."""

    __slots__ = (
        "_body_first", "_pool", "_protocol", "_sender", "content", "headers", "reason", "status",
    )

    def __init__(
        self, pool: UpstreamPool, protocol: UpstreamProtocol, status: int, reason: str,
        headers: CIMultiDictProxy[str], content: StreamReader,
        sender: asyncio.Task[None] | None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self._pool = pool
        self._protocol: UpstreamProtocol | None = protocol
        self._sender = sender
        # Whether the request body had been sent in full before this answer began.
        self._body_first = sender is None or _finished(sender)

    def retire(self) -> None:
        """Give the connection back never to be used again."""
        self._body_first = False
        self.release()

    def release(self) -> None:
        """Reuse the connection if nothing unexpected happened on it; close it otherwise."""
        protocol, self._protocol = self._protocol, None
        if protocol is None:
            return
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()  # the answer is over; the rest of the body goes nowhere
        self._pool.put_back(protocol, reusable=self._body_first)


def _retrieve(task: asyncio.Task[None]) -> None:
    """A body that failed after its answer began is nobody's news: mark it seen."""
    if not task.cancelled():
        task.exception()


def _finished(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


class UpstreamPool:
    """Keep-alive connections to one upstream, opened as needed, closed with it."""

    def __init__(
        self, url: str, *, keepalive_connections: int = 128,
        clock: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        base = URL(url)
        if base.scheme not in ("http", "https") or base.raw_host is None:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        self._host = base.raw_host  # as written (IDNA-encoded), never re-encoded
        self._port = base.port or (443 if base.scheme == "https" else 80)
        self._tls = (tls or ssl.create_default_context()) if base.scheme == "https" else None
        self._authority = base.host_port_subcomponent or self._host  # the default Host
        self._prefix = base.raw_path.rstrip("/")
        self._clock = clock
        self._most_idle = keepalive_connections  # `upstream.keepalive_connections`
        self._idle: deque[tuple[UpstreamProtocol, float]] = deque()  # newest on the right
        self._in_use = 0
        self._closed = False
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def in_use(self) -> int:
        """Connections handed out and not yet given back (tests check none are leaked)."""
        return self._in_use

    async def request(
        self, method: str, path_qs: str, headers: Mapping[str, str],
        body: RequestBody | None = None,
    ) -> UpstreamAnswer:
        """Send a request; the answer once its head has arrived.

        Raises ClientBodyError when the client's body fails before the answer begins, and
        aiohttp.ClientError or OSError when the upstream cannot be reached or breaks the
        exchange, like the ClientSession it stands in for."""
        head = _request_head(method, self._prefix + path_qs, headers, self._authority, body)
        protocol = self._idle_connection()
        reused = protocol is not None
        if protocol is None:
            protocol = await self._connect()
        try:
            answer = await self._exchange(protocol, method, head, body)
            if not (reused and answer.status == 408):
                return answer
            # A 408 on a connection that sat idle is the app timing that connection out,
            # not an answer to this request (browsers and Go's client read it so too).
            answer.retire()
            raise aiohttp.ServerDisconnectedError()
        except aiohttp.ClientConnectionError:
            if not (reused and body is None and method in _IDEMPOTENT):
                raise
        # The upstream closed (or reset, or spoke garbage on) a kept-alive connection as we
        # sent on it: once more, on a new connection (what aiohttp's ClientSession and
        # browsers do too). Never with a body: it has been read from the client and cannot be
        # sent again.
        protocol = await self._connect()
        return await self._exchange(protocol, method, head, None)

    def put_back(self, protocol: UpstreamProtocol, *, reusable: bool = True) -> None:
        """Keep the connection for the next request, or close it (see the module doc)."""
        self._in_use -= 1
        if (not reusable or self._closed or protocol.should_close or protocol.tainted
                or not protocol.is_connected() or _leftover(protocol)
                or len(self._idle) >= self._most_idle):
            protocol.close()
            return
        protocol.idle = True
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
        self, protocol: UpstreamProtocol, method: str, head: bytes, body: RequestBody | None
    ) -> UpstreamAnswer:
        """One request on one connection; the connection is closed unless an answer is
        handed out (which then owns it)."""
        self._in_use += 1
        sender: asyncio.Task[None] | None = None
        try:
            protocol.idle = False
            protocol.head_only, protocol._carry = method == "HEAD", b""
            protocol.set_response_params(
                skip_payload=method == "HEAD", read_until_eof=True, auto_decompress=False
            )
            transport = protocol.transport
            assert transport is not None  # noqa: S101 - checked when taken
            transport.write(head)
            if body is None:
                message, payload = await protocol.read()
                if not 200 <= message.code <= 599 or "Transfer-Encoding" in message.headers:
                    message, payload = await _answer_head(protocol, (message, payload))
            else:
                sender = asyncio.ensure_future(_send_body(protocol, body))
                sender.add_done_callback(_retrieve)
                message, payload = await _answer_head_while_sending(protocol, sender)
        except BaseException as exc:
            self._in_use -= 1
            if sender is not None:
                sender.cancel()
            protocol.close()
            if isinstance(exc, HttpProcessingError):
                raise aiohttp.ClientConnectionError("the answer is not valid HTTP") from None
            if isinstance(exc, EofStream):
                raise aiohttp.ServerDisconnectedError() from None
            raise
        return UpstreamAnswer(
            self, protocol, message.code, message.reason, message.headers, payload, sender
        )

    def _idle_connection(self) -> UpstreamProtocol | None:
        """The newest idle connection still open, young enough and quiet, if any."""
        self._expire_idle()
        while self._idle:
            protocol, _ = self._idle.pop()
            if protocol.is_connected() and not protocol.tainted and _is_quiet(protocol):
                return protocol
            protocol.close()
        return None

    async def _connect(self) -> UpstreamProtocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: UpstreamProtocol(loop), self._host, self._port, ssl=self._tls,
            server_hostname=self._host if self._tls is not None else None,
        )
        return protocol


Head = tuple[RawResponseMessage, StreamReader]


async def _answer_head(protocol: UpstreamProtocol, first: Head | None = None) -> Head:
    """The real answer's head (`first`: the head read already, if any): 1xx answers (103
    Early Hints, 100 Continue) are skipped. An answer no request of ours can have (a status
    outside 100-599, a 101 when no upgrade was asked for, a transfer coding other than
    chunked alone, which would be dropped on the way) is not relayed: the exchange fails as
    not valid HTTP."""
    message, payload = first if first is not None else await protocol.read()
    while (code := message.code) < 200 or code > 599:
        if code == 101 or code < 100 or code > 599:
            raise HttpProcessingError(message=f"status {code} answers no request of ours")
        message, payload = await protocol.read()
    codings = message.headers.getall("Transfer-Encoding", ())
    if codings and (len(codings) > 1 or codings[0].strip().lower() != "chunked"):
        raise HttpProcessingError(message="a transfer coding the gateway cannot relay")
    return message, payload


async def _answer_head_while_sending(
    protocol: UpstreamProtocol, sender: asyncio.Task[None]
) -> Head:
    """Wait for the answer while the body goes out; a client whose body fails first ends
    the exchange (400), an upstream that stops reading may still answer (413, say)."""
    reading = asyncio.ensure_future(_answer_head(protocol))
    try:
        done, _ = await asyncio.wait((reading, sender), return_when=asyncio.FIRST_COMPLETED)
        if reading not in done and isinstance(sender.exception(), ClientBodyError):
            raise ClientBodyError() from sender.exception()
        return await reading
    finally:
        if not reading.done():
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading


async def _send_body(protocol: UpstreamProtocol, body: RequestBody) -> None:
    """Relay the client's body with the framing it came with: exactly `length` bytes, or
    each piece as one chunk the moment it arrives (no delay, no merging)."""
    transport = protocol.transport
    assert transport is not None  # noqa: S101 - the exchange has just written on it
    sent = 0
    while True:
        try:
            piece = await body.source.readany()
        except Exception as exc:
            raise ClientBodyError(type(exc).__name__) from exc
        if not piece:
            break
        body.progress()
        sent += len(piece)
        if body.length is None:
            transport.writelines((b"%x\r\n" % len(piece), piece, b"\r\n"))
        elif sent <= body.length:
            transport.write(piece)
        if transport.is_closing():
            raise aiohttp.ClientConnectionResetError("the upstream closed while the body went out")
        await protocol._drain_helper()  # aiohttp's write flow control
    if body.length is None:
        transport.write(b"0\r\n\r\n")
    elif sent != body.length:
        raise ClientBodyError(f"{sent} body bytes where {body.length} were announced")


def _leftover(protocol: UpstreamProtocol) -> bool:
    """Whether bytes beyond the answer arrived with it (the start of an answer nobody
    asked for): asking the spent parser to finish reveals a message it has begun."""
    parser = protocol._parser  # aiohttp's own parser for this connection
    if parser is None:
        return False
    try:
        return parser.feed_eof() is not None
    except Exception:  # noqa: BLE001 - a half-parsed message that cannot finish
        return True


def _is_quiet(protocol: UpstreamProtocol) -> bool:
    """Nothing waiting in the socket that the loop has not delivered yet (a stray answer
    sent just now, or the upstream's FIN): one zero-timeout poll, before every reuse."""
    poller = protocol.poller
    return poller is not None and not poller.poll(0)  # readable, closed or failed: not quiet


def _request_head(
    method: str, target: str, headers: Mapping[str, str], authority: str,
    body: RequestBody | None,
) -> bytes:
    """The request line and headers, as one buffer for one write; the framing headers are
    written from what will be sent, never copied from the client."""
    lines = [f"{method} {target} HTTP/1.1"]
    if "Host" not in headers:
        lines.append(f"Host: {authority}")
    lines.extend(map(": ".join, _without_framing(headers)))  # `name: value`, built in C
    if body is not None:
        lines.append(
            "Transfer-Encoding: chunked" if body.length is None
            else f"Content-Length: {body.length}"
        )
    elif method not in _BODYLESS or "Content-Length" in headers:
        lines.append("Content-Length: 0")
    text = "\r\n".join(lines) + "\r\n\r\n"
    # A CR or LF inside any name or value would start a header of its own (splitting).
    if text.count("\n") != len(lines) + 1 or text.count("\r") != len(lines) + 1:
        raise BadRequestError("a header holds a line break")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequestError("a header is not valid UTF-8") from None


def _without_framing(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    """The headers without any the client sent about framing (a CIMultiDict looks names up
    in any case, so the common case is one check)."""
    if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        return headers.items()
    return [(k, v) for k, v in headers.items() if k.lower() not in _FRAMING]
