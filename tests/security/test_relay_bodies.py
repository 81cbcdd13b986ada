"""Class BODIES: the relay never decodes, re-encodes or re-frames a body
(docs/reference.md#bodies-and-framing).

A gateway that decompresses a request body but keeps its `Content-Length` sends the
upstream a body of the wrong length: cut short when the decoded body is longer, and, when it
is shorter, the upstream takes the next request's bytes as the rest of this body; an
attacker who sizes the gap to the next request's head makes the upstream read a request of
their choosing, with any identity header they like, off the gateway's kept-alive connection.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import pytest
from pytest_aiohttp import AiohttpServer

from tests.security.raw_client import exchange, request
from tests.security.scripted_upstream import (
    CHUNKS,
    GZIP_BODY,
    ScriptedStack,
    chunk,
    scripted_stack,
)

# Hand-made streams (no codec library needed): brotli with one uncompressed meta-block, and
# a zstd frame with one raw block; both decode to b"hello".
BROTLI_HELLO = b"\x0b\x02\x80hello\x03"
ZSTD_HELLO = b"\x28\xb5\x2f\xfd\x20\x05\x29\x00\x00hello"

ENCODED_BODIES = [
    pytest.param("gzip", gzip.compress(b"hello gzip " * 100, mtime=0), id="gzip"),
    pytest.param("deflate", zlib.compress(b"hello deflate " * 100), id="deflate"),
    pytest.param("br", BROTLI_HELLO, id="br"),
    pytest.param("zstd", ZSTD_HELLO, id="zstd"),
    pytest.param("x-foo", b"\x00\x01 no one knows this coding", id="unknown-coding"),
    pytest.param("gzip", b"this is not gzip at all", id="gzip-header-not-gzip-body"),
]


def only_request(stack: ScriptedStack) -> bytes:
    seen = stack.upstream.requests
    assert len(seen) == 1, f"the upstream parsed {len(seen)} requests: {seen}"
    return seen[0].body


@pytest.mark.parametrize(("coding", "body"), ENCODED_BODIES)
async def test_encoded_request_body_reaches_upstream_byte_identical(
    aiohttp_server: AiohttpServer, coding: str, body: bytes
) -> None:
    """Fails on 1c02853 for every known coding (the unknown one is the guard): gzip and
    deflate reach the upstream decoded and cut to the original Content-Length; br and zstd
    get a plain-text 400 "Can not decode content-encoding ... Please install Brotli" (aiohttp
    decodes what it can); the not-gzip body gets a 502."""
    async with scripted_stack(aiohttp_server) as stack:
        answer = await exchange(stack.port, request(
            "POST", "/public/echo", f"Content-Encoding: {coding}", body=body))
        assert answer is not None
        assert answer.status == 200, answer.body
        assert only_request(stack) == body
        seen = stack.upstream.requests[0]
        assert seen.header_values("Content-Encoding") == [coding]
        assert seen.header_values("Content-Length") == [str(len(body))]


def padded_gzip(data: bytes, gap: int) -> bytes:
    """A valid gzip member of `data` that is exactly `gap` bytes longer than `data`: the
    FCOMMENT field (RFC 1952 §2.3.1) takes up the slack."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = squeeze.compress(data) + squeeze.flush()
    fixed = 10 + 1 + len(deflated) + 8  # header, comment's NUL, data, CRC32 and ISIZE
    comment = b"c" * (gap + len(data) - fixed)
    assert comment, "gap too small for a gzip member"
    member = (b"\x1f\x8b\x08\x10\x00\x00\x00\x00\x00\xff" + comment + b"\x00" + deflated
              + struct.pack("<II", zlib.crc32(data), len(data)))
    assert len(member) - len(data) == gap
    return member


async def test_encoded_body_shorter_than_its_length_smuggles_no_request(
    aiohttp_server: AiohttpServer,
) -> None:
    """An anonymous attacker: POST a gzip body whose decoded size is shorter than its
    Content-Length by exactly the length of the gateway's next forwarded head, to a public
    page that answers without reading the body (as servers do); then POST a body that is a
    whole `GET /private/x` carrying alice's X-User-Id. Fails on 1c02853: the upstream reads
    the second head as the rest of the first body and serves the smuggled request as alice,
    and the attacker gets alice's answer."""
    async with scripted_stack(aiohttp_server) as stack:
        alice, _ = stack.login("alice@example.com")
        smuggled = (f"GET /private/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User-Id: {alice}\r\n"
                    "Content-Length: 0\r\n\r\n").encode()
        carrier = request("POST", "/public/echo", body=smuggled)
        await exchange(stack.port, carrier)  # an attacker guesses this length; a test measures
        gap = len(stack.upstream.requests[-1].head)
        opener = request("POST", "/public/early", "Content-Encoding: gzip",
                         body=padded_gzip(b"hi", gap))
        first = await exchange(stack.port, opener)
        second = await exchange(stack.port, carrier)
        forged = [r for r in stack.upstream.requests if r.header("X-User-Id") == alice]
        assert forged == [], "the upstream served a request as alice that alice never sent"
        assert first is not None
        assert second is not None
        assert alice not in (first.user, second.user)


async def test_chunked_request_body_reaches_upstream_unchanged(
    aiohttp_server: AiohttpServer,
) -> None:
    """Guard (passes on 1c02853): chunked stays chunked, or becomes a correct length (§5),
    with the same bytes once de-chunked."""
    parts = (b"alpha-", b"beta-", b"gamma")
    body = b"".join(chunk(part) for part in parts) + b"0\r\n\r\n"
    async with scripted_stack(aiohttp_server) as stack:
        answer = await exchange(stack.port, request(
            "POST", "/public/echo", "Transfer-Encoding: chunked", body=body))
        assert answer is not None
        assert answer.status == 200
        only_request(stack)
        seen = stack.upstream.requests[0]
        assert seen.decoded == b"".join(parts)
        if seen.header("Transfer-Encoding") is None:
            assert seen.header_values("Content-Length") == [str(len(seen.decoded))]
        else:
            assert seen.header_values("Transfer-Encoding") == ["chunked"]
            assert seen.header("Content-Length") is None


async def test_length_framed_request_body_keeps_its_length(
    aiohttp_server: AiohttpServer,
) -> None:
    """Guard (passes on 1c02853): a Content-Length body is sent with that length, as is."""
    body = bytes(range(256)) * 40
    async with scripted_stack(aiohttp_server) as stack:
        answer = await exchange(stack.port, request("POST", "/public/echo", body=body))
        assert answer is not None
        assert answer.status == 200
        assert only_request(stack) == body
        seen = stack.upstream.requests[0]
        assert seen.header_values("Content-Length") == [str(len(body))]
        assert seen.header("Transfer-Encoding") is None


async def test_gzip_answer_reaches_client_byte_identical(aiohttp_server: AiohttpServer) -> None:
    """Guard (passes on 1c02853): the answer keeps its Content-Encoding and its bytes."""
    async with scripted_stack(aiohttp_server) as stack:
        answer = await exchange(stack.port, request("GET", "/public/gzip",
                                                    "Accept-Encoding: gzip"))
        assert answer is not None
        assert answer.status == 200
        assert answer.header("Content-Encoding") == "gzip"
        assert answer.body == GZIP_BODY
        assert answer.header("Content-Length") in (None, str(len(GZIP_BODY)))


async def test_chunked_answer_reaches_http11_client_chunked_or_with_its_length(
    aiohttp_server: AiohttpServer,
) -> None:
    """Guard (passes on 1c02853, which turns this small answer into a length)."""
    async with scripted_stack(aiohttp_server) as stack:
        answer = await exchange(stack.port, request("GET", "/public/chunked"))
        assert answer is not None
        assert answer.status == 200
        assert answer.framing in ("chunked", "length"), answer.head
        assert answer.body == b"".join(CHUNKS)
