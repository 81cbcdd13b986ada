"""`server.templates_dir` in a real browser (docs/reference.md#pages): an overridden
error page and stylesheet are what Chromium shows, and a page the directory does not
override is still the built-in one (with the operator's stylesheet, inlined into every
page)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from gateway.app import build_app
from gateway.config import load_config
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_MISSING,
    TIMEOUT_MS,
    Runners,
    free_ports,
    new_page,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]

BRAND = "Acme Intranet"
BRAND_COLOUR = "rgb(200, 0, 100)"
BACKGROUND = "rgb(250, 240, 200)"

ERROR_PAGE = """{% extends "base.html" %}
{% block title %}{{ title }} · Acme{% endblock %}
{% block content %}
<p class="brand">Acme Intranet</p>
<p class="status">{{ status }}</p>
<h1>{{ title }}</h1>
<p class="lead">{{ error.message }}</p>
<a class="button secondary" href="/">Back to the intranet</a>
{% endblock %}
"""

STYLESHEET = f"""
body {{ background: {BACKGROUND}; font-family: serif; }}
.brand {{ color: {BRAND_COLOUR}; font-weight: 700; letter-spacing: 0.2em; }}
"""


@pytest.fixture
async def gateway(runners: Runners, tmp_path: Path) -> str:
    """A gateway whose templates_dir overrides error.html and style.css only."""
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "error.html").write_text(ERROR_PAGE, encoding="utf-8")
    (pages / "style.css").write_text(STYLESHEET, encoding="utf-8")
    config = load_config(f"""
[server]
templates_dir = "{pages}"
[ory]
url = "http://127.0.0.1:9"
[upstream]
url = "http://127.0.0.1:9"
[[routes]]
path = "/internal/**"
access = "deny"
""", {})
    (port,) = free_ports(1)
    return await runners.start(await build_app(config), port)


async def style_of(page: Page, selector: str, prop: str) -> str:
    value = await page.eval_on_selector(
        selector, f"e => getComputedStyle(e).getPropertyValue('{prop}')"
    )
    assert isinstance(value, str)
    return value


async def test_a_denied_page_shows_the_operators_brand_and_style(
    gateway: str, browser: Browser
) -> None:
    context, page = await new_page(browser)
    answer = await page.goto(f"{gateway}/internal/reports")
    assert answer is not None
    assert answer.status == 403
    assert (await answer.header_value("cache-control")) == "no-store"
    await expect(page.locator("p.brand")).to_have_text(BRAND, timeout=TIMEOUT_MS)
    await expect(page.locator("p.status")).to_have_text("403")
    await expect(page.locator("h1")).to_have_text("Forbidden")
    await expect(page).to_have_title("Forbidden · Acme")
    await expect(page.get_by_role("link", name="Back to the intranet")).to_be_visible()
    # the built-in frame (base.html was not overridden) around the operator's page
    await expect(page.locator("footer.foot")).to_have_text("Protected by the Ory gateway")
    # the operator's stylesheet, applied by the browser
    assert await style_of(page, "p.brand", "color") == BRAND_COLOUR
    assert await style_of(page, "body", "background-color") == BACKGROUND
    # replaced, not added to: the built-in card frame (10px corners) is gone
    assert await style_of(page, "main.card", "border-top-left-radius") == "0px"
    await context.close()


async def test_a_page_not_overridden_is_the_built_in_one_in_the_operators_style(
    gateway: str, browser: Browser
) -> None:
    context, page = await new_page(browser)
    answer = await page.goto(f"{gateway}/_auth/signed-out")
    assert answer is not None
    assert answer.status == 200
    await expect(page.locator("h1")).to_have_text("You are signed out", timeout=TIMEOUT_MS)
    await expect(page.get_by_role("link", name="Sign in again")).to_be_visible()
    await expect(page.get_by_text(BRAND)).to_have_count(0)
    assert await style_of(page, "body", "background-color") == BACKGROUND
    await context.close()


async def test_every_error_page_is_the_overridden_one(gateway: str, browser: Browser) -> None:
    """An unknown /_auth name is an error page too: error.html is every error's page."""
    context, page = await new_page(browser)
    answer = await page.goto(f"{gateway}/_auth/no-such-page")
    assert answer is not None
    assert answer.status == 404
    await expect(page.locator("p.brand")).to_have_text(BRAND, timeout=TIMEOUT_MS)
    await expect(page.locator("h1")).to_have_text("Not Found")
    assert await style_of(page, "p.brand", "color") == BRAND_COLOUR
    await context.close()
