"""`server.workers = 2`: every worker has its own cache, yet a revocation made through one
worker is refused by the other on the very next request (docs/reference.md#endpoints)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from aiohttp.test_utils import unused_port
from pytest_aiohttp import AiohttpServer

from tests.security.process_stack import gateway_process

WHOAMI = "GET /sessions/whoami"
API = {"Accept": "application/json"}
ATTEMPTS = 200  # fresh connections; SO_REUSEPORT spreads them over both workers


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _upstream() -> web.Application:
    app = web.Application()
    app.router.add_get("/{tail:.*}", _ok)
    return app


async def _get(origin: str, cookie: str) -> int:
    """One request on its own connection, so the kernel picks a worker afresh."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http, http.get(
        f"{origin}/page", headers={**API, "Cookie": f"ory_kratos_session={cookie}"}
    ) as response:
        return response.status


async def test_revocation_through_one_worker_is_refused_by_the_other(
    aiohttp_server: AiohttpServer,
) -> None:
    async with gateway_process(  # several workers need a fixed port
        aiohttp_server, _upstream(), listen=f"127.0.0.1:{unused_port()}", cache_ttl="10m",
        server="workers = 2",
    ) as stack:
        identity = stack.ory.add_identity("two@example.com", password="pw")
        kept = stack.ory.create_session(identity)
        revoked = stack.ory.create_session(identity)
        origin = stack.gateway.origin

        # Warm both workers' caches for the session about to be revoked: each worker asks
        # Ory once, so two whoami calls mean both hold it.
        for _ in range(ATTEMPTS):
            assert await _get(origin, revoked.cookie_value) == 200
            if stack.ory.calls[WHOAMI] >= 2:
                break
        assert stack.ory.calls[WHOAMI] == 2

        async with aiohttp.ClientSession() as http, http.delete(
            f"{origin}/_auth/sessions/{revoked.id}",
            headers={**API, "Origin": origin, "Cookie": f"ory_kratos_session={kept.cookie_value}"},
        ) as response:
            assert response.status == 204

        statuses = [await _get(origin, revoked.cookie_value) for _ in range(30)]
        assert statuses == [401] * 30
