"""Where a request's Ory credential comes from
(docs/reference.md#credential), and how it is named safely.

The raw value never leaves this module except toward Ory; caches, logs and the fleet use a
keyed hash of it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Literal, NamedTuple

from multidict import CIMultiDictProxy

Source = Literal["cookie", "session_token", "bearer"]


class Credential(NamedTuple):
    """One credential, as Ory should receive it. (A NamedTuple: made on every request, and
    cheaper to make than a frozen dataclass.)"""

    source: Source
    value: str
    key: bytes  # keyed BLAKE2b (128 bits): the cache key, and the only form ever logged

    def __repr__(self) -> str:
        return f"Credential(source={self.source!r}, key=…{self.log_id})"  # never the value

    @property
    def from_header(self) -> bool:
        """Header credentials (API clients) never get a browser redirect
        (docs/reference.md#credential)."""
        return self.source != "cookie"

    @property
    def log_id(self) -> str:
        """A short, non-reversible tag that lets log lines be correlated."""
        return self.key.hex()[:12]


def mac_key(secret: bytes) -> bytes:
    """The key credentials are hashed with, from `server.secret` (or a per-process random
    one): a keyed hash, so a cache key written to Redis or told to another worker reveals
    nothing and cannot be recomputed from a stolen cookie without the secret."""
    return hashlib.sha256(b"gateway credential key\x00" + secret).digest()


def credential_key(source: str, value: str, key: bytes = b"") -> bytes:
    """A keyed BLAKE2b of source and value: raw tokens are never cache keys
    (docs/reference.md#session-cache). 16 bytes (128 bits: no collision will ever be found),
    in bytes, not hex: a third of the memory per cached session."""
    digest = _keyed(key).copy()  # the key's block is hashed once, not once per request
    digest.update(f"{source}\x00{value}".encode())
    return digest.digest()


@functools.lru_cache(maxsize=4)
def _keyed(key: bytes) -> hashlib.blake2b:
    """A BLAKE2b that has taken `key` in (copies of it hash as `blake2b(key=key)` does)."""
    return hashlib.blake2b(key=key, digest_size=16)


Cookies = list[tuple[str, str | None]]  # value None: a bare `flag` without "="


def split_cookie_header(header: str) -> Cookies:
    """`a=1; b=2; flag` -> pairs, keeping every cookie in order (no SimpleCookie quirks)."""
    pairs: Cookies = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if name:
            pairs.append((name.strip(), value.strip() if sep else None))
    return pairs


def request_cookies(headers: CIMultiDictProxy[str]) -> Cookies:
    """Every cookie of every Cookie header, parsed once per request."""
    return [pair for raw in headers.getall("Cookie", ()) for pair in split_cookie_header(raw)]


def cookie_header_without(
    headers: CIMultiDictProxy[str], cookie_name: str,
    cookies: Cookies | None = None, *, also: frozenset[str] = frozenset(),
) -> str | None:
    """The Cookie header to forward: every cookie except the session cookie
    (docs/reference.md#headers-toward-the-upstream) and the
    gateway's own (`also`)."""
    pairs = request_cookies(headers) if cookies is None else cookies
    kept = [
        name if value is None else f"{name}={value}"
        for name, value in pairs
        if name != cookie_name and name not in also
    ]
    return "; ".join(kept) or None


def extract_credential(
    headers: CIMultiDictProxy[str], sources: Sequence[str], cookie_name: str,
    cookies: Cookies | None = None, *, key: bytes = b"",
) -> Credential | None:
    """The first configured source the request carries, or None (then Ory is not asked);
    `key` (mac_key) keys its cache key."""
    for source in sources:
        value = _read(headers, source, cookie_name, cookies)
        if value and value.isascii():  # Ory's cookies and tokens are ASCII; other bytes
            # (kept by aiohttp as surrogates) can be no one's session: no credential.
            kind: Source = "cookie" if source == "cookie" else (
                "bearer" if source == "bearer" else "session_token"
            )
            return Credential(kind, value, credential_key(kind, value, key))
    return None


def _read(
    headers: CIMultiDictProxy[str], source: str, cookie_name: str,
    cookies: Cookies | None,
) -> str | None:
    if source == "cookie":
        for name, value in request_cookies(headers) if cookies is None else cookies:
            if name == cookie_name and value:
                return value.strip('"')
        return None
    if source == "session_token":
        return headers.get("X-Session-Token", "").strip() or None
    scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip() and " " not in token.strip():
        return token.strip()
    return None
