"""Long-lived connections end with their session (docs/reference.md#long-lived-connections):
a WebSocket or a stream opened through gateway B with a session ends within 1 s of a
logout or revocation on gateway A (a WebSocket with 1008 `session ended`, a stream cut
off); WebSockets on public routes or without a session are left alone; a session revoked
directly at Ory, or expired, ends its WebSocket within one `cache.ttl`."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.fleet.conftest import (
    HOOK_TOKEN,
    Stack,
    backends,
    client,
    fleet,
    needs_redis,
    token,
)
from tests.fleet.redis_process import RedisServer

pytestmark = needs_redis
SOON = 1.0


async def revoke_on_a(stack: Stack, how: str, gone: str, kept: dict[str, str],
                      gone_headers: dict[str, str]) -> None:
    a, http = stack.nodes[0], stack.http
    if how == "logout":
        async with http.get(f"{a.origin}/_auth/logout", headers=gone_headers,
                            allow_redirects=False) as answer:
            assert answer.status == 303
    elif how == "revoke":
        async with http.delete(f"{a.origin}/_auth/sessions/{gone}", headers=kept) as answer:
            assert answer.status == 204
    else:
        stack.ory.revoke_session(gone)
        async with http.post(f"{a.origin}/_auth/hooks/revoke", json={"session_id": gone},
                             headers={"Authorization": f"Bearer {HOOK_TOKEN}"}) as answer:
            assert answer.status == 200


async def open_ws(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                  user: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(url, headers=headers)
    assert await ws.receive_str(timeout=5) == user  # the upstream's greeting
    return ws


async def echoes(ws: aiohttp.ClientWebSocketResponse, user: str) -> bool:
    await ws.send_str("ping")
    return await ws.receive_str(timeout=5) == f"{user}:ping"


@pytest.mark.parametrize("how", ["logout", "revoke", "hook"])
async def test_websocket_closes_with_1008_when_session_ends_on_another_gateway(
    stack: Stack, how: str
) -> None:
    b, http = stack.nodes[1], stack.http
    identity, (gone, kept) = stack.backends.user(f"ws-{how}@example.com", sessions=2)
    mine = await open_ws(http, f"{b.origin}/app/ws", token(gone), identity)
    other = await open_ws(http, f"{b.origin}/app/ws", token(kept), identity)
    public = await open_ws(http, f"{b.origin}/public/ws", token(gone), "")
    anonymous = await open_ws(http, f"{b.origin}/maybe/ws", {}, "")
    try:
        await revoke_on_a(stack, how, gone.id, token(kept), token(gone))
        done = time.monotonic()
        closing = await mine.receive(timeout=SOON + 1)
        took = time.monotonic() - done
        assert (closing.type, closing.data, closing.extra) == (
            WSMsgType.CLOSE, 1008, "session ended")
        assert took <= SOON
        for ws, user in ((other, identity), (public, ""), (anonymous, "")):
            assert await echoes(ws, user)
    finally:
        for ws in (mine, other, public, anonymous):
            await ws.close()


@pytest.mark.parametrize("how", ["logout", "revoke", "hook"])
async def test_stream_is_cut_when_session_ends_on_another_gateway(
    stack: Stack, how: str
) -> None:
    b, http = stack.nodes[1], stack.http
    identity, (gone, kept) = stack.backends.user(f"sse-{how}@example.com", sessions=2)
    async with http.get(f"{b.origin}/app/stream", headers=token(gone)) as stream:
        assert stream.status == 200
        assert await stream.content.readline() == f"data: {identity}\n".encode()
        await revoke_on_a(stack, how, gone.id, token(kept), token(gone))
        done = time.monotonic()

        async def to_the_end() -> None:
            async with asyncio.timeout(SOON + 1):
                while await stream.content.readany():
                    pass

        with pytest.raises(aiohttp.ClientPayloadError):  # cut off, never completed
            await to_the_end()
        assert time.monotonic() - done <= SOON


async def test_websocket_ends_within_one_ttl_when_session_is_revoked_at_ory(
    redis_server: RedisServer,
) -> None:
    ttl = 1.0
    async with backends() as shared, fleet(shared, redis_server.url, ttl="1s") as nodes, \
            client() as http:
        b = nodes[1]
        identity, (gone, kept, old) = shared.user("ory-admin@example.com", sessions=3)
        mine = await open_ws(http, f"{b.origin}/app/ws", token(gone), identity)
        expiring = await open_ws(http, f"{b.origin}/app/ws", token(old), identity)
        other = await open_ws(http, f"{b.origin}/app/ws", token(kept), identity)
        anonymous = await open_ws(http, f"{b.origin}/maybe/ws", {}, "")
        try:
            shared.ory.revoke_session(gone.id)  # the admin API: no gateway hears of it
            shared.ory.expire_session(old.id)  # past its expires_at
            done = time.monotonic()
            for ws in (mine, expiring):
                closing = await ws.receive(timeout=ttl + 2)
                assert (closing.type, closing.data, closing.extra) == (
                    WSMsgType.CLOSE, 1008, "session ended")
                assert time.monotonic() - done <= ttl + 0.5
            await asyncio.sleep(ttl)  # another re-check of the others has come and gone
            assert await echoes(other, identity)
            assert await echoes(anonymous, "")
        finally:
            for ws in (mine, expiring, other, anonymous):
                await ws.close()
