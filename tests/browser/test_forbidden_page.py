"""The "not for this account" page in a real browser: signed in as someone a route's
`require` turns away, the page names the account and its two ways out work
(docs/reference.md#who-may-enter, #html-pages)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, Page, expect

from gateway.app import build_app
from gateway.config import load_config
from gateway.demo import HOST
from gateway.sampleapp import build_sample_app
from gateway.standin import OryStandin
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_MISSING,
    TIMEOUT_MS,
    Runners,
    free_ports,
    new_page,
    submit_login,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]

ADMIN = ("root@example.com", "root-password")
VIEWER = ("viewer@example.com", "viewer-password")
SWITCH = re.compile("someone else|switch account", re.IGNORECASE)
SIGN_OUT = re.compile("^sign out$", re.IGNORECASE)


@dataclass
class Site:
    gateway: str
    ory: str

    @property
    def login_page(self) -> str:
        return f"{self.ory}/ui/login?flow=*"

    @property
    def admin(self) -> str:
        """The sample app's admin page, behind a `require` (query kept through every hop)."""
        return f"{self.gateway}/admin/?tab=2"


@pytest.fixture
async def site(runners: Runners) -> Site:
    """Stand-in, sample app and a gateway whose /admin/ needs the admin role (no second
    factor, so a signed-in viewer meets the refusal itself)."""
    gateway_port, ory_port, app_port = free_ports(3)
    gateway = f"http://{HOST}:{gateway_port}"
    standin = OryStandin(allowed_return_urls=(gateway,), required_aal="aal1",
                         default_return_url=gateway + "/")
    standin.add_identity(*ADMIN, metadata_public={"role": "admin"})
    standin.add_identity(*VIEWER, metadata_public={"role": "viewer"})
    config = load_config(f"""
[server]
listen = "{HOST}:{gateway_port}"
public_url = "{gateway}"

[ory]
url = "http://{HOST}:{ory_port}"

[upstream]
url = "http://{HOST}:{app_port}"

[[routes]]
path = "/admin/**"
[routes.require]
"identity.metadata_public.role" = "admin"
""", {})
    ory = await runners.start(standin.build_app(), ory_port)
    await runners.start(build_sample_app(), app_port)
    await runners.start(await build_app(config), gateway_port)
    return Site(gateway=gateway, ory=ory)


async def refused_viewer(browser: Browser, site: Site) -> Page:
    """A viewer signed in through the login page, looking at the refusal of /admin/, which
    names the account and offers both ways out."""
    _, page = await new_page(browser)
    await page.goto(site.admin)
    await page.wait_for_url(site.login_page)
    await submit_login(page, VIEWER)
    await page.wait_for_url(site.admin)
    response = await page.reload()
    assert response is not None
    assert response.status == 403
    await expect(page.locator("body")).to_contain_text(VIEWER[0], timeout=TIMEOUT_MS)
    await expect(page.get_by_role("link", name=SWITCH)).to_be_visible()
    await expect(page.get_by_role("link", name=SIGN_OUT)).to_be_visible()
    return page


async def test_switch_account_leads_to_the_login_and_back_as_someone_else(
    browser: Browser, site: Site
) -> None:
    page = await refused_viewer(browser, site)

    await page.get_by_role("link", name=SWITCH).click()
    await page.wait_for_url(site.login_page)
    await submit_login(page, ADMIN)
    await page.wait_for_url(site.admin)

    response = await page.reload()
    assert response is not None
    assert response.status == 200
    await expect(page.locator("main")).to_contain_text(ADMIN[0], timeout=TIMEOUT_MS)


async def test_sign_out_signs_out(browser: Browser, site: Site) -> None:
    page = await refused_viewer(browser, site)

    await page.get_by_role("link", name=SIGN_OUT).click()
    await page.wait_for_url(f"{site.gateway}/_auth/signed-out*")
    await page.goto(site.admin)

    await page.wait_for_url(site.login_page)
    whoami = await page.request.get(f"{site.gateway}/_auth/whoami")
    assert whoami.status == 401
