"""The gateway's own endpoints under `auth_prefix` (docs/reference.md#endpoints).

whoami, logout, refresh, health, ready, and the signed-out page logout returns to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.context import Services, allowed_origins, request_origin, situation_for
from gateway.credentials import Credential, extract_credential
from gateway.csrf import check_origin
from gateway.errors import (
    AccessDeniedError,
    GatewayError,
    MethodNotAllowedError,
    NotFoundError,
    OryUnavailableError,
    SessionRequiredError,
    StepUpRequiredError,
)
from gateway.forward_auth import check
from gateway.hooks import check_token, read_revocation
from gateway.ory import StepUpRequired
from gateway.outcome import outcome_of
from gateway.paths import RequestTarget
from gateway.redirects import login_url, safe_return_to
from gateway.respond import json_error, json_response, redirect
from gateway.session import Session, format_timestamp
from gateway.sessions_page import handle_sessions, is_sessions_path

Handler = Callable[[web.Request, Services], Awaitable[web.StreamResponse]]


async def handle_endpoint(
    request: web.Request, services: Services, target: RequestTarget
) -> web.StreamResponse:
    """Dispatch `/_auth/<name>`; unknown names 404, wrong methods 405."""
    name = target.path[len(services.config.server.auth_prefix):].strip("/")
    methods = ENDPOINTS.get(name)
    try:
        if name in ("check", "check/nginx"):  # any method: it describes another request
            return await check(request, services, nginx=name == "check/nginx")
        if is_sessions_path(name):
            current = await current_session(request, services)
            response = await handle_sessions(request, services, name, current)
            if response is None:
                raise MethodNotAllowedError("no such sessions call for this method")
            return response
        if methods is None:
            raise NotFoundError(f"no gateway endpoint {target.path!r}")
        handler = methods.get(request.method) or methods.get(
            "GET" if request.method == "HEAD" else ""
        )
        if handler is None:
            raise MethodNotAllowedError(f"use {', '.join(sorted(methods))}")
        return await handler(request, services)
    except GatewayError as error:
        credential = _credential(request, services)
        situation = situation_for(request, services, target, credential)
        return services.responder.render(request, error, situation)


def _credential(request: web.Request, services: Services) -> Credential | None:
    ory = services.config.ory
    return extract_credential(
        request.headers, ory.credentials, ory.session_cookie, key=services.credential_key
    )


def _return_to(request: web.Request, services: Services) -> str | None:
    """The caller's `return_to` as a same-origin path, or None."""
    origin = request_origin(request, services.config)
    return safe_return_to(request.query.get("return_to"), (origin,))


def describe(session: Session) -> dict[str, object]:
    """The whoami document: identity and what the upstream would be told."""
    return {
        "session_id": session.session_id,
        "identity_id": session.identity_id,
        "email": session.email,
        "aal": session.aal,
        "authenticated_at": format_timestamp(session.authenticated_at),
        "expires_at": format_timestamp(session.expires_at),
        "headers": dict(session.headers),
    }


async def current_session(request: web.Request, services: Services) -> tuple[Credential, Session]:
    """The caller's valid session, or SessionRequired / StepUpRequired / OryUnavailable."""
    credential = _credential(request, services)
    if credential is None:
        raise SessionRequiredError()
    outcome = outcome_of(request)
    result = await services.auth.lookup(credential, outcome)
    if isinstance(result, Session):
        outcome.identity_id = result.identity_id
    if isinstance(result, StepUpRequired):
        raise StepUpRequiredError()
    if not isinstance(result, Session):
        raise SessionRequiredError()
    return credential, result


async def whoami(request: web.Request, services: Services) -> web.StreamResponse:
    """200 with the session the gateway sees; never a redirect.
    docs/reference.md#endpoints: 401 whenever
    there is no usable session, a step-up included (its id still says why); Ory down 503."""
    request_id = outcome_of(request).request_id
    try:
        _, session = await current_session(request, services)
    except StepUpRequiredError as error:
        return json_error(error, status=401, request_id=request_id)
    except GatewayError as error:
        return json_error(error, request_id=request_id)
    return json_response(describe(session))


async def logout(request: web.Request, services: Services) -> web.StreamResponse:
    """Evict the cached session, then let Ory end it (its logout URL), then return_to."""
    origin = request_origin(request, services.config)
    back = _return_to(request, services)
    credential = _credential(request, services)
    if credential is None:
        return redirect(back or "/")
    if request.method == "POST":
        check_origin(request, credential, allowed_origins(request, services.config))
    elif _embedded_by_another_site(request):
        raise AccessDeniedError("another site may link to logout, not load it in the background")
    if credential.from_header:
        session = await _known_session(services, credential)
        await services.revoker.logout_token(services.auth.ory, credential, session)
        return redirect(back or "/")
    await services.revoker.logout_cookie(credential)
    landing = back or f"{services.config.server.auth_prefix}/signed-out"
    url = await services.auth.ory.logout_url(credential, origin + landing)
    return redirect(url or back or "/")


async def _known_session(services: Services, credential: Credential) -> Session | None:
    """The credential's session (cached, else asked), so every cached form of it can go."""
    try:
        result = await services.auth.lookup(credential)
    except OryUnavailableError:
        return None
    return result if isinstance(result, Session) else None


def _embedded_by_another_site(request: web.Request) -> bool:
    """An `<img>` or hidden `<iframe>` of /_auth/logout on a foreign page (logout CSRF).
    A top-level navigation (a link the user followed) is let through, as are browsers
    that send no Sec-Fetch-* headers."""
    headers = request.headers
    if headers.get("Sec-Fetch-Site") != "cross-site":
        return False
    return (
        headers.get("Sec-Fetch-Mode", "navigate") != "navigate"
        or headers.get("Sec-Fetch-Dest", "document") != "document"
    )


async def refresh(request: web.Request, services: Services) -> web.StreamResponse:
    """Send the browser to re-authenticate; the cached entry goes at once."""
    credential = _credential(request, services)
    if credential is not None:
        services.revoker.forget(credential)
    origin = request_origin(request, services.config)
    back = origin + (_return_to(request, services) or "/")
    ory = services.config.ory
    return redirect(login_url(ory.browser_base, ory.login_path, back, refresh=True))


async def signed_out(request: web.Request, services: Services) -> web.StreamResponse:
    """Where logout lands by default: says so plainly and offers to sign in again."""
    context = {"title": "Signed out", "sign_in": "/",
               "request_id": outcome_of(request).request_id}
    return services.pages.render("signed_out.html", context)


async def health(request: web.Request, services: Services) -> web.StreamResponse:
    """Liveness: the process serves. No Ory call."""
    return json_response({"status": "ok"})


async def ready(request: web.Request, services: Services) -> web.StreamResponse:
    """Readiness: Ory answers."""
    fleet = services.fleet
    extra = {} if fleet is None else {"fleet": "connected" if fleet.connected else "disconnected"}
    if await services.auth.ory.is_ready():
        return json_response({"status": "ok", **extra})
    return json_error(
        OryUnavailableError(), request_id=outcome_of(request).request_id, extra=extra
    )


async def revoke_hook(request: web.Request, services: Services) -> web.StreamResponse:
    """Evict an identity's sessions, or one session, on every replica; how many entries
    this one dropped (docs/reference.md#the-revocation-hook)."""
    check_token(request, services.config.hooks.token)
    identity_id, session_id = await read_revocation(request)
    return json_response({"evicted": await services.revoker.hook(identity_id, session_id)})


ENDPOINTS: dict[str, dict[str, Handler]] = {
    "whoami": {"GET": whoami},
    "logout": {"GET": logout, "POST": logout},
    "refresh": {"GET": refresh},
    "signed-out": {"GET": signed_out},
    "health": {"GET": health},
    "ready": {"GET": ready},
    "hooks/revoke": {"POST": revoke_hook},
}
