"""A real in-process upstream app that records what reached it (tests only)."""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body_size: int


@dataclass
class UpstreamState:
    """What the upstream saw, and knobs the tests turn."""

    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends /hang and /sse
    sse_first_sent: asyncio.Event = field(default_factory=asyncio.Event)
    ws_closed: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)

    def last(self) -> Seen:
        assert self.seen, "the upstream received no request"
        return self.seen[-1]

    def header(self, name: str) -> list[str]:
        """Every value of a header (exact name, case-insensitive) in the last request."""
        return [v for k, v in self.last().headers if k.lower() == name.lower()]


STATE = web.AppKey("state", UpstreamState)


async def echo(request: web.Request) -> web.StreamResponse:
    """Records the request; answers JSON describing it."""
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
    seen = Seen(request.method, request.raw_path, list(request.headers.items()), size)
    request.app[STATE].seen.append(seen)
    return web.json_response(
        {"method": seen.method, "raw_path": seen.raw_path, "headers": seen.headers,
         "body_size": size}
    )


async def cookies(request: web.Request) -> web.StreamResponse:
    response = web.Response(text="cookies")
    response.headers.add("Set-Cookie", "a=1; Path=/")
    response.headers.add("Set-Cookie", "b=2; Path=/; HttpOnly")
    response.headers.add("Set-Cookie", "c=3; Path=/; SameSite=Lax")
    return response


async def gzipped(request: web.Request) -> web.StreamResponse:
    body = gzip.compress(b"hello " * 100)
    return web.Response(body=body, headers={"Content-Encoding": "gzip",
                                            "Content-Type": "text/plain"})


async def sse(request: web.Request) -> web.StreamResponse:
    """First event at once; the last only after the test says so."""
    state = request.app[STATE]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    await response.write(b"data: first\n\n")
    state.sse_first_sent.set()
    await state.release.wait()
    await response.write(b"data: last\n\n")
    await response.write_eof()
    return response


async def hang(request: web.Request) -> web.StreamResponse:
    await request.app[STATE].release.wait()
    return web.Response(text="late")


async def download(request: web.Request) -> web.StreamResponse:
    size = int(request.query.get("size", "1048576"))
    response = web.StreamResponse(headers={"Content-Length": str(size)})
    await response.prepare(request)
    block = b"x" * 65536
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        await response.write(piece)
        sent += len(piece)
    await response.write_eof()
    return response


async def websocket(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=("chat",))
    await ws.prepare(request)
    request.app[STATE].seen.append(Seen("WS", request.raw_path, list(request.headers.items()), 0))
    await ws.send_str("hello " + request.headers.get("X-User-Email", "anonymous"))
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            if message.data == "close-4001":
                await ws.close(code=4001, message=b"bye")
                break
            await ws.send_str("echo: " + message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    request.app[STATE].ws_closed.put_nowait(ws.close_code)
    return ws


async def status(request: web.Request) -> web.StreamResponse:
    code = int(request.match_info["code"])
    return web.Response(status=code, text=json.dumps({"status": code}))


def build_upstream(state: UpstreamState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/cookies", cookies)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/sse", sse)
    app.router.add_get("/hang", hang)
    app.router.add_get("/download", download)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/status/{code}", status)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app
