"""Forward one request upstream and stream the answer back (docs/reference.md#request-flow,
#bodies-and-framing).

Bodies stream both ways, unbuffered and unaltered: nothing is decompressed, a length stays
that length, chunked stays chunked (each piece relayed as it arrives). `upstream.timeout`
bounds the wait for the answer's headers, counted from the last request-body byte sent, so
slow uploads and long-lived streams are not cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import NamedTuple

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.accesslog import loggable_path
from gateway.deadlines import Deadline, Watchdog
from gateway.errors import FramingError, UpstreamTimeoutError, UpstreamUnavailableError
from gateway.headers import response_headers
from gateway.live import Tether
from gateway.observe import Metrics
from gateway.outcome import Outcome
from gateway.relay.answers import UnsafeHeaderError, relayed
from gateway.relay.client import ClientBodyError, RequestBody, UpstreamAnswer, UpstreamPool

log = logging.getLogger("gateway.proxy")


class Upstream(NamedTuple):
    """How the app is reached: the pool for every request, and aiohttp's ClientSession for
    WebSocket handshakes (never kept alive: see app.py)."""

    base: str  # `upstream.url`
    pool: UpstreamPool
    websockets: aiohttp.ClientSession


async def forward(
    request: web.Request,
    upstream: Upstream,
    path_qs: str,
    headers: CIMultiDict[str],
    *,
    answer_within: float,
    watchdog: Watchdog,
    outcome: Outcome,
    request_id: tuple[str, str],
    metrics: Metrics,
    tether: Tether | None = None,
) -> web.StreamResponse:
    """Send the request upstream and stream the answer; 400/502/504 only before it starts.
    The answer carries `request_id` (name, value); `outcome` notes the app's time; a
    streamed answer ends with the session `tether` ties it to."""
    sent = time.monotonic()
    method = request.method
    try:
        with watchdog.within(answer_within, request.task) as deadline:
            body = request_body(request, deadline, answer_within)
            answer = await upstream.pool.request(method, path_qs, headers, body)
    except TimeoutError:
        raise UpstreamTimeoutError() from None
    except ClientBodyError:
        if request.transport is None or request.transport.is_closing():
            raise ConnectionResetError("client went away during the upload") from None
        raise FramingError("the request body does not match its framing") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamUnavailableError(type(exc).__name__) from None
    outcome.upstream_s = time.monotonic() - sent
    try:
        return await _relay(request, method, answer, request_id, metrics, outcome, tether)
    finally:
        answer.release()


def request_body(request: web.Request, deadline: Deadline, push: float) -> RequestBody | None:
    """The client's body with the framing aiohttp's parser read it by: a length stays that
    length, chunked stays chunked (the pipeline has refused any other transfer coding)."""
    if not request.body_exists:
        return None
    length = None if "Transfer-Encoding" in request.headers else request.content_length
    return RequestBody(request.content, length, lambda: deadline.push(push))


async def _relay(
    request: web.Request, method: str, upstream: UpstreamAnswer, request_id: tuple[str, str],
    metrics: Metrics, outcome: Outcome, tether: Tether | None,
) -> web.StreamResponse:
    response = _response_for(method, upstream)
    response.headers[request_id[0]] = request_id[1]  # ours, not whatever the app said
    if isinstance(response, web.Response):
        return response  # aiohttp writes head and body at once
    await response.prepare(request)
    metrics.connection_opened("stream")
    # The session ends: so does the stream (the client sees it cut short, never completed).
    live = tether.hold(lambda: _abort(request)) if tether is not None else None
    sent = 0
    try:
        while chunk := await upstream.content.readany():
            sent += len(chunk)
            await response.write(chunk)
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        path, cut = loggable_path(request.raw_path)  # never an email, a query, a secret
        log.warning("upstream broke off a response to %s %s%s: %s",
                    method, path, "?…" if cut else "", type(exc).__name__)
        _abort(request)
        return response
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        return response  # the client left; nothing to tell anyone
    finally:
        metrics.connection_closed("stream")
        outcome.body_bytes = sent
        if live is not None and tether is not None:
            tether.release(live)
    await response.write_eof()
    return response


def _response_for(method: str, upstream: UpstreamAnswer) -> web.StreamResponse:
    """The answer's head as the client will get it; its body too when it is already in
    (most small answers: one write for both, one syscall fewer)."""
    body = None
    status = upstream.status
    if upstream.content.is_eof() and method != "HEAD" and status >= 200 and status not in (
        204, 304
    ):  # the whole body arrived with the headers
        try:
            body = upstream.content.read_nowait()  # all of it: the stream is at EOF
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailableError(type(exc).__name__) from None
    headers = response_headers(upstream.headers)  # typed or not once hop-by-hop ones are gone
    try:
        return relayed(status, upstream.reason, headers, typed="Content-Type" in headers,
                       body=body)
    except UnsafeHeaderError as exc:
        raise UpstreamUnavailableError(f"the app's answer has a control character in {exc}") \
            from None


def _abort(request: web.Request) -> None:
    """A response that has started cannot become an error page: cut the connection with a
    reset, never a FIN, which would pass for the end of a body framed by the close (an
    HTTP/1.0 client's, say) and make a cut answer look complete."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    transport.abort()


_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
