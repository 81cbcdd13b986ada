"""The shared-timer deadlines behave like asyncio.timeout (TimeoutError, pushable)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.deadlines import Watchdog

BOUND = 2.0  # every wait here is bounded by this


async def test_overdue_wait_raises_timeout_error() -> None:
    watchdog = Watchdog(tick=0.01)
    never = asyncio.Event()
    async with asyncio.timeout(BOUND):
        with pytest.raises(TimeoutError), watchdog.within(0.05):
            await never.wait()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_wait_that_finishes_in_time_is_untouched_and_the_timer_stops() -> None:
    watchdog = Watchdog(tick=0.01)
    with watchdog.within(BOUND):
        await asyncio.sleep(0)
    assert watchdog._timer is not None  # armed while the wait was pending …
    await asyncio.sleep(0.03)
    assert watchdog._timer is None  # … and not re-armed once nothing is pending


async def test_push_moves_the_deadline() -> None:
    watchdog = Watchdog(tick=0.01)
    done = asyncio.Event()

    async def keep_pushing() -> None:
        for _ in range(6):
            await asyncio.sleep(0.02)
            deadline.push(0.05)
        done.set()

    async with asyncio.timeout(BOUND):
        with watchdog.within(0.05) as deadline:
            pusher = asyncio.create_task(keep_pushing())
            await done.wait()  # 0.12 s in all: longer than 0.05, but pushed every 0.02
        await pusher


async def test_outside_cancellation_stays_a_cancellation() -> None:
    watchdog = Watchdog(tick=0.01)
    started = asyncio.Event()

    async def waiter() -> None:
        with watchdog.within(BOUND):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(waiter())
    async with asyncio.timeout(BOUND):
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    watchdog.close()
