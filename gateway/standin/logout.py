"""Logout: the URL for browsers, the browser hop itself, and the token logout
(docs/standin.md#logout)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from aiohttp import web

from . import errors
from .error_ui import forward_error
from .responses import is_json_request, json_error, json_ok, see_other
from .state import STATE

_NATIVE_FORBIDDEN = (
    "The provided Ory Session Token could not be found, is invalid, or otherwise malformed."
)
_MISMATCH_REASON = (
    "Unable to log out because the logout token in the URL query does not match the session cookie."
)


async def create_browser_logout_flow(request: web.Request) -> web.Response:
    """200 {logout_url, logout_token}; the token is fixed per session."""
    state = request.app[STATE]
    session = state.valid_session(request)
    if session is None:
        return forward_error(request, errors.session_inactive(request))
    return_to, allowed = state.return_to(request)
    if not allowed:
        return forward_error(request, errors.return_to_forbidden(request, return_to))
    query = {"token": session.logout_token}
    if request.query.get("return_to"):
        query["return_to"] = request.query["return_to"]
    logout_url = f"{state.base_url(request)}/self-service/logout?{urlencode(query)}"
    return json_ok({"logout_url": logout_url, "logout_token": session.logout_token})


async def update_logout_flow(request: web.Request) -> web.Response:
    """Revoke, delete the cookie, then 303 (browsers) or 204 (JSON callers)."""
    state = request.app[STATE]
    token = request.query.get("token", "")
    if not token:
        reason = "Please include a token in the URL query."
        return forward_error(request, errors.bad_request(request, reason=reason))
    session = state.valid_session(request)
    if session is None:
        return forward_error(request, errors.session_inactive(request))
    if token != session.logout_token:
        return forward_error(request, errors.forbidden(request, _MISMATCH_REASON))
    session.active = False
    return_to, allowed = state.return_to(request)
    if not allowed:
        # Kratos checks return_to only after the session is gone (`completeLogout`).
        response = forward_error(request, errors.return_to_forbidden(request, return_to))
    elif is_json_request(request):
        response = web.Response(status=204)
    else:
        response = see_other(return_to)
    response.del_cookie(state.config.cookie_name, path="/")
    return response


async def perform_native_logout(request: web.Request) -> web.Response:
    """204 for a known token (even if already revoked); 403 for anything else."""
    state = request.app[STATE]
    try:
        body = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return json_error(errors.bad_request(request, reason="Unable to decode JSON payload."))
    token = body.get("session_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        reason = 'The request body must contain a non-empty "session_token".'
        return json_error(errors.bad_request(request, reason=reason))
    session = state.store.by_token(token)
    if session is None:
        return json_error(errors.forbidden(request, _NATIVE_FORBIDDEN))
    session.active = False
    return web.Response(status=204)
