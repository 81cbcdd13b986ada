"""Class TRUSTED-FORWARDING: client-sent X-Forwarded-* and path overrides believed
(docs/reference.md#headers-toward-the-upstream).

The peer here is 127.0.0.1 and `trusted_proxies` is empty, so nothing it says about the
original request may change what the upstream is told or where a browser is sent.
tests/integration/test_paths_and_headers.py checks the values the upstream receives in one
request; here each header is tried alone, in several spellings, and against the decisions
that read the request's origin (login return_to, refresh, logout, WebSocket Origin).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from gateway.headers import normalise_name
from tests.conftest import Stack, StackFactory
from tests.rawhttp import get, raw_request
from tests.security.conftest import BROWSER, ROUTES_UNDER_ATTACK

PATH_OVERRIDES = [
    pytest.param("X-Original-URL", id="x-original-url"),
    pytest.param("X-Rewrite-URL", id="x-rewrite-url"),
    pytest.param("X-Forwarded-Uri", id="x-forwarded-uri"),
    pytest.param("X-Forwarded-Prefix", id="x-forwarded-prefix"),
    pytest.param("X-Original-URI", id="x-original-uri"),
    pytest.param("X-Forwarded-Path", id="x-forwarded-path"),
    pytest.param("x_original_url", id="underscored-lower"),
    pytest.param("X_REWRITE_URL", id="underscored-upper"),
]


@pytest.mark.parametrize("path", ["/public/x", "/admin/x"])
@pytest.mark.parametrize("name", PATH_OVERRIDES)
async def test_path_override_header_from_untrusted_peer_is_dropped(
    guarded: Stack, name: str, path: str
) -> None:
    cookie, _ = guarded.login()
    head = get(path, f"{name}: /internal/x", f"Cookie: ory_kratos_session={cookie}")
    response = await raw_request(guarded.client.port or 0, head)
    assert response.status == 200
    names = {normalise_name(k) for k, _ in guarded.upstream.last().headers}
    assert normalise_name(name) not in names


FORWARDING = [
    pytest.param(("X-Forwarded-Host: evil.example",), id="x-forwarded-host"),
    pytest.param(("X-Forwarded-Host: evil.example", "X-Forwarded-Proto: https"), id="host-proto"),
    pytest.param(("X_Forwarded_Proto: https", "X_Forwarded_Host: evil.example"), id="underscored"),
    pytest.param(("Forwarded: host=evil.example;proto=https",), id="rfc7239"),
]


def return_to_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["return_to"][0]


@pytest.mark.parametrize("spoof", FORWARDING)
async def test_untrusted_forwarding_headers_never_reach_upstream(
    guarded: Stack, spoof: tuple[str, ...]
) -> None:
    head = get("/public/x", *spoof, host="gw.example:8080")
    response = await raw_request(guarded.client.port or 0, head)
    assert response.status == 200
    assert guarded.upstream.header("X-Forwarded-Host") == ["gw.example:8080"]
    assert guarded.upstream.header("X-Forwarded-Proto") == ["http"]
    names = {normalise_name(k) for k, _ in guarded.upstream.last().headers}
    assert "forwarded" not in names
    assert not [v for _, v in guarded.upstream.last().headers if "evil.example" in v]


@pytest.mark.parametrize("spoof", FORWARDING)
async def test_untrusted_forwarding_headers_do_not_move_the_login_return_to(
    guarded: Stack, spoof: tuple[str, ...]
) -> None:
    head = get("/admin/x?y=1", "Accept: text/html", "Sec-Fetch-Mode: navigate", *spoof)
    response = await raw_request(guarded.client.port or 0, head)
    assert response.status == 303
    location = response.header("Location") or ""
    assert return_to_of(location) == "http://127.0.0.1/admin/x?y=1"


@pytest.mark.parametrize("spoof", FORWARDING)
async def test_untrusted_forwarding_headers_do_not_move_refresh_or_logout(
    guarded: Stack, spoof: tuple[str, ...]
) -> None:
    cookie, _ = guarded.login()
    headers = dict(line.split(": ", 1) for line in spoof)
    refresh = await guarded.client.get(
        "/_auth/refresh?return_to=/account", headers=headers, allow_redirects=False
    )
    assert return_to_of(refresh.headers["Location"]) == guarded.origin + "/account"
    logout = await guarded.client.get(
        "/_auth/logout?return_to=/bye", headers={**headers, **guarded.cookie(cookie)},
        allow_redirects=False,
    )
    assert return_to_of(logout.headers["Location"]) == guarded.origin + "/bye"


@pytest.mark.parametrize("spoof", FORWARDING)
async def test_untrusted_forwarding_headers_do_not_admit_a_foreign_websocket_origin(
    guarded: Stack, spoof: tuple[str, ...]
) -> None:
    cookie, _ = guarded.login()
    headers = {**dict(line.split(": ", 1) for line in spoof), **guarded.cookie(cookie),
               "Origin": "https://evil.example"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await guarded.client.ws_connect("/ws", headers=headers)
    assert refused.value.status == 403
    assert [s for s in guarded.upstream.seen if s.method == "WS"] == []


async def test_public_url_fixes_the_origin_whatever_the_host_says(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(
        routes=ROUTES_UNDER_ATTACK, server='public_url = "https://app.example.com"'
    )
    head = get("/admin/x", "Accept: text/html", "Sec-Fetch-Mode: navigate",
               "X-Forwarded-Host: evil.example", host="evil.example")
    response = await raw_request(stack.client.port or 0, head)
    assert response.status == 303
    assert return_to_of(response.header("Location") or "") == "https://app.example.com/admin/x"
    refresh = await stack.client.get(
        "/_auth/refresh", headers={"Host": "evil.example", **BROWSER}, allow_redirects=False
    )
    assert return_to_of(refresh.headers["Location"]) == "https://app.example.com/"
