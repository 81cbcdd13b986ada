"""Validated sessions kept briefly so Ory is not asked on every request
(docs/reference.md#session-cache).

* keyed by a hash of the credential; lifetime `min(ttl, time left on the session)`;
* singleflight: concurrent misses for one key share one Ory call;
* refresh ahead (opt-in): a hit in the last `refresh_ahead` seconds of its ttl refreshes the
  entry in the background;
* `stale_if_error`: while Ory is unavailable, an expired entry may serve a little longer;
* indexed by identity, so revocation and logout evict at once, and the next look-up for an
  evicted credential asks Ory fresh (`Cache-Control: max-age=0`);
* each entry is one packed bytes object (`gateway.session.pack`): 100 000 sessions in
  well under 100 MB.
Only sessions are cached: "no session" and failures always ask again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from gateway.bus import Eviction, EvictionBus, NoBus
from gateway.errors import OryUnavailableError
from gateway.fleet import SharedSessions
from gateway.ory import WhoamiResult
from gateway.outcome import Outcome
from gateway.session import Session, pack, packed_fresh_until, packed_ids, unpack

Clock = Callable[[], float]
Fetch = Callable[[bool], Awaitable[WhoamiResult]]  # fetch(fresh) -> result


Key = bytes  # a credential's digest (gateway.credentials.credential_key)


_SLOT_MASK = (1 << 60) - 1


def _identity_slot(identity_id: str) -> int:
    """The identity index's key: a 60-bit hash, 32 bytes where the id string would take 85
    (bench/cache_memory.py). Two identities may share a slot; eviction checks the real id."""
    return hash(identity_id) & _SLOT_MASK


# identity slot -> the cache key(s) holding it: one key (nearly always) or a set.
_Index = dict[int, "Key | set[Key]"]


Found = tuple[WhoamiResult, str]  # the result and where it came from: "miss" or "shared"


def _ignore_failure(task: asyncio.Task[Found]) -> None:
    """Mark a look-up's failure as seen: its waiters (if any are left) still get it, and a
    background refresh that fails changes nothing (the next miss asks again)."""
    if not task.cancelled():
        task.exception()


def _index_add(index: _Index, value: int, key: Key) -> None:
    held = index.get(value)
    if held is None:
        index[value] = key
    elif isinstance(held, set):
        held.add(key)
    elif held != key:
        index[value] = {held, key}


def _index_remove(index: _Index, value: int, key: Key) -> None:
    held = index.get(value)
    if held == key:
        del index[value]
    elif isinstance(held, set):
        held.discard(key)
        if len(held) == 1:
            index[value] = held.pop()


def _index_keys(index: _Index, value: int) -> set[Key]:
    held = index.get(value)
    if held is None:
        return set()
    return set(held) if isinstance(held, set) else {held}


class SessionCache:
    """A bounded TTL cache of sessions with singleflight and an eviction index."""

    def __init__(
        self, *, ttl: float, max_entries: int, stale_if_error: float, clock: Clock,
        refresh_ahead: float = 0.0, bus: EvictionBus | None = None,
        on_evict: Callable[[Eviction], None] | None = None,
        shared: SharedSessions | None = None, lock_wait: float = 3.0,
    ) -> None:
        """`bus` carries this cache's evictions to the other workers and replicas;
        `on_evict` hears of every eviction, made here or there (live connections end);
        `shared` is the fleet's cache (Redis), asked after this one and before Ory, and
        `lock_wait` how long to wait for another replica asking Ory (ory.timeout)."""
        self._ttl = ttl
        # Refresh ahead (`cache.refresh_ahead`, off by default): a hit that late in its ttl
        # is served as usual and refreshes the entry in the background, so a busy session
        # never waits for Ory at expiry. Nothing is ever served past its ttl, but a busy
        # session then costs one whoami per (ttl - refresh_ahead), not one per ttl.
        self._ahead = refresh_ahead
        self._max = max_entries
        self._stale = stale_if_error
        self._clock = clock
        self._entries: OrderedDict[Key, bytes] = OrderedDict()  # least recently used first
        self._by_identity: _Index = {}
        self._inflight: dict[Key, asyncio.Task[Found]] = {}
        self._needs_fresh: OrderedDict[Key, None] = OrderedDict()
        # Eviction generations: a fetch that started before an eviction touching its key,
        # session or identity answers its waiters but is never stored (no resurrection).
        self._generation = 0
        self._evicted_at: OrderedDict[tuple[str, str | Key], int] = OrderedDict()
        self._held: OrderedDict[Key, float] = OrderedDict()  # key -> store nothing until
        self._cleared_at = 0  # a look-up that started before the last clear() stores nothing
        self._bus = bus or NoBus()
        self._on_evict = on_evict
        self._shared = shared
        self._lock_wait = lock_wait
        self.schema = ""  # what a shared session's headers were made under (reload changes it)

    def __len__(self) -> int:
        return len(self._entries)

    def hit(self, key: Key, fetch: Fetch) -> Session | None:
        """The fresh cached session, without a coroutine (the hot path), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        fresh_until = packed_fresh_until(entry)
        if now >= fresh_until:
            return None
        self._entries.move_to_end(key)
        session = unpack(entry)
        if self._ahead and now >= fresh_until - self._ahead and key not in self._inflight and (
            session.expires_at is None or fresh_until < session.expires_at
        ):
            self._start_fetch(key, fetch)
        return session

    async def get(self, key: Key, fetch: Fetch, outcome: Outcome | None = None) -> WhoamiResult:
        """A cached session, or one look-up shared by every concurrent caller of `key`;
        `outcome.cache` says which ("hit", "miss", "coalesced", "shared" or "stale")."""
        session = self.hit(key, fetch)
        if session is not None:
            if outcome is not None:
                outcome.cache = "hit"
            return session
        task = self._inflight.get(key)
        joined = task is not None
        if outcome is not None:
            outcome.cache = "coalesced" if joined else "miss"
        if task is None:
            task = self._start_fetch(key, fetch)
        try:
            result, source = await asyncio.shield(task)
        except OryUnavailableError:
            session = self._stale_or_raise(key)
            if outcome is not None:
                outcome.cache = "stale"
            return session
        if outcome is not None and not joined:
            outcome.cache = source  # "miss", or "shared": from another replica
        return result

    def _start_fetch(self, key: Key, fetch: Fetch) -> asyncio.Task[Found]:
        task = asyncio.ensure_future(self._fetch(key, fetch))
        self._inflight[key] = task
        task.add_done_callback(self._forget_inflight(key))
        task.add_done_callback(_ignore_failure)  # waiters still get it; if all left, no noise
        return task

    def _forget_inflight(self, key: Key) -> Callable[[asyncio.Task[Found]], None]:
        def forget(task: asyncio.Task[Found]) -> None:
            if self._inflight.get(key) is task:
                del self._inflight[key]

        return forget

    async def _fetch(self, key: Key, fetch: Fetch) -> Found:
        """The fleet's cache, then Ory; what is stored here is shared there."""
        started = self._generation
        fresh = key in self._needs_fresh
        shared, claim = self._shared, None
        if shared is not None:
            if not fresh and (found := await self._from_fleet(key, started, shared)):
                return found, "shared"
            claim = await shared.claim(key, self.schema)
            if claim is not None and not claim.mine and not fresh:
                waited = await shared.wait_for(key, self.schema, self._lock_wait)
                if waited is not None and self._keep_shared(key, started, *waited):
                    return waited[0], "shared"
        try:
            result = await fetch(fresh)
        except BaseException:
            if claim is not None and claim.mine:
                await shared.release(key, self.schema)  # type: ignore[union-attr]
            raise
        if started < self._cleared_at or self._evicted_since(started, key, result):
            return result, "miss"  # asked before a revocation or a clear: answer, keep nothing
        if fresh:
            self._needs_fresh.pop(key, None)
        stored = None
        if isinstance(result, Session):
            stored = self._store(key, result)
            if stored is not None and shared is not None and claim is not None:
                await shared.store(key, self.schema, result, stored, claim.stamp)
        else:
            self._drop(key)
        if stored is None and shared is not None and claim is not None and claim.mine:
            await shared.release(key, self.schema)
        return result, "miss"

    async def _from_fleet(
        self, key: Key, started: int, shared: SharedSessions
    ) -> Session | None:
        found = await shared.lookup(key, self.schema)
        if found is not None and self._keep_shared(key, started, *found):
            return found[0]
        return None

    def _keep_shared(self, key: Key, started: int, session: Session, fresh_until: float) -> bool:
        """Keep a session another replica validated, for what is left of its ttl; not when a
        revocation or a hold here says otherwise."""
        if started < self._cleared_at or self._evicted_since(started, key, session):
            return False
        return self._store(key, session, fresh_until=fresh_until) is not None

    def _evicted_since(self, generation: int, key: Key, result: WhoamiResult) -> bool:
        names: list[tuple[str, str | Key]] = [("k", key)]
        if isinstance(result, Session):
            names += [("s", result.session_id), ("i", result.identity_id)]
        return any(self._evicted_at.get(name, -1) > generation for name in names)

    def _mark_evicted(self, *names: tuple[str, str | Key]) -> None:
        self._generation += 1
        for name in names:
            self._evicted_at[name] = self._generation
            self._evicted_at.move_to_end(name)
        while len(self._evicted_at) > self._max:
            self._evicted_at.popitem(last=False)

    def _stale_or_raise(self, key: Key) -> Session:
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and now < packed_fresh_until(entry) + self._stale:
            session = unpack(entry)
            if session.is_valid_at(now):
                return session
        raise OryUnavailableError()

    def _store(
        self, key: Key, session: Session, *, fresh_until: float | None = None
    ) -> float | None:
        """Keep a session until `fresh_until` (default: ttl from now, at most its expiry);
        returns when it stops being fresh, or None when it was not kept."""
        now = self._clock()
        held_until = self._held.get(key)
        if held_until is not None:
            if now < held_until:
                return None
            del self._held[key]
        limit = now + self._ttl
        fresh_until = limit if fresh_until is None else min(fresh_until, limit)
        if session.expires_at is not None:
            fresh_until = min(fresh_until, session.expires_at)
        packed = pack(session, fresh_until) if fresh_until > now else None
        self._drop(key)
        if packed is None:
            return None
        self._entries[key] = packed
        _index_add(self._by_identity, _identity_slot(session.identity_id), key)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))
        return fresh_until

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            _index_remove(self._by_identity, _identity_slot(packed_ids(entry)[1]), key)

    def reconfigure(
        self, *, ttl: float, max_entries: int, stale_if_error: float, refresh_ahead: float
    ) -> None:
        """New settings (a reload); they apply to entries stored from now on."""
        self._ttl, self._max, self._stale, self._ahead = (
            ttl, max_entries, stale_if_error, refresh_ahead
        )

    def clear(self) -> int:
        """Forget every session (a reload that changes what a session means, or a fleet
        that may have missed revocations): nothing asked before now is stored, and no new
        request joins a look-up started before now. Returns how many were dropped."""
        dropped = len(self._entries)
        self._generation += 1
        self._cleared_at = self._generation
        self._entries.clear()
        self._by_identity.clear()
        self._inflight.clear()
        return dropped

    def fresh_until(self, key: Key) -> float | None:
        """When the cached answer for this key stops being fresh (None: not cached)."""
        entry = self._entries.get(key)
        return packed_fresh_until(entry) if entry is not None else None

    def peek(self, key: Key) -> Session | None:
        """The cached session for a key, fresh or stale, without asking anyone."""
        entry = self._entries.get(key)
        return unpack(entry) if entry is not None else None

    def _evict(self, keys: set[Key]) -> int:
        for key in keys:
            self._drop(key)
            self._inflight.pop(key, None)
            self._needs_fresh[key] = None
            while len(self._needs_fresh) > self._max:
                self._needs_fresh.popitem(last=False)
        return len(keys)

    def evict_key(self, key: Key, *, hold: float = 0.0) -> int:
        """Forget one credential's entry (logout, refresh). `hold`: for that many seconds
        store nothing for it either, so every use asks Ory (a browser logout completes at
        Ory a moment later; a request in between must not cache the session again)."""
        self._tell(("k", key.hex(), f"{hold:g}" if hold else ""))
        return self._evict_key(key, hold)

    def evict_session(self, session_id: str, identity_id: str) -> int:
        """Forget every credential that maps to this session of this identity (revocation;
        Ory lets a caller revoke only sessions of its own identity)."""
        self._tell(("s", session_id, identity_id))
        return self._evict_session(session_id, identity_id)

    def evict_identity(self, identity_id: str, *, keep_session: str | None = None) -> int:
        """Forget an identity's sessions, optionally except one (revoke others).

        A first look-up of that identity still in flight is not stored either (it may be one
        of the revoked sessions); the kept session merely asks Ory once more.
        """
        self._tell(("i", identity_id, keep_session or ""))
        return self._evict_identity(identity_id, keep_session)

    def apply(self, eviction: Eviction) -> None:
        """An eviction another worker or replica made: the same effect, not re-told."""
        kind, value, extra = eviction
        try:
            if kind == "k":
                self._evict_key(bytes.fromhex(value), float(extra or 0))
            elif kind == "s":
                self._evict_session(value, extra)
            elif kind == "i":
                self._evict_identity(value, extra or None)
            elif kind == "*":
                self.clear()
        except ValueError:
            return  # not an eviction any gateway sends
        self._heard(eviction)

    def _tell(self, eviction: Eviction) -> None:
        self._bus.tell(eviction)
        self._heard(eviction)

    def _heard(self, eviction: Eviction) -> None:
        if self._on_evict is not None:
            self._on_evict(eviction)

    def start(self) -> None:
        """Begin hearing the other caches' evictions (on the running loop)."""
        self._bus.start(self.apply)

    async def settle(self) -> None:
        """Every eviction told so far has reached the other caches' transport (bounded)."""
        await self._bus.settle()

    async def stop(self) -> None:
        await self._bus.stop()

    def _evict_key(self, key: Key, hold: float = 0.0) -> int:
        self._mark_evicted(("k", key))
        if hold > 0:
            self._held[key] = self._clock() + hold
            self._held.move_to_end(key)
            while len(self._held) > self._max:
                self._held.popitem(last=False)
        return self._evict({key})

    def _evict_session(self, session_id: str, identity_id: str) -> int:
        """With the identity unknown (a hook that names only the session), every entry is
        looked at: rare, and bounded by max_entries."""
        self._mark_evicted(("s", session_id))
        if not identity_id:
            return self._evict({
                key for key, entry in self._entries.items()
                if packed_ids(entry)[0] == session_id
            })
        return self._evict(self._keys_of(identity_id, lambda held: held == session_id))

    def _evict_identity(self, identity_id: str, keep_session: str | None) -> int:
        self._mark_evicted(("i", identity_id))
        return self._evict(self._keys_of(identity_id, lambda held: held != keep_session))

    def _keys_of(self, identity_id: str, session_matches: Callable[[str], bool]) -> set[Key]:
        """The keys of this identity's cached sessions whose session id matches."""
        keys = set()
        for key in _index_keys(self._by_identity, _identity_slot(identity_id)):
            session_id, held_identity = packed_ids(self._entries[key])
            if held_identity == identity_id and session_matches(session_id):
                keys.add(key)
        return keys
