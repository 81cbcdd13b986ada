"""Routes, access levels, credentials, outcomes, browser vs API (docs/reference.md#route-match
to #unauthenticated-answers)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from gateway.context import services_of
from gateway.ory import HttpOryClient
from tests.conftest import Stack, StackFactory
from tests.rawhttp import get, raw_request

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}
API = {"Accept": "application/json"}


def login_query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


async def test_valid_cookie_session_is_proxied_with_identity_headers(stack: Stack) -> None:
    cookie, _ = stack.login("alice@example.com")
    response = await stack.client.get("/app/page?x=1", headers=stack.cookie(cookie))
    assert response.status == 200
    seen = stack.upstream.last()
    assert seen.raw_path == "/app/page?x=1"
    assert stack.upstream.header("X-User-Email") == ["alice@example.com"]
    assert len(stack.upstream.header("X-User-Id")) == 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/public/a", 200, id="public"),
        pytest.param("/maybe/a", 200, id="optional"),
        pytest.param("/internal/a", 403, id="deny"),
        pytest.param("/other", 401, id="default-authenticated"),
        pytest.param("/static/any/x", 200, id="single-star-glob"),
        pytest.param("/static/a/b/x", 401, id="single-star-spans-one-segment-only"),
    ],
)
async def test_access_level_without_session(stack: Stack, path: str, status: int) -> None:
    response = await stack.client.get(path, headers=API)
    assert response.status == status


async def test_public_route_never_calls_ory(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.get("/public/x", headers=stack.cookie(cookie))
    assert response.status == 200
    assert stack.ory.calls["GET /sessions/whoami"] == 0
    assert stack.upstream.header("X-User-Id") == []


async def test_optional_route_adds_identity_when_session_valid(stack: Stack) -> None:
    cookie, _ = stack.login("bob@example.com")
    await stack.client.get("/maybe/x", headers=stack.cookie(cookie))
    assert stack.upstream.header("X-User-Email") == ["bob@example.com"]


async def test_optional_route_passes_with_unknown_cookie(stack: Stack) -> None:
    response = await stack.client.get("/maybe/x", headers=stack.cookie("nonsense"))
    assert response.status == 200
    assert stack.upstream.header("X-User-Email") == []


async def test_deny_route_refuses_even_with_session(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.get("/internal/x", headers={**stack.cookie(cookie), **API})
    assert response.status == 403
    body = await response.json()
    assert body["error"]["id"] == "access_denied"
    assert stack.upstream.seen == []


async def test_browser_without_session_gets_303_to_login_with_full_return_to(stack: Stack) -> None:
    response = await stack.client.get("/app/page?x=1&y=2", headers=BROWSER, allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(stack.config.ory.url + "/self-service/login/browser?")
    assert login_query(location)["return_to"] == [stack.origin + "/app/page?x=1&y=2"]
    assert stack.ory.calls["GET /sessions/whoami"] == 0


async def test_api_without_session_gets_401_json_with_login_url(stack: Stack) -> None:
    response = await stack.client.get("/app/page", headers=API)
    assert response.status == 401
    assert response.headers["Content-Type"].startswith("application/json")
    body = await response.json()
    assert body["error"]["id"] == "session_required"
    assert body["error"]["code"] == 401
    assert body["error"]["status"] == "Unauthorized"
    assert body["error"]["message"]
    assert "/self-service/login/browser?return_to=" in body["error"]["details"]["login_url"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, id="xhr"),
        pytest.param({"Accept": "text/html", "Sec-Fetch-Mode": "cors"}, id="fetch-cors"),
        pytest.param({"Accept": "*/*"}, id="accept-any"),
        pytest.param({"Accept": "application/json, text/html;q=0.5"}, id="prefers-json"),
    ],
)
async def test_non_navigation_gets_401_not_redirect(stack: Stack, headers: dict[str, str]) -> None:
    response = await stack.client.get("/app", headers=headers, allow_redirects=False)
    assert response.status == 401


async def test_post_from_browser_is_not_redirected(stack: Stack) -> None:
    response = await stack.client.post("/app", data=b"x", headers=BROWSER, allow_redirects=False)
    assert response.status == 401


async def test_header_credential_never_gets_redirect(stack: Stack) -> None:
    response = await stack.client.get(
        "/app", headers={**BROWSER, "X-Session-Token": "ory_st_unknown"}, allow_redirects=False
    )
    assert response.status == 401
    assert (await response.json())["error"]["id"] == "session_required"


async def test_session_token_credential_is_accepted(stack: Stack) -> None:
    _, token = stack.login("token@example.com")
    response = await stack.client.get("/app", headers={"X-Session-Token": token})
    assert response.status == 200
    assert stack.upstream.header("X-User-Email") == ["token@example.com"]
    assert stack.upstream.header("X-Session-Token") == []
    sent = stack.ory.whoami_requests[-1]
    assert sent.get("X-Session-Token") == token
    assert "Cookie" not in sent


async def test_bearer_is_ignored_unless_configured(stack: Stack) -> None:
    _, token = stack.login()
    response = await stack.client.get("/app", headers={"Authorization": f"Bearer {token}", **API})
    assert response.status == 401
    assert stack.ory.calls["GET /sessions/whoami"] == 0


async def test_bearer_when_configured_is_used_and_removed(make_stack: StackFactory) -> None:
    stack = await make_stack(ory='credentials = ["cookie", "bearer"]')
    _, token = stack.login("bearer@example.com")
    response = await stack.client.get("/app", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    assert stack.upstream.header("Authorization") == []
    assert stack.upstream.header("X-User-Email") == ["bearer@example.com"]


async def test_cookie_is_sent_alone_to_ory(stack: Stack) -> None:
    cookie, _ = stack.login()
    await stack.client.get(
        "/app", headers={"Cookie": f"other=1; ory_kratos_session={cookie}; more=2"}
    )
    sent = stack.ory.whoami_requests[-1]
    assert sent["Cookie"] == f"ory_kratos_session={cookie}"
    assert "X-Session-Token" not in sent
    assert sent["Accept"] == "application/json"


async def test_revoked_session_is_unauthenticated(stack: Stack) -> None:
    identity = stack.ory.add_identity("gone@example.com", password="pw")
    session = stack.ory.create_session(identity)
    stack.ory.revoke_session(session.id)
    response = await stack.client.get("/app", headers={**stack.cookie(session.cookie_value), **API})
    assert response.status == 401


async def test_aal2_route_with_aal1_session_steps_up_browser(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.get(
        "/admin/x?q=1", headers={**stack.cookie(cookie), **BROWSER}, allow_redirects=False
    )
    assert response.status == 303
    query = login_query(response.headers["Location"])
    assert query["aal"] == ["aal2"]
    assert query["return_to"] == [stack.origin + "/admin/x?q=1"]


async def test_aal2_route_with_aal1_session_is_403_for_api(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.get("/admin/x", headers={**stack.cookie(cookie), **API})
    assert response.status == 403
    assert (await response.json())["error"]["id"] == "session_aal2_required"


async def test_aal2_route_with_aal2_session_passes(stack: Stack) -> None:
    cookie, _ = stack.login(aal="aal2", second_factor=True)
    response = await stack.client.get("/admin/x", headers=stack.cookie(cookie))
    assert response.status == 200


async def test_ory_403_means_step_up(stack: Stack) -> None:
    cookie, _ = stack.login(aal="aal1", second_factor=True)  # Ory itself answers 403
    response = await stack.client.get("/app", headers={**stack.cookie(cookie), **API})
    assert response.status == 403
    assert (await response.json())["error"]["id"] == "session_aal2_required"
    browser = await stack.client.get(
        "/app", headers={**stack.cookie(cookie), **BROWSER}, allow_redirects=False
    )
    assert login_query(browser.headers["Location"])["aal"] == ["aal2"]


async def test_max_age_exceeded_asks_for_refresh(stack: Stack) -> None:
    cookie, _ = stack.login()
    stack.clock.advance(301)
    browser = await stack.client.get(
        "/recent/x", headers={**stack.cookie(cookie), **BROWSER}, allow_redirects=False
    )
    assert browser.status == 303
    assert login_query(browser.headers["Location"])["refresh"] == ["true"]
    api = await stack.client.get("/recent/x", headers={**stack.cookie(cookie), **API})
    assert api.status == 403
    assert (await api.json())["error"]["id"] == "session_refresh_required"


async def test_max_age_within_limit_passes(stack: Stack) -> None:
    cookie, _ = stack.login()
    stack.clock.advance(299)
    response = await stack.client.get("/recent/x", headers=stack.cookie(cookie))
    assert response.status == 200


async def test_redirect_loop_guard_shows_page_instead_of_another_redirect(stack: Stack) -> None:
    statuses = []
    for _ in range(4):
        response = await stack.client.get("/loop", headers=BROWSER, allow_redirects=False)
        statuses.append(response.status)
    assert statuses[:3] == [303, 303, 303]
    assert statuses[3] == 401
    text = await response.text()
    assert "session_cookie" in text
    assert response.headers["Content-Type"].startswith("text/html")


async def test_redirect_loop_guard_is_per_url(stack: Stack) -> None:
    for _ in range(3):
        await stack.client.get("/loop", headers=BROWSER, allow_redirects=False)
    other = await stack.client.get("/elsewhere", headers=BROWSER, allow_redirects=False)
    assert other.status == 303


async def test_browser_error_page_is_html(stack: Stack) -> None:
    response = await stack.client.get("/internal/x", headers=BROWSER)
    assert response.status == 403
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-store"
    assert "Forbidden" in await response.text()


async def test_method_filter_on_route(make_stack: StackFactory) -> None:
    routes = """
[[routes]]
path = "/docs/**"
methods = ["GET"]
access = "public"
"""
    stack = await make_stack(routes=routes)
    assert (await stack.client.get("/docs/a", headers=API)).status == 200
    assert (await stack.client.head("/docs/a", headers=API)).status == 200
    assert (await stack.client.post("/docs/a", headers=API)).status == 401


async def test_double_star_matches_the_bare_prefix(stack: Stack) -> None:
    assert (await stack.client.get("/public", headers=API)).status == 200
    assert (await stack.client.get("/publicity", headers=API)).status == 401


async def test_loop_guard_without_cookies_uses_peer_with_higher_limit(stack: Stack) -> None:
    statuses = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        for _ in range(6):
            async with session.get(stack.client.make_url("/loop"), headers=BROWSER,
                                   allow_redirects=False) as response:
                statuses.append(response.status)
    assert statuses == [303, 303, 303, 303, 303, 401]


async def test_loop_guard_ignores_navigations_the_user_started(stack: Stack) -> None:
    typed = {**BROWSER, "Sec-Fetch-Site": "none"}
    for _ in range(8):
        response = await stack.client.get("/loop", headers=typed, allow_redirects=False)
        assert response.status == 303


async def test_loop_cookie_is_set_and_never_forwarded(stack: Stack) -> None:
    response = await stack.client.get("/x", headers=BROWSER, allow_redirects=False)
    assert response.headers["Set-Cookie"].startswith("gateway_login_loop=")
    assert "HttpOnly" in response.headers["Set-Cookie"]
    await stack.client.get("/public/x", headers={"Cookie": "gateway_login_loop=abc; keep=1"})
    assert stack.upstream.header("Cookie") == ["keep=1"]


async def test_bad_path_from_browser_gets_html_page(stack: Stack) -> None:
    response = await raw_request(
        stack.client.port or 0,
        get("/docs%2Fsecret", "Accept: text/html", "Sec-Fetch-Mode: navigate"),
    )
    assert response.status == 400
    assert (response.header("Content-Type") or "").startswith("text/html")


async def test_connection_pools_are_sized_by_config(make_stack: StackFactory) -> None:
    stack = await make_stack(ory="max_connections = 7", upstream="keepalive_connections = 0")
    cookie, _ = stack.login()
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200

    services = services_of(stack.client.app)
    ory = services.auth.ory
    assert isinstance(ory, HttpOryClient)
    assert ory._http.connector is not None
    assert ory._http.connector.limit == 7
    assert services.upstream is not None
    assert len(services.upstream.pool._idle) == 0  # nothing kept: keep-alive is off


async def test_upstream_connections_are_kept_alive_by_default(stack: Stack) -> None:
    cookie, _ = stack.login()
    for _ in range(3):
        assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200

    upstream = services_of(stack.client.app).upstream
    assert upstream is not None
    assert len(upstream.pool._idle) == 1  # one connection, reused
