"""`POST /_auth/hooks/revoke`: other services end sessions everywhere at once
(docs/reference.md#the-revocation-hook).

Meant for Kratos' `web_hook` after a password change (next to `revoke_active_sessions`) or
after a recovery, and for admin scripts that revoke sessions through Ory's admin API. Server
to server: a bearer token (`hooks.token`, compared in constant time) instead of cookies, so
no CSRF or Origin rule applies. Off (404) while no token is set.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web

from gateway.errors import BadRequestError, GatewayError, NotFoundError
from gateway.relay.answers import grant_continue

MAX_BODY = 64 * 1024


class HookUnauthorizedError(GatewayError):
    """No bearer token, or not the configured one."""

    error_id = "unauthorized"
    status = 401
    message = "This endpoint needs the hook's bearer token."
    decision = "endpoint"


class BodyTooLargeError(BadRequestError):
    """A hook body over MAX_BODY bytes."""

    status = 413
    message = "The request body is larger than this endpoint accepts."
    closes = True  # the rest of it is not read


def check_token(request: web.Request, token: str) -> None:
    """The `Authorization: Bearer` token, or 404 (hook off) / 401."""
    if not token:
        raise NotFoundError("the revocation hook is off: set hooks.token")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = token.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), expected
    ):
        raise HookUnauthorizedError()


async def read_revocation(request: web.Request) -> tuple[str | None, str | None]:
    """(identity_id, session_id) from a JSON body with at least one of them."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLargeError()
    await grant_continue(request)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLargeError()
        chunks.append(chunk)
    try:
        document: Any = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: malformed too
        raise BadRequestError("the body is not JSON") from None
    if not isinstance(document, dict):
        raise BadRequestError('expected {"identity_id": "…"} and/or {"session_id": "…"}')
    identity, session = document.get("identity_id"), document.get("session_id")
    for name, value in (("identity_id", identity), ("session_id", session)):
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 256):
            raise BadRequestError(f"{name} must be a non-empty string")
    if identity is None and session is None:
        raise BadRequestError('expected {"identity_id": "…"} and/or {"session_id": "…"}')
    return identity, session
