"""The composition root: config in, aiohttp Application out (it owns every long-lived resource)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import cast

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.access import Authenticator
from gateway.assets import templates_dir
from gateway.cache import SessionCache
from gateway.config import GatewayConfig
from gateway.context import SERVICES, Services
from gateway.csrf import CsrfSigner
from gateway.logs import install_log_redaction
from gateway.ory import HttpOryClient, OryClient
from gateway.pipeline import handle_request
from gateway.proxy import Upstream
from gateway.redirects import LoopGuard
from gateway.relay.client import UpstreamPool, websocket_session
from gateway.relay.server import CLIENT_LIMITS, ClientLimits, defer_expect, handler_args
from gateway.respond import Responder
from gateway.routes import RouteTable
from gateway.siblings import Siblings


def build_app(
    config: GatewayConfig,
    *,
    ory: OryClient | None = None,
    clock: Callable[[], float] = time.time,
    siblings: Siblings | None = None,
) -> web.Application:
    """The gateway as an aiohttp app; pass `ory` to swap the Ory client (tests) and
    `siblings` when other workers' caches must hear of every eviction."""
    install_log_redaction()
    limits = ClientLimits(config.server.header_timeout, config.server.keepalive_timeout)
    app = web.Application(handler_args=handler_args(limits))
    app[CLIENT_LIMITS] = limits
    cache = SessionCache(
        ttl=config.cache.ttl,
        max_entries=config.cache.max_entries,
        stale_if_error=config.cache.stale_if_error,
        refresh_ahead=config.cache.refresh_ahead,
        clock=clock,
    )
    services = Services(
        config=config,
        routes=RouteTable(config),
        auth=Authenticator(ory or cast(OryClient, _PendingOry()), cache, clock),
        responder=Responder(config, LoopGuard(clock)),
        csrf=CsrfSigner(config.server.secret.encode() or secrets.token_bytes(32)),
        clock=clock,
        strip=Services.identity_names(config),
    )
    app[SERVICES] = services
    aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(str(templates_dir())), autoescape=True
    )
    app.cleanup_ctx.append(_http_clients(services, ory))
    if siblings is not None:
        cache.announce = siblings.tell
        app.cleanup_ctx.append(_listening(siblings, cache))
    app.router.add_route("*", "/{tail:.*}", handle_request, expect_handler=defer_expect)
    return app


def _http_clients(
    services: Services, ory: OryClient | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """One long-lived ClientSession per target, closed with the app."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        config = services.config
        websockets = websocket_session()
        ory_http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(limit=config.ory.max_connections, ttl_dns_cache=60),
        )
        url = config.upstream.url
        pool = UpstreamPool(url, keepalive_connections=config.upstream.keepalive_connections)
        services.upstream = Upstream(url, pool, websockets)
        services.auth.ory = ory or HttpOryClient(
            ory_http,
            base_url=config.ory.url,
            cookie_name=config.ory.session_cookie,
            timeout=config.ory.timeout,
            identity_headers=config.identity_headers,
            clock=services.clock,
        )
        try:
            yield
        finally:
            services.watchdog.close()
            pool.close()
            await websockets.close()
            await ory_http.close()

    return lifecycle


def _listening(
    siblings: Siblings, cache: SessionCache
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        siblings.listen(cache.apply)
        try:
            yield
        finally:
            siblings.stop_listening()

    return lifecycle


class _PendingOry:
    """Placeholder until the app starts; any use before then is a programming error."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError("the gateway app has not been started")
