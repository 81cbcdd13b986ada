"""Properties over generated requests, driven through the real server (hypothesis).

tests/unit may check the pure functions; these send every generated request to the running
gateway and compare what the upstream received with `canonical_target` + `RouteTable.match`:
the path that chose the rule is the path forwarded, no reading of a forwarded path is under
a deny prefix (or, without a session, under a protected one), `return_to` never leaves our
origin, and every spelling of an identity header is stripped.
"""

from __future__ import annotations

import itertools
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import BadRequestError
from gateway.paths import canonical_target
from gateway.routes import RouteTable
from tests.conftest import Stack
from tests.rawhttp import RawResponse, get, raw_request
from tests.security.browser_url import origin, query_value, resolve
from tests.security.lax_reading import denied_readings, protected_readings

# One fixture-built stack serves every example: each example starts by forgetting what the
# upstream saw, and nothing else carries over (no session is ever cached for anonymous calls).
SERVER_SETTINGS = settings(
    max_examples=200, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SEGMENT_PIECES = [
    "public", "admin", "internal", "secret", "maybe", "stepup", "x", "a", "",
    ".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "%2f", "%2F", "%5c", "\\", ";", ";x=1",
    "%3b", "%00", "%23", "#", "%3f", "?", "%61dmin", "%69nternal", "%25", "%252e",
    "%zz", "%", "%c3%a9", "%7e", "~", "*", "@", ":", "!", "'", "+", "=",
]
segments = st.lists(st.sampled_from(SEGMENT_PIECES), min_size=1, max_size=3).map("".join)
paths = st.lists(segments, min_size=1, max_size=5).map(lambda s: "/" + "/".join(s))
queries = st.sampled_from(["", "?path=/admin", "?a=%2e%2e/internal", "?next=//evil.example",
                           "?x=1&y=..%2f"])
targets = st.tuples(paths, queries).map("".join)


def expectation(target: str, routes: RouteTable) -> tuple[str | None, str]:
    """(forwarded path, access) per the gateway's own functions; (None, "bad") if refused."""
    try:
        canonical = canonical_target(target)
    except BadRequestError:
        return None, "bad"
    return canonical.path_qs, routes.match("GET", canonical.path).access


async def send(stack: Stack, target: str, *lines: str) -> RawResponse:
    stack.upstream.seen.clear()
    return await raw_request(stack.client.port or 0, get(target, "Accept: application/json",
                                                         *lines))


@SERVER_SETTINGS
@given(target=targets)
async def test_path_that_matched_is_the_path_forwarded(guarded: Stack, target: str) -> None:
    identity = guarded.ory.add_identity("", password="pw")
    session = guarded.ory.create_session(identity, aal="aal2")
    forwarded, access = expectation(target, RouteTable(guarded.config))
    response = await send(guarded, target, f"X-Session-Token: {session.token}")
    seen = [s.raw_path for s in guarded.upstream.seen]
    if access == "bad":
        assert (response.status, seen) == (400, [])
    elif access == "deny":
        assert (response.status, seen) == (403, [])
    else:
        assert (response.status, seen) == (200, [forwarded])


@SERVER_SETTINGS
@given(target=targets)
async def test_nothing_forwarded_without_session_reads_as_protected(
    guarded: Stack, target: str
) -> None:
    routes = RouteTable(guarded.config)
    forwarded, access = expectation(target, routes)
    response = await send(guarded, target)
    seen = [s.raw_path for s in guarded.upstream.seen]
    if access in ("public", "optional"):
        assert (response.status, seen) == (200, [forwarded])
    else:
        assert seen == []
        assert response.status in (400, 401, 403)
    for path in seen:
        assert protected_readings(path, routes) == []


deny_paths = st.tuples(
    st.lists(st.sampled_from(["public", "maybe", "x", "..", "%2e%2e", ".", ""]), max_size=3),
    st.sampled_from(["/", "//", "\\", "%2f", "%5c", "/./", "/;/", "/%2e/", "/%00/"]),
    st.sampled_from(["internal", "%69nternal", "internal;x", "internal%3b"]),
    st.sampled_from(["", "/", "/x", "/x/..", "/%2e%2e/public"]),
).map(lambda p: "/" + "/".join(p[0]) + p[1] + p[2] + p[3])


@SERVER_SETTINGS
@given(target=deny_paths)
async def test_no_path_under_a_deny_prefix_is_ever_proxied(guarded: Stack, target: str) -> None:
    identity = guarded.ory.add_identity("", password="pw")
    session = guarded.ory.create_session(identity, aal="aal2")
    routes = RouteTable(guarded.config)
    response = await send(guarded, target, f"X-Session-Token: {session.token}")
    for path in [s.raw_path for s in guarded.upstream.seen]:
        assert denied_readings(path, routes) == [], (target, path)
    if denied_readings(target, routes):
        assert response.status in (400, 403)


RETURN_TO_PIECES = [
    "/", "//", "\\", "/\\", "evil.example", "{host}", "@", ":", ".", "..", "http:", "https:",
    "javascript:", "%09", "%0a", "%0d", "%2f", "%5c", "%2e", "\t", "\n", " ", "?", "#",
    "\uff0f", "\u3002", "x", "%40", "%23", "%3f",
]
return_tos = st.lists(st.sampled_from(RETURN_TO_PIECES), min_size=1, max_size=7).map("".join)


@SERVER_SETTINGS
@given(template=return_tos)
async def test_return_to_never_yields_another_origin(guarded: Stack, template: str) -> None:
    ours = guarded.origin
    value = quote(template.replace("{host}", ours.split("://", 1)[1]), safe="")
    for endpoint in ("/_auth/logout", "/_auth/refresh"):
        response = await raw_request(
            guarded.client.port or 0,
            get(f"{endpoint}?return_to={value}", host=ours.split("://", 1)[1]),
        )
        assert response.status == 303
        locations = [v for k, v in response.headers if k.lower() == "location"]
        assert len(locations) == 1
        target = resolve(ours + endpoint, locations[0])
        if origin(target) != ours:
            assert origin(target) == origin(guarded.config.ory.browser_base)
            back = query_value(target, "return_to")
            assert back is not None
            target = resolve(ours + "/", back)
        assert origin(target) == ours, (template, locations[0])


def spellings(word: str) -> st.SearchStrategy[str]:
    """Any case per letter, `-` or `_` per separator."""
    parts = word.split("-")
    letters = st.tuples(*(st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in part))
                          for part in parts))
    separators = st.lists(st.sampled_from("-_"), min_size=len(parts) - 1,
                          max_size=len(parts) - 1)
    return st.tuples(letters, separators).map(
        lambda ls: "".join(
            "".join(piece) + sep
            for piece, sep in itertools.zip_longest(ls[0], ls[1], fillvalue="")
        )
    )


@SERVER_SETTINGS
@given(
    name=st.one_of(spellings("X-User-Id"), spellings("X-User-Email")),
    path=st.sampled_from(["/public/x", "/maybe/x", "/admin/x"]),
    with_session=st.booleans(),
)
async def test_every_spelling_of_an_identity_header_is_stripped(
    guarded: Stack, name: str, path: str, with_session: bool
) -> None:
    identity = guarded.ory.add_identity("real@example.com", password="pw")
    session = guarded.ory.create_session(identity)
    lines = [f"{name}: spoofed", f"{name}: spoofed-again"]
    if with_session:
        lines.append(f"X-Session-Token: {session.token}")
    response = await send(guarded, path, *lines)
    if path == "/admin/x" and not with_session:
        assert (response.status, guarded.upstream.seen) == (401, [])
        return
    assert response.status == 200
    assert not [v for _, v in guarded.upstream.last().headers if v.startswith("spoofed")]
