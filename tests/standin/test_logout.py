"""Logout URL, the browser logout itself, and token logout (docs/standin.md#logout)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from ory_client import GenericError, LogoutFlow

from gateway.standin import OryStandin

from .conftest import APP_URL, COOKIE, Client, User, cookie_header, token_header

JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
SESSION_INACTIVE = {
    "error": {
        "id": "session_inactive",
        "code": 401,
        "status": "Unauthorized",
        "reason": "No active session was found in this request.",
        "message": "request does not have a valid authentication session",
    }
}


async def test_browser_logout_end_to_end(
    client: Client, ory: OryStandin, alice: User, base_url: str
) -> None:
    session = ory.create_session(alice.identity_id)
    return_to = f"{APP_URL}/signed-out"
    resp = await client.get(
        "/self-service/logout/browser",
        params={"return_to": return_to},
        headers={**cookie_header(session), **JSON},
    )
    text = await resp.text()
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    flow = LogoutFlow.from_json(text)
    assert flow is not None
    assert flow.logout_token.startswith("ory_lo_")
    assert len(flow.logout_token) == len("ory_lo_") + 32
    url = urlsplit(flow.logout_url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{base_url}/self-service/logout"
    assert parse_qs(url.query) == {"token": [flow.logout_token], "return_to": [return_to]}
    assert "\\u0026" in text  # Go's encoder escapes the & in the URL

    again = await client.get("/self-service/logout/browser", headers=cookie_header(session))
    assert (await again.json())["logout_token"] == flow.logout_token

    done = await client.get(
        flow.logout_url.removeprefix(base_url),
        headers={**cookie_header(session), **BROWSER},
        allow_redirects=False,
    )
    assert done.status == 303
    assert done.headers["Location"] == return_to
    assert done.cookies[COOKIE].value == ""
    assert done.cookies[COOKIE]["max-age"] == "0"
    assert not ory.get_session(session.id).active
    whoami = await client.get("/sessions/whoami", headers=cookie_header(session))
    assert whoami.status == 401


async def test_logout_answers_json_callers_with_204(
    client: Client, ory: OryStandin, alice: User
) -> None:
    session = ory.create_session(alice.identity_id)
    resp = await client.get(
        "/self-service/logout",
        params={"token": session.logout_token},
        headers={**cookie_header(session), **JSON},
    )
    assert resp.status == 204
    assert "Max-Age=0" in resp.headers["Set-Cookie"]


async def test_logout_without_return_to_goes_to_default(
    client: Client, ory: OryStandin, alice: User
) -> None:
    session = ory.create_session(alice.identity_id)
    resp = await client.get(
        "/self-service/logout",
        params={"token": session.logout_token},
        headers=cookie_header(session),
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == APP_URL


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        pytest.param("no-token", 400, "Please include a token in the URL query.", id="no-token"),
        pytest.param("no-session", 401, None, id="no-session"),
        pytest.param(
            "wrong-token",
            403,
            "Unable to log out because the logout token in the URL query does not match the"
            " session cookie.",
            id="token-of-another-session",
        ),
    ],
)
async def test_logout_errors_for_json_callers(
    client: Client, ory: OryStandin, alice: User, case: str, status: int, reason: str | None
) -> None:
    session = ory.create_session(alice.identity_id)
    other = ory.create_session(alice.identity_id)
    params = {
        "no-token": {},
        "no-session": {"token": session.logout_token},
        "wrong-token": {"token": other.logout_token},
    }[case]
    headers = JSON if case == "no-session" else {**cookie_header(session), **JSON}
    resp = await client.get("/self-service/logout", params=params, headers=headers)
    body = await resp.json()
    assert resp.status == status
    assert resp.headers["Content-Type"] == "application/json"
    if reason is None:
        assert body == SESSION_INACTIVE
    else:
        assert body["error"]["reason"] == reason
    assert GenericError.from_dict(body["error"]) is not None
    assert ory.get_session(session.id).active


async def test_logout_errors_send_browsers_to_error_ui(client: Client, base_url: str) -> None:
    resp = await client.get(
        "/self-service/logout", params={"token": "x"}, headers=BROWSER, allow_redirects=False
    )
    assert resp.status == 303
    location = resp.headers["Location"]
    assert location.startswith(f"{base_url}/ui/error?id=")
    error_id = parse_qs(urlsplit(location).query)["id"][0]
    page = await client.get("/ui/error", params={"id": error_id})
    assert "No active session was found in this request." in await page.text()
    stored = await client.get("/self-service/errors", params={"id": error_id})
    assert (await stored.json())["error"] == SESSION_INACTIVE["error"]


async def test_logout_url_needs_a_session(client: Client) -> None:
    resp = await client.get("/self-service/logout/browser", headers=JSON)
    assert resp.status == 401
    assert resp.headers["Ory-Error-Id"] == "session_inactive"
    assert await resp.json() == SESSION_INACTIVE


async def test_logout_url_refuses_foreign_return_to(
    client: Client, ory: OryStandin, alice: User
) -> None:
    session = ory.create_session(alice.identity_id)
    resp = await client.get(
        "/self-service/logout/browser",
        params={"return_to": "https://evil.example/"},
        headers={**cookie_header(session), **JSON},
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["id"] == "self_service_flow_return_to_forbidden"


async def test_native_logout_revokes_the_token(
    client: Client, ory: OryStandin, alice: User
) -> None:
    session = ory.create_session(alice.identity_id)
    body = json.dumps({"session_token": session.token})
    headers = {"Content-Type": "application/json"}
    first = await client.delete("/self-service/logout/api", data=body, headers=headers)
    assert first.status == 204
    assert "Set-Cookie" not in first.headers
    assert not ory.get_session(session.id).active
    again = await client.delete("/self-service/logout/api", data=body, headers=headers)
    assert again.status == 204
    whoami = await client.get("/sessions/whoami", headers=token_header(session))
    assert whoami.status == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param('{"session_token": "ory_st_unknown"}', 403, id="unknown-token"),
        pytest.param("{not json", 400, id="malformed-json"),
        pytest.param("{}", 400, id="missing-token"),
    ],
)
async def test_native_logout_rejects_bad_bodies(client: Client, body: str, status: int) -> None:
    resp = await client.delete(
        "/self-service/logout/api", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == status
    error = (await resp.json())["error"]
    assert GenericError.from_dict(error) is not None
    if status == 403:
        assert error == {
            "code": 403,
            "status": "Forbidden",
            "reason": "The provided Ory Session Token could not be found, is invalid,"
            " or otherwise malformed.",
            "message": "The requested action was forbidden",
        }
