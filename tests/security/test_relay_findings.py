"""Regression tests for what a second outside tester found against the relay (R1-R5), each
against the gateway as `gateway serve` runs it, with the promise it broke:

* R1 `CONNECT` is refused whatever its target (docs/reference.md#errors): with a path as
  its target it was relayed with an invented empty chunked body, and the client connection
  went on as plain HTTP after a 2xx that opens a tunnel;
* R2 no log line holds an email or a query of the request target (#logs-and-metrics): the
  warning for an answer the app broke off logged aiohttp's decoded path;
* R3 a relayed body is never cut short in a way that looks complete (#bodies-and-framing):
  an HTTP/1.0 client, whose answer ends with the connection, got a FIN after a chunked
  answer broke off, exactly what a complete answer looks like;
* R4 a request pipelined behind an `Upgrade` request that was not a WebSocket handshake
  waited for ever: aiohttp's parser keeps what follows such a request for the upgraded
  protocol;
* R5 an answer whose own `Connection` header lists `Content-Type` stays untyped, instead of
  getting aiohttp's `application/octet-stream`.

The docstrings say how each failed on 19126d6, the commit before the fixes.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pytest_aiohttp import AiohttpServer

from tests.conftest import StackFactory
from tests.security.raw_client import API, RawClient, exchange, request
from tests.security.scripted_upstream import ANSWERS, scripted_stack
from tests.security.test_outsider_findings import answer_with, error_id


@pytest.mark.parametrize("target", ["/public/tunnel", "127.0.0.1:443", "/private/tunnel"])
async def test_connect_is_refused_whatever_its_target(
    aiohttp_server: AiohttpServer, target: str
) -> None:
    """Fails on 19126d6: `CONNECT /public/tunnel` reaches the app as a chunked request with an
    empty body, and the client gets a 200 without a body on a connection left open."""
    async with scripted_stack(aiohttp_server) as stack, RawClient(stack.port) as client:
        await client.send(request("CONNECT", target, API))
        answer = await client.answer()
        assert error_id(answer, 400) == "bad_request"
        rest, closed = await client.collect(5)
        assert (rest, closed) == (b"", True), "the connection stayed open after the refusal"
        assert stack.upstream.received == []


async def test_no_log_line_shows_the_email_of_a_broken_off_answer(
    aiohttp_server: AiohttpServer,
) -> None:
    """The app promises 100 bytes, sends 10 and closes: the gateway's warning names the
    request without the email in its path or its query. Fails on 19126d6: `upstream broke
    off a response to GET /public/cut/alice@corp.example` (decoded, uncut)."""
    async with scripted_stack(aiohttp_server) as stack:
        for path in ("/public/cut/alice@corp.example", "/public/cut/alice%40corp.example"):
            stack.upstream.script[path] = "close-mid"
        answer = await exchange(stack.port, request(
            "GET", "/public/cut/alice%40corp.example?token=SECRET-query", API))
        assert answer is None or answer.status == 200
    lines = stack.gateway.lines  # the gateway has stopped: every line it wrote is in
    assert any("upstream broke off" in line for line in lines), lines[-5:]
    leaked = [line for line in lines if "corp.example" in line or "SECRET-query" in line]
    assert leaked == []


async def test_http_1_0_client_sees_a_broken_off_answer_as_broken(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunked answer breaks off mid-chunk; the HTTP/1.0 client, whose answer is framed by
    the connection's end, gets a reset, not an end it would take for the body's. Fails on
    19126d6: the cut body followed by a clean FIN."""
    cut = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n6\r\n[1,2,3")
    monkeypatch.setitem(ANSWERS, "close-mid", answer_with(cut))  # the app closes after it
    async with scripted_stack(aiohttp_server) as stack:
        stack.upstream.script["/public/cut-chunked"] = "close-mid"
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
        try:
            writer.write(request("GET", "/public/cut-chunked", API, version="HTTP/1.0"))
            with pytest.raises(ConnectionResetError):
                await read_to_end(reader)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def read_to_end(reader: asyncio.StreamReader) -> None:
    """Read until the connection ends (within 10 s): quietly on a FIN, raising on a reset."""
    async with asyncio.timeout(10):
        while await reader.read(65536):
            pass


async def test_request_pipelined_behind_another_upgrade_is_never_left_waiting(
    aiohttp_server: AiohttpServer,
) -> None:
    """`Upgrade: h2c` on a plain GET, a second GET in the same write: the first is answered
    and the connection ends, so the client knows to send the second again. Fails on
    19126d6: the first is answered, the second never, and the connection stays open."""
    async with scripted_stack(aiohttp_server) as stack, RawClient(stack.port) as client:
        await client.send(
            request("GET", "/public/first", API, "Connection: Upgrade", "Upgrade: h2c")
            + request("GET", "/public/second", API)
        )
        first = await client.answer()
        assert first is not None
        assert first.status == 200, first.head
        rest, closed = await client.collect(5)
        assert closed, "the connection stayed open with a request unanswered"
        if rest:  # answered after all: then it is the second request's own answer
            assert b"/public/second" in rest


async def test_answer_naming_content_type_in_connection_stays_untyped(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails on 19126d6: `Content-Type: application/octet-stream`, which the app never
    sent (its Content-Type was hop-by-hop, so removed, and the answer counted as typed)."""
    raw = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: Content-Type\r\n"
           b"Content-Length: 2\r\n\r\nok")
    monkeypatch.setitem(ANSWERS, "obs-text", answer_with(raw))
    async with scripted_stack(aiohttp_server) as stack:
        stack.upstream.script["/public/hop-type"] = "obs-text"
        answer = await exchange(stack.port, request("GET", "/public/hop-type", API))
        assert answer is not None
        assert answer.status == 200, answer.head
        assert answer.header("Content-Type") is None, answer.head
        assert answer.body == b"ok"


LEGACY_PAGE = b"<html><body>legacy page</body></html>"


@pytest.mark.parametrize("interim", [b"", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"])
async def test_head_answered_with_the_page_anyway_is_relayed_as_its_head(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch, interim: bytes
) -> None:
    """Many legacy apps answer HEAD with the whole page, head and body in one write. The
    client gets the head (200, the app's Content-Length, no body), its connection goes on,
    and the app's connection is not used again (the body is not taken for the next answer).
    Failed on 68d04a1: 502, the body parsed as the next answer's status line."""
    page = (interim + b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
            % len(LEGACY_PAGE) + LEGACY_PAGE)
    monkeypatch.setitem(ANSWERS, "gzip", answer_with(page))  # an answer that stays open
    async with scripted_stack(aiohttp_server) as stack, RawClient(stack.port) as client:
        stack.upstream.script["/public/legacy"] = "gzip"
        await client.send(request("HEAD", "/public/legacy", API))
        head = await client.answer(method="HEAD")
        assert head is not None
        assert head.status == 200
        assert head.header("Content-Length") == str(len(LEGACY_PAGE))
        assert head.body == b""

        await client.send(request("GET", "/public/next", API))
        after = await client.answer()
        assert after is not None
        assert after.status == 200
        assert after.json()["path"] == "/public/next"  # the app's echo, not its page
        legacy, following = stack.upstream.requests[-2:]
        assert following.conn != legacy.conn  # the connection the page came on was retired


WAIT = 5.0
FAKE_ANSWER = b'{"user": "alice", "fake": true}'


async def legacy_head_app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers HEAD with its head, then, as a legacy app still busy with that request, sends
    the page: bytes that are themselves a complete answer (an upload its author asks for
    with HEAD, say). It sends them only once the next request has arrived on the
    connection, the moment the gateway could take them for that request's answer."""

    def answer(body: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target = head.split(b" ", 2)[:2]
            if method == b"HEAD":
                writer.write(answer(FAKE_ANSWER)[:-len(FAKE_ANSWER)])
                await writer.drain()
                async with asyncio.timeout(WAIT):
                    head = await reader.readuntil(b"\r\n\r\n")  # the next request, or EOF
                target = head.split(b" ", 2)[1]
                writer.write(answer(FAKE_ANSWER))  # the HEAD's page, late
            writer.write(answer(b'{"path": "%s"}' % target))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the gateway closed the connection
    finally:
        writer.close()


async def test_a_late_body_after_a_head_answer_never_reaches_the_next_request(
    make_stack: StackFactory,
) -> None:
    """The page an app sends for HEAD may come after the head was relayed and the next
    request written on that connection; a reused connection gave that request the page
    (here an answer naming another user). Failed on b769117: bob's GET got alice's answer."""
    server = await asyncio.start_server(legacy_head_app, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    routes = (f'[[routes]]\npath = "/legacy/**"\naccess = "public"\n'
              f'upstream = "http://127.0.0.1:{port}"\n')
    try:
        stack = await make_stack(routes=routes)
        async with asyncio.timeout(WAIT):
            head = await stack.client.head("/legacy/upload.json")
            mine = await stack.client.get("/legacy/mine")
            body = await mine.read()
        assert head.status == 200
        assert (mine.status, body) == (200, b'{"path": "/legacy/mine"}')
    finally:
        server.close()
        await server.wait_closed()
