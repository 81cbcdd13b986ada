"""A tiny HTTP/1.1 upstream for the benchmark: every request gets the same 200 answer.

    python bench/upstream_server.py --port 3000 [--body-size 1024]

Raw asyncio (uvloop when installed), keep-alive and pipelining, no routing, no parsing
beyond finding where a request ends, so that the app behind the proxy under test is never
the bottleneck. `bench/run.py` uses nginx instead when it is installed (`--upstream`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import cast

_END = b"\r\n\r\n"


def answer(body_size: int) -> bytes:
    body = (b"ok " * (body_size // 3 + 1))[:body_size]
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode("ascii")
    return head + body


class FixedAnswer(asyncio.Protocol):
    """Answers each complete request head (plus its Content-Length body) with `reply`."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply
        self._buffer = b""
        self._skip = 0  # request-body bytes still to discard
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        answers = 0
        while True:
            if self._skip:
                taken = min(self._skip, len(buffer))
                buffer = buffer[taken:]
                self._skip -= taken
                if self._skip:
                    break
            end = buffer.find(_END)
            if end < 0:
                break
            head = buffer[:end]
            buffer = buffer[end + 4:]
            answers += 1
            self._skip = _content_length(head)
        self._buffer = buffer
        if answers and self._transport is not None:
            self._transport.write(self._reply * answers)


def _content_length(head: bytes) -> int:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    value = lower[at + 17:].split(b"\r\n", 1)[0].strip()
    return int(value) if value.isdigit() else 0


async def serve(host: str, port: int, body_size: int) -> None:
    reply = answer(body_size)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FixedAnswer(reply), host, port, backlog=1024)
    print(f"upstream listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-size", type=int, default=1024)
    args = parser.parse_args()
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.host, args.port, args.body_size))


if __name__ == "__main__":
    main()
