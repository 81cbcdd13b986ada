"""Forward one request upstream and stream the answer back (contract §3.9).

Bodies stream both ways, unbuffered and unaltered: no decompression, no re-chunking that
delays a chunk. `upstream.timeout` bounds the wait for the answer's headers, counted from
the last request-body byte sent, so slow uploads and long-lived streams are not cut off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import NamedTuple

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.deadlines import Deadline, Watchdog
from gateway.errors import UpstreamTimeoutError, UpstreamUnavailableError
from gateway.headers import response_headers
from gateway.upstream import UpstreamAnswer, UpstreamPool

log = logging.getLogger("gateway.proxy")

CHUNK = 64 * 1024
Answer = aiohttp.ClientResponse | UpstreamAnswer  # the same head and body stream, either way
# aiohttp adds these when absent; a transparent proxy must not.
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_SKIPPED: CIMultiDict[None] = CIMultiDict((name, None) for name in SKIP_AUTO_HEADERS)


class AsSentRequest(aiohttp.ClientRequest):
    """The upstream ClientSession's request class: adds none of aiohttp's automatic headers
    (for plain requests and WebSocket handshakes alike). `skip_auto_headers` would do the
    same, but aiohttp rebuilds it into a new multidict on every request (~4 µs)."""

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        self._skip_auto_headers = _SKIPPED


def upstream_url(base: str, path_qs: str) -> URL:
    """The canonical path and raw query appended to the upstream base, byte for byte."""
    return URL(base + path_qs, encoded=True)


class Upstream(NamedTuple):
    """How the app is reached: the lean pool for bodiless requests to an http:// app,
    aiohttp's ClientSession for the rest."""

    base: str  # `upstream.url`
    http: aiohttp.ClientSession
    pool: UpstreamPool | None


async def forward(
    request: web.Request,
    upstream: Upstream,
    path_qs: str,
    headers: CIMultiDict[str],
    *,
    answer_within: float,
    watchdog: Watchdog,
) -> web.StreamResponse:
    """Send the request upstream and stream the answer; 502/504 only before it starts."""
    answer: Answer
    try:
        with watchdog.within(answer_within, request.task) as deadline:
            if upstream.pool is not None and not request.body_exists:
                answer = await upstream.pool.request(request.method, path_qs, headers)
            else:
                body = (
                    _request_body(request, deadline, answer_within)
                    if request.body_exists else None
                )
                answer = await upstream.http.request(
                    request.method, upstream_url(upstream.base, path_qs), headers=headers,
                    data=body, allow_redirects=False,
                )
    except TimeoutError:
        raise UpstreamTimeoutError() from None
    except (aiohttp.ClientError, OSError) as exc:
        if request.transport is None or request.transport.is_closing():
            raise ConnectionResetError("client went away during the upload") from None
        raise UpstreamUnavailableError(type(exc).__name__) from None
    try:
        return await _relay(request, answer)
    finally:
        answer.release()


async def _request_body(
    request: web.Request, deadline: Deadline, answer_within: float
) -> AsyncIterator[bytes]:
    """The client's body as it arrives; each chunk pushes the answer deadline back."""
    while chunk := await request.content.readany():
        deadline.push(answer_within)
        yield chunk


async def _relay(request: web.Request, upstream: Answer) -> web.StreamResponse:
    headers = response_headers(upstream.headers)
    if _already_complete(request, upstream):
        return _whole(upstream, headers)
    kind = web.StreamResponse if "Content-Type" in upstream.headers else _UntypedStream
    response = kind(status=upstream.status, reason=upstream.reason, headers=headers)
    await response.prepare(request)
    try:
        while chunk := await upstream.content.readany():
            await response.write(chunk)
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        log.warning("upstream broke off a response to %s %s: %s",
                    request.method, request.path, type(exc).__name__)
        _abort(request)
        return response
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        return response  # the client left; nothing to tell anyone
    await response.write_eof()
    return response


def _already_complete(request: web.Request, upstream: Answer) -> bool:
    """The whole body arrived with the headers (most small answers): send both at once."""
    return (
        upstream.content.is_eof()
        and request.method != "HEAD"
        and upstream.status >= 200
        and upstream.status not in (204, 304)
    )


def _whole(upstream: Answer, headers: CIMultiDict[str]) -> web.Response:
    """One write for headers and body: no wait (the body is in memory), one syscall fewer."""
    try:
        body = upstream.content.read_nowait()  # all of it: the stream is at EOF
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailableError(type(exc).__name__) from None
    kind = web.Response if "Content-Type" in upstream.headers else _UntypedWhole
    return kind(status=upstream.status, reason=upstream.reason, headers=headers, body=body)


# aiohttp adds `Content-Type: application/octet-stream` to a body without one, which turns a
# page the browser would sniff into a download. These undo that for answers whose upstream
# sent none (an on_response_prepare signal would cost every response ~4 µs).
# `_prepare_headers` is aiohttp's own step; test_answer_without_content_type_is_not_given_one
# fails if a new aiohttp changes it.
class _UntypedStream(web.StreamResponse):
    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.headers.popall("Content-Type", None)


class _UntypedWhole(_UntypedStream, web.Response):
    """The same, for an answer sent whole."""


def _abort(request: web.Request) -> None:
    """A response that has started cannot become an error page: cut the connection."""
    if request.transport is not None:
        request.transport.abort()
