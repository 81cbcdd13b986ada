"""Browser login, re-authentication and step-up through the stand-in's own page
(docs/standin.md#browser-login)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse
from ory_client import LoginFlow

from gateway.standin import OryStandin

from .conftest import (
    APP_URL,
    COOKIE,
    Client,
    FakeClock,
    MakeClient,
    User,
    cookie_header,
    token_header,
)

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "User-Agent": "TestBrowser/1"}
RETURN_TO = f"{APP_URL}/after"


def _relative(url: str, base_url: str) -> str:
    assert url.startswith(base_url), url
    return url.removeprefix(base_url)


async def _open_login_page(
    client: Client, base_url: str, params: dict[str, str], headers: dict[str, str]
) -> str:
    """Follow /self-service/login/browser to the page; return the page's HTML."""
    start = await client.get(
        "/self-service/login/browser",
        params=params,
        headers={**BROWSER, **headers},
        allow_redirects=False,
    )
    assert start.status == 303
    location = start.headers["Location"]
    assert urlsplit(location).path == "/ui/login"
    page = await client.get(_relative(location, base_url), headers=BROWSER)
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    return await page.text()


async def _submit(
    client: Client, base_url: str, page: str, form: dict[str, str], headers: dict[str, str]
) -> ClientResponse:
    match = re.search(r'<form method="post" action="([^"]+)"', page)
    assert match is not None
    action = _relative(html.unescape(match.group(1)), base_url)
    return await client.post(
        action, data=form, headers={**BROWSER, **headers}, allow_redirects=False
    )


def _session_cookie(resp: ClientResponse) -> str:
    morsel = resp.cookies[COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/"
    assert int(morsel["max-age"]) == 86400
    return morsel.value


async def test_login_without_session_shows_form_then_sets_cookie(
    client: Client, ory: OryStandin, alice: User, base_url: str
) -> None:
    page = await _open_login_page(client, base_url, {"return_to": RETURN_TO}, {})
    assert '<label for="email">' in page
    assert '<label for="password">' in page
    assert 'name="viewport"' in page
    assert 'name="code"' not in page
    done = await _submit(
        client, base_url, page, {"email": alice.email, "password": alice.password}, {}
    )
    assert done.status == 303
    assert done.headers["Location"] == RETURN_TO
    cookie = _session_cookie(done)
    whoami = await client.get("/sessions/whoami", headers={"Cookie": f"{COOKIE}={cookie}"})
    body = await whoami.json()
    assert body["identity"]["id"] == alice.identity_id
    assert body["devices"][0]["ip_address"] == "127.0.0.1"
    assert body["devices"][0]["user_agent"] == "TestBrowser/1"
    assert body["authentication_methods"][0]["method"] == "password"


@pytest.mark.parametrize(
    "form",
    [
        pytest.param({"email": "alice@example.com", "password": "wrong"}, id="wrong-password"),
        pytest.param({"email": "nobody@example.com", "password": "x"}, id="unknown-email"),
        pytest.param({"email": "alice@example.com"}, id="no-password"),
    ],
)
async def test_login_with_bad_credentials_returns_to_page_with_error(
    client: Client, alice: User, base_url: str, form: dict[str, str]
) -> None:
    page = await _open_login_page(client, base_url, {}, {})
    done = await _submit(client, base_url, page, form, {})
    assert done.status == 303
    assert COOKIE not in done.cookies
    again = await client.get(_relative(done.headers["Location"], base_url))
    assert 'role="alert"' in await again.text()


async def test_login_with_session_goes_straight_to_return_to(
    client: Client, ory: OryStandin, alice: User
) -> None:
    session = ory.create_session(alice.identity_id)
    resp = await client.get(
        "/self-service/login/browser",
        params={"return_to": RETURN_TO},
        headers={**BROWSER, **cookie_header(session)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == RETURN_TO
    as_json = await client.get(
        "/self-service/login/browser",
        headers={"Accept": "application/json", **cookie_header(session)},
    )
    assert as_json.status == 400
    assert (await as_json.json())["error"]["id"] == "session_already_available"


async def test_refresh_keeps_session_id_and_moves_authenticated_at(
    client: Client, ory: OryStandin, alice: User, clock: FakeClock, base_url: str
) -> None:
    session = ory.create_session(alice.identity_id)
    old_cookie = session.cookie_value
    before = await (await client.get("/sessions/whoami", headers=token_header(session))).json()
    clock.advance(600)
    page = await _open_login_page(
        client, base_url, {"refresh": "true", "return_to": RETURN_TO}, cookie_header(session)
    )
    assert 'value="alice@example.com"' in page
    done = await _submit(client, base_url, page, {"password": alice.password}, {})
    assert done.headers["Location"] == RETURN_TO
    new_cookie = _session_cookie(done)
    assert new_cookie != old_cookie
    after = await client.get("/sessions/whoami", headers={"Cookie": f"{COOKIE}={new_cookie}"})
    body = await after.json()
    assert body["id"] == session.id
    assert body["authenticated_at"] == "2023-11-14T22:23:20.25Z"
    assert body["issued_at"] == body["authenticated_at"]
    assert body["expires_at"] > before["expires_at"]
    assert body["authenticated_at"] > before["authenticated_at"]


async def test_refresh_without_session_is_a_plain_login(client: Client, base_url: str) -> None:
    page = await _open_login_page(client, base_url, {"refresh": "true"}, {})
    assert "<h1>Sign in</h1>" in page


@pytest.mark.parametrize(
    "form",
    [
        pytest.param({"code": "123456"}, id="code-alone"),
        pytest.param(
            {"email": "carol@example.com", "password": "carol-password", "code": "654321"},
            id="all-fields",
        ),
    ],
)
async def test_step_up_raises_the_same_session_to_aal2(
    client: Client, ory: OryStandin, carol: User, base_url: str, form: dict[str, str]
) -> None:
    session = ory.create_session(carol.identity_id)
    denied = await client.get("/sessions/whoami", headers=cookie_header(session))
    assert denied.status == 403
    step_up = urlsplit((await denied.json())["redirect_browser_to"])
    assert (step_up.path, step_up.query) == ("/self-service/login/browser", "aal=aal2")
    page = await _open_login_page(
        client, base_url, {"aal": "aal2", "return_to": RETURN_TO}, cookie_header(session)
    )
    assert '<label for="code">' in page
    done = await _submit(client, base_url, page, form, {})
    assert done.headers["Location"] == RETURN_TO
    cookie = _session_cookie(done)
    whoami = await client.get("/sessions/whoami", headers={"Cookie": f"{COOKIE}={cookie}"})
    body = await whoami.json()
    assert whoami.status == 200
    assert body["id"] == session.id
    assert body["authenticator_assurance_level"] == "aal2"
    methods = {m["method"]: m["aal"] for m in body["authentication_methods"]}
    assert methods == {"password": "aal1", "totp": "aal2"}


@pytest.mark.parametrize(
    ("user", "code"),
    [
        pytest.param("carol", "12345", id="five-digits"),
        pytest.param("carol", "abcdef", id="letters"),
        pytest.param("alice", "123456", id="no-second-factor-enrolled"),
    ],
)
async def test_step_up_refuses_without_a_valid_second_factor(
    client: Client,
    ory: OryStandin,
    alice: User,
    carol: User,
    base_url: str,
    user: str,
    code: str,
) -> None:
    identity_id = {"alice": alice, "carol": carol}[user].identity_id
    session = ory.create_session(identity_id)
    page = await _open_login_page(client, base_url, {"aal": "aal2"}, cookie_header(session))
    done = await _submit(client, base_url, page, {"code": code}, {})
    assert COOKIE not in done.cookies
    assert urlsplit(done.headers["Location"]).path == "/ui/login"
    assert ory.get_session(session.id).aal == "aal1"


async def test_aal2_session_asking_for_aal2_goes_straight_back(
    client: Client, ory: OryStandin, carol: User
) -> None:
    session = ory.create_session(carol.identity_id, aal="aal2")
    resp = await client.get(
        "/self-service/login/browser",
        params={"aal": "AAL2", "return_to": RETURN_TO},
        headers={**BROWSER, **cookie_header(session)},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == RETURN_TO


async def test_aal2_without_session_goes_to_error_ui(client: Client, base_url: str) -> None:
    resp = await client.get(
        "/self-service/login/browser",
        params={"aal": "aal2"},
        headers=BROWSER,
        allow_redirects=False,
    )
    assert resp.status == 303
    location = resp.headers["Location"]
    assert location.startswith(f"{base_url}/ui/error?id=")
    error_id = parse_qs(urlsplit(location).query)["id"][0]
    stored = await (await client.get("/self-service/errors", params={"id": error_id})).json()
    assert stored["error"]["id"] == "session_aal1_required"
    as_json = await client.get(
        "/self-service/login/browser",
        params={"aal": "aal2"},
        headers={"Accept": "application/json"},
    )
    assert as_json.status == 401


async def test_json_callers_get_the_flow(client: Client, base_url: str) -> None:
    resp = await client.get(
        "/self-service/login/browser",
        params={"return_to": RETURN_TO},
        headers={"Accept": "application/json"},
    )
    flow = LoginFlow.from_json(await resp.text())
    assert flow is not None
    assert flow.return_to == RETURN_TO
    assert flow.ui.action == f"{base_url}/self-service/login?flow={flow.id}"


@pytest.mark.parametrize("hint", ["", "Try alice@example.com / alice-password"])
async def test_login_page_shows_the_hint_only_when_given(
    make_client: MakeClient, clock: FakeClock, hint: str
) -> None:
    client = await make_client(OryStandin(clock=clock, login_hint=hint))
    page = await _open_login_page(client, str(client.make_url("")).rstrip("/"), {}, {})
    assert ('class="hint"' in page) is bool(hint)
    assert html.escape(hint) in page


async def test_expired_flow_starts_again_with_the_same_request(
    client: Client, clock: FakeClock, alice: User, base_url: str
) -> None:
    page = await _open_login_page(client, base_url, {"return_to": RETURN_TO}, {})
    clock.advance(3601)
    done = await _submit(
        client, base_url, page, {"email": alice.email, "password": alice.password}, {}
    )
    assert done.status == 303
    location = urlsplit(done.headers["Location"])
    assert location.path == "/self-service/login/browser"
    assert parse_qs(location.query) == {"return_to": [RETURN_TO]}
