"""WebSocket upgrades: authorised like any request, Origin-checked, then bridged
(docs/reference.md#bodies-and-websockets).

Cookies ride on cross-site upgrades, so a browser `Origin` must be ours or allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass

import aiohttp
from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.errors import UpstreamTimeoutError, UpstreamUnavailableError
from gateway.headers import WEBSOCKET_HANDSHAKE
from gateway.live import Tether
from gateway.observe import Metrics
from gateway.relay.server import GatewayProtocol

log = logging.getLogger("gateway.websocket")

LINGER = 2.0  # seconds a client that broke the protocol has to read our close frame
CLOSE_AT_SHUTDOWN = 2.0  # seconds the clients get to answer the close of a shutdown
SHUTTING_DOWN = b"server shutting down"


def is_websocket_upgrade(method: str, headers: CIMultiDictProxy[str]) -> bool:
    """`Upgrade: websocket` on a GET (RFC 6455 §4.1)."""
    return (
        method == "GET"
        and headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in headers.get("Connection", "").lower()
    )


def is_allowed_origin(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """No Origin (not a browser) is fine; a browser's must be one of ours."""
    return origin is None or origin.lower().rstrip("/") in allowed


def upstream_url(base: str, path_qs: str) -> URL:
    """The canonical path and raw query appended to the upstream base, byte for byte."""
    return URL(base + path_qs, encoded=True)


def websocket_url(url: URL) -> URL:
    """http -> ws, https -> wss, same path and query."""
    scheme = "wss" if url.scheme == "https" else "ws"
    return url.with_scheme(scheme)


async def bridge(
    request: web.Request,
    http: aiohttp.ClientSession,
    url: URL,
    headers: CIMultiDict[str],
    *,
    answer_within: float,
    max_message: int,
    request_id: tuple[str, str],
    metrics: Metrics,
    tether: Tether | None = None,
) -> web.WebSocketResponse:
    """Connect upstream first (so failures are still 502/504), then relay both ways. A
    message over `max_message` bytes, from either side, closes both with 1009: nothing is
    buffered past it (aiohttp refuses such a frame from its header, before its payload)."""
    for name in list(headers):
        if name.lower() in WEBSOCKET_HANDSHAKE:
            del headers[name]
    protocols = [
        p.strip()
        for value in request.headers.getall("Sec-WebSocket-Protocol", [])
        for p in value.split(",")
        if p.strip()
    ]
    try:
        async with asyncio.timeout(answer_within):
            upstream = await http.ws_connect(
                websocket_url(url), headers=headers, protocols=protocols, autoping=True,
                max_msg_size=max_message + 1,  # aiohttp refuses a message of exactly this
            )
    except TimeoutError:
        raise UpstreamTimeoutError() from None
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamUnavailableError(type(exc).__name__) from None
    client = ClientSocket(
        protocols=[upstream.protocol] if upstream.protocol else (),
        max_msg_size=max_message + 1,
    )
    client.headers[request_id[0]] = request_id[1]
    request.app[OPEN_BRIDGES].add(client)
    closing = Closing()
    ended = asyncio.Event()  # the session ended (docs/reference.md#long-lived-connections)
    metrics.connection_opened("websocket")
    live = tether.hold(ended.set) if tether is not None else None
    try:
        await client.prepare(request)
        await _relay_both_ways(client, upstream, closing, ended)
    finally:
        # Runs even when aiohttp cancels the handler as the client hangs up.
        metrics.connection_closed("websocket")
        if live is not None and tether is not None:
            tether.release(live)
        if client.shutting_down:
            closing.code, closing.reason = WSCloseCode.GOING_AWAY, SHUTTING_DOWN
        await upstream.close(code=closing.code, message=closing.reason)
        if client.lingering:
            await _linger(request)
    return client


async def close_bridges(app: web.Application) -> None:
    """On shutdown (aiohttp's `on_shutdown`, before it waits for handlers): every bridged
    WebSocket is closed with 1001 on both sides, instead of being cut without a close
    frame once the grace period is over. Clients get CLOSE_AT_SHUTDOWN to answer."""
    bridges = app[OPEN_BRIDGES]
    sockets = list(bridges)
    if not sockets:
        return
    for client in sockets:
        client.shutting_down = True  # the bridge tells the app the same
    closes = (client.close(code=WSCloseCode.GOING_AWAY, message=SHUTTING_DOWN)
              for client in sockets)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_AT_SHUTDOWN):
            await asyncio.gather(*closes, return_exceptions=True)


class ClientSocket(web.WebSocketResponse):
    """The client's side of the bridge, closed gently when the client broke the protocol
    (a message past the limit): aiohttp closes the connection right after its close frame,
    while such a client is typically still sending, and closing a socket with unread bytes
    makes the kernel answer with a reset that can destroy the close frame before the client
    reads it. Here the frame is followed by a half-close instead, what the client still
    sends is discarded (aiohttp's reader is spent), and `bridge` closes the connection once
    the client hangs up or LINGER passes. aiohttp internal: `_close_transport`, `_reader`."""

    lingering = False
    shutting_down = False

    def _close_transport(self) -> None:
        reader, request = self._reader, self._req
        transport = request.transport if request is not None else None
        if transport is None or reader is None or reader.exception() is None:
            super()._close_transport()
            return
        self.lingering = True
        if transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()  # TLS cannot half-close; its close waits all the same


OPEN_BRIDGES: web.AppKey[weakref.WeakSet[ClientSocket]] = web.AppKey("open_bridges")


async def _linger(request: web.Request) -> None:
    """Wait (up to LINGER) for the client to hang up, then close."""
    protocol = request.protocol
    if isinstance(protocol, GatewayProtocol):
        await protocol.hung_up_within(LINGER)
    if request.transport is not None:
        request.transport.close()


@dataclass(slots=True)
class Closing:
    """The close code and reason of whichever side closed first."""

    code: int = WSCloseCode.GOING_AWAY
    reason: bytes = b""


async def _relay_both_ways(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse, closing: Closing,
    ended: asyncio.Event,
) -> None:
    tasks = {
        asyncio.ensure_future(_pump(client, upstream, closing)),
        asyncio.ensure_future(_pump(upstream, client, closing)),
        asyncio.ensure_future(_session_end(ended, closing)),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    await client.close(code=closing.code, message=closing.reason)


async def _session_end(ended: asyncio.Event, closing: Closing) -> None:
    """Both sides close with 1008 `session ended` once the session is revoked or gone."""
    await ended.wait()
    closing.code, closing.reason = WSCloseCode.POLICY_VIOLATION, b"session ended"


Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump(source: Socket, sink: Socket, closing: Closing) -> None:
    """Relay messages until `source` closes; note its close code and reason."""
    while True:
        message = await source.receive()
        if message.type == WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type == WSMsgType.CLOSE:
            closing.code = sendable(int(message.data or WSCloseCode.OK))
            closing.reason = (message.extra or "").encode()
            return
        elif message.type == WSMsgType.ERROR:
            error = message.data if isinstance(message.data, BaseException) else (
                source.exception()
            )
            log.info("websocket error: %s", type(error).__name__)
            if isinstance(error, WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG:
                closing.code, closing.reason = WSCloseCode.MESSAGE_TOO_BIG, b"message too big"
            return
        elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
            closing.code = sendable(source.close_code or closing.code)
            return


def sendable(code: int) -> int:
    """A close code fit for the wire (RFC 6455 §7.4): one a side sent that no endpoint may
    send (1005, 1006 and 1015 only describe a close, 1004 and 1016-2999 are reserved,
    5000 and up do not exist), or aiohttp's 1006 for a side that hung up without a close
    frame, is passed on as 1001, going away."""
    if code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999:
        return code
    return WSCloseCode.GOING_AWAY
