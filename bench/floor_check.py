"""The floor for forward auth: the least an aiohttp server can do to answer a check.

    python bench/floor_check.py --port 8081 --ory http://127.0.0.1:4433 [--ttl 10]

Session cookie -> whoami once -> identity id kept in a plain dict for `--ttl` seconds ->
`200` with `X-User-Id`, or `401`. No forwarded-header trust, no routes, no path checks,
no step-up, no access log. Next to the gateway's /_auth/check it shows what any
aiohttp-based check costs before it decides anything (docs/performance.md, issue 13).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Sibling scripts, found through the line above: the floor proxy's cache and whoami call.
from floor_proxy import CACHE, CLIENTS, CONFIG, COOKIE, FloorConfig, identity_of, run


async def check(request: web.Request) -> web.Response:
    cookie = request.cookies.get(COOKIE)
    identity = await identity_of(request.app, cookie) if cookie else None
    if identity is None:
        return web.Response(status=401)
    return web.Response(headers={"X-User-Id": identity})


def build(ory: str, ttl: float) -> web.Application:
    app = web.Application()
    app[CONFIG] = FloorConfig(ory.rstrip("/"), "", ttl)  # no upstream: the proxy has it
    app[CACHE] = {}
    app[CLIENTS] = {}

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        app[CLIENTS]["ory"] = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        yield
        await app[CLIENTS]["ory"].close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_route("*", "/{tail:.*}", check)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ory", required=True, help="stand-in base URL")
    parser.add_argument("--ttl", type=float, default=10.0)
    args = parser.parse_args()
    run(build(args.ory, args.ttl), args.host, args.port, "floor check")


if __name__ == "__main__":
    main()
