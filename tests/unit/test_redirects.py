"""Safe `return_to`, login URLs and the redirect-loop guard (docs/reference.md#return_to)."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.redirects import LOOP_LIMIT, LOOP_WINDOW, LoopGuard, login_url, safe_return_to
from gateway.units import origin_of
from tests.unit.fakes import FakeClock

OURS = ("https://app.example.com", "http://127.0.0.1:4180")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://evil.example", None),
        ("https://evil.example/path", None),
        ("//evil.example", None),
        ("//evil.example/path", None),
        ("///evil.example", None),
        ("/\\evil.example", None),
        ("\\\\evil.example", None),
        ("/%09/evil.example", None),
        ("/./\\evil.example", None),
        ("/%2F%2Fevil.example", None),
        ("/%2f/evil.example", None),
        ("/%5Cevil.example", None),
        ("/%5c%5cevil.example", None),
        ("https://app.example.com@evil.example", None),
        ("https://app.example.com:443@evil.example/", None),
        ("https://user@app.example.com/", None),
        ("https://app.example.com.evil.example", None),
        ("https://app.example.com\\@evil.example", None),
        ("https://app.example.com//evil.example", None),
        ("https:evil.example", None),
        ("https:///evil.example", None),
        ("JaVaScRiPt:alert(1)", None),
        ("javascript://app.example.com/%0aalert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("\uff0f\uff0fevil.example", None),
        ("/\uff0f\uff0fevil.example", None),
        ("%0d%0aSet-Cookie:x=1", None),
        ("/%0d%0aSet-Cookie:x=1", None),
        ("/a\r\nSet-Cookie:x=1", None),
        ("/a b", None),
        ("/a\tb", None),
        ("/a%00b", None),
        ("/a%7fb", None),
        ("http://app.example.com/", None),
        ("https://app.example.com:8443/", None),
        ("http://127.0.0.1:9999/", None),
        ("https://app.example.com:99999/", None),
        ("evil.example", None),
        ("?next=/", None),
        ("", None),
        (None, None),
        ("/", "/"),
        ("/dashboard", "/dashboard"),
        ("/a/b?c=1&d=%2F#frag", "/a/b?c=1&d=%2F#frag"),
        ("/search?q=//evil.example", "/search?q=//evil.example"),
        ("/%252F%252Fevil.example", "/%252F%252Fevil.example"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("https://app.example.com", "/"),
        ("https://app.example.com/x?y=1#z", "/x?y=1#z"),
        ("HTTPS://APP.EXAMPLE.COM/Case/Kept", "/Case/Kept"),
        ("https://app.example.com:443/x", "/x"),
        ("http://127.0.0.1:4180/x?y", "/x?y"),
        ("HTTP://127.0.0.1:4180", "/"),
    ],
    ids=[
        "foreign-origin", "foreign-origin-path", "scheme-relative", "scheme-relative-path",
        "triple-slash", "slash-backslash", "double-backslash", "encoded-tab", "dot-backslash",
        "encoded-double-slash", "encoded-slash-lower", "encoded-backslash",
        "encoded-double-backslash", "our-host-as-userinfo", "our-host-port-as-userinfo",
        "userinfo-on-our-host", "our-host-as-subdomain", "backslash-userinfo",
        "our-origin-double-slash-path", "scheme-without-slashes", "empty-authority",
        "javascript-mixed-case", "javascript-with-our-host", "data-url", "fullwidth-slashes",
        "slash-fullwidth-slashes", "crlf-relative", "crlf-path", "raw-crlf", "space", "tab",
        "encoded-nul", "encoded-del", "wrong-scheme", "other-port", "other-port-ip",
        "bad-port", "no-slash", "query-only", "empty", "none", "root", "path",
        "path-query-fragment", "query-may-hold-anything", "double-encoded-stays-local",
        "non-ascii-escaped", "our-origin-bare", "our-origin-query-fragment",
        "case-insensitive-scheme-host", "default-port-elided", "second-origin",
        "second-origin-upper-scheme",
    ],
)
def test_safe_return_to(value: str | None, expected: str | None) -> None:
    assert safe_return_to(value, OURS) == expected


def _assert_stays_home(result: str | None) -> None:
    if result is None:
        return
    decoded = unquote(result)
    assert result.startswith("/")
    assert not result.startswith(("//", "/\\"))
    assert not decoded.startswith(("//", "/\\"))
    assert all(0x20 <= ord(char) != 0x7F for char in result)
    assert all(0x20 <= ord(char) != 0x7F for char in decoded)
    assert origin_of(urljoin("https://app.example.com/some/page", result)) == OURS[0]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_safe_return_to_of_any_text_stays_on_our_origin(value: str) -> None:
    _assert_stays_home(safe_return_to(value, OURS))


_URL_PIECES = [
    "/", "//", "\\", "%2F", "%2f", "%5C", "%09", "%0d%0a", "%00", "@", ":", ".", "..",
    "https:", "http:", "javascript:", "app.example.com", "evil.example", ":443", ":8443",
    "?", "#", "%25", "%252F", "\t", " ", "\uff0f", "\u3002", "a",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_URL_PIECES), max_size=10).map("".join))
def test_safe_return_to_of_url_like_text_stays_on_our_origin(value: str) -> None:
    _assert_stays_home(safe_return_to(value, OURS))


RETURN_TO = "https://app.example.com/a b?x=1&y=%2F#f"


@pytest.mark.parametrize(
    ("refresh", "aal", "query"),
    [
        (False, None, [("return_to", RETURN_TO)]),
        (True, None, [("refresh", "true"), ("return_to", RETURN_TO)]),
        (False, "aal2", [("aal", "aal2"), ("return_to", RETURN_TO)]),
        (True, "aal2", [("aal", "aal2"), ("refresh", "true"), ("return_to", RETURN_TO)]),
    ],
    ids=["plain", "refresh", "step-up", "step-up-and-refresh"],
)
def test_login_url_parameters_are_ordered_and_encoded(
    refresh: bool, aal: str | None, query: list[tuple[str, str]]
) -> None:
    url = login_url(
        "https://auth.example.com", "/self-service/login/browser",
        RETURN_TO, refresh=refresh, aal=aal,
    )

    parts = urlsplit(url)
    assert url.startswith("https://auth.example.com/self-service/login/browser?")
    assert parts.fragment == ""
    assert parse_qsl(parts.query) == query


def test_login_url_encodes_return_to_fully() -> None:
    url = login_url("http://ory", "/ui/login", "http://app/x?a=1&b=2", aal="aal2")

    assert url == "http://ory/ui/login?aal=aal2&return_to=http%3A%2F%2Fapp%2Fx%3Fa%3D1%26b%3D2"


def test_loop_guard_flags_the_redirect_after_the_limit() -> None:
    guard = LoopGuard(FakeClock())

    answers = [guard.check("browser-1", "peer", "https://app/x")[0] for _ in range(LOOP_LIMIT + 2)]

    assert answers == [False] * LOOP_LIMIT + [True, True]


@pytest.mark.parametrize(
    ("browser", "url"),
    [("browser-2", "https://app/x"), ("browser-1", "https://app/y")],
    ids=["other-browser", "other-url"],
)
def test_loop_guard_counts_per_browser_and_url(browser: str, url: str) -> None:
    guard = LoopGuard(FakeClock())
    for _ in range(LOOP_LIMIT):
        guard.check("browser-1", "peer", "https://app/x")

    assert guard.check(browser, "peer", url)[0] is False
    assert guard.check("browser-1", "peer", "https://app/x")[0] is True


def test_loop_guard_without_cookie_hands_out_one_and_uses_a_higher_peer_limit() -> None:
    guard = LoopGuard(FakeClock())
    results = [guard.check(None, "peer", "https://app/x") for _ in range(LOOP_LIMIT + 3)]

    assert all(cookie for _, cookie in results)
    assert len({cookie for _, cookie in results}) == len(results)
    assert [looping for looping, _ in results] == [False] * (LOOP_LIMIT + 2) + [True]


def test_loop_guard_counts_the_first_redirect_under_the_new_cookie() -> None:
    guard = LoopGuard(FakeClock())
    _, cookie = guard.check(None, "peer", "https://app/x")
    assert cookie is not None

    answers = [guard.check(cookie, "peer", "https://app/x")[0] for _ in range(LOOP_LIMIT)]

    assert answers == [False] * (LOOP_LIMIT - 1) + [True]


def test_loop_guard_forgets_after_window() -> None:
    clock = FakeClock()
    guard = LoopGuard(clock, limit=2, window=30.0)
    assert [guard.check("b", "p", "u")[0] for _ in range(2)] == [False, False]

    clock.advance(30.0)

    assert guard.check("b", "p", "u")[0] is False
    assert guard.check("b", "p", "u")[0] is False
    assert guard.check("b", "p", "u")[0] is True


def test_loop_guard_defaults() -> None:
    assert LOOP_LIMIT >= 2
    assert 0 < LOOP_WINDOW <= 300
