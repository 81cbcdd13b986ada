"""The one canonical request path (docs/reference.md#canonical-path).

aiohttp's `request.path` (decoded), `raw_path` (as sent, with the query) and `url.path`
(dot segments resolved) disagree. The gateway takes the raw request target once, refuses
every spelling that two parsers could read differently, and normalises only what is
unambiguous. The result is both the path routes are matched against and exactly the path
the upstream receives.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes

from gateway.errors import BadRequestError

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Escapes decoded to their character: unreserved (RFC 3986 §6.2.2.2) plus the sub-delims,
# ":" and "@" that mean nothing special inside a path segment, so `/admin%3Ax` and
# `/admin:x` are one path for the routes as for the upstream.
_DECODED = _UNRESERVED | frozenset("!$&'()*+,=:@")
# pchar (RFC 3986 §3.3) plus "/"; ";" is handled separately (path parameters).
_PATH_CHARS = _UNRESERVED | frozenset("!$&'()*+,=:@/%")
# Characters that, once decoded, would change how the path splits or what it means.
_AMBIGUOUS_ESCAPES = {
    "2F": "an encoded slash (%2F)",
    "5C": "an encoded backslash (%5C)",
    "2E": "an encoded dot (%2E)",
    "23": "an encoded # (%23)",
    "3F": "an encoded ? (%3F)",
    "3B": "an encoded ; (%3B)",
    "25": "a double-encoded character (%25)",
}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_QUERY_FORBIDDEN = re.compile(r"[^\x21-\x7e]|#")  # only visible ASCII, never a fragment
_SLASHES = re.compile(r"/{2,}")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=:@/%]*")  # exactly _PATH_CHARS
_DOT_SEGMENT = re.compile(r"/\.\.?(?=/|$)")


class RequestTarget(NamedTuple):  # made on every request: a tuple is the cheapest record
    """The canonical path and the raw query string (never part of route matching)."""

    path: str
    query: str

    @property
    def path_qs(self) -> str:
        """Path plus query, exactly as forwarded."""
        return f"{self.path}?{self.query}" if self.query else self.path


def canonical_target(raw_target: str) -> RequestTarget:
    """Split the raw request target and canonicalise its path; BadRequestError if ambiguous."""
    if not raw_target.startswith("/"):
        raise BadRequestError("the request target must be a path starting with /")
    path, _, query = raw_target.partition("?")
    if _QUERY_FORBIDDEN.search(query):
        raise BadRequestError("the query string contains a character that must be encoded")
    return RequestTarget(canonical_path(path), query)


def canonical_path(raw_path: str) -> str:
    """One unambiguous spelling of a raw path, or BadRequestError saying why not."""
    if not _PLAIN_PATH.fullmatch(raw_path):
        bad = next(char for char in raw_path if char not in _PATH_CHARS)
        raise BadRequestError(_describe_char(bad))
    path = raw_path
    if "%" in path:
        path = _ESCAPE.sub(_decode_harmless, _check_escapes(path))
        if "%" in path:
            _check_utf8(path)
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if "." in path and _DOT_SEGMENT.search(path):
        raise BadRequestError("the path contains a . or .. segment")
    return path


def _check_escapes(path: str) -> str:
    if path.count("%") != len(_ESCAPE.findall(path)):
        raise BadRequestError("the path contains invalid percent-encoding")
    for match in _ESCAPE.finditer(path):
        code = match.group(1).upper()
        if code in _AMBIGUOUS_ESCAPES:
            raise BadRequestError(f"the path contains {_AMBIGUOUS_ESCAPES[code]}")
        if int(code, 16) < 0x20 or code == "7F":
            raise BadRequestError("the path contains an encoded control character")
    return path


def _decode_harmless(match: re.Match[str]) -> str:
    """`%61` -> `a`, `%3A` -> `:`; every other escape upper-cased, so one spelling remains."""
    char = chr(int(match.group(1), 16))
    return char if char in _DECODED else "%" + match.group(1).upper()


def _check_utf8(path: str) -> None:
    """Refuse escaped bytes that are not UTF-8: an overlong `%C0%AE` is "." to a lax decoder."""
    try:
        unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        message = "the path contains percent-encoded bytes that are not UTF-8"
        raise BadRequestError(message) from None


def encode_path(text: str) -> str:
    """A configured path as canonical_path spells requests: what it keeps raw stays raw
    (plus `*` for globs), everything else (non-ASCII, `{`, `|`, …) as upper-case UTF-8
    escapes, so a route matches every spelling of its path."""
    return quote(text, safe="/*!$&'()+,=:@-._~")


def _describe_char(char: str) -> str:
    if char == ";":
        return "the path contains ; (path parameters are not accepted)"
    if char == "\\":
        return "the path contains a backslash"
    if char == "#":
        return "the request target contains a fragment (#)"
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return "the path contains a control character"
    if ord(char) > 0x7E:
        return "the path contains a non-ASCII character that is not percent-encoded"
    return f"the path contains {char!r}, which must be percent-encoded"
