"""How evictions travel between session caches: one small interface, chosen once where the
app is wired (docs/reference.md#running-several-replicas).

An eviction is `(kind, value, extra)`: "k" a credential key (hex; extra: seconds to hold
it), "s" a session id (extra: its identity id), "i" an identity id (extra: the session to
keep), "*" everything (a cache that may have missed evictions). Implementations: the local
datagram bus between the workers of one machine (bus_local.py) and Redis between machines
(bus_redis.py); a gateway with both tells both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Eviction = tuple[str, str, str]
Deliver = Callable[[Eviction], None]


class EvictionBus(Protocol):
    """Carries this cache's evictions to the others, and theirs to this one."""

    def tell(self, eviction: Eviction) -> None:
        """Send one eviction to every other cache; never blocks, never fails a request."""
        ...

    def start(self, deliver: Deliver) -> None:
        """Begin handing the other caches' evictions to `deliver` (on the running loop)."""
        ...

    async def settle(self) -> None:
        """Return once what was told has left (bounded): before a revoking answer leaves."""
        ...

    async def stop(self) -> None:
        """Stop listening and let go of the transport (app cleanup)."""
        ...


class NoBus:
    """One process, one cache: nobody to tell."""

    def tell(self, eviction: Eviction) -> None:
        pass

    def start(self, deliver: Deliver) -> None:
        pass

    async def settle(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class FanOut:
    """Several buses as one (the local workers and the fleet)."""

    def __init__(self, *buses: EvictionBus) -> None:
        self._buses = buses

    def tell(self, eviction: Eviction) -> None:
        for bus in self._buses:
            bus.tell(eviction)

    def start(self, deliver: Deliver) -> None:
        for bus in self._buses:
            bus.start(deliver)

    async def settle(self) -> None:
        for bus in self._buses:
            await bus.settle()

    async def stop(self) -> None:
        for bus in self._buses:
            await bus.stop()
