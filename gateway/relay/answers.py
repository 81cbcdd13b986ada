"""How an app's answer is written to the client: as the app sent it, framed correctly
(docs/reference.md#bodies-and-framing).

Three corrections to aiohttp's response writer, for relayed answers only:

* aiohttp adds `Content-Type: application/octet-stream` to a body without one, which turns
  a page the browser would sniff into a download: an untyped answer stays untyped.
* aiohttp drops header bytes that are not UTF-8 (obs-text such as a latin-1 `résumé` in a
  filename): such values are written byte for byte, as they arrived.
* aiohttp answers an HTTP/1.0 client a body of unknown length without a length and keeps
  the connection open, so the client cannot tell where the body ends: such an answer says
  `Connection: close` and the connection is closed after it.

aiohttp internals used here (pinned by tests/unit/test_aiohttp_internals.py):
`StreamResponse._prepare_headers`, `_write_headers`, `_must_be_empty_body`,
`_send_headers_immediately`, `_req`, `_payload_writer`, and the writer's `_headers_buf` /
`_headers_written`.
"""

from __future__ import annotations

from aiohttp import HttpVersion11, web
from multidict import CIMultiDict

_CONTROL = frozenset(chr(c) for c in (*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F))


class UnsafeHeaderError(ValueError):
    """An upstream header that cannot be relayed: a control character in its name or value."""


CONTINUED = web.RequestKey("continued", bool)


async def grant_continue(request: web.BaseRequest) -> None:
    """Tell a client waiting on `Expect: 100-continue` to send its body (RFC 9110 §10.1.1):
    called once the request is authorised, never before."""
    if expects_continue(request) and not request.get(CONTINUED):
        request[CONTINUED] = True
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer proper has not begun (as aiohttp does)


def expects_continue(request: web.BaseRequest) -> bool:
    """Whether the client waits for a 100 Continue before it sends its body (HTTP/1.1 only:
    an HTTP/1.0 client's Expect is ignored, RFC 9110 §10.1.1)."""
    expect = request.headers.get("Expect")  # first: most requests have none
    return expect is not None and expect.lower() == "100-continue" and (
        request.version == HttpVersion11
    )


def awaits_continue(request: web.BaseRequest) -> bool:
    """Whether the client still waits for a 100 Continue the gateway never sent: its body
    may or may not follow, so the connection must end with the answer."""
    return expects_continue(request) and not request.get(CONTINUED) and (
        not request.content.is_eof()
    )


def is_raw(headers: CIMultiDict[str]) -> bool:
    """Whether any value holds bytes that were not UTF-8 (kept as surrogate escapes by the
    parser); raises UnsafeHeaderError for control characters. Pure ASCII costs one check."""
    raw = False
    for name, value in headers.items():
        if value.isascii() and value.isprintable() and name.isascii():
            continue
        if not _CONTROL.isdisjoint(value) or not _CONTROL.isdisjoint(name):
            raise UnsafeHeaderError(name if name.isprintable() else "a header")
        raw = raw or not value.isascii()
    return raw


class RelayedStream(web.StreamResponse):
    """An upstream's answer, streamed to the client as it comes."""

    untyped = False  # the app sent no Content-Type: add none
    raw = False  # some header value holds bytes that are not UTF-8: write them as they came

    async def _prepare_headers(self) -> None:
        request = self._req
        assert request is not None  # noqa: S101 - set by prepare()
        if (request.version < HttpVersion11 and not self._must_be_empty_body
                and self.content_length is None):
            self.force_close()  # HTTP/1.0: a body of unknown length ends with the connection
            self.headers["Connection"] = "close"
        await super()._prepare_headers()
        if self.untyped:
            self.headers.popall("Content-Type", None)

    async def _write_headers(self) -> None:
        if not self.raw:
            await super()._write_headers()
            return
        request, writer = self._req, self._payload_writer
        assert request is not None  # noqa: S101 - set by prepare()
        assert writer is not None  # noqa: S101
        lines = [f"HTTP/{request.version[0]}.{request.version[1]} {self.status} {self.reason}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        writer._headers_buf = head  # type: ignore[attr-defined]  # as write_headers() sets it
        writer._headers_written = False  # type: ignore[attr-defined]
        if self._send_headers_immediately:
            writer.send_headers()


class RelayedWhole(RelayedStream, web.Response):
    """The same, for an answer whose body is already in: headers and body in one write."""


def relayed(
    status: int, reason: str, headers: CIMultiDict[str], *, typed: bool, body: bytes | None,
) -> web.StreamResponse:
    """The response object for an upstream answer; `body` when it arrived whole (then a
    `web.Response`: aiohttp writes head and body at once). A whole, typed, UTF-8 answer
    needs none of the corrections: aiohttp's own Response writes it as it is."""
    if not (reason.isascii() and reason.isprintable()) and not _CONTROL.isdisjoint(reason):
        raise UnsafeHeaderError("the status line")
    raw = is_raw(headers) or not reason.isascii()
    if body is not None and typed and not raw:
        return web.Response(status=status, reason=reason, headers=headers, body=body)
    response: RelayedStream
    if body is None:
        response = RelayedStream(status=status, reason=reason, headers=headers)
    else:
        response = RelayedWhole(status=status, reason=reason, headers=headers, body=body)
    response.untyped = not typed
    response.raw = raw
    return response
