"""Real-browser fixtures: the demo's three apps on free ports and a headless Chromium.

Everything runs in the test's own event loop: the Ory stand-in, the sample legacy app and the
gateway as aiohttp sites on 127.0.0.1 (cookies are not port-scoped, so the stand-in's session
cookie reaches the gateway), driven by Debian's Chromium through Playwright's async API.
Playwright never downloads a browser here: it launches `/usr/bin/chromium`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from gateway.app import build_app
from gateway.demo import HOST, SECOND_FACTOR_CODE, DemoPorts, demo_config, demo_standin
from gateway.sampleapp import build_sample_app
from gateway.standin import OryStandin

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = (
    f"{CHROMIUM} is not installed (apt-get install chromium); browser tests never download one"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
WIDTHS = (375, 1280)
HEIGHT = 800
TIMEOUT_MS = 10_000
SHUTDOWN_GRACE = 2.0

ALICE = ("alice@example.com", "alice-password")
BOB = ("bob@example.com", "bob-password")
CODE = SECOND_FACTOR_CODE


@dataclass
class Demo:
    """The running demo: where each piece listens, and the stand-in to inspect."""

    gateway: str
    ory: str
    app: str
    standin: OryStandin
    ports: DemoPorts

    @property
    def login_page(self) -> str:
        """Glob for the stand-in's login page (any flow)."""
        return f"{self.ory}/ui/login?flow=*"


@dataclass
class Runners:
    """Sites started by a test; stopped in reverse order."""

    started: list[web.AppRunner] = field(default_factory=list)

    async def start(self, app: web.Application, port: int) -> str:
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        self.started.append(runner)
        await web.TCPSite(runner, HOST, port).start()
        return f"http://{HOST}:{port}"

    async def stop(self) -> None:
        while self.started:
            await self.started.pop().cleanup()


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = unused_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture
async def runners() -> AsyncIterator[Runners]:
    started = Runners()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def demo(runners: Runners) -> Demo:
    """Stand-in, sample app and gateway, as `gateway demo` wires them, on free ports."""
    gateway_port, ory_port, app_port = free_ports(3)
    ports = DemoPorts(gateway=gateway_port, ory=ory_port, app=app_port)
    standin = demo_standin(ports)
    ory = await runners.start(standin.build_app(), ports.ory)
    app = await runners.start(build_sample_app(), ports.app)
    gateway = await runners.start(await build_app(demo_config(ports)), ports.gateway)
    return Demo(gateway=gateway, ory=ory, app=app, standin=standin, ports=ports)


@pytest.fixture
async def browser(runners: Runners) -> AsyncIterator[Browser]:
    """Headless Debian Chromium; closed before the sites stop (it depends on `runners`)."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    """A fresh context (its own cookie jar) with one page, at desktop width."""
    context = await browser.new_context(viewport={"width": WIDTHS[-1], "height": HEIGHT})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context, await context.new_page()


async def sign_in(page: Page, demo: Demo, url: str, who: tuple[str, str] = ALICE) -> None:
    """Open a protected `url`, sign in on the stand-in's page, arrive back at exactly `url`."""
    await page.goto(url)
    await page.wait_for_url(demo.login_page)
    await submit_login(page, who)
    await page.wait_for_url(url)


async def submit_login(page: Page, who: tuple[str, str]) -> None:
    """Fill and send the stand-in's login form (the page must be showing it)."""
    email, password = who
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Continue").click()


async def screenshot(page: Page, name: str) -> None:
    """`screenshots/<name>-375.png` and `-1280.png`, full page; restores the viewport."""
    SCREENSHOTS.mkdir(exist_ok=True)
    before = page.viewport_size
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": HEIGHT})
        await page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)
    if before is not None:
        await page.set_viewport_size(before)


async def no_horizontal_scroll(page: Page, width: int) -> None:
    """The page, laid out at `width` CSS pixels, is no wider than the viewport."""
    await page.set_viewport_size({"width": width, "height": HEIGHT})
    await expect(page.locator("body")).to_be_visible()
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} scrolls sideways: {scroll_width}px > {width}px"
