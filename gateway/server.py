"""Binding and running aiohttp apps: shared by `gateway serve` and `gateway demo`."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from gateway.accesslog import AccessLogger
from gateway.relay.server import GatewayRunner

SHUTDOWN_GRACE = 10.0
Stopper = Callable[[], Coroutine[Any, Any, None]]


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    name: str,
    *,
    reuse_port: bool = False,
    access_log: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Bind and start one app; logs `listening on http(s)://HOST:PORT` once it accepts. The
    gateway's own app brings its access logger (gateway.accesslog.REPORTING)."""
    runner = GatewayRunner(
        app, access_log_class=AccessLogger,
        access_log=logging.getLogger(f"{name}.access") if access_log else None,
        shutdown_timeout=SHUTDOWN_GRACE,
        # A client that leaves an idle stream (SSE between events, a long poll) cancels its
        # handler at once, which frees the upstream connection instead of holding it.
        handler_cancellation=True,
    )
    await runner.setup()
    site = web.TCPSite(
        runner, host, port, reuse_port=reuse_port or None, backlog=1024,
        ssl_context=ssl_context,
    )
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    bound = int(addresses[0][1]) if addresses else port
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if ssl_context is not None else "http"
    logging.getLogger(name).info("listening on %s://%s:%d", scheme, shown, bound)
    return runner
