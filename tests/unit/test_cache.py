"""SessionCache: TTL, singleflight, stale_if_error, bounds and eviction
(docs/reference.md#session-cache)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.bus import Deliver, Eviction
from gateway.cache import Fetch, SessionCache
from gateway.errors import OryUnavailableError
from gateway.ory import STEP_UP_REQUIRED, UNAUTHENTICATED, WhoamiResult
from gateway.session import Session
from tests.unit.fakes import FakeClock, make_session

WAIT = 2.0  # bound on every wait; nothing here should take more than a few milliseconds


class FakeFetch:
    """Stands in for `ory.whoami(credential, fresh=…)`: records calls, answers in order.

    Each answer is a result, an exception to raise, or an `asyncio.Event` to wait for
    before giving the answer that follows it.
    """

    def __init__(self, *answers: WhoamiResult | Exception) -> None:
        self.answers: list[WhoamiResult | Exception] = list(answers)
        self.calls: list[bool] = []
        self.started = asyncio.Event()
        self.release: asyncio.Event | None = None

    def hold(self) -> asyncio.Event:
        """Make the next call wait until the returned event is set."""
        self.release = asyncio.Event()
        return self.release

    async def __call__(self, fresh: bool) -> WhoamiResult:
        self.calls.append(fresh)
        release, self.release = self.release, None
        answer = self.answers.pop(0)
        self.started.set()
        if release is not None:
            await release.wait()
        if isinstance(answer, Exception):
            raise answer
        return answer


class RecordingBus:
    """An eviction bus that keeps what it was told (the other caches are the test's)."""

    def __init__(self) -> None:
        self.told: list[Eviction] = []

    def tell(self, eviction: Eviction) -> None:
        self.told.append(eviction)

    def start(self, deliver: Deliver) -> None:
        pass

    async def settle(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def new_cache(
    clock: FakeClock, *, ttl: float = 10.0, max_entries: int = 100, stale: float = 0.0,
    ahead: float = 0.0, bus: RecordingBus | None = None,
    heard: list[Eviction] | None = None,
) -> SessionCache:
    return SessionCache(ttl=ttl, max_entries=max_entries, stale_if_error=stale, clock=clock,
                        refresh_ahead=ahead, bus=bus,
                        on_evict=heard.append if heard is not None else None)


async def get(cache: SessionCache, key: bytes, fetch: Fetch) -> WhoamiResult:
    async with asyncio.timeout(WAIT):
        return await cache.get(key, fetch)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_000.0)


async def test_hit_within_ttl_does_not_fetch_again(clock: FakeClock) -> None:
    cache = new_cache(clock, ttl=10)
    session = make_session()
    fetch = FakeFetch(session, session)

    assert await get(cache, b"k", fetch) == session
    clock.advance(9.999)
    assert await get(cache, b"k", fetch) == session
    assert fetch.calls == [False]

    clock.advance(0.001)
    assert await get(cache, b"k", fetch) == session
    assert fetch.calls == [False, False]


async def test_hit_just_before_expiry_refreshes_in_background(clock: FakeClock) -> None:
    """Refresh ahead: served at once from the cache, refreshed by one background call, so
    busy sessions do not all stall at expiry; nothing is served past its ttl."""
    ahead = 0.5
    cache = new_cache(clock, ttl=10, ahead=ahead)
    old, new = make_session("s1", "i1", aal="aal1"), make_session("s1", "i1", aal="aal2")
    fetch = FakeFetch(old, new)
    await get(cache, b"k", fetch)

    clock.advance(10 - ahead - 0.01)
    assert await get(cache, b"k", fetch) == old
    assert fetch.calls == [False]  # before the window: no refresh

    clock.advance(0.02)
    release = fetch.hold()
    assert await get(cache, b"k", fetch) == old  # served without waiting for Ory
    assert await get(cache, b"k", fetch) == old  # one refresh in flight, not two
    refreshing = list(cache._inflight.values())
    release.set()
    async with asyncio.timeout(WAIT):
        await asyncio.gather(*refreshing)
    assert cache.peek(b"k") == new  # replaced before the old entry expired
    assert fetch.calls == [False, False]


async def test_no_refresh_ahead_unless_configured(clock: FakeClock) -> None:
    """By default a session is asked about at most once per ttl, busy or not."""
    cache = new_cache(clock, ttl=10)
    session = make_session()
    fetch = FakeFetch(session, session)
    await get(cache, b"k", fetch)

    clock.advance(9.99)
    assert await get(cache, b"k", fetch) == session
    assert cache._inflight == {}
    assert fetch.calls == [False]


async def test_no_refresh_ahead_when_the_session_itself_ends_first(clock: FakeClock) -> None:
    cache = new_cache(clock, ttl=10, ahead=1.0)
    session = make_session(expires_at=clock.now + 5)  # entry lives 5 s, capped by expiry
    fetch = FakeFetch(session)
    await get(cache, b"k", fetch)

    clock.advance(4.5)
    assert await get(cache, b"k", fetch) == session
    assert fetch.calls == [False]  # refreshing would only fetch the same ending session


async def test_failed_background_refresh_changes_nothing(clock: FakeClock) -> None:
    cache = new_cache(clock, ttl=10, ahead=0.5)
    session = make_session()
    fetch = FakeFetch(session, OryUnavailableError(), session)
    await get(cache, b"k", fetch)
    clock.advance(10 - 0.25)
    assert await get(cache, b"k", fetch) == session
    refreshing = list(cache._inflight.values())
    assert len(refreshing) == 1
    async with asyncio.timeout(WAIT):
        await asyncio.gather(*refreshing, return_exceptions=True)
    assert await get(cache, b"k", fetch) == session  # still cached, still within ttl
    assert fetch.calls == [False, False]


@pytest.mark.parametrize(
    ("ttl", "expires_in", "fresh_for"),
    [(10.0, 5.0, 5.0), (10.0, 30.0, 10.0), (10.0, None, 10.0), (0.0, 30.0, 0.0)],
    ids=["session-expires-first", "ttl-first", "no-expiry", "ttl-zero-never-caches"],
)
async def test_entry_lives_min_of_ttl_and_session_expiry(
    clock: FakeClock, ttl: float, expires_in: float | None, fresh_for: float
) -> None:
    cache = new_cache(clock, ttl=ttl)
    expires_at = None if expires_in is None else clock.now + expires_in
    session = make_session(expires_at=expires_at)
    fetch = FakeFetch(session, session, session)

    await get(cache, b"k", fetch)
    if fresh_for > 0:
        clock.advance(fresh_for - 0.01)
        await get(cache, b"k", fetch)
        assert len(fetch.calls) == 1
        clock.advance(0.01)
    await get(cache, b"k", fetch)

    assert len(fetch.calls) == 2


async def test_concurrent_misses_share_one_fetch(clock: FakeClock) -> None:
    cache = new_cache(clock)
    session = make_session()
    fetch = FakeFetch(session)
    release = fetch.hold()
    arrived = 0

    async def caller() -> WhoamiResult:
        nonlocal arrived
        arrived += 1
        return await cache.get(b"k", fetch)

    async with asyncio.timeout(WAIT):
        callers = [asyncio.create_task(caller()) for _ in range(50)]
        await fetch.started.wait()
        assert arrived == 50  # every caller is past its cache check and waiting
        release.set()
        results = await asyncio.gather(*callers)

    assert fetch.calls == [False]
    assert all(result == session for result in results)
    assert cache.peek(b"k") == session


async def test_concurrent_misses_for_different_keys_fetch_each(clock: FakeClock) -> None:
    cache = new_cache(clock)
    one, two = make_session("s1"), make_session("s2")
    fetch_one, fetch_two = FakeFetch(one), FakeFetch(two)

    async with asyncio.timeout(WAIT):
        results = await asyncio.gather(cache.get(b"a", fetch_one), cache.get(b"b", fetch_two))

    assert list(results) == [one, two]
    assert (fetch_one.calls, fetch_two.calls) == ([False], [False])


@pytest.mark.parametrize(
    "answer", [UNAUTHENTICATED, STEP_UP_REQUIRED], ids=["unauthenticated", "step-up"]
)
async def test_non_session_result_is_not_cached(clock: FakeClock, answer: WhoamiResult) -> None:
    cache = new_cache(clock)
    fetch = FakeFetch(answer, answer)

    assert await get(cache, b"k", fetch) is answer
    assert await get(cache, b"k", fetch) is answer
    assert len(fetch.calls) == 2
    assert len(cache) == 0


async def test_ory_unavailable_is_not_cached(clock: FakeClock) -> None:
    cache = new_cache(clock, stale=60)
    session = make_session()
    fetch = FakeFetch(OryUnavailableError(), session)

    with pytest.raises(OryUnavailableError):
        await get(cache, b"k", fetch)
    assert await get(cache, b"k", fetch) == session
    assert len(fetch.calls) == 2


async def test_unauthenticated_answer_drops_a_cached_session(clock: FakeClock) -> None:
    cache = new_cache(clock, ttl=10)
    session = make_session()
    fetch = FakeFetch(session, UNAUTHENTICATED)

    await get(cache, b"k", fetch)
    clock.advance(10)
    assert await get(cache, b"k", fetch) is UNAUTHENTICATED
    assert cache.peek(b"k") is None


@pytest.mark.parametrize(
    ("stale", "expires_in", "failure_at", "served"),
    [
        (30.0, None, 15.0, True),
        (30.0, None, 39.99, True),
        (30.0, None, 40.0, False),
        (0.0, None, 10.0, False),
        (30.0, 20.0, 15.0, True),
        (30.0, 20.0, 19.99, True),
        (30.0, 20.0, 20.0, False),
    ],
    ids=[
        "within-grace", "end-of-grace", "after-grace", "no-grace", "before-session-expiry",
        "just-before-session-expiry", "at-session-expiry",
    ],
)
async def test_stale_if_error_serves_expired_entry_within_grace(
    clock: FakeClock, stale: float, expires_in: float | None, failure_at: float, served: bool
) -> None:
    cache = new_cache(clock, ttl=10, stale=stale)
    expires_at = None if expires_in is None else clock.now + expires_in
    session = make_session(expires_at=expires_at)
    fetch = FakeFetch(session, OryUnavailableError())

    await get(cache, b"k", fetch)
    clock.advance(failure_at)

    if served:
        assert await get(cache, b"k", fetch) == session
    else:
        with pytest.raises(OryUnavailableError):
            await get(cache, b"k", fetch)
    assert len(fetch.calls) == 2


async def test_stale_entry_is_refreshed_once_ory_is_back(clock: FakeClock) -> None:
    cache = new_cache(clock, ttl=10, stale=30)
    old, new = make_session(), make_session(aal="aal2")
    fetch = FakeFetch(old, OryUnavailableError(), new)

    await get(cache, b"k", fetch)
    clock.advance(15)
    assert await get(cache, b"k", fetch) == old
    assert await get(cache, b"k", fetch) == new
    assert await get(cache, b"k", fetch) == new
    assert len(fetch.calls) == 3


async def test_max_entries_evicts_least_recently_used(clock: FakeClock) -> None:
    cache = new_cache(clock, max_entries=3)
    sessions = {key: make_session(f"s-{key}", f"i-{key}") for key in "abcd"}
    fetches = {key: FakeFetch(session) for key, session in sessions.items()}

    for key in "abc":
        await get(cache, key.encode(), fetches[key])
    await get(cache, b"a", FakeFetch())  # a hit: "a" becomes the most recently used
    await get(cache, b"d", fetches["d"])

    assert len(cache) == 3
    assert cache.peek(b"b") is None
    assert [cache.peek(key.encode()) for key in "acd"] == [sessions[key] for key in "acd"]
    assert cache.evict_session("s-b", "i-b") == 0
    assert cache.evict_identity("i-b") == 0


async def test_max_entries_bound_holds_under_many_keys(clock: FakeClock) -> None:
    cache = new_cache(clock, max_entries=5)

    for index in range(40):
        await get(cache, f"k{index}".encode(), FakeFetch(make_session(f"s{index}", f"i{index}")))

    assert len(cache) == 5
    assert [cache.peek(f"k{index}".encode()) is not None for index in range(35, 40)] == [True] * 5


async def _cached(cache: SessionCache, key: bytes, session: Session) -> None:
    await get(cache, key, FakeFetch(session))
    assert cache.peek(key) == session


async def _next_fetch_is_fresh_exactly_once(cache: SessionCache, key: bytes, clock: FakeClock,
                                            session: Session) -> None:
    fetch = FakeFetch(session, session)
    await get(cache, key, fetch)
    assert fetch.calls == [True]
    clock.advance(100)
    await get(cache, key, fetch)
    assert fetch.calls == [True, False]


async def test_evict_key_forgets_entry_and_next_fetch_is_fresh(clock: FakeClock) -> None:
    cache = new_cache(clock)
    session = make_session()
    await _cached(cache, b"k", session)

    assert cache.evict_key(b"k") == 1

    assert cache.peek(b"k") is None
    await _next_fetch_is_fresh_exactly_once(cache, b"k", clock, session)


async def test_evict_session_forgets_every_credential_of_it(clock: FakeClock) -> None:
    cache = new_cache(clock)
    session, other = make_session("s1", "i1"), make_session("s2", "i1")
    await _cached(cache, b"cookie", session)
    await _cached(cache, b"token", session)
    await _cached(cache, b"other", other)

    assert cache.evict_session("s1", "i1") == 2

    assert (cache.peek(b"cookie"), cache.peek(b"token"), cache.peek(b"other")) == (
        None, None, other
    )
    await _next_fetch_is_fresh_exactly_once(cache, b"cookie", clock, session)
    await _next_fetch_is_fresh_exactly_once(cache, b"token", clock, session)


@pytest.mark.parametrize(
    ("keep", "evicted", "kept"),
    [("s1", ["k2", "k3"], ["k1", "k4"]), (None, ["k1", "k2", "k3"], ["k4"])],
    ids=["keep-current", "all"],
)
async def test_evict_identity_forgets_its_sessions(
    clock: FakeClock, keep: str | None, evicted: list[str], kept: list[str]
) -> None:
    cache = new_cache(clock)
    sessions = {
        "k1": make_session("s1", "alice"),
        "k2": make_session("s2", "alice"),
        "k3": make_session("s3", "alice"),
        "k4": make_session("s4", "bob"),
    }
    for key, session in sessions.items():
        await _cached(cache, key.encode(), session)

    assert cache.evict_identity("alice", keep_session=keep) == len(evicted)

    assert [cache.peek(key.encode()) for key in evicted] == [None] * len(evicted)
    assert [cache.peek(key.encode()) for key in kept] == [sessions[key] for key in kept]
    unchanged = FakeFetch()
    for key in kept:
        await get(cache, key.encode(), unchanged)
    assert unchanged.calls == []
    for key in evicted:
        await _next_fetch_is_fresh_exactly_once(cache, key.encode(), clock, sessions[key])


@pytest.mark.parametrize("evict", ["key", "session"], ids=["evict-key", "evict-session"])
async def test_eviction_during_refetch_does_not_store_the_stale_result(
    clock: FakeClock, evict: str
) -> None:
    cache = new_cache(clock, ttl=10)
    session = make_session("s1", "i1")
    await _cached(cache, b"k", session)
    clock.advance(10)  # expired: the next get asks Ory again
    fetch = FakeFetch(session)
    release = fetch.hold()

    async with asyncio.timeout(WAIT):
        waiter = asyncio.create_task(cache.get(b"k", fetch))
        await fetch.started.wait()
        if evict == "key":
            assert cache.evict_key(b"k") == 1
        else:
            assert cache.evict_session("s1", "i1") == 1
        release.set()
        assert await waiter == session  # asked before the eviction: the waiter is answered

    assert cache.peek(b"k") is None
    await _next_fetch_is_fresh_exactly_once(cache, b"k", clock, session)


async def test_eviction_during_first_fetch_does_not_store_the_result(clock: FakeClock) -> None:
    cache = new_cache(clock)
    session = make_session("s1", "i1")
    fetch = FakeFetch(session)
    release = fetch.hold()

    async with asyncio.timeout(WAIT):
        waiter = asyncio.create_task(cache.get(b"k", fetch))
        await fetch.started.wait()
        cache.evict_key(b"k")
        release.set()
        await waiter

    assert cache.peek(b"k") is None


async def test_revocation_during_first_fetch_does_not_store_the_result(
    clock: FakeClock,
) -> None:
    cache = new_cache(clock)
    session = make_session("s1", "i1")
    fetch = FakeFetch(session)
    release = fetch.hold()

    async with asyncio.timeout(WAIT):
        waiter = asyncio.create_task(cache.get(b"k", fetch))
        await fetch.started.wait()
        cache.evict_session("s1", "i1")
        release.set()
        await waiter

    assert cache.peek(b"k") is None


async def test_slow_fetch_from_before_eviction_never_overwrites_fresh_answer(
    clock: FakeClock,
) -> None:
    cache = new_cache(clock)
    session = make_session("s1", "i1")
    slow = FakeFetch(session)
    release = slow.hold()

    async with asyncio.timeout(WAIT):
        old = asyncio.create_task(cache.get(b"k", slow))
        await slow.started.wait()
        cache.evict_key(b"k")  # e.g. logout while the old look-up is still running
        fresh = FakeFetch(UNAUTHENTICATED)
        assert await cache.get(b"k", fresh) is UNAUTHENTICATED
        assert fresh.calls == [True]
        release.set()
        await old

    assert cache.peek(b"k") is None


async def test_evictions_are_announced_and_applied_by_a_sibling_cache(clock: FakeClock) -> None:
    """Two workers' caches: what one evicts, the other forgets too, without echoing it; both
    tell their eviction watchers (live connections end on either side)."""
    mine_bus, their_bus = RecordingBus(), RecordingBus()
    heard_here: list[Eviction] = []
    heard_there: list[Eviction] = []
    mine = new_cache(clock, bus=mine_bus, heard=heard_here)
    theirs = new_cache(clock, bus=their_bus, heard=heard_there)
    told, echoed = mine_bus.told, their_bus.told
    s1, s2, s3 = make_session("s1", "i1"), make_session("s2", "i1"), make_session("s3", "i2")
    for cache in (mine, theirs):
        await _cached(cache, b"a", s1)
        await _cached(cache, b"b", s2)
        await _cached(cache, b"c", s3)

    mine.evict_identity("i1", keep_session="s1")
    mine.evict_session("s3", "i2")
    mine.evict_key(b"a")
    for eviction in told:
        theirs.apply(eviction)

    assert told == [("i", "i1", "s1"), ("s", "s3", "i2"), ("k", b"a".hex(), "")]
    assert echoed == []
    assert [theirs.peek(key.encode()) for key in "abc"] == [None, None, None]
    assert heard_here == heard_there == told


async def test_held_key_is_not_stored_until_the_hold_ends(clock: FakeClock) -> None:
    cache = new_cache(clock, ttl=10)
    session = make_session()
    fetch = FakeFetch(session, session, session)
    await get(cache, b"k", fetch)

    cache.evict_key(b"k", hold=60)
    await get(cache, b"k", fetch)  # answered, but not kept
    assert cache.peek(b"k") is None
    clock.advance(61)
    await get(cache, b"k", fetch)
    assert cache.peek(b"k") == session
    assert len(fetch.calls) == 3


async def test_hold_travels_to_sibling_caches(clock: FakeClock) -> None:
    bus = RecordingBus()
    mine, theirs = new_cache(clock, bus=bus), new_cache(clock)
    mine.evict_key(b"k", hold=60)
    for eviction in bus.told:
        theirs.apply(eviction)
    await get(theirs, b"k", FakeFetch(make_session()))
    assert theirs.peek(b"k") is None
