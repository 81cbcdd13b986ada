"""Shared fixtures: a real upstream, the real Ory stand-in, and the gateway between them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import build_app
from gateway.config import GatewayConfig, load_config
from gateway.relay.server import GatewayRunner
from gateway.standin import OryStandin
from tests.upstream_app import UpstreamState, build_upstream

ROUTES = """
[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/maybe/**"
access = "optional"

[[routes]]
path = "/admin/**"
access = "authenticated"
aal = "aal2"

[[routes]]
path = "/recent/**"
access = "authenticated"
max_age = "5m"

[[routes]]
path = "/internal/**"
access = "deny"

[[routes]]
path = "/static/*/x"
access = "public"
"""


class GatewayTestServer(TestServer):
    """aiohttp's TestServer with the gateway's own runner: tests see the connections that
    `gateway serve` gives users (head deadlines, error envelopes), not aiohttp's defaults."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        assert self.app is not None
        return GatewayRunner(self.app, **kwargs)


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Stack:
    """Stand-in Ory, upstream and gateway, all real servers in this process."""

    ory: OryStandin
    ory_server: TestServer
    upstream: UpstreamState
    upstream_server: TestServer
    client: TestClient[web.Request, web.Application]
    config: GatewayConfig
    clock: FakeClock

    @property
    def origin(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    def login(self, email: str = "alice@example.com", *, aal: str = "aal1",
              second_factor: bool = False) -> tuple[str, str]:
        """A new identity with a session; returns (cookie value, session token)."""
        identity = self.ory.add_identity(email, password="pw", has_second_factor=second_factor)
        session = self.ory.create_session(identity, aal=aal)
        return session.cookie_value, session.token

    def cookie(self, value: str) -> dict[str, str]:
        return {"Cookie": f"{self.config.ory.session_cookie}={value}"}


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_stack(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    clock: FakeClock,
) -> StackFactory:
    """Build a stack; keyword `extra` is TOML added to [section]s, `routes` replaces ROUTES."""

    async def factory(extra: str = "", routes: str = ROUTES, **overrides: str) -> Stack:
        ory = OryStandin(clock=clock)
        ory_server = await aiohttp_server(ory.build_app())
        state = UpstreamState()
        upstream_server = await aiohttp_server(build_upstream(state))
        text = f"""
[ory]
url = "{str(ory_server.make_url('')).rstrip('/')}"
{overrides.get("ory", "")}
[upstream]
url = "{str(upstream_server.make_url('')).rstrip('/')}"
timeout = "{overrides.get("upstream_timeout", "2s")}"
{overrides.get("upstream", "")}
[cache]
{overrides.get("cache", "")}
[server]
{overrides.get("server", "")}
{extra}
{routes}
"""
        config = load_config(text, {})
        client = await aiohttp_client(GatewayTestServer(await build_app(config, clock=clock)))
        ory.allow_return_to(f"http://127.0.0.1:{client.port}")
        return Stack(ory, ory_server, state, upstream_server, client, config, clock)

    return factory


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()
