"""`/_auth/check` and `/_auth/check/nginx`: the decision alone, for a proxy that stays in
front (docs/reference.md#forward-auth).

Caddy's `forward_auth`, Traefik's `forwardAuth` and nginx's `auth_request` ask before they
pass a request on. The original request is described by forwarded headers, believed only
from `server.trusted_proxies`; its path goes through the same canonical form, and the answer
comes from `decision.decide`, exactly as for a proxied request. Allowed: 200 with the
identity headers for the proxy to copy. Otherwise `/check` answers what the gateway would
(a 303 to the login, 401/403 JSON, 503); `/check/nginx` says it in the three statuses nginx
understands, with the login URL in `Location`.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from gateway.accesslog import loggable_path
from gateway.context import (
    Services,
    allowed_origins,
    forwarded_host,
    is_trusted_peer,
    situation_for,
)
from gateway.credentials import extract_credential, request_cookies
from gateway.decision import decide
from gateway.errors import (
    AccessDeniedError,
    BadRequestError,
    GatewayError,
    RefreshRequiredError,
    SessionRequiredError,
    StepUpRequiredError,
)
from gateway.headers import underscored
from gateway.outcome import OUTCOME, Outcome
from gateway.paths import RequestTarget, canonical_target
from gateway.respond import NO_STORE, json_error
from gateway.routes import RouteTable, request_host
from gateway.websocket import is_allowed_origin

log = logging.getLogger("gateway.forward_auth")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Z-]+")  # RFC 9110 token (upper-cased)
_LOGIN_ERRORS = (SessionRequiredError, StepUpRequiredError, RefreshRequiredError)
# What describes the request a check is about (normalised names).
_DESCRIBING = frozenset({
    "x-forwarded-host", "x-forwarded-proto", "x-forwarded-method", "x-forwarded-uri",
    "x-original-method", "x-original-uri",
})


def _described(request: web.Request, name: str, *, nginx: bool) -> str | None:
    """`X-Forwarded-<name>` or `X-Original-<name>`; each endpoint believes its own proxy's
    spelling first, because a proxy overwrites only the one it sets and passes the other
    through from the client (nginx forwards a client's `X-Forwarded-Uri` as it came)."""
    forwarded = _one_line(request, f"X-Forwarded-{name}")
    original = _one_line(request, f"X-Original-{name}")
    return (original or forwarded) if nginx else (forwarded or original)


def _one_line(request: web.Request, name: str) -> str | None:
    """A describing header's value; given twice, differently, it describes nothing: a proxy
    that adds its line after a client's would have the client's believed."""
    values = request.headers.getall(name, ())
    if len(values) > 1 and len({value.strip() for value in values}) > 1:
        raise BadRequestError(f"{name} is given more than once, with different values")
    return values[0] if values else None


def original_method(
    request: web.Request, routes: RouteTable, path: str, host: str, *, nginx: bool
) -> str:
    """The described method. Where the routes for the path differ by method, only the
    endpoint's own spelling is believed and it must be there: a proxy that does not set it
    (nginx's own `auth_request` example sets only the URI) passes the client's other
    spelling through, or nothing. Elsewhere a missing one is GET, which decides the same."""
    if routes.depends_on_method(path, host):
        own = "X-Original-Method" if nginx else "X-Forwarded-Method"
        value = _one_line(request, own)
        if value is None:
            raise BadRequestError(f"{own} is missing, and the routes for this path depend on "
                                  "the method")
    else:
        value = _described(request, "Method", nginx=nginx) or "GET"
    method = value.strip().upper()
    if not _TOKEN.fullmatch(method):
        raise BadRequestError("X-Forwarded-Method (or X-Original-Method) is not an HTTP method")
    return method


def original_host(request: web.Request, routes: RouteTable, path: str) -> str:
    """The described host. Without `X-Forwarded-Host` the check's own Host would be judged
    (for nginx, the name of its upstream block): refused where a host route may apply."""
    headers = request.headers
    if not headers.get("X-Forwarded-Host", "").strip() and routes.depends_on_host(path):
        raise BadRequestError("X-Forwarded-Host is missing, and the routes for this path "
                              "depend on the host")
    return request_host(forwarded_host(headers, trusted=True))


def original_uri(request: web.Request, *, nginx: bool) -> str:
    uri = _described(request, "Uri", nginx=nginx)
    if not uri:
        raise BadRequestError("X-Forwarded-Uri (or X-Original-URI) names no request")
    return uri.strip()


def forwarded_target(uri: str) -> RequestTarget:
    """The canonical form of the URI the proxy describes (ambiguous: 400, as for a proxied
    request), and more: the proxy passes the app the URI as it came, not our canonical
    form, so an empty segment is refused too (`//pub/x` is the path `/pub/x` to us, and the
    host `pub` to a URL parser in the app)."""
    target = canonical_target(uri)
    if "//" in uri.partition("?")[0]:
        raise BadRequestError("the path has an empty segment (//), which the app may read "
                              "as something else")
    return target


def is_websocket_handshake(request: web.Request, method: str) -> bool:
    """The described request opens a WebSocket: a GET with `Sec-WebSocket-Key` (proxies keep
    `Upgrade` to themselves, it is hop-by-hop, but pass the key on), or a CONNECT, which is
    how HTTP/2 and HTTP/3 open one (RFC 8441, RFC 9220) and what nothing else asks a check."""
    if method == "CONNECT":
        return True
    headers = request.headers
    return method == "GET" and (
        "Sec-WebSocket-Key" in headers or headers.get("Upgrade", "").lower() == "websocket"
    )


async def check(
    request: web.Request, services: Services, *, nginx: bool
) -> web.StreamResponse:
    """Decide about the request the proxy describes."""
    outcome = request[OUTCOME]
    if not is_trusted_peer(request, services.config):
        log.warning("forward auth refused for %s: not in server.trusted_proxies",
                    request.remote or "an unknown peer")
        outcome.decision = "denied"
        return json_error(AccessDeniedError("forward auth answers trusted proxies only"),
                          request_id=outcome.request_id)
    spelled = underscored(request.headers.keys())  # nearly always empty: one pass
    if spelled and spelled & Services.identity_names(services.config):
        log.warning("forward auth refused: an identity header spelled with underscores")
        return json_error(BadRequestError(
            "an identity header is spelled with underscores; proxies pass it on to the app"
        ), request_id=outcome.request_id)
    if spelled and spelled & _DESCRIBING:
        log.warning("forward auth refused: a forwarded header spelled with underscores")
        return json_error(BadRequestError(
            "a forwarded header (X_Forwarded_Host, say) is spelled with underscores; proxies "
            "pass it on to the app, which may read it as the real one"
        ), request_id=outcome.request_id)
    target = forwarded_target(original_uri(request, nginx=nginx))
    host = original_host(request, services.routes, target.path)
    method = original_method(request, services.routes, target.path, host, nginx=nginx)
    outcome.checked = (method, loggable_path(target.path)[0])  # for the access line
    config = services.config.ory
    credential = extract_credential(
        request.headers, config.credentials, config.session_cookie,
        request_cookies(request.headers), key=services.credential_key,
    )
    try:
        allow = await decide(services.routes, services.auth, method, target.path, host,
                             credential, outcome)
        if is_websocket_handshake(request, method) and not is_allowed_origin(
            request.headers.get("Origin"), allowed_origins(request, services.config)
        ):
            outcome.decision = "denied"
            raise AccessDeniedError("cross-site WebSocket upgrade refused")
    except GatewayError as error:
        situation = situation_for(request, services, target, credential, method=method)
        if nginx:
            return _for_nginx(services, error, situation.navigation, situation.return_to,
                              outcome.request_id, outcome)
        return services.responder.render(request, error, situation)
    headers = {"Cache-Control": NO_STORE}
    if allow.session is not None:
        headers.update(allow.session.headers)
    return web.Response(status=200, headers=headers)


def _for_nginx(
    services: Services, error: GatewayError, navigation: bool, return_to: str,
    request_id: str, outcome: Outcome,
) -> web.Response:
    """nginx's auth_request understands 2xx, 401 and 403 (anything else is its 500): a login
    is a 401 with the login URL in Location (for navigations; always for step-up and
    re-authentication), a refusal a 403."""
    if error.decision is not None:
        outcome.decision = error.decision
    if isinstance(error, _LOGIN_ERRORS):
        login = services.responder.login_for(error, return_to)
        response = json_error(error, status=401, request_id=request_id, login=login)
        if navigation or not isinstance(error, SessionRequiredError):
            response.headers["Location"] = login
            if isinstance(error, SessionRequiredError):
                outcome.decision = "login_redirect"
        return response
    return json_error(error, request_id=request_id)
