"""The part of an Ory session the gateway keeps: parsed once, at the boundary
(docs/reference.md#asking-ory).

Real Kratos data can be messy (legacy `aal: ""`, missing devices), so parsing is defensive:
only the handful of fields the gateway needs, with clear failure when they are unusable.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from gateway.config import IdentityHeader
from gateway.headers import encode_value


class SessionParseError(ValueError):
    """Ory's 200 body is not a session we can use (treated as "Ory unavailable")."""


class SessionInactiveError(SessionParseError):
    """A well-formed session that is inactive or expired: the same as Ory's 401."""


class Session(NamedTuple):
    """A validated session, projected to what the gateway needs (small to cache).

    A NamedTuple of strings, floats and tuples: after its first collection the garbage
    collector stops tracking it, so 100 000 cached sessions add nothing to a GC pass."""

    session_id: str
    identity_id: str
    email: str | None
    aal: str
    authenticated_at: float  # seconds since the epoch
    expires_at: float | None
    headers: tuple[tuple[str, str], ...]  # identity headers, values already header-safe
    # The fields routes require (`[routes.require]`), as compact JSON {"dotted.path": value};
    # "" when no route requires anything: the cache keeps that and nothing more.
    claims: str = ""

    def is_valid_at(self, now: float) -> bool:
        """A cached session stops counting the moment Ory's expiry passes."""
        return self.expires_at is None or self.expires_at > now


def parse_timestamp(value: Any) -> float | None:
    """RFC 3339 (Go style, up to nanoseconds) -> epoch seconds; None when absent/unparseable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}" if digits else head + rest[digits:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def format_timestamp(seconds: float | None) -> str | None:
    """Epoch seconds -> RFC 3339 UTC with `Z`, the way Ory writes them."""
    if seconds is None:
        return None
    text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def lookup(document: Any, path: tuple[str, ...]) -> Any:
    """Follow a dotted path through nested objects (a number steps into a list); None
    when any step is missing."""
    current = document
    for step in path:
        if isinstance(current, list) and step.isdigit() and step.isascii():
            index = int(step)
            current = current[index] if index < len(current) else None
            continue
        if not isinstance(current, Mapping):
            return None
        current = current.get(step)
    return current


def header_text(value: Any) -> str | None:
    """A session field as a header value; None means "send no header at all"."""
    if value is None:
        return None
    if isinstance(value, bool | str | int | float):
        text = _scalar(value)
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ",".join(_scalar(v) for v in value)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return encode_value(text) if text != "" else None


def _scalar(value: str | int | float) -> str:
    """JSON's spelling of booleans; str() for the rest."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_session(
    payload: Any, identity_headers: tuple[IdentityHeader, ...], now: float,
    claim_paths: tuple[tuple[str, ...], ...] = (),
) -> Session:
    """Ory's whoami 200 body -> Session; SessionParseError if it is not an active session."""
    if not isinstance(payload, Mapping):
        raise SessionParseError("whoami answered 200 with a body that is not an object")
    session_id = payload.get("id")
    identity = payload.get("identity")
    identity_id = identity.get("id") if isinstance(identity, Mapping) else None
    if not isinstance(session_id, str) or not session_id:
        raise SessionParseError("the session has no id")
    if not isinstance(identity_id, str) or not identity_id:
        raise SessionParseError("the session has no identity id")
    if payload.get("active") is not True:
        raise SessionInactiveError("the session is not active")
    expires_at = parse_timestamp(payload.get("expires_at"))
    if expires_at is not None and expires_at <= now:
        raise SessionInactiveError("the session has expired")
    email = lookup(payload, ("identity", "traits", "email"))
    aal = payload.get("authenticator_assurance_level")
    authenticated_at = parse_timestamp(payload.get("authenticated_at"))
    headers = []
    for header in identity_headers:
        text = header_text(lookup(payload, header.path))
        if text is not None:
            headers.append((header.name, text))
    return Session(
        session_id=session_id,
        identity_id=identity_id,
        email=email if isinstance(email, str) else None,
        aal=sys.intern(aal) if isinstance(aal, str) else "",  # one "aal1" for all sessions
        authenticated_at=authenticated_at if authenticated_at is not None else 0.0,
        expires_at=expires_at,
        headers=tuple(headers),
        claims=_claims(payload, claim_paths),
    )


def _claims(payload: Mapping[str, Any], paths: tuple[tuple[str, ...], ...]) -> str:
    """The required fields that are there, as compact JSON: scalars, and of a list its
    scalars (a null or an object in it can equal no required value, but must not hide the
    ones beside it)."""
    found: dict[str, Any] = {}
    for path in paths:
        value = lookup(payload, path)
        if isinstance(value, str | int | float | bool):
            found[".".join(path)] = value
        elif isinstance(value, list):
            found[".".join(path)] = [v for v in value if isinstance(v, str | int | float | bool)]
    return json.dumps(found, separators=(",", ":"), sort_keys=True) if found else ""



# A cached session is one bytes object, not a tuple of string objects: every Python string
# costs ~50 bytes of its own, and 100 000 cached sessions must stay under 100 MB
# (bench/cache_memory.py). Layout: fresh_until, authenticated_at and expires_at (NaN: none)
# as doubles, a flags byte, then session id, identity id, email, aal and the identity
# headers' names and values, joined by NUL. A header value equal to the identity id or the
# email (so both default headers) is stored as a one-character reference to it.
_PACKED = struct.Struct("<dddB")
_FRESH_UNTIL = struct.Struct("<d")
_HAS_EMAIL = 1
_IDENTITY_ID, _EMAIL = "\x01", "\x02"  # references; never part of a header-safe value
_RESERVED = frozenset("\x00\x01\x02")


def pack(session: Session, fresh_until: float) -> bytes | None:
    """The cache's form of a session; None if a field holds NUL, \\x01 or \\x02 (no real
    session does; such a session is simply not cached)."""
    email = session.email
    fields = [session.session_id, session.identity_id, email or "", session.aal, session.claims]
    if any(not _RESERVED.isdisjoint(field) for field in fields):
        return None
    for name, value in session.headers:
        if value == session.identity_id:
            value = _IDENTITY_ID
        elif value == email:
            value = _EMAIL
        elif not _RESERVED.isdisjoint(value):
            return None
        fields += (name, value)
    expires_at = math.nan if session.expires_at is None else session.expires_at
    flags = _HAS_EMAIL if email is not None else 0
    head = _PACKED.pack(fresh_until, session.authenticated_at, expires_at, flags)
    # surrogatepass: JSON strings may hold lone surrogates, and must come back unchanged.
    return head + "\x00".join(fields).encode("utf-8", "surrogatepass")


def packed_fresh_until(packed: bytes) -> float:
    """When a packed session stops being fresh, without unpacking the rest."""
    fresh_until: float = _FRESH_UNTIL.unpack_from(packed)[0]
    return fresh_until


def unpack(packed: bytes) -> Session:
    """The Session that `pack` stored (on every cache hit: C calls, no Python loop)."""
    _, authenticated_at, expires_at, flags = _PACKED.unpack_from(packed)
    text = packed[_PACKED.size:].decode("utf-8", "surrogatepass")
    session_id, identity_id, email, aal, claims, *rest = text.split("\x00", 5)
    headers: tuple[tuple[str, str], ...] = ()
    if rest:
        flat = iter(rest[0].replace(_IDENTITY_ID, identity_id).replace(_EMAIL, email)
                    .split("\x00"))
        headers = tuple(zip(flat, flat, strict=True))
    return tuple.__new__(Session, (  # Session(...) with keywords costs 4x as much
        session_id, identity_id, email if flags & _HAS_EMAIL else None, aal,
        authenticated_at, None if math.isnan(expires_at) else expires_at, headers, claims,
    ))


def packed_ids(packed: bytes) -> tuple[str, str]:
    """(session id, identity id) of a packed session: all that eviction needs."""
    session_id, identity_id, _ = packed[_PACKED.size:].split(b"\x00", 2)
    return (session_id.decode("utf-8", "surrogatepass"),
            identity_id.decode("utf-8", "surrogatepass"))
