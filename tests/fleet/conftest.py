"""Real gateway processes on one real Redis (docs/reference.md#running-several-replicas):
`redis_server` (Debian's redis-server, SIGKILLed and started again on its port; it and
`RedisProxy`, pass-through, slow or a black hole, live in redis_process.py) and `fleet`: N
`bench.soak.GatewayProcess` gateways sharing one Redis, one Ory stand-in and one upstream
(`backends`), each with its own metrics port and JSON logs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.soak import (
    GatewayProcess,
    build_identity_upstream,
    echo_websocket,
    gateway_config,
    serve,
)
from gateway.standin import OryStandin, StandinSession
from tests.fleet.redis_process import (
    REDIS_SERVER,
    RedisProxy,
    RedisServer,
    free_port,
    wait_until,
)

needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
SECRET = "fleet-secret-" + "0123456789abcdef" * 3
HOOK_TOKEN = "fleet-hook-token-0123456789abcdef"
PREFIX = "gateway:"
API = {"Accept": "application/json"}
ROUTES = """
[[routes]]
path = "/public/**"
access = "public"
[[routes]]
path = "/maybe/**"
access = "optional"
"""


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


@pytest.fixture
async def redis_proxy(redis_server: RedisServer) -> AsyncIterator[RedisProxy]:
    """A TCP proxy in front of `redis_server`; set `.mode` to "delay" or "blackhole"."""
    proxy = RedisProxy(redis_server.port, delay=0.2)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@dataclass
class Backends:
    """The stand-in and the upstream every gateway of a test shares."""

    ory: OryStandin
    ory_url: str
    upstream_url: str

    @property
    def whoami_calls(self) -> int:
        return self.ory.calls["GET /sessions/whoami"]

    def user(self, email: str, sessions: int = 1) -> tuple[str, list[StandinSession]]:
        identity = self.ory.add_identity(email, password="pw")
        return identity, [self.ory.create_session(identity) for _ in range(sessions)]


async def endless_events(request: web.Request) -> web.StreamResponse:
    """SSE until the client (or the gateway) ends it."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    while True:
        await response.write(f"data: {request.headers.get('X-User-Id', '')}\n\n".encode())
        await asyncio.sleep(0.05)


@asynccontextmanager
async def backends() -> AsyncIterator[Backends]:
    upstream = build_identity_upstream()
    upstream.router.add_get("/app/stream", endless_events)
    upstream.router.add_get("/public/ws", echo_websocket)
    upstream.router.add_get("/maybe/ws", echo_websocket)
    ory = OryStandin()
    ory_runner, ory_url = await serve(ory.build_app())
    upstream_runner, upstream_url = await serve(upstream)
    try:
        yield Backends(ory, ory_url, upstream_url)
    finally:
        await upstream_runner.cleanup()
        await ory_runner.cleanup()


@dataclass
class Node:
    process: GatewayProcess
    metrics_port: int

    @property
    def origin(self) -> str:
        return self.process.origin

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.process.lines if line.startswith("{")]

    def access(self, path: str = "/app/page") -> list[dict[str, Any]]:
        return [e for e in self.logs() if e["logger"] == "gateway.access" and e["path"] == path]

    async def access_lines(self, count: int, path: str = "/app/page") -> list[dict[str, Any]]:
        """Once there are `count` (the gateway writes them in batches)."""
        async def enough() -> bool:
            return len(self.access(path)) >= count

        await wait_until(enough, 5.0, what=f"{count} access lines on {self.origin}")
        return self.access(path)

    def events(self) -> list[str]:
        """Lines other than access lines."""
        return [e["message"] for e in self.logs() if e["logger"] != "gateway.access"]

    def count(self, text: str) -> int:
        return sum(text in entry["message"] for entry in self.logs())

    async def metric(self, http: aiohttp.ClientSession, name: str) -> float | None:
        """`name` with its labels, e.g. 'gateway_revocations_total{source="hook"}'."""
        async with http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
            for line in (await response.text()).splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    async def fleet_state(self, http: aiohttp.ClientSession) -> str:
        async with http.get(f"{self.origin}/_auth/ready") as response:
            return str((await response.json())["fleet"])

    async def connected(self, http: aiohttp.ClientSession) -> bool:
        try:
            return await self.fleet_state(http) == "connected"
        except aiohttp.ClientError:
            assert self.process.running, self.process.lines
            return False


def node_config(backends: Backends, redis_url: str, metrics_port: int, *, ttl: str,
                secret: str, fleet_keys: str, more: str) -> str:
    tables = f"""
[fleet]
redis_url = "{redis_url}"
{fleet_keys}
[hooks]
token = "{HOOK_TOKEN}"
[metrics]
listen = "127.0.0.1:{metrics_port}"
{more}
{ROUTES}"""
    server = f'secret = "{secret}"\nlog_format = "json"'
    return gateway_config(backends.ory_url, backends.upstream_url, cache_ttl=ttl, server=server,
                          routes=tables)


@asynccontextmanager
async def fleet(backends: Backends, redis_url: str, *, count: int = 3, ttl: str = "30s",
                secret: str = SECRET, fleet_keys: str = "", more: str = "",
                connected: bool = True) -> AsyncIterator[list[Node]]:
    """`count` gateways (`fleet_keys`: more [fleet] lines, `more`: more tables); with
    `connected`, once each says its fleet is connected."""
    ports = [free_port() for _ in range(count)]
    nodes = [Node(GatewayProcess(node_config(backends, redis_url, port, ttl=ttl, secret=secret,
                                             fleet_keys=fleet_keys, more=more)), port)
             for port in ports]
    async with contextlib.AsyncExitStack() as stack:
        await asyncio.gather(*(stack.enter_async_context(n.process) for n in nodes))
        backends.ory.allow_return_to(*(n.origin for n in nodes))
        if connected:
            async with client() as http:
                for node in nodes:
                    await wait_until(functools.partial(node.connected, http), 10.0,
                                     what=f"{node.origin} connected to Redis")
        yield nodes


def client() -> aiohttp.ClientSession:
    """No cookie jar: each request says who it is."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                 connector=aiohttp.TCPConnector(limit=200))


def cookie(session: StandinSession) -> dict[str, str]:
    return {**API, "Cookie": f"ory_kratos_session={session.cookie_value}"}


def token(session: StandinSession) -> dict[str, str]:
    return {**API, "X-Session-Token": session.token}


async def get_page(http: aiohttp.ClientSession, node: Node, headers: dict[str, str],
                   path: str = "/app/page") -> tuple[int, str | None]:
    """(status, the user the upstream was told about, or None)."""
    async with http.get(node.origin + path, headers=headers, allow_redirects=False) as response:
        body = await response.read()
        user = json.loads(body)["user"] if response.status == 200 else None
        return response.status, user


async def refused_after(http: aiohttp.ClientSession, node: Node, headers: dict[str, str],
                        since: float, within: float = 1.0, every: float = 0.01) -> float:
    """Seconds from `since` until `node` answers 401 (polled; `within` + 1: never).
    Anything but 200 or 401 fails the test."""
    while True:
        status, _ = await get_page(http, node, headers)
        now = time.monotonic()
        assert status in (200, 401), f"{node.origin} answered {status}"
        if status == 401:
            return now - since
        if now - since > within:
            return within + 1
        await asyncio.sleep(every)


@dataclass
class Stack:
    backends: Backends
    nodes: list[Node]
    http: aiohttp.ClientSession

    @property
    def ory(self) -> OryStandin:
        return self.backends.ory

    async def warm(self, *headers: dict[str, str]) -> None:
        """Each credential used on every node (so every node has it cached): all 200."""
        for node in self.nodes:
            for h in headers:
                status, _ = await get_page(self.http, node, h)
                assert status == 200, (node.origin, status)

    async def all_refused(self, headers: dict[str, str], since: float,
                          nodes: list[Node] | None = None) -> list[float]:
        """Seconds from `since` until each node refuses `headers` (see refused_after)."""
        return list(await asyncio.gather(*(
            refused_after(self.http, node, headers, since) for node in nodes or self.nodes
        )))


@pytest.fixture
async def stack(redis_server: RedisServer) -> AsyncIterator[Stack]:
    """Three gateways, cache.ttl 30 s, on one Redis; connected."""
    async with backends() as shared, fleet(shared, redis_server.url) as nodes, \
            client() as http:
        yield Stack(shared, nodes, http)
