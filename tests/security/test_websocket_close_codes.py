"""Class WEBSOCKET-CLOSE-CODES: the bridge passes on a close code only when an endpoint may
send it (RFC 6455 §7.4): 1005, 1006 and 1015 only *describe* a close, 1004 and 1016-2999 are
reserved, 5000 and up do not exist. Found by an outside tester: an upstream that hung up
without a close frame reached the client as close 1006, and codes such as 5000 or 65535 were
relayed either way as they came. Anything unsendable goes on as 1001, going away."""

from __future__ import annotations

import asyncio
import time

import pytest
from pytest_aiohttp import AiohttpServer

from gateway.server import SHUTDOWN_GRACE
from tests.security.scripted_upstream import CLOSE_WITH, HANG_UP, scripted_stack, ws_frame
from tests.security.test_websocket_limits import RESERVED_CLOSE_CODES, websocket

GOING_AWAY = 1001


@pytest.mark.parametrize(
    ("sent", "relayed"),
    [(1006, GOING_AWAY), (1015, GOING_AWAY), (1004, GOING_AWAY), (2999, GOING_AWAY),
     (5000, GOING_AWAY), (65535, GOING_AWAY), (999, GOING_AWAY),
     (1000, 1000), (1011, 1011), (1014, 1014), (3000, 3000), (4999, 4999)],
)
async def test_an_upstream_close_code_reaches_the_client_only_if_sendable(
    aiohttp_server: AiohttpServer, sent: int, relayed: int
) -> None:
    async with scripted_stack(aiohttp_server) as stack, websocket(stack) as client:
        await client.send(ws_frame(1, CLOSE_WITH + str(sent).encode()))
        assert await client.close_code() == relayed


async def test_an_upstream_that_hangs_up_without_a_close_frame_is_going_away(
    aiohttp_server: AiohttpServer,
) -> None:
    async with scripted_stack(aiohttp_server) as stack, websocket(stack) as client:
        await client.send(ws_frame(1, HANG_UP))
        code = await client.close_code()
    assert code == GOING_AWAY
    assert code not in RESERVED_CLOSE_CODES


@pytest.mark.parametrize(
    ("sent", "relayed"),
    [(1006, GOING_AWAY), (5000, GOING_AWAY), (65535, GOING_AWAY), (3000, 3000),
     (1000, 1000)],
)
async def test_a_client_close_code_reaches_the_upstream_only_if_sendable(
    aiohttp_server: AiohttpServer, sent: int, relayed: int
) -> None:
    async with scripted_stack(aiohttp_server) as stack, websocket(stack) as client:
        await client.send(ws_frame(8, sent.to_bytes(2, "big")))
        await client.close_code()
        await stack.upstream.wait_for(lambda: bool(stack.upstream.ws_closes), within=5)
    assert stack.upstream.ws_closes == [relayed]


async def test_a_shutdown_closes_open_websockets_with_1001_both_ways(
    aiohttp_server: AiohttpServer,
) -> None:
    """Found by an outside tester: on SIGTERM an open WebSocket got no close frame at all and
    the gateway took ~22 s to exit (aiohttp waited out the grace period, then cut it),
    where the docs promise in-flight work up to 10 s."""
    async with scripted_stack(aiohttp_server) as stack, websocket(stack) as client:
        started = time.monotonic()
        stopping = asyncio.create_task(stack.gateway.stop())
        async with asyncio.timeout(5):
            code = await client.close_code()
        await stack.upstream.wait_for(lambda: bool(stack.upstream.ws_closes), within=5)
        exit_code = await stopping
        took = time.monotonic() - started
    assert (code, stack.upstream.ws_closes, exit_code) == (GOING_AWAY, [GOING_AWAY], 0)
    assert took < SHUTDOWN_GRACE, f"the gateway took {took:.1f} s to stop"
