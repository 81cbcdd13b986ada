"""`/health/alive` and `/health/ready`, the probes a self-hosted Kratos serves."""

from __future__ import annotations

from aiohttp import web

from .responses import json_ok
from .state import STATE


async def alive(request: web.Request) -> web.Response:
    return json_ok({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """`faults.ready_status` turns readiness off the way a lost database would."""
    status = request.app[STATE].faults.ready_status
    if status is None or status == 200:
        return json_ok({"status": "ok"})
    return json_ok({"errors": {"database": "the stand-in was told to be unready"}}, status=status)
