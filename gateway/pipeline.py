"""One proxied request, start to end
(docs/reference.md#request-flow): the pipeline you can read top to bottom.

canonical path -> decision (route, credential, session) -> upstream headers -> relay.
Errors raised anywhere on the way are rendered once, by the Responder; what happened is
noted in the request's Outcome for the access log and the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from aiohttp import HttpVersion, HttpVersion10, HttpVersion11, web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.access import Authenticator
from gateway.context import (
    GATEWAY,
    Services,
    allowed_origins,
    forwarded_host,
    is_trusted_peer,
    situation_for,
)
from gateway.credentials import (
    Cookies,
    Credential,
    cookie_header_without,
    extract_credential,
    request_cookies,
)
from gateway.decision import Allow, decide
from gateway.endpoints import handle_endpoint
from gateway.errors import (
    AccessDeniedError,
    BadRequestError,
    ExpectationFailedError,
    FramingError,
    GatewayError,
    VersionNotSupportedError,
)
from gateway.headers import ForwardingPeer, build_upstream_headers
from gateway.live import Tether
from gateway.outcome import OUTCOME, Outcome, request_id_from
from gateway.paths import RequestTarget, canonical_target
from gateway.proxy import forward
from gateway.redirects import GATEWAY_COOKIES
from gateway.relay.answers import awaits_continue, expects_continue, grant_continue
from gateway.relay.server import answer_as_http11
from gateway.routes import request_host
from gateway.session import Session
from gateway.websocket import bridge, is_allowed_origin, is_websocket_upgrade, upstream_url

_VERSIONS = (HttpVersion10, HttpVersion11)


async def handle_request(request: web.Request) -> web.StreamResponse:
    """The gateway's only aiohttp handler."""
    services = request.app[GATEWAY].services  # once: a reload meanwhile changes nothing here
    headers = request.headers  # once: each of aiohttp's cached properties costs a lookup
    trusted = is_trusted_peer(request, services.config)
    id_header = services.config.server.request_id_header
    outcome = request[OUTCOME] = Outcome(request_id_from(headers.get(id_header), trusted))
    try:
        if request.method == "CONNECT":  # a tunnel, whatever its target: never relayed
            raise BadRequestError("CONNECT is not accepted: the gateway is no tunnel")
        _check_framing(request.version, headers)
        target = canonical_target(request.raw_path)
    except BadRequestError as error:
        if isinstance(error, VersionNotSupportedError):
            answer_as_http11(request)
        refusal = services.responder.refuse_malformed(request, error)
        refusal.force_close()  # whatever follows on this socket was framed by a confused client
        response: web.StreamResponse = refusal
    else:
        prefix = services.config.server.auth_prefix
        if target.path == prefix or target.path.startswith(prefix + "/"):
            outcome.route, outcome.decision = "auth", "endpoint"
            response = await handle_endpoint(request, services, target)
        else:
            cookies = request_cookies(headers)
            credential = _credential(headers, services, cookies)
            try:
                response = await _proxy(
                    request, headers, services, target, credential, cookies, trusted, outcome
                )
            except GatewayError as error:
                situation = situation_for(request, services, target, credential)
                response = services.responder.render(request, error, situation)
    if not response.prepared:  # relayed answers carry it already
        response.headers[id_header] = outcome.request_id
    if "Expect" in headers and awaits_continue(request):
        response.force_close()  # a body we never asked for may or may not follow: no guessing
    if "Upgrade" in headers and not isinstance(response, web.WebSocketResponse):
        # aiohttp's parser took whatever followed this request for the upgraded protocol's
        # bytes: a request pipelined behind it would wait for ever. End the connection.
        response.force_close()
    return response


def _credential(
    headers: CIMultiDictProxy[str], services: Services, cookies: Cookies
) -> Credential | None:
    ory = services.config.ory
    return extract_credential(
        headers, ory.credentials, ory.session_cookie, cookies, key=services.credential_key
    )


def _check_framing(version: HttpVersion, headers: CIMultiDictProxy[str]) -> None:
    """RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, a smuggling vector; a
    transfer coding other than chunked alone would change what the body's bytes mean on the
    way (docs/reference.md#bodies-and-framing). Either way the connection ends here."""
    if version not in _VERSIONS:
        raise VersionNotSupportedError()
    codings = headers.getall("Transfer-Encoding", ())
    if not codings:
        return
    if version < HttpVersion11:
        raise FramingError("Transfer-Encoding is not allowed in an HTTP/1.0 request")
    if len(codings) > 1 or codings[0].strip().lower() != "chunked":
        raise FramingError("only the chunked transfer coding is accepted")


async def _proxy(
    request: web.Request,
    headers: CIMultiDictProxy[str],
    services: Services,
    target: RequestTarget,
    credential: Credential | None,
    cookies: Cookies,
    trusted: bool,
    outcome: Outcome,
) -> web.StreamResponse:
    method = request.method
    host = request_host(forwarded_host(headers, trusted))
    allow = await decide(
        services.routes, services.auth, method, target.path, host, credential, outcome
    )
    websocket = is_websocket_upgrade(method, headers)
    if websocket and not is_allowed_origin(
        headers.get("Origin"), allowed_origins(request, services.config)
    ):
        raise AccessDeniedError("cross-site WebSocket upgrade refused")
    if "Expect" in headers and request.version == HttpVersion11:
        if not expects_continue(request):
            raise ExpectationFailedError()
        await grant_continue(request)  # authorised: now the body may come
    sent = upstream_headers(
        request, headers, services, allow.session, credential, cookies, trusted
    )
    request_id = (services.config.server.request_id_header, outcome.request_id)
    sent[request_id[0]] = request_id[1]
    upstream = services.upstream_for(allow.route)
    timeout = services.config.upstream.timeout
    tether = _tether(services, allow, credential)
    if websocket:
        url = upstream_url(upstream.base, target.path_qs)
        return await bridge(
            request, upstream.websockets, url, sent, answer_within=timeout,
            max_message=services.config.server.websocket_max_message, request_id=request_id,
            metrics=services.metrics, tether=tether,
        )
    return await forward(
        request, upstream, target.path_qs, sent, answer_within=timeout,
        watchdog=services.watchdog, outcome=outcome, request_id=request_id,
        metrics=services.metrics, tether=tether,
    )


def _tether(services: Services, allow: Allow, credential: Credential | None) -> Tether | None:
    """A connection let in on a session ends with it, should it become long-lived
    (docs/reference.md#long-lived-connections); public routes and anonymous ones never."""
    session = allow.session
    if session is None or credential is None or allow.route.access == "public":
        return None
    ttl, clock = services.config.cache.ttl, services.clock
    recheck = partial(_recheck, services.auth, credential, ttl, clock)  # no closure cells
    return Tether(services.live, credential.key, session, recheck, ttl, clock)


async def _recheck(
    auth: Authenticator, credential: Credential, ttl: float, clock: Callable[[], float]
) -> tuple[Session, float] | None:
    """A long-lived connection's session, as Ory sees it now, and until when that holds."""
    result = await auth.lookup(credential)
    if not isinstance(result, Session):
        return None
    return result, auth.cache.fresh_until(credential.key) or clock() + ttl


def upstream_headers(
    request: web.Request,
    headers: CIMultiDictProxy[str],
    services: Services,
    session: Session | None,
    credential: Credential | None,
    cookies: Cookies,
    trusted: bool,
) -> CIMultiDict[str]:
    """Strip, then inject: the upstream sees only what the gateway vouches for
    (docs/reference.md#headers-toward-the-upstream)."""
    config = services.config
    peer = ForwardingPeer(
        remote_ip=request.remote or "",
        scheme=request.scheme,
        host=headers.get("Host", ""),
        trusted=trusted,
    )
    return build_upstream_headers(
        headers,
        strip=services.strip,
        identity=session.headers if session is not None else (),
        peer=peer,
        cookie_header=cookie_header_without(
            headers, config.ory.session_cookie, cookies, also=GATEWAY_COOKIES
        ),
        drop_authorization=credential is not None and credential.source == "bearer",
        preserve_host=config.upstream.preserve_host,
    )
