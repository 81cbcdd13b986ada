"""What a fault may leave behind in the gateway: in-flight tasks and held connections.

The gateway runs in the test's event loop, so "its" tasks are told apart by their await
chain: a task is the gateway's work while any coroutine in the chain runs code from
`gateway/` (the stand-in excluded) or aiohttp's client. Idle keep-alive server tasks are
not work. Held connections are the ones its two connectors (upstream, Ory) have handed out.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from pathlib import Path

import aiohttp

from gateway.context import Services
from gateway.ory import HttpOryClient

_GATEWAY = str(Path(__file__).resolve().parents[2] / "gateway")
_STANDIN = str(Path(_GATEWAY) / "standin")
_CLIENT_FILES = ("aiohttp/client", "aiohttp/connector")


def _await_chain_files(task: asyncio.Task[object]) -> list[str]:
    files: list[str] = []
    current: object = task.get_coro()
    for _ in range(200):  # bounded: await chains are short
        frame = next((getattr(current, a) for a in ("cr_frame", "ag_frame", "gi_frame")
                      if getattr(current, a, None) is not None), None)
        if isinstance(frame, types.FrameType):
            files.append(frame.f_code.co_filename)
        nxt = next((getattr(current, a) for a in ("cr_await", "ag_await", "gi_yieldfrom")
                    if getattr(current, a, None) is not None), None)
        if nxt is None:
            break
        current = nxt
    return files


def is_gateway_work(task: asyncio.Task[object]) -> bool:
    """True while the task runs gateway code or its outgoing HTTP client."""
    for name in _await_chain_files(task):
        if name.startswith(_GATEWAY) and not name.startswith(_STANDIN):
            return True
        if any(part in name for part in _CLIENT_FILES):
            return True
    return False


def gateway_tasks() -> list[asyncio.Task[object]]:
    me = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not me and is_gateway_work(t)]


def connectors(services: Services) -> dict[str, aiohttp.BaseConnector]:
    """The gateway's upstream and Ory connectors."""
    found: dict[str, aiohttp.BaseConnector] = {}
    if services.upstream is not None and services.upstream.websockets.connector is not None:
        found["upstream websockets"] = services.upstream.websockets.connector
    ory = services.auth.ory
    if isinstance(ory, HttpOryClient) and ory._http.connector is not None:
        found["ory"] = ory._http.connector
    return found


def held_connections(services: Services) -> dict[str, int]:
    """Connections each connector has handed out and not got back."""
    held = {name: len(c._acquired) for name, c in connectors(services).items()}
    if services.upstream is not None:
        held["upstream pool"] = services.upstream.pool.in_use
    return held


async def settle(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Poll `condition` until true; TimeoutError after `within` s. Nothing is decided by the
    passing of time: a leak shows up as the timeout."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - tasks ending and sockets closing set no Event
            await asyncio.sleep(0.005)


async def assert_nothing_left(services: Services, *, within: float = 5.0) -> None:
    """No gateway task in flight and no connection held, within `within` seconds."""

    def clean() -> bool:
        return not gateway_tasks() and not any(held_connections(services).values())

    try:
        await settle(clean, within=within)
    except TimeoutError:
        tasks = [t.get_coro() for t in gateway_tasks()]
        raise AssertionError(
            f"left behind: tasks={tasks} held={held_connections(services)}"
        ) from None
