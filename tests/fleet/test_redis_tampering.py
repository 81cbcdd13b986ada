"""Nothing forgeable in Redis (docs/reference.md#running-several-replicas): values and
messages carry a MAC under `server.secret`; a tampered or foreign entry is a miss (Ory is
asked again, the request still gets its 200), a foreign message is ignored, never a 500.

Each credential is first used on gateway A only, so gateway B has to read it from Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fleet.conftest import (
    HOOK_TOKEN,
    PREFIX,
    Stack,
    fleet,
    get_page,
    needs_redis,
    token,
)
from tests.fleet.redis_process import RedisServer

pytestmark = needs_redis
OTHER_SECRET = "another-fleet-" + "fedcba9876543210" * 3


async def shared_keys(redis: Any) -> set[bytes]:
    return {key async for key in redis.scan_iter(match=f"{PREFIX}s:*", count=1000)}


async def served_on_a_only(stack: Stack, redis: Any, email: str) -> tuple[str, Any, bytes]:
    """A fresh user's session used on gateway A: (identity, session, its key in Redis)."""
    identity, (session,) = stack.backends.user(email)
    before = await shared_keys(redis)
    assert await get_page(stack.http, stack.nodes[0], token(session)) == (200, identity)
    (key,) = await shared_keys(redis) - before
    return identity, session, key


async def flip(redis: Any, key: bytes, position: int) -> None:
    """Flip the low bits of one byte, keeping the key's expiry."""
    value = bytearray(await redis.get(key))
    value[position] ^= 0x41
    assert await redis.set(key, bytes(value), keepttl=True)


async def miss_on_b(stack: Stack, identity: str, headers: dict[str, str]) -> None:
    """Gateway B answers 200 for the right user, having asked Ory (a miss)."""
    b = stack.nodes[1]
    calls, lines = stack.backends.whoami_calls, len(b.access())
    assert await get_page(stack.http, b, headers) == (200, identity)
    assert stack.backends.whoami_calls == calls + 1
    assert (await b.access_lines(lines + 1))[-1]["cache"] == "miss"


@pytest.mark.parametrize("where", ["version", "stamp", "middle", "tag"])
async def test_tampered_shared_session_is_a_miss_never_a_500(
    stack: Stack, redis_server: RedisServer, where: str
) -> None:
    redis = redis_server.client()
    identity, session, key = await served_on_a_only(stack, redis, f"{where}@example.com")
    length = len(await redis.get(key))
    position = {"version": 0, "stamp": 6, "middle": length // 2, "tag": length - 1}[where]
    await flip(redis, key, position)
    await miss_on_b(stack, identity, token(session))
    await redis.aclose()


async def test_tampered_revocation_marker_is_never_a_500(
    stack: Stack, redis_server: RedisServer
) -> None:
    redis = redis_server.client()
    a, b, c = stack.nodes
    identity, (kept, _) = stack.backends.user("marker@example.com", sessions=2)
    # Revoke-others on C: a marker for the identity; then A asks Ory and shares `kept`
    # afresh (stamped after the marker).
    async with stack.http.delete(f"{c.origin}/_auth/sessions", headers=token(kept)) as answer:
        assert answer.status == 200
    before = await shared_keys(redis)
    assert await get_page(stack.http, a, token(kept)) == (200, identity)
    assert len(await shared_keys(redis) - before) <= 1
    markers = [k async for k in redis.scan_iter(match=f"{PREFIX}r:i:*", count=1000)]
    assert len(markers) == 1
    await flip(redis, markers[0], 0)  # "1796…" becomes "p796…"
    calls = stack.backends.whoami_calls
    status, _ = await get_page(stack.http, b, token(kept))
    await redis.aclose()
    assert status == 200  # it was a 500 before 2d68505 (int() of the marker)
    assert stack.backends.whoami_calls == calls + 1  # a marker it cannot read: a miss


async def test_value_written_under_another_secret_is_a_miss(
    stack: Stack, redis_server: RedisServer
) -> None:
    redis = redis_server.client()
    identity, session, ours = await served_on_a_only(stack, redis, "foreign@example.com")
    async with fleet(stack.backends, redis_server.url, count=1, secret=OTHER_SECRET) as (x,):
        before = await shared_keys(redis)
        assert await get_page(stack.http, x, token(session)) == (200, identity)
        (theirs,) = await shared_keys(redis) - before
        assert theirs != ours  # keys are keyed with the secret too
        # Their well-formed value, MAC'd with their secret, under our key: a miss on B.
        assert await redis.set(ours, await redis.get(theirs), keepttl=True)
        await miss_on_b(stack, identity, token(session))
    await redis.aclose()


async def test_eviction_from_another_secret_is_ignored(
    stack: Stack, redis_server: RedisServer
) -> None:
    identity, (session,) = stack.backends.user("ignored@example.com")
    b = stack.nodes[1]
    await stack.warm(token(session))
    async with fleet(stack.backends, redis_server.url, count=1, secret=OTHER_SECRET) as (x,):
        async with stack.http.post(f"{x.origin}/_auth/hooks/revoke",
                                   json={"identity_id": identity},
                                   headers={"Authorization": f"Bearer {HOOK_TOKEN}"}) as answer:
            assert answer.status == 200
        calls, lines = stack.backends.whoami_calls, len(b.access())
        # Its message and markers named nothing B knows: B still serves from its cache.
        for _ in range(5):
            assert await get_page(stack.http, b, token(session)) == (200, identity)
        assert stack.backends.whoami_calls == calls
        assert {e["cache"] for e in (await b.access_lines(lines + 5))[lines:]} == {"hit"}
