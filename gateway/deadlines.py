"""Deadlines for upstream waits, checked by one shared timer instead of one timer each.

`asyncio.timeout` arms and cancels a loop timer per request; under uvloop that costs about
14 µs of a ~200 µs proxied request (bench/run.py). Here every wait registers a deadline in
a set, and a single timer, armed only while waits are pending, wakes every TICK seconds and
cancels the tasks whose deadline has passed. A deadline fires at most TICK late, which is
nothing next to `upstream.timeout` (seconds). The semantics otherwise match
`asyncio.timeout`: the overdue task is cancelled and the `with` block raises TimeoutError.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

TICK = 0.05


class Deadline:
    """One wait's deadline; `push(seconds)` moves it (each uploaded chunk does)."""

    __slots__ = ("_cancelling", "_task", "_watchdog", "expired", "when")

    def __init__(self, watchdog: Watchdog, task: asyncio.Task[Any], when: float) -> None:
        self._watchdog = watchdog
        self._task = task
        self._cancelling = task.cancelling()
        self.when = when
        self.expired = False

    def push(self, seconds: float) -> None:
        """The deadline is now `seconds` from now."""
        self.when = time.monotonic() + seconds

    def __enter__(self) -> Deadline:
        self._watchdog.add(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._watchdog.discard(self)
        if self.expired and self._task.uncancel() <= self._cancelling and (
            kind is asyncio.CancelledError
        ):
            raise TimeoutError from error

    def expire(self) -> None:
        self.expired = True
        self._task.cancel()


class Watchdog:
    """The shared timer; `within(seconds)` is the per-wait context manager."""

    def __init__(self, tick: float = TICK) -> None:
        self._tick = tick
        self._pending: set[Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None

    def within(self, seconds: float, task: asyncio.Task[Any] | None = None) -> Deadline:
        """A deadline `seconds` from now for `task` (default: the current task; pass it when
        known, e.g. aiohttp's `request.task`: looking it up costs more than the rest)."""
        task = task or asyncio.current_task()
        if task is None:
            raise RuntimeError("Watchdog.within outside a task")
        return Deadline(self, task, time.monotonic() + seconds)

    def add(self, deadline: Deadline) -> None:
        self._pending.add(deadline)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._tick, self._check)

    def discard(self, deadline: Deadline) -> None:
        self._pending.discard(deadline)

    def _check(self) -> None:
        self._timer = None
        now = time.monotonic()
        for deadline in [d for d in self._pending if d.when <= now and not d.expired]:
            deadline.expire()
        if self._pending:
            self._timer = asyncio.get_running_loop().call_later(self._tick, self._check)

    def close(self) -> None:
        """Stop the timer (app cleanup)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
