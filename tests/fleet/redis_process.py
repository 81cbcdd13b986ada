"""Redis as the fleet tests need it: a real `redis-server` process that can be SIGKILLed and
started again on the same port, and a TCP proxy in front of it that passes bytes through,
delays them or swallows them (a slow or stuck Redis)."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REDIS_SERVER = shutil.which("redis-server")
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768+), so that no listener on port 0
    and no client socket of another process can take it before its owner binds it."""
    while True:
        port = random.randrange(20000, 32000)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


class RedisServer:
    """One redis-server process; killed and started again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: asyncio.subprocess.Process | None = None

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
        from redis.exceptions import RedisError

        async with self.client() as redis:
            try:
                return bool(await redis.ping())
            except (OSError, RedisError):
                return False

    async def kill(self) -> None:
        """SIGKILL, and wait (bounded) until it is gone."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), 5)
        self.process = None

    def client(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.from_url(self.url, socket_timeout=5.0)


class RedisProxy:
    """TCP in front of Redis: mode "pass", "delay" (`delay` s before each chunk) or
    "blackhole" (accepts connections and bytes, forwards nothing)."""

    def __init__(self, target_port: int, delay: float = 0.2) -> None:
        self.target_port, self.delay, self.mode, self.port = target_port, delay, "pass", 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._open.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._open.add(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                                 return_exceptions=True)
            self._open.discard(up_writer)
        except OSError:
            pass
        finally:
            writer.close()
            self._open.discard(writer)
            self._handlers.discard(handler)

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
        """Stop listening, close every connection, wait for their handlers (bounded)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()


async def wait_until(check: Callable[[], Awaitable[bool]], within: float, *,
                     every: float = 0.05, what: str = "condition") -> None:
    """Bounded polling."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(every)
