"""Fixtures: one deployment per proxy and module (the proxy starts once, in the module's
event loop), and a headless Chromium for the browser journeys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.proxies.deployment import PROXIES, Deployment, deploy
from tests.proxies.front_proxies import BINARIES


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=PROXIES)
async def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    kind: str = request.param
    if not BINARIES[kind].exists():
        pytest.skip(f"{BINARIES[kind]} is not installed (apt-get install {kind})")
    async with deploy(kind, tmp_path_factory.mktemp(kind)) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless; Playwright never downloads one."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()
