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
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor_proxy import run  # a sibling script, found through the line above

COOKIE = "ory_kratos_session"
ORY = web.AppKey("floor_ory", str)
TTL = web.AppKey("floor_ttl", float)
CACHE = web.AppKey("floor_cache", dict[str, tuple[str, float]])
CLIENT = web.AppKey("floor_client", aiohttp.ClientSession)


async def identity_of(app: web.Application, cookie: str) -> str | None:
    """The identity id behind a session cookie: from the dict, else one whoami call."""
    now = time.monotonic()
    hit = app[CACHE].get(cookie)
    if hit is not None and hit[1] > now:
        return hit[0]
    async with app[CLIENT].get(
        f"{app[ORY]}/sessions/whoami", headers={"Cookie": f"{COOKIE}={cookie}"}
    ) as response:
        if response.status != 200:
            return None
        document = await response.json()
    identity = str(document["identity"]["id"])
    app[CACHE][cookie] = (identity, now + app[TTL])
    return identity


async def check(request: web.Request) -> web.Response:
    cookie = request.cookies.get(COOKIE)
    identity = await identity_of(request.app, cookie) if cookie else None
    if identity is None:
        return web.Response(status=401)
    return web.Response(headers={"X-User-Id": identity})


def build(ory: str, ttl: float) -> web.Application:
    app = web.Application()
    app[ORY] = ory.rstrip("/")
    app[TTL] = ttl
    app[CACHE] = {}

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        app[CLIENT] = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        yield
        await app[CLIENT].close()

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
