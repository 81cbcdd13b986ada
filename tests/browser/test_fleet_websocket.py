"""A real browser's WebSocket ends with its session across a fleet
(docs/reference.md#long-lived-connections): Chromium, signed in, opens a WebSocket through
gateway B; the user signs out through gateway A (the gateway's logout, then Ory's); the page
sees its socket closed with 1008 `session ended`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.browser.conftest import CHROMIUM, CHROMIUM_MISSING, TIMEOUT_MS, new_page
from tests.fleet.conftest import backends, fleet
from tests.fleet.redis_process import REDIS_SERVER, RedisServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]

OPEN_SOCKET = """url => {
  window.greeting = null;
  window.socketClosed = null;
  const ws = new WebSocket(url);
  ws.onmessage = (event) => { if (window.greeting === null) window.greeting = event.data; };
  ws.onclose = (event) => { window.socketClosed = {code: event.code, reason: event.reason}; };
}"""


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


async def test_websocket_on_one_gateway_closes_with_1008_on_logout_through_another(
    browser: Browser, redis: RedisServer
) -> None:
    async with backends() as shared, fleet(shared, redis.url, count=2) as (a, b):
        identity, (session,) = shared.user("browser@example.com")
        context, page = await new_page(browser)
        await context.add_cookies([{
            "name": "ory_kratos_session", "value": session.cookie_value,
            "domain": "127.0.0.1", "path": "/", "httpOnly": True, "sameSite": "Lax",
        }])
        response = await page.goto(f"{b.origin}/app/page")
        assert response is not None
        assert response.status == 200
        await page.evaluate(OPEN_SOCKET, f"ws://{b.origin.removeprefix('http://')}/app/ws")
        await page.wait_for_function("window.greeting !== null", timeout=TIMEOUT_MS)
        assert await page.evaluate("window.greeting") == identity
        assert await page.evaluate("window.socketClosed") is None

        other = await context.new_page()
        await other.goto(f"{a.origin}/_auth/logout")  # A, then Ory, then A's signed-out page
        assert other.url == f"{a.origin}/_auth/signed-out"

        await page.wait_for_function("window.socketClosed !== null", timeout=2000)
        closed = await page.evaluate("window.socketClosed")
        assert closed == {"code": 1008, "reason": "session ended"}
        # And B now sends this browser to the login.
        response = await page.goto(f"{b.origin}/app/page")
        assert response is not None
        assert response.url.startswith(f"{shared.ory_url}/ui/login")
        await context.close()
