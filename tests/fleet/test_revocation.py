"""Revocation everywhere (docs/reference.md#running-several-replicas): a logout, a revocation
through `/_auth/sessions` or the hook on gateway A ends the session on B and C at once (here:
within 200 ms of A's answer, polled every 10 ms), while the sessions that were kept go on.
Every session is first used on all three gateways, so each has it cached (ttl 30 s)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fleet.conftest import HOOK_TOKEN, Stack, cookie, get_page, needs_redis, token
from tests.fleet.redis_process import RedisServer

pytestmark = needs_redis
AT_ONCE = 0.2


async def still_works(stack: Stack, headers: dict[str, str], identity: str) -> None:
    for node in stack.nodes:
        assert await get_page(stack.http, node, headers) == (200, identity), node.origin


async def test_logout_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    a, b, c = stack.nodes
    identity, (gone, kept) = stack.backends.user("logout@example.com", sessions=2)
    await stack.warm(cookie(gone), token(kept))

    async with stack.http.get(f"{a.origin}/_auth/logout", headers={"Cookie": cookie(gone)[
            "Cookie"]}, allow_redirects=False) as answer:
        assert answer.status == 303
        ory_logout = answer.headers["Location"]
    # Until the browser has finished the logout at Ory, no replica caches the cookie again:
    # each use asks Ory.
    before = stack.backends.whoami_calls
    for node in (b, c, b, c):
        assert await get_page(stack.http, node, cookie(gone)) == (200, identity)
    assert stack.backends.whoami_calls == before + 4

    async with stack.http.get(ory_logout, headers={"Cookie": cookie(gone)["Cookie"]},
                              allow_redirects=False) as finished:
        assert finished.status == 303
    done = time.monotonic()
    assert max(await stack.all_refused(cookie(gone), done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)


async def test_revoke_others_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    a, b, c = stack.nodes
    identity, (kept, second, third) = stack.backends.user("others@example.com", sessions=3)
    await stack.warm(token(kept), cookie(second), token(third))

    async with stack.http.delete(f"{a.origin}/_auth/sessions", headers=token(kept)) as answer:
        assert answer.status == 200
        assert (await answer.json())["revoked"] >= 2
    done = time.monotonic()
    for gone in (cookie(second), token(third)):
        assert max(await stack.all_refused(gone, done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)


async def test_revoke_one_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    a, b, c = stack.nodes
    identity, (kept, gone, bystander) = stack.backends.user("one@example.com", sessions=3)
    await stack.warm(token(kept), cookie(gone), cookie(bystander))

    async with stack.http.delete(f"{a.origin}/_auth/sessions/{gone.id}",
                                 headers=token(kept)) as answer:
        assert answer.status == 204
    done = time.monotonic()
    assert max(await stack.all_refused(cookie(gone), done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)
    await still_works(stack, cookie(bystander), identity)


async def hook(stack: Stack, body: dict[str, str]) -> int:
    a = stack.nodes[0]
    async with stack.http.post(f"{a.origin}/_auth/hooks/revoke", json=body,
                               headers={"Authorization": f"Bearer {HOOK_TOKEN}"}) as answer:
        assert answer.status == 200, await answer.text()
        evicted = (await answer.json())["evicted"]
        assert isinstance(evicted, int)
        return evicted


async def test_session_hook_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    _, b, c = stack.nodes
    identity, (kept, gone) = stack.backends.user("hook@example.com", sessions=2)
    await stack.warm(token(kept), cookie(gone))
    stack.ory.revoke_session(gone.id)  # an admin at Ory: the caches do not know yet
    assert await get_page(stack.http, b, cookie(gone)) == (200, identity)

    assert await hook(stack, {"session_id": gone.id}) == 1
    done = time.monotonic()
    assert max(await stack.all_refused(cookie(gone), done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)


async def test_identity_hook_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    _, b, c = stack.nodes
    identity, (kept, gone, also_gone) = stack.backends.user("id-hook@example.com", sessions=3)
    await stack.warm(token(kept), cookie(gone), token(also_gone))
    stack.ory.revoke_session(gone.id)
    stack.ory.revoke_session(also_gone.id)
    assert await get_page(stack.http, c, token(also_gone)) == (200, identity)

    assert await hook(stack, {"identity_id": identity}) == 3
    done = time.monotonic()
    for headers in (cookie(gone), token(also_gone)):
        assert max(await stack.all_refused(headers, done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)  # Ory is asked again, and says yes


async def test_session_validated_before_a_revocation_is_never_shared_after_it(
    stack: Stack,
) -> None:
    """B asks Ory just before A revokes and Ory's (slow) yes arrives after the revocation:
    B's own answer may say yes, but B keeps nothing, here or in Redis, and no replica serves
    the session after A's answer."""
    a, b, c = stack.nodes
    identity, (kept, gone) = stack.backends.user("slow-ory@example.com", sessions=2)
    await get_page(stack.http, a, token(kept))
    stack.ory.faults.latency = 0.3  # Ory answers each call 300 ms after it came
    asking = asyncio.ensure_future(get_page(stack.http, b, cookie(gone)))
    await asyncio.sleep(0.05)  # B's whoami is on its way: Ory will judge it before the DELETE
    async with stack.http.delete(f"{a.origin}/_auth/sessions/{gone.id}",
                                 headers=token(kept)) as answer:
        assert answer.status == 204
    done = time.monotonic()
    assert await asking == (200, identity)  # asked before the revocation: fine
    stack.ory.faults.latency = 0
    for node in (b, c, a):
        assert await get_page(stack.http, node, cookie(gone)) == (401, None), node.origin
    assert time.monotonic() - done < 5


@pytest.mark.parametrize("how", ["revoke-one", "revoke-others", "token-logout"])
async def test_session_shared_before_a_revocation_is_a_miss_whoever_writes_it_back(
    stack: Stack, redis_server: RedisServer, how: str
) -> None:
    """A value shared before the revocation, written back to Redis after it (a late writer,
    a replay): its marker makes it a miss on a replica that never had the session."""
    a, b, c = stack.nodes
    identity, (kept, gone) = stack.backends.user(f"late-{how}@example.com", sessions=2)
    redis = redis_server.client()
    before = {k async for k in redis.scan_iter(match="gateway:s:*")}
    assert await get_page(stack.http, a, token(gone)) == (200, identity)
    (key,) = {k async for k in redis.scan_iter(match="gateway:s:*")} - before
    value = await redis.get(key)
    if how == "revoke-one":
        answer = await stack.http.delete(f"{b.origin}/_auth/sessions/{gone.id}",
                                         headers=token(kept))
    elif how == "revoke-others":
        answer = await stack.http.delete(f"{b.origin}/_auth/sessions", headers=token(kept))
    else:
        answer = await stack.http.get(f"{b.origin}/_auth/logout", headers=token(gone),
                                      allow_redirects=False)
    assert answer.status in (200, 204, 303)
    assert await redis.set(key, value, px=30_000)  # as it was, fresh for 30 s more
    calls = stack.backends.whoami_calls
    assert await get_page(stack.http, c, token(gone)) == (401, None)
    assert stack.backends.whoami_calls == calls + 1  # C asked Ory: Redis' copy was a miss
    await redis.aclose()


async def test_revocations_metric_counts_evictions_heard_from_other_replicas(
    stack: Stack,
) -> None:
    a, b, c = stack.nodes
    _, (kept, gone) = stack.backends.user("metric@example.com", sessions=2)
    await stack.warm(token(kept), token(gone))
    async with stack.http.delete(f"{a.origin}/_auth/sessions/{gone.id}",
                                 headers=token(kept)) as answer:
        assert answer.status == 204
    assert await a.metric(stack.http, 'gateway_revocations_total{source="revoke"}') == 1
    assert max(await stack.all_refused(token(gone), time.monotonic(), [b, c])) <= AT_ONCE
    for node in (b, c):
        assert await node.metric(stack.http, 'gateway_revocations_total{source="fleet"}') \
            is not None
