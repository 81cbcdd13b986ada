"""Header rules toward the upstream
(docs/reference.md#identity-header-stripping, #headers-toward-the-upstream). Pure functions, no I/O.

Names are compared after lower-casing and `_` -> `-`, because many upstream stacks (CGI,
WSGI, PHP, some proxies) map both spellings to the same variable.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import quote

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import BadRequestError

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection",
    }
)
FORWARDED = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
     "x-real-ip", "forwarded"}
)
PATH_OVERRIDES = frozenset(
    {"x-original-url", "x-rewrite-url", "x-forwarded-uri", "x-forwarded-prefix",
     "x-original-uri", "x-forwarded-path"}
)
WEBSOCKET_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
     "sec-websocket-protocol", "sec-websocket-accept"}
)
# Visible ASCII except "%", so that a decoder can always undo the encoding.
_SAFE_VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def normalise_name(name: str) -> str:
    """`X_User_Id` -> `x-user-id`: the key every header comparison uses."""
    return name.lower().replace("_", "-")


def underscored(names: Iterable[str]) -> frozenset[str]:
    """The normalised names of headers spelled with an underscore (`X_User_Id`). A proxy in
    front removes `X-User-Id` but passes this spelling on, and PHP, Rack and WSGI servers
    read it as the same header, so a forward-auth check refuses identity and describing
    headers so spelled."""
    found = [name for name in names if "_" in name]
    return frozenset(map(normalise_name, found)) if found else frozenset()


def encode_value(value: str) -> str:
    """Header-safe value: anything outside visible ASCII (and `%`) is percent-encoded UTF-8,
    and so are spaces at either end, which every HTTP parser strips: "admin" and " admin "
    must not reach the app as the same user."""
    if value.isascii() and value.isprintable() and "%" not in value and (
        not value or (value[0] != " " and value[-1] != " ")
    ):
        return value
    core = value.strip(" ")
    if not core:
        return "%20" * len(value)
    start = value.index(core)
    return (
        "%20" * start + quote(core, safe=_SAFE_VALUE_CHARS)
        + "%20" * (len(value) - start - len(core))
    )


def connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> frozenset[str]:
    """Header names listed in `Connection:` are hop-by-hop too (RFC 9110 §7.6.1)."""
    values = headers.getall("Connection", ())
    if len(values) == 1 and len(values[0]) <= _CACHED_UP_TO:
        return _cached_tokens(values[0])
    return frozenset().union(*(_tokens(value) for value in values))


_CACHED_UP_TO = 100  # longer values (a client's, say) are split each time, never cached


def _tokens(value: str) -> frozenset[str]:
    return frozenset(normalise_name(t.strip()) for t in value.split(",") if t.strip())


# Nearly every Connection header says `keep-alive`, `close` or `Upgrade`.
_cached_tokens = functools.lru_cache(maxsize=256)(_tokens)


class ForwardingPeer(NamedTuple):
    """What the gateway knows about the direct peer and the original request."""

    remote_ip: str
    scheme: str
    host: str
    trusted: bool


def build_upstream_headers(
    incoming: CIMultiDictProxy[str],
    *,
    strip: frozenset[str],
    identity: Iterable[tuple[str, str]],
    peer: ForwardingPeer,
    cookie_header: str | None,
    drop_authorization: bool,
    preserve_host: bool,
) -> CIMultiDict[str]:
    """Strip before inject: the upstream sees only what the gateway vouches for.

    `strip` holds the normalised identity header names; `cookie_header` is the Cookie value
    with the session cookie removed (None = no Cookie header at all).
    """
    dropped = _always_dropped(strip, peer.trusted, preserve_host)
    if "Connection" in incoming:
        dropped = dropped | connection_tokens(incoming)
    if drop_authorization:
        dropped = dropped | {"authorization"}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        if not value.isascii():  # before dropping: the Cookie header is rebuilt, not copied
            _check_utf8(name, value)
        normal = name.lower().replace("_", "-")  # normalise_name, inlined: once per header
        if normal in dropped:
            continue
        if "_" in name and normal in _NO_UNDERSCORE_SPELLING:
            continue  # only the dash spelling counts (from a trusted proxy, for the paths)
        out.add(name, value)
    if cookie_header:
        out["Cookie"] = cookie_header
    _set_forwarded(out, incoming, peer)
    for name, value in identity:
        out[name] = value
    return out


# Names an app may read in their underscore spelling too (CGI-style servers map `_` and `-`
# alike): the path overrides, and the request's framing, which is the gateway's to write.
_NO_UNDERSCORE_SPELLING = PATH_OVERRIDES | {"content-length"}


@functools.lru_cache(maxsize=8)
def _always_dropped(strip: frozenset[str], trusted: bool, preserve_host: bool) -> frozenset[str]:
    """The names never forwarded for this config and peer kind, computed once, not per request.
    Expect is answered by the gateway itself (aiohttp sends 100 Continue to the client)."""
    dropped = HOP_BY_HOP | FORWARDED | strip | {"x-session-token", "cookie", "expect"}
    if not trusted:
        dropped |= PATH_OVERRIDES
    if not preserve_host:
        dropped |= {"host"}
    return dropped


def _check_utf8(name: str, value: str) -> None:
    """aiohttp keeps non-UTF-8 bytes as surrogates, which its client would silently drop:
    refuse instead of forwarding a value other than the one sent."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequestError(f"the {name} header is not valid UTF-8") from None


def _set_forwarded(
    out: CIMultiDict[str], incoming: CIMultiDictProxy[str], peer: ForwardingPeer
) -> None:
    """X-Forwarded-*: extended from a trusted proxy, replaced for everyone else
    (docs/reference.md#headers-toward-the-upstream)."""
    prior_for = ", ".join(incoming.getall("X-Forwarded-For", [])) if peer.trusted else ""
    out["X-Forwarded-For"] = f"{prior_for}, {peer.remote_ip}" if prior_for else peer.remote_ip
    proto = incoming.get("X-Forwarded-Proto") if peer.trusted else None
    host = incoming.get("X-Forwarded-Host") if peer.trusted else None
    out["X-Forwarded-Proto"] = proto or peer.scheme
    if host or peer.host:  # an HTTP/1.0 request may have no Host: say nothing, not ""
        out["X-Forwarded-Host"] = host or peer.host


def response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """Upstream answer headers minus hop-by-hop ones; every Set-Cookie kept (copied whole,
    then the few hop-by-hop names removed: cheaper than adding the rest one by one)."""
    dropped = HOP_BY_HOP | connection_tokens(upstream) if "Connection" in upstream \
        else HOP_BY_HOP
    out = CIMultiDict(upstream)
    for name in [name for name in upstream if name.lower().replace("_", "-") in dropped]:
        out.popall(name, None)
    return out
