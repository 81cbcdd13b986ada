"""Class FRAMING: requests two HTTP parsers could split differently (smuggling, desync), and
oversized or malformed ones (RFC 9112 §6, §7; the parser behind the gateway is aiohttp's).

Each case is sent byte for byte. A refused case gets a 4xx, never reaches the upstream, and
the gateway answers a normal request afterwards. Several carry a smuggled `GET /admin/x`
in what one parser would call the body and another the next request.
"""

from __future__ import annotations

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.conftest import Stack
from tests.rawhttp import get, raw_request
from tests.security.conftest import ROUTES_UNDER_ATTACK
from tests.security.process_stack import gateway_process
from tests.upstream_app import UpstreamState, build_upstream

HOST = "Host: 127.0.0.1\r\n"
CLOSE = "Connection: close\r\n"
SMUGGLED = "GET /admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def post(*headers: str, body: str = "") -> bytes:
    return ("POST /public/x HTTP/1.1\r\n" + HOST + "".join(headers) + CLOSE + "\r\n"
            + body).encode("latin-1")


def chunked(body: str) -> bytes:
    return post("Transfer-Encoding: chunked\r\n", body=body)


REFUSED = [
    pytest.param(post("Content-Length: 4\r\n", "Transfer-Encoding: chunked\r\n",
                      body="0\r\n\r\n" + SMUGGLED), id="content-length-with-chunked"),
    pytest.param(post("Transfer-Encoding: chunked\r\n", "Content-Length: 4\r\n",
                      body="0\r\n\r\n" + SMUGGLED), id="chunked-with-content-length"),
    pytest.param(post("Content-Length: 4\r\n", "Content-Length: 60\r\n", body="abcd" + SMUGGLED),
                 id="two-different-content-lengths"),
    pytest.param(post("Content-Length: 4\r\n", "Content-Length: 4\r\n", body="abcd"),
                 id="two-equal-content-lengths"),
    pytest.param(post("Content-Length: 4, 4\r\n", body="abcd"), id="content-length-list"),
    pytest.param(post("Content-Length: +4\r\n", body="abcd"), id="content-length-plus-sign"),
    pytest.param(post("Content-Length: 0x4\r\n", body="abcd"), id="content-length-hex"),
    pytest.param(post("Content-Length: -1\r\n", body="abcd"), id="content-length-negative"),
    pytest.param(post("Transfer-Encoding:\r\n chunked\r\n", body="0\r\n\r\n" + SMUGGLED),
                 id="obs-folded-transfer-encoding"),
    pytest.param(post("X-Pad: a\r\n Transfer-Encoding: chunked\r\n", body="0\r\n\r\n"),
                 id="obs-fold-hiding-transfer-encoding"),
    pytest.param(post("Transfer-Encoding : chunked\r\n", body="0\r\n\r\n"),
                 id="space-before-colon"),
    pytest.param(post("Transfer-Encoding: xchunked\r\n", body="0\r\n\r\n"),
                 id="unknown-transfer-coding"),
    pytest.param(post("Transfer-Encoding: chunked, identity\r\n", body="0\r\n\r\n"),
                 id="chunked-not-last"),
    pytest.param(post("Transfer-Encoding: \x0bchunked\r\n", body="0\r\n\r\n"),
                 id="vertical-tab-in-transfer-encoding"),
    pytest.param(b"GET /public/x HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n",
                 id="bare-lf-request"),
    pytest.param(b"GET /public/x HTTP/1.1\r\nHost: 127.0.0.1\nConnection: close\r\n\r\n",
                 id="one-bare-lf-line"),
    pytest.param(b"GET /public/x HTTP/1.1\r\nHost: 127.0.0.1\rX: y\r\nConnection: close\r\n\r\n",
                 id="bare-cr"),
    pytest.param(chunked("2;a\nxx\r\n0\r\n\r\n"), id="chunk-extension-bare-lf"),
    pytest.param(chunked('2;a="\r\nxx"\r\nxx\r\n0\r\n\r\n'), id="chunk-extension-quoted-crlf"),
    pytest.param(chunked("2;\x00\r\nxx\r\n0\r\n\r\n"), id="chunk-extension-nul"),
    pytest.param(chunked("0x2\r\nxx\r\n0\r\n\r\n"), id="chunk-size-hex-prefix"),
    pytest.param(chunked("2 \r\nxx\r\n0\r\n\r\n"), id="chunk-size-trailing-space"),
    pytest.param(chunked("-2\r\nxx\r\n0\r\n\r\n"), id="chunk-size-negative"),
    pytest.param(chunked("1" + "0" * 17 + "\r\nxx\r\n0\r\n\r\n"), id="chunk-size-overflow"),
    pytest.param(chunked("2\r\nxxyy0\r\n\r\n"), id="chunk-data-longer-than-size"),
    pytest.param(chunked("2\r\nxx\n0\r\n\r\n"), id="chunk-data-bare-lf"),
    pytest.param(chunked("2\r\nxx\r\n0\r\nContent-Length: 60\r\n\r\n" + SMUGGLED),
                 id="trailer-content-length"),
    pytest.param(chunked("2\r\nxx\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
                 id="trailer-transfer-encoding"),
    pytest.param(chunked("2\r\nxx\r\n0\r\nX: a\r\n b\r\n\r\n"), id="trailer-obs-fold"),
    pytest.param(get("/public/x", "X-Big: " + "a" * 9000), id="header-9k"),
    pytest.param(get("/public/x", "Cookie: c=" + "a" * 17000), id="cookie-17k"),
    pytest.param(get("/public/" + "a" * 9000), id="request-line-9k"),
    pytest.param(get("/public/%zz"), id="invalid-escape"),
    pytest.param(get("/public/%2"), id="truncated-escape"),
    pytest.param(get("/public/%"), id="lone-percent"),
    pytest.param(b"GET /public/\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 id="raw-utf8-in-target"),
    pytest.param(b"GET /public/\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 id="raw-0xff-in-target"),
    pytest.param(b"GET /public/x?q=\x80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 id="raw-0x80-in-query"),
    pytest.param(get("/public/x", "X-A: a\x00b"), id="nul-in-header-value"),
    pytest.param(get("/public/x", "X-User-Id : spoof"), id="space-before-colon-identity"),
    pytest.param(b"GET /public/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n"
                 b"Connection: close\r\n\r\n", id="two-host-headers"),
    pytest.param(b"GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n", id="no-host"),
    pytest.param(b"GET /public/x HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n",
                 id="unknown-http-version"),
    pytest.param(b"get /public/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 id="lower-case-method"),
    pytest.param(b"GET http://127.0.0.1/admin/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 id="absolute-form-target"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", id="http2-preface"),
]


async def assert_still_serving(stack: Stack) -> None:
    response = await raw_request(stack.client.port or 0, get("/public/after"))
    assert response.status == 200
    assert stack.upstream.last().raw_path == "/public/after"


@pytest.mark.parametrize("request_bytes", REFUSED)
async def test_malformed_framing_is_refused_and_never_forwarded(
    guarded: Stack, request_bytes: bytes
) -> None:
    response = await raw_request(guarded.client.port or 0, request_bytes)
    assert 400 <= response.status < 500
    assert guarded.upstream.seen == []
    await assert_still_serving(guarded)


async def test_gateway_process_survives_the_whole_corpus(aiohttp_server: AiohttpServer) -> None:
    """The same bytes against `gateway serve` itself: every one refused, the process alive."""
    state = UpstreamState()
    upstream: web.Application = build_upstream(state)
    async with gateway_process(aiohttp_server, upstream, routes=ROUTES_UNDER_ATTACK) as stack:
        for case in REFUSED:
            (request_bytes,) = case.values
            assert isinstance(request_bytes, bytes)
            response = await raw_request(stack.gateway.port, request_bytes)
            assert 400 <= response.status < 500, case.id
        assert stack.gateway.running
        after = await raw_request(stack.gateway.port, get("/public/after"))
        assert after.status == 200
    assert [s.raw_path for s in state.seen] == ["/public/after"]


async def test_trailer_cannot_add_an_identity_header(guarded: Stack) -> None:
    body = "2\r\nxx\r\n0\r\nX-User-Id: spoof\r\nX-User-Email: spoof@evil.example\r\n\r\n"
    response = await raw_request(guarded.client.port or 0, chunked(body))
    assert response.status == 200
    seen = guarded.upstream.last()
    assert seen.body_size == 2
    assert not [v for _, v in seen.headers if "spoof" in v]


async def test_valid_chunk_extension_is_accepted_and_body_kept(guarded: Stack) -> None:
    response = await raw_request(guarded.client.port or 0, chunked("2;a=b\r\nxx\r\n0\r\n\r\n"))
    assert response.status == 200
    assert guarded.upstream.last().body_size == 2


@pytest.mark.parametrize("one_header", [True, False], ids=["one-cookie-header", "100-lines"])
async def test_hundred_cookies_are_served_without_leaking_the_session(
    guarded: Stack, one_header: bool
) -> None:
    """Not refused: 100 small cookies are ordinary. The session cookie still never leaks."""
    cookie, _ = guarded.login("many@example.com")
    pairs = [f"c{n}=v{n}" for n in range(99)]
    pairs.insert(50, f"ory_kratos_session={cookie}")
    lines = ["Cookie: " + "; ".join(pairs)] if one_header else [f"Cookie: {p}" for p in pairs]
    response = await raw_request(guarded.client.port or 0, get("/maybe/x", *lines))
    assert response.status == 200
    forwarded = guarded.upstream.header("Cookie")
    assert forwarded == ["; ".join(p for p in pairs if not p.startswith("ory_kratos_session"))]
    assert guarded.upstream.header("X-User-Email") == ["many@example.com"]
    await assert_still_serving(guarded)


# RFC 9112 §6.1: a front proxy that ignores TE on HTTP/1.0 sees the chunks as the next
# request, so the framing must be treated as faulty.
async def test_http10_with_transfer_encoding_is_refused(guarded: Stack) -> None:
    # keep-alive asked for: raw_request reads to EOF, so it returns only if the gateway closes.
    request_bytes = (b"POST /public/x HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    response = await raw_request(guarded.client.port or 0, request_bytes)
    assert 400 <= response.status < 500
    assert guarded.upstream.seen == []
