"""The shared cache (docs/reference.md#running-several-replicas, `fleet.shared_cache`): a
session validated by one replica is reused by the others, and when several miss at once one
asks Ory while the others wait: one whoami per credential per ttl for the whole fleet. The
access log says `shared` for an answer that came from Redis.

At most 10 users are in flight at once: a burst large enough to lag a gateway's event loop
past the 50 ms bound of a Redis call makes that gateway declare Redis down (a separate
matter, see test_redis_failures.py); these tests are about sharing."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import aiohttp
import pytest

from tests.fleet.conftest import (
    Backends,
    Node,
    backends,
    client,
    cookie,
    fleet,
    get_page,
    needs_redis,
    token,
)
from tests.fleet.redis_process import RedisServer

pytestmark = needs_redis
USERS = 50
IN_FLIGHT = 10


def make_users(shared: Backends, count: int) -> list[tuple[str, dict[str, str]]]:
    """`count` identities with one session each; half send a cookie, half a token."""
    users = []
    for n in range(count):
        identity, (session,) = shared.user(f"shared{n}@example.com")
        users.append((identity, cookie(session) if n % 2 else token(session)))
    return users


async def every_user_on_every_gateway(
    users: list[tuple[str, dict[str, str]]], nodes: list[Node], http: aiohttp.ClientSession,
    *, at_once: int | None, seed: int,
) -> None:
    """Each user asks each gateway once, in a random order; users numbered 0 mod `at_once`
    ask all three gateways at the same moment, the others (all, with None) one after
    another."""
    rng = random.Random(seed)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one_user(n: int, identity: str, headers: dict[str, str]) -> None:
        order = rng.sample(nodes, len(nodes))
        async with gate:
            if at_once is not None and n % at_once == 0:
                answers = await asyncio.gather(*(get_page(http, nd, headers) for nd in order))
            else:
                answers = [await get_page(http, node, headers) for node in order]
        assert answers == [(200, identity)] * len(nodes)

    await asyncio.gather(*(one_user(n, *user) for n, user in enumerate(users)))


async def cache_results(nodes: list[Node], per_node: int) -> Counter[str]:
    lines = await asyncio.gather(*(node.access_lines(per_node) for node in nodes))
    return Counter(entry["cache"] for node_lines in lines for entry in node_lines)


@pytest.mark.parametrize("seed", [1, 2])
async def test_one_ory_call_per_credential_for_the_fleet_when_replicas_ask_in_turn(
    redis_server: RedisServer, seed: int
) -> None:
    async with backends() as shared, fleet(shared, redis_server.url, ttl="30s") as nodes, \
            client() as http:
        users = make_users(shared, USERS)
        await every_user_on_every_gateway(users, nodes, http, at_once=None, seed=seed)
        assert shared.whoami_calls == USERS, [node.events() for node in nodes]
        # One look-up per credential asked Ory (a miss); the other two came from Redis.
        assert await cache_results(nodes, USERS) == {"miss": USERS, "shared": 2 * USERS}
        shared_lookups = 'gateway_session_cache_lookups_total{result="shared"}'
        assert sum([await node.metric(http, shared_lookups) or 0 for node in nodes]) \
            == 2 * USERS
        assert all(node.count("Redis unavailable") == 0 for node in nodes)


async def test_one_ory_call_per_credential_for_the_fleet_when_replicas_miss_at_once(
    redis_server: RedisServer,
) -> None:
    async with backends() as shared, fleet(shared, redis_server.url, ttl="30s") as nodes, \
            client() as http:
        users = make_users(shared, 2 * USERS)
        await every_user_on_every_gateway(users, nodes, http, at_once=1, seed=4)
        assert all(node.count("Redis unavailable") == 0 for node in nodes)
        assert shared.whoami_calls == 2 * USERS


async def test_one_ory_call_per_credential_per_gateway_when_not_shared(
    redis_server: RedisServer,
) -> None:
    unshared = "shared_cache = false"
    async with backends() as shared, \
            fleet(shared, redis_server.url, fleet_keys=unshared) as nodes, client() as http:
        users = make_users(shared, USERS)
        await every_user_on_every_gateway(users, nodes, http, at_once=3, seed=3)
        assert shared.whoami_calls == 3 * USERS
        assert await cache_results(nodes, USERS) == {"miss": 3 * USERS}


async def test_no_sharing_between_replicas_whose_identity_headers_differ(
    redis_server: RedisServer,
) -> None:
    """A rolling change of [identity_headers]: a replica that sends the email as X-User-Id
    never takes a session shared by one that sends the id."""
    email_as_id = '[identity_headers]\n"X-User-Id" = "identity.traits.email"'
    async with backends() as shared, fleet(shared, redis_server.url, count=1) as (a,), \
            fleet(shared, redis_server.url, count=1, more=email_as_id) as (x,), \
            client() as http:
        identity, (session,) = shared.user("rolling@example.com")
        assert await get_page(http, a, token(session)) == (200, identity)
        calls = shared.whoami_calls
        assert await get_page(http, x, token(session)) == (200, "rolling@example.com")
        assert shared.whoami_calls == calls + 1
        assert await get_page(http, a, token(session)) == (200, identity)


async def test_shared_session_is_not_served_past_one_ttl_after_ory_was_asked(
    redis_server: RedisServer,
) -> None:
    """cache.ttl 1 s: a session revoked at Ory (no gateway told) is served, from any cache,
    local or shared, only by requests that start within 1 s of the first validation."""
    ttl, slack = 1.0, 0.1
    async with backends() as shared, fleet(shared, redis_server.url, ttl="1s") as nodes, \
            client() as http:
        identity, (session,) = shared.user("ttl@example.com")
        first = time.monotonic()
        assert await get_page(http, nodes[0], token(session)) == (200, identity)
        shared.ory.revoke_session(session.id)
        served: list[tuple[float, int]] = []

        async def poll(node: Node) -> None:
            while time.monotonic() < first + ttl + 1.0:
                started = time.monotonic()
                status, _ = await get_page(http, node, token(session))
                served.append((started - first, status))
                await asyncio.sleep(0.02)

        await asyncio.gather(*(poll(node) for node in nodes))
        assert any(status == 200 for _, status in served[:3])  # it was cached, and shared
        late = [(at, status) for at, status in served if status == 200 and at > ttl + slack]
        assert late == []
        assert served[-1][1] == 401
