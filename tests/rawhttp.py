"""Send exact bytes to a server: aiohttp's client would normalise the paths we attack with."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


async def raw_request(port: int, head: bytes, *, within: float = 5.0) -> RawResponse:
    """Write `head` (request line + headers + blank line) and read the whole answer."""
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head)
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    header_block, _, body = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [tuple(line.split(": ", 1)) for line in lines[1:] if ": " in line]
    return RawResponse(status, [(k, v) for k, v in headers], body)


def get(target: str, *extra: str, host: str = "127.0.0.1") -> bytes:
    """A GET with `Connection: close` for `target`, sent byte for byte."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Connection: close", *extra, "", ""]
    return "\r\n".join(lines).encode("latin-1")
