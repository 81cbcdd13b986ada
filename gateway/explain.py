"""Human-readable reports for `gateway check` and `gateway explain`
(docs/reference.md#command-line)."""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.config import GatewayConfig
from gateway.errors import BadRequestError
from gateway.headers import normalise_name
from gateway.paths import canonical_target
from gateway.redirects import login_url
from gateway.routes import Route, RouteTable, describe_requirement, request_host

_OUTCOMES = {
    "public": "proxied without a session look-up; identity headers from the client are stripped",
    "optional": "proxied; a valid session adds identity headers, no session still passes",
    "authenticated": "proxied only with a valid Ory session",
    "deny": "refused with 403 access_denied",
}


def config_warnings(config: GatewayConfig) -> list[str]:
    """Things that load fine but are probably mistakes."""
    warnings = [
        f"routes[{later.index}]: can never match: routes[{earlier.index}] {earlier.label!r}"
        " already covers every request it would"
        for later, earlier in RouteTable(config).shadowed()
    ]
    warnings += [
        f"routes[{route.index}]: require {requirement.dotted!r}: users can change their own "
        "traits (Ory's settings flow); require identity.metadata_public.* (set by admins) "
        "for roles"
        for route in RouteTable(config).routes for requirement in route.require
        if requirement.path[:2] == ("identity", "traits")
    ]
    if config.server.secret and len(config.server.secret) < 32:
        warnings.append("server.secret: shorter than 32 characters; use a long random value")
    if not config.server.public_url:
        warnings.append(
            "server.public_url: not set; the origin is taken from each request's Host header"
        )
    warnings += [
        f"server.trusted_proxies: {network} trusts every address: anyone may ask "
        "/_auth/check and set X-Forwarded-* and the request id; list your proxies' addresses"
        for network in config.server.trusted_proxies if network.prefixlen == 0
    ]
    return warnings


def check_report(config: GatewayConfig) -> str:
    """The resolved routes, then any warnings."""
    table = RouteTable(config)
    case = "; paths in any case" if config.server.routes_ignore_case else ""
    lines = ["config OK", "", f"routes (first match wins{case}):"]
    lines += [f"  {route.describe()}" for route in table.routes]
    lines.append(f"  {table.default.describe()}")
    lines += ["", f"upstream: {config.upstream.url}", f"ory:      {config.ory.url}"]
    lines.append(f"identity headers: {', '.join(h.name for h in config.identity_headers)}")
    for warning in config_warnings(config):
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def explain_request(config: GatewayConfig, method: str, url: str) -> str:
    """Which route a request matches and what the gateway would do with it. A full URL
    names the host too (host routes); a bare path matches as if no host route applied."""
    host, origin = "", config.server.public_url or "http://" + str(config.server.listen)
    if url.startswith("/"):
        raw = url.partition("#")[0]  # a request target as sent: "//admin" is a path, not a host
    else:
        parts = urlsplit(url)
        raw = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            host = request_host(parts.netloc.rpartition("@")[2])
        except BadRequestError as exc:
            return f"{method.upper()} {url}\n  outcome:  400 bad_request: {exc}"
        if not config.server.public_url and parts.scheme in ("http", "https") and host:
            origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}"
    method = method.upper()
    try:
        target = canonical_target(raw)
    except BadRequestError as exc:
        return f"{method} {raw}\n  outcome:  400 bad_request: {exc}"
    prefix = config.server.auth_prefix
    if target.path == prefix or target.path.startswith(prefix + "/"):
        return f"{method} {target.path}\n  outcome:  answered by the gateway itself ({prefix})"
    table = RouteTable(config)
    route = table.match(method, target.path, host)
    lines = [f"{method} {target.path_qs}"]
    if host:
        lines.append(f"  host:     {host}")
    elif any(r.host is not None for r in table.routes):
        lines.append("  host:     none given (a full URL names one); routes with a host skipped")
    lines += [
        f"  path:     {target.path} (canonical; the query never takes part in matching"
        + ("; matched in any case)" if config.server.routes_ignore_case else ")"),
        f"  route:    {route.describe()}",
        f"  outcome:  {_OUTCOMES[route.access]}",
    ]
    lines += _requirements(config, route, origin + target.path_qs)
    if route.access != "deny":
        lines.append(f"  upstream: {route.upstream or config.upstream.url}{target.path_qs}")
        stripped = ", ".join(sorted({normalise_name(h.name) for h in config.identity_headers}))
        lines.append(f"  stripped: client-sent {stripped} (every spelling)")
    return "\n".join(lines)


def _requirements(config: GatewayConfig, route: Route, return_to: str) -> list[str]:
    if route.access != "authenticated":
        return []
    login = login_url(config.ory.browser_base, config.ory.login_path, return_to)
    lines = [
        f"  no session: browsers get 303 to {login}; API clients get 401 JSON",
    ]
    if route.aal:
        lines.append(f"  requires: {route.aal} (else step-up: login with aal=aal2)")
    if route.max_age is not None:
        lines.append(f"  requires: login at most {route.max_age:g}s old (else refresh=true)")
    lines += [
        f"  requires: {describe_requirement(r)} (else 403 access_denied, the forbidden page)"
        for r in route.require
    ]
    return lines
