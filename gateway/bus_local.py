"""The eviction bus between the workers of one machine (`server.workers`): each worker tells
the others what it evicted.

Every worker has its own cache, so a logout or revocation served by one worker must reach
the caches of the others before the user's next request. The parent makes one local
datagram socket pair per worker before forking; a worker sends each eviction to every
sibling's inbox and reads its own inbox on the event loop. A datagram is in the sibling's
socket buffer before the revoking response leaves, so the sibling's loop reads it before
it can run a handler for a request sent after that response.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from gateway.bus import Deliver, Eviction

log = logging.getLogger("gateway.workers")

_SEPARATOR = "\x00"
_MAX_DATAGRAM = 4096
BUFFER = 4 * 1024 * 1024


class LocalBus:
    """The eviction channel between N workers; `adopt(n)` in worker n after the fork."""

    def __init__(self, count: int) -> None:
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]
        self._inboxes = [inbox for inbox, _ in pairs]
        self._outboxes = [outbox for _, outbox in pairs]
        for sock in self._inboxes + self._outboxes:
            sock.setblocking(False)
            # Room for thousands of evictions while a sibling is busy (the default fits
            # a few hundred); a full buffer is logged, and that sibling falls back to ttl.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        self._me: int | None = None

    def adopt(self, index: int) -> None:
        """This process is worker `index`: keep its inbox, close the inboxes of the others."""
        self._me = index
        for position, inbox in enumerate(self._inboxes):
            if position != index:
                inbox.close()

    def tell(self, eviction: Eviction) -> None:
        """Send one eviction to every other worker; never blocks the event loop."""
        # surrogatepass: an id from Ory's JSON may hold a lone surrogate; it must not fail here.
        message = _SEPARATOR.join(eviction).encode("utf-8", "surrogatepass")
        for position, outbox in enumerate(self._outboxes):
            if position == self._me:
                continue
            try:
                outbox.send(message)
            except OSError as exc:
                log.warning("could not tell worker %d of a revocation (%s); it may serve the "
                            "revoked session until its cache entry expires", position,
                            type(exc).__name__)

    def start(self, deliver: Deliver) -> None:
        """Read this worker's inbox on the running loop and hand each eviction over."""
        if self._me is None:
            raise RuntimeError("LocalBus.start before adopt")
        inbox = self._inboxes[self._me]
        asyncio.get_running_loop().add_reader(inbox.fileno(), _drain, inbox, deliver)

    async def settle(self) -> None:
        """Nothing to wait for: a datagram is in the sibling's buffer once sent."""

    async def stop(self) -> None:
        """Detach the inbox from the loop (app cleanup)."""
        if self._me is not None:
            asyncio.get_running_loop().remove_reader(self._inboxes[self._me].fileno())


def _drain(inbox: socket.socket, deliver: Deliver) -> None:
    while True:
        try:
            message = inbox.recv(_MAX_DATAGRAM)
        except BlockingIOError:
            return
        try:
            parts = message.decode("utf-8", "surrogatepass").split(_SEPARATOR)
        except UnicodeDecodeError:
            continue  # not from a sibling: they all encode as above
        if len(parts) == 3:
            deliver((parts[0], parts[1], parts[2]))
