"""A claim lock nobody set (found by an outside tester, F7 of issue 13): every replica sets
its claim with a life, so a lock key without one is not a replica asking Ory, and nobody
waits for it (docs/reference.md#running-several-replicas: Redis never slows a request by
more than its bound). On 5d4cffd, the commit before the fix, gateway B waited `ory.timeout`
(3 s) for such a lock before asking Ory itself."""

from __future__ import annotations

import time

from tests.fleet.conftest import PREFIX, Stack, get_page, needs_redis, token
from tests.fleet.redis_process import RedisServer

pytestmark = needs_redis


async def test_lock_without_a_life_is_not_waited_for(
    stack: Stack, redis_server: RedisServer
) -> None:
    redis = redis_server.client()
    a, b, _ = stack.nodes
    identity, (session,) = stack.backends.user("stuck@example.com")
    before = {key async for key in redis.scan_iter(match=f"{PREFIX}s:*")}
    assert await get_page(stack.http, a, token(session)) == (200, identity)
    (shared,) = {key async for key in redis.scan_iter(match=f"{PREFIX}s:*")} - before
    lock = shared.replace(f"{PREFIX}s:".encode(), f"{PREFIX}l:".encode(), 1)
    await redis.delete(shared)  # B must ask: nothing shared ...
    assert await redis.set(lock, b"someone")  # ... and a lock that never expires
    assert await redis.pttl(lock) == -1

    started = time.monotonic()
    assert await get_page(stack.http, b, token(session)) == (200, identity)
    waited = time.monotonic() - started

    assert waited < 1.0, f"B waited {waited:.2f} s for a lock no replica holds"
    await redis.aclose()
