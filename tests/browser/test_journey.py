"""The whole sign-in journey in a real browser, from a deep link to a dead cookie."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import (
    ALICE,
    CHROMIUM,
    CHROMIUM_MISSING,
    CODE,
    TIMEOUT_MS,
    Demo,
    new_page,
    screenshot,
    sign_in,
    submit_login,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]

COOKIE_NAME = "ory_kratos_session"


async def test_journey_signs_in_manages_sessions_steps_up_and_signs_out_when_alice_uses_it(
    demo: Demo, browser: Browser
) -> None:
    gateway = demo.gateway
    context, page = await new_page(browser)

    # A protected deep link sends the browser to the stand-in's login page...
    deep_link = f"{gateway}/?tab=2"
    await page.goto(deep_link)
    await page.wait_for_url(demo.login_page)
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await screenshot(page, "login")

    # ...and signing in comes back to exactly that URL, query included.
    await submit_login(page, ALICE)
    await page.wait_for_url(deep_link)
    assert page.url == deep_link
    await expect(page.locator("main")).to_contain_text(
        "This app thinks you are alice@example.com", timeout=TIMEOUT_MS
    )
    await screenshot(page, "home")

    # A second device signs in as alice too.
    other_context, other_page = await new_page(browser)
    await sign_in(other_page, demo, f"{gateway}/")
    await expect(other_page.locator("main")).to_contain_text("alice@example.com")

    # The sessions page lists both, this device's first.
    await page.goto(f"{gateway}/_auth/sessions")
    rows = page.locator("tr[data-session-id]")
    await expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
    await expect(page.locator('tr[data-session-id][data-current="true"]')).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-current", "true")
    await screenshot(page, "sessions")

    # Revoking the other one: a flash message and one row left.
    other_row = page.locator('tr[data-session-id][data-current="false"]')
    await other_row.get_by_role("button", name="Sign out this session").click()
    await expect(page.locator(".flash")).to_be_visible(timeout=TIMEOUT_MS)
    assert urlsplit(page.url).path == "/_auth/sessions", page.url  # a 303 back, maybe a query
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-current", "true")
    await screenshot(page, "sessions-revoked")

    # The revoked device is signed out at its very next request.
    await other_page.goto(f"{gateway}/")
    await other_page.wait_for_url(demo.login_page)
    await other_context.close()

    # The aal2 route asks for the second factor, then lets alice in.
    await page.goto(f"{gateway}/admin/")
    await page.wait_for_url(demo.login_page)
    code = page.get_by_label("One-time code")
    await expect(code).to_be_visible(timeout=TIMEOUT_MS)
    await screenshot(page, "step-up")
    await code.fill(CODE)
    await page.get_by_role("button", name="Continue").click()
    await page.wait_for_url(f"{gateway}/admin/")
    await expect(page.get_by_role("heading", name="Admin")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page).to_have_title("Admin (aal2) · Legacy app")
    await expect(page.locator("main")).to_contain_text("alice@example.com")
    await screenshot(page, "admin")

    # The gateway's own error page, for a name under /_auth that does not exist.
    await page.goto(f"{gateway}/_auth/no-such-page")
    await expect(page.locator("p.status")).to_have_text("404", timeout=TIMEOUT_MS)
    await expect(page.locator("h1")).to_have_text("Not Found")
    await screenshot(page, "error-404")

    # Logout lands on the signed-out page, and the old cookie is dead for good.
    cookies = {c.get("name"): c.get("value") for c in await context.cookies(gateway)}
    old_cookie = cookies.get(COOKIE_NAME)
    assert old_cookie, f"no {COOKIE_NAME} cookie for {gateway}: {sorted(map(str, cookies))}"
    await page.goto(f"{gateway}/_auth/logout")
    await page.wait_for_url(f"{gateway}/_auth/signed-out")
    await expect(page.locator("h1")).to_have_text("You are signed out", timeout=TIMEOUT_MS)
    await screenshot(page, "signed-out")

    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.get(
            f"{gateway}/_auth/whoami",
            headers={"Cookie": f"{COOKIE_NAME}={old_cookie}", "Accept": "application/json"},
        ) as answer,
    ):
        assert answer.status == 401, await answer.text()

    await context.close()


async def test_error_page_is_html_when_a_browser_opens_an_ambiguous_path(
    demo: Demo, browser: Browser
) -> None:
    """A browser navigation's error answer is an HTML page, not the JSON envelope
    (docs/reference.md#errors)."""
    context, page = await new_page(browser)
    await sign_in(page, demo, f"{demo.gateway}/")
    answer = await page.goto(f"{demo.gateway}/docs%2Fsecret")
    assert answer is not None
    assert answer.status == 400
    assert (await answer.header_value("content-type") or "").startswith("text/html"), (
        f"a browser got {await answer.header_value('content-type')}: {await answer.text()}"
    )
    await expect(page.locator("p.status")).to_have_text("400", timeout=TIMEOUT_MS)
    await expect(page.locator("h1")).to_have_text("Bad Request")
    await screenshot(page, "error-400")
    await context.close()
