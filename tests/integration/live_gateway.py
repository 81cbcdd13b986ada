"""`gateway serve` as a real subprocess whose config file a test rewrites and reloads
(SIGHUP), plus the small upstream the reload and TLS tests put behind it.

Unlike bench.soak.GatewayProcess it knows about `https://` listeners, several workers and
metrics listeners, and lets a test wait, within a bound, for a log line to appear N times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aiohttp import WSMsgType, web

ROOT = Path(__file__).resolve().parents[2]
# The public listener's logger is "gateway"; the metrics one is "gateway.metrics".
PUBLIC_LISTENING = re.compile(r" gateway: listening on (https?)://([^\s]+):(\d+)")
RELOADED = "config reloaded"
WITHIN = 15.0  # seconds: the bound of every wait on the subprocess


class LiveGateway:
    """`python -m gateway serve --config DIR/gateway.toml`, every stderr line kept."""

    def __init__(self, directory: Path, text: str, *, workers: int = 1,
                 listeners: int | None = None) -> None:
        """`listeners`: how many `listening on` lines mean it is up (default: one per
        worker; a metrics listener logs one more per worker)."""
        self.config = directory / "gateway.toml"
        self.config.write_text(text, encoding="utf-8")
        self.workers = workers
        self.listeners = listeners or workers
        self.lines: list[str] = []
        self.scheme = "http"
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._ended = False

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def origin(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def log(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, text: str, count: int = 1, within: float = WITHIN) -> None:
        """Until `text` is in `count` lines; fails (with the log) after `within` seconds or
        when the gateway has exited first."""
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(
                    lambda: self.count(text) >= count or self._ended
                )
        except TimeoutError:
            raise AssertionError(f"{text!r} not logged {count}x in {within}s:\n"
                                 + self.log()) from None
        assert self.count(text) >= count, (
            f"gateway exited ({self._process and self._process.returncode}) before {text!r}:\n"
            + self.log())

    async def reload(self, text: str | None = None, *, expect: str = RELOADED) -> None:
        """Rewrite the config (when `text`), SIGHUP the gateway (the parent of the workers,
        which passes it on) and wait until every worker has logged `expect` once more."""
        before = self.count(expect)
        if text is not None:
            self.config.write_text(text, encoding="utf-8")
        os.kill(self.pid, signal.SIGHUP)
        await self.wait_for(expect, before + self.workers)

    async def __aenter__(self) -> LiveGateway:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--config", str(self.config),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
        )
        self._reader = asyncio.create_task(self._read())
        try:
            await self.wait_for("listening on ", self.listeners)
        except AssertionError:
            await self.stop()
            raise
        found = next(m for line in self.lines if (m := PUBLIC_LISTENING.search(line)))
        self.scheme, self.port = found.group(1), int(found.group(3))
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.stop()

    async def _read(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        while line := await self._process.stderr.readline():
            async with self._changed:
                self.lines.append(line.decode("utf-8", "replace"))
                self._changed.notify_all()
        async with self._changed:
            self._ended = True
            self._changed.notify_all()

    async def stop(self) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL; returns the exit code."""
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(WITHIN):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._reader
        return process.returncode


# --- an upstream that echoes what it was sent, waits when told to, and echoes WebSockets ---


@dataclass
class Upstream:
    entered: asyncio.Event = field(default_factory=asyncio.Event)  # /hang was reached
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends every /hang
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # ends every /stall

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/hang/{tail:.*}", self._hang)
        app.router.add_get("/stall/{tail:.*}", self._stall)
        app.router.add_get("/events/{tail:.*}", self._events)
        app.router.add_get("/ws/{tail:.*}", self._websocket)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        return app

    async def _echo(self, request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        return web.json_response({"path": request.path, "headers": headers})

    async def _hang(self, request: web.Request) -> web.Response:
        self.entered.set()
        await self.release.wait()
        return web.Response(text="released")

    async def _stall(self, request: web.Request) -> web.Response:
        await self.closing.wait()
        return web.Response(text="too late")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """One event, then (once released) another: a stream that spans a wait."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: one\n\n")
        await self.release.wait()
        await response.write(b"data: two\n\n")
        await response.write_eof()
        return response

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(f"echo:{message.data}")
        return ws
