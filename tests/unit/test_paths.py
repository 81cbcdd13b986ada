"""The one canonical request path (docs/reference.md#canonical-path)."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import GatewayConfig
from gateway.errors import BadRequestError
from gateway.paths import RequestTarget, canonical_path, canonical_target
from gateway.routeconfig import RouteConfig
from gateway.routes import RouteTable

BAD_TARGETS = [
    ("/a/../admin", "dot-dot-segment"),
    ("/a/./admin", "dot-segment"),
    ("/..", "root-dot-dot"),
    ("/a/.", "trailing-dot"),
    ("/%2e%2e/admin", "encoded-dot-dot-lower"),
    ("/%2E/admin", "encoded-dot-upper"),
    ("/a/.%2e/admin", "half-encoded-dot-dot"),
    ("/admin%2fx", "encoded-slash-lower"),
    ("/admin%2F", "encoded-slash-upper"),
    ("/a%5cadmin", "encoded-backslash"),
    ("/a%23b", "encoded-hash"),
    ("/a%3fb", "encoded-question-mark"),
    ("/a%3Bb", "encoded-semicolon"),
    ("/a%252e%252e/admin", "double-encoded-dot"),
    ("/a%25", "encoded-percent"),
    ("/admin;jsessionid=1", "path-parameter"),
    ("/a;/admin", "bare-semicolon"),
    ("/a\\admin", "backslash"),
    ("/a\x00b", "nul"),
    ("/a%00b", "encoded-nul"),
    ("/a\tb", "tab"),
    ("/a\rb", "carriage-return"),
    ("/a%0Ab", "encoded-newline"),
    ("/a\x7fb", "del"),
    ("/a%7fb", "encoded-del"),
    ("/a b", "space"),
    ('/a"b', "double-quote"),
    ("/a<b>", "angle-brackets"),
    ("/a%zzb", "invalid-escape"),
    ("/a%2", "truncated-escape"),
    ("/a%", "lone-percent"),
    ("/a%%41", "percent-before-escape"),
    ("/caf\u00e9", "non-ascii"),
    ("/%c0%ae%c0%ae/admin", "overlong-utf8-dot"),
    ("/caf%e9", "latin1-escape"),
    ("/%c3", "truncated-utf8"),
    ("/%ed%a0%80", "utf8-surrogate"),
    ("/\uff0e\uff0e/admin", "fullwidth-dots"),
    ("/a#frag", "fragment"),
    ("/a?x=1#frag", "fragment-in-query"),
    ("/a?x= 1", "space-in-query"),
    ("/a?x=\u00e9", "non-ascii-in-query"),
    ("/a?x=\x00", "nul-in-query"),
    ("http://example.com/admin", "absolute-form"),
    ("*", "asterisk-form"),
    ("", "empty"),
    ("admin", "relative"),
]


@pytest.mark.parametrize(
    "raw", [raw for raw, _ in BAD_TARGETS], ids=[name for _, name in BAD_TARGETS]
)
def test_ambiguous_target_is_refused(raw: str) -> None:
    with pytest.raises(BadRequestError):
        canonical_target(raw)


@pytest.mark.parametrize(
    ("raw", "path", "query"),
    [
        ("/", "/", ""),
        ("/admin", "/admin", ""),
        ("/%61dmin", "/admin", ""),
        ("/%61%64%6D%69%6E", "/admin", ""),
        ("/%7Euser/%2D%5F", "/~user/-_", ""),
        ("/a//b", "/a/b", ""),
        ("//admin", "/admin", ""),
        ("/a///b//", "/a/b/", ""),
        ("/caf%c3%a9", "/caf%C3%A9", ""),
        ("/a%20b", "/a%20b", ""),
        ("/a%2cb%3A%40", "/a,b:@", ""),
        ("/%c3%a9%e2%82%ac", "/%C3%A9%E2%82%AC", ""),
        ("/.well-known/x", "/.well-known/x", ""),
        ("/a/..b/c.", "/a/..b/c.", ""),
        ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", ""),
        ("/search?q=%2F..%2F&x=/admin", "/search", "q=%2F..%2F&x=/admin"),
        ("/a?", "/a", ""),
        ("/a?x=1?y=2", "/a", "x=1?y=2"),
        ("/a?x=%zz;y", "/a", "x=%zz;y"),
    ],
    ids=[
        "root", "plain", "unreserved-decoded", "all-escaped-unreserved", "tilde-dash-underscore",
        "merge-slashes", "leading-double-slash", "many-slashes", "escape-upper-cased",
        "space-stays-encoded", "sub-delim-escapes-decoded", "utf8-escapes-kept", "dot-file",
        "dots-inside-names",
        "sub-delims", "query-passthrough", "empty-query", "question-in-query",
        "query-not-checked-for-escapes",
    ],
)
def test_good_target_is_canonicalised(raw: str, path: str, query: str) -> None:
    target = canonical_target(raw)

    assert target == RequestTarget(path, query)
    assert target.path_qs == (f"{path}?{query}" if query else path)


def test_scheme_relative_looking_target_becomes_a_local_path() -> None:
    assert canonical_target("//evil.example/admin").path == "/evil.example/admin"


def test_astral_character_in_query_is_refused() -> None:
    with pytest.raises(BadRequestError):
        canonical_target("/a?x=\U0001f600")


# Pieces from which hypothesis builds paths: plain names and harmless escapes (drawn more
# often), then dot segments in every spelling, ambiguous or invalid escapes and characters
# that must be refused.
_SAFE_PIECES = [
    "/", "/", "//", "a", "admin", "Admin", "x.y", "..b", ".c", "%61", "%64", "%6d", "%6D",
    "%69", "%6e", "%41", "%7e", "%20", "%c3%a9", "%2c", "~", "-", "_", "@", ":", "!", "*",
]
_RISKY_PIECES = [
    "/.", "/..", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%23", "%3f", "%3b", "%25",
    "%252e", "%zz", "%", "%0a", ";", "\\", "\x00", "\t", "\u00e9", "\uff0f",
]
_piece = st.sampled_from(_SAFE_PIECES * 4 + _RISKY_PIECES)
# Spellings of "/admin" (some refused, some equivalent, some merely similar), so that the
# deny-route property sees many paths that decode under the prefix.
_ADMIN_HEADS = [
    "/admin", "//admin", "/%61dmin", "/ad%6Din", "/%61%64%6d%69%6e", "/adm%69n", "/Admin",
    "/admin%2f", "/./admin", "/x/../admin", "/%2e/admin", "/admin%00", "/admin;", "/admin%20",
    "/admin.", "/admin%c3%a9", "/.%2e/admin", "/admin\\", "/admin%5c", "/admin/",
]
_tails = st.lists(_piece, max_size=10).map("".join)
admin_paths = st.tuples(
    st.sampled_from(_ADMIN_HEADS), st.sampled_from(["", "/", "//", "/%61"]), _tails
).map("".join)
paths = st.one_of(_tails.map(lambda tail: "/" + tail), admin_paths)


def _accepted(raw: str) -> str | None:
    try:
        return canonical_path(raw)
    except BadRequestError:
        return None


@settings(max_examples=200, deadline=None)
@given(paths)
def test_canonical_path_is_a_fixed_point(raw: str) -> None:
    path = _accepted(raw)
    if path is None:
        return
    assert canonical_path(path) == path


@settings(max_examples=200, deadline=None)
@given(paths)
def test_canonical_path_has_no_ambiguous_spelling(raw: str) -> None:
    path = _accepted(raw)
    if path is None:
        return
    segments = path.split("/")[1:]
    assert path.startswith("/")
    assert "." not in segments
    assert ".." not in segments
    assert "//" not in path
    assert ";" not in path
    assert "\\" not in path
    assert all(0x20 < ord(char) < 0x7F for char in path)
    decoded_segments = unquote(path).split("/")[1:]
    assert "." not in decoded_segments
    assert ".." not in decoded_segments


_DENY_ADMIN = RouteTable(
    GatewayConfig(routes=(RouteConfig(path="/admin/**", access="deny"),), default_access="public")
)


def _under_admin(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


@settings(max_examples=200, deadline=None)
@given(admin_paths, st.sampled_from(["GET", "HEAD", "POST", "DELETE"]))
def test_path_that_decodes_under_deny_prefix_is_denied(raw: str, method: str) -> None:
    path = _accepted(raw)
    if path is None or not _under_admin(unquote(path)):
        return
    assert _DENY_ADMIN.match(method, path).access == "deny"


@pytest.mark.parametrize(
    "raw",
    ["/admin", "/admin/", "/%61dmin/x", "//admin//x", "/ad%6Din", "/admin/%2e%2e/../x"],
    ids=["exact", "trailing-slash", "escaped-letter", "double-slashes", "escaped-m",
         "refused-dots"],
)
def test_admin_spelling_is_denied_or_refused(raw: str) -> None:
    path = _accepted(raw)

    assert path is None or _DENY_ADMIN.match("GET", path).access == "deny"
