"""Regression tests for what an outside tester found in forward auth and per-route policy
(their reproductions F1-F8 of issue 13), each with the promise it broke:

* F1 a Host (or a trusted proxy's X-Forwarded-Host) that is not `name[:port]` is 400: nginx
  reads `b.test:80:80` as `b.test`, so it must not fall past `b.test`'s host route
  (docs/reference.md#who-may-enter);
* F2 a forwarded URI with an empty segment is 400 on both check endpoints: the proxy hands the
  app `//pub/role/x` raw, which a URL parser reads as host `pub`, path `/role/x`
  (#forward-auth);
* F3 a check for a cross-site WebSocket handshake is 403, as the proxied upgrade is
  (#bodies-and-websockets);
* F6 a hook body nested too deep to parse is 400, not 500 (#the-revocation-hook);
* F8 `gateway check` warns about requirements on traits, which users edit themselves.

F4 (path overrides through the proxies) is in tests/proxies/test_forwarded_facts.py; F5 and
F7 (what Redis holds) in tests/fleet. On 5d4cffd, the commit before the fixes, F1 let the
request through to the app, F2 and F3 answered 200, F6 answered 500, F8 said nothing.
"""

from __future__ import annotations

import pytest

from gateway.config import load_config
from gateway.explain import config_warnings
from gateway.standin import StandinSession
from tests.conftest import Stack, StackFactory

TRUSTED = 'trusted_proxies = ["127.0.0.1/32"]'
API = {"Accept": "application/json"}
ROUTES = """
[[routes]]
host = "b.test"
path = "/**"
[routes.require]
"identity.metadata_public.role" = "admin"

[[routes]]
path = "/pub/**"
access = "public"

[[routes]]
path = "/**"
access = "optional"
"""


def sign_in(stack: Stack) -> StandinSession:
    identity = stack.ory.add_identity("plain@example.com", password="pw")
    return stack.ory.create_session(identity)


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack(routes=ROUTES, server=TRUSTED, upstream="preserve_host = true")


@pytest.mark.parametrize(
    "host", ["b.test:80:80", "B.TEST.:1:2", "b.test:80:", "b.test..", "[b.test]",
             "b.test@a.test", "b.test,a.test", "b.test/", "b.test?x"],
)
async def test_f1_malformed_host_is_400_and_never_reaches_the_app(
    stack: Stack, host: str
) -> None:
    session = sign_in(stack)

    response = await stack.client.get(
        "/x", headers={"Host": host, **stack.cookie(session.cookie_value), **API})

    assert response.status == 400
    assert (await response.json())["error"]["id"] == "bad_request"
    assert stack.upstream.seen == []


@pytest.mark.parametrize("host", ["b.test", "B.Test.:8080"])
async def test_f1_well_formed_host_meets_its_route(stack: Stack, host: str) -> None:
    session = sign_in(stack)

    response = await stack.client.get(
        "/x", headers={"Host": host, **stack.cookie(session.cookie_value), **API})

    assert response.status == 403
    assert (await response.json())["error"]["id"] == "access_denied"


@pytest.mark.parametrize("endpoint", ["/_auth/check", "/_auth/check/nginx"])
async def test_f1_malformed_forwarded_host_is_400_on_the_checks(
    stack: Stack, endpoint: str
) -> None:
    session = sign_in(stack)

    response = await stack.client.get(endpoint, headers={
        "X-Forwarded-Uri": "/x", "X-Original-URI": "/x", "X-Forwarded-Host": "b.test:80:80",
        **stack.cookie(session.cookie_value), **API,
    })

    assert response.status == 400
    assert "X-User-Id" not in response.headers


@pytest.mark.parametrize("endpoint", ["/_auth/check", "/_auth/check/nginx"])
@pytest.mark.parametrize("uri", ["//pub/role/x", "/pub//x", "//b.test/role/x?q=1"])
async def test_f2_forwarded_uri_with_an_empty_segment_is_400(
    stack: Stack, endpoint: str, uri: str
) -> None:
    response = await stack.client.get(endpoint, headers={
        "X-Forwarded-Uri": uri, "X-Original-URI": uri, **API})

    assert response.status == 400
    assert (await response.json())["error"]["id"] == "bad_request"


async def test_f2_double_slash_in_the_query_is_fine(stack: Stack) -> None:
    response = await stack.client.get("/_auth/check", headers={
        "X-Forwarded-Uri": "/pub/x?next=//elsewhere", "X-Forwarded-Host": "a.test", **API})

    assert response.status == 200


@pytest.mark.parametrize("endpoint", ["/_auth/check", "/_auth/check/nginx"])
@pytest.mark.parametrize(
    ("origin", "status"),
    [("https://evil.example", 403), ("https://app.example.com", 200), (None, 200)],
    ids=["cross-site", "own-origin", "no-origin"],
)
async def test_f3_websocket_handshake_from_another_site_is_refused(
    stack: Stack, endpoint: str, origin: str | None, status: int
) -> None:
    session = sign_in(stack)
    headers = {
        "X-Forwarded-Uri": "/live", "X-Original-URI": "/live", "X-Forwarded-Method": "GET",
        "X-Forwarded-Host": "app.example.com", "X-Forwarded-Proto": "https",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
        **stack.cookie(session.cookie_value), **API,
    }
    if origin is not None:
        headers["Origin"] = origin

    response = await stack.client.get(endpoint, headers=headers)

    assert response.status == status
    if status == 403:
        assert (await response.json())["error"]["id"] == "access_denied"
        assert "X-User-Id" not in response.headers


async def test_f6_hook_body_nested_too_deep_is_400(make_stack: StackFactory) -> None:
    token = "hook-token-0123456789abcdef"
    stack = await make_stack(extra=f'[hooks]\ntoken = "{token}"\n')
    body = '{"a":' + "[" * 30000 + "]" * 30000 + ',"identity_id":"x"}'

    response = await stack.client.post(
        "/_auth/hooks/revoke", data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status == 400
    assert (await response.json())["error"]["id"] == "bad_request"


def test_f8_check_warns_about_requirements_on_traits() -> None:
    config = load_config("""
[[routes]]
path = "/crm/**"
[routes.require]
"identity.traits.department" = "sales"
"identity.metadata_public.role" = "admin"
""", {})

    warnings = [w for w in config_warnings(config) if "traits" in w]

    assert warnings == [
        "routes[0]: require 'identity.traits.department': users can change their own traits "
        "(Ory's settings flow); require identity.metadata_public.* (set by admins) for roles"
    ]
