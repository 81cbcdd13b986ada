"""The floor: the least a Python (aiohttp) authenticating proxy can do per request.

    python bench/floor_proxy.py --port 8080 --ory http://127.0.0.1:4433 \
        --upstream http://127.0.0.1:3000 [--ttl 10]

Session cookie -> whoami once -> identity id kept in a plain dict for `--ttl` seconds ->
request forwarded with `X-User-Id`, answer streamed back. No path checks, no routes, no
header hygiene, no singleflight, no access log: whatever the real gateway costs on top of
this is the price of its features (or of waste).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web

COOKIE = "ory_kratos_session"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                        "proxy-connection", "trailer", "host", "cookie", "content-length"})


@dataclass(frozen=True, slots=True)
class FloorConfig:
    ory: str
    upstream: str
    ttl: float


CONFIG = web.AppKey("floor_config", FloorConfig)
CACHE = web.AppKey("floor_cache", dict[str, tuple[str, float]])
CLIENTS = web.AppKey("floor_clients", dict[str, aiohttp.ClientSession])


async def identity_of(app: web.Application, cookie: str) -> str | None:
    """The identity id behind a session cookie: from the dict, else one whoami call."""
    cache = app[CACHE]
    now = time.monotonic()
    hit = cache.get(cookie)
    if hit is not None and hit[1] > now:
        return hit[0]
    config = app[CONFIG]
    async with app[CLIENTS]["ory"].get(
        f"{config.ory}/sessions/whoami", headers={"Cookie": f"{COOKIE}={cookie}"}
    ) as response:
        if response.status != 200:
            return None
        document = await response.json()
    identity = str(document["identity"]["id"])
    cache[cookie] = (identity, now + config.ttl)
    return identity


async def handle(request: web.Request) -> web.StreamResponse:
    cookie = request.cookies.get(COOKIE)
    identity = await identity_of(request.app, cookie) if cookie else None
    if identity is None:
        return web.Response(status=401, text="no session\n")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    headers["X-User-Id"] = identity
    url = f"{request.app[CONFIG].upstream}{request.path_qs}"
    body = request.content if request.body_exists else None
    async with request.app[CLIENTS]["upstream"].request(
        request.method, url, headers=headers, data=body, allow_redirects=False
    ) as upstream:
        answer = web.StreamResponse(
            status=upstream.status,
            headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
        )
        if upstream.content_length is not None:
            answer.content_length = upstream.content_length
        await answer.prepare(request)
        async for chunk in upstream.content.iter_any():
            await answer.write(chunk)
        await answer.write_eof()
        return answer


def build(ory: str, upstream: str, ttl: float) -> web.Application:
    app = web.Application()
    app[CONFIG] = FloorConfig(ory.rstrip("/"), upstream.rstrip("/"), ttl)
    app[CACHE] = {}
    app[CLIENTS] = {}

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        jar = aiohttp.DummyCookieJar
        app[CLIENTS]["ory"] = aiohttp.ClientSession(cookie_jar=jar())
        app[CLIENTS]["upstream"] = aiohttp.ClientSession(
            cookie_jar=jar(), auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0),
        )
        yield
        for session in app[CLIENTS].values():
            await session.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve(app: web.Application, host: str, port: int, name: str) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    print(f"{name} listening on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(app: web.Application, host: str, port: int, name: str) -> None:
    """Serve `app` until killed, on uvloop when it is installed (as the gateway runs)."""
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(app, host, port, name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ory", required=True, help="stand-in base URL")
    parser.add_argument("--upstream", required=True, help="upstream base URL")
    parser.add_argument("--ttl", type=float, default=10.0)
    args = parser.parse_args()
    run(build(args.ory, args.upstream, args.ttl), args.host, args.port, "floor proxy")


if __name__ == "__main__":
    main()
