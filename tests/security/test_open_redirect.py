"""Class OPEN-REDIRECT: a `Location` off our origin, or a header injected through return_to.

Every hostile `return_to` is tried through each place the gateway redirects: logout without
and with a session (GET and POST), refresh, and the login redirect of a protected page. The
Location is resolved the way a browser would (browser_url.py): it must land on our origin,
or on Ory's login/logout whose own return_to lands on our origin. integration/
test_endpoints.py tries six values on logout; this is the full table on every path.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from aiohttp import ClientResponse

from tests.conftest import Stack
from tests.rawhttp import RawResponse, get, raw_request
from tests.security.browser_url import origin, query_value, resolve
from tests.security.conftest import BROWSER

# Values as the server decodes them; "{host}" is the gateway's host:port.
HOSTILE = [
    pytest.param("https://evil.example", id="absolute-foreign"),
    pytest.param("//evil.example", id="scheme-relative"),
    pytest.param("/\\evil.example", id="slash-backslash"),
    pytest.param("\\\\evil.example", id="double-backslash"),
    pytest.param("/%09/evil.example", id="escaped-tab-literal"),
    pytest.param("/\t/evil.example", id="tab"),
    pytest.param("/./\\evil.example", id="dot-backslash"),
    pytest.param(" //evil.example", id="leading-space"),
    pytest.param("///evil.example", id="triple-slash"),
    pytest.param("/%2F%2Fevil.example", id="escaped-slashes"),
    pytest.param("/%5Cevil.example", id="escaped-backslash"),
    pytest.param("https://{host}@evil.example", id="userinfo-is-our-host"),
    pytest.param("http://{host}@evil.example", id="userinfo-is-our-host-http"),
    pytest.param("http://{host}:@evil.example", id="userinfo-with-colon"),
    pytest.param("https://{host}.evil.example", id="our-host-as-subdomain"),
    pytest.param("http://{host}.evil.example/", id="our-host-as-subdomain-http"),
    pytest.param("http://{host}\\@evil.example", id="backslash-before-at"),
    pytest.param("http://evil.example\\@{host}", id="backslash-authority-confusion"),
    pytest.param("http://evil.example#@{host}", id="fragment-at-our-host"),
    pytest.param("http://evil.example?@{host}", id="query-at-our-host"),
    pytest.param("http:evil.example", id="scheme-without-slashes"),
    pytest.param("https:/\\evil.example", id="scheme-slash-backslash"),
    pytest.param("JaVaScRiPt:alert(1)", id="javascript-mixed-case"),
    pytest.param("java\tscript:alert(1)", id="javascript-with-tab"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="data-url"),
    pytest.param("\uff0f\uff0fevil.example", id="fullwidth-solidus"),
    pytest.param("%EF%BC%8F%EF%BC%8Fevil.example", id="escaped-fullwidth-solidus"),
    pytest.param("%0d%0aSet-Cookie:x=1", id="escaped-crlf-literal"),
    pytest.param("\r\nSet-Cookie: x=1", id="crlf"),
    pytest.param("/ok\r\nSet-Cookie: x=1", id="crlf-after-path"),
    pytest.param("/ok%0d%0aSet-Cookie:x=1", id="escaped-crlf-after-path"),
]


def hostile(template: str, stack: Stack) -> str:
    return template.replace("{host}", stack.origin.split("://", 1)[1])


def single_header(headers: list[tuple[str, str]], name: str) -> str:
    values = [v for k, v in headers if k.lower() == name.lower()]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def assert_lands_on_our_origin(stack: Stack, headers: list[tuple[str, str]]) -> None:
    """Our origin, or Ory (login/logout) with a return_to on our origin; nothing injected.

    The gateway may set its own cookies (the login redirect's loop-guard cookie); the
    payload's `x=1` must never become one.
    """
    cookies = [v for k, v in headers if k.lower() == "set-cookie"]
    assert not [c for c in cookies if c.split("=", 1)[0].strip() == "x"]
    assert not [v for _, v in headers if "\r" in v or "\n" in v]
    ours = stack.origin
    target = resolve(ours + "/_auth/x", single_header(headers, "Location"))
    if origin(target) == ours:
        return
    assert origin(target) == origin(stack.config.ory.browser_base), target
    back = query_value(target, "return_to")
    assert back is not None, target
    assert origin(resolve(ours + "/", back)) == ours, back


def pairs(response: ClientResponse | RawResponse) -> list[tuple[str, str]]:
    if isinstance(response, RawResponse):
        return response.headers
    return list(response.headers.items())


async def send(stack: Stack, target: str, *lines: str) -> RawResponse:
    """`target` byte for byte, with the Host a browser would send."""
    head = get(target, *lines, host=stack.origin.split("://", 1)[1])
    return await raw_request(stack.client.port or 0, head)


@pytest.mark.parametrize("template", HOSTILE)
async def test_logout_without_session_never_leaves_our_origin(
    guarded: Stack, template: str
) -> None:
    value = quote(hostile(template, guarded), safe="")
    response = await send(guarded, f"/_auth/logout?return_to={value}")
    assert response.status == 303
    assert_lands_on_our_origin(guarded, pairs(response))


@pytest.mark.parametrize("template", HOSTILE)
async def test_logout_with_session_sends_ory_only_our_origin(
    guarded: Stack, template: str
) -> None:
    cookie, _ = guarded.login()
    value = quote(hostile(template, guarded), safe="")
    response = await send(
        guarded, f"/_auth/logout?return_to={value}", f"Cookie: ory_kratos_session={cookie}"
    )
    assert response.status == 303
    assert_lands_on_our_origin(guarded, pairs(response))


@pytest.mark.parametrize("template", HOSTILE)
async def test_logout_post_sends_ory_only_our_origin(guarded: Stack, template: str) -> None:
    cookie, _ = guarded.login()
    response = await guarded.client.post(
        "/_auth/logout", params={"return_to": hostile(template, guarded)},
        headers={**guarded.cookie(cookie), "Origin": guarded.origin}, allow_redirects=False,
    )
    assert response.status == 303
    assert_lands_on_our_origin(guarded, pairs(response))


@pytest.mark.parametrize("template", HOSTILE)
async def test_refresh_never_returns_off_our_origin(guarded: Stack, template: str) -> None:
    value = quote(hostile(template, guarded), safe="")
    response = await send(guarded, f"/_auth/refresh?return_to={value}")
    assert response.status == 303
    assert_lands_on_our_origin(guarded, pairs(response))


@pytest.mark.parametrize("template", HOSTILE)
async def test_login_redirect_of_protected_page_returns_only_to_our_origin(
    guarded: Stack, template: str
) -> None:
    value = quote(hostile(template, guarded), safe="")
    response = await send(
        guarded, f"/admin/x?return_to={value}", *(f"{k}: {v}" for k, v in BROWSER.items())
    )
    assert response.status == 303
    assert_lands_on_our_origin(guarded, pairs(response))


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param("//evil.example", 303, id="scheme-relative-target"),
        pytest.param("//evil.example/admin", 303, id="scheme-relative-target-with-path"),
        pytest.param("///evil.example/x", 303, id="triple-slash-target"),
        pytest.param("/@evil.example", 303, id="at-target"),
        pytest.param("/%2F%2Fevil.example", 400, id="escaped-slashes-target"),
        pytest.param("/\\evil.example", 400, id="backslash-target"),
    ],
)
async def test_login_redirect_for_hostile_target_returns_only_to_our_origin(
    guarded: Stack, target: str, status: int
) -> None:
    response = await send(guarded, target, *(f"{k}: {v}" for k, v in BROWSER.items()))
    assert response.status == status
    if status == 303:
        assert_lands_on_our_origin(guarded, pairs(response))
    assert guarded.upstream.seen == []
