"""A raw HTTP/1.1 upstream whose every answer is scripted, and that keeps every byte it got.

aiohttp's server would neither answer twice, nor answer before reading a body, nor put a
control character in a header; a relay has to survive an upstream that does. This one
speaks HTTP/1.1 by hand on asyncio streams, records per connection the exact head and body
bytes of every request it parsed (so tests can compare byte for byte and tell a reused
connection from a fresh one), and answers each request the way its script says.

A request's behaviour is, in order: `choose(request)` when set, `script[path]`, the last
path segment when it names a behaviour, else "echo". The echo answer names the request's
`X-User-Id`, so a test can tell whose answer a client got.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pytest_aiohttp import AiohttpServer

from bench.soak import GatewayProcess, gateway_config
from gateway.standin import OryStandin

BEHAVIOURS = frozenset({
    "echo",  # read the body by its framing, answer 200 with Content-Length, stay open
    "early",  # answer before reading the body, then drain the body by its framing
    "twice",  # answer, then a second complete answer naming `stray_user`
    "stray-idle",  # answer, then a 408 naming `stray_user` some ms later, stay open
    "close-mid",  # head promising 100 bytes, 10 of them, then close
    "obs-text",  # a header value with latin-1 bytes (r\xe9sum\xe9)
    "ctl-char",  # a header value with \x01 in it
    "close-delimited",  # no Content-Length, no chunked: the body ends when the socket does
    "chunked",  # a chunked answer in three chunks
    "gzip",  # a gzip body with Content-Encoding: gzip and its Content-Length
    "trickle",  # chunked: the first chunk, then the rest once `release` is set
})
# A request with `Upgrade: websocket` is accepted and every message echoed back whole;
# the message FLOOD gets a frame announcing 600 MiB back instead, HANG_UP ends the
# connection without a close frame and CLOSE_WITH + b"<code>" closes with that code.
OBS_TEXT = b"r\xe9sum\xe9"
CHUNKS = (b"first-", b"second-", b"third")
GZIP_BODY = gzip.compress(b"compressed answer " * 64, mtime=0)
CLOSE_DELIMITED_BODY = b"close-delimited answer, " * 40
STRAY_DELAY = 0.05  # seconds between an answer and the stray 408 (an upstream's own pace)
CROSSING_GRACE = 0.03  # a request this soon after a stray may have crossed it on the wire
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MIB = 1024 * 1024
FLOOD = b"flood"  # a WebSocket message asking for a giant frame back
HANG_UP = b"hang up"
CLOSE_WITH = b"close with "


@dataclass
class Received:
    """One request as the upstream parsed it: exact head bytes and body bytes."""

    conn: int  # 1-based connection number
    seq: int  # 1-based request number across all connections
    head: bytes
    body: bytes = b""  # as on the wire (chunk framing included)
    decoded: bytes = b""  # after de-chunking
    complete: bool = False  # the body was read to the end of its framing

    @property
    def is_request(self) -> bool:
        parts = self.head.split(b"\r\n", 1)[0].split(b" ")
        return len(parts) == 3 and parts[2].startswith(b"HTTP/1.")

    @property
    def method(self) -> str:
        return self.head.split(b" ", 1)[0].decode("latin-1")

    @property
    def path(self) -> str:
        parts = self.head.split(b"\r\n", 1)[0].split(b" ")
        return parts[1].decode("latin-1").split("?", 1)[0] if len(parts) > 1 else ""

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        lines = self.head.rstrip(b"\r\n").split(b"\r\n")[1:]
        return [(k.strip(), v.strip()) for k, _, v in (line.partition(b":") for line in lines)]

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.headers if k.lower() == wanted]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


Chooser = Callable[[Received], str]


@dataclass
class Stray:
    """An answer nobody asked for. `crossed`: a request reached this connection so soon after
    it that the two may have passed each other on the wire, where no proxy could tell the
    stray from that request's answer (an upstream's fault, not the relay's)."""

    id: int
    conn: int
    user: str
    sent_at: float
    crossed: bool = False


@dataclass
class ScriptedUpstream:
    """`async with ScriptedUpstream() as up:` binds 127.0.0.1 on a free port."""

    script: dict[str, str] = field(default_factory=dict)
    choose: Chooser | None = None
    stray_user: str = "stray"
    stray_for: Callable[[Received], str] | None = None  # whom a stray answer names
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends a "trickle" answer
    ws_sizes: list[int] = field(default_factory=list)  # sizes of WebSocket messages received
    ws_closes: list[int | None] = field(default_factory=list)  # close codes received
    flooded: int = 0  # bytes of the giant frame a FLOOD message got sent back
    strays: list[Stray] = field(default_factory=list)
    stray_delay: float = STRAY_DELAY
    connections: list[list[Received]] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)  # connection numbers that have ended
    port: int = 0
    _count: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        return sorted((r for conn in self.connections for r in conn), key=lambda r: r.seq)

    @property
    def requests(self) -> list[Received]:
        """Everything that parsed as a request line (garbage left out)."""
        return [r for r in self.received if r.is_request]

    async def __aenter__(self) -> ScriptedUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()

    async def wait_for(self, predicate: Callable[[], bool], *, within: float = 5.0) -> None:
        """Until `predicate()` holds for what has arrived (re-checked on every arrival)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def ended(self, conn: int, *, within: float = 5.0) -> bool:
        """Whether connection `conn` ends within `within` seconds."""
        try:
            await self.wait_for(lambda: conn in self.closed, within=within)
        except TimeoutError:
            return False
        return True

    async def _note(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append([])
        conn = len(self.connections)
        self._writers.add(writer)
        await self._note()
        try:
            while await self._exchange(conn, reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.closed.add(conn)
            self._writers.discard(writer)
            writer.transport.abort()
            await self._note()

    async def _exchange(
        self, conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        self._count += 1
        request = Received(conn, self._count, head)
        self.connections[conn - 1].append(request)
        self._mark_crossings(conn)
        await self._note()
        if not request.is_request:
            return False
        if (request.header("Upgrade") or "").lower() == "websocket":
            await self._websocket(request, reader, writer)
            return False
        behaviour = self._behaviour(request)
        if (request.header("Expect") or "").lower() == "100-continue" and behaviour != "early":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # as servers do (RFC 9110 §10.1.1)
        if behaviour == "early":  # as servers do for a handler that never reads the body
            writer.write(echo(request))
            await writer.drain()
        await read_body(reader, request)
        await self._note()
        if behaviour == "early":
            return True
        if behaviour == "trickle":
            await self._trickle(writer)
            return True
        answer = ANSWERS.get(behaviour)
        if answer is not None:
            writer.write(answer(self, request))
            await writer.drain()
            return behaviour not in ("close-mid", "close-delimited")
        if behaviour == "twice":  # one write: the two answers arrive together
            stray = self._stray(conn, request)
            writer.write(echo(request) + stray_answer(stray, 200))
            await writer.drain()
            await self._note()
            return True
        writer.write(echo(request))
        await writer.drain()
        if behaviour == "stray-idle":
            task = asyncio.create_task(self._stray_later(conn, request, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def _behaviour(self, request: Received) -> str:
        if self.choose is not None:
            return self.choose(request)
        if request.path in self.script:
            return self.script[request.path]
        last = request.path.rsplit("/", 1)[-1]
        return last if last in BEHAVIOURS else "echo"

    async def _trickle(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(CHUNKS[0]))
        await writer.drain()
        await self.release.wait()
        writer.write(b"".join(chunk(part) for part in CHUNKS[1:]) + b"0\r\n\r\n")
        await writer.drain()

    def _stray(self, conn: int, request: Received) -> Stray:
        user = self.stray_for(request) if self.stray_for is not None else self.stray_user
        loop = asyncio.get_running_loop()
        stray = Stray(len(self.strays) + 1, conn, user, loop.time())
        self.strays.append(stray)
        return stray

    def _mark_crossings(self, conn: int) -> None:
        now = asyncio.get_running_loop().time()
        for stray in self.strays:
            if stray.conn == conn and now - stray.sent_at < CROSSING_GRACE:
                stray.crossed = True

    async def _stray_later(
        self, conn: int, request: Received, writer: asyncio.StreamWriter
    ) -> None:
        """A 408 some ms after the answer, only while the connection is still idle."""
        heads = len(self.connections[conn - 1])
        await asyncio.sleep(self.stray_delay)  # the misbehaviour itself: bytes on an idle socket
        if len(self.connections[conn - 1]) != heads or conn in self.closed:
            return
        with contextlib.suppress(ConnectionError):
            writer.write(stray_answer(self._stray(conn, request), 408))
            await writer.drain()
        await self._note()

    async def _websocket(
        self, request: Received, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Accept the upgrade, then echo every message back whole, noting its size."""
        key = (request.header("Sec-WebSocket-Key") or "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())  # noqa: S324 (RFC 6455)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept)
        message, kind = bytearray(), 0
        while True:
            fin, opcode, payload = await read_ws_frame(reader)
            if opcode == 8:
                self.ws_closes.append(int.from_bytes(payload[:2], "big") if payload else None)
                await self._note()
                writer.write(ws_frame(8, payload[:2], masked=False))
                await writer.drain()
                return
            if opcode in (9, 10):
                continue
            kind = opcode or kind
            message += payload
            if fin:
                self.ws_sizes.append(len(message))
                await self._note()
                if message == FLOOD:
                    await self._flood(writer)
                    return
                if message == HANG_UP:
                    return  # no close frame: the connection just ends
                if message.startswith(CLOSE_WITH):
                    code = int(message[len(CLOSE_WITH):])
                    writer.write(ws_frame(8, code.to_bytes(2, "big"), masked=False))
                    await writer.drain()
                    return
                writer.write(ws_frame(kind, bytes(message), masked=False))
                await writer.drain()
                message = bytearray()

    async def _flood(self, writer: asyncio.StreamWriter) -> None:
        """One frame announcing 600 MiB, then 1 MiB blocks of it until the socket breaks or
        100 MiB have gone."""
        writer.write(ws_frame_header(2, 600 * MIB, masked=False))
        block = b"f" * MIB
        with contextlib.suppress(ConnectionError):
            for _ in range(100):
                writer.write(block)
                await writer.drain()
                self.flooded += len(block)


async def read_body(reader: asyncio.StreamReader, request: Received) -> None:
    """Read the body the head frames (Content-Length, chunked, or none), keeping its bytes."""
    encoding = (request.header("Transfer-Encoding") or "").lower()
    if "chunked" in encoding:
        raw, decoded = bytearray(), bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            data = await reader.readexactly(size + 2)
            raw += data
            decoded += data[:-2]
        while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
            raw += trailer
        raw += b"\r\n"
        request.body, request.decoded = bytes(raw), bytes(decoded)
    elif (length := request.header("Content-Length")) is not None:
        request.body = await reader.readexactly(int(length))
        request.decoded = request.body
    request.complete = True


def echo(request: Received) -> bytes:
    """200 naming the request's X-User-Id, its connection and what its body was (for HEAD
    only the head, RFC 9110 §9.3.2)."""
    body = json.dumps({
        "user": request.header("X-User-Id") or "", "conn": request.conn, "seq": request.seq,
        "path": request.path, "size": len(request.decoded),
    }).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
        len(body))
    return head if request.method == "HEAD" else head + body


def stray_answer(stray: Stray, status: int) -> bytes:
    """An answer nobody asked for, naming `stray.user` (another client's identity, say)."""
    body = json.dumps({"user": stray.user, "stray": stray.id}).encode()
    reason = b"Request Timeout" if status == 408 else b"OK"
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        status, reason, len(body), body
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    """One WebSocket frame; a client's is masked, with the all-zero key so the payload bytes
    stay as they are (any key is valid, RFC 6455 §5.3)."""
    return ws_frame_header(opcode, len(payload), fin=fin, masked=masked) + payload


def ws_frame_header(opcode: int, length: int, *, fin: bool = True, masked: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = bytes([first, mask_bit | length])
    elif length < 65536:
        head = bytes([first, mask_bit | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([first, mask_bit | 127]) + length.to_bytes(8, "big")
    return head + (b"\0\0\0\0" if masked else b"")


async def read_ws_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of the next frame."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if second & 0x80 else b""
    payload = await reader.readexactly(length)
    if mask and mask != b"\0\0\0\0" and payload:
        key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
        payload = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
    return bool(first & 0x80), first & 0x0F, payload


def _plain(extra: bytes, body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), body)


def _chunked(body_parts: tuple[bytes, ...]) -> bytes:
    chunks = b"".join(chunk(part) for part in body_parts)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


Answer = Callable[[ScriptedUpstream, Received], bytes]
ANSWERS: dict[str, Answer] = {
    "close-mid": lambda up, r: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10,
    "obs-text": lambda up, r: _plain(b"X-Title: " + OBS_TEXT + b"\r\n"),
    "ctl-char": lambda up, r: _plain(b"X-Bad: a\x01b\r\n"),
    "close-delimited": lambda up, r: (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + CLOSE_DELIMITED_BODY
    ),
    "chunked": lambda up, r: _chunked(CHUNKS),
    "gzip": lambda up, r: _plain(
        b"Content-Type: text/plain\r\nContent-Encoding: gzip\r\n", GZIP_BODY
    ),
}

# --- the gateway as a process in front of it -------------------------------------------------

ROUTES = """
[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/private/**"
access = "authenticated"

[[routes]]
path = "/internal/**"
access = "deny"
"""


@dataclass
class ScriptedStack:
    """The gateway process, the Ory stand-in and the scripted upstream behind it."""

    gateway: GatewayProcess
    ory: OryStandin
    upstream: ScriptedUpstream

    @property
    def port(self) -> int:
        return self.gateway.port

    def login(self, email: str) -> tuple[str, str]:
        """(identity id, session cookie value) of a fresh identity."""
        identity = self.ory.add_identity(email, password="pw")
        return identity, self.ory.create_session(identity).cookie_value


@asynccontextmanager
async def scripted_stack(
    aiohttp_server: AiohttpServer, *, server: str = "", upstream: str = "",
    upstream_timeout: str = "5s",
) -> AsyncIterator[ScriptedStack]:
    """`/public/**` public, `/private/**` authenticated and `/internal/**` denied, in front
    of a ScriptedUpstream; extra TOML lines for `[server]` and `[upstream]`."""
    ory = OryStandin()
    ory_server = await aiohttp_server(ory.build_app())
    ory_url = str(ory_server.make_url("")).rstrip("/")
    async with ScriptedUpstream() as scripted:
        text = gateway_config(ory_url, scripted.url, cache_ttl="1h", server=server,
                              upstream=upstream, upstream_timeout=upstream_timeout,
                              routes=ROUTES)
        async with GatewayProcess(text) as gateway:
            ory.allow_return_to(gateway.origin)
            yield ScriptedStack(gateway, ory, scripted)

