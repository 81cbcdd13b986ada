"""Fault switches and counters the gateway's own tests drive."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from ory_client import GenericError

from gateway.standin import OryStandin

from .conftest import Client, User, token_header


@pytest.mark.parametrize("status", [500, 503, 504, 429])
async def test_status_fault_answers_with_a_json_error(
    client: Client, ory: OryStandin, alice: User, status: int
) -> None:
    ory.faults.whoami_status = status
    resp = await client.get(
        "/sessions/whoami", headers=token_header(ory.create_session(alice.identity_id))
    )
    assert resp.status == status
    assert resp.headers["Content-Type"] == "application/json"
    body = await resp.json()
    assert body["error"]["code"] == status
    assert GenericError.from_dict(body["error"]) is not None
    rate_limit = {
        k.lower(): v for k, v in resp.headers.items() if k.lower().startswith("x-ratelimit-")
    }
    if status == 429:
        assert rate_limit == {
            "x-ratelimit-limit": "10, 10;w=1, 300;w=60",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "1",
        }
    else:
        assert rate_limit == {}


async def test_bad_gateway_fault_is_an_html_edge_page(client: Client, ory: OryStandin) -> None:
    ory.faults.whoami_status = 502
    resp = await client.get("/sessions/whoami")
    assert resp.status == 502
    assert resp.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        json.loads(await resp.text())


async def test_garbage_fault_is_200_that_is_not_json(client: Client, ory: OryStandin) -> None:
    ory.faults.garbage = True
    resp = await client.get("/sessions/whoami")
    assert resp.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(await resp.text())


async def test_truncate_fault_closes_before_content_length(client: Client, ory: OryStandin) -> None:
    ory.faults.truncate = True
    resp = await client.get("/sessions/whoami")
    assert resp.status == 200
    assert resp.content_length is not None
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


async def test_hang_fault_waits_until_release(client: Client, ory: OryStandin, alice: User) -> None:
    session = ory.create_session(alice.identity_id)
    ory.faults.hang = True
    pending = asyncio.create_task(client.get("/sessions/whoami", headers=token_header(session)))
    async with asyncio.timeout(5):
        await ory.faults.wait_hanging(1)
    assert not pending.done()
    ory.faults.release()
    async with asyncio.timeout(5):
        resp = await pending
    assert resp.status == 200
    assert ory.faults.hang is False
    assert ory.faults.hanging == 0


async def test_hang_fault_only_affects_whoami(client: Client, ory: OryStandin) -> None:
    ory.faults.hang = True
    ory.faults.whoami_status = 500
    async with asyncio.timeout(5):
        resp = await client.get("/sessions")
    assert resp.status == 401


async def test_server_shutdown_releases_hanging_whoami(
    client: Client, ory: OryStandin, alice: User
) -> None:
    session = ory.create_session(alice.identity_id)
    ory.faults.hang = True
    pending = asyncio.create_task(client.get("/sessions/whoami", headers=token_header(session)))
    async with asyncio.timeout(5):
        await ory.faults.wait_hanging(1)
        await client.server.close()
        resp = await pending
    assert resp.status == 200
    assert ory.faults.hanging == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sessions/whoami"),
        ("GET", "/sessions"),
        ("GET", "/health/ready"),
        ("GET", "/self-service/login/browser"),
    ],
)
async def test_latency_delays_every_endpoint_and_every_call_is_counted(
    client: Client, ory: OryStandin, method: str, path: str
) -> None:
    ory.faults.latency = 0.05
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(5):
        await client.request(method, path, allow_redirects=False)
    assert loop.time() - started >= 0.05
    assert ory.calls == {f"{method} {path}": 1}


async def test_calls_and_whoami_requests_are_recorded(
    client: Client, ory: OryStandin, alice: User
) -> None:
    session = ory.create_session(alice.identity_id)
    await client.get("/sessions/whoami", headers=token_header(session))
    await client.get("/sessions/whoami", headers={"X-Request-ID": "r1"})
    await client.delete(f"/sessions/{session.id}", headers=token_header(session))
    assert ory.calls["GET /sessions/whoami"] == 2
    assert ory.calls[f"DELETE /sessions/{session.id}"] == 1
    assert [h.get("x-session-token") for h in ory.whoami_requests] == [session.token, None]
    assert ory.whoami_requests[1]["X-Request-Id"] == "r1"


async def test_reset_restores_normal_answers(client: Client, ory: OryStandin, alice: User) -> None:
    session = ory.create_session(alice.identity_id)
    ory.faults.whoami_status = 503
    ory.faults.garbage = True
    ory.faults.truncate = True
    ory.faults.latency = 1.0
    ory.faults.ready_status = 503
    ory.faults.reset()
    async with asyncio.timeout(5):
        whoami = await client.get("/sessions/whoami", headers=token_header(session))
        ready = await client.get("/health/ready")
    assert whoami.status == 200
    assert ready.status == 200


@pytest.mark.parametrize(
    ("ready_status", "status", "body"),
    [
        pytest.param(None, 200, {"status": "ok"}, id="ready"),
        pytest.param(503, 503, None, id="unready"),
    ],
)
async def test_ready_probe_follows_its_fault(
    client: Client, ory: OryStandin, ready_status: int | None, status: int, body: object
) -> None:
    ory.faults.ready_status = ready_status
    resp = await client.get("/health/ready")
    assert resp.status == status
    if body is not None:
        assert await resp.json() == body
    alive = await client.get("/health/alive")
    assert await alive.json() == {"status": "ok"}
