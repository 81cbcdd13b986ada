"""`/sessions/whoami` against Kratos' schema (docs/standin.md#whoami) and the official SDK's
models."""

from __future__ import annotations

import asyncio
import json

import ory_client
import pytest
from ory_client import ErrorAuthenticatorAssuranceLevelNotSatisfied, GenericError, Session

from gateway.standin import OryStandin, StandinSession

from .conftest import (
    COOKIE,
    NO_CACHE,
    Client,
    FakeClock,
    MakeClient,
    User,
    cookie_header,
    token_header,
)

UNAUTHORIZED_BODY = {
    "error": {
        "code": 401,
        "status": "Unauthorized",
        "reason": "No valid session credentials found in the request.",
        "message": "The request could not be authorized",
    }
}
SESSION_KEYS = {
    "id",
    "active",
    "expires_at",
    "authenticated_at",
    "authenticator_assurance_level",
    "authentication_methods",
    "issued_at",
    "identity",
    "devices",
}
IDENTITY_KEYS = {
    "id",
    "schema_id",
    "schema_url",
    "state",
    "traits",
    "verifiable_addresses",
    "recovery_addresses",
    "metadata_public",
    "created_at",
    "updated_at",
    "organization_id",
}


def _credential(kind: str, session: StandinSession) -> dict[str, str]:
    if kind == "cookie":
        return cookie_header(session)
    if kind == "bearer":
        return {"Authorization": f"Bearer {session.token}"}
    return token_header(session)


@pytest.mark.parametrize("kind", ["x-session-token", "cookie", "bearer"])
async def test_whoami_returns_full_session_for_each_credential(
    client: Client, ory: OryStandin, alice: User, kind: str, base_url: str
) -> None:
    session = ory.create_session(alice.identity_id, user_agent="curl/8", ip_address="10.0.0.7")
    resp = await client.get("/sessions/whoami", headers=_credential(kind, session))
    text = await resp.text()
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["Cache-Control"] == NO_CACHE
    assert resp.headers["X-Kratos-Authenticated-Identity-Id"] == alice.identity_id
    parsed = Session.from_json(text)
    assert parsed is not None
    body = json.loads(text)
    assert set(body) == SESSION_KEYS
    assert set(body["identity"]) == IDENTITY_KEYS
    assert body["id"] == session.id
    assert body["active"] is True
    assert body["authenticator_assurance_level"] == "aal1"
    assert body["identity"]["traits"] == {"email": alice.email}
    assert body["identity"]["schema_url"].startswith(base_url + "/schemas/")
    assert body["identity"]["organization_id"] is None
    assert body["devices"] == [
        {
            "id": body["devices"][0]["id"],
            "ip_address": "10.0.0.7",
            "user_agent": "curl/8",
            "location": "",
        }
    ]
    assert body["expires_at"] == "2023-11-15T22:13:20.25Z"
    assert body["authenticated_at"] == "2023-11-14T22:13:20.25Z"


async def test_whoami_does_not_slide_expiry(
    client: Client, ory: OryStandin, alice: User, clock: FakeClock
) -> None:
    session = ory.create_session(alice.identity_id)
    first = await (await client.get("/sessions/whoami", headers=token_header(session))).json()
    clock.advance(3600)
    later = await (await client.get("/sessions/whoami", headers=token_header(session))).json()
    assert later["expires_at"] == first["expires_at"]
    clock.advance(86400)
    resp = await client.get("/sessions/whoami", headers=token_header(session))
    assert resp.status == 401


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("token-beats-cookie", "first", id="token-beats-cookie"),
        pytest.param("cookie-beats-bearer", "first", id="cookie-beats-bearer"),
        pytest.param("unknown-cookie-falls-to-bearer", "second", id="unknown-cookie-bearer"),
        pytest.param("revoked-cookie-blocks-bearer", None, id="revoked-cookie-blocks-bearer"),
        pytest.param("bad-token-beats-good-cookie", None, id="bad-token-wins-outright"),
    ],
)
async def test_whoami_picks_one_credential_in_kratos_order(
    client: Client, ory: OryStandin, alice: User, case: str, expected: str | None
) -> None:
    first = ory.create_session(alice.identity_id)
    second = ory.create_session(alice.identity_id)
    headers = {
        "token-beats-cookie": {"X-Session-Token": first.token, **cookie_header(second)},
        "cookie-beats-bearer": {
            **cookie_header(first),
            "Authorization": f"Bearer {second.token}",
        },
        "unknown-cookie-falls-to-bearer": {
            "Cookie": f"{COOKIE}=garbage",
            "Authorization": f"bearer {second.token}",
        },
        "revoked-cookie-blocks-bearer": {
            **cookie_header(first),
            "Authorization": f"Bearer {second.token}",
        },
        "bad-token-beats-good-cookie": {"X-Session-Token": "ory_st_nope", **cookie_header(first)},
    }[case]
    if case == "revoked-cookie-blocks-bearer":
        ory.revoke_session(first.id)
    resp = await client.get("/sessions/whoami", headers=headers)
    if expected is None:
        assert resp.status == 401
    else:
        wanted = first if expected == "first" else second
        assert (await resp.json())["id"] == wanted.id


@pytest.mark.parametrize(
    "case",
    [
        "none",
        "unknown-token",
        "unknown-cookie",
        "revoked",
        "expired",
        "inactive-identity",
        "three-part-bearer",
        "other-cookie-name",
    ],
)
async def test_whoami_gives_one_exact_401_for_every_failure(
    client: Client, ory: OryStandin, alice: User, case: str
) -> None:
    session = ory.create_session(alice.identity_id)
    headers = {
        "none": {},
        "unknown-token": {"X-Session-Token": "ory_st_" + "a" * 32},
        "unknown-cookie": {"Cookie": f"{COOKIE}=whatever"},
        "revoked": token_header(session),
        "expired": token_header(session),
        "inactive-identity": cookie_header(session),
        "three-part-bearer": {"Authorization": f"Bearer {session.token} x"},
        "other-cookie-name": {"Cookie": f"other={session.cookie_value}"},
    }[case]
    if case == "revoked":
        ory.revoke_session(session.id)
    elif case == "expired":
        ory.expire_session(session.id)
    elif case == "inactive-identity":
        ory.deactivate_identity(alice.identity_id)
    resp = await client.get("/sessions/whoami", headers=headers)
    text = await resp.text()
    assert resp.status == 401
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Ory-Error-Id"] == ""
    assert resp.headers["Cache-Control"] == NO_CACHE
    assert json.loads(text) == UNAUTHORIZED_BODY
    assert text == json.dumps(UNAUTHORIZED_BODY, separators=(",", ":")) + "\n"
    assert GenericError.from_dict(json.loads(text)["error"]) is not None


async def test_whoami_echoes_request_id_in_errors(client: Client) -> None:
    resp = await client.get("/sessions/whoami", headers={"X-Request-ID": "req-42"})
    body = await resp.json()
    assert list(body["error"]) == ["code", "status", "request", "reason", "message"]
    assert body["error"]["request"] == "req-42"


async def test_whoami_asks_for_second_factor_when_highest_available(
    client: Client, ory: OryStandin, carol: User, base_url: str
) -> None:
    session = ory.create_session(carol.identity_id)
    resp = await client.get("/sessions/whoami", headers=cookie_header(session))
    text = await resp.text()
    assert resp.status == 403
    assert resp.headers["Ory-Error-Id"] == "session_aal2_required"
    assert resp.headers["Content-Type"] == "application/json"
    assert ErrorAuthenticatorAssuranceLevelNotSatisfied.from_json(text) is not None
    body = json.loads(text)
    target = f"{base_url}/self-service/login/browser?aal=aal2"
    assert body["redirect_browser_to"] == target
    assert body["error"]["details"] == {"redirect_browser_to": target}
    assert body["error"]["id"] == "session_aal2_required"
    assert GenericError.from_dict(body["error"]) is not None


@pytest.mark.parametrize(
    ("required_aal", "aal", "status"),
    [
        pytest.param("highest_available", "aal2", 200, id="aal2-session-satisfies"),
        pytest.param("aal1", "aal1", 200, id="aal1-policy-lets-aal1-through"),
        pytest.param("highest_available", "aal1", 403, id="aal1-session-needs-step-up"),
    ],
)
async def test_whoami_status_follows_required_aal(
    make_client: MakeClient, clock: FakeClock, required_aal: str, aal: str, status: int
) -> None:
    ory = OryStandin(required_aal=required_aal, clock=clock)
    identity_id = ory.add_identity("d@example.com", password="p", has_second_factor=True)
    session = ory.create_session(identity_id, aal=aal)
    client = await make_client(ory)
    resp = await client.get("/sessions/whoami", headers=token_header(session))
    assert resp.status == status
    if status == 200:
        assert (await resp.json())["authenticator_assurance_level"] == aal


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "OPTIONS", "DELETE"])
async def test_whoami_answers_other_methods_without_cache_control(
    client: Client, ory: OryStandin, alice: User, method: str
) -> None:
    session = ory.create_session(alice.identity_id)
    resp = await client.request(method, "/sessions/whoami", headers=token_header(session))
    assert resp.status == 200
    assert resp.headers["X-Kratos-Authenticated-Identity-Id"] == alice.identity_id
    assert "Cache-Control" not in resp.headers


async def test_whoami_rejects_unknown_tokenize_template(
    client: Client, ory: OryStandin, alice: User
) -> None:
    session = ory.create_session(alice.identity_id)
    resp = await client.get(
        "/sessions/whoami", params={"tokenize_as": "jwt"}, headers=token_header(session)
    )
    assert resp.status == 400
    assert GenericError.from_dict((await resp.json())["error"]) is not None


async def test_whoami_escapes_html_characters_like_go(
    client: Client, ory: OryStandin, clock: FakeClock
) -> None:
    identity_id = ory.add_identity("e@example.com", traits={"name": "<b>&</b>"})
    session = ory.create_session(identity_id)
    resp = await client.get("/sessions/whoami", headers=token_header(session))
    text = await resp.text()
    assert "\\u003cb\\u003e\\u0026\\u003c/b\\u003e" in text
    assert json.loads(text)["identity"]["traits"] == {"name": "<b>&</b>"}


@pytest.mark.parametrize(
    ("credential", "expected"),
    [
        pytest.param(True, "3600", id="session-capped-by-max-age"),
        pytest.param(False, "60", id="no-credentials"),
    ],
)
async def test_whoami_sends_edge_cache_header_when_enabled(
    make_client: MakeClient, clock: FakeClock, credential: bool, expected: str
) -> None:
    ory = OryStandin(clock=clock, edge_cache_max_age=3600.0)
    session = ory.create_session(ory.add_identity("f@example.com"))
    client = await make_client(ory)
    headers = token_header(session) if credential else {}
    resp = await client.get("/sessions/whoami", headers=headers)
    assert resp.headers["Ory-Session-Cache-For"] == expected


async def test_official_sdk_reads_the_session(
    client: Client, ory: OryStandin, alice: User, base_url: str
) -> None:
    session = ory.create_session(alice.identity_id)

    def call() -> tuple[str, str]:
        config = ory_client.Configuration(host=base_url)
        with ory_client.ApiClient(config) as api_client:
            api = ory_client.FrontendApi(api_client)
            answer = api.to_session_with_http_info(cookie=f"{COOKIE}={session.cookie_value}")
            assert answer.data is not None
            assert answer.headers is not None
            return str(answer.data.id), answer.headers["X-Kratos-Authenticated-Identity-Id"]

    async with asyncio.timeout(10):
        session_id, identity_id = await asyncio.to_thread(call)
    assert (session_id, identity_id) == (session.id, alice.identity_id)


async def test_whoami_carries_metadata_public_set_by_an_admin(
    client: Client, ory: OryStandin
) -> None:
    identity_id = ory.add_identity("root@example.com", metadata_public={"role": "admin"})
    session = ory.create_session(identity_id)
    resp = await client.get("/sessions/whoami", headers=token_header(session))
    body = await resp.json()
    assert body["identity"]["metadata_public"] == {"role": "admin"}
    parsed = Session.from_json(json.dumps(body))
    assert parsed is not None
    assert parsed.identity is not None
    assert parsed.identity.metadata_public == {"role": "admin"}
