"""Class CONNECTION-STATE: a refused or failed upgrade that leaves the socket in a state
where the next request skips the checks (WebSocket / h2c smuggling), and cross-site
WebSocket hijacking through a lax Origin check (docs/reference.md#bodies-and-websockets).

integration/test_streaming.py refuses `Origin: https://evil.example`; here the near-misses
of our own origin are refused too, and every refused or failed upgrade is followed on the
same keep-alive socket by a request that must still be checked.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import Stack
from tests.rawhttp import RawResponse

KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
FOLLOW_UP = b"GET /admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n"


def upgrade(path: str, extra: str = "", kind: str = "websocket") -> bytes:
    connection = "Upgrade, HTTP2-Settings" if kind == "h2c" else "Upgrade"
    settings = "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n" if kind == "h2c" else KEY
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: {kind}\r\n"
            f"Connection: {connection}\r\n{settings}{extra}\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> RawResponse | None:
    """One response from a keep-alive socket; None when the server closed it instead."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = [(k, v) for k, _, v in (line.partition(": ") for line in lines[1:] if line)]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    body = await reader.readexactly(length)
    return RawResponse(int(lines[0].split(" ")[1]), headers, body)


async def exchange(port: int, first: bytes, then: bytes) -> list[RawResponse | None]:
    """`first`, its answer, then `then` on the same socket and its answer (or None)."""
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(first)
            answers = [await read_response(reader)]
            writer.write(then)
            answers.append(await read_response(reader))
        finally:
            writer.close()
            await writer.wait_closed()
    return answers


# (first request on the socket, what it must get). The follow-up is always GET /admin/x
# without a session: 401, or the connection closed. Never forwarded.
UPGRADES = [
    pytest.param("/ws", "", "websocket", 401, id="websocket-without-session"),
    pytest.param("/ws", "Origin: https://evil.example\r\n", "websocket", 403,
                 id="websocket-cross-site"),
    pytest.param("/internal/ws", "", "websocket", 403, id="websocket-to-deny-route"),
    pytest.param("/public/x", "", "websocket", 502, id="websocket-to-plain-http-endpoint"),
    pytest.param("/public/x", "", "h2c", 200, id="h2c-upgrade-ignored"),
]


@pytest.mark.parametrize(("path", "extra", "kind", "status"), UPGRADES)
async def test_request_after_refused_upgrade_on_same_socket_is_still_checked(
    guarded: Stack, path: str, extra: str, kind: str, status: int
) -> None:
    cookie, _ = guarded.login()
    if "evil" in extra:
        extra += f"Cookie: ory_kratos_session={cookie}\r\n"
    first, second = await exchange(guarded.client.port or 0, upgrade(path, extra, kind), FOLLOW_UP)
    assert first is not None
    assert first.status == status
    assert second is None or second.status == 401
    assert "/admin/x" not in [s.raw_path for s in guarded.upstream.seen]
    assert [s for s in guarded.upstream.seen if s.method == "WS"] == []


async def test_pipelined_request_behind_refused_upgrade_is_never_forwarded(
    guarded: Stack,
) -> None:
    answers = await exchange(guarded.client.port or 0, upgrade("/ws") + FOLLOW_UP, b"")
    assert answers[0] is not None
    assert answers[0].status == 401
    assert guarded.upstream.seen == []


FOREIGN_ORIGINS = [
    pytest.param("https://evil.example", id="foreign"),
    pytest.param("null", id="null-sandboxed-frame"),
    pytest.param("{origin}.evil.example", id="our-origin-as-prefix"),
    pytest.param("{origin}@evil.example", id="our-origin-as-userinfo"),
    pytest.param("https://{host}", id="our-host-other-scheme"),
    pytest.param("http://127.0.0.1:1", id="our-host-other-port"),
    pytest.param("http://localhost:{port}", id="other-name-for-our-host"),
]


@pytest.mark.parametrize("template", FOREIGN_ORIGINS)
async def test_upgrade_from_foreign_origin_is_refused(guarded: Stack, template: str) -> None:
    cookie, _ = guarded.login()
    host = guarded.origin.split("://", 1)[1]
    origin = (template.replace("{origin}", guarded.origin).replace("{host}", host)
              .replace("{port}", str(guarded.client.port)))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await guarded.client.ws_connect(
            "/ws", headers={**guarded.cookie(cookie), "Origin": origin}
        )
    assert refused.value.status == 403
    assert [s for s in guarded.upstream.seen if s.method == "WS"] == []


async def test_upgrade_from_our_own_origin_is_bridged(guarded: Stack) -> None:
    cookie, _ = guarded.login("own@example.com")
    async with asyncio.timeout(5):
        ws = await guarded.client.ws_connect(
            "/ws", headers={**guarded.cookie(cookie), "Origin": guarded.origin.upper()}
        )
        assert await ws.receive_str() == "hello own@example.com"
        await ws.close()
