"""Header rules toward the upstream and back (docs/reference.md#headers-toward-the-upstream)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.headers import (
    ForwardingPeer,
    build_upstream_headers,
    encode_value,
    normalise_name,
    response_headers,
)

IDENTITY = frozenset({"x-user-id", "x-user-email"})
UNTRUSTED = ForwardingPeer(remote_ip="203.0.113.9", scheme="http", host="gw.example", trusted=False)
TRUSTED = ForwardingPeer(remote_ip="10.0.0.2", scheme="http", host="gw.internal", trusted=True)


def incoming(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def build(
    headers: CIMultiDictProxy[str],
    *,
    identity: Iterable[tuple[str, str]] = (),
    peer: ForwardingPeer = UNTRUSTED,
    cookie_header: str | None = None,
    drop_authorization: bool = False,
    preserve_host: bool = False,
) -> CIMultiDict[str]:
    return build_upstream_headers(
        headers,
        strip=IDENTITY,
        identity=identity,
        peer=peer,
        cookie_header=cookie_header,
        drop_authorization=drop_authorization,
        preserve_host=preserve_host,
    )


def normalised_names(headers: CIMultiDict[str]) -> list[str]:
    return [normalise_name(name) for name in headers]


@pytest.mark.parametrize(
    "name",
    ["X-User-Id", "x-user-id", "X_User_Id", "x_user_id", "X-USER-ID", "X_USER-id", "x-User_ID"],
)
def test_every_spelling_normalises_to_one_name(name: str) -> None:
    assert normalise_name(name) == "x-user-id"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain ascii value", "plain ascii value"),
        ("", ""),
        ("a=b; c,d \"q\" <>", "a=b; c,d \"q\" <>"),
        ("J\u00fcrgen", "J%C3%BCrgen"),
        ("\u65e5\u672c", "%E6%97%A5%E6%9C%AC"),
        ("a\r\nX-Admin: 1", "a%0D%0AX-Admin: 1"),
        ("a\nb", "a%0Ab"),
        ("a\rb", "a%0Db"),
        ("a\x00b", "a%00b"),
        ("tab\there", "tab%09here"),
        ("del\x7f", "del%7F"),
        ("100%", "100%25"),
        ("%41", "%2541"),
        ("caf\u00e9 100%", "caf%C3%A9 100%25"),
        (" admin ", "%20admin%20"),
        ("  a b", "%20%20a b"),
        (" ", "%20"),
    ],
    ids=[
        "ascii", "empty", "punctuation", "latin", "cjk", "crlf-injection", "lf", "cr", "nul",
        "tab", "del", "percent", "escape-looking", "mixed", "spaces-around", "leading-spaces",
        "only-a-space",
    ],
)
def test_encode_value_is_header_safe(value: str, expected: str) -> None:
    assert encode_value(value) == expected


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_encode_value_is_reversible_and_never_carries_control_chars(value: str) -> None:
    encoded = encode_value(value)

    assert all(0x20 <= ord(char) < 0x7F for char in encoded)
    assert "\r" not in encoded
    assert "\n" not in encoded
    assert unquote(encoded) == value
    assert encoded == encoded.strip(" \t")  # what an app's parser strips is never there


def test_identity_header_spellings_are_stripped_including_duplicates() -> None:
    headers = incoming(
        ("X-User-Id", "spoof-1"),
        ("x-user-id", "spoof-2"),
        ("X_User_Id", "spoof-3"),
        ("x_USER_id", "spoof-4"),
        ("X-User-Email", "evil@example.com"),
        ("X_User_Email", "evil@example.com"),
        ("X-Other", "kept"),
    )

    out = build(headers)

    assert not IDENTITY & set(normalised_names(out))
    assert out.getall("X-Other") == ["kept"]


def test_identity_headers_are_injected_after_stripping() -> None:
    headers = incoming(("X-User-Id", "spoof"), ("x_user_id", "spoof"))

    out = build(headers, identity=[("X-User-Id", "real-id")])

    assert [(name, value) for name, value in out.items() if normalise_name(name) == "x-user-id"] \
        == [("X-User-Id", "real-id")]


def test_missing_session_field_leaves_no_client_value() -> None:
    headers = incoming(("X-User-Email", "spoof@example.com"))

    out = build(headers, identity=[("X-User-Id", "real-id")])

    assert "x-user-email" not in normalised_names(out)


@pytest.mark.parametrize(
    "name",
    [
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Trailers", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "transfer_encoding",
    ],
)
def test_hop_by_hop_header_is_dropped(name: str) -> None:
    out = build(incoming((name, "x"), ("Accept", "*/*")))

    assert normalise_name(name) not in normalised_names(out)
    assert out["Accept"] == "*/*"


def test_connection_listed_headers_are_dropped_in_every_spelling() -> None:
    headers = incoming(
        ("Connection", "X-Debug, x_trace"),
        ("Connection", "keep-alive"),
        ("X-Debug", "1"),
        ("X_Debug", "1"),
        ("X-Trace", "1"),
        ("X-Kept", "1"),
    )

    out = build(headers)

    assert normalised_names(out).count("x-debug") == 0
    assert normalised_names(out).count("x-trace") == 0
    assert out["X-Kept"] == "1"


PATH_OVERRIDES = [
    "X-Original-URL", "X-Rewrite-URL", "X-Forwarded-Uri", "X-Forwarded-Prefix",
    "X-Original-Uri", "X-Forwarded-Path",
]


@pytest.mark.parametrize("name", PATH_OVERRIDES)
def test_path_override_header_is_dropped_from_untrusted_peer(name: str) -> None:
    out = build(incoming((name, "/admin")), peer=UNTRUSTED)

    assert normalise_name(name) not in normalised_names(out)


@pytest.mark.parametrize("name", PATH_OVERRIDES)
def test_path_override_header_is_kept_from_trusted_peer(name: str) -> None:
    out = build(incoming((name, "/app")), peer=TRUSTED)

    assert out.getall(name) == ["/app"]


@pytest.mark.parametrize("peer", [UNTRUSTED, TRUSTED], ids=["untrusted", "trusted"])
@pytest.mark.parametrize("name", [name.replace("-", "_") for name in PATH_OVERRIDES])
def test_path_override_underscore_spelling_is_always_dropped(
    name: str, peer: ForwardingPeer
) -> None:
    out = build(incoming((name, "/admin")), peer=peer)

    assert normalise_name(name) not in normalised_names(out)


@pytest.mark.parametrize("name", ["Content_Length", "content_length", "Transfer_Encoding"])
def test_framing_header_in_underscore_spelling_is_never_forwarded(name: str) -> None:
    """An app that reads `Content_Length` as `Content-Length` would frame the body by a
    length the gateway never wrote (an outside tester saw it forwarded)."""
    out = build(incoming((name, "50"), ("Content-Length", "5")))

    assert name not in out
    assert out.getall("Content-Length") == ["5"]


def test_forwarded_headers_are_replaced_for_untrusted_peer() -> None:
    headers = incoming(
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X_Forwarded_For", "5.6.7.8"),
        ("X-Real-IP", "1.2.3.4"),
        ("Forwarded", "for=1.2.3.4"),
        ("X-Forwarded-Port", "443"),
    )

    out = build(headers, peer=UNTRUSTED)

    assert out.getall("X-Forwarded-For") == ["203.0.113.9"]
    assert out.getall("X-Forwarded-Proto") == ["http"]
    assert out.getall("X-Forwarded-Host") == ["gw.example"]
    assert {"x-real-ip", "forwarded", "x-forwarded-port"}.isdisjoint(normalised_names(out))
    assert normalised_names(out).count("x-forwarded-for") == 1


def test_forwarded_headers_are_extended_for_trusted_peer() -> None:
    headers = incoming(
        ("X-Forwarded-For", "1.2.3.4, 10.0.0.1"),
        ("X-Forwarded-For", "10.0.0.5"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "app.example.com"),
    )

    out = build(headers, peer=TRUSTED)

    assert out.getall("X-Forwarded-For") == ["1.2.3.4, 10.0.0.1, 10.0.0.5, 10.0.0.2"]
    assert out.getall("X-Forwarded-Proto") == ["https"]
    assert out.getall("X-Forwarded-Host") == ["app.example.com"]


def test_forwarded_headers_are_set_for_trusted_peer_without_any() -> None:
    out = build(incoming(), peer=TRUSTED)

    assert out["X-Forwarded-For"] == "10.0.0.2"
    assert out["X-Forwarded-Proto"] == "http"
    assert out["X-Forwarded-Host"] == "gw.internal"


def test_no_host_means_no_forwarded_host_rather_than_an_empty_one() -> None:
    hostless = ForwardingPeer(remote_ip="203.0.113.9", scheme="http", host="", trusted=False)

    out = build(incoming(("X-Forwarded-Host", "evil.example")), peer=hostless)

    assert "X-Forwarded-Host" not in out


@pytest.mark.parametrize(
    ("cookie_header", "expected"),
    [("a=1; b=2", ["a=1; b=2"]), (None, []), ("", [])],
    ids=["others-kept", "none-left", "empty"],
)
def test_cookie_header_is_replaced_by_the_filtered_one(
    cookie_header: str | None, expected: list[str]
) -> None:
    headers = incoming(
        ("Cookie", "a=1; ory_kratos_session=secret"), ("cookie", "b=2"), ("Cookie", "x=y")
    )

    out = build(headers, cookie_header=cookie_header)

    assert [value for name, value in out.items() if name.lower() == "cookie"] == expected


@pytest.mark.parametrize("name", ["X-Session-Token", "x_session_token"])
def test_session_token_header_is_always_dropped(name: str) -> None:
    out = build(incoming((name, "ory_st_secret")))

    assert "x-session-token" not in normalised_names(out)


@pytest.mark.parametrize(
    ("drop", "expected"),
    [(True, []), (False, ["Basic dXNlcjpwdw=="])],
    ids=["carried-credential", "app-own-authorization"],
)
def test_authorization_is_dropped_only_when_asked(drop: bool, expected: list[str]) -> None:
    out = build(incoming(("Authorization", "Basic dXNlcjpwdw==")), drop_authorization=drop)

    assert out.getall("Authorization", []) == expected


@pytest.mark.parametrize(
    ("preserve", "expected"), [(True, ["app.example.com"]), (False, [])], ids=["kept", "dropped"]
)
def test_host_header_follows_preserve_host(preserve: bool, expected: list[str]) -> None:
    out = build(incoming(("Host", "app.example.com")), preserve_host=preserve)

    assert out.getall("Host", []) == expected


def test_ordinary_headers_pass_unchanged_in_order() -> None:
    headers = incoming(
        ("Accept", "text/html"), ("X-Custom", "1"), ("X-Custom", "2"), ("Content-Type", "a/b")
    )

    out = build(headers)

    assert [(n, v) for n, v in out.items() if not n.lower().startswith("x-forwarded")] == [
        ("Accept", "text/html"), ("X-Custom", "1"), ("X-Custom", "2"), ("Content-Type", "a/b"),
    ]


def _spellings_of(name: str) -> st.SearchStrategy[str]:
    """Every mix of case and `_`/`-` for `name`."""
    choices = [
        st.sampled_from(["-", "_"]) if char == "-" else st.sampled_from([char.lower(),
                                                                          char.upper()])
        for char in name
    ]
    return st.tuples(*choices).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(_spellings_of("x-user-id"), min_size=1, max_size=4), st.booleans(),
       st.booleans())
def test_spoofed_identity_header_never_survives(
    names: list[str], trusted: bool, inject: bool
) -> None:
    headers = incoming(*[(name, "spoof") for name in names], ("Accept", "*/*"))
    identity = [("X-User-Id", "real")] if inject else []

    out = build(headers, identity=identity, peer=TRUSTED if trusted else UNTRUSTED)

    survivors = [value for name, value in out.items() if normalise_name(name) == "x-user-id"]
    assert survivors == (["real"] if inject else [])


def test_response_headers_keep_every_set_cookie() -> None:
    upstream = incoming(
        ("Set-Cookie", "a=1; Path=/"),
        ("Set-Cookie", "b=2; HttpOnly"),
        ("set-cookie", "c=3"),
        ("Content-Type", "text/html"),
    )

    out = response_headers(upstream)

    assert out.getall("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly", "c=3"]
    assert out["Content-Type"] == "text/html"


def test_response_headers_drop_hop_by_hop_and_connection_listed() -> None:
    upstream = incoming(
        ("Connection", "keep-alive, X-Internal"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "h2c"),
        ("Proxy-Authenticate", "Basic"),
        ("Trailer", "X-Checksum"),
        ("X-Internal", "secret"),
        ("ETag", '"abc"'),
    )

    out = response_headers(upstream)

    assert list(out.items()) == [("ETag", '"abc"')]


def test_response_headers_drop_connection_listed_underscore_spelling() -> None:
    upstream = incoming(("Connection", "X_Internal"), ("X_Internal", "secret"), ("ETag", "1"))

    out = response_headers(upstream)

    assert list(out.items()) == [("ETag", "1")]
