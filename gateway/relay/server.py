"""Client connections, below the handler (docs/reference.md#bodies-and-framing).

What aiohttp's HTTP server does on its own, before or around the gateway's handler, made to
fit a gateway:

* Request bodies are never decompressed (`auto_decompress=False`): they are relayed as sent.
* A request head must arrive within `server.header_timeout`, from the connection's opening
  or from the first byte of a following request; a silent connection is closed, a half-sent
  head gets 408. Idle kept-alive connections close after `server.keepalive_timeout`.
* Every answer aiohttp would make itself (a request it cannot parse, a line too long, an
  unexpected error) is the gateway's JSON error envelope and never repeats what was sent.
* `Expect: 100-continue` is left to the gateway, which grants it after authorisation.

aiohttp internals used here (pinned by tests/unit/test_aiohttp_internals.py): the
`RequestHandler` class and its `data_received`, `connection_made`, `connection_lost`,
`handle_error`, `_messages`, `_waiter`, `_request_count`, `_force_close`, `_close`,
`_ErrInfo`; `Server`'s `_kwargs` / `_loop`; `AppRunner._make_server`; the route's
`expect_handler`; `UrlMappingMatchInfo` and `BaseRequest._match_info`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo
from aiohttp.web_urldispatcher import UrlMappingMatchInfo

from gateway.accesslog import REPORTING, AccessLogger
from gateway.errors import (
    BadRequestError,
    GatewayError,
    HeadersTooLargeError,
    InternalError,
    RequestTimeoutError,
    UriTooLongError,
)
from gateway.outcome import outcome_of
from gateway.relay.answers import awaits_continue
from gateway.respond import json_error

log = logging.getLogger("gateway.connections")

MAX_LINE = 8190  # bytes in the request line (aiohttp's default)
MAX_FIELD = 16 * 1024  # bytes in one header line (cookies can be long)


@dataclass(slots=True)
class ClientLimits:
    """How long a client may take; from `[server]`, changed in place by a reload (new
    connections get the new values)."""

    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    request_id_header: str = "X-Request-Id"  # on the answers made before any routing


CLIENT_LIMITS = web.AppKey("client_limits", ClientLimits)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The app's one handler, for every method and target: called without aiohttp's router.
SOLE_HANDLER: web.AppKey[Handler] = web.AppKey("sole_handler")


def handler_args(limits: ClientLimits) -> dict[str, Any]:
    """aiohttp's own per-connection settings for the gateway's app."""
    return {
        "auto_decompress": False,
        "keepalive_timeout": limits.keepalive_timeout,
        "max_line_size": MAX_LINE,
        "max_field_size": MAX_FIELD,
    }


async def defer_expect(request: web.Request) -> None:
    """The route's expect handler: grant nothing yet (`grant_continue` does, once the request
    is authorised)."""


def answer_as_http11(request: web.BaseRequest) -> None:
    """Write this request's answer as HTTP/1.1, whatever version it claimed (a 505 to an
    HTTP/2.0 or HTTP/0.9 request is still an HTTP/1.1 answer on the wire)."""
    request._message = request._message._replace(version=HttpVersion11)
    request._version = HttpVersion11
    request._cache.pop("version", None)  # aiohttp's reify cache of the property


class GatewayProtocol(RequestHandler):
    """aiohttp's connection handler with a deadline for request heads and the gateway's own
    error answers."""

    def __init__(self, manager: web.Server, *, limits: ClientLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._header_timeout = limits.header_timeout  # as it was when the connection opened
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = False  # bytes of the awaited head have arrived
        self._lost: asyncio.Future[None] | None = None  # made by `hung_up_within`

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def hung_up_within(self, seconds: float) -> bool:
        """Whether the client closes the connection within `seconds` (at once if it has)."""
        if self.transport is None:
            return True
        if self._lost is None:
            self._lost = self._loop.create_future()
        try:
            async with asyncio.timeout(seconds):
                await asyncio.shield(self._lost)
        except TimeoutError:
            return False
        return True

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:
            if self._head_timer is not None:  # a head is complete (or the parser gave up)
                self._cancel_head_timer()
            messages = self._messages
            if messages and type(messages[-1][0]) is _ErrInfo:
                self._fail_unfinished_body()
        elif data:
            if self._head_timer is None and self._waiter is not None:
                self._arm_head_timer()  # the first byte of the next request, when idle
            self._head_bytes = True

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON envelope for whatever aiohttp could not hand to the gateway's handler
        (never the offending bytes: a header line may hold a session cookie)."""
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has started; the connection is cut instead")
        error = _as_gateway_error(status, exc)
        if error.status >= 500:
            self.logger.error("request failed", exc_info=exc)  # redacted by gateway.logs
        else:
            log.info("refused a request from %s that could not be read: %s (%d)",
                     request.remote or "-", type(exc).__name__, error.status)
        return _envelope(request, error, self._limits.request_id_header)

    def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        """aiohttp's own plain-text answers (its router's 404 for a target that is not a
        path, such as `OPTIONS *` or `CONNECT host:443`, in an app that routes) become the
        gateway's envelope. Not a coroutine itself: the common answer costs no extra frame."""
        if isinstance(resp, web.HTTPException) and resp.status >= 400:
            resp = _envelope(
                request, _as_gateway_error(resp.status, resp), self._limits.request_id_header
            )
        if "Expect" in request.headers:
            return self._finish_then_close(request, resp, start_time)
        return super().finish_response(request, resp, start_time)

    async def _finish_then_close(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        finished = await super().finish_response(request, resp, start_time)
        if awaits_continue(request):
            self.force_close()  # after the answer, not after aiohttp's 10 s of lingering
        return finished

    def _fail_unfinished_body(self) -> None:
        """aiohttp queues a parse error in the middle of a body (a broken chunk) as a message
        of its own and leaves the body waiting for bytes that will never come: end the body
        with the error instead, so the request fails now (400), not at upstream.timeout.
        Called when the newest queued message is such an error."""
        request = self._current_request
        if request is not None and not request.content.is_eof():
            request.content.set_exception(RequestPayloadError("the body broke its framing"))

    def _arm_head_timer(self) -> None:
        self._head_bytes = False
        if self._header_timeout > 0:
            self._head_timer = self._loop.call_later(
                self._header_timeout, self._head_overdue, self._request_count
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self, count: int) -> None:
        """No complete head in time: close a silent connection, answer 408 to a slow one."""
        self._head_timer = None
        if self._request_count != count or self._force_close or self._close:
            return
        if not self._head_bytes:
            self.force_close()
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.force_close()
            return
        overdue = _ErrInfo(status=408, exc=RequestTimeoutError(), message="")
        self._messages.append((overdue, EMPTY_PAYLOAD))
        self._request_count += 1
        waiter.set_result(None)


def _envelope(
    request: web.BaseRequest, error: GatewayError, id_header: str
) -> web.Response:
    """The error envelope with a request id (a fresh one: such requests were never routed),
    closing the connection: what follows on it cannot be trusted to be framed right."""
    outcome = outcome_of(request)
    if error.decision is not None:
        outcome.decision = error.decision
    response = json_error(error, request_id=outcome.request_id)
    response.headers[id_header] = outcome.request_id
    response.force_close()
    return response


def _as_gateway_error(status: int, exc: BaseException | None) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, web.HTTPNotFound):  # every path matches the gateway's route: not a path
        return BadRequestError("the request target is not a path")
    if isinstance(exc, LineTooLong):
        return UriTooLongError() if exc.args[1:2] == (MAX_LINE,) else HeadersTooLargeError()
    if isinstance(exc, HttpProcessingError) and "many headers" in str(exc.message).lower():
        return HeadersTooLargeError()
    if 400 <= status < 500:
        error = BadRequestError()
        error.status = status
        return error
    return InternalError()


class GatewayServer(web.Server):
    """aiohttp's Server, making GatewayProtocol connections."""

    def __init__(self, handler: Any, *, limits: ClientLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._limits = limits

    def __call__(self) -> RequestHandler:
        kwargs = {**self._kwargs, "keepalive_timeout": self._limits.keepalive_timeout}
        return GatewayProtocol(self, loop=self._loop, limits=self._limits, **kwargs)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections are GatewayProtocols, with the app's CLIENT_LIMITS, and
    whose access logger is the app's own (REPORTING: access lines and metrics)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        reporting = app.get(REPORTING)
        if reporting is not None:
            kwargs["access_log_class"] = AccessLogger.for_app(reporting)
            kwargs["access_log"] = logging.getLogger("gateway.access")
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs the app's startup
        sole = self.app.get(SOLE_HANDLER)
        handler = plain.request_handler if sole is None else _routed_to(self.app, sole)
        return GatewayServer(
            handler, request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation, loop=plain._loop,
            limits=self.app.get(CLIENT_LIMITS, ClientLimits()),
            **plain._kwargs,  # the app's handler_args, as aiohttp merged them
        )



def _routed_to(app: web.Application, handler: Handler) -> Handler:
    """Every request straight to `handler`, as aiohttp's router would send it there with a
    catch-all route (`/{tail:.*}`, any method) but without matching the path each time:
    the gateway reads the raw target itself (gateway/paths.py), and a target that is not a
    path is refused there. The match info is made once (frozen, read-only) for `request.app`."""
    info = UrlMappingMatchInfo({}, _only_route(app))
    info.add_app(app)
    info.freeze()

    def handle(request: web.Request) -> Awaitable[web.StreamResponse]:  # from the app's factory
        request._match_info = info
        return handler(request)  # the handler's own coroutine: no frame of ours around it

    return handle


def _only_route(app: web.Application) -> Any:
    routes = list(app.router.routes())
    if len(routes) != 1 or app.middlewares:
        raise ValueError("SOLE_HANDLER needs an app with one route and no middleware")
    return routes[0]
