"""Server-sent events and WebSockets through the gateway, as a browser uses them."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect

from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_MISSING,
    TIMEOUT_MS,
    Demo,
    Runners,
    free_ports,
    new_page,
    screenshot,
    sign_in,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]

TWO_TICKS = re.compile(r"tick \d+ \S+\n.*tick \d+ \S+\n", re.DOTALL)

# Served from another origin: opens a WebSocket to the gateway and writes what happened.
CROSS_SITE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Another site</title></head>
<body><h1>Another site</h1><ol id="events"></ol><p id="outcome">pending</p>
<script>
const events = document.getElementById('events');
const outcome = document.getElementById('outcome');
let opened = false;
function note(text) {
  const item = document.createElement('li');
  item.textContent = text;
  events.append(item);
}
const ws = new WebSocket('ws://127.0.0.1:GATEWAY_PORT/ws/echo');
ws.onopen = () => { opened = true; note('open'); };
ws.onmessage = (event) => { note('message: ' + event.data); };
ws.onerror = () => { note('error'); };
ws.onclose = (event) => {
  note('close ' + event.code);
  outcome.textContent = opened ? 'opened' : 'refused';
};
</script></body></html>
"""


async def test_sse_ticks_arrive_when_signed_in(demo: Demo, browser: Browser) -> None:
    context, page = await new_page(browser)
    await sign_in(page, demo, f"{demo.gateway}/events")
    await expect(page.locator("#ticker-state")).to_have_text("connected", timeout=TIMEOUT_MS)
    await expect(page.locator(".ticker")).to_have_text(TWO_TICKS, timeout=TIMEOUT_MS)
    await screenshot(page, "events")
    await context.close()


async def test_websocket_greets_and_echoes_when_signed_in(demo: Demo, browser: Browser) -> None:
    context, page = await new_page(browser)
    await sign_in(page, demo, f"{demo.gateway}/ws")
    log = page.locator(".log")
    await expect(log).to_contain_text("hello alice@example.com", timeout=TIMEOUT_MS)
    await page.get_by_label("Message").fill("ping through the gateway")
    await page.get_by_role("button", name="Send").click()
    await expect(log).to_contain_text("echo: ping through the gateway", timeout=TIMEOUT_MS)
    await screenshot(page, "ws")
    await context.close()


async def test_websocket_upgrade_is_refused_when_opened_from_another_origin(
    demo: Demo, browser: Browser, runners: Runners
) -> None:
    """Same site (127.0.0.1, so alice's SameSite=Lax cookie rides along), another origin."""
    html = CROSS_SITE_PAGE.replace("GATEWAY_PORT", str(demo.ports.gateway))

    async def page_handler(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    other = web.Application()
    other.router.add_get("/", page_handler)
    (other_port,) = free_ports(1)
    other_origin = await runners.start(other, other_port)

    context, page = await new_page(browser)
    await sign_in(page, demo, f"{demo.gateway}/ws")
    # The same socket opens from the gateway's own page: the session is good.
    await expect(page.locator(".log")).to_contain_text("hello alice@example.com")

    # Chromium's DevTools tell why the handshake failed: 403 is the Origin check (no session
    # would be 401), so the cookie did ride along and only the Origin stopped it.
    handshake_errors: list[str] = []
    handshake_failed = asyncio.Event()

    def on_frame_error(event: dict[str, object]) -> None:
        handshake_errors.append(str(event.get("errorMessage")))
        handshake_failed.set()

    devtools = await context.new_cdp_session(page)
    devtools.on("Network.webSocketFrameError", on_frame_error)
    await devtools.send("Network.enable")

    await page.goto(f"{other_origin}/")
    await expect(page.locator("#outcome")).to_have_text("refused", timeout=TIMEOUT_MS)
    events = page.locator("#events")
    await expect(events.locator("li").first).to_have_text("error")
    await expect(events).not_to_contain_text("open")
    await expect(events).not_to_contain_text("message")
    await asyncio.wait_for(handshake_failed.wait(), TIMEOUT_MS / 1000)
    assert any("403" in error for error in handshake_errors), handshake_errors
    await devtools.detach()
    await context.close()
