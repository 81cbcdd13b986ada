"""HttpOryClient against recorded-style Ory answers (docs/reference.md#asking-ory)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from gateway.config import DEFAULT_IDENTITY_HEADERS
from gateway.credentials import Credential, Source, credential_key
from gateway.errors import OryUnavailableError
from gateway.ory import STEP_UP_REQUIRED, UNAUTHENTICATED, HttpOryClient
from gateway.session import Session
from tests.unit.aioresponses_shim import OryMock
from tests.unit.fakes import FakeClock, load_example

BASE = "http://ory.test"
WHOAMI = f"{BASE}/sessions/whoami"
LOGOUT = re.compile(r"^http://ory\.test/self-service/logout/browser(\?.*)?$")
SESSIONS = re.compile(r"^http://ory\.test/sessions(\?.*)?$")
COOKIE_NAME = "ory_kratos_session"
BEFORE_EXPIRY = datetime(2023, 2, 4, tzinfo=UTC).timestamp()
WAIT = 5.0


@dataclass
class Ory:
    client: HttpOryClient
    mock: aioresponses

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        """The keyword arguments of every request sent to `path`, query ignored."""
        return [
            call.kwargs
            for (sent_method, url), calls in self.mock.requests.items()
            if sent_method == method and url.path == path
            for call in calls
        ]

    def sent_headers(self, method: str, path: str) -> list[dict[str, str]]:
        return [dict(kwargs["headers"]) for kwargs in self.calls(method, path)]


@asynccontextmanager
async def ory_client(ory_timeout: float = 1.5) -> AsyncIterator[Ory]:
    """An HttpOryClient over a real ClientSession whose requests aioresponses answers."""
    with OryMock() as mock:
        async with aiohttp.ClientSession() as http, asyncio.timeout(WAIT):
            client = HttpOryClient(
                http,
                base_url=BASE,
                cookie_name=COOKIE_NAME,
                timeout=ory_timeout,
                identity_headers=DEFAULT_IDENTITY_HEADERS,
                clock=FakeClock(BEFORE_EXPIRY),
            )
            yield Ory(client, mock)


def credential(source: Source = "cookie", value: str = "secret-value") -> Credential:
    return Credential(source, value, credential_key(source, value))


def whoami_body(**changes: Any) -> str:
    payload = load_example("whoami-200-via-cookie.ory-docs.json")
    payload.update(changes)
    return json.dumps(payload)


async def test_whoami_200_returns_session() -> None:
    async with ory_client() as ory:
        ory.mock.get(WHOAMI, status=200, body=whoami_body())

        result = await ory.client.whoami(credential())

    assert isinstance(result, Session)
    assert result.session_id == "0cd29640-3b64-419d-93b0-8c9e84c2090d"
    assert result.headers == (
        ("X-User-Id", "c4d24c01-feba-4213-858b-262c8d427f8c"),
        ("X-User-Email", "email@example.com"),
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, '{"error":{"code":401,"status":"Unauthorized","message":"x"}}', UNAUTHENTICATED),
        (401, "", UNAUTHENTICATED),
        (403, '{"error":{"id":"session_aal2_required","code":403}}', STEP_UP_REQUIRED),
        (403, '{"error":{"id":"session_aal2_enrollment_required"}}', STEP_UP_REQUIRED),
        (200, whoami_body(active=False), UNAUTHENTICATED),
        (200, whoami_body(expires_at="2023-02-03T00:00:00Z"), UNAUTHENTICATED),
    ],
    ids=["401", "401-empty", "403-aal2", "403-other-id", "200-inactive", "200-expired"],
)
async def test_whoami_answer_maps_to_result(status: int, body: str, expected: object) -> None:
    async with ory_client() as ory:
        ory.mock.get(WHOAMI, status=status, body=body)

        assert await ory.client.whoami(credential()) is expected


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, ""),
        (500, '{"error":{"code":500}}'),
        (502, "<html>Bad Gateway</html>"),
        (503, ""),
        (504, "gateway timeout"),
        (404, ""),
        (302, ""),
        (200, "<html>not json</html>"),
        (200, ""),
        (200, "[]"),
        (200, '"session"'),
        (200, whoami_body(id=None)),
        (200, whoami_body(identity={})),
    ],
    ids=[
        "429", "500", "502", "503", "504", "404", "redirect", "200-html", "200-empty",
        "200-list", "200-string", "200-no-id", "200-no-identity-id",
    ],
)
async def test_whoami_unusable_answer_is_unavailable(status: int, body: str) -> None:
    async with ory_client() as ory:
        ory.mock.get(WHOAMI, status=status, body=body, headers={"Location": "/elsewhere"})

        with pytest.raises(OryUnavailableError):
            await ory.client.whoami(credential())


@pytest.mark.parametrize(
    "failure",
    [
        {"timeout": True},
        {"exception": aiohttp.ClientConnectionError("refused")},
        {"exception": aiohttp.ServerDisconnectedError()},
        {"exception": ConnectionResetError()},
        {"exception": TimeoutError()},
    ],
    ids=["timeout", "connection-refused", "disconnected", "reset", "os-timeout"],
)
async def test_whoami_transport_failure_is_unavailable(failure: dict[str, Any]) -> None:
    async with ory_client() as ory:
        ory.mock.get(WHOAMI, **failure)

        with pytest.raises(OryUnavailableError):
            await ory.client.whoami(credential())


async def test_whoami_unreachable_ory_is_unavailable() -> None:
    async with ory_client() as ory:  # nothing registered: aioresponses refuses the connection
        with pytest.raises(OryUnavailableError):
            await ory.client.whoami(credential())


@pytest.mark.parametrize(
    ("source", "fresh", "headers"),
    [
        ("cookie", False, {"Accept": "application/json", "Cookie": "ory_kratos_session=v"}),
        ("session_token", False, {"Accept": "application/json", "X-Session-Token": "v"}),
        ("bearer", False, {"Accept": "application/json", "X-Session-Token": "v"}),
        ("cookie", True, {"Accept": "application/json", "Cookie": "ory_kratos_session=v",
                          "Cache-Control": "max-age=0"}),
        ("session_token", True, {"Accept": "application/json", "X-Session-Token": "v",
                                 "Cache-Control": "max-age=0"}),
    ],
    ids=["cookie", "session-token", "bearer-as-token", "cookie-fresh", "token-fresh"],
)
async def test_whoami_sends_exactly_one_credential(
    source: Source, fresh: bool, headers: dict[str, str]
) -> None:
    async with ory_client(ory_timeout=1.5) as ory:
        ory.mock.get(WHOAMI, status=401)

        await ory.client.whoami(credential(source, "v"), fresh=fresh)

        [call] = ory.calls("GET", "/sessions/whoami")
    assert dict(call["headers"]) == headers
    assert call["allow_redirects"] is False
    assert call["timeout"] == aiohttp.ClientTimeout(total=1.5)


async def test_whoami_is_get_and_carries_no_query() -> None:
    async with ory_client() as ory:
        ory.mock.get(WHOAMI, status=401)

        await ory.client.whoami(credential())

        assert [(method, str(url)) for method, url in ory.mock.requests] == [("GET", WHOAMI)]


LOGOUT_EXAMPLE = load_example("logout-browser-flow-200.ory-docs.json")


async def test_logout_url_200_returns_ory_url_and_sends_return_to() -> None:
    async with ory_client() as ory:
        ory.mock.get(LOGOUT, status=200, body=json.dumps(LOGOUT_EXAMPLE))

        url = await ory.client.logout_url(credential(), "https://app.example.com/bye")

        [call] = ory.calls("GET", "/self-service/logout/browser")
    assert url == LOGOUT_EXAMPLE["logout_url"]
    assert call["params"] == {"return_to": "https://app.example.com/bye"}
    assert dict(call["headers"]) == {
        "Accept": "application/json", "Cookie": "ory_kratos_session=secret-value"
    }


@pytest.mark.parametrize("status", [401, 403], ids=["401", "403"])
async def test_logout_url_without_session_is_none(status: int) -> None:
    async with ory_client() as ory:
        ory.mock.get(LOGOUT, status=status, body='{"error":{"id":"session_inactive"}}')

        assert await ory.client.logout_url(credential(), "https://app/") is None


async def test_logout_url_refused_return_to_retries_without_it() -> None:
    async with ory_client() as ory:
        refused = '{"error":{"id":"self_service_flow_return_to_forbidden"}}'
        ory.mock.get(LOGOUT, status=400, body=refused)
        ory.mock.get(LOGOUT, status=200, body=json.dumps(LOGOUT_EXAMPLE))

        url = await ory.client.logout_url(credential(), "https://elsewhere/")

        calls = ory.calls("GET", "/self-service/logout/browser")
    assert url == LOGOUT_EXAMPLE["logout_url"]
    assert [call.get("params") for call in calls] == [{"return_to": "https://elsewhere/"}, None]


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, ""), (200, "{}"), (200, '{"logout_url": "javascript:alert(1)"}'), (200, "nope")],
    ids=["500", "no-url", "not-http-url", "not-json"],
)
async def test_logout_url_unusable_answer_is_unavailable(status: int, body: str) -> None:
    async with ory_client() as ory:
        ory.mock.get(LOGOUT, status=status, body=body)

        with pytest.raises(OryUnavailableError):
            await ory.client.logout_url(credential(), "https://app/")


@pytest.mark.parametrize("status", [204, 401, 403], ids=["204", "401", "403"])
async def test_revoke_token_accepts_done_or_unknown(status: int) -> None:
    async with ory_client() as ory:
        ory.mock.delete(f"{BASE}/self-service/logout/api", status=status)

        await ory.client.revoke_token(credential("session_token", "ory_st_x"))

        [call] = ory.calls("DELETE", "/self-service/logout/api")
    assert call["json"] == {"session_token": "ory_st_x"}


async def test_revoke_token_failure_is_unavailable() -> None:
    async with ory_client() as ory:
        ory.mock.delete(f"{BASE}/self-service/logout/api", status=500)

        with pytest.raises(OryUnavailableError):
            await ory.client.revoke_token(credential("session_token", "ory_st_x"))


async def test_list_sessions_returns_objects_and_asks_one_big_page() -> None:
    other = load_example("whoami-200-via-session-token.ory-docs.json")
    async with ory_client() as ory:
        ory.mock.get(SESSIONS, status=200, body=json.dumps([other, "junk", 3]))

        sessions = await ory.client.list_sessions(credential("session_token", "t"))

        [call] = ory.calls("GET", "/sessions")
    assert sessions == [other]
    assert call["params"] == {"page_size": "500"}
    assert dict(call["headers"]) == {"Accept": "application/json", "X-Session-Token": "t"}


async def test_list_sessions_empty_list() -> None:
    async with ory_client() as ory:
        ory.mock.get(SESSIONS, status=200, body="[]")

        assert await ory.client.list_sessions(credential()) == []


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, ""), (401, "{}"), (200, "{}"), (200, "not json")],
    ids=["500", "401", "object", "not-json"],
)
async def test_list_sessions_unusable_answer_is_unavailable(status: int, body: str) -> None:
    async with ory_client() as ory:
        ory.mock.get(SESSIONS, status=status, body=body)

        with pytest.raises(OryUnavailableError):
            await ory.client.list_sessions(credential())


@pytest.mark.parametrize(
    ("body", "count"),
    [('{"count": 3}', 3), ('{"count": 0}', 0), ('{"count": "3"}', 0), ("{}", 0), ("x", 0)],
    ids=["three", "zero", "string", "missing", "not-json"],
)
async def test_revoke_other_sessions_returns_count(body: str, count: int) -> None:
    async with ory_client() as ory:
        ory.mock.delete(SESSIONS, status=200, body=body)

        assert await ory.client.revoke_other_sessions(credential()) == count

        [call] = ory.calls("DELETE", "/sessions")
    assert dict(call["headers"]) == {
        "Accept": "application/json", "Cookie": "ory_kratos_session=secret-value"
    }


@pytest.mark.parametrize("status", [204, 401, 500], ids=["204-is-wrong", "401", "500"])
async def test_revoke_other_sessions_failure_is_unavailable(status: int) -> None:
    async with ory_client() as ory:
        ory.mock.delete(SESSIONS, status=status)

        with pytest.raises(OryUnavailableError):
            await ory.client.revoke_other_sessions(credential())


@pytest.mark.parametrize("status", [204, 400, 404], ids=["204", "400", "404"])
async def test_revoke_session_accepts_done(status: int) -> None:
    session_id = "c9d793e8-10e4-4189-8856-6fb9f9a36836"
    async with ory_client() as ory:
        ory.mock.delete(f"{BASE}/sessions/{session_id}", status=status)

        await ory.client.revoke_session(credential(), session_id)

        assert len(ory.calls("DELETE", f"/sessions/{session_id}")) == 1


@pytest.mark.parametrize("status", [401, 500, 503], ids=["401", "500", "503"])
async def test_revoke_session_failure_is_unavailable(status: int) -> None:
    async with ory_client() as ory:
        ory.mock.delete(f"{BASE}/sessions/abc", status=status)

        with pytest.raises(OryUnavailableError):
            await ory.client.revoke_session(credential(), "abc")


READY = f"{BASE}/health/ready"


@pytest.mark.parametrize(
    ("answers", "ready"),
    [
        ([(READY, {"status": 200})], True),
        ([(READY, {"status": 404}), (WHOAMI, {"status": 401})], True),
        ([(READY, {"status": 404}), (WHOAMI, {"status": 200, "body": whoami_body()})], False),
        ([(READY, {"status": 404}), (WHOAMI, {"status": 500})], False),
        ([(READY, {"status": 404}), (WHOAMI, {"timeout": True})], False),
        ([(READY, {"status": 503})], False),
        ([(READY, {"status": 500})], False),
        ([(READY, {"timeout": True})], False),
        ([(READY, {"exception": aiohttp.ClientConnectionError("refused")})], False),
        ([], False),
    ],
    ids=[
        "ready", "network-404-then-401", "404-then-200", "404-then-500", "404-then-timeout",
        "503", "500", "timeout", "connection-error", "unreachable",
    ],
)
async def test_is_ready(answers: list[tuple[str, dict[str, Any]]], ready: bool) -> None:
    async with ory_client() as ory:
        for url, answer in answers:
            ory.mock.get(url, **answer)

        assert await ory.client.is_ready() is ready

        sent = ory.sent_headers("GET", "/sessions/whoami")
    assert all(headers == {"Accept": "application/json"} for headers in sent)
