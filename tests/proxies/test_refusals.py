"""Through nginx and Caddy: denied routes, unmet requirements, Ory being down, and a
forward-auth question from a peer the gateway does not trust
(docs/reference.md#forward-auth, #who-may-enter)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html import escape

import aiohttp
import pytest
import pytest_asyncio

from tests.proxies.deployment import API, NAVIGATION, Deployment, cookie, header_values, unique

pytestmark = pytest.mark.asyncio(loop_scope="module")

UNTRUSTED_ADDRESS = "127.0.0.2"  # loopback, but outside the README's 127.0.0.1/32


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def untrusted_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client whose connections come from 127.0.0.2."""
    connector = aiohttp.TCPConnector(local_addr=(UNTRUSTED_ADDRESS, 0))
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        yield http


async def test_denied_route_is_refused_even_signed_in(deployment: Deployment) -> None:
    user = deployment.sign_up("kim")
    signed_in = cookie(deployment.session(user))
    path = unique("/internal")
    api = await deployment.request("GET", path, {**API, **signed_in})
    assert (api.status, api.error_id) == (403, "access_denied"), str(api)
    page = await deployment.request("GET", path, {**NAVIGATION, **signed_in})
    assert page.status == 403, str(page)
    assert page.headers["Content-Type"].startswith("text/html"), str(page)
    assert deployment.received(path) == []


async def test_unmet_requirement_gets_the_page_naming_who_is_signed_in(
    deployment: Deployment,
) -> None:
    """The README's configs pass the gateway's own answer through, so the browser sees whom
    it is signed in as and can switch account."""
    user = deployment.sign_up("lena", plan="free")
    signed_in = cookie(deployment.session(user))
    path = unique("/billing")
    page = await deployment.request("GET", path, {**NAVIGATION, **signed_in})
    assert page.status == 403, str(page)
    assert page.headers["Content-Type"].startswith("text/html"), str(page)
    assert f"<strong>{escape(user.email)}</strong>" in page.text
    api = await deployment.request("GET", path, {**API, **signed_in})
    assert (api.status, api.error_id) == (403, "access_denied"), str(api)
    assert deployment.received(path) == []


@pytest.mark.parametrize(
    ("prefix", "role", "plan", "aal"),
    [("/billing", None, "pro", "aal1"), ("/admin", "admin", None, "aal2")],
    ids=["plan", "role-and-aal2"],
)
async def test_user_who_meets_the_requirements_is_let_in(
    deployment: Deployment, prefix: str, role: str | None, plan: str | None, aal: str
) -> None:
    user = deployment.sign_up("mia", role=role, plan=plan, second_factor=aal == "aal2")
    path = unique(prefix)
    answer = await deployment.request("GET", path, {**API, **cookie(deployment.session(user, aal))})
    assert answer.status == 200, str(answer)
    [seen] = deployment.received(path)
    assert header_values(seen, "X-User-Id") == [user.identity_id]


async def test_aal2_session_without_the_role_is_refused_on_the_admin_route(
    deployment: Deployment,
) -> None:
    user = deployment.sign_up("nora", role="viewer", second_factor=True)
    path = unique("/admin")
    answer = await deployment.request(
        "GET", path, {**API, **cookie(deployment.session(user, "aal2"))}
    )
    assert (answer.status, answer.error_id) == (403, "access_denied"), str(answer)
    assert deployment.received(path) == []


@pytest.mark.parametrize("caller", ["api", "navigation"])
async def test_ory_unavailable_is_503_and_never_the_app(
    deployment: Deployment, caller: str
) -> None:
    """nginx turns the check's 503 into its own 500, which the README's `@refused` asks the
    gateway about again: the client gets the gateway's 503 from both proxies."""
    user = deployment.sign_up("olga")
    fresh = cookie(deployment.session(user))  # never cached: Ory must be asked
    path = unique("/app")
    headers = API if caller == "api" else NAVIGATION
    deployment.ory.faults.whoami_status = 503
    try:
        answer = await deployment.request("GET", path, {**headers, **fresh})
    finally:
        deployment.ory.faults.reset()
    assert answer.status == 503, str(answer)
    if caller == "api":
        assert answer.error_id == "ory_unavailable", str(answer)
    else:
        assert answer.headers["Content-Type"].startswith("text/html"), str(answer)
    assert deployment.received(path) == []

    recovered = await deployment.request("GET", path, {**headers, **fresh})
    assert recovered.status == 200, str(recovered)


@pytest.mark.parametrize(
    ("endpoint", "described_as"),
    [("/_auth/check", "X-Forwarded-Uri"), ("/_auth/check/nginx", "X-Original-URI")],
)
async def test_check_refuses_a_peer_outside_trusted_proxies(
    deployment: Deployment, untrusted_http: aiohttp.ClientSession, endpoint: str,
    described_as: str,
) -> None:
    user = deployment.sign_up("pia")
    question = {**API, **cookie(deployment.session(user)), described_as: "/public/x",
                "X-Forwarded-Host": "127.0.0.1"}
    refused = await deployment.request("GET", endpoint, question, base=deployment.gateway,
                                       http=untrusted_http)
    assert (refused.status, refused.error_id) == (403, "access_denied"), str(refused)
    assert "X-User-Id" not in refused.headers

    trusted = await deployment.request("GET", endpoint, question, base=deployment.gateway)
    assert trusted.status == 200, str(trusted)
    assert trusted.headers.get("X-User-Id") is None  # a public route vouches for nobody

    signed_in = {**question, described_as: unique("/app")}
    vouched = await deployment.request("GET", endpoint, signed_in, base=deployment.gateway)
    assert vouched.status == 200, str(vouched)
    assert vouched.headers["X-User-Id"] == user.identity_id
    assert (await deployment.request("GET", endpoint, signed_in, base=deployment.gateway,
                                     http=untrusted_http)).status == 403
