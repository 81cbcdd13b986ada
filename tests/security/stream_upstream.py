"""An upstream that tells the test how a stream ended: uploads it reads and downloads it
writes (bounded), and a long poll that never answers by itself."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

BLOCK = b"d" * 65536
DOWNLOAD_CAP = 256 * 1024 * 1024  # an endless download still ends, at 256 MiB


@dataclass
class StreamLog:
    """Events and outcomes, in the order the upstream saw them."""

    upload_started: asyncio.Event = field(default_factory=asyncio.Event)
    download_started: asyncio.Event = field(default_factory=asyncio.Event)
    poll_started: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Queue[tuple[str, int]] = field(default_factory=asyncio.Queue)
    release: asyncio.Event = field(default_factory=asyncio.Event)


LOG = web.AppKey("log", StreamLog)


async def upload(request: web.Request) -> web.StreamResponse:
    log = request.app[LOG]
    received = 0
    try:
        while chunk := await request.content.readany():
            received += len(chunk)
            log.upload_started.set()
    except (asyncio.CancelledError, ConnectionError, OSError, aiohttp.ClientPayloadError) as exc:
        # aiohttp cancels a handler whose connection is lost; either way the upload broke.
        log.ended.put_nowait((f"upload broken: {type(exc).__name__}", received))
        raise
    complete = request.content_length is None or received == request.content_length
    log.ended.put_nowait(("upload complete" if complete else "upload short", received))
    return web.Response(text=str(received))


async def download(request: web.Request) -> web.StreamResponse:
    log = request.app[LOG]
    response = web.StreamResponse()
    await response.prepare(request)
    sent = 0
    try:
        while sent < DOWNLOAD_CAP:
            await response.write(BLOCK)
            sent += len(BLOCK)
            log.download_started.set()
    except (asyncio.CancelledError, ConnectionError, OSError) as exc:
        log.ended.put_nowait((f"download broken: {type(exc).__name__}", sent))
        raise
    log.ended.put_nowait(("download complete", sent))
    await response.write_eof()
    return response


async def long_poll(request: web.Request) -> web.StreamResponse:
    """Headers at once, then nothing until released (an idle SSE stream, a long poll)."""
    log = request.app[LOG]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b": open\n\n")
    log.poll_started.set()
    try:
        await log.release.wait()
        await response.write(b"data: late\n\n")
    except (asyncio.CancelledError, ConnectionError, OSError) as exc:
        log.ended.put_nowait((f"poll broken: {type(exc).__name__}", 0))
        raise
    log.ended.put_nowait(("poll complete", 0))
    return response


def build_stream_upstream(log: StreamLog) -> web.Application:
    app = web.Application(client_max_size=0)
    app[LOG] = log
    app.router.add_post("/{tail:.*}/upload", upload)
    app.router.add_get("/{tail:.*}/download", download)
    app.router.add_get("/{tail:.*}/poll", long_poll)
    app.router.add_get("/{tail:.*}/ok", ok)
    return app


async def ok(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")
