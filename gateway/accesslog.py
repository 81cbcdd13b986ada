"""One access-log line per request, with no cookie, token or query value in it (issue 4.5).

Lines go through `logging` (so any handler can take them), but `gateway serve` gives the
access logger a batching handler: one write per batch instead of one per request, which is
a syscall saved on every proxied request.
"""

from __future__ import annotations

import asyncio
import logging
import time as _time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

FLUSH_EVERY = 0.5  # seconds a line may wait before it is written
BATCH = 256  # lines that force a write at once
PIECE = 4000  # bytes per write, below PIPE_BUF (4096)


class AccessLogger(AbstractAccessLogger):
    """`METHOD /path STATUS bytes ms peer`: the query is replaced by `?…` (it may hold secrets).

    With a BatchingHandler as the logger's only handler, the line is handed straight to it:
    a LogRecord per request costs more than the rest of the line."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path, mark, _ = request.raw_path.partition("?")
        handlers = self.logger.handlers
        if len(handlers) == 1 and isinstance(handlers[0], BatchingHandler):
            handlers[0].line(
                f"{request.method} {path[:512]}{'?…' if mark else ''} {response.status} "
                f"{response.body_length} {time * 1000:.1f}ms {request.remote or '-'}"
            )
            return
        self.logger.info(
            "%s %s%s %d %d %.1fms %s",
            request.method, path[:512], "?…" if mark else "", response.status,
            response.body_length, time * 1000, request.remote or "-",
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Formats each record at once but writes them in batches (see `flushing`)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._second = -1
        self._prefix = ""

    def line(self, message: str) -> None:
        """An INFO line without a LogRecord, in LOG_FORMAT's shape (`asctime LEVEL name: msg`)."""
        now = _time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            stamp = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(second))
            self._prefix = f"{stamp},%03d INFO gateway.access: "
        self._pending.append(self._prefix % int((now - second) * 1000) + message)
        if len(self._pending) >= BATCH:
            self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break a request
            self.handleError(record)
            return
        if len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Write in pieces of whole lines under PIPE_BUF, so workers sharing one stderr pipe
        never tear each other's lines (a pipe write of ≤ 4096 bytes is atomic)."""
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        piece: list[str] = []
        size = 0
        try:
            for line in lines:
                length = len(line.encode()) + 1
                if piece and size + length > PIECE:
                    self._write(piece)
                    piece, size = [], 0
                piece.append(line)
                size += length
            self._write(piece)
        except OSError:
            pass  # stderr gone (closed pipe): nothing else to tell

    def _write(self, lines: list[str]) -> None:
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()


@asynccontextmanager
async def flushing(handler: logging.Handler) -> AsyncIterator[None]:
    """Write what the handler holds every FLUSH_EVERY seconds, and once more at the end."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            handler.flush()

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        handler.flush()
