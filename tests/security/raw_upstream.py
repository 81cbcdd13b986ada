"""An upstream that misbehaves byte by byte: resets, closes early, stalls, lies.

aiohttp's server would not let a handler send half a response and a TCP reset, so this one
speaks just enough HTTP/1.1 itself. The last path segment picks the behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

BLOCK = b"x" * 65536
PROMISED = 1024 * 1024  # Content-Length the broken answers claim


class RawUpstream:
    """`await start()` binds 127.0.0.1 (optionally a given port); `stop()` unbinds."""

    def __init__(self) -> None:
        self.open_connections = 0
        self.requests: list[str] = []
        self.release = asyncio.Event()  # ends /slow-head and the pause in /trickle
        self.first_chunk_sent = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self._writers.add(writer)
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            writer.transport.abort()

    async def _one_exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode("latin-1")
        self.requests.append(path)
        await _skip_body(reader, head)
        behaviour = path.split("?")[0].rsplit("/", 1)[1]
        if behaviour == "close-before-answer":
            writer.close()
            return False
        if behaviour == "reset-before-answer":
            _reset(writer)
            return False
        if behaviour == "garbage":
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            await writer.drain()
            writer.close()
            return False
        if behaviour == "slow-head":
            await self.release.wait()
        if behaviour in ("reset-mid-body", "close-mid-body"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % PROMISED + BLOCK)
            await writer.drain()
            if behaviour == "reset-mid-body":
                _reset(writer)
            else:
                writer.close()
            return False
        if behaviour in ("chunked-cut", "trickle"):
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
            self.first_chunk_sent.set()
            if behaviour == "chunked-cut":
                writer.close()
                return False
            await self.release.wait()
            writer.write(b"4\r\nlast\r\n0\r\n\r\n")
            await writer.drain()
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return True


async def _skip_body(reader: asyncio.StreamReader, head: bytes) -> None:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value))
        elif name.strip().lower() == b"transfer-encoding":
            await reader.readuntil(b"0\r\n\r\n")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
