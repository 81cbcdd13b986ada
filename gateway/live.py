"""Long-lived connections end with their session (docs/reference.md#long-lived-connections).

A WebSocket or a streamed answer (server-sent events, a long download) opened with a
session is registered here. It ends the moment that session is evicted from the cache,
here or on any other worker or replica (logout, revocation, the hook), and, while it stays
open, a re-check every `cache.ttl` ends it once Ory no longer knows the session or it has
expired. Connections on public routes, or without a session, are never registered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.bus import Eviction
from gateway.errors import OryUnavailableError
from gateway.session import Session

log = logging.getLogger("gateway.live")

# The session now and until when that answer holds (the cache entry's freshness), or None
# when it is gone.
Recheck = Callable[[], Awaitable[tuple[Session, float] | None]]


@dataclass(eq=False)
class Live:
    """One open connection and how to end it."""

    key: bytes  # the credential's cache key
    session_id: str
    identity_id: str
    end: Callable[[], None]
    ended: bool = False
    checker: asyncio.Task[None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """End it now (once)."""
        if not self.ended:
            self.ended = True
            self.end()


class LiveConnections:
    """The registry; `evicted` is the cache's on_evict watcher."""

    def __init__(self) -> None:
        self._open: set[Live] = set()

    def __len__(self) -> int:
        return len(self._open)

    def open(
        self, key: bytes, session: Session, end: Callable[[], None], *, recheck: Recheck,
        every: float, clock: Callable[[], float],
    ) -> Live:
        """Register a connection. It is re-checked as soon as the answer that let it in
        stops being fresh (so a revocation made at Ory ends it within one `cache.ttl`), and
        at least every `every` seconds."""
        live = Live(key, session.session_id, session.identity_id, end)
        self._open.add(live)
        live.checker = asyncio.ensure_future(self._recheck(live, recheck, every, clock))
        return live

    def close(self, live: Live) -> None:
        """The connection ended on its own."""
        self._open.discard(live)
        if live.checker is not None:
            live.checker.cancel()

    def evicted(self, eviction: Eviction) -> None:
        """An eviction here or elsewhere: end what belonged to it."""
        kind, value, extra = eviction
        for live in list(self._open):
            if _belongs(live, kind, value, extra):
                log.info("ending a long-lived connection: its session was revoked")
                self.close(live)
                live.stop()

    async def _recheck(
        self, live: Live, recheck: Recheck, every: float, clock: Callable[[], float]
    ) -> None:
        wait = every
        while not live.ended:
            await asyncio.sleep(max(wait, 0.05))
            wait = every
            try:
                found = await recheck()
            except OryUnavailableError:
                continue  # Ory cannot say: keep it, ask again at the next turn
            now = clock()
            if found is None or found[0].session_id != live.session_id or (
                not found[0].is_valid_at(now)
            ):
                log.info("ending a long-lived connection: its session is over")
                self._open.discard(live)
                live.stop()
                return
            wait = min(every, found[1] - now + 0.05)


def _belongs(live: Live, kind: str, value: str, extra: str) -> bool:
    if kind == "k":
        return live.key.hex() == value
    if kind == "s":
        return live.session_id == value and (not extra or live.identity_id == extra)
    if kind == "i":
        return live.identity_id == value and live.session_id != extra
    return False  # "*": a cache emptied for safety ends no connection


class Tether(NamedTuple):
    """What ties one request's long-lived connection to its session, handed down by the
    pipeline to the relay, which knows when a connection becomes long-lived."""

    registry: LiveConnections
    key: bytes
    session: Session
    recheck: Recheck
    every: float
    clock: Callable[[], float]

    def hold(self, end: Callable[[], None]) -> Live:
        return self.registry.open(self.key, self.session, end, recheck=self.recheck,
                                  every=self.every, clock=self.clock)

    def release(self, live: Live) -> None:
        self.registry.close(live)
