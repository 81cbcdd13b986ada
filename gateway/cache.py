"""Validated sessions kept briefly so Ory is not asked on every request (contract §3.5).

* keyed by a hash of the credential; lifetime `min(ttl, time left on the session)`;
* singleflight: concurrent misses for one key share one Ory call;
* `stale_if_error`: while Ory is unavailable, an expired entry may serve a little longer;
* indexed by session id and identity id, so revocation and logout evict at once, and the
  next look-up for an evicted credential asks Ory fresh (`Cache-Control: max-age=0`).
Only sessions are cached: "no session" and failures always ask again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.errors import OryUnavailableError
from gateway.ory import WhoamiResult
from gateway.session import Session

Clock = Callable[[], float]
Fetch = Callable[[bool], Awaitable[WhoamiResult]]  # fetch(fresh) -> result
# (kind, value, keep): "k" credential key, "s" session id, "i" identity id (keep a session).
Eviction = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class _Entry:
    session: Session
    fresh_until: float
    stale_until: float


class SessionCache:
    """A bounded TTL cache of Session objects with singleflight and eviction indexes."""

    def __init__(
        self, *, ttl: float, max_entries: int, stale_if_error: float, clock: Clock
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._stale = stale_if_error
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_session: dict[str, set[str]] = {}
        self._by_identity: dict[str, set[str]] = {}
        self._inflight: dict[str, asyncio.Task[WhoamiResult]] = {}
        self._needs_fresh: OrderedDict[str, None] = OrderedDict()
        # Eviction generations: a fetch that started before an eviction touching its key,
        # session or identity answers its waiters but is never stored (no resurrection).
        self._generation = 0
        self._evicted_at: OrderedDict[str, int] = OrderedDict()
        # Set by the app when sibling workers must hear of every eviction.
        self.announce: Callable[[Eviction], None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str, fetch: Fetch) -> WhoamiResult:
        """A cached session, or one Ory call shared by every concurrent caller of `key`."""
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.fresh_until:
            self._entries.move_to_end(key)
            return entry.session
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch(key, fetch))
            self._inflight[key] = task
            task.add_done_callback(self._forget_inflight(key))
        try:
            return await asyncio.shield(task)
        except OryUnavailableError:
            return self._stale_or_raise(key)

    def _forget_inflight(self, key: str) -> Callable[[asyncio.Task[WhoamiResult]], None]:
        def forget(task: asyncio.Task[WhoamiResult]) -> None:
            if self._inflight.get(key) is task:
                del self._inflight[key]

        return forget

    async def _fetch(self, key: str, fetch: Fetch) -> WhoamiResult:
        started = self._generation
        fresh = key in self._needs_fresh
        result = await fetch(fresh)
        if self._evicted_since(started, key, result):
            return result  # asked before a revocation: answer the waiters, keep nothing
        if fresh:
            self._needs_fresh.pop(key, None)
        if isinstance(result, Session):
            self._store(key, result)
        else:
            self._drop(key)
        return result

    def _evicted_since(self, generation: int, key: str, result: WhoamiResult) -> bool:
        names = [f"k:{key}"]
        if isinstance(result, Session):
            names += [f"s:{result.session_id}", f"i:{result.identity_id}"]
        return any(self._evicted_at.get(name, -1) > generation for name in names)

    def _mark_evicted(self, *names: str) -> None:
        self._generation += 1
        for name in names:
            self._evicted_at[name] = self._generation
            self._evicted_at.move_to_end(name)
        while len(self._evicted_at) > self._max:
            self._evicted_at.popitem(last=False)

    def _stale_or_raise(self, key: str) -> Session:
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and now < entry.stale_until and entry.session.is_valid_at(now):
            return entry.session
        raise OryUnavailableError()

    def _store(self, key: str, session: Session) -> None:
        now = self._clock()
        fresh_until = now + self._ttl
        if session.expires_at is not None:
            fresh_until = min(fresh_until, session.expires_at)
        stale_until = fresh_until + self._stale
        if session.expires_at is not None:
            stale_until = min(stale_until, session.expires_at)
        if fresh_until <= now:
            self._drop(key)
            return
        self._drop(key)
        self._entries[key] = _Entry(session, fresh_until, stale_until)
        self._by_session.setdefault(session.session_id, set()).add(key)
        self._by_identity.setdefault(session.identity_id, set()).add(key)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for index, value in (
            (self._by_session, entry.session.session_id),
            (self._by_identity, entry.session.identity_id),
        ):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]

    def peek(self, key: str) -> Session | None:
        """The cached session for a key, fresh or stale, without asking anyone."""
        entry = self._entries.get(key)
        return entry.session if entry is not None else None

    def _evict(self, keys: set[str]) -> int:
        for key in keys:
            self._drop(key)
            self._inflight.pop(key, None)
            self._needs_fresh[key] = None
            while len(self._needs_fresh) > self._max:
                self._needs_fresh.popitem(last=False)
        return len(keys)

    def evict_key(self, key: str) -> int:
        """Forget one credential's entry (logout, refresh)."""
        self._tell(("k", key, ""))
        return self._evict_key(key)

    def evict_session(self, session_id: str) -> int:
        """Forget every credential that maps to this session (revocation)."""
        self._tell(("s", session_id, ""))
        return self._evict_session(session_id)

    def evict_identity(self, identity_id: str, *, keep_session: str | None = None) -> int:
        """Forget an identity's sessions, optionally except one (revoke others).

        A first look-up of that identity still in flight is not stored either (it may be one
        of the revoked sessions); the kept session merely asks Ory once more.
        """
        self._tell(("i", identity_id, keep_session or ""))
        return self._evict_identity(identity_id, keep_session)

    def apply(self, eviction: Eviction) -> None:
        """An eviction another worker made (`server.workers`): the same effect, not re-told."""
        kind, value, keep = eviction
        if kind == "k":
            self._evict_key(value)
        elif kind == "s":
            self._evict_session(value)
        elif kind == "i":
            self._evict_identity(value, keep or None)

    def _tell(self, eviction: Eviction) -> None:
        if self.announce is not None:
            self.announce(eviction)

    def _evict_key(self, key: str) -> int:
        self._mark_evicted(f"k:{key}")
        return self._evict({key})

    def _evict_session(self, session_id: str) -> int:
        self._mark_evicted(f"s:{session_id}")
        return self._evict(set(self._by_session.get(session_id, ())))

    def _evict_identity(self, identity_id: str, keep_session: str | None) -> int:
        self._mark_evicted(f"i:{identity_id}")
        keys = {
            key
            for key in self._by_identity.get(identity_id, ())
            if keep_session is None or self._entries[key].session.session_id != keep_session
        }
        return self._evict(keys)
