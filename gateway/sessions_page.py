"""`/_auth/sessions`: where the user is signed in, and signing other devices out
(docs/reference.md#endpoints).

Current session from whoami, the others from Ory's `GET /sessions` (one page). Revocations
evict the gateway's cache at once, so a revoked session is refused on its very next request.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.context import Services, allowed_origins
from gateway.credentials import Credential
from gateway.csrf import check_origin, form_token, is_form
from gateway.devices import SessionView, session_view
from gateway.errors import AccessDeniedError, BadRequestError, SessionRequiredError
from gateway.outcome import outcome_of
from gateway.respond import NO_STORE, is_browser_navigation, json_response, redirect
from gateway.session import Session, format_timestamp

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_REVOKE_ONE = re.compile(r"sessions/([^/]+)(/revoke)?")


async def handle_sessions(
    request: web.Request, services: Services, name: str, current: tuple[Credential, Session]
) -> web.StreamResponse | None:
    """Dispatch the sessions endpoints; None when `name` is not one of them."""
    method = request.method
    if name == "sessions" and method in ("GET", "HEAD"):
        return await show(request, services, current)
    if (name == "sessions" and method == "DELETE") or (
        name == "sessions/revoke-others" and method == "POST"
    ):
        return await revoke_others(request, services, current)
    match = _REVOKE_ONE.fullmatch(name)
    if match and match.group(1) != "revoke-others" and (
        (method == "DELETE" and not match.group(2)) or (method == "POST" and match.group(2))
    ):
        return await revoke_one(request, services, current, match.group(1))
    return None


def is_sessions_path(name: str) -> bool:
    """Whether `/_auth/<name>` belongs to this module."""
    return name == "sessions" or name.startswith("sessions/")


async def show(
    request: web.Request, services: Services, current: tuple[Credential, Session]
) -> web.StreamResponse:
    """HTML for browsers, JSON `{current, sessions}` for everyone else."""
    credential, session = current
    ory = services.auth.ory
    document = await ory.session_document(credential)
    if document is None:
        raise SessionRequiredError()
    this = session_view(document, current=True)
    if this is None:
        raise SessionRequiredError()
    others = [
        view
        for item in await ory.list_sessions(credential)
        if (view := session_view(item, current=False)) is not None and view.id != this.id
    ]
    views = [this, *others]
    if not is_browser_navigation(request):
        return json_response({"current": _as_json(this), "sessions": [_as_json(v) for v in views]})
    context = {
        "title": "Your sessions",
        "request_id": outcome_of(request).request_id,
        "sessions": views,
        "csrf_token": services.csrf.token(session.session_id),
        "prefix": services.config.server.auth_prefix,
        "flash": _flash(request),
        "when": _readable_time,
        "iso": format_timestamp,
    }
    return services.pages.render("sessions.html", context)


async def revoke_others(
    request: web.Request, services: Services, current: tuple[Credential, Session]
) -> web.StreamResponse:
    """Ory `DELETE /sessions`, then every other cached session of this identity goes."""
    credential, session = current
    await _check_csrf(request, services, credential, session)
    count = await services.revoker.revoke_others(services.auth.ory, credential, session)
    if is_form(request):
        return redirect(f"{services.config.server.auth_prefix}/sessions?revoked={count}")
    return json_response({"revoked": count})


async def revoke_one(
    request: web.Request, services: Services, current: tuple[Credential, Session], target: str
) -> web.StreamResponse:
    """Ory `DELETE /sessions/{id}`; the current session must use logout instead."""
    credential, session = current
    await _check_csrf(request, services, credential, session)
    if not _UUID.fullmatch(target):
        raise BadRequestError("the session id is not a UUID")
    target = target.lower()  # Ory's spelling: the cached session must be found under it
    if target == session.session_id.lower():
        raise BadRequestError(
            "this is the current session: sign out with "
            f"{services.config.server.auth_prefix}/logout instead"
        )
    await services.revoker.revoke_one(services.auth.ory, credential, session, target)
    if is_form(request):
        return redirect(f"{services.config.server.auth_prefix}/sessions?revoked=1")
    response = web.Response(status=204)
    response.headers["Cache-Control"] = NO_STORE
    return response


async def _check_csrf(
    request: web.Request, services: Services, credential: Credential, session: Session
) -> None:
    """Same-origin always (for cookie sessions); HTML forms also need the signed token."""
    check_origin(request, credential, allowed_origins(request, services.config))
    if credential.from_header or not is_form(request):
        return
    token = await form_token(request)
    if not services.csrf.is_valid(session.session_id, token):
        raise AccessDeniedError("the form's CSRF token is missing or wrong; reload the page")


def _flash(request: web.Request) -> str | None:
    revoked = request.query.get("revoked", "")
    if not re.fullmatch(r"[0-9]{1,6}", revoked):  # isdigit() takes "²", int() 5000 digits
        return None
    count = int(revoked)
    if count == 0:
        return "There were no other sessions to sign out."
    return f"Signed out {count} other session{'s' if count != 1 else ''}."


def _readable_time(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _as_json(view: SessionView) -> dict[str, Any]:
    return {
        "id": view.id,
        "aal": view.aal,
        "authenticated_at": format_timestamp(view.authenticated_at),
        "expires_at": format_timestamp(view.expires_at),
        "current": view.current,
        "devices": [
            {"ip_address": d.ip_address, "user_agent": d.user_agent, "browser": d.label,
             "location": d.location}
            for d in view.devices
        ],
    }
