"""Class CACHE-SCOPE: a cached decision that outlives or out-scopes what it decided
(docs/reference.md#session-cache).

The cache keeps sessions, never verdicts: a route's `aal` and `max_age` must be checked on
every use, an entry must serve only the credential (and credential kind) it was made for,
and logout must reach every cached form of a session. integration/test_ory_outcomes.py
covers the TTL, expiry cap and two interleaved users; these are the scope escapes.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.conftest import Stack, StackFactory
from tests.security.conftest import API, BROWSER, ROUTES_UNDER_ATTACK


@pytest.mark.parametrize("credential", ["cookie", "token"])
async def test_session_cached_at_aal1_is_refused_on_aal2_route(
    guarded: Stack, credential: str
) -> None:
    cookie, token = guarded.login()
    auth = guarded.cookie(cookie) if credential == "cookie" else {"X-Session-Token": token}
    assert (await guarded.client.get("/admin/x", headers=auth)).status == 200  # now cached
    refused = await guarded.client.get("/stepup/x", headers={**auth, **API})
    assert refused.status == 403
    assert (await refused.json())["error"]["id"] == "session_aal2_required"
    assert guarded.ory.calls["GET /sessions/whoami"] == 1  # decided from the cached entry
    assert [s.raw_path for s in guarded.upstream.seen] == ["/admin/x"]


async def test_session_cached_at_aal1_sends_browser_to_step_up(guarded: Stack) -> None:
    cookie, _ = guarded.login()
    assert (await guarded.client.get("/admin/x", headers=guarded.cookie(cookie))).status == 200
    response = await guarded.client.get(
        "/stepup/x", headers={**guarded.cookie(cookie), **BROWSER}, allow_redirects=False
    )
    assert response.status == 303
    assert "aal=aal2" in response.headers["Location"]
    assert [s.raw_path for s in guarded.upstream.seen] == ["/admin/x"]


async def test_login_older_than_max_age_is_refused_while_still_cached(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(routes=ROUTES_UNDER_ATTACK, cache='ttl = "1h"')
    cookie, _ = stack.login()
    assert (await stack.client.get("/recent/x", headers=stack.cookie(cookie))).status == 200
    stack.clock.advance(299)
    assert (await stack.client.get("/recent/x", headers=stack.cookie(cookie))).status == 200
    stack.clock.advance(2)  # 301 s after the login, max_age is 5 min
    refused = await stack.client.get("/recent/x", headers={**stack.cookie(cookie), **API})
    assert refused.status == 403
    assert (await refused.json())["error"]["id"] == "session_refresh_required"
    assert stack.ory.calls["GET /sessions/whoami"] == 1  # the cached entry, checked again
    assert len(stack.upstream.seen) == 2


async def test_stale_session_during_ory_outage_still_obeys_max_age(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(
        routes=ROUTES_UNDER_ATTACK, cache='ttl = "10s"\nstale_if_error = "1h"'
    )
    cookie, _ = stack.login()
    assert (await stack.client.get("/recent/x", headers=stack.cookie(cookie))).status == 200
    stack.ory.faults.whoami_status = 503
    stack.clock.advance(301)
    stale = await stack.client.get("/admin/x", headers={**stack.cookie(cookie), **API})
    assert stale.status == 200  # stale_if_error serves the known session ...
    refused = await stack.client.get("/recent/x", headers={**stack.cookie(cookie), **API})
    assert refused.status == 403  # ... but never past the route's max_age


async def test_stale_session_never_serves_another_credential(make_stack: StackFactory) -> None:
    stack = await make_stack(
        routes=ROUTES_UNDER_ATTACK, cache='ttl = "10s"\nstale_if_error = "1h"'
    )
    alice, _ = stack.login("alice@example.com")
    bob, _ = stack.login("bob@example.com")
    assert (await stack.client.get("/admin/x", headers=stack.cookie(alice))).status == 200
    stack.ory.faults.whoami_status = 503
    stack.clock.advance(20)
    response = await stack.client.get("/admin/x", headers={**stack.cookie(bob), **API})
    assert response.status == 503
    assert stack.upstream.header("X-User-Email") == ["alice@example.com"]  # Alice's only


async def test_token_value_sent_as_cookie_is_a_different_credential(guarded: Stack) -> None:
    _, token = guarded.login()
    assert (await guarded.client.get("/admin/x", headers={"X-Session-Token": token})).status == 200
    response = await guarded.client.get("/admin/x", headers={**guarded.cookie(token), **API})
    assert response.status == 401
    assert guarded.ory.calls["GET /sessions/whoami"] == 2  # asked, not served from the cache


async def test_logout_reaches_every_cached_form_of_the_session(guarded: Stack) -> None:
    cookie, token = guarded.login()
    for auth in (guarded.cookie(cookie), {"X-Session-Token": token}):
        assert (await guarded.client.get("/admin/x", headers=auth)).status == 200
    response = await guarded.client.get(
        "/_auth/logout", headers=guarded.cookie(cookie), allow_redirects=False
    )
    async with guarded.client.session.get(
        response.headers["Location"], headers=guarded.cookie(cookie), allow_redirects=False
    ) as done:  # the browser follows Ory's logout URL, which revokes the session
        assert done.status == 303
    after = await guarded.client.get("/admin/x", headers={"X-Session-Token": token, **API})
    assert after.status == 401


async def test_interleaved_users_under_concurrency_never_swap_identities(
    guarded: Stack,
) -> None:
    users: list[tuple[str | None, dict[str, str]]] = []
    for n in range(30):
        identity = guarded.ory.add_identity(f"user{n}@example.com", password="pw")
        session = guarded.ory.create_session(identity)
        auth = (guarded.cookie(session.cookie_value) if n % 2
                else {"X-Session-Token": session.token})
        users.append((identity, auth))
    strangers: list[tuple[str | None, dict[str, str]]] = [
        (None, guarded.cookie(f"forged-{n}")) for n in range(10)
    ]
    plan = [*users * 4, *strangers]
    random.Random(4).shuffle(plan)
    guarded.ory.faults.latency = 0.005  # every cold miss overlaps others

    async def fetch(auth: dict[str, str]) -> tuple[int, list[str]]:
        response = await guarded.client.get("/admin/x", headers={**auth, **API})
        if response.status != 200:
            return response.status, []
        body = await response.json()
        return 200, [v for k, v in body["headers"] if k.lower() == "x-user-id"]

    async with asyncio.timeout(20):
        results = await asyncio.gather(*(fetch(auth) for _, auth in plan))
    for (expected, _), (status, seen_ids) in zip(plan, results, strict=True):
        if expected is None:
            assert (status, seen_ids) == (401, [])
        else:
            assert (status, seen_ids) == (200, [expected])
    assert guarded.ory.calls["GET /sessions/whoami"] == len(users) + len(strangers)
