"""Binding and running aiohttp apps: shared by `gateway serve` and `gateway demo`."""

from __future__ import annotations

import logging
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
) -> web.AppRunner:
    """Bind and start one app; logs `listening on http://HOST:PORT` once it accepts."""
    runner = GatewayRunner(
        app, access_log_class=AccessLogger,
        access_log=logging.getLogger(f"{name}.access") if access_log else None,
        shutdown_timeout=SHUTDOWN_GRACE,
        # A client that leaves an idle stream (SSE between events, a long poll) cancels its
        # handler at once, which frees the upstream connection instead of holding it.
        handler_cancellation=True,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    bound = int(addresses[0][1]) if addresses else port
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger(name).info("listening on http://%s:%d", shown, bound)
    return runner
