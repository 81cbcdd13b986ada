"""The cache's packed form of a session (gateway.session.pack/unpack) and its identity index."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway import cache as cache_module
from gateway.cache import SessionCache
from gateway.session import Session, pack, packed_fresh_until, packed_ids, unpack
from tests.unit.fakes import FakeClock, make_session

WAIT = 2.0


def session_with(**changes: Any) -> Session:
    return make_session("3c1a5f0e-8a55-4f3b-9d55-6f1f2b8c0a11", "i-7")._replace(**changes)


@pytest.mark.parametrize(
    "session",
    [
        make_session(),
        session_with(email=None, headers=(("X-User-Id", "i-7"),)),
        session_with(expires_at=1_900_000_000.123456, authenticated_at=1_800_000_000.5),
        session_with(email="", headers=(("X-User-Email", ""),)),  # empty email, kept as such
        session_with(headers=()),
        session_with(headers=(("X-User-Id", "i-7"), ("X-User-Email", "i-7@example.com"),
                              ("X-Roles", "admin,editor"), ("X-Copy", "i-7"))),
        session_with(email="ünïcode\udc80@example.com", identity_id="ид"),  # lone surrogate
        session_with(aal=""),
    ],
)
def test_pack_then_unpack_gives_the_same_session(session: Session) -> None:
    packed = pack(session, 1234.5)

    assert packed is not None
    assert unpack(packed) == session
    assert packed_fresh_until(packed) == 1234.5
    assert packed_ids(packed) == (session.session_id, session.identity_id)


def test_default_headers_are_stored_as_references_not_copies() -> None:
    session = session_with(headers=(("X-User-Id", "i-7"), ("X-User-Email", "i-7@example.com")))
    plain = session_with(headers=(("X-User-Id", "other-value"), ("X-User-Email", "z" * 15)))

    packed, packed_plain = pack(session, 0.0), pack(plain, 0.0)

    assert packed is not None
    assert packed_plain is not None
    assert len(packed) < len(packed_plain) - 20


@pytest.mark.parametrize(
    "changes",
    [{"email": "a\x00b@example.com"}, {"session_id": "s\x01"}, {"identity_id": "\x02"},
     {"headers": (("X-Odd", "a\x00b"),)}],
)
def test_fields_holding_the_separators_cannot_be_packed(changes: dict[str, Any]) -> None:
    assert pack(session_with(**changes), 0.0) is None


async def test_a_session_that_cannot_be_packed_is_served_but_not_cached() -> None:
    clock = FakeClock()
    cache = SessionCache(ttl=10, max_entries=10, stale_if_error=0, clock=clock)
    odd = session_with(email="a\x00b@example.com")
    calls: list[bool] = []

    async def fetch(fresh: bool) -> Session:
        calls.append(fresh)
        return odd

    async with asyncio.timeout(WAIT):
        assert await cache.get(b"k", fetch) == odd
        assert await cache.get(b"k", fetch) == odd

    assert len(calls) == 2
    assert len(cache) == 0


async def test_identities_sharing_an_index_slot_are_evicted_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The identity index is keyed by a hash: a collision must never evict someone else,
    nor spare the identity being evicted."""
    monkeypatch.setattr(cache_module, "_identity_slot", lambda identity_id: 1)
    clock = FakeClock()
    cache = SessionCache(ttl=10, max_entries=10, stale_if_error=0, clock=clock)
    alice, alice2, bob = (make_session("s1", "alice"), make_session("s2", "alice"),
                          make_session("s1", "bob"))  # bob's session id even equals alice's

    async with asyncio.timeout(WAIT):
        for key, session in ((b"a", alice), (b"a2", alice2), (b"b", bob)):

            async def fetch(_fresh: bool, session: Session = session) -> Session:
                return session

            await cache.get(key, fetch)

    assert cache.evict_session("s1", "alice") == 1
    assert [cache.peek(key) for key in (b"a", b"a2", b"b")] == [None, alice2, bob]
    assert cache.evict_identity("alice") == 1
    assert [cache.peek(key) for key in (b"a2", b"b")] == [None, bob]
    assert cache.evict_identity("bob", keep_session="s1") == 0
    assert cache.peek(b"b") == bob
