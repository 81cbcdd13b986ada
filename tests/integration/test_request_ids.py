"""Request ids (docs/reference.md#request-ids): believed only from a trusted proxy and only
when well-formed, otherwise fresh; the same id reaches the app and comes back on every
answer, and is `error.request` in the JSON envelope and on the HTML error page."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from tests.conftest import Stack, StackFactory
from tests.rawhttp import get, raw_request

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}
API = {"Accept": "application/json"}
TRUSTED = 'trusted_proxies = ["127.0.0.1/32"]'
FRESH = re.compile(r"[0-9a-f]{16}")
ID = "X-Request-Id"


@dataclass
class Reply:
    """An answer as the client got it: status, the id header, the body."""

    status: int
    request_id: str | None
    body: bytes

    def envelope_id(self) -> object:
        """`error.request` of the JSON envelope."""
        return json.loads(self.body)["error"].get("request")


async def fetch(stack: Stack, path: str, headers: dict[str, str] | None = None) -> Reply:
    async with asyncio.timeout(10):
        response = await stack.client.get(path, headers=headers or {}, allow_redirects=False)
        body = await response.read()
    return Reply(response.status, response.headers.get(ID), body)


async def raw(stack: Stack, head: bytes) -> Reply:
    response = await raw_request(stack.client.port or 0, head)
    return Reply(response.status, response.header(ID), response.body)


async def handshake(stack: Stack, path: str, *extra: str) -> Reply:
    """A WebSocket opening handshake on a raw socket; the 101's head only."""
    lines = [
        f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{stack.client.port}", "Upgrade: websocket",
        "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13", *extra, "", "",
    ]
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.client.port or 0)
        try:
            writer.write("\r\n".join(lines).encode("latin-1"))
            head = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
            await writer.wait_closed()
    status_line, *fields = head.decode("latin-1").split("\r\n")
    found = [v for k, _, v in (f.partition(": ") for f in fields) if k.lower() == ID.lower()]
    return Reply(int(status_line.split(" ")[1]), found[0] if found else None, b"")


def upstream_ids(stack: Stack) -> list[str]:
    return stack.upstream.header(ID)


# --- whose id ---------------------------------------------------------------------------------


async def test_client_id_is_replaced_when_the_peer_is_untrusted(make_stack: StackFactory) -> None:
    stack = await make_stack()
    reply = await fetch(stack, "/public/x", {ID: "client-chosen"})
    assert reply.status == 200
    assert reply.request_id is not None
    assert FRESH.fullmatch(reply.request_id), reply.request_id
    assert upstream_ids(stack) == [reply.request_id]
    assert "client-chosen" not in str(stack.upstream.last().headers)


async def test_fresh_ids_differ_between_requests_when_none_is_sent(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    ids = {(await fetch(stack, "/public/x")).request_id for _ in range(5)}
    assert len(ids) == 5
    assert all(i is not None and FRESH.fullmatch(i) for i in ids), ids


@pytest.mark.parametrize(
    "kept",
    [
        pytest.param("abc", id="short"),
        pytest.param("lb-01:2024.06_x-Y", id="every-allowed-punctuation"),
        pytest.param("a" * 128, id="128-chars"),
        pytest.param("0", id="one-char"),
    ],
)
async def test_well_formed_id_is_kept_end_to_end_when_the_peer_is_trusted(
    make_stack: StackFactory, kept: str
) -> None:
    stack = await make_stack(server=TRUSTED)
    reply = await fetch(stack, "/public/x", {ID: kept})
    assert (reply.status, reply.request_id) == (200, kept)
    assert upstream_ids(stack) == [kept]


@pytest.mark.parametrize(
    ("hostile", "status"),
    [
        pytest.param(b"a" * 129, 200, id="129-chars"),
        pytest.param(b"a b", 200, id="space"),
        pytest.param("caf\u00e9".encode(), 200, id="non-ascii-utf8"),
        pytest.param(b"a;b", 200, id="semicolon"),
        pytest.param(b"a\tb", 200, id="tab"),
        pytest.param(b"a/b", 200, id="slash"),
        pytest.param(b"", 200, id="empty"),
        # not UTF-8: refused outright (docs/reference.md#headers-toward-the-upstream)
        pytest.param(b"caf\xe9", 400, id="non-ascii-latin1"),
    ],
)
async def test_hostile_id_is_replaced_when_the_peer_is_trusted(
    make_stack: StackFactory, hostile: bytes, status: int
) -> None:
    stack = await make_stack(server=TRUSTED)
    head = b"GET /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" \
        b"X-Request-Id: " + hostile + b"\r\n\r\n"
    reply = await raw(stack, head)
    assert reply.status == status, reply.body[:300]
    assert reply.request_id is not None
    assert FRESH.fullmatch(reply.request_id), reply.request_id
    if status == 200:
        assert upstream_ids(stack) == [reply.request_id]
    else:
        assert stack.upstream.seen == []
        assert reply.envelope_id() == reply.request_id


async def test_client_id_is_replaced_on_an_error_when_the_peer_is_untrusted(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    reply = await fetch(stack, "/internal/x", {**API, ID: "client-chosen"})
    assert reply.status == 403
    assert reply.request_id is not None
    assert FRESH.fullmatch(reply.request_id), reply.request_id
    assert reply.envelope_id() == reply.request_id


async def test_trusted_id_is_the_envelope_request_when_refused(make_stack: StackFactory) -> None:
    stack = await make_stack(server=TRUSTED)
    reply = await fetch(stack, "/internal/x", {**API, ID: "edge-42"})
    assert (reply.status, reply.request_id, reply.envelope_id()) == (403, "edge-42", "edge-42")


async def test_every_client_id_is_replaced_when_several_are_sent(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    reply = await raw(stack, get("/public/x", f"{ID}: one", f"{ID.lower()}: two"))
    assert reply.status == 200
    assert reply.request_id is not None
    assert FRESH.fullmatch(reply.request_id), reply.request_id
    assert upstream_ids(stack) == [reply.request_id]


async def test_client_id_under_another_spelling_is_not_forwarded(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    reply = await raw(stack, get("/public/x", "X_Request_Id: client-chosen"))
    assert reply.status == 200
    assert upstream_ids(stack) == [reply.request_id]
    assert "client-chosen" not in str(stack.upstream.last().headers)


async def test_configured_header_carries_the_id_when_request_id_header_is_set(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(server=f'{TRUSTED}\nrequest_id_header = "X-Correlation-Id"')
    reply = await fetch(stack, "/public/x", {"X-Correlation-Id": "corr-7"})
    assert reply.status == 200
    assert reply.request_id is None  # not under the default name
    assert stack.upstream.header("X-Correlation-Id") == ["corr-7"]
    refused = await raw_request(stack.client.port or 0, b"GARBAGE\x01 nonsense\r\n\r\n")
    assert refused.status == 400
    assert refused.header("X-Correlation-Id") == json.loads(refused.body)["error"]["request"]


# --- on every answer --------------------------------------------------------------------------


Ask = Callable[[Stack], Awaitable[Reply]]


async def _upstream_down(stack: Stack) -> Reply:
    await stack.upstream_server.close()
    return await fetch(stack, "/public/x", API)


async def _websocket(stack: Stack) -> Reply:
    cookie, _ = stack.login("ws@example.com")
    return await handshake(stack, "/ws", f"Cookie: ory_kratos_session={cookie}")


async def _proxied(stack: Stack) -> Reply:
    return await fetch(stack, "/public/x", API)


async def _login_redirect(stack: Stack) -> Reply:
    return await fetch(stack, "/app/page", BROWSER)


async def _unauthenticated(stack: Stack) -> Reply:
    return await fetch(stack, "/app/page", API)


async def _denied(stack: Stack) -> Reply:
    return await fetch(stack, "/internal/x", API)


async def _denied_page(stack: Stack) -> Reply:
    return await fetch(stack, "/internal/x", BROWSER)


async def _health(stack: Stack) -> Reply:
    return await fetch(stack, "/_auth/health")


async def _whoami(stack: Stack) -> Reply:
    return await fetch(stack, "/_auth/whoami", API)


async def _bad_path(stack: Stack) -> Reply:
    return await raw(stack, get("/public/a/../b", "Accept: application/json"))


async def _parser_refusal(stack: Stack) -> Reply:
    return await raw(stack, b"GARBAGE\x01 nonsense\r\n\r\n")


@pytest.mark.parametrize(
    ("ask", "status", "kind"),
    [
        pytest.param(_proxied, 200, "relayed", id="proxied-200"),
        pytest.param(_login_redirect, 303, "none", id="login-redirect-303"),
        pytest.param(_unauthenticated, 401, "json", id="unauthenticated-401-json"),
        pytest.param(_denied, 403, "json", id="deny-403"),
        pytest.param(_denied_page, 403, "html", id="html-error-page"),
        pytest.param(_health, 200, "endpoint", id="health"),
        pytest.param(_whoami, 401, "json", id="whoami-401"),
        pytest.param(_upstream_down, 502, "json", id="upstream-down-502"),
        pytest.param(_bad_path, 400, "json", id="bad-path-400"),
        pytest.param(_parser_refusal, 400, "json", id="parser-refusal-400"),
        pytest.param(_websocket, 101, "none", id="websocket-101"),
    ],
)
async def test_id_is_on_the_answer_when(
    make_stack: StackFactory, ask: Ask, status: int, kind: str
) -> None:
    stack = await make_stack()
    reply = await ask(stack)
    assert reply.status == status, reply.body[:300]
    assert reply.request_id is not None, "no request id on the answer"
    assert FRESH.fullmatch(reply.request_id), reply.request_id
    if kind == "json":
        assert reply.envelope_id() == reply.request_id
    elif kind == "html":
        assert reply.request_id.encode() in reply.body
    if kind == "relayed" or status == 101:
        assert upstream_ids(stack) == [reply.request_id]
