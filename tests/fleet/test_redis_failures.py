"""Redis is never a single point of failure (docs/reference.md#running-several-replicas): down
at start, killed mid-run, slow, stuck or answering errors, requests go on with the local
cache and Ory, never a 5xx and never waiting long; one warning per outage, and when Redis is
back each replica empties its local cache once; `/_auth/ready` and `gateway_fleet_connected`
tell the state."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp
import pytest

from gateway.standin import StandinSession
from tests.fleet.conftest import (
    Node,
    Stack,
    backends,
    client,
    fleet,
    get_page,
    needs_redis,
    token,
)
from tests.fleet.redis_process import RedisProxy, RedisServer, wait_until

pytestmark = needs_redis
UNAVAILABLE = "Redis unavailable"
BACK = "Redis is back; local caches emptied"
QUICK = 0.15  # a request waits at most 50 ms per Redis call: ~100 ms + Ory's few ms


@dataclass
class Load:
    """Requests from known users (cached) and brand-new ones (a miss: Redis, then Ory),
    spread over the gateways until stopped; every answer recorded."""

    stack: Stack
    answers: list[tuple[float, int, bool]] = field(default_factory=list)  # took, status, ok
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self, n: int) -> None:
        rng = random.Random(n)
        known = [self.stack.backends.user(f"load{n}-{k}@example.com") for k in range(3)]
        fresh = 0
        while not self.stop.is_set():
            if rng.random() < 0.3:
                fresh += 1
                known.append(self.stack.backends.user(f"new{n}-{fresh}@example.com"))
                identity, (session,) = known[-1]
            else:
                identity, (session,) = rng.choice(known)
            started = time.monotonic()
            status, user = await get_page(self.stack.http, rng.choice(self.stack.nodes),
                                          token(session))
            self.answers.append((time.monotonic() - started, status, user == identity))
            await asyncio.sleep(0.01)

    async def run_until_stopped(self, workers: int = 4) -> None:
        await asyncio.gather(*(self.worker(n) for n in range(workers)))

    def check(self, bound: float = QUICK) -> None:
        assert len(self.answers) > 50
        bad = [a for a in self.answers if a[1] != 200 or not a[2]]
        assert bad == [], bad[:10]
        slowest = max(took for took, _, _ in self.answers)
        assert slowest < bound, f"slowest answer {slowest * 1000:.0f} ms"


async def revoke_quickly(stack: Stack, gone: StandinSession, kept: StandinSession) -> None:
    """Revoke-one on gateway A while Redis is out: a quick 204, and A refuses it at once."""
    a = stack.nodes[0]
    started = time.monotonic()
    async with stack.http.delete(f"{a.origin}/_auth/sessions/{gone.id}",
                                 headers=token(kept)) as answer:
        assert answer.status == 204
    assert time.monotonic() - started < QUICK
    assert await get_page(stack.http, a, token(gone)) == (401, None)


async def fleet_state_is(http: aiohttp.ClientSession, nodes: list[Node], state: str,
                         metric: float, within: float = 15.0) -> None:
    async def all_there() -> bool:
        for node in nodes:
            if await node.fleet_state(http) != state:
                return False
            if await node.metric(http, "gateway_fleet_connected") != metric:
                return False
        return True

    await wait_until(all_there, within, every=0.1, what=f"every gateway {state}")


async def test_requests_work_and_ready_tells_when_redis_is_down_at_start(
    redis_server: RedisServer,
) -> None:
    await redis_server.kill()
    async with backends() as shared, \
            fleet(shared, redis_server.url, connected=False) as nodes, client() as http:
        stack = Stack(shared, nodes, http)
        _, (kept, gone) = shared.user("early@example.com", sessions=2)
        await stack.warm(token(kept), token(gone))
        for node in nodes:
            async with http.get(f"{node.origin}/_auth/ready") as ready:
                assert ready.status == 200
                assert await ready.json() == {"status": "ok", "fleet": "disconnected"}
            assert await node.metric(http, "gateway_fleet_connected") == 0

        await redis_server.start()
        await fleet_state_is(http, nodes, "connected", 1)
        await stack.warm(token(kept), token(gone))
        async with http.delete(f"{nodes[0].origin}/_auth/sessions/{gone.id}",
                               headers=token(kept)) as answer:
            assert answer.status == 204
        done = time.monotonic()
        assert max(await stack.all_refused(token(gone), done, nodes[1:])) <= 0.2


async def test_no_request_fails_when_redis_is_killed_mid_run(
    stack: Stack, redis_server: RedisServer
) -> None:
    identity, (kept, gone) = stack.backends.user("outage@example.com", sessions=2)
    await stack.warm(token(kept), token(gone))
    load = Load(stack)
    running = asyncio.ensure_future(load.run_until_stopped())
    try:
        await asyncio.sleep(0.5)  # the load runs against a healthy fleet first
        await redis_server.kill()
        await fleet_state_is(stack.http, stack.nodes, "disconnected", 0, within=5.0)
        await revoke_quickly(stack, gone, kept)  # B and C cannot hear of it yet
        await asyncio.sleep(1.0)  # an outage under load
        await redis_server.start()
        await fleet_state_is(stack.http, stack.nodes, "connected", 1)
        await asyncio.sleep(0.5)  # and under load once it is back
    finally:
        load.stop.set()
        await running
    load.check()
    # Back, every replica emptied its cache: the revocation made meanwhile holds everywhere.
    for node in stack.nodes:
        assert await get_page(stack.http, node, token(gone)) == (401, None)
        assert await get_page(stack.http, node, token(kept)) == (200, identity)
    for node in stack.nodes:
        assert node.count(UNAVAILABLE) == 1, node.events()
        assert node.count(BACK) == 1, node.events()


@pytest.mark.parametrize("mode", ["delay", "blackhole"])
async def test_requests_answer_quickly_when_redis_is_slow_or_stuck(
    redis_proxy: RedisProxy, mode: str
) -> None:
    proxy = redis_proxy
    async with backends() as shared, fleet(shared, proxy.url) as nodes, client() as http:
        stack = Stack(shared, nodes, http)
        load = Load(stack)
        running = asyncio.ensure_future(load.run_until_stopped())
        try:
            await asyncio.sleep(0.3)
            proxy.mode = mode
            await asyncio.sleep(1.5)
            await fleet_state_is(http, nodes, "disconnected", 0, within=5.0)
        finally:
            load.stop.set()
            await running
        load.check(bound=0.3)
        assert [node.count(UNAVAILABLE) for node in nodes] == [1, 1, 1]
        proxy.mode = "pass"
        await fleet_state_is(http, nodes, "connected", 1)
        assert [node.count(BACK) for node in nodes] == [1, 1, 1]


async def test_revocation_made_while_redis_was_stuck_holds_everywhere_once_it_is_back(
    redis_proxy: RedisProxy,
) -> None:
    proxy = redis_proxy
    async with backends() as shared, fleet(shared, proxy.url) as nodes, client() as http:
        stack = Stack(shared, nodes, http)
        _, (kept, gone) = shared.user("stuck@example.com", sessions=2)
        await stack.warm(token(kept), token(gone))
        proxy.mode = "blackhole"
        await fleet_state_is(http, nodes, "disconnected", 0, within=5.0)
        await revoke_quickly(stack, gone, kept)
        proxy.mode = "pass"
        await fleet_state_is(http, nodes, "connected", 1)
        assert [node.count(BACK) for node in nodes] == [1, 1, 1]
        served = [await get_page(http, node, token(gone)) for node in nodes]
        assert served == [(401, None)] * 3, served


async def test_revocation_made_on_a_replica_cut_off_from_redis_reaches_the_others_on_return(
    redis_server: RedisServer, redis_proxy: RedisProxy,
) -> None:
    async with backends() as shared, client() as http, \
            fleet(shared, redis_proxy.url, count=1) as (a,), \
            fleet(shared, redis_server.url, count=2) as (b, c):
        stack = Stack(shared, [a, b, c], http)
        identity, (kept, gone) = shared.user("partition@example.com", sessions=2)
        await stack.warm(token(kept), token(gone))
        # Before 4af4ca1 a revocation made on a replica cut off from Redis never reached the
        # others: only that replica emptied its cache when Redis came back.
        redis_proxy.mode = "blackhole"  # only A loses Redis
        await fleet_state_is(http, [a], "disconnected", 0, within=5.0)
        await revoke_quickly(stack, gone, kept)
        redis_proxy.mode = "pass"
        await fleet_state_is(http, [a], "connected", 1)
        assert (b.count(UNAVAILABLE), c.count(UNAVAILABLE)) == (0, 0)
        back = time.monotonic()
        assert max(await stack.all_refused(token(gone), back, [b, c])) <= 1.0
        assert await get_page(http, b, token(kept)) == (200, identity)


async def test_no_500_when_redis_answers_errors(
    stack: Stack, redis_server: RedisServer
) -> None:
    admin = redis_server.client()
    load = Load(stack)
    running = asyncio.ensure_future(load.run_until_stopped())
    try:
        await asyncio.sleep(0.3)
        await admin.execute_command("CLIENT", "PAUSE", "1000", "ALL")  # every command waits
        await asyncio.sleep(1.5)
        await admin.config_set("requirepass", "now-with-a-password")  # NOAUTH for new ones
        await admin.execute_command("CLIENT", "KILL", "TYPE", "normal")
        await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await asyncio.sleep(1.5)
        await fleet_state_is(stack.http, stack.nodes, "disconnected", 0, within=5.0)
        await admin.config_set("requirepass", "")
        await fleet_state_is(stack.http, stack.nodes, "connected", 1)
    finally:
        load.stop.set()
        await running
        await admin.aclose()
    load.check(bound=0.3)
    for node in stack.nodes:  # each outage said once, and its end once
        assert node.count(UNAVAILABLE) == node.count(BACK) >= 1, node.events()
