"""Cross-site request defences for state-changing `/_auth` calls (issue 3, contract §4).

Two layers: the `Origin` must be ours (or in `server.allowed_origins`), and HTML forms carry
a token bound to the session and signed with `server.secret` (compared in constant time).
A credential from a header is not ambient (a browser never adds it by itself), so such
calls need neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from aiohttp import web

from gateway.credentials import Credential
from gateway.errors import AccessDeniedError

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfSigner:
    """Makes and checks per-session form tokens."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, session_id: str) -> str:
        """The token for forms shown to this session."""
        digest = hmac.new(self._secret, b"csrf\x00" + session_id.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    def is_valid(self, session_id: str, token: str | None) -> bool:
        """Constant-time comparison with the expected token."""
        return token is not None and hmac.compare_digest(self.token(session_id), token)


def is_form(request: web.Request) -> bool:
    """An HTML form submission (as opposed to a JSON / fetch call)."""
    return request.content_type in FORM_TYPES


def check_origin(request: web.Request, credential: Credential, allowed: tuple[str, ...]) -> None:
    """Refuse a cookie-authenticated change whose Origin is missing or foreign."""
    if credential.from_header:
        return
    origin = request.headers.get("Origin")
    if origin is None or origin.lower().rstrip("/") not in allowed:
        raise AccessDeniedError("cross-site request refused: the Origin is not this site")
