"""Class PATH-CONFUSION: the path that picks the rule differs from the path the upstream gets.

Every case is sent byte for byte (aiohttp's client would normalise it) without a session.
The oracle is `lax_reading`: whatever reached the upstream must not read as a protected route
to a lenient server either. tests/integration/test_paths_and_headers.py holds the 400s for
a deny prefix; here the targets climb into authenticated routes and the upstream's view is
checked, not only the status.
"""

from __future__ import annotations

import pytest

from gateway.routes import RouteTable
from tests.conftest import Stack, StackFactory
from tests.rawhttp import get, raw_request
from tests.security.lax_reading import protected_readings

API = "Accept: application/json"

# (raw target, the gateway's answer): 400 = refused as ambiguous, 401 = normalised to a
# protected route and asked for a session. Never 2xx, never forwarded.
ATTACKS = [
    pytest.param("/public/../admin", 400, id="dot-dot"),
    pytest.param("/public/%2e%2e/admin", 400, id="encoded-dots-lower"),
    pytest.param("/public/%2E%2E/admin", 400, id="encoded-dots-upper"),
    pytest.param("/public/.%2e/admin", 400, id="half-encoded-dots"),
    pytest.param("/public%2f..%2fadmin", 400, id="encoded-slashes"),
    pytest.param("/public/..%2fadmin", 400, id="dot-dot-encoded-slash"),
    pytest.param("/public/..\\admin", 400, id="backslash"),
    pytest.param("/public/..%5cadmin", 400, id="encoded-backslash"),
    pytest.param("/public/..;/admin", 400, id="tomcat-dot-dot-semicolon"),
    pytest.param("/admin;x=1", 400, id="path-parameter"),
    pytest.param("/public;/../admin", 400, id="parameter-then-dot-dot"),
    pytest.param("//admin", 401, id="double-slash-normalised"),
    pytest.param("/%61dmin", 401, id="encoded-unreserved-normalised"),
    pytest.param("/public/secret%23/x", 400, id="encoded-hash-vs-one-segment-glob"),
    pytest.param("/public/secret%3f/x", 400, id="encoded-question-vs-one-segment-glob"),
    pytest.param("/public/%00/../admin", 400, id="nul"),
    pytest.param("/public/..%00/admin", 400, id="dot-dot-nul"),
    pytest.param("/public/x#/../../admin", 400, id="fragment-in-target"),
    pytest.param("/public/x/../../admin", 400, id="dot-dot-twice"),
    pytest.param("/public/%252e%252e/admin", 400, id="double-encoded-dots"),
    pytest.param("/public/%u002e%u002e/admin", 400, id="iis-u-escape"),
    pytest.param("/public/%zz/../admin", 400, id="invalid-escape"),
    pytest.param("/admin?path=/public", 401, id="query-names-public-path"),
    pytest.param("/admin?/public/x", 401, id="query-is-public-path"),
    pytest.param("/public//secret", 401, id="double-slash-into-protected-sibling"),
]


@pytest.mark.parametrize(("target", "status"), ATTACKS)
async def test_confusing_path_never_reaches_a_protected_route_without_session(
    guarded: Stack, target: str, status: int
) -> None:
    response = await raw_request(guarded.client.port or 0, get(target, API))
    assert response.status == status
    assert guarded.upstream.seen == []


@pytest.mark.parametrize(("target", "status"), ATTACKS)
async def test_confusing_path_with_browser_accept_is_refused_or_sent_to_login(
    guarded: Stack, target: str, status: int
) -> None:
    browser = get(target, "Accept: text/html", "Sec-Fetch-Mode: navigate")
    response = await raw_request(guarded.client.port or 0, browser)
    assert response.status == (303 if status == 401 else status)
    assert guarded.upstream.seen == []


# Targets a gateway must forward: each lands on a public route, and no lenient reading of
# what the upstream receives is protected.
FORWARDED = [
    pytest.param("/public/a/x", "/public/a/x", id="one-segment-glob"),
    pytest.param("/public/%73ecret/x", "/public/secret/x", id="decoded-unreserved-in-glob"),
    pytest.param("//public///b", "/public/b", id="merged-slashes"),
    pytest.param("/public/caf%c3%a9", "/public/caf%C3%A9", id="utf8-escape-upper-cased"),
    pytest.param("/public/x?next=/admin&p=..%2f", "/public/x?next=/admin&p=..%2f", id="query"),
]


@pytest.mark.parametrize(("target", "forwarded"), FORWARDED)
async def test_forwarded_path_is_the_matched_one_and_reads_as_public(
    guarded: Stack, target: str, forwarded: str
) -> None:
    response = await raw_request(guarded.client.port or 0, get(target, API))
    assert response.status == 200
    seen = guarded.upstream.last().raw_path
    assert seen == forwarded
    assert protected_readings(seen, RouteTable(guarded.config)) == []


# Overlong UTF-8: a lenient decoder reads /public/%C0%AE%C0%AE/admin as /admin
# (docs/reference.md#canonical-path: a
# path that could be read two ways must be refused).
@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/public/%c0%ae%c0%ae/admin", id="overlong-dot"),
        pytest.param("/public/..%c0%afadmin", id="overlong-slash"),
        pytest.param("/public/%e0%80%ae%e0%80%ae/admin", id="three-byte-overlong-dot"),
    ],
)
async def test_overlong_utf8_escape_is_refused(guarded: Stack, target: str) -> None:
    response = await raw_request(guarded.client.port or 0, get(target, API))
    assert response.status == 400
    assert guarded.upstream.seen == []


# Route bypass by spelling: a protected route written with ":", "@" or a non-ASCII letter
# must catch every escape of it, since the upstream decodes them to the same path.
SPELLED_ROUTES = """
[[routes]]
path = "/admin:internal/**"
access = "deny"

[[routes]]
path = "/user@admin/**"
access = "deny"

[[routes]]
path = "/café/**"
access = "deny"

[[routes]]
path = "/reports/{tenant}/**"
access = "deny"

[[routes]]
path = "/a|b/**"
access = "deny"

[[routes]]
path = "/**"
access = "public"
"""


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/admin:internal/x", id="colon-plain"),
        pytest.param("/admin%3Ainternal/x", id="colon-escaped"),
        pytest.param("/admin%3ainternal", id="colon-escaped-lower"),
        pytest.param("/user%40admin/x", id="at-escaped"),
        pytest.param("/caf%C3%A9/x", id="utf8-upper"),
        pytest.param("/caf%c3%a9", id="utf8-lower"),
        pytest.param("/%63af%c3%a9/x", id="utf8-with-unreserved-escape"),
        pytest.param("/reports/%7Btenant%7D/x", id="braces"),
        pytest.param("/reports/%7btenant%7d", id="braces-lower"),
        pytest.param("/a%7Cb/x", id="pipe"),
    ],
)
async def test_escaped_spelling_of_a_denied_route_is_still_denied(
    make_stack: StackFactory, target: str
) -> None:
    stack = await make_stack(routes=SPELLED_ROUTES)
    response = await raw_request(stack.client.port or 0, get(target, API))
    assert response.status == 403
    assert stack.upstream.seen == []
