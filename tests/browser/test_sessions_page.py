"""The sessions page and the sample app at phone width, and the sessions page by keyboard."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_MISSING,
    TIMEOUT_MS,
    Demo,
    new_page,
    no_horizontal_scroll,
    sign_in,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]

MAX_TABS = 40
PHONE = 375


async def two_devices(demo: Demo, browser: Browser) -> tuple[BrowserContext, Page, BrowserContext]:
    """Alice signed in on two devices; the first one shows its sessions page (two rows)."""
    context, page = await new_page(browser)
    await sign_in(page, demo, f"{demo.gateway}/")
    other_context, other_page = await new_page(browser)
    await sign_in(other_page, demo, f"{demo.gateway}/")
    await page.goto(f"{demo.gateway}/_auth/sessions")
    await expect(page.locator("tr[data-session-id]")).to_have_count(2, timeout=TIMEOUT_MS)
    return context, page, other_context


async def test_revoke_button_takes_keyboard_focus_when_tabbing_through_sessions_page(
    demo: Demo, browser: Browser
) -> None:
    context, page, other_context = await two_devices(demo, browser)
    revoke = page.locator('tr[data-current="false"]').get_by_role(
        "button", name="Sign out this session"
    )
    await expect(revoke).to_be_visible()
    await page.locator("body").focus()
    for _ in range(MAX_TABS):
        await page.keyboard.press("Tab")
        if await revoke.evaluate("button => button === document.activeElement"):
            break
    await expect(revoke).to_be_focused()
    # Reached by keyboard, so the browser draws the focus ring (:focus-visible) ...
    assert await revoke.evaluate("button => button.matches(':focus-visible')")
    # ... and the page's style does not hide it.
    outline = await revoke.evaluate(
        "button => { const s = getComputedStyle(button);"
        " return [s.outlineStyle, s.outlineWidth, s.boxShadow]; }"
    )
    assert outline[0] != "none" or outline[2] != "none", f"no visible focus: {outline}"
    # Enter on the focused button revokes the other session.
    await page.keyboard.press("Enter")
    await expect(page.locator(".flash")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.locator("tr[data-session-id]")).to_have_count(1)
    await other_context.close()
    await context.close()


async def test_sessions_page_fits_without_horizontal_scroll_when_375px_wide(
    demo: Demo, browser: Browser
) -> None:
    context, page, other_context = await two_devices(demo, browser)
    await no_horizontal_scroll(page, PHONE)
    await other_context.close()
    await context.close()


CONTENT_OVERFLOW = """() => {
  const card = document.querySelector('main.card').getBoundingClientRect();
  const table = document.querySelector('table.sessions').getBoundingClientRect();
  const problems = [];
  if (table.right > card.right + 0.5) {
    problems.push(`table.sessions ends at ${table.right}px, its card at ${card.right}px`);
  }
  for (const cell of document.querySelectorAll('table.sessions tbody td')) {
    if (cell.scrollWidth > cell.clientWidth) {
      const name = cell.dataset.label || 'action';
      problems.push(`${name} cell: ${cell.scrollWidth}px of content in ${cell.clientWidth}px`);
    }
  }
  return problems;
}"""


@pytest.mark.parametrize("width", [PHONE, 1280])
async def test_sessions_table_stays_inside_its_card_when_width_is(
    demo: Demo, browser: Browser, width: int
) -> None:
    context, page, other_context = await two_devices(demo, browser)
    await page.set_viewport_size({"width": width, "height": 800})
    problems = await page.evaluate(CONTENT_OVERFLOW)
    assert problems == [], f"at {width}px: {problems}"
    await other_context.close()
    await context.close()


async def test_sample_home_fits_without_horizontal_scroll_when_375px_wide(
    demo: Demo, browser: Browser
) -> None:
    context, page = await new_page(browser)
    await sign_in(page, demo, f"{demo.gateway}/")
    await expect(page.locator("main")).to_contain_text("alice@example.com")
    await no_horizontal_scroll(page, PHONE)
    await context.close()
