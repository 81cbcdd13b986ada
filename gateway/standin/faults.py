"""Switches that make whoami misbehave like a sick Ory or its edge, and how each one looks."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .errors import envelope
from .responses import JSON_SUCCESS, json_error

_EDGE_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_GARBAGE = b"<html><body><h1>Not JSON</h1><p>An edge page instead of JSON.</p></body></html>"
_TRUNCATED_PREFIX = b'{"id":"'
_TRUNCATED_CLAIMED_LENGTH = 4096


class Faults:
    """Read by the whoami handler on every call (latency: by every endpoint)."""

    def __init__(self) -> None:
        self.whoami_status: int | None = None
        self.garbage = False
        self.truncate = False
        self.hang = False
        self.latency = 0.0
        self.ready_status: int | None = None
        self.hanging = 0
        self._released = asyncio.Event()
        self._hang_started = asyncio.Event()

    def release(self) -> None:
        """End every hang in progress and stop hanging new calls."""
        self.hang = False
        self._released.set()
        self._released = asyncio.Event()

    def reset(self) -> None:
        self.release()
        self.whoami_status = None
        self.garbage = False
        self.truncate = False
        self.latency = 0.0
        self.ready_status = None

    async def wait_hanging(self, count: int = 1) -> None:
        """Return once `count` calls are hanging, so tests need no sleeps."""
        while self.hanging < count:
            await self._hang_started.wait()

    async def hold(self) -> None:
        """Block the calling handler until `release()`; counted in `hanging` meanwhile."""
        released = self._released
        self.hanging += 1
        started, self._hang_started = self._hang_started, asyncio.Event()
        started.set()
        try:
            await released.wait()
        finally:
            self.hanging -= 1


def status_response(status: int) -> web.Response:
    """A failing answer: the edge's HTML for 502, rate-limit headers for 429, JSON otherwise."""
    if status == 502:
        return web.Response(
            status=502, body=_EDGE_502, headers={"Content-Type": "text/html; charset=utf-8"}
        )
    headers = {}
    if status == 429:
        headers = {
            "x-ratelimit-limit": "10, 10;w=1, 300;w=60",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "1",
        }
    return json_error(envelope(status), headers=headers)


def garbage_response() -> web.Response:
    """200 that claims JSON and is not."""
    return web.Response(status=200, body=_GARBAGE, headers={"Content-Type": JSON_SUCCESS})


async def truncated_response(request: web.Request) -> web.StreamResponse:
    """200 whose Content-Length promises more than arrives before the connection closes."""
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON_SUCCESS})
    response.content_length = _TRUNCATED_CLAIMED_LENGTH
    response.force_close()
    await response.prepare(request)
    await response.write(_TRUNCATED_PREFIX)
    return response
