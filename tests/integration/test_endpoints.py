"""docs/reference.md#endpoints: whoami, logout, refresh, health, ready under /_auth."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from ory_client.models import LogoutFlow

from tests.conftest import Stack, StackFactory

API = {"Accept": "application/json"}


async def test_whoami_describes_the_session(stack: Stack) -> None:
    cookie, _ = stack.login("who@example.com")
    response = await stack.client.get("/_auth/whoami", headers=stack.cookie(cookie))
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert set(body) == {"session_id", "identity_id", "email", "aal", "authenticated_at",
                         "expires_at", "headers"}
    assert body["email"] == "who@example.com"
    assert body["aal"] == "aal1"
    assert body["headers"] == {"X-User-Id": body["identity_id"], "X-User-Email": "who@example.com"}
    assert body["expires_at"].endswith("Z")
    assert cookie not in await response.text()


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="none"),
    pytest.param({"Cookie": "ory_kratos_session=bogus"}, id="unknown-cookie"),
    pytest.param({"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}, id="browser"),
])
async def test_whoami_without_session_is_401_json(stack: Stack, headers: dict[str, str]) -> None:
    response = await stack.client.get("/_auth/whoami", headers=headers, allow_redirects=False)
    assert response.status == 401
    assert (await response.json())["error"]["id"] == "session_required"


async def test_whoami_of_a_session_that_needs_step_up_is_401_saying_so(stack: Stack) -> None:
    cookie, _ = stack.login(aal="aal1", second_factor=True)  # Ory answers whoami 403
    response = await stack.client.get("/_auth/whoami", headers=stack.cookie(cookie))
    assert response.status == 401
    assert (await response.json())["error"]["id"] == "session_aal2_required"


async def test_whoami_with_ory_down_is_503(stack: Stack) -> None:
    cookie, _ = stack.login()
    stack.ory.faults.whoami_status = 502
    response = await stack.client.get("/_auth/whoami", headers=stack.cookie(cookie))
    assert response.status == 503


async def test_health_needs_no_ory(stack: Stack) -> None:
    await stack.ory_server.close()
    response = await stack.client.get("/_auth/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_ready_follows_ory(stack: Stack) -> None:
    assert (await stack.client.get("/_auth/ready")).status == 200
    stack.ory.faults.ready_status = 503
    assert (await stack.client.get("/_auth/ready")).status == 503
    stack.ory.faults.reset()
    await stack.ory_server.close()
    assert (await stack.client.get("/_auth/ready")).status == 503


async def test_unknown_endpoint_is_404_and_wrong_method_405(stack: Stack) -> None:
    assert (await stack.client.get("/_auth/nope", headers=API)).status == 404
    assert (await stack.client.delete("/_auth/whoami", headers=API)).status == 405
    assert stack.upstream.seen == []


async def test_logout_without_session_goes_to_return_to_or_root(stack: Stack) -> None:
    response = await stack.client.get("/_auth/logout", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/"
    response = await stack.client.get(
        "/_auth/logout?return_to=/bye?x=1", allow_redirects=False
    )
    assert response.headers["Location"] == "/bye?x=1"


@pytest.mark.parametrize("evil", [
    "https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)",
    "/%09/evil.example", "http://127.0.0.1@evil.example/",
])
async def test_logout_return_to_never_leaves_origin(stack: Stack, evil: str) -> None:
    response = await stack.client.get(
        "/_auth/logout", params={"return_to": evil}, allow_redirects=False
    )
    assert response.headers["Location"] == "/"


async def test_logout_with_session_goes_through_ory_and_session_stops_working(
    stack: Stack,
) -> None:
    cookie, _ = stack.login()
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    response = await stack.client.get(
        "/_auth/logout?return_to=/bye", headers=stack.cookie(cookie), allow_redirects=False
    )
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(stack.config.ory.url + "/self-service/logout?token=")
    assert parse_qs(urlsplit(location).query)["return_to"] == [stack.origin + "/bye"]
    # the browser follows Ory's logout URL with its cookie
    async with stack.client.session.get(
        location, headers=stack.cookie(cookie), allow_redirects=False
    ) as done:
        assert done.status == 303
        assert done.headers["Location"] == stack.origin + "/bye"
    after = await stack.client.get("/app", headers={**stack.cookie(cookie), **API})
    assert after.status == 401


async def test_logout_evicts_cache_at_once(stack: Stack) -> None:
    cookie, _ = stack.login()
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    calls = stack.ory.calls["GET /sessions/whoami"]
    await stack.client.get("/_auth/logout", headers=stack.cookie(cookie), allow_redirects=False)
    await stack.client.get("/app", headers=stack.cookie(cookie))
    assert stack.ory.calls["GET /sessions/whoami"] == calls + 1  # asked again, not cached
    assert stack.ory.whoami_requests[-1].get("Cache-Control") == "max-age=0"


async def test_logout_default_lands_on_signed_out_page(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.get(
        "/_auth/logout", headers=stack.cookie(cookie), allow_redirects=False
    )
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["return_to"] == [stack.origin + "/_auth/signed-out"]
    page = await stack.client.get("/_auth/signed-out")
    assert page.status == 200
    assert "signed out" in (await page.text()).lower()


async def test_logout_flow_body_matches_ory_sdk(stack: Stack) -> None:
    cookie, _ = stack.login()
    async with stack.client.session.get(
        stack.config.ory.url + "/self-service/logout/browser",
        headers={**stack.cookie(cookie), **API},
    ) as response:
        assert LogoutFlow.from_json(await response.text()) is not None


async def test_cross_site_logout_post_is_refused(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.post(
        "/_auth/logout", headers={**stack.cookie(cookie), "Origin": "https://evil.example", **API},
        allow_redirects=False,
    )
    assert response.status == 403
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200


@pytest.mark.parametrize(
    "embedding",
    [
        pytest.param({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors",
                      "Sec-Fetch-Dest": "image"}, id="img"),
        pytest.param({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                      "Sec-Fetch-Dest": "iframe"}, id="hidden-iframe"),
    ],
)
async def test_logout_embedded_by_another_site_is_refused(
    stack: Stack, embedding: dict[str, str]
) -> None:
    """Logout CSRF: `<img>` or a hidden `<iframe>` of /_auth/logout on a foreign page."""
    cookie, _ = stack.login()
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    response = await stack.client.get(
        "/_auth/logout", headers={**stack.cookie(cookie), **embedding}, allow_redirects=False
    )
    assert response.status == 403
    assert stack.ory.calls.get("GET /self-service/logout/browser", 0) == 0
    calls = stack.ory.calls["GET /sessions/whoami"]
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    assert stack.ory.calls["GET /sessions/whoami"] == calls  # still cached: nothing evicted


async def test_request_between_logout_and_ory_finishing_it_is_not_cached(stack: Stack) -> None:
    """The browser ends the session at Ory only when it follows the logout URL; a request
    in between (another tab) must not put the session back in the cache."""
    cookie, _ = stack.login()
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    logout = await stack.client.get(
        "/_auth/logout", headers=stack.cookie(cookie), allow_redirects=False
    )
    assert (await stack.client.get("/app", headers=stack.cookie(cookie))).status == 200
    async with stack.client.session.get(
        logout.headers["Location"], headers=stack.cookie(cookie), allow_redirects=False
    ) as done:
        assert done.status == 303  # Ory ended the session
    after = await stack.client.get("/app", headers={**stack.cookie(cookie), **API})
    assert after.status == 401


async def test_logout_link_followed_from_another_site_works(stack: Stack) -> None:
    cookie, _ = stack.login()
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-User": "?1"}
    response = await stack.client.get(
        "/_auth/logout", headers={**stack.cookie(cookie), **link}, allow_redirects=False
    )
    assert response.status == 303
    assert "/self-service/logout?token=" in response.headers["Location"]


async def test_same_origin_logout_post_works(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.post(
        "/_auth/logout", headers={**stack.cookie(cookie), "Origin": stack.origin},
        allow_redirects=False,
    )
    assert response.status == 303


async def test_token_logout_revokes_the_token(stack: Stack) -> None:
    _, token = stack.login()
    response = await stack.client.get(
        "/_auth/logout", headers={"X-Session-Token": token}, allow_redirects=False
    )
    assert response.status == 303
    after = await stack.client.get("/app", headers={"X-Session-Token": token})
    assert after.status == 401


async def test_refresh_redirects_to_reauthentication(stack: Stack) -> None:
    cookie, _ = stack.login()
    response = await stack.client.get(
        "/_auth/refresh?return_to=/account?tab=2", headers=stack.cookie(cookie),
        allow_redirects=False,
    )
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(stack.config.ory.url + "/self-service/login/browser?")
    query = parse_qs(urlsplit(location).query)
    assert query["refresh"] == ["true"]
    assert query["return_to"] == [stack.origin + "/account?tab=2"]


async def test_refresh_with_foreign_return_to_falls_back_to_root(stack: Stack) -> None:
    response = await stack.client.get(
        "/_auth/refresh", params={"return_to": "https://evil.example/x"}, allow_redirects=False
    )
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["return_to"] == [stack.origin + "/"]


async def test_custom_auth_prefix(make_stack: StackFactory) -> None:
    stack = await make_stack(server='auth_prefix = "/.gateway"')
    assert (await stack.client.get("/.gateway/health")).status == 200
    response = await stack.client.get("/_auth/health", headers=API)
    assert response.status == 401  # now an ordinary protected path
