"""The composition root: config in, aiohttp Application out, wired in one phase.

Two kinds of parts. `Resources` live as long as the app (connection pools, the session
cache, timers, metrics) and are closed with it. `Services` hold everything that follows from
the configuration; `build_services` makes them from a config and the resources, at start
and again on every reload (gateway.reload), so nothing is ever patched in place.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from gateway.access import Authenticator
from gateway.accesslog import REPORTING, Reporting
from gateway.bus import EvictionBus, FanOut, NoBus
from gateway.cache import SessionCache
from gateway.config import GatewayConfig
from gateway.context import GATEWAY, Gateway, Services
from gateway.credentials import mac_key
from gateway.csrf import CsrfSigner
from gateway.deadlines import Watchdog
from gateway.fleet import RedisBus, RedisLink, SharedSessions, fleet_key
from gateway.headers import normalise_name
from gateway.live import LiveConnections
from gateway.logs import install_log_redaction
from gateway.observe import NO_METRICS, Metrics
from gateway.ory import HttpOryClient, OryClient
from gateway.pages import Pages
from gateway.pipeline import handle_request
from gateway.proxy import Upstream
from gateway.redirects import LoopGuard
from gateway.relay.client import UpstreamPool, websocket_session
from gateway.relay.server import (
    CLIENT_LIMITS,
    SOLE_HANDLER,
    ClientLimits,
    defer_expect,
    handler_args,
)
from gateway.respond import Responder
from gateway.revocation import Revoker
from gateway.routes import RouteTable
from gateway.websocket import OPEN_BRIDGES, close_bridges

Clock = Callable[[], float]
MARKER_MARGIN = 60.0  # seconds a revocation marker outlives the longest shared entry


def session_schema(config: GatewayConfig) -> str:
    """What a cached session's contents follow from (its identity headers, the fields
    routes require): replicas that differ here (a rolling change) never share sessions."""
    text = repr((config.identity_headers, RouteTable(config).claim_paths()))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


@dataclass
class Resources:
    """What outlives a configuration: opened once per app, closed with it."""

    clock: Clock
    metrics: Metrics
    cache: SessionCache
    ory_http: aiohttp.ClientSession
    websockets: aiohttp.ClientSession
    loop_guard: LoopGuard
    revoker: Revoker
    live: LiveConnections
    watchdog: Watchdog = field(default_factory=Watchdog)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # when none is set
    pools: dict[tuple[str, int], UpstreamPool] = field(default_factory=dict)
    ory: OryClient | None = None
    fleet: RedisLink | None = None

    @classmethod
    def open(
        cls, config: GatewayConfig, clock: Clock, metrics: Metrics, ory: OryClient | None,
        bus: EvictionBus,
    ) -> Resources:
        """Call inside the running loop (ClientSessions bind to it). `ory` replaces the HTTP
        Ory client (tests), across reloads too; `bus` carries evictions to the other workers
        of this machine; `[fleet]` adds Redis for the other replicas."""
        link, shared = None, None
        if config.fleet.redis_url:
            link = RedisLink(config.fleet.redis_url, metrics)
            key = fleet_key(config.server.secret.encode())
            prefix = config.fleet.key_prefix
            bus = FanOut(bus, RedisBus(link, prefix, key, config.cache.ttl + MARKER_MARGIN,
                                          metrics))
            if config.fleet.shared_cache:
                shared = SharedSessions(link, prefix, key, config.ory.timeout + 1.0, clock)
        live = LiveConnections()
        cache = SessionCache(
            ttl=config.cache.ttl, max_entries=config.cache.max_entries,
            stale_if_error=config.cache.stale_if_error,
            refresh_ahead=config.cache.refresh_ahead, clock=clock, bus=bus, shared=shared,
            lock_wait=config.ory.timeout, on_evict=live.evicted,
        )
        cache.schema = session_schema(config)
        metrics.watch_cache(cache.__len__)
        if link is not None:
            link.on_return(cache.clear)  # it may have missed evictions meanwhile
            link.start()
        ory_http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(limit=config.ory.max_connections, ttl_dns_cache=60),
        )
        return cls(
            clock, metrics, cache, ory_http, websocket_session(), loop_guard=LoopGuard(clock),
            revoker=Revoker(cache, metrics), live=live, ory=ory, fleet=link,
        )

    def pool(self, url: str, keepalive: int) -> UpstreamPool:
        """The keep-alive pool for one upstream (kept across reloads while still used)."""
        key = (url, keepalive)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = UpstreamPool(url, keepalive_connections=keepalive)
        return pool

    def retire_pools(self, services: Services) -> None:
        """Close the pools a new configuration no longer uses (connections in use close as
        they are given back)."""
        keepalive = services.config.upstream.keepalive_connections
        used = {(u.base, keepalive) for u in (services.upstream, *services.upstreams.values())}
        for key in [key for key in self.pools if key not in used]:
            self.pools.pop(key).close()

    async def close(self) -> None:
        await self.cache.stop()
        if self.fleet is not None:
            await self.fleet.close()
        self.watchdog.close()
        for pool in self.pools.values():
            pool.close()
        await self.websockets.close()
        await self.ory_http.close()


def build_services(config: GatewayConfig, resources: Resources) -> Services:
    """Everything that follows from `config`."""
    routes = RouteTable(config)
    ory_client = resources.ory or HttpOryClient(
        resources.ory_http, base_url=config.ory.url, cookie_name=config.ory.session_cookie,
        timeout=config.ory.timeout, identity_headers=config.identity_headers,
        clock=resources.clock, metrics=resources.metrics, claim_paths=routes.claim_paths(),
    )
    pages = Pages(config.server.templates_dir)
    keepalive = config.upstream.keepalive_connections

    def upstream_at(url: str) -> Upstream:
        return Upstream(url, resources.pool(url, keepalive), resources.websockets)

    upstream = upstream_at(config.upstream.url)
    upstreams = {r.upstream: upstream_at(r.upstream) for r in config.routes if r.upstream}
    return Services(
        config=config,
        routes=routes,
        auth=Authenticator(ory_client, resources.cache, resources.clock),
        responder=Responder(config, resources.loop_guard, pages),
        csrf=CsrfSigner(config.server.secret.encode() or resources.secret),
        pages=pages,
        upstream=upstream,
        upstreams=upstreams,
        watchdog=resources.watchdog,
        metrics=resources.metrics,
        revoker=resources.revoker,
        live=resources.live,
        fleet=resources.fleet,
        clock=resources.clock,
        # The request id's header too, in every spelling: the gateway sets it.
        strip=Services.identity_names(config) | {normalise_name(config.server.request_id_header)},
        credential_key=mac_key(config.server.secret.encode() or resources.secret),
    )


RESOURCES = web.AppKey("resources", Resources)


async def build_app(
    config: GatewayConfig,
    *,
    ory: OryClient | None = None,
    clock: Clock = time.time,
    bus: EvictionBus | None = None,
    metrics: Metrics = NO_METRICS,
) -> web.Application:
    """The gateway as an aiohttp app, built inside the running loop. `ory` swaps the Ory
    client (tests); `bus` carries evictions to other workers and replicas."""
    install_log_redaction()
    limits = ClientLimits(
        config.server.header_timeout, config.server.keepalive_timeout,
        config.server.request_id_header,
    )
    app = web.Application(handler_args=handler_args(limits))
    app[CLIENT_LIMITS] = limits
    resources = Resources.open(config, clock, metrics, ory, bus or NoBus())
    resources.cache.start()
    app[RESOURCES] = resources
    app[GATEWAY] = Gateway(build_services(config, resources))
    app[REPORTING] = Reporting(
        lines=config.server.access_log, json=config.server.log_format == "json",
        metrics=metrics,
    )
    app[OPEN_BRIDGES] = weakref.WeakSet()
    app.on_shutdown.append(close_bridges)
    app.on_cleanup.append(_closing(resources))
    app.router.add_route("*", "/{tail:.*}", handle_request, expect_handler=defer_expect)
    app[SOLE_HANDLER] = handle_request  # the GatewayRunner skips the router
    return app


def _closing(resources: Resources) -> Callable[[web.Application], Awaitable[None]]:
    async def close(app: web.Application) -> None:
        await resources.close()

    return close
