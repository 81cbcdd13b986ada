"""One canonical path; identity and forwarding headers (docs/reference.md#canonical-path,
#identity-header-stripping, #headers-toward-the-upstream)."""

from __future__ import annotations

import pytest

from tests.conftest import Stack, StackFactory
from tests.rawhttp import get, raw_request

API = "Accept: application/json"

# (target, why it is dangerous) - each must never reach the upstream as /internal or
# as an authenticated path without a session.
CONFUSING_TARGETS = [
    pytest.param("/public/../internal/x", id="dot-dot"),
    pytest.param("/public/%2e%2e/internal/x", id="encoded-dot-dot"),
    pytest.param("/public/%2E%2E/internal/x", id="encoded-dot-dot-upper"),
    pytest.param("/public%2f..%2finternal/x", id="encoded-slash"),
    pytest.param("/public/..%2finternal/x", id="dot-dot-encoded-slash"),
    pytest.param("/public/..\\internal/x", id="backslash"),
    pytest.param("/public/%5c../internal/x", id="encoded-backslash"),
    pytest.param("/public/..;/internal/x", id="tomcat-path-param"),
    pytest.param("/internal;x=1", id="semicolon-param"),
    pytest.param("/public/%00/../internal", id="nul"),
    pytest.param("/public/%zz", id="bad-escape"),
    pytest.param("/public/secret%23/x", id="encoded-hash"),
    pytest.param("/public/a%3f/x", id="encoded-question"),
    pytest.param("/public/./x", id="single-dot"),
    pytest.param("/public/%252e%252e/internal", id="double-encoding"),
]


@pytest.mark.parametrize("target", CONFUSING_TARGETS)
async def test_ambiguous_path_is_refused_with_400(stack: Stack, target: str) -> None:
    response = await raw_request(stack.client.port or 0, get(target, API))
    assert response.status == 400
    assert stack.upstream.seen == []


async def test_double_slash_is_normalised_before_matching(stack: Stack) -> None:
    response = await raw_request(stack.client.port or 0, get("//internal/x", API))
    assert response.status == 403  # matched the deny route, not the default
    assert stack.upstream.seen == []


async def test_encoded_unreserved_char_matches_its_decoded_route(stack: Stack) -> None:
    response = await raw_request(stack.client.port or 0, get("/%69nternal/x", API))
    assert response.status == 403


async def test_forwarded_path_is_exactly_the_matched_path(stack: Stack) -> None:
    response = await raw_request(stack.client.port or 0, get("//public//%61%c3%a9?q=%2e%2e", API))
    assert response.status == 200
    assert stack.upstream.last().raw_path == "/public/a%C3%A9?q=%2e%2e"


async def test_query_never_takes_part_in_matching(stack: Stack) -> None:
    response = await raw_request(stack.client.port or 0, get("/secret?path=/public/x", API))
    assert response.status == 401
    assert stack.upstream.seen == []


async def test_fragment_in_target_is_refused(stack: Stack) -> None:
    response = await raw_request(stack.client.port or 0, get("/public/x#frag", API))
    assert response.status == 400


SPOOFS = [
    pytest.param("X-User-Id", id="canonical"),
    pytest.param("x-user-id", id="lower"),
    pytest.param("X-USER-ID", id="upper"),
    pytest.param("X_User_Id", id="underscores"),
    pytest.param("X-User_Id", id="mixed"),
    pytest.param("x_user_email", id="email-underscore"),
]


@pytest.mark.parametrize("path", ["/public/x", "/maybe/x", "/app"])
@pytest.mark.parametrize("name", SPOOFS)
async def test_spoofed_identity_header_is_stripped(stack: Stack, name: str, path: str) -> None:
    cookie, _ = stack.login("real@example.com")
    head = get(path, f"{name}: attacker", f"{name}: attacker2",
               f"Cookie: ory_kratos_session={cookie}")
    response = await raw_request(stack.client.port or 0, head)
    assert response.status == 200
    values = [v for _, v in stack.upstream.last().headers]
    assert "attacker" not in values
    assert "attacker2" not in values


async def test_missing_session_field_means_absent_header_not_client_value(
    stack: Stack,
) -> None:
    identity = stack.ory.add_identity("x@example.com", password="pw", traits={"name": "No Email"})
    session = stack.ory.create_session(identity)
    response = await stack.client.get(
        "/app", headers={**stack.cookie(session.cookie_value), "X-User-Email": "forged@evil"}
    )
    assert response.status == 200
    assert stack.upstream.header("X-User-Email") == []
    assert stack.upstream.header("X-User-Id") == [identity]


async def test_non_ascii_identity_value_is_percent_encoded(stack: Stack) -> None:
    cookie, _ = stack.login("zoë@exämple.com")
    await stack.client.get("/app", headers=stack.cookie(cookie))
    assert stack.upstream.header("X-User-Email") == ["zo%C3%AB@ex%C3%A4mple.com"]


async def test_session_cookie_removed_other_cookies_kept(stack: Stack) -> None:
    cookie, _ = stack.login()
    await stack.client.get("/app", headers={"Cookie": f"a=1; ory_kratos_session={cookie}; b=2"})
    assert stack.upstream.header("Cookie") == ["a=1; b=2"]


async def test_session_cookie_removed_on_public_route(stack: Stack) -> None:
    await stack.client.get("/public/x", headers={"Cookie": "ory_kratos_session=abc",
                                                  "X-Session-Token": "ory_st_x"})
    assert stack.upstream.header("Cookie") == []
    assert stack.upstream.header("X-Session-Token") == []


async def test_untrusted_forwarded_headers_are_replaced(stack: Stack) -> None:
    head = get(
        "/public/x", "X-Forwarded-For: 6.6.6.6", "X-Forwarded-Host: evil.example",
        "X_Forwarded_Proto: https", "X-Forwarded-Proto: https", "Forwarded: for=6.6.6.6",
        "X-Original-URL: /internal", "X-Rewrite-URL: /internal", "X-Forwarded-Uri: /internal",
        "X-Forwarded-Prefix: /internal", "X-Real-IP: 6.6.6.6", host="gw.example:8080",
    )
    response = await raw_request(stack.client.port or 0, head)
    assert response.status == 200
    assert stack.upstream.header("X-Forwarded-For") == ["127.0.0.1"]
    assert stack.upstream.header("X-Forwarded-Host") == ["gw.example:8080"]
    assert stack.upstream.header("X-Forwarded-Proto") == ["http"]
    names = {k.lower() for k, _ in stack.upstream.last().headers}
    for dropped in ("x_forwarded_proto", "forwarded", "x-original-url", "x-rewrite-url",
                    "x-forwarded-uri", "x-forwarded-prefix", "x-real-ip"):
        assert dropped not in names


async def test_trusted_proxy_forwarded_headers_are_extended(make_stack: StackFactory) -> None:
    stack = await make_stack(server='trusted_proxies = ["127.0.0.0/8"]')
    head = get("/public/x", "X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https",
               "X-Forwarded-Host: app.example.com", "X-Original-URL: /kept")
    await raw_request(stack.client.port or 0, head)
    assert stack.upstream.header("X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]
    assert stack.upstream.header("X-Forwarded-Proto") == ["https"]
    assert stack.upstream.header("X-Forwarded-Host") == ["app.example.com"]
    assert stack.upstream.header("X-Original-URL") == ["/kept"]


async def test_hop_by_hop_headers_are_dropped(stack: Stack) -> None:
    head = get("/public/x", "Connection: close, X-Secret-Hop", "X-Secret-Hop: 1", "TE: trailers",
               "Keep-Alive: timeout=5", "Proxy-Authorization: Basic eA==")
    await raw_request(stack.client.port or 0, head)
    names = {k.lower() for k, _ in stack.upstream.last().headers}
    assert not names & {"x-secret-hop", "te", "keep-alive", "proxy-authorization"}


async def test_host_is_upstreams_unless_preserved(make_stack: StackFactory) -> None:
    plain = await make_stack()
    await raw_request(plain.client.port or 0, get("/public/x", host="gw.example"))
    assert plain.upstream.header("Host") != ["gw.example"]
    kept = await make_stack(upstream="preserve_host = true")
    await raw_request(kept.client.port or 0, get("/public/x", host="gw.example"))
    assert kept.upstream.header("Host") == ["gw.example"]


async def test_no_extra_headers_are_invented(stack: Stack) -> None:
    await raw_request(stack.client.port or 0, get("/public/x"))
    names = {k.lower() for k, _ in stack.upstream.last().headers}
    assert "user-agent" not in names
    assert "accept-encoding" not in names
    assert "accept" not in names


async def test_upload_without_content_type_is_not_given_one(stack: Stack) -> None:
    head = (b"POST /public/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Length: 5\r\n\r\nhello")
    response = await raw_request(stack.client.port or 0, head)
    assert response.status == 200
    names = {k.lower() for k, _ in stack.upstream.last().headers}
    assert "content-type" not in names
    assert stack.upstream.last().body_size == 5


async def test_utf8_header_value_reaches_upstream_byte_for_byte(stack: Stack) -> None:
    head = get("/public/x", API).replace(b"\r\n\r\n", b"\r\nX-Name: caf\xc3\xa9\r\n\r\n")
    response = await raw_request(stack.client.port or 0, head)
    assert response.status == 200
    assert stack.upstream.header("X-Name") == ["café"]


async def test_header_value_that_is_not_utf8_is_refused_not_altered(stack: Stack) -> None:
    """aiohttp's client would drop the byte and forward "caf": a value the client never sent."""
    head = get("/public/x", API).replace(b"\r\n\r\n", b"\r\nX-Name: caf\xe9\r\n\r\n")
    response = await raw_request(stack.client.port or 0, head)
    assert response.status == 400
    assert b"X-Name header is not valid UTF-8" in response.body
    assert stack.upstream.seen == []


@pytest.mark.parametrize(
    ("target", "header", "status"),
    [
        pytest.param("/public/x", b"Cookie: ory_kratos_session=caf\xe9", 400, id="session-cookie"),
        pytest.param("/public/x", b"Cookie: theme=caf\xe9", 400, id="other-cookie"),
        pytest.param("/public/x", b"X-Session-Token: caf\xe9", 400, id="token"),
        pytest.param("/_auth/whoami", b"Cookie: ory_kratos_session=caf\xe9", 401, id="whoami"),
    ],
)
async def test_credential_or_cookie_that_is_not_utf8_gets_a_4xx_never_a_500(
    stack: Stack, target: str, header: bytes, status: int
) -> None:
    head = get(target, API).replace(b"\r\n\r\n", b"\r\n" + header + b"\r\n\r\n")
    response = await raw_request(stack.client.port or 0, head)
    assert response.status == status
    assert stack.upstream.seen == []
