"""The one place errors become answers
(docs/reference.md#outcomes, #unauthenticated-answers, #errors).

A browser navigation gets a 303 to the login (or an HTML page); everything else gets JSON
in Ory's envelope. Once a streamed response has started, nobody calls this: the proxy
aborts the connection instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.errors import (
    ForbiddenError,
    GatewayError,
    RedirectLoopError,
    RefreshRequiredError,
    SessionRequiredError,
    StepUpRequiredError,
)
from gateway.outcome import outcome_of
from gateway.pages import Pages
from gateway.redirects import LoopGuard, login_url, loop_cookie_header

NO_STORE = "no-store"
_LOGIN_ERRORS = (SessionRequiredError, StepUpRequiredError, RefreshRequiredError)


def is_browser_navigation(request: web.Request, method: str | None = None) -> bool:
    """GET/HEAD that a browser makes to show a page (never XHR, never fetch()); `method`:
    the original request's, when this one only asks about it (forward auth)."""
    if (method or request.method) not in ("GET", "HEAD"):
        return False
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return False
    mode = request.headers.get("Sec-Fetch-Mode")
    if mode is not None:
        return mode.lower() == "navigate"
    return prefers_html(request.headers.get("Accept", ""))


def prefers_html(accept: str) -> bool:
    """`Accept` names text/html and rates it at least as high as application/json."""
    weights: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        weights[media.lower()] = quality
    html = max(weights.get("text/html", 0.0), weights.get("application/xhtml+xml", 0.0))
    return html > 0 and html >= weights.get("application/json", 0.0)


@dataclass(frozen=True, slots=True)
class Situation:
    """What the renderer needs to know about the request that failed."""

    navigation: bool  # a browser navigation that may be redirected
    html_allowed: bool  # False when the credential came from a header: JSON only
    # (docs/reference.md#credential)
    return_to: str  # absolute URL of what was asked for (for the login)
    browser_key: str  # who the browser is when it keeps no cookies, for the loop guard
    browser_cookie: str | None  # the loop cookie's value, when the browser sent one
    user_initiated: bool  # Sec-Fetch-Site: none (typed URL, bookmark): never part of a loop


class Responder:
    """Builds every error answer; owns the redirect-loop guard."""

    def __init__(self, config: GatewayConfig, loop_guard: LoopGuard, pages: Pages) -> None:
        self._config = config
        self._guard = loop_guard
        self._pages = pages

    def login_for(self, error: GatewayError, return_to: str) -> str:
        """The login URL that resolves `error` (step-up, refresh or plain sign-in)."""
        ory = self._config.ory
        return login_url(
            ory.browser_base, ory.login_path, return_to,
            refresh=isinstance(error, RefreshRequiredError),
            aal="aal2" if isinstance(error, StepUpRequiredError) else None,
        )

    def render(
        self, request: web.Request, error: GatewayError, situation: Situation
    ) -> web.StreamResponse:
        """303 / HTML page / JSON envelope for one error; notes the decision it stands for.
        An error whose request cannot be trusted to end where it seems closes the
        connection."""
        response = self._render(request, error, situation)
        if error.closes:
            response.force_close()
        return response

    def _render(
        self, request: web.Request, error: GatewayError, situation: Situation
    ) -> web.StreamResponse:
        outcome = outcome_of(request)
        if error.decision is not None:
            outcome.decision = error.decision
        login = None
        if isinstance(error, _LOGIN_ERRORS):
            login = self.login_for(error, situation.return_to)
        if situation.navigation and login is not None:
            looping, new_cookie = False, None
            if not situation.user_initiated:
                looping, new_cookie = self._guard.check(
                    situation.browser_cookie, situation.browser_key, situation.return_to
                )
            if not looping:
                if isinstance(error, SessionRequiredError):
                    outcome.decision = "login_redirect"
                response = redirect(login)
                if new_cookie is not None:
                    response.headers["Set-Cookie"] = loop_cookie_header(new_cookie)
                return response
            error = RedirectLoopError()
        if situation.navigation or (situation.html_allowed and _wants_html(request)):
            return self.page(request, error, login=login, return_to=situation.return_to)
        return json_error(error, login=login, request_id=outcome.request_id)

    def refuse_malformed(self, request: web.Request, error: GatewayError) -> web.Response:
        """A request too malformed to route: the page for a navigation, else JSON."""
        outcome = outcome_of(request)
        outcome.decision = "bad_request"
        if is_browser_navigation(request):
            return self.page(request, error, login=None)
        return json_error(error, request_id=outcome.request_id)

    def page(
        self, request: web.Request, error: GatewayError, *, login: str | None,
        return_to: str = "/",
    ) -> web.Response:
        """The HTML error page from templates/: for a signed-in user that a route's
        `require` turns away, one that says who is signed in and offers another account."""
        context: dict[str, Any] = {
            "request_id": outcome_of(request).request_id,
            "title": HTTPStatus(error.status).phrase,
            "error": error,
            "status": error.status,
            "login": login,
            "cookie_name": self._config.ory.session_cookie,
            "auth_prefix": self._config.server.auth_prefix,
        }
        template = "error.html"
        if isinstance(error, RedirectLoopError):
            template = "loop.html"
        elif isinstance(error, ForbiddenError):
            template = "forbidden.html"
            context.update(signed_in_as=error.signed_in_as, return_to=return_to)
        return self._pages.render(template, context, status=error.status)


def _wants_html(request: web.Request) -> bool:
    """A browser page load that cannot be redirected (e.g. POST) still reads better as HTML."""
    return (
        request.headers.get("X-Requested-With", "").lower() != "xmlhttprequest"
        and request.headers.get("Sec-Fetch-Mode", "navigate").lower() == "navigate"
        and prefers_html(request.headers.get("Accept", ""))
    )


def redirect(location: str) -> web.Response:
    """303 See Other, never cached."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": NO_STORE})


def json_error(
    error: GatewayError, *, login: str | None = None, status: int | None = None,
    request_id: str | None = None, extra: dict[str, Any] | None = None,
) -> web.Response:
    """Ory's error envelope: `{"error": {"id", "code", "status", "request", "message"}}`
    (Ory's key order); `status` overrides the error's own code where the reference fixes it
    (whoami: always 401); `extra` adds top-level keys (as Ory's own errors sometimes do)."""
    code = status or error.status
    body: dict[str, Any] = {
        "id": error.error_id,
        "code": code,
        "status": HTTPStatus(code).phrase,
    }
    if request_id is not None:
        body["request"] = request_id
    if error.reason:
        body["reason"] = error.reason
    if login is not None:
        body["details"] = {"login_url": login}
    body["message"] = error.message
    document: dict[str, Any] = {"error": body}
    if login is not None:
        document["redirect_browser_to"] = login
    if extra:
        document.update(extra)
    return json_response(document, status=code)


def json_response(document: Any, *, status: int = 200) -> web.Response:
    """JSON that may describe a session: never stored by any cache (docs/reference.md#endpoints)."""
    return web.Response(
        status=status,
        body=json.dumps(document, separators=(",", ":")).encode(),
        content_type="application/json",
        headers={"Cache-Control": NO_STORE},
    )
