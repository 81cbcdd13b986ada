"""Which session a request carries, in Kratos' order
(docs/standin.md#whoami, `session/manager_http.go`)."""

from __future__ import annotations

from aiohttp import web

from .models import StandinSession
from .store import Store


def _bearer_token(header: str) -> str:
    """`Authorization: Bearer <t>`: exactly two space-separated parts, scheme in any case."""
    parts = header.split(" ")
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return ""


def has_credentials(request: web.Request, cookie_name: str) -> bool:
    return bool(
        request.headers.get("X-Session-Token")
        or request.cookies.get(cookie_name)
        or _bearer_token(request.headers.get("Authorization", ""))
    )


def find_session(request: web.Request, store: Store, cookie_name: str) -> StandinSession | None:
    """X-Session-Token wins outright; then a cookie we issued; Bearer only without such a cookie.

    The session is returned even when revoked or expired: validity is the caller's question.
    """
    token = request.headers.get("X-Session-Token", "")
    if token:
        return store.by_token(token)
    cookie = request.cookies.get(cookie_name, "")
    from_cookie = store.by_cookie(cookie) if cookie else None
    if from_cookie is not None:
        return from_cookie
    bearer = _bearer_token(request.headers.get("Authorization", ""))
    return store.by_token(bearer) if bearer else None
