"""Applying a new configuration to a running gateway (SIGHUP; docs/reference.md#reload).

Requests that start after `apply` run under the new Services; those in flight finish under
the old ones, and open WebSockets and streams are not touched. Keys that need a new socket
or new processes keep their old values and are reported. When what a cached session means
changes (its identity headers, Ory, the cache itself), the cache is emptied, so no session
serves headers or decisions computed under the old configuration.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from gateway.accesslog import REPORTING
from gateway.app import RESOURCES, build_services, session_schema
from gateway.config import GatewayConfig
from gateway.context import GATEWAY
from gateway.relay.server import CLIENT_LIMITS
from gateway.routes import RouteTable

# (section, key) that a running gateway cannot change: reported, kept as they were.
RESTART_ONLY = (
    ("server", "listen"), ("server", "workers"), ("metrics", "listen"),
    ("ory", "max_connections"), ("fleet", "redis_url"), ("fleet", "key_prefix"),
)


def restart_only_changes(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """`KEY: problem` lines for the restart-only keys that differ."""
    changed = []
    for section, key in RESTART_ONLY:
        before = getattr(getattr(old, section), key)
        after = getattr(getattr(new, section), key)
        if before != after:
            changed.append(
                f"{section}.{key}: changed, but applies only after a restart "
                f"(still {_shown(before)})"
            )
    if bool(old.server.tls_cert) != bool(new.server.tls_cert):
        changed.append("server.tls_cert: turning TLS on or off applies only after a restart")
    return changed


def keeping_restart_only(old: GatewayConfig, new: GatewayConfig) -> GatewayConfig:
    """`new` with the restart-only keys (and TLS on/off) as they are in `old`."""
    sections: dict[str, object] = {}
    for section in {section for section, _ in RESTART_ONLY}:
        kept = {key: getattr(getattr(old, section), key)
                for name, key in RESTART_ONLY if name == section}
        sections[section] = dataclasses.replace(getattr(new, section), **kept)
    if bool(old.server.tls_cert) != bool(new.server.tls_cert):
        server = sections["server"]
        sections["server"] = dataclasses.replace(
            server,  # type: ignore[type-var]
            tls_cert=old.server.tls_cert, tls_key=old.server.tls_key,
        )
    return dataclasses.replace(new, **sections)  # type: ignore[arg-type]


def sessions_mean_something_else(old: GatewayConfig, new: GatewayConfig) -> bool:
    """Whether a session cached under `old` could be served wrongly under `new`."""
    return (
        old.identity_headers != new.identity_headers
        or old.ory != new.ory
        or old.cache != new.cache
        or old.server.secret != new.server.secret  # it keys every cache key
        or RouteTable(old).claim_paths() != RouteTable(new).claim_paths()
    )


def apply(app: web.Application, new: GatewayConfig) -> list[str]:
    """Make `new` the configuration of requests from now on; returns the restart-only
    changes that were not applied."""
    gateway, resources = app[GATEWAY], app[RESOURCES]
    old = gateway.services.config
    notes = restart_only_changes(old, new)
    new = keeping_restart_only(old, new)
    if sessions_mean_something_else(old, new):
        cache = new.cache
        resources.cache.reconfigure(
            ttl=cache.ttl, max_entries=cache.max_entries, stale_if_error=cache.stale_if_error,
            refresh_ahead=cache.refresh_ahead,
        )
        resources.cache.clear()
        resources.cache.schema = session_schema(new)
    gateway.services = build_services(new, resources)
    resources.retire_pools(gateway.services)
    reporting = app[REPORTING]
    reporting.lines = new.server.access_log
    reporting.json = new.server.log_format == "json"
    limits = app[CLIENT_LIMITS]
    limits.header_timeout = new.server.header_timeout
    limits.keepalive_timeout = new.server.keepalive_timeout
    limits.request_id_header = new.server.request_id_header
    return notes


def _shown(value: object) -> str:
    return f'"{value}"' if value is not None else '""'
