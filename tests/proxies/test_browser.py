"""The sign-in journey in real headless Chromium through nginx and Caddy: a deep link, the
stand-in's login page, and back to exactly that link with the app answering as the user;
then the second-factor step-up and the sign-out (docs/reference.md#forward-auth)."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_MISSING, CODE, TIMEOUT_MS, submit_login
from tests.proxies.deployment import PASSWORD, Deployment, User, header_values, unique

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]


async def app_answer(page: Page) -> dict[str, str]:
    """The headers the app says it received, from the JSON it showed the browser."""
    text = await page.locator("body").inner_text()
    return {name.lower(): value for name, value in json.loads(text)["headers"]}


async def open_via_login(page: Page, deployment: Deployment, url: str, user: User) -> None:
    """Open `url`, sign in on the stand-in's page, arrive back at exactly `url`."""
    await page.goto(url)
    await page.wait_for_url(f"{deployment.ory_url}/ui/login?flow=*")
    await submit_login(page, (user.email, PASSWORD))
    await page.wait_for_url(url)
    assert page.url == url


async def test_deep_link_signs_in_and_returns_to_the_exact_url_through_the_proxy(
    deployment: Deployment, browser: Browser
) -> None:
    user = deployment.sign_up("sara")
    path = unique("/app/page")
    deep_link = f"{deployment.origin}{path}?x=1&y=%2F"
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = await context.new_page()
        await open_via_login(page, deployment, deep_link, user)
        await expect(page.locator("body")).to_contain_text(user.identity_id)
        shown = await app_answer(page)
        assert shown["x-user-id"] == user.identity_id
        assert shown["x-user-email"] == user.email
        [seen] = deployment.received(path)
        assert seen.raw_path == f"{path}?x=1&y=%2F"
        assert header_values(seen, "X-User-Id") == [user.identity_id]
    finally:
        await context.close()


async def test_step_up_then_sign_out_in_the_browser_through_the_proxy(
    deployment: Deployment, browser: Browser
) -> None:
    admin = deployment.sign_up("tara", role="admin", second_factor=True)
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = await context.new_page()
        await open_via_login(page, deployment, f"{deployment.origin}{unique('/app')}", admin)

        # The aal2 route asks for the second factor on the same session, then lets her in.
        admin_url = f"{deployment.origin}{unique('/admin')}?tab=keys"
        await page.goto(admin_url)
        await page.wait_for_url(f"{deployment.ory_url}/ui/login?flow=*")
        code = page.get_by_label("One-time code")
        await expect(code).to_be_visible()
        await code.fill(CODE)
        await page.get_by_role("button", name="Continue").click()
        await page.wait_for_url(admin_url)
        assert (await app_answer(page))["x-user-id"] == admin.identity_id

        # Sign out through the proxy's /_auth/ route: Ory ends the session, and the next
        # request through the proxy is sent to the login again.
        await page.goto(f"{deployment.origin}/_auth/logout")
        await page.wait_for_url(f"{deployment.origin}/_auth/signed-out")
        await expect(page.locator("h1")).to_have_text("You are signed out")
        again = f"{deployment.origin}{unique('/app')}"
        await page.goto(again)
        await page.wait_for_url(f"{deployment.ory_url}/ui/login?flow=*")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    finally:
        await context.close()
