"""A client that speaks HTTP/1.1 to the gateway byte for byte, on a connection it keeps.

tests/rawhttp.py sends one request with `Connection: close` and reads to the end; these
tests need more: several answers on one kept-alive socket, 1xx interim answers, chunked and
close-delimited bodies told apart, and knowing whether (and when) the gateway closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from tests.security.scripted_upstream import read_ws_frame

SESSION_COOKIE = "ory_kratos_session"
API = "Accept: application/json"
BROWSER = "Accept: text/html,application/xhtml+xml,*/*;q=0.8"


def cookie(value: str) -> str:
    return f"Cookie: {SESSION_COOKIE}={value}"


def request(
    method: str, target: str, *headers: str, body: bytes = b"", version: str = "HTTP/1.1"
) -> bytes:
    """Request bytes; a `Content-Length` for `body` is added unless the headers already
    frame the body (or announce more of it than is sent)."""
    lines = [f"{method} {target} {version}", "Host: 127.0.0.1", *headers]
    framed = any(h.lower().startswith(("content-length:", "transfer-encoding:")) for h in headers)
    if body and not framed:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def ws_upgrade(target: str, *headers: str) -> bytes:
    """A WebSocket handshake (RFC 6455 §4.1) without Origin, as a non-browser client sends it."""
    return request("GET", target, "Upgrade: websocket", "Connection: Upgrade",
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                   *headers)


@dataclass
class Answer:
    """One answer as it came off the wire."""

    status: int
    head: bytes
    raw_body: bytes  # as on the wire, chunk framing included
    body: bytes  # de-chunked
    framing: str  # "length", "chunked", "close", "none", or "cut" (ended short of its framing)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        lines = self.head.rstrip(b"\r\n").split(b"\r\n")[1:]
        return [(k.strip(), v.strip()) for k, _, v in (line.partition(b":") for line in lines)]

    def raw_header(self, name: str) -> bytes | None:
        wanted = name.lower().encode()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def header(self, name: str) -> str | None:
        value = self.raw_header(name)
        return None if value is None else value.decode("latin-1")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def user(self) -> str | None:
        """The identity a scripted upstream's answer names, if it is one of its answers."""
        try:
            data = self.json()
        except ValueError:
            return None
        return data.get("user") if isinstance(data, dict) else None

    @property
    def stray(self) -> int | None:
        """The id of the scripted upstream's stray answer this is, if it is one."""
        try:
            data = self.json()
        except ValueError:
            return None
        return data.get("stray") if isinstance(data, dict) else None


class RawClient:
    """`async with RawClient(port) as c:`; every read is bounded by `within` seconds."""

    def __init__(self, port: int, *, within: float = 5.0) -> None:
        self.port = port
        self.within = within
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        async with asyncio.timeout(self.within):
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.transport.abort()

    @property
    def reader(self) -> asyncio.StreamReader:
        assert self._reader is not None, "not connected"
        return self._reader

    async def send(self, data: bytes) -> None:
        assert self._writer is not None, "not connected"
        self._writer.write(data)
        await self._writer.drain()

    async def answer(self, *, method: str = "GET") -> Answer | None:
        """The next answer (a 1xx is an answer of its own); None when the gateway closed
        the connection before sending a byte of it."""
        async with asyncio.timeout(self.within):
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionResetError):
                return None
            status = int(head.split(b" ", 2)[1])
            probe = Answer(status, head, b"", b"", "none")
            if status < 200 or status in (204, 304) or method == "HEAD":
                return probe
            try:
                return await self._body(probe)
            except (asyncio.IncompleteReadError, ConnectionResetError) as cut:
                partial = cut.partial if isinstance(cut, asyncio.IncompleteReadError) else b""
                return Answer(status, head, partial, partial, "cut")

    async def _body(self, probe: Answer) -> Answer:
        status, head = probe.status, probe.head
        if "chunked" in (probe.header("Transfer-Encoding") or "").lower():
            raw, body = await self._chunked()
            return Answer(status, head, raw, body, "chunked")
        length = probe.header("Content-Length")
        if length is not None:
            body = await self.reader.readexactly(int(length))
            return Answer(status, head, body, body, "length")
        body = await self.reader.read()
        return Answer(status, head, body, body, "close")

    async def final_answer(self, *, method: str = "GET") -> Answer | None:
        """The next answer that is not 1xx."""
        while (got := await self.answer(method=method)) is not None and got.status < 200:
            pass
        return got

    async def _chunked(self) -> tuple[bytes, bytes]:
        raw, body = bytearray(), bytearray()
        while True:
            line = await self.reader.readuntil(b"\r\n")
            raw += line
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            data = await self.reader.readexactly(size + 2)
            raw += data
            body += data[:-2]
        while (trailer := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            raw += trailer
        return bytes(raw + b"\r\n"), bytes(body)

    async def ws_frame(self) -> tuple[bool, int, bytes]:
        """(fin, opcode, payload) of the next WebSocket frame."""
        async with asyncio.timeout(self.within):
            return await read_ws_frame(self.reader)

    async def collect(self, within: float) -> tuple[bytes, bool]:
        """Every byte that arrives within `within` seconds, and whether the gateway closed
        the connection in that time (reading stops there)."""
        data = bytearray()
        try:
            async with asyncio.timeout(within):
                with contextlib.suppress(ConnectionResetError):
                    while piece := await self.reader.read(65536):
                        data += piece
        except TimeoutError:
            return bytes(data), False
        return bytes(data), True

    async def close_code(self) -> int | None:
        """Read WebSocket frames until a close frame: its code (None: the connection ended
        first, or the close frame had no code). Bound it with a timeout."""
        data = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while piece := await self.reader.read(65536):
                data += piece
                for opcode, payload in ws_frames_in(bytes(data)):
                    if opcode == 8:
                        return int.from_bytes(payload[:2], "big") if payload else None
        return None


def ws_frames_in(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every complete, unmasked frame at the start of `data`."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 2 <= len(data):
        length, at = data[pos + 1] & 0x7F, pos + 2
        if length >= 126:
            size = 2 if length == 126 else 8
            if at + size > len(data):
                break
            length, at = int.from_bytes(data[at:at + size], "big"), at + size
        if at + length > len(data):
            break
        frames.append((data[pos] & 0x0F, data[at:at + length]))
        pos = at + length
    return frames


async def exchange(port: int, data: bytes, *, within: float = 5.0, method: str = "GET"
                   ) -> Answer | None:
    """`data` on a fresh connection; its final answer."""
    async with RawClient(port, within=within) as client:
        await client.send(data)
        return await client.final_answer(method=method)
