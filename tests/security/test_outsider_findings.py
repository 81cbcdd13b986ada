"""Regression tests for what an outside tester found (their reproductions F1-F8), against the
gateway as `gateway serve` runs it (F2: the in-process stack), with the promise each broke:

* F1 a stray 408 from the app on a kept-alive connection never answers another user's
  request (docs/reference.md#bodies-and-framing, "reused only when clean");
* F2 identity values with spaces at either end reach the app percent-encoded
  (docs/reference.md#identity_headers);
* F3/F4 a WebSocket message of exactly `server.websocket_max_message` is relayed both ways,
  one byte more closes the socket with 1009, whichever side sent it (#server);
* F5 an unsolicited `101` is a 502, and the client connection stays in step (#errors);
* F6 no access line shows user info, a fragment, `;` parameters, what follows an encoded
  `?`, `#` or `;`, or an email in a path segment (#logs-and-metrics);
* F7 a status outside 100-599 or a transfer coding besides `chunked` alone is a 502, never
  relayed altered (#bodies-and-framing);
* F8 HTTP versions other than 1.0 and 1.1 get 505 and never reach the app; an HTTP/1.0
  `Expect: 100-continue` is ignored (RFC 9110 §10.1.1).

The docstrings say how each failed on 402099f, the commit before the fixes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from pytest_aiohttp import AiohttpServer

from tests.conftest import StackFactory
from tests.security.conftest import ROUTES_UNDER_ATTACK
from tests.security.process_stack import gateway_process
from tests.security.raw_client import API, Answer, RawClient, cookie, exchange, request, ws_upgrade
from tests.security.scripted_upstream import (
    ANSWERS,
    MIB,
    Received,
    ScriptedUpstream,
    Stray,
    chunk,
    scripted_stack,
    stray_answer,
    ws_frame,
)

CONTRACT_IDS = {
    "session_required", "session_aal2_required", "session_refresh_required", "access_denied",
    "bad_request", "ory_unavailable", "upstream_unavailable", "upstream_timeout",
}


def error_id(answer: Answer | None, status: int) -> str:
    """The id of the JSON error envelope `answer` must be, with status `status`."""
    assert answer is not None, "the gateway closed without an answer"
    assert answer.status == status, answer.head + answer.body[:300]
    assert (answer.header("Content-Type") or "").startswith("application/json"), answer.head
    error = json.loads(answer.body)["error"]
    assert error["code"] == status
    assert error["id"] in CONTRACT_IDS
    assert isinstance(error["message"], str)
    return str(error["id"])


def answer_with(raw: bytes) -> Callable[[ScriptedUpstream, Received], bytes]:
    """A scripted-upstream answer that is exactly `raw`, whatever was asked."""
    return lambda upstream, received: raw


# --- F1: a stray 408 on a kept-alive upstream connection -----------------------------------


def crossing_408(upstream: ScriptedUpstream, received: Received) -> bytes:
    """The app's 408 for a connection it timed out, meeting the next request on the wire: to
    the gateway it is what came back for the request it just wrote there. Names
    `upstream.stray_user` (alice), so a client given it would get another user's answer."""
    stray = Stray(len(upstream.strays) + 1, received.conn, upstream.stray_user,
                  asyncio.get_running_loop().time())
    upstream.strays.append(stray)
    return stray_answer(stray, 408)


def bare_crossing_408(upstream: ScriptedUpstream, received: Received) -> bytes:
    """The same without a body, and saying it closes (as Node.js sends it)."""
    crossing_408(upstream, received)
    return b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


CROSSING_408S = {"crossing-408": crossing_408, "bare-crossing-408": bare_crossing_408}


def first_on_its_connection(upstream: ScriptedUpstream, received: Received) -> bool:
    return upstream.connections[received.conn - 1][0] is received


async def more_strays_than(upstream: ScriptedUpstream, count: int) -> None:
    await upstream.wait_for(lambda: len(upstream.strays) > count)


STRAY_408 = [
    # the 408 came while the connection was idle, before bob's request was sent
    pytest.param("stray-idle", "GET", id="408-while-idle-then-get"),
    # bob's request was written on the connection the 408 was already travelling on
    pytest.param("crossing-408", "GET", id="408-crossing-get"),
    pytest.param("crossing-408", "DELETE", id="408-crossing-bodiless-delete"),
    pytest.param("crossing-408", "HEAD", id="408-crossing-head"),
    pytest.param("bare-crossing-408", "HEAD", id="408-without-body-crossing-head"),
]


@pytest.mark.parametrize(("stray", "method"), STRAY_408)
async def test_next_users_request_gets_its_own_answer_after_stray_408(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch, stray: str, method: str
) -> None:
    """alice is answered; the app sends a 408 naming alice on that kept-alive connection. bob's
    next request (idempotent, no body) gets bob's answer, never the 408: a 408 read on a
    reused connection is the app closing it, so bob's request goes once more, on a new
    connection. Fails on 402099f for the crossing rows: bob gets the 408 naming alice."""
    for name, answer in CROSSING_408S.items():
        monkeypatch.setitem(ANSWERS, name, answer)
    async with scripted_stack(aiohttp_server) as stack:
        upstream = stack.upstream
        alice, alice_session = stack.login("alice@example.com")
        bob, bob_session = stack.login("bob@example.com")
        upstream.stray_user = alice
        idle = stray == "stray-idle"

        def choose(received: Received) -> str:
            if received.header("X-User-Id") == alice:
                return stray if idle else "echo"
            return "echo" if idle or first_on_its_connection(upstream, received) else stray

        upstream.choose = choose
        for round_ in range(10):  # until bob's request lands on a reused connection
            strays = len(upstream.strays)
            alices = await exchange(stack.port, request(
                "GET", f"/private/alice-{round_}", cookie(alice_session)))
            assert alices is not None
            assert (alices.status, alices.user, alices.stray) == (200, alice, None)
            if idle:
                await more_strays_than(upstream, strays)
            path = f"/private/bob-{round_}"
            bobs = await exchange(stack.port, request(method, path, cookie(bob_session)),
                                  method=method)
            assert bobs is not None, f"bob's {method} got no answer"
            assert bobs.status == 200, bobs.head + bobs.body
            if method != "HEAD":
                assert (bobs.user, bobs.stray) == (bob, None), bobs.body
            sent = [r for r in upstream.requests if r.path == path]
            assert first_on_its_connection(upstream, sent[-1]), "not answered on a new connection"
            if idle or len(sent) > 1:
                break
        else:
            pytest.fail("bob's request never went out on a reused connection")
        if not idle:
            assert len(sent) == 2, f"bob's {method} was sent {len(sent)} times, not twice"
            assert await upstream.ended(sent[0].conn), "the connection that said 408 stayed open"


# --- F2: identity values with spaces at either end ------------------------------------------

USERNAME_HEADER = '[identity_headers]\n"X-User-Name" = "identity.traits.username"\n'
PADDED_NAMES = [
    pytest.param(" admin ", "%20admin%20", id="space-at-both-ends"),
    pytest.param(" admin", "%20admin", id="leading-space"),
    pytest.param("admin ", "admin%20", id="trailing-space"),
    pytest.param("  admin   ", "%20%20admin%20%20%20", id="several-spaces"),
    pytest.param(" ", "%20", id="only-a-space"),
]


@pytest.mark.parametrize(("username", "sent"), PADDED_NAMES)
async def test_identity_value_with_outer_spaces_reaches_app_percent_encoded(
    make_stack: StackFactory, username: str, sent: str
) -> None:
    """The app's HTTP parser strips a header value's outer spaces (every parser must), so
    they are encoded: `admin` and ` admin ` stay two users at the app. Fails on 402099f:
    both reach the app as `admin`."""
    stack = await make_stack(extra=USERNAME_HEADER, routes=ROUTES_UNDER_ATTACK)
    seen: dict[str, list[str]] = {}
    whoami: dict[str, Any] = {}
    for name in ("admin", username):
        identity = stack.ory.add_identity(f"{len(seen)}@example.com", password="pw",
                                          traits={"email": f"{len(seen)}@example.com",
                                                  "username": name})
        token = stack.ory.create_session(identity).token
        async with stack.client.get("/admin/x", headers={"X-Session-Token": token}) as answer:
            assert answer.status == 200
        seen[name] = stack.upstream.header("X-User-Name")
        async with stack.client.get("/_auth/whoami", headers={"X-Session-Token": token}) as who:
            headers = (await who.json())["headers"]
        whoami[name] = {k.lower(): v for k, v in headers.items()}.get("x-user-name")
    assert seen == {"admin": ["admin"], username: [sent]}
    assert whoami == {"admin": "admin", username: sent}, "whoami differs from what was sent"


# --- F3/F4: WebSocket message limits ---------------------------------------------------------

PUBLIC = '[[routes]]\npath = "/public/**"\naccess = "public"\n'
WS_LIMITS = [
    pytest.param("", 4 * MIB, id="default-4MiB"),
    pytest.param('websocket_max_message = "64KiB"', 64 * 1024, id="configured-64KiB"),
]


def sized_messages_app(received: list[int]) -> web.Application:
    """An app without a message limit of its own: it echoes a binary message whole (noting its
    size in `received`), and answers the text `send N` with a binary message of N bytes."""

    async def socket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                received.append(len(message.data))
                await ws.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await ws.send_bytes(b"a" * int(message.data.removeprefix("send ")))
        return ws

    app = web.Application()
    app.router.add_get("/public/ws", socket)
    return app


async def open_socket(client: RawClient) -> None:
    await client.send(ws_upgrade("/public/ws"))
    answer = await client.answer()
    assert answer is not None
    assert answer.status == 101, answer.head


@pytest.mark.parametrize(("server", "limit"), WS_LIMITS)
async def test_websocket_message_of_exactly_the_limit_passes_both_ways(
    aiohttp_server: AiohttpServer, server: str, limit: int
) -> None:
    """"The largest message relayed": the limit itself is relayed, the client's to the app and
    back, and one the app starts. Fails on 402099f: the client's is closed with 1009."""
    received: list[int] = []
    async with (
        gateway_process(aiohttp_server, sized_messages_app(received), server=server,
                        routes=PUBLIC) as stack,
        RawClient(stack.gateway.port, within=10) as client,
    ):
        await open_socket(client)
        message = bytes(range(256)) * (limit // 256)
        await client.send(ws_frame(2, message))
        assert await client.ws_frame() == (True, 2, message)
        assert received == [limit]
        await client.send(ws_frame(1, f"send {limit}".encode()))
        assert await client.ws_frame() == (True, 2, b"a" * limit)


async def send_until_closed(client: RawClient, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        await client.send(data)


OVER_LIMIT = [
    pytest.param("client", id="from-the-client"),
    pytest.param("app", id="from-the-app"),
]


@pytest.mark.parametrize("sender", OVER_LIMIT)
@pytest.mark.parametrize(("server", "limit"), WS_LIMITS)
async def test_websocket_message_one_byte_over_the_limit_closes_with_1009(
    aiohttp_server: AiohttpServer, server: str, limit: int, sender: str
) -> None:
    """limit + 1 bytes, from either side: the client's socket closes with 1009 (message too
    big) and the message is not relayed. Fails on 402099f for the app's message: 1001."""
    received: list[int] = []
    async with (
        gateway_process(aiohttp_server, sized_messages_app(received), server=server,
                        routes=PUBLIC) as stack,
        RawClient(stack.gateway.port, within=10) as client,
    ):
        await open_socket(client)
        if sender == "client":
            frame = ws_frame(2, b"c" * (limit + 1))
        else:
            frame = ws_frame(1, f"send {limit + 1}".encode())
        # the gateway may close while the frame is still going out: read meanwhile
        sending = asyncio.create_task(send_until_closed(client, frame))
        try:
            async with asyncio.timeout(10):
                code = await client.close_code()
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        assert code == 1009, f"close code {code}"
        assert received == []


# --- F5 and F7: answers the app cannot have meant --------------------------------------------

PROTOCOL_BYTES = b"PROTOCOL-BYTES-AFTER-THE-HEAD"
UNSOLICITED_101 = [
    pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n"
                 b"\r\n" + PROTOCOL_BYTES, id="upgrade-to-another-protocol"),
    pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\n\r\n" + ws_frame(1, PROTOCOL_BYTES, masked=False),
                 id="upgrade-to-websocket"),
    pytest.param(b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + PROTOCOL_BYTES,
                 id="no-upgrade-header"),
]


@pytest.mark.parametrize("raw", UNSOLICITED_101)
async def test_unsolicited_101_is_502_and_pipelined_request_stays_in_step(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch, raw: bytes
) -> None:
    """A plain GET answered `101 Switching Protocols`, with a second GET pipelined behind it
    on the client connection: the first gets the 502 envelope, the second its own answer or
    a closed connection, and none of the app's bytes after its 101 reach the client. Fails
    on 402099f: the 101 is relayed as the final answer and the next one is read as its."""
    monkeypatch.setitem(ANSWERS, "unsolicited-101", answer_with(raw))
    async with scripted_stack(aiohttp_server) as stack, RawClient(stack.port) as client:
        stack.upstream.script["/public/switch"] = "unsolicited-101"
        await client.send(request("GET", "/public/switch", API)
                          + request("GET", "/public/after", API))
        first = await client.answer()
        assert error_id(first, 502) == "upstream_unavailable"
        assert first is not None
        second = await client.answer()
        got = first.head + first.raw_body + (b"" if second is None else second.head
                                             + second.raw_body)
        assert PROTOCOL_BYTES not in got
        if second is not None:
            assert second.status == 200, second.head
            assert second.json()["path"] == "/public/after"


GZIPPED = gzip.compress(b"hello", mtime=0)
ODD_ANSWERS = [
    pytest.param(b"HTTP/1.1 099 Odd\r\nContent-Length: 3\r\n\r\nodd", id="status-099"),
    pytest.param(b"HTTP/1.1 600 Odd\r\nContent-Length: 3\r\n\r\nodd", id="status-600"),
    pytest.param(b"HTTP/1.1 999 Odd\r\nContent-Length: 3\r\n\r\nodd", id="status-999"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                 + chunk(GZIPPED) + b"0\r\n\r\n", id="gzip-then-chunked"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
                 b"\r\n" + chunk(GZIPPED) + b"0\r\n\r\n", id="gzip-then-chunked-on-two-lines"),
]


@pytest.mark.parametrize("raw", ODD_ANSWERS)
async def test_answer_no_request_can_have_is_502_not_relayed_altered(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch, raw: bytes
) -> None:
    """Fails on 402099f: `099` is relayed as `99`, 600 as it is, and the gzip body loses its
    `gzip` coding on the way (the client gets gzip bytes labelled as nothing)."""
    monkeypatch.setitem(ANSWERS, "odd", answer_with(raw))
    async with scripted_stack(aiohttp_server) as stack:
        stack.upstream.script["/public/odd"] = "odd"
        answer = await exchange(stack.port, request("GET", "/public/odd", API))
        assert error_id(answer, 502) == "upstream_unavailable"
        assert answer is not None
        assert GZIPPED not in answer.raw_body
        assert b"odd" not in answer.raw_body
    # the gateway has stopped: every line it wrote is in
    assert not [line for line in stack.gateway.lines if "Traceback" in line]


# --- F6: what an access line may show of a request target ------------------------------------

# (target, what no line may hold, the path the line still shows)
LOGGED_TARGETS = [
    (b"http://alice:Passw0rd-userinfo@127.0.0.1/public/f6-absolute",
     ("Passw0rd-userinfo", "alice:"), ""),
    (b"/public/f6-fragment#access_token=SECRET-fragment",
     ("SECRET-fragment", "access_token"), "/public/f6-fragment"),
    (b"/public/f6-params;jsessionid=SECRET-params/a",
     ("SECRET-params", "jsessionid"), "/public/f6-params"),
    (b"/public/f6-encoded-query%3Ftoken=SECRET-3F", ("SECRET-3F",), "/public/f6-encoded-query"),
    (b"/public/f6-lower-query%3ftoken=SECRET-3f", ("SECRET-3f",), "/public/f6-lower-query"),
    (b"/public/f6-encoded-hash%23token=SECRET-23", ("SECRET-23",), "/public/f6-encoded-hash"),
    (b"/public/f6-encoded-semi%3Bjsessionid=SECRET-3B", ("SECRET-3B",),
     "/public/f6-encoded-semi"),
    (b"/public/f6-email/carol@example.com/profile", ("carol", "@example"), "/public/f6-email/"),
    (b"/public/f6-encoded-email/dave%40example.com/profile", ("dave", "40example"),
     "/public/f6-encoded-email/"),
    (b"/public/f6-query?token=SECRET-query", ("SECRET-query",), "/public/f6-query"),
]


def access_line(lines: list[str], log_format: str, request_id: str) -> tuple[str, str, int]:
    """(method, path, status) of the access line of `request_id`."""
    for line in lines:
        if log_format == "json":
            record = json.loads(line)
            if record.get("logger") == "gateway.access" and record["request_id"] == request_id:
                return record["method"], record["path"], record["status"]
        elif "gateway.access" in line and line.rstrip().endswith(" " + request_id):
            # METHOD path STATUS bytes duration peer decision request-id
            start, status, *_ = line.split(": ", 1)[1].rsplit(" ", 6)
            method, path = start.split(" ", 1)
            return method, path, int(status)
    raise AssertionError(f"no access line for {request_id}")


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_access_log_never_shows_secrets_of_a_request_target(
    aiohttp_server: AiohttpServer, log_format: str
) -> None:
    """Each target is sent as it is; no line of the log holds what comes after the cut, and
    each request's access line still shows its method, status and path up to the cut. Fails
    on 402099f: user info, fragment, `;jsessionid=` and what follows `%3F` are logged."""
    server = f'log_format = "{log_format}"'
    async with scripted_stack(aiohttp_server, server=server) as stack:
        sent: list[tuple[bytes, str, int]] = []
        for target, _, _ in LOGGED_TARGETS:
            answer = await exchange(stack.port, b"GET " + target + b" HTTP/1.1\r\n"
                                    b"Host: 127.0.0.1\r\nAccept: application/json\r\n\r\n")
            assert answer is not None
            request_id = answer.header("X-Request-Id")
            assert request_id is not None
            sent.append((target, request_id, answer.status))
    # the gateway has stopped: every line it wrote is in
    lines = stack.gateway.lines
    assert sum("gateway.access" in line for line in lines) >= len(LOGGED_TARGETS)
    for (target, secrets, shown), (_, request_id, status) in zip(
        LOGGED_TARGETS, sent, strict=True
    ):
        leaked = [line for line in lines if any(secret in line for secret in secrets)]
        assert leaked == [], f"{target!r} leaked into the log"
        method, path, logged_status = access_line(lines, log_format, request_id)
        assert (method, logged_status) == ("GET", status), target
        assert path.startswith(shown), f"{target!r} logged as {path!r}"


# --- F8: request versions --------------------------------------------------------------------

HOST = b"Host: 127.0.0.1\r\n"
SESSION = b"Cookie: ory_kratos_session=SESSION\r\n"  # SESSION: a valid session's cookie value
UNSUPPORTED_VERSIONS = [
    pytest.param(b"GET /public/echo HTTP/2.0\r\n" + HOST + b"\r\n", id="http-2.0"),
    pytest.param(b"GET /private/echo HTTP/2.0\r\n" + HOST + SESSION + b"\r\n",
                 id="http-2.0-with-a-session"),
    pytest.param(b"GET /public/echo HTTP/0.9\r\n" + HOST + b"\r\n", id="http-0.9"),
    pytest.param(b"GET /public/echo\r\n\r\n", id="no-version-http-0.9-style"),
]


async def versioned_exchange(port: int, data: bytes) -> tuple[Answer | None, bytes, bool]:
    """The answer to `data`, what followed it and whether the gateway closed within 5 s."""
    async with RawClient(port) as client:
        await client.send(data)
        answer = await client.answer()
        rest, closed = await client.collect(5)
        return answer, rest, closed


@pytest.mark.parametrize("data", UNSUPPORTED_VERSIONS)
async def test_unsupported_http_version_gets_505_and_never_reaches_app(
    aiohttp_server: AiohttpServer, data: bytes
) -> None:
    """Fails on 402099f: proxied, and answered `HTTP/2.0 200 OK` / `HTTP/0.9 200 OK`."""
    async with scripted_stack(aiohttp_server) as stack:
        _, session = stack.login("alice@example.com")
        answer, rest, closed = await versioned_exchange(
            stack.port, data.replace(b"SESSION", session.encode()))
        assert error_id(answer, 505) == "bad_request"
        assert (rest, closed) == (b"", True), "the connection stayed open after the 505"
        assert stack.upstream.received == []


@pytest.mark.parametrize("data", UNSUPPORTED_VERSIONS)
async def test_answer_to_unsupported_http_version_is_labelled_http_1(
    aiohttp_server: AiohttpServer, data: bytes
) -> None:
    """RFC 9110 §2.5: a server answers with the highest version it conforms to whose major is
    at most the request's: `HTTP/1.1` for an HTTP/2.0 request line; HTTP/0.9 has no status
    line at all. The F8 report named the mislabelled status line itself."""
    async with scripted_stack(aiohttp_server) as stack:
        _, session = stack.login("alice@example.com")
        answer, _, _ = await versioned_exchange(
            stack.port, data.replace(b"SESSION", session.encode()))
        assert answer is not None
        assert answer.head.startswith((b"HTTP/1.1 505 ", b"HTTP/1.0 505 ")), answer.head


EXPECT_IN_HTTP_10 = [
    pytest.param("/public/echo", False, id="public-route"),
    pytest.param("/private/echo", True, id="authenticated-route-with-session"),
]


@pytest.mark.parametrize(("path", "signed_in"), EXPECT_IN_HTTP_10)
async def test_expect_100_continue_is_ignored_in_http_1_0_request(
    aiohttp_server: AiohttpServer, path: str, signed_in: bool
) -> None:
    """RFC 9110 §10.1.1: a server MUST ignore `100-continue` in an HTTP/1.0 request. The body
    is sent once the head has reached the app; the first thing the client reads is the
    app's answer, never a `100 Continue`. Fails on 402099f: `HTTP/1.1 100 Continue` first."""
    async with scripted_stack(aiohttp_server) as stack, RawClient(stack.port) as client:
        user, session = stack.login("alice@example.com")
        credentials = [cookie(session)] if signed_in else []
        await client.send(request("POST", path, *credentials, "Expect: 100-continue",
                                  "Content-Length: 2", version="HTTP/1.0"))
        await stack.upstream.wait_for(lambda: len(stack.upstream.requests) == 1)
        await client.send(b"hi")
        answer = await client.answer()
        assert answer is not None
        assert answer.status == 200, answer.head
        assert answer.json() == {"user": user if signed_in else "", "conn": 1, "seq": 1,
                                 "path": path, "size": 2}
        assert stack.upstream.requests[0].header("Expect") is None
