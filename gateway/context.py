"""The services one gateway app shares between its handlers, and per-request facts."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDictProxy

from gateway.access import Authenticator
from gateway.config import GatewayConfig
from gateway.credentials import Credential
from gateway.csrf import CsrfSigner
from gateway.deadlines import Watchdog
from gateway.errors import BadRequestError
from gateway.fleet import RedisLink
from gateway.headers import normalise_name
from gateway.live import LiveConnections
from gateway.observe import Metrics
from gateway.pages import Pages
from gateway.paths import RequestTarget
from gateway.proxy import Upstream
from gateway.redirects import LOOP_COOKIE
from gateway.respond import Responder, Situation, is_browser_navigation
from gateway.revocation import Revoker
from gateway.routes import Route, RouteTable, request_host
from gateway.units import IPNetwork


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request needs under one configuration: built whole by app.py, and built
    anew (never patched) when the configuration is reloaded."""

    config: GatewayConfig
    routes: RouteTable
    auth: Authenticator
    responder: Responder
    csrf: CsrfSigner
    pages: Pages
    upstream: Upstream
    watchdog: Watchdog  # upstream answer deadlines (one timer for all)
    metrics: Metrics
    revoker: Revoker
    clock: Callable[[], float]
    strip: frozenset[str]  # normalised identity header names
    credential_key: bytes  # keys the hash of every credential (credentials.mac_key)
    live: LiveConnections  # open WebSockets and streams, each ending with its session
    fleet: RedisLink | None  # the replicas' Redis, with `[fleet]`

    upstreams: dict[str, Upstream]  # per-route apps, by URL (`routes.upstream`)

    def upstream_for(self, route: Route) -> Upstream:
        """The app a route's requests go to: its own, or `[upstream]`."""
        if route.upstream is None:
            return self.upstream
        return self.upstreams[route.upstream]

    @staticmethod
    def identity_names(config: GatewayConfig) -> frozenset[str]:
        """Every identity header name, normalised for stripping
        (docs/reference.md#identity-header-stripping)."""
        return frozenset(normalise_name(h.name) for h in config.identity_headers)


class Gateway:
    """The app's one mutable thing: the current Services, swapped whole by a reload. A request
    reads it once, at its start, and finishes under the configuration it began with."""

    def __init__(self, services: Services) -> None:
        self.services = services


GATEWAY = web.AppKey("gateway", Gateway)


def services_of(app: web.Application) -> Services:
    """The Services requests starting now get."""
    return app[GATEWAY].services


def situation_for(
    request: web.Request, services: Services, target: RequestTarget,
    credential: Credential | None, *, method: str | None = None,
) -> Situation:
    """What the error renderer needs: may it redirect, and to come back where? `method`:
    the original request's, when this one only asks about it (forward auth)."""
    html_allowed = credential is None or not credential.from_header
    navigation = html_allowed and is_browser_navigation(request, method)
    browser_cookie = request.cookies.get(LOOP_COOKIE) or None
    browser = "|".join(
        (client_address(request, services.config), request.headers.get("User-Agent", ""),
         credential.key.hex() if credential else "")
    )
    return_to = request_origin(request, services.config) + target.path_qs
    return Situation(
        navigation=navigation,
        html_allowed=html_allowed,
        return_to=return_to,
        browser_key=browser,
        browser_cookie=browser_cookie,
        user_initiated=request.headers.get("Sec-Fetch-Site", "").lower() == "none",
    )


def is_trusted_peer(request: web.BaseRequest, config: GatewayConfig) -> bool:
    """Whether the direct peer is a proxy whose X-Forwarded-* we believe."""
    networks = config.server.trusted_proxies
    if not networks or not request.remote:
        return False
    return _in_networks(request.remote, networks)


@functools.lru_cache(maxsize=4096)
def _in_networks(remote: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Cached: a forward-auth proxy asks from the same few addresses, and parsing one costs
    as much as the rest of a cached check."""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in networks)


def client_address(request: web.BaseRequest, config: GatewayConfig) -> str:
    """The client's address: what the nearest trusted proxy put last in X-Forwarded-For (a
    proxy asking /_auth/check speaks for many clients), else the peer."""
    if is_trusted_peer(request, config):
        chain = ",".join(request.headers.getall("X-Forwarded-For", []))
        nearest = chain.rsplit(",", 1)[-1].strip()
        if nearest:
            return nearest
    return request.remote or ""


def forwarded_host(headers: CIMultiDictProxy[str], trusted: bool) -> str:
    """The Host the client asked for: X-Forwarded-Host from a trusted proxy, else Host."""
    host = headers.get("Host", "")
    forwarded = all_lines(headers, "X-Forwarded-Host") if trusted else None
    if forwarded is not None:
        named = one_forwarded_value(forwarded)
        if named is None:
            raise BadRequestError(
                "X-Forwarded-Host is not one host (several, or an empty one in a list): the "
                "gateway and the app could each believe a different one"
            )
        host = named or host
    return host


def all_lines(headers: CIMultiDictProxy[str], name: str) -> str | None:
    """Every line of a header as one list (`a, b`): a proxy that appends a line of its own
    to a client's says as much as one that appends to the value."""
    values = headers.getall(name, ())
    if not values:
        return None
    return values[0] if len(values) == 1 else ",".join(values)


def one_forwarded_value(value: str) -> str | None:
    """A forwarded header's one value: `a` for `a` or `a, a` (proxies that append repeat
    it), None when it lists different ones (an app may read the first or the last: Rack
    and Werkzeug take the last) or an empty one (`,`, `a,`), "" when empty."""
    if "," not in value:
        return value.strip()
    values = {part.strip().lower() for part in value.split(",")}
    return values.pop() if len(values) == 1 and "" not in values else None


def request_origin(request: web.BaseRequest, config: GatewayConfig) -> str:
    """The origin the user sees: `public_url`, else the request's scheme and Host."""
    if config.server.public_url:
        return config.server.public_url
    trusted = is_trusted_peer(request, config)
    scheme = request.scheme
    host = request.headers.get("Host", "")
    if trusted:
        scheme = _believed(all_lines(request.headers, "X-Forwarded-Proto"), scheme)
        host = _believed(all_lines(request.headers, "X-Forwarded-Host"), host)
    if scheme not in ("http", "https") or not _is_host(host):
        host = f"{config.server.listen}"
        scheme = "http"
    return f"{scheme}://{host.lower()}"


def _believed(forwarded: str | None, own: str) -> str:
    """A trusted proxy's forwarded value, else `own`; "" when it names several (the origin
    then falls back to the listen address)."""
    if forwarded is None:
        return own
    value = one_forwarded_value(forwarded)
    if value is None:
        return ""
    return value or own


def allowed_origins(request: web.BaseRequest, config: GatewayConfig) -> tuple[str, ...]:
    """Origins trusted for WebSocket upgrades and state-changing `/_auth` calls."""
    return (request_origin(request, config), *config.server.allowed_origins)


def _is_host(value: str) -> bool:
    """A Host header we can safely put in a URL: host[:port], nothing else."""
    if not value or len(value) > 255:
        return False
    try:
        return request_host(value) != ""
    except BadRequestError:
        return False
