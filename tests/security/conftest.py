"""Fixtures for the security suite: the route table under attack and a gateway in front of
any upstream (the suite brings its own misbehaving upstreams)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpServer

from gateway.app import build_app
from gateway.config import GatewayConfig, load_config
from gateway.context import Services, services_of
from gateway.server import start_site
from gateway.standin import OryStandin
from tests.conftest import FakeClock, Stack, StackFactory

# The shapes the peer proxies' advisories attack: a one-segment glob next to a protected
# sibling, a public prefix beside protected ones, a deny prefix, aal and max_age routes.
ROUTES_UNDER_ATTACK = """
[[routes]]
path = "/public/*/x"
access = "public"

[[routes]]
path = "/public/secret/**"
access = "authenticated"

[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/maybe/**"
access = "optional"

[[routes]]
path = "/admin/**"
access = "authenticated"

[[routes]]
path = "/stepup/**"
access = "authenticated"
aal = "aal2"

[[routes]]
path = "/recent/**"
access = "authenticated"
max_age = "5m"

[[routes]]
path = "/internal/**"
access = "deny"
"""

API = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}


@pytest.fixture
async def guarded(make_stack: StackFactory) -> Stack:
    """The shared stack (stand-in, recording upstream, gateway) with ROUTES_UNDER_ATTACK."""
    return await make_stack(routes=ROUTES_UNDER_ATTACK)


def client_services(client: TestClient[web.Request, web.Application]) -> Services:
    """The gateway's current services (its connectors live here)."""
    return services_of(client.app)


@dataclass
class Gate:
    """A gateway served the way `gateway serve` serves it (gateway.server.start_site, so no
    test-only handler cancellation) in front of an upstream the test brought."""

    ory: OryStandin
    ory_server: TestServer
    http: aiohttp.ClientSession
    config: GatewayConfig
    clock: FakeClock
    services: Services
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def login(self, email: str = "user@example.com") -> str:
        """A fresh identity and aal1 session; returns its cookie value."""
        identity = self.ory.add_identity(email, password="pw")
        return self.ory.create_session(identity).cookie_value

    def cookie(self, value: str) -> dict[str, str]:
        return {"Cookie": f"{self.config.ory.session_cookie}={value}"}


class GateFactory:
    """`await make_gate(upstream_url, ory=..., upstream=...)`: TOML lines per section."""

    def __init__(self, server: AiohttpServer, clock: FakeClock) -> None:
        self._server = server
        self._clock = clock
        self._cleanups: list[Callable[[], Awaitable[None]]] = []

    async def __call__(
        self, upstream_url: str, *, ory: str = "", upstream: str = "", cache: str = "",
        routes: str = ROUTES_UNDER_ATTACK,
    ) -> Gate:
        standin = OryStandin(clock=self._clock)
        ory_server = await self._server(standin.build_app())
        text = f"""
[ory]
url = "{str(ory_server.make_url('')).rstrip('/')}"
{ory}
[upstream]
url = "{upstream_url}"
{upstream}
[cache]
{cache}
{routes}
"""
        config = load_config(text, {})
        app = await build_app(config, clock=self._clock)
        runner = await start_site(app, "127.0.0.1", 0, "gateway")  # any free port: no race
        port = int(runner.addresses[0][1])
        standin.allow_return_to(f"http://127.0.0.1:{port}")
        http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self._cleanups += [http.close, runner.cleanup]
        return Gate(standin, ory_server, http, config, self._clock, services_of(app), port)

    async def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            await cleanup()


@pytest.fixture
async def make_gate(aiohttp_server: AiohttpServer, clock: FakeClock) -> AsyncIterator[GateFactory]:
    factory = GateFactory(aiohttp_server, clock)
    yield factory
    await factory.close()
