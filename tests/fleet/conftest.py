"""A fleet of real gateway processes on one real Redis (docs/reference.md#running-several-replicas).

* `redis_server`: Debian's `redis-server` on a free port in a tmp dir; `kill()` (SIGKILL)
  and `start()` again on the same port.
* `RedisProxy`: a TCP proxy in front of it, pass-through, slow (a delay per chunk) or a
  black hole (accepts, never forwards), for a slow or stuck Redis.
* `Backends` / `fleet`: one Ory stand-in and one upstream in this process, N
  `bench.soak.GatewayProcess` gateways sharing them and a Redis, each with its own metrics
  port and JSON logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from bench.soak import (
    GatewayProcess,
    build_identity_upstream,
    echo_websocket,
    gateway_config,
    serve,
)
from gateway.standin import OryStandin, StandinSession

REDIS_SERVER = shutil.which("redis-server")
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


class RedisServer:
    """One redis-server process; killed and started again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = unused_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, within: float = 10.0) -> None:
        assert REDIS_SERVER is not None
        self.process = await asyncio.create_subprocess_exec(
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        await wait_until(self._pong, within, every=0.02, what="redis-server answers PING")

    async def _pong(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            return await asyncio.wait_for(reader.readline(), 1.0) == b"+PONG\r\n"
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def kill(self) -> None:
        """SIGKILL, and wait (bounded) until it is gone."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), 5)
        self.process = None

    def client(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.from_url(self.url, socket_timeout=5.0)


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


class RedisProxy:
    """TCP in front of Redis: mode "pass", "delay" (`delay` s before each chunk) or
    "blackhole" (accepts connections and bytes, forwards nothing)."""

    def __init__(self, target_port: int, delay: float = 0.2) -> None:
        self.target_port = target_port
        self.delay = delay
        self.mode = "pass"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                             return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                if self.mode == "blackhole":
                    continue
                if self.mode == "delay":
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class Backends:
    """The stand-in and the upstream every gateway of a test shares."""

    ory: OryStandin
    ory_url: str
    upstream_url: str
    origins: list[str] = field(default_factory=list)

    @property
    def whoami_calls(self) -> int:
        return self.ory.calls["GET /sessions/whoami"]

    def user(self, email: str, sessions: int = 1) -> tuple[str, list[StandinSession]]:
        identity = self.ory.add_identity(email, password="pw")
        return identity, [self.ory.create_session(identity) for _ in range(sessions)]


async def endless_events(request: web.Request) -> web.StreamResponse:
    """An SSE stream that goes on until the client (or the gateway) ends it."""
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
    """One gateway of the fleet."""

    process: GatewayProcess
    metrics_port: int

    @property
    def origin(self) -> str:
        return self.process.origin

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.process.lines if line.startswith("{")]

    def access(self, path: str = "/app/page") -> list[dict[str, Any]]:
        return [e for e in self.logs() if e["logger"] == "gateway.access" and e["path"] == path]

    async def access_lines(self, count: int, path: str = "/app/page",
                           within: float = 5.0) -> list[dict[str, Any]]:
        """The access lines of `path`, once there are `count` (they are written in batches)."""
        async def enough() -> bool:
            return len(self.access(path)) >= count

        await wait_until(enough, within, what=f"{count} access lines on {self.origin}")
        return self.access(path)

    def events(self) -> list[str]:
        """Its log lines other than access lines (for assertion messages)."""
        return [e["message"] for e in self.logs() if e["logger"] != "gateway.access"]

    def count(self, text: str) -> int:
        return sum(text in entry["message"] for entry in self.logs())

    async def metric(self, http: aiohttp.ClientSession, name: str) -> float | None:
        async with http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
            for line in (await response.text()).splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    async def fleet_state(self, http: aiohttp.ClientSession) -> str:
        async with http.get(f"{self.origin}/_auth/ready") as response:
            return str((await response.json())["fleet"])


def node_config(backends: Backends, redis_url: str, metrics_port: int, *, ttl: str,
                shared_cache: bool, secret: str) -> str:
    tables = f"""
[fleet]
redis_url = "{redis_url}"
shared_cache = {str(shared_cache).lower()}
[hooks]
token = "{HOOK_TOKEN}"
[metrics]
listen = "127.0.0.1:{metrics_port}"
{ROUTES}"""
    server = f'secret = "{secret}"\nlog_format = "json"'
    return gateway_config(backends.ory_url, backends.upstream_url, cache_ttl=ttl, server=server,
                          routes=tables)


@asynccontextmanager
async def fleet(backends: Backends, redis_url: str, *, count: int = 3, ttl: str = "30s",
                shared_cache: bool = True, secret: str = SECRET,
                connected: bool = True) -> AsyncIterator[list[Node]]:
    """`count` gateway processes on one Redis; with `connected`, returns once each says its
    fleet is connected."""
    ports = [unused_port() for _ in range(count)]
    nodes = [Node(GatewayProcess(node_config(backends, redis_url, port, ttl=ttl,
                                             shared_cache=shared_cache, secret=secret)), port)
             for port in ports]
    async with contextlib.AsyncExitStack() as stack:
        await asyncio.gather(*(stack.enter_async_context(n.process) for n in nodes))
        backends.origins += [n.origin for n in nodes]
        backends.ory.allow_return_to(*(n.origin for n in nodes))
        if connected:
            async with client() as http:
                for node in nodes:
                    await wait_until(functools.partial(_is_connected, node, http), 10.0,
                                     what=f"{node.origin} connected to Redis")
        yield nodes


async def _is_connected(node: Node, http: aiohttp.ClientSession) -> bool:
    return await node.fleet_state(http) == "connected"


def client(**kwargs: Any) -> aiohttp.ClientSession:
    """No cookie jar (each request says who it is), generous connection limit."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                 connector=aiohttp.TCPConnector(limit=200), **kwargs)


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


async def wait_until(check: Callable[[], Awaitable[bool]], within: float, *,
                     every: float = 0.05, what: str = "condition") -> None:
    """Bounded polling."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(every)


async def refused_after(http: aiohttp.ClientSession, node: Node, headers: dict[str, str],
                        since: float, within: float = 1.0, every: float = 0.01) -> float:
    """Poll until `node` answers 401 for `headers`: seconds from `since` to that answer (or
    `within` + 1 when it never does). Anything but 200 or 401 fails the test."""
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
