"""The cache, singleflight and every Ory failure mode, failing closed
(docs/reference.md#session-cache, #outcomes)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Stack, StackFactory

API = {"Accept": "application/json"}


async def test_cached_session_asks_ory_once_within_ttl(stack: Stack) -> None:
    cookie, _ = stack.login()
    for _ in range(5):
        assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    assert stack.ory.calls["GET /sessions/whoami"] == 1
    stack.clock.advance(11)  # default ttl 10s
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    assert stack.ory.calls["GET /sessions/whoami"] == 2


async def test_cache_lifetime_is_capped_by_session_expiry(make_stack: StackFactory) -> None:
    stack = await make_stack(cache='ttl = "1h"')
    identity = stack.ory.add_identity("short@example.com", password="pw")
    session = stack.ory.create_session(identity)
    headers = stack.cookie(session.cookie_value)
    assert (await stack.client.get("/app", headers=headers)).status == 200
    stack.clock.advance(86_400 + 1)  # past the stand-in's 24h lifespan
    response = await stack.client.get("/app", headers={**headers, **API})
    assert response.status == 401


async def test_concurrent_requests_with_same_credential_make_one_ory_call(stack: Stack) -> None:
    cookie, _ = stack.login()
    stack.ory.faults.latency = 0.05
    async with asyncio.timeout(10):
        responses = await asyncio.gather(
            *(stack.client.get("/app", headers=stack.cookie(cookie)) for _ in range(20))
        )
    assert [r.status for r in responses] == [200] * 20
    assert stack.ory.calls["GET /sessions/whoami"] == 1


async def test_invalid_credential_is_not_cached(stack: Stack) -> None:
    for _ in range(3):
        await stack.client.get("/app", headers={**stack.cookie("bogus"), **API})
    assert stack.ory.calls["GET /sessions/whoami"] == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_ory_error_status_is_503_never_let_through(stack: Stack, status: int) -> None:
    cookie, _ = stack.login()
    stack.ory.faults.whoami_status = status
    response = await stack.client.get("/app", headers={**stack.cookie(cookie), **API})
    assert response.status == 503
    assert (await response.json())["error"]["id"] == "ory_unavailable"
    assert stack.upstream.seen == []


@pytest.mark.parametrize("fault", ["garbage", "truncate"])
async def test_unreadable_ory_answer_is_503(stack: Stack, fault: str) -> None:
    cookie, _ = stack.login()
    setattr(stack.ory.faults, fault, True)
    response = await stack.client.get("/app", headers={**stack.cookie(cookie), **API})
    assert response.status == 503
    assert stack.upstream.seen == []


async def test_ory_hanging_times_out_to_503(make_stack: StackFactory) -> None:
    stack = await make_stack(ory='timeout = "200ms"')
    cookie, _ = stack.login()
    stack.ory.faults.hang = True
    async with asyncio.timeout(5):
        response = await stack.client.get("/app", headers={**stack.cookie(cookie), **API})
    assert response.status == 503
    stack.ory.faults.release()


async def test_ory_down_is_503_and_browser_gets_html(make_stack: StackFactory) -> None:
    stack = await make_stack()
    cookie, _ = stack.login()
    await stack.ory_server.close()
    response = await stack.client.get(
        "/app", headers={**stack.cookie(cookie), "Accept": "text/html"}
    )
    assert response.status == 503
    assert response.headers["Content-Type"].startswith("text/html")


async def test_stale_if_error_serves_known_session_while_ory_fails(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache='ttl = "10s"\nstale_if_error = "30s"')
    cookie, _ = stack.login("stale@example.com")
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    stack.ory.faults.whoami_status = 503
    stack.clock.advance(20)
    response = await stack.client.get("/app", headers=stack.cookie(cookie))
    assert response.status == 200
    assert stack.upstream.header("X-User-Email") == ["stale@example.com"]
    stack.clock.advance(25)  # 45s: past ttl + stale_if_error
    response = await stack.client.get("/app", headers={**stack.cookie(cookie), **API})
    assert response.status == 503


async def test_stale_if_error_off_by_default(stack: Stack) -> None:
    cookie, _ = stack.login()
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    stack.ory.faults.whoami_status = 503
    stack.clock.advance(11)
    response = await stack.client.get("/app", headers={**stack.cookie(cookie), **API})
    assert response.status == 503


async def test_recovery_once_ory_is_back(stack: Stack) -> None:
    cookie, _ = stack.login()
    stack.ory.faults.whoami_status = 503
    assert (await stack.client.get("/app", headers={**stack.cookie(cookie), **API})).status == 503
    stack.ory.faults.reset()
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200


async def test_optional_route_with_ory_down_fails_closed(stack: Stack) -> None:
    cookie, _ = stack.login()
    stack.ory.faults.whoami_status = 500
    response = await stack.client.get("/maybe/x", headers={**stack.cookie(cookie), **API})
    assert response.status == 503


async def test_two_users_interleaved_never_get_each_others_identity(stack: Stack) -> None:
    alice, _ = stack.login("alice@example.com")
    bob, _ = stack.login("bob@example.com")
    stack.ory.faults.latency = 0.01
    cookies = [alice, bob] * 15

    async def fetch(cookie: str) -> tuple[str, str]:
        response = await stack.client.get("/app", headers=stack.cookie(cookie))
        body = await response.json()
        email = next(v for k, v in body["headers"] if k == "X-User-Email")
        return cookie, email

    async with asyncio.timeout(10):
        results = await asyncio.gather(*(fetch(c) for c in cookies))
    for cookie, email in results:
        assert email == ("alice@example.com" if cookie == alice else "bob@example.com")
