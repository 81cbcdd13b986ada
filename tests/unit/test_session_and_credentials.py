"""Ory session parsing (docs/reference.md#asking-ory) and credential sources
(docs/reference.md#credential)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.config import DEFAULT_IDENTITY_HEADERS, IdentityHeader
from gateway.credentials import (
    Credential,
    cookie_header_without,
    credential_key,
    extract_credential,
    mac_key,
)
from gateway.session import (
    Session,
    SessionInactiveError,
    SessionParseError,
    header_text,
    parse_session,
    parse_timestamp,
)
from tests.unit.fakes import load_example

COOKIE_EXAMPLE = "whoami-200-via-cookie.ory-docs.json"
TOKEN_EXAMPLE = "whoami-200-via-session-token.ory-docs.json"
LEGACY_EXAMPLE = "session-legacy-migrated-with-device.kratos-fixture.json"
BEFORE_2023_EXPIRY = datetime(2023, 2, 4, tzinfo=UTC).timestamp()
BEFORE_2013_EXPIRY = datetime(2013, 10, 1, tzinfo=UTC).timestamp()


def ts(year: int, month: int, day: int, hour: int, minute: int, second: int,
       micro: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("example", "session_id", "expires_at", "authenticated_at"),
    [
        (COOKIE_EXAMPLE, "0cd29640-3b64-419d-93b0-8c9e84c2090d",
         ts(2023, 2, 6, 15, 41, 22, 898169), ts(2023, 2, 3, 15, 41, 22, 963917)),
        (TOKEN_EXAMPLE, "c9d793e8-10e4-4189-8856-6fb9f9a36836",
         ts(2023, 2, 6, 15, 45, 7, 607381), ts(2023, 2, 3, 15, 45, 7, 607381)),
    ],
    ids=["cookie", "session-token"],
)
def test_whoami_example_is_parsed(
    example: str, session_id: str, expires_at: float, authenticated_at: float
) -> None:
    session = parse_session(load_example(example), DEFAULT_IDENTITY_HEADERS, BEFORE_2023_EXPIRY)

    assert session == Session(
        session_id=session_id,
        identity_id="c4d24c01-feba-4213-858b-262c8d427f8c",
        email="email@example.com",
        aal="aal1",
        authenticated_at=authenticated_at,
        expires_at=expires_at,
        headers=(
            ("X-User-Id", "c4d24c01-feba-4213-858b-262c8d427f8c"),
            ("X-User-Email", "email@example.com"),
        ),
    )
    assert session.is_valid_at(expires_at - 1)
    assert not session.is_valid_at(expires_at)


def test_whoami_example_after_expiry_is_inactive() -> None:
    after = ts(2023, 2, 6, 15, 41, 23)

    with pytest.raises(SessionInactiveError):
        parse_session(load_example(COOKIE_EXAMPLE), DEFAULT_IDENTITY_HEADERS, after)


def test_legacy_fixture_as_stored_is_inactive() -> None:
    with pytest.raises(SessionInactiveError):
        parse_session(load_example(LEGACY_EXAMPLE), DEFAULT_IDENTITY_HEADERS, BEFORE_2013_EXPIRY)


@pytest.mark.parametrize(
    ("aal", "expected"),
    [("aal2", "aal2"), ("", ""), (None, "")],
    ids=["as-stored", "legacy-empty", "null"],
)
def test_legacy_fixture_when_active_is_parsed(aal: str | None, expected: str) -> None:
    payload = load_example(LEGACY_EXAMPLE)
    payload["active"] = True
    payload["authenticator_assurance_level"] = aal

    session = parse_session(payload, DEFAULT_IDENTITY_HEADERS, BEFORE_2013_EXPIRY)

    assert session.session_id == "7458af86-c1d8-401c-978a-8da89133f98b"
    assert session.identity_id == "5ff66179-c240-4703-b0d8-494592cefff5"
    assert session.email == "bazbar@ory.sh"
    assert session.aal == expected
    assert session.expires_at == ts(2013, 10, 7, 8, 23, 19)


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    payload = load_example(COOKIE_EXAMPLE)
    target: Any = payload
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return payload


def _replaced(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    payload = load_example(COOKIE_EXAMPLE)
    target: Any = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        _without(("id",)),
        _replaced(("id",), ""),
        _replaced(("id",), 42),
        _without(("identity",)),
        _replaced(("identity",), None),
        _without(("identity", "id")),
        _replaced(("identity", "id"), ""),
        [],
        "session",
        None,
    ],
    ids=[
        "no-id", "empty-id", "numeric-id", "no-identity", "null-identity", "no-identity-id",
        "empty-identity-id", "list", "string", "null",
    ],
)
def test_unusable_payload_is_a_parse_error(payload: Any) -> None:
    with pytest.raises(SessionParseError) as caught:
        parse_session(payload, DEFAULT_IDENTITY_HEADERS, BEFORE_2023_EXPIRY)

    assert not isinstance(caught.value, SessionInactiveError)


@pytest.mark.parametrize(
    "payload",
    [_replaced(("active",), False), _without(("active",)), _replaced(("active",), "true")],
    ids=["inactive", "no-active-flag", "active-as-string"],
)
def test_not_active_payload_is_inactive(payload: Any) -> None:
    with pytest.raises(SessionInactiveError):
        parse_session(payload, DEFAULT_IDENTITY_HEADERS, BEFORE_2023_EXPIRY)


def test_payload_without_expiry_never_expires() -> None:
    session = parse_session(_without(("expires_at",)), DEFAULT_IDENTITY_HEADERS, 4e9)

    assert session.expires_at is None
    assert session.is_valid_at(1e12)


@pytest.mark.parametrize(
    ("traits", "path", "header"),
    [
        ({"email": "a@example.com"}, ("identity", "traits", "email"), "a@example.com"),
        ({}, ("identity", "traits", "email"), None),
        ({"email": None}, ("identity", "traits", "email"), None),
        ({"email": ""}, ("identity", "traits", "email"), None),
        ({"tos": True}, ("identity", "traits", "tos"), "true"),
        ({"tos": False}, ("identity", "traits", "tos"), "false"),
        ({"age": 42}, ("identity", "traits", "age"), "42"),
        ({"score": 1.5}, ("identity", "traits", "score"), "1.5"),
        ({"roles": ["admin", "ops"]}, ("identity", "traits", "roles"), "admin,ops"),
        ({"roles": []}, ("identity", "traits", "roles"), None),
        ({"name": {"last": "M\u00fcller", "first": "A"}}, ("identity", "traits", "name"),
         '{"first":"A","last":"M%C3%BCller"}'),
        ({"groups": [{"id": 1}]}, ("identity", "traits", "groups"), '[{"id":1}]'),
        ({"name": "J\u00fcrgen"}, ("identity", "traits", "name"), "J%C3%BCrgen"),
        ({"email": "a@x\r\nX-Admin: 1"}, ("identity", "traits", "email"),
         "a@x%0D%0AX-Admin: 1"),
        ({"email": "a@example.com"}, ("identity", "traits", "email", "deeper"), None),
        ({}, ("identity", "schema_id"), "default"),
        ({}, ("authenticator_assurance_level",), "aal1"),
    ],
    ids=[
        "string", "missing-trait", "null-trait", "empty-trait", "true", "false", "int", "float",
        "list", "empty-list", "dict", "list-of-dicts", "non-ascii", "crlf", "path-through-string",
        "identity-field", "session-field",
    ],
)
def test_identity_header_is_projected_from_session(
    traits: dict[str, Any], path: tuple[str, ...], header: str | None
) -> None:
    payload = _replaced(("identity", "traits"), traits)
    payload["identity"]["schema_id"] = "default"
    headers = (IdentityHeader("X-Value", path),)

    session = parse_session(payload, headers, BEFORE_2023_EXPIRY)

    assert session.headers == ((("X-Value", header),) if header is not None else ())


def test_list_of_booleans_is_written_like_a_boolean() -> None:
    assert header_text([True, False]) == "true,false"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-02-03T15:41:22.898346346Z", ts(2023, 2, 3, 15, 41, 22, 898346)),
        ("2023-02-06T15:41:22.898169Z", ts(2023, 2, 6, 15, 41, 22, 898169)),
        ("2013-10-07T08:23:19Z", ts(2013, 10, 7, 8, 23, 19)),
        ("2013-10-07T08:23:19.5Z", ts(2013, 10, 7, 8, 23, 19, 500000)),
        ("2013-10-07T10:23:19+02:00", ts(2013, 10, 7, 8, 23, 19)),
        ("2013-10-07T08:23:19.123456789+00:00", ts(2013, 10, 7, 8, 23, 19, 123456)),
        ("2013-10-07t08:23:19z", ts(2013, 10, 7, 8, 23, 19)),
        ("2013-10-07T08:23:19", None),
        ("2013-10-07T08:23:19.123", None),
        ("", None),
        ("yesterday", None),
        (None, None),
        (1_700_000_000, None),
    ],
    ids=[
        "nanoseconds", "microseconds", "no-fraction", "short-fraction", "offset",
        "nanoseconds-with-offset", "lower-case", "naive", "naive-fraction", "empty", "garbage",
        "null", "number",
    ],
)
def test_parse_timestamp(value: Any, expected: float | None) -> None:
    assert parse_timestamp(value) == expected


def headers_of(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


ALL_SOURCES = ("cookie", "session_token", "bearer")
COOKIE = "ory_kratos_session"


@pytest.mark.parametrize(
    ("pairs", "sources", "expected"),
    [
        ([("Cookie", "ory_kratos_session=c1")], ALL_SOURCES, ("cookie", "c1")),
        ([("Cookie", 'ory_kratos_session="c1"')], ALL_SOURCES, ("cookie", "c1")),
        ([("Cookie", "a=1; xory_kratos_session=x; ory_kratos_session=c2")], ALL_SOURCES,
         ("cookie", "c2")),
        ([("Cookie", "a=1"), ("Cookie", "ory_kratos_session=c3")], ALL_SOURCES,
         ("cookie", "c3")),
        ([("X-Session-Token", "t1")], ALL_SOURCES, ("session_token", "t1")),
        ([("X-Session-Token", "  t1  ")], ALL_SOURCES, ("session_token", "t1")),
        ([("Authorization", "Bearer b1")], ALL_SOURCES, ("bearer", "b1")),
        ([("Authorization", "bearer b1")], ALL_SOURCES, ("bearer", "b1")),
        ([("Authorization", "BEARER b1")], ALL_SOURCES, ("bearer", "b1")),
        ([("Cookie", "ory_kratos_session=c"), ("X-Session-Token", "t"),
          ("Authorization", "Bearer b")], ALL_SOURCES, ("cookie", "c")),
        ([("Cookie", "ory_kratos_session=c"), ("X-Session-Token", "t")],
         ("session_token", "cookie"), ("session_token", "t")),
        ([("Cookie", "ory_kratos_session=c"), ("Authorization", "Bearer b")],
         ("bearer", "cookie"), ("bearer", "b")),
        ([("X-Session-Token", "t"), ("Authorization", "Bearer b")],
         ("bearer", "session_token"), ("bearer", "b")),
        ([("Cookie", "ory_kratos_session="), ("X-Session-Token", "t")], ALL_SOURCES,
         ("session_token", "t")),
        ([("Cookie", 'ory_kratos_session=""'), ("X-Session-Token", "t")], ALL_SOURCES,
         ("session_token", "t")),
        ([("X-Session-Token", ""), ("Authorization", "Bearer b")], ALL_SOURCES, ("bearer", "b")),
        ([("X-Session-Token", "   ")], ALL_SOURCES, None),
        ([("Authorization", "Bearer b")], ("cookie", "session_token"), None),
        ([("X-Session-Token", "t")], ("cookie",), None),
        ([("Authorization", "Basic dXNlcjpwdw==")], ALL_SOURCES, None),
        ([("Authorization", "Bearer")], ALL_SOURCES, None),
        ([("Authorization", "Bearer ")], ALL_SOURCES, None),
        ([("Authorization", "Bearer a b")], ALL_SOURCES, None),
        ([("Authorization", "Bearerb1")], ALL_SOURCES, None),
        ([("Authorization", "")], ALL_SOURCES, None),
        ([("Cookie", "other=1; ory_kratos_session_x=2")], ALL_SOURCES, None),
        ([], ALL_SOURCES, None),
    ],
    ids=[
        "cookie", "quoted-cookie", "cookie-name-suffix-not-confused", "second-cookie-header",
        "session-token", "session-token-trimmed", "bearer", "bearer-lower", "bearer-upper",
        "cookie-first-by-default", "token-first-when-configured", "bearer-first-when-configured",
        "bearer-before-token-when-configured", "empty-cookie-skipped",
        "empty-quoted-cookie-skipped", "empty-token-skipped", "blank-token", "bearer-not-enabled",
        "token-not-enabled", "basic-scheme", "bearer-without-token", "bearer-empty-token",
        "bearer-three-parts", "bearer-no-space", "empty-authorization", "other-cookies-only",
        "nothing",
    ],
)
def test_extract_credential(
    pairs: list[tuple[str, str]], sources: tuple[str, ...], expected: tuple[str, str] | None
) -> None:
    credential = extract_credential(headers_of(*pairs), sources, COOKIE)

    if expected is None:
        assert credential is None
    else:
        assert credential is not None
        assert (credential.source, credential.value) == expected
        assert credential.key == credential_key(*expected)


@pytest.mark.parametrize(
    ("source", "from_header"),
    [("cookie", False), ("session_token", True), ("bearer", True)],
)
def test_only_cookie_credentials_may_be_redirected(source: str, from_header: bool) -> None:
    pairs = {
        "cookie": ("Cookie", "ory_kratos_session=v"),
        "session_token": ("X-Session-Token", "v"),
        "bearer": ("Authorization", "Bearer v"),
    }

    credential = extract_credential(headers_of(pairs[source]), (source,), COOKIE)

    assert credential is not None
    assert credential.from_header is from_header


def test_credential_key_is_a_keyed_hash_that_never_contains_the_value() -> None:
    secret = "ory_st_0123456789_abcdefghij_klmnopqrstuv"
    key = mac_key(b"server secret")
    credential = extract_credential(
        headers_of(("X-Session-Token", secret)), ALL_SOURCES, COOKIE, key=key
    )

    assert credential is not None
    assert credential.key == hashlib.blake2b(
        f"session_token\x00{secret}".encode(), key=key, digest_size=16
    ).digest()
    other = extract_credential(
        headers_of(("X-Session-Token", secret)), ALL_SOURCES, COOKIE, key=mac_key(b"other")
    )
    assert other is not None
    assert other.key != credential.key  # without the secret, nobody can recompute it
    assert secret.encode() not in credential.key
    assert secret not in credential.log_id
    assert credential.log_id == credential.key.hex()[:12]
    assert secret not in repr(credential)


def test_credential_key_differs_by_source() -> None:
    keys = {credential_key(source, "same-value") for source in ALL_SOURCES}

    assert len(keys) == 3
    assert credential_key("cookie", "a") == credential_key("cookie", "a")
    assert credential_key("cookie", "a") != credential_key("cookie", "b")


def test_credential_is_frozen() -> None:
    credential = Credential("cookie", "v", credential_key("cookie", "v"))

    with pytest.raises(AttributeError):
        credential.value = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("Cookie", "a=1; ory_kratos_session=s; b=2")], "a=1; b=2"),
        ([("Cookie", "ory_kratos_session=s")], None),
        ([("Cookie", "z=26; a=1")], "z=26; a=1"),
        ([("Cookie", "a=1"), ("Cookie", "ory_kratos_session=s; b=2"), ("Cookie", "c=3")],
         "a=1; b=2; c=3"),
        ([("Cookie", "ory_kratos_session=s; ory_kratos_session=t; x=1")], "x=1"),
        ([("Cookie", "xory_kratos_session=1; ory_kratos_session_2=2")],
         "xory_kratos_session=1; ory_kratos_session_2=2"),
        ([("Cookie", "a=1;b=2")], "a=1; b=2"),
        ([("Cookie", "a=x=y; b=")], "a=x=y; b="),
        ([], None),
    ],
    ids=[
        "middle-removed", "only-session", "order-kept", "several-headers", "duplicate-session",
        "similar-names-kept", "no-space-separator", "values-with-equals", "no-cookie",
    ],
)
def test_cookie_header_without_keeps_other_cookies_in_order(
    pairs: list[tuple[str, str]], expected: str | None
) -> None:
    assert cookie_header_without(headers_of(*pairs), COOKIE) == expected


def test_cookie_header_without_forwards_nameless_cookie_unaltered() -> None:
    pairs = headers_of(("Cookie", "flag; ory_kratos_session=s; a=1"))

    assert cookie_header_without(pairs, COOKIE) == "flag; a=1"
