"""Class ERRORS: every refusal is the JSON envelope (docs/reference.md#errors), and none
repeats a secret.

aiohttp's own parser answers a malformed request with a plain-text 400 that quotes the
offending bytes back: a `Cookie` line too long to parse comes back with the session value
in it (a reflected secret, readable by whatever script sent the request). Upstream answers
the gateway cannot repeat must become a 502 envelope, not a dropped connection; odd query
values must not turn into a 500.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from tests.security.raw_client import BROWSER, Answer, RawClient, cookie, exchange, request
from tests.security.scripted_upstream import OBS_TEXT, chunk, scripted_stack

CONTRACT_IDS = {
    "session_required", "session_aal2_required", "session_refresh_required", "access_denied",
    "bad_request", "ory_unavailable", "upstream_unavailable", "upstream_timeout",
}
SECRET = b"SESSION"  # stands for the session cookie's value in the table below
HOST = b"Host: 127.0.0.1\r\n"
COOKIE = b"Cookie: ory_kratos_session=SESSION\r\n"


def post(*lines: bytes, body: bytes = b"") -> bytes:
    return b"POST /public/echo HTTP/1.1\r\n" + HOST + COOKIE + b"".join(lines) + b"\r\n" + body


MALFORMED = [
    pytest.param(b"HELLO\r\n" + HOST + COOKIE + b"\r\n", id="garbage-request-line"),
    pytest.param(post(b"NoColonHere\r\n"), id="header-line-without-colon"),
    pytest.param(post(b"X-Note: a\x01b\r\n"), id="control-char-in-header-value"),
    pytest.param(post(b"X(Note): ab\r\n"), id="bad-char-in-header-name"),
    pytest.param(post(b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
                      body=b"0\r\n\r\n"), id="content-length-and-chunked"),
    pytest.param(post(b"Content-Length: 5\r\n", b"Content-Length: 6\r\n", body=b"abcdef"),
                 id="two-different-content-lengths"),
    pytest.param(post(b"Transfer-Encoding: chunked\r\n", body=b"zz\r\nabc\r\n0\r\n\r\n"),
                 id="invalid-chunk-size"),
    pytest.param(b"GET /public/echo HTTP/1.1\r\n" + HOST + COOKIE[:-2] + b"; pad="
                 + b"a" * 17000 + b"\r\n\r\n", id="cookie-header-over-16KiB"),
    pytest.param(b"GET /public/echo?" + b"q" * 9000 + b" HTTP/1.1\r\n" + HOST + COOKIE
                 + b"\r\n", id="request-line-over-8KiB"),
    pytest.param(b"GET /public/echo?n=\xb2 HTTP/1.1\r\n" + HOST + COOKIE + b"\r\n",
                 id="raw-non-ascii-byte-in-query"),
]


def envelope(answer: Answer) -> dict[str, Any]:
    """The error object of a JSON envelope answer (assertions say why it is not one)."""
    assert (answer.header("Content-Type") or "").startswith("application/json"), answer.head
    error = json.loads(answer.body)["error"]
    assert isinstance(error, dict)
    assert error["code"] == answer.status
    assert error["id"] in CONTRACT_IDS
    assert isinstance(error["message"], str)
    return error


@pytest.mark.parametrize("data", MALFORMED)
async def test_malformed_request_gets_json_envelope_without_its_secrets(
    aiohttp_server: AiohttpServer, data: bytes
) -> None:
    """Fails on 1c02853: aiohttp's plain-text 400 (HTTP/1.0, text/plain) quoting the bad
    bytes; for the long Cookie line it quotes the session value back. It also logs each one
    as an ERROR with a traceback: a client's mistake, not the gateway's, that anyone can
    repeat to flood the log."""
    async with scripted_stack(aiohttp_server) as stack:
        _, session = stack.login("alice@example.com")
        answer = await exchange(stack.port, data.replace(SECRET, session.encode()))
        assert answer is not None, "the gateway closed without an answer"
        assert session.encode() not in answer.head + answer.raw_body, "the answer has the secret"
        assert 400 <= answer.status < 500
        assert envelope(answer)["id"] == "bad_request"
        # a streaming relay may have sent a head on before the bad chunk; never a whole request
        assert [r for r in stack.upstream.requests if r.complete] == []
    # the gateway has stopped: every line it wrote is in
    assert not [line for line in stack.gateway.lines if session in line]
    assert not [line for line in stack.gateway.lines if "Traceback" in line]


async def test_broken_chunk_mid_upload_is_400_at_once(aiohttp_server: AiohttpServer) -> None:
    """The upload has reached the upstream when a bad chunk size arrives. Fails on 1c02853:
    the client waits for `upstream.timeout` (3 s here) and gets a 504, while the upstream
    waits for the rest of a body that will never come."""
    async with (scripted_stack(aiohttp_server, upstream_timeout="3s") as stack,
                RawClient(stack.port, within=6) as client):
        await client.send(request("POST", "/public/echo", "Transfer-Encoding: chunked",
                                  body=chunk(b"hello")))
        await stack.upstream.wait_for(lambda: len(stack.upstream.requests) == 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.send(b"zz\r\nbroken\r\n")
        answer = await client.answer()
        took = loop.time() - started
        assert answer is not None
        assert answer.status == 400, answer.body
        assert envelope(answer)["id"] == "bad_request"
        assert took < 1.5, f"the 400 took {took:.1f} s"
        assert await stack.upstream.ended(stack.upstream.requests[0].conn), (
            "the upstream connection with the half-sent upload stayed open")


async def test_obs_text_in_upstream_header_reaches_client_byte_identical(
    aiohttp_server: AiohttpServer,
) -> None:
    """`X-Title: r\\xe9sum\\xe9` (obs-text, RFC 9110 §5.5). Fails on 1c02853: the client
    gets `X-Title: rsum`, the two latin-1 bytes silently dropped."""
    async with scripted_stack(aiohttp_server) as stack:
        answer = await exchange(stack.port, request("GET", "/public/obs-text"))
        assert answer is not None
        assert answer.status == 200
        assert answer.raw_header("X-Title") == OBS_TEXT


async def test_control_char_in_upstream_header_is_502_envelope_without_traceback(
    aiohttp_server: AiohttpServer,
) -> None:
    """`X-Bad: a\\x01b` from the upstream. Fails on 1c02853: the client's connection is
    dropped without an answer and the log gets a ValueError traceback."""
    async with scripted_stack(aiohttp_server) as stack:
        answer = await exchange(stack.port, request("GET", "/public/ctl-char", "Accept: */*"))
        assert answer is not None, "the gateway dropped the connection without an answer"
        assert answer.status == 502
        assert envelope(answer)["id"] == "upstream_unavailable"
    # the gateway has stopped: every line it wrote is in
    assert not [line for line in stack.gateway.lines if "Traceback" in line]


ODD_COUNTS = [
    pytest.param("%C2%B2", id="superscript-two"),
    pytest.param("9" * 5000, id="5000-digits"),
]


@pytest.mark.parametrize("revoked", ODD_COUNTS)
async def test_sessions_page_with_odd_revoked_count_is_never_500(
    aiohttp_server: AiohttpServer, revoked: str
) -> None:
    """Fails on 1c02853: `int(revoked)` raises (no decimal digit / over Python's 4300-digit
    limit) and the signed-in browser gets aiohttp's bare 500 page."""
    async with scripted_stack(aiohttp_server) as stack:
        _, session = stack.login("alice@example.com")
        answer = await exchange(stack.port, request(
            "GET", f"/_auth/sessions?revoked={revoked}", cookie(session), BROWSER))
        assert answer is not None
        assert answer.status < 500, answer.body[:300]


ODD_TARGETS = [
    pytest.param(b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", id="options-asterisk"),
    pytest.param(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                 id="connect-authority"),
]


@pytest.mark.parametrize("data", ODD_TARGETS)
async def test_asterisk_and_authority_targets_get_json_envelope(
    aiohttp_server: AiohttpServer, data: bytes
) -> None:
    """Fails on 1c02853: aiohttp's plain-text `404: Not Found`."""
    async with scripted_stack(aiohttp_server) as stack:
        answer = await exchange(stack.port, data)
        assert answer is not None
        assert 400 <= answer.status < 500
        envelope(answer)
        assert stack.upstream.requests == []
