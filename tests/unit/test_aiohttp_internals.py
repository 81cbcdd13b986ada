"""The aiohttp internals gateway/relay relies on, pinned: when an aiohttp upgrade changes one,
this fails first and names it, instead of a relay guard going quiet (pyproject.toml pins
aiohttp to one minor version for the same reason)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import ClientRequest, web
from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
from aiohttp.base_protocol import BaseProtocol
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_websocket import WebSocketError
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from gateway.relay.client import UpstreamProtocol, _leftover

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def parameters(function: Callable[..., Any]) -> set[str]:
    return set(inspect.signature(function).parameters)


@pytest.mark.parametrize(
    ("owner", "name", "needed"),
    [
        (ResponseHandler, "set_response_params",
         {"skip_payload", "read_until_eof", "auto_decompress"}),
        (ResponseHandler, "data_received", {"data"}),
        (RequestHandler, "__init__",
         {"auto_decompress", "keepalive_timeout", "max_line_size", "max_field_size"}),
        (RequestHandler, "handle_error", {"request", "status", "exc", "message"}),
        (RequestHandler, "finish_response", {"request", "resp", "start_time"}),
        (RequestHandler, "connection_made", {"transport"}),
        (RequestHandler, "connection_lost", {"exc"}),
        (web.Server, "__init__", {"handler", "request_factory", "handler_cancellation", "loop"}),
        (ClientRequest, "update_auto_headers", {"skip_auto_headers"}),
        (web.UrlDispatcher, "add_route", {"expect_handler"}),
    ],
    ids=lambda value: getattr(value, "__name__", None) if not isinstance(value, set) else "",
)
def test_methods_the_relay_overrides_or_calls_keep_their_signature(
    owner: type, name: str, needed: set[str]
) -> None:
    assert needed <= parameters(getattr(owner, name)), f"{owner.__name__}.{name} changed"


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (BaseProtocol, "_drain_helper"),
        (web.AppRunner, "_make_server"),
        (web.StreamResponse, "_prepare_headers"),
        (web.StreamResponse, "_write_headers"),
        (web.StreamResponse, "_send_headers_immediately"),
        (web.StreamResponse, "_must_be_empty_body"),
        (web.WebSocketResponse, "_close_transport"),
        (WebSocketDataQueue, "exception"),
    ],
)
def test_internal_names_the_relay_uses_exist(owner: type, name: str) -> None:
    assert hasattr(owner, name), f"{owner.__name__}.{name} is gone"


def test_the_error_record_of_the_server_is_what_the_head_deadline_builds() -> None:
    info = _ErrInfo(status=408, exc=TimeoutError(), message="")
    assert (info.status, info.message) == (408, "")
    assert EMPTY_PAYLOAD.is_eof()


async def test_request_handler_keeps_the_state_the_head_deadline_reads() -> None:
    server = web.Server(lambda request: None)  # type: ignore[arg-type,return-value]
    handler = RequestHandler(server, loop=asyncio.get_running_loop())
    for name in ("_messages", "_waiter", "_request_count", "_force_close", "_close", "_loop",
                 "_current_request"):
        assert hasattr(handler, name), f"RequestHandler.{name} is gone"
    for name in ("_kwargs", "_loop", "request_handler", "request_factory"):
        assert hasattr(server, name), f"Server.{name} is gone"


async def test_a_spent_parser_tells_a_begun_message_from_none() -> None:
    """_leftover asks the parser to finish: a message begun after the answer shows."""
    clean = UpstreamProtocol(asyncio.get_running_loop())
    clean.idle = False
    clean.set_response_params(read_until_eof=True, auto_decompress=False)
    clean.data_received(ANSWER)
    await clean.read()
    assert not clean.should_close
    assert not _leftover(clean)

    dirty = UpstreamProtocol(asyncio.get_running_loop())
    dirty.idle = False
    dirty.set_response_params(read_until_eof=True, auto_decompress=False)
    dirty.data_received(ANSWER + b"HTTP/1.1 200 OK\r\nX-Us")
    await dirty.read()
    assert not dirty.should_close  # aiohttp alone would take it for a clean connection
    assert _leftover(dirty)


async def test_the_stream_writer_buffers_headers_where_the_raw_writer_puts_them() -> None:
    from aiohttp.http_writer import StreamWriter

    class Sink(BaseProtocol):
        pass

    writer = StreamWriter(Sink(asyncio.get_running_loop()), asyncio.get_running_loop())
    await writer.write_headers("HTTP/1.1 200 OK", web.Response().headers)
    assert writer._headers_buf is not None
    assert writer._headers_written is False


async def test_websocket_reader_refuses_a_giant_frame_from_its_header() -> None:
    """Nothing is buffered: a 600 MB frame is refused after its first 10 bytes."""
    loop = asyncio.get_running_loop()
    queue = WebSocketDataQueue(BaseProtocol(loop), 2**16, loop=loop)
    reader = WebSocketReader(queue, 4 * 1024 * 1024, False, True)
    header = bytes([0x82, 127]) + (600 * 1024 * 1024).to_bytes(8, "big")
    with pytest.raises(WebSocketError):
        reader._feed_data(header)


def test_a_request_can_be_answered_as_http11_whatever_it_claimed() -> None:
    """relay.server.answer_as_http11: the version lives in `_version`, `_message` and the
    property cache."""
    from aiohttp import HttpVersion, HttpVersion11
    from aiohttp.test_utils import make_mocked_request

    from gateway.relay.server import answer_as_http11

    request = make_mocked_request("GET", "/", version=HttpVersion(2, 0))
    assert request.version == HttpVersion(2, 0)  # cached now
    answer_as_http11(request)
    assert request.version == HttpVersion11


async def test_a_request_routed_around_the_router_still_finds_its_app() -> None:
    """relay.server's SOLE_HANDLER: one frozen UrlMappingMatchInfo, set as the request's
    `_match_info`, is what `request.app` and `config_dict` read; and the app refuses a
    second route, which the shortcut would silently never call."""
    from aiohttp.test_utils import make_mocked_request

    from gateway.relay.server import _routed_to

    key = web.AppKey("key", str)
    app = web.Application()
    app[key] = "the app's own"
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.app[key])
        seen.append(request.config_dict[key])
        return web.Response()

    app.router.add_route("*", "/{tail:.*}", handler)
    app.freeze()
    routed = _routed_to(app, handler)
    await routed(make_mocked_request("GET", "/anything?x=1"))
    assert seen == ["the app's own", "the app's own"]

    two = web.Application()
    two.router.add_route("GET", "/a", handler)
    two.router.add_route("GET", "/b", handler)
    with pytest.raises(ValueError, match="one route"):
        _routed_to(two, handler)
