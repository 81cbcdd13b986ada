"""`gateway.toml` -> frozen, typed configuration (docs/reference.md#configuration).

`load_config(text, env)` is pure: it reads no files and no `os.environ`. Every problem is
collected and reported at once as `KEY: problem`, so a typo never silently weakens security.
Defaults live on the dataclass fields only; field names equal the TOML key names.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.parsing import (
    Problems,
    T,
    boolean,
    list_of,
    one_of,
    parsed,
    positive_duration,
    positive_int,
    string,
    whole_number,
)
from gateway.routeconfig import (
    Access,
    RouteConfig,
    check_routes_against_prefix,
    load_routes,
    parse_access,
)
from gateway.units import (
    HostPort,
    IPNetwork,
    parse_base_url,
    parse_cidr,
    parse_duration,
    parse_host_port,
    parse_origin,
    parse_size,
)

CREDENTIAL_SOURCES = ("cookie", "session_token", "bearer")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the gateway manages itself; an identity header may not take their names.
RESERVED_HEADERS = frozenset(
    {
        "host", "cookie", "authorization", "content-length", "content-type", "transfer-encoding",
        "connection", "upgrade", "te", "trailer", "keep-alive", "proxy-authorization",
        "x-session-token", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
        "forwarded", "expect",
    }
)

ENV_OVERRIDES: Mapping[str, tuple[str, str]] = {
    "GATEWAY_LISTEN": ("server", "listen"),
    "GATEWAY_PUBLIC_URL": ("server", "public_url"),
    "GATEWAY_SECRET": ("server", "secret"),
    "GATEWAY_ORY_URL": ("ory", "url"),
    "GATEWAY_ORY_BROWSER_URL": ("ory", "browser_url"),
    "GATEWAY_SESSION_COOKIE": ("ory", "session_cookie"),
    "GATEWAY_UPSTREAM_URL": ("upstream", "url"),
    "GATEWAY_REDIS_URL": ("fleet", "redis_url"),
    "GATEWAY_HOOKS_TOKEN": ("hooks", "token"),
}


class ConfigError(Exception):
    """All problems found in a configuration, each `KEY: problem`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _optional_url(value: Any) -> str:
    return "" if string(value).strip() == "" else parse_base_url(value)


def _optional_origin(value: Any) -> str:
    return "" if string(value).strip() == "" else parse_origin(value)


def _auth_prefix(value: Any) -> str:
    text = string(value)
    segments = text.split("/")[1:]
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", text) or {".", ".."} & set(segments):
        raise ValueError('must be a plain path such as "/_auth" (no trailing slash, no globs)')
    return text


def _login_path(value: Any) -> str:
    text = string(value)
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]*)+", text):
        raise ValueError('must be a path such as "/self-service/login/browser"')
    return text


def _optional_host_port(value: Any) -> HostPort | None:
    text = string(value)
    return parse_host_port(text) if text.strip() else None


def _header_name(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f'"{value}" is not a valid header name')
    return value


def _cookie_name(value: Any) -> str:
    text = string(value)
    if not _TOKEN.fullmatch(text):
        raise ValueError(f'"{text}" is not a valid cookie name')
    return text


def _credential_sources(value: Any) -> tuple[str, ...]:
    sources = list_of(string)(value)
    unknown = [s for s in sources if s not in CREDENTIAL_SOURCES]
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r}; choose from {list(CREDENTIAL_SOURCES)}")
    if not sources:
        raise ValueError("needs at least one source")
    if len(set(sources)) != len(sources):
        raise ValueError("lists a source twice")
    return sources


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """`[server]`: where the gateway listens and whom it believes."""

    listen: HostPort = parsed(
        HostPort("127.0.0.1", 4180), lambda v: parse_host_port(string(v)), "host:port to bind"
    )
    public_url: str = parsed(
        "", _optional_origin, 'origin users see, e.g. "https://app.example.com"; "" = from request'
    )
    trusted_proxies: tuple[IPNetwork, ...] = parsed(
        (), list_of(parse_cidr), "CIDRs whose X-Forwarded-* headers are believed"
    )
    auth_prefix: str = parsed("/_auth", _auth_prefix, "where the gateway's own endpoints live")
    secret: str = parsed("", string, 'signs CSRF tokens; "" = random per process')
    allowed_origins: tuple[str, ...] = parsed(
        (), list_of(parse_origin), "extra origins for WebSocket upgrades and /_auth changes"
    )
    workers: int = parsed(1, positive_int, "processes sharing the port (SO_REUSEPORT)")
    access_log: bool = parsed(True, boolean, "one line per request on stderr (no queries)")
    header_timeout: float = parsed(
        10.0, positive_duration, "time a client has to send a whole request head"
    )
    keepalive_timeout: float = parsed(
        75.0, positive_duration, "how long an idle client connection stays open"
    )
    log_format: str = parsed(
        "text", lambda v: one_of(string(v), ("text", "json")),
        'every log line as "text" or one "json" object',
    )
    tls_cert: str = parsed("", string, "PEM certificate (chain) file: the listener speaks HTTPS")
    tls_key: str = parsed("", string, "PEM private key file for tls_cert")
    templates_dir: str = parsed("", string, "pages / stylesheet overriding the built-in ones")
    request_id_header: str = parsed(
        "X-Request-Id", lambda v: _header_name(string(v)),
        "request id header: kept from trusted proxies when well-formed, else generated",
    )
    websocket_max_message: int = parsed(
        4 * 1024 * 1024, parse_size, "largest WebSocket message relayed (close 1009 past it)"
    )
    routes_ignore_case: bool = parsed(
        False, boolean, "route paths match in any case (for apps that ignore it: IIS, ASP.NET)"
    )


@dataclass(frozen=True, slots=True)
class OryConfig:
    """`[ory]`: how to reach Ory and where its session lives."""

    url: str = parsed("http://127.0.0.1:4433", lambda v: parse_base_url(string(v)),
                       "Ory public API, server to server")
    browser_url: str = parsed("", _optional_url, 'base URL for browsers; "" = same as url')
    login_path: str = parsed("/self-service/login/browser", _login_path, "login entry point")
    session_cookie: str = parsed("ory_kratos_session", _cookie_name, "Ory's session cookie")
    credentials: tuple[str, ...] = parsed(
        ("cookie", "session_token"), _credential_sources, "credential sources, in order"
    )
    timeout: float = parsed(3.0, positive_duration, "longest wait for an Ory answer")
    max_connections: int = parsed(256, positive_int, "most connections open to Ory at once")

    @property
    def browser_base(self) -> str:
        """Where browsers are sent: `browser_url`, else `url`."""
        return self.browser_url or self.url


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """`[cache]`: how long a validated session is trusted without asking Ory."""

    ttl: float = parsed(10.0, parse_duration, "longest a session is trusted without Ory")
    max_entries: int = parsed(100_000, positive_int, "most sessions kept in memory")
    stale_if_error: float = parsed(0.0, parse_duration, "grace past ttl while Ory is down")
    refresh_ahead: float = parsed(0.0, parse_duration, "refresh a session in use this early")


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """`[upstream]`: the protected app."""

    url: str = parsed("http://127.0.0.1:3000", lambda v: parse_base_url(string(v)),
                       "the app's base URL")
    timeout: float = parsed(60.0, positive_duration, "time to the first byte of the answer")
    preserve_host: bool = parsed(False, boolean, "send the client's Host header upstream")
    keepalive_connections: int = parsed(
        128, whole_number, "idle connections kept open to the app for reuse (0: none)"
    )


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """`[metrics]`: Prometheus, on a listener of its own."""

    listen: HostPort | None = parsed(
        None, _optional_host_port, 'host:port serving GET /metrics; "" = off'
    )


def _redis_url(value: Any) -> str:
    text = string(value).strip()
    if text and not re.fullmatch(r"(redis|rediss|unix)://\S+", text):
        raise ValueError('expected "redis://host:6379/0", "rediss://…" or "unix:///path"')
    return text


def _key_prefix(value: Any) -> str:
    text = string(value)
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", text):
        raise ValueError("use 1-64 letters, digits or _ . : -")
    return text


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """`[fleet]`: several replicas sharing revocations and validated sessions over Redis."""

    redis_url: str = parsed("", _redis_url, '"redis://host:6379/0" or "rediss://…"; "" = off')
    key_prefix: str = parsed("gateway:", _key_prefix, "every Redis key and channel starts so")
    shared_cache: bool = parsed(True, boolean, "replicas share validated sessions")


@dataclass(frozen=True, slots=True)
class HooksConfig:
    """`[hooks]`: endpoints other services call (Kratos' web_hook)."""

    token: str = parsed("", string, 'bearer token for POST /_auth/hooks/revoke; "" = off')


@dataclass(frozen=True, slots=True)
class IdentityHeader:
    """One `[identity_headers]` entry: header name -> dotted path into the Ory session."""

    name: str
    path: tuple[str, ...]


DEFAULT_IDENTITY_HEADERS = (
    IdentityHeader("X-User-Id", ("identity", "id")),
    IdentityHeader("X-User-Email", ("identity", "traits", "email")),
)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole, validated configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    ory: OryConfig = field(default_factory=OryConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    identity_headers: tuple[IdentityHeader, ...] = DEFAULT_IDENTITY_HEADERS
    routes: tuple[RouteConfig, ...] = ()
    default_access: Access = "authenticated"


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig, "ory": OryConfig, "cache": CacheConfig, "upstream": UpstreamConfig,
    "metrics": MetricsConfig, "fleet": FleetConfig, "hooks": HooksConfig,
}
_TOP_LEVEL = (*_SECTIONS, "identity_headers", "routes", "default_access")


def load_config(
    text: str, env: Mapping[str, str] | None = None, *, source: str = "gateway.toml"
) -> GatewayConfig:
    """Parse TOML text plus `GATEWAY_*` environment overrides; raise ConfigError on problems.

    `source` names the file in a TOML syntax error."""
    problems = Problems()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
    sources = _apply_env(raw, env or {}, problems)
    _hoist_default_access(raw, problems)
    for key in raw:
        if key not in _TOP_LEVEL:
            problems.unknown(key, key, _TOP_LEVEL)
    sections = {
        name: _load_section(cls, raw.get(name, {}), name, sources, problems)
        for name, cls in _SECTIONS.items()
    }
    identity = _load_identity_headers(raw.get("identity_headers"), problems)
    routes = load_routes(raw.get("routes", []), problems)
    default_access: Access = "authenticated"
    if "default_access" in raw:
        try:
            default_access = parse_access(raw["default_access"])
        except ValueError as exc:
            problems.add("default_access", str(exc))
    check_routes_against_prefix(routes, sections["server"].auth_prefix, problems)
    cache = sections["cache"]
    if cache.refresh_ahead and cache.refresh_ahead >= cache.ttl:
        problems.add("cache.refresh_ahead", "must be shorter than cache.ttl")
    server = sections["server"]
    if server.workers > 1 and server.listen.port == 0:
        problems.add("server.workers", "several workers need a fixed port in server.listen")
    _check_server(server, sections["metrics"], identity, problems)
    if sections["fleet"].redis_url and not server.secret:
        problems.add("server.secret", "is required with fleet.redis_url: every replica keys "
                     "the shared cache and checks its entries with it")
    token = sections["hooks"].token
    if token and len(token) < 16:
        problems.add("hooks.token", "use at least 16 random characters")
    if problems.lines:
        raise ConfigError(problems.lines)
    return GatewayConfig(
        server=sections["server"], ory=sections["ory"], cache=sections["cache"],
        upstream=sections["upstream"], metrics=sections["metrics"], fleet=sections["fleet"],
        hooks=sections["hooks"], identity_headers=identity, routes=routes,
        default_access=default_access,
    )


def _check_server(
    server: ServerConfig, metrics: MetricsConfig, identity: tuple[IdentityHeader, ...],
    problems: Problems,
) -> None:
    """Keys of [server] and [metrics] that only make sense together."""
    if bool(server.tls_cert) != bool(server.tls_key):
        missing = "server.tls_key" if server.tls_cert else "server.tls_cert"
        problems.add(missing, "set both server.tls_cert and server.tls_key, or neither")
    listen = metrics.listen
    if listen is not None and listen.port == server.listen.port and listen.port != 0:
        problems.add("metrics.listen", "must not be the public listener (server.listen)")
    if listen is not None and server.workers > 1 and listen.port == 0:
        problems.add("metrics.listen", "several workers need a fixed port here too")
    name = server.request_id_header.lower()
    if name in RESERVED_HEADERS or name in {h.name.lower() for h in identity}:
        problems.add("server.request_id_header", "is a header the gateway already manages")


def _hoist_default_access(raw: dict[str, Any], problems: Problems) -> None:
    """`default_access` written after a [[routes]] table lands inside it (a TOML rule that
    surprises everyone, the contract's own example included): treat it as the top-level key."""
    routes = raw.get("routes")
    if not isinstance(routes, list):
        return
    for index, route in enumerate(routes):
        if isinstance(route, dict) and "default_access" in route:
            value = route.pop("default_access")
            if "default_access" in raw:
                problems.add(f"routes[{index}].default_access", "default_access is set twice")
            else:
                raw["default_access"] = value


def _apply_env(raw: dict[str, Any], env: Mapping[str, str], problems: Problems) -> dict[str, str]:
    """Write GATEWAY_* values into the raw tree; remember which keys came from where."""
    sources: dict[str, str] = {}
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in env:
            table = raw.setdefault(section, {})
            if not isinstance(table, dict):
                problems.add(section, "expected a table")
                continue
            table[key] = env[var]
            sources[f"{section}.{key}"] = f"{var} ({section}.{key})"
    return sources


def _load_section(
    cls: type[T], table: Any, name: str, sources: dict[str, str], problems: Problems
) -> T:
    if not isinstance(table, dict):
        problems.add(name, "expected a table such as [" + name + "]")
        return cls()
    known = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{name}.{key}"
        if key not in known:
            problems.unknown(dotted, key, known)
            continue
        spec = next(f for f in fields(cls) if f.name == key)  # type: ignore[arg-type]
        try:
            values[key] = spec.metadata["parse"](value)
        except ValueError as exc:
            problems.add(sources.get(dotted, dotted), str(exc))
    return cls(**values)


def _load_identity_headers(table: Any, problems: Problems) -> tuple[IdentityHeader, ...]:
    if table is None:
        return DEFAULT_IDENTITY_HEADERS
    if not isinstance(table, dict):
        problems.add("identity_headers", "expected a table of header = \"dotted.path\"")
        return DEFAULT_IDENTITY_HEADERS
    headers: list[IdentityHeader] = []
    seen: dict[str, str] = {}
    for name, path in table.items():
        key = f"identity_headers.{name}"
        normal = name.lower().replace("_", "-")
        if not _TOKEN.fullmatch(name):
            problems.add(key, "is not a valid header name")
        elif normal in RESERVED_HEADERS:
            problems.add(key, "is managed by the gateway and cannot be an identity header")
        elif normal in seen:
            problems.add(key, f'is the same header as "{seen[normal]}"')
        if not isinstance(path, str) or not re.fullmatch(r"[^.\s]+(\.[^.\s]+)*", path):
            problems.add(key, 'expected a dotted path into the session, e.g. "identity.id"')
            continue
        seen[normal] = name
        headers.append(IdentityHeader(name, tuple(path.split("."))))
    return tuple(headers)


