"""Cross-site request defences for state-changing `/_auth` calls
(docs/reference.md#cross-site-protection).

Two layers: the `Origin` must be ours (or in `server.allowed_origins`), and HTML forms carry
a token bound to the session and signed with `server.secret` (compared in constant time).
A credential from a header is not ambient (a browser never adds it by itself), so such
calls need neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs

from aiohttp import web

from gateway.credentials import Credential
from gateway.errors import AccessDeniedError, BadRequestError
from gateway.relay.answers import grant_continue

URLENCODED = "application/x-www-form-urlencoded"
FORM_TYPES = (URLENCODED, "multipart/form-data")
MAX_FORM_BYTES = 4096  # our forms carry one token


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
        if token is None:
            return False
        expected = self.token(session_id).encode()
        # Bytes, not str: compare_digest refuses non-ASCII str, and a token is user input.
        return hmac.compare_digest(expected, token.encode("utf-8", "surrogatepass"))


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


async def form_token(request: web.Request) -> str | None:
    """The `csrf_token` field of one of our forms; a form we could not have sent is a 400."""
    if request.content_type != URLENCODED:
        raise BadRequestError(f"send this form as {URLENCODED}")
    await grant_continue(request)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():  # the whole body, however it arrives
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise BadRequestError("the form is larger than any form this page sends")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=16, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise BadRequestError("the form is not valid URL-encoded ASCII") from None
    values = fields.get("csrf_token")
    return values[0] if values else None
