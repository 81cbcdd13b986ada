"""The Kratos error envelopes the stand-in emits, word for word
(docs/standin.md#conventions and each endpoint's section)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

WHOAMI_REASON = "No valid session credentials found in the request."
SESSIONS_REASON = "No valid session cookie found."
UNAUTHORIZED = "The request could not be authorized"
BAD_REQUEST = "The request was malformed or contained invalid parameters"
FORBIDDEN = "The requested action was forbidden"
INTERNAL = "An internal server error occurred, please contact the system administrator"
AAL2_REASON = (
    "An active session was found but it does not fulfill the requested Authenticator Assurance"
    " Level. Please verify yourself with a second factor to resolve this issue."
)
_DEFAULT_MESSAGES = {400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 500: INTERNAL}


def go_quote(text: str) -> str:
    """Close enough to Go's %q for URLs and ids."""
    return json.dumps(text, ensure_ascii=False)


def envelope(
    code: int,
    *,
    error_id: str = "",
    reason: str = "",
    message: str = "",
    details: dict[str, Any] | None = None,
    request_id: str = "",
) -> dict[str, Any]:
    """herodot's key order (id, code, status, request, reason, details, message); empty keys go."""
    error: dict[str, Any] = {}
    if error_id:
        error["id"] = error_id
    error["code"] = code
    error["status"] = HTTPStatus(code).phrase
    if request_id:
        error["request"] = request_id
    if reason:
        error["reason"] = reason
    if details:
        error["details"] = details
    error["message"] = message or _DEFAULT_MESSAGES.get(code, HTTPStatus(code).phrase)
    return {"error": error}


def request_id(request: web.Request) -> str:
    """Self-hosted Kratos echoes the caller's X-Request-ID into `error.request`."""
    return request.headers.get("X-Request-ID", "")


def no_session(request: web.Request, reason: str) -> dict[str, Any]:
    """The id-less 401 of whoami
    (docs/standin.md#whoami) and of /sessions (#sessions), told apart by `reason` only."""
    return envelope(401, reason=reason, request_id=request_id(request))


def aal2_required(request: web.Request, base_url: str) -> dict[str, Any]:
    """docs/standin.md#whoami: `redirect_browser_to` twice, and without return_to."""
    target = base_url + "/self-service/login/browser?aal=aal2"
    body = envelope(
        403,
        error_id="session_aal2_required",
        reason=AAL2_REASON,
        details={"redirect_browser_to": target},
        message="Session does not fulfill the requested Authenticator Assurance Level",
        request_id=request_id(request),
    )
    body["redirect_browser_to"] = target
    return body


def session_inactive(request: web.Request) -> dict[str, Any]:
    return envelope(
        401,
        error_id="session_inactive",
        reason="No active session was found in this request.",
        message="request does not have a valid authentication session",
        request_id=request_id(request),
    )


def return_to_forbidden(request: web.Request, url: str) -> dict[str, Any]:
    return envelope(
        400,
        error_id="self_service_flow_return_to_forbidden",
        reason=f"Requested return_to URL {go_quote(url)} is not allowed.",
        request_id=request_id(request),
    )


def bad_request(request: web.Request, *, message: str = "", reason: str = "") -> dict[str, Any]:
    return envelope(400, reason=reason, message=message, request_id=request_id(request))


def forbidden(request: web.Request, reason: str) -> dict[str, Any]:
    return envelope(403, reason=reason, request_id=request_id(request))


def aal1_required(request: web.Request) -> dict[str, Any]:
    """Asking for aal2 without any session (docs/standin.md#browser-login)."""
    return envelope(
        401,
        error_id="session_aal1_required",
        reason="You can not requested a higher AAL (AAL2/AAL3) without an active session.",
        message="aal2 and aal3 can only be requested if a session exists already",
        request_id=request_id(request),
    )


def already_logged_in(request: web.Request) -> dict[str, Any]:
    return envelope(
        400,
        error_id="session_already_available",
        reason="A valid session was detected and thus login is not possible."
        " Did you forget to set `?refresh=true`?",
        message="you are already logged in",
        request_id=request_id(request),
    )
