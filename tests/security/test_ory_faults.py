"""Faults at Ory: each gets the answer
docs/reference.md#outcomes promises (never 500, never let through), leaves
no gateway task or connection behind, and the gateway recovers when the fault ends.

integration/test_ory_outcomes.py checks the status for each failure; this adds what a fault
leaves behind, recovery, and slowness on both sides of `ory.timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from pytest_aiohttp import AiohttpServer

from tests.conftest import Stack, StackFactory
from tests.security.conftest import API, ROUTES_UNDER_ATTACK, client_services
from tests.security.leaks import assert_nothing_left

Step = Callable[[Stack], Awaitable[None]]


async def nothing(stack: Stack) -> None:
    return None


def set_fault(**changes: object) -> Step:
    async def start(stack: Stack) -> None:
        for name, value in changes.items():
            setattr(stack.ory.faults, name, value)

    return start


async def end_faults(stack: Stack) -> None:
    stack.ory.faults.reset()


@dataclass(frozen=True)
class OryFault:
    start: Step
    status: int  # what the client must get while the fault lasts
    end: Step = end_faults


FAULTS = [
    pytest.param(OryFault(set_fault(hang=True), 503), id="hanging"),
    pytest.param(OryFault(set_fault(latency=0.05), 200), id="slow-within-timeout"),
    pytest.param(OryFault(set_fault(latency=0.6), 503), id="slow-beyond-timeout"),
    pytest.param(OryFault(set_fault(whoami_status=500), 503), id="http-500"),
    pytest.param(OryFault(set_fault(whoami_status=502), 503), id="http-502-html"),
    pytest.param(OryFault(set_fault(whoami_status=503), 503), id="http-503"),
    pytest.param(OryFault(set_fault(whoami_status=504), 503), id="http-504"),
    pytest.param(OryFault(set_fault(whoami_status=429), 503), id="http-429-rate-limited"),
    pytest.param(OryFault(set_fault(garbage=True), 503), id="non-json"),
    pytest.param(OryFault(set_fault(truncate=True), 503), id="cut-off-body"),
]


@pytest.fixture
async def slow_ory_stack(make_stack: StackFactory) -> Stack:
    return await make_stack(routes=ROUTES_UNDER_ATTACK, ory='timeout = "300ms"')


async def assert_recovers(stack: Stack, cookie: str) -> None:
    response = await stack.client.get("/admin/x", headers=stack.cookie(cookie))
    assert response.status == 200
    assert stack.upstream.header("X-User-Email") == ["faulty@example.com"]


@pytest.mark.parametrize("fault", FAULTS)
async def test_ory_fault_gets_promised_answer_leaves_nothing_and_recovers(
    slow_ory_stack: Stack, fault: OryFault
) -> None:
    stack = slow_ory_stack
    cookie, _ = stack.login("faulty@example.com")
    await fault.start(stack)
    async with asyncio.timeout(5):
        response = await stack.client.get("/admin/x", headers={**stack.cookie(cookie), **API})
    assert response.status == fault.status
    if fault.status == 503:
        assert (await response.json())["error"]["id"] == "ory_unavailable"
        assert stack.upstream.seen == []
        assert "x-ratelimit-remaining" not in {k.lower() for k in response.headers}
    await fault.end(stack)
    await assert_nothing_left(client_services(stack.client))
    await assert_recovers(stack, cookie)
    await assert_nothing_left(client_services(stack.client))


async def test_ory_down_is_503_and_recovers_when_it_is_back(
    slow_ory_stack: Stack, aiohttp_server: AiohttpServer
) -> None:
    stack = slow_ory_stack
    cookie, _ = stack.login("faulty@example.com")
    port = stack.ory_server.port
    await stack.ory_server.close()
    for _ in range(3):  # no pooled connection may survive into the next attempt
        response = await stack.client.get("/admin/x", headers={**stack.cookie(cookie), **API})
        assert response.status == 503
    assert stack.upstream.seen == []
    await assert_nothing_left(client_services(stack.client))
    await aiohttp_server(stack.ory.build_app(), port=port)
    await assert_recovers(stack, cookie)
    await assert_nothing_left(client_services(stack.client))


async def test_many_requests_during_a_hang_all_fail_closed_and_free_everything(
    slow_ory_stack: Stack,
) -> None:
    stack = slow_ory_stack
    cookies = [stack.login(f"hang{n}@example.com")[0] for n in range(20)]
    stack.ory.faults.hang = True
    async with asyncio.timeout(10):
        responses = await asyncio.gather(*(
            stack.client.get("/admin/x", headers={**stack.cookie(c), **API}) for c in cookies
        ))
    assert [r.status for r in responses] == [503] * 20
    stack.ory.faults.release()
    await assert_nothing_left(client_services(stack.client))
    assert stack.upstream.seen == []
