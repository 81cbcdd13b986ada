"""The Ory stand-in as its own process, for the benchmark (`bench/run.py` starts it).

    python bench/standin_server.py --port 4433 --users 1000 --cookies-file /tmp/cookies.txt

Creates `--users` identities with one session each, writes their session cookie values to
`--cookies-file` (one a line) and only then starts listening, so "the port answers" means
"the cookies are ready". Every answer is delayed by `--ory-latency` seconds
(`faults.latency`), like a real Ory a few milliseconds away.

Extra endpoints: `GET /__bench/calls` -> `{"whoami": N, "calls": {...}}`, the stand-in's
call counter (`OryStandin.calls`), so the benchmark can count whoami calls per run;
`POST /__bench/sessions` (a new identity and session) and `POST /__bench/sessions/{id}/revoke`
for bench/fleet.py's revocation timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from gateway.standin import OryStandin

STANDIN = web.AppKey("bench_standin", OryStandin)
WHOAMI = "GET /sessions/whoami"


async def bench_calls(request: web.Request) -> web.Response:
    """The call counter; also drops the recorded whoami headers (tests use them, we do not)."""
    ory = request.app[STANDIN]
    ory.whoami_requests.clear()
    return web.json_response({"whoami": ory.calls[WHOAMI], "calls": dict(ory.calls)})


async def bench_new_session(request: web.Request) -> web.Response:
    """`POST /__bench/sessions`: a new identity with one session (bench/fleet.py revokes
    those to time how fast revocations travel)."""
    ory = request.app[STANDIN]
    identity = ory.add_identity(f"extra-{len(ory.calls)}-{os.urandom(4).hex()}@example.com")
    session = ory.create_session(identity)
    return web.json_response({"cookie": session.cookie_value, "identity_id": identity,
                              "session_id": session.id})


async def bench_revoke(request: web.Request) -> web.Response:
    """`POST /__bench/sessions/{id}/revoke`: revoked at Ory (as an admin would)."""
    request.app[STANDIN].revoke_session(request.match_info["id"])
    return web.Response(status=204)


def _forget_recorded_headers(
    ory: OryStandin,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The stand-in keeps every whoami request's headers for the tests; under load that list
    would grow by thousands a second, so empty it every second."""

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(1.0)
                ory.whoami_requests.clear()

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifecycle


def build(users: int, latency: float, cookies_file: Path) -> web.Application:
    ory = OryStandin(allowed_return_urls=("http://127.0.0.1",))
    lines = []
    for n in range(users):
        identity = ory.add_identity(f"user{n}@example.com", password=f"password-{n}")
        lines.append(ory.create_session(identity).cookie_value)
    ory.faults.latency = latency
    temporary = cookies_file.with_suffix(".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="ascii")
    os.replace(temporary, cookies_file)
    app = ory.build_app()
    app[STANDIN] = ory
    app.router.add_get("/__bench/calls", bench_calls)
    app.router.add_post("/__bench/sessions", bench_new_session)
    app.router.add_post("/__bench/sessions/{id}/revoke", bench_revoke)
    app.cleanup_ctx.append(_forget_recorded_headers(ory))
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    print(f"stand-in listening on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()  # until SIGTERM ends the process
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--ory-latency", type=float, default=0.005,
                        help="seconds added to every answer (default 0.005)")
    parser.add_argument("--cookies-file", type=Path, required=True)
    args = parser.parse_args()
    app = build(args.users, args.ory_latency, args.cookies_file)
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(app, args.host, args.port))


if __name__ == "__main__":
    main()
