"""The gateway as its own process (bench.soak.GatewayProcess) in front of an in-process
stand-in and upstream: what the RSS and log tests need, since their numbers and lines must
be the gateway's alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from pytest_aiohttp import AiohttpServer

from bench.soak import GatewayProcess, gateway_config
from gateway.standin import OryStandin


@dataclass
class ProcessStack:
    gateway: GatewayProcess
    ory: OryStandin
    ory_url: str
    upstream_url: str

    def login(self, email: str) -> tuple[str, str]:
        """(cookie value, session token) of a fresh identity's session."""
        identity = self.ory.add_identity(email, password="pw")
        session = self.ory.create_session(identity)
        return session.cookie_value, session.token


@asynccontextmanager
async def gateway_process(
    aiohttp_server: AiohttpServer, upstream: web.Application, *,
    listen: str = "127.0.0.1:0", **config: str
) -> AsyncIterator[ProcessStack]:
    """Stand-in and `upstream` on test servers, the gateway as a subprocess; `config` goes
    to `bench.soak.gateway_config` (TOML lines per section)."""
    ory = OryStandin()
    ory_server = await aiohttp_server(ory.build_app())
    upstream_server = await aiohttp_server(upstream)
    ory_url = str(ory_server.make_url("")).rstrip("/")
    upstream_url = str(upstream_server.make_url("")).rstrip("/")
    text = gateway_config(ory_url, upstream_url, listen=listen, **config)
    async with GatewayProcess(text) as gateway:  # it logs the port it got
        ory.allow_return_to(gateway.origin)
        yield ProcessStack(gateway, ory, ory_url, upstream_url)
