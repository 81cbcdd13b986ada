"""Signing out through the proxy's `/_auth/` route ends the session at the very next request
through nginx or Caddy, though the gateway had it cached (docs/reference.md#endpoints)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.proxies.deployment import API, NAVIGATION, Deployment, cookie, token, unique

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_cookie_logout_through_the_proxy_ends_the_session_at_the_next_request(
    deployment: Deployment,
) -> None:
    user = deployment.sign_up("quinn")
    session = deployment.session(user)
    path = unique("/app")
    warm = await deployment.request("GET", path, {**API, **cookie(session)})
    assert warm.status == 200, str(warm)  # now in the gateway's cache

    logout = await deployment.request(
        "GET", "/_auth/logout?return_to=/public/bye", {**NAVIGATION, **cookie(session)}
    )
    assert logout.status == 303, str(logout)
    at_ory = logout.headers["Location"]
    assert at_ory.startswith(f"{deployment.ory_url}/self-service/logout?"), at_ory
    assert parse_qs(urlsplit(at_ory).query)["return_to"] == [deployment.origin + "/public/bye"]

    # The browser follows it to Ory, which ends the session and sends it back.
    ended = await deployment.request("GET", at_ory, {**NAVIGATION, **cookie(session)})
    assert ended.status == 303, str(ended)
    assert ended.headers["Location"] == deployment.origin + "/public/bye"
    assert deployment.ory.get_session(session.id).active is False

    after = await deployment.request("GET", path, {**API, **cookie(session)})
    assert (after.status, after.error_id) == (401, "session_required"), str(after)
    assert len(deployment.received(path)) == 1


async def test_token_logout_through_the_proxy_ends_the_session_at_the_next_request(
    deployment: Deployment,
) -> None:
    user = deployment.sign_up("rosa")
    session = deployment.session(user)
    path = unique("/app")
    warm = await deployment.request("GET", path, {**API, **token(session)})
    assert warm.status == 200, str(warm)

    logout = await deployment.request("GET", "/_auth/logout", {**API, **token(session)})
    assert logout.status == 303, str(logout)
    assert logout.headers["Location"] == "/"
    assert deployment.ory.get_session(session.id).active is False

    after = await deployment.request("GET", path, {**API, **token(session)})
    assert (after.status, after.error_id) == (401, "session_required"), str(after)
    assert len(deployment.received(path)) == 1


async def test_signed_out_page_is_served_through_the_proxy(deployment: Deployment) -> None:
    page = await deployment.request("GET", "/_auth/signed-out", NAVIGATION)
    assert page.status == 200, str(page)
    assert "You are signed out" in page.text
