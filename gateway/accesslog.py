"""The end of every request: its access-log line and its metrics, from its Outcome
(docs/reference.md#logs-and-metrics).

aiohttp calls `AccessLogger.log` once per finished request. The line never holds a cookie,
a token, a query or an email: the query is shown as `?…` (text) or not at all (JSON), and
the user is named by their identity id only. `gateway serve` gives the access logger a
batching handler: one write per batch instead of one per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time as _time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateway.logs import rfc3339
from gateway.observe import NO_METRICS, Metrics
from gateway.outcome import OUTCOME, Outcome

_quote = json.encoder.encode_basestring_ascii  # json.dumps of one str, without its checks
FLUSH_EVERY = 0.5  # seconds a line may wait before it is written
BATCH = 256  # lines that force a write at once
PIECE = 4000  # bytes per write, below PIPE_BUF (4096)
_BYTES = (bytes, bytearray)  # a tuple: `bytes | bytearray` would build a union per call


@dataclass(slots=True)
class Reporting:
    """How requests are reported; `lines` and `json` follow the config (reload included)."""

    lines: bool = True  # `server.access_log`
    json: bool = False  # `server.log_format = "json"`
    metrics: Metrics = field(default=NO_METRICS)

    @property
    def enabled(self) -> bool:
        return self.lines or self.metrics is not NO_METRICS


REPORTING = web.AppKey("reporting", Reporting)


class AccessLogger(AbstractAccessLogger):
    """Bound to one app's Reporting by `for_app` (aiohttp makes one per connection)."""

    reporting = Reporting()

    @classmethod
    def for_app(cls, reporting: Reporting) -> type[AccessLogger]:
        return type("AccessLogger", (cls,), {"reporting": reporting})

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        outcome = request.get(OUTCOME)  # None: an app other than the gateway (the demo's)
        reporting = self.reporting
        status, method = response.status, request.method
        if outcome is not None:
            # aiohttp's `time` comes from the loop clock, whole milliseconds under uvloop.
            time = _time.monotonic() - outcome.started
            if reporting.metrics is not NO_METRICS:
                reporting.metrics.request(outcome, status, time)
        if not reporting.lines:
            return
        path, cut = loggable_path(request.raw_path)
        size = body_size(method, response, outcome, status)
        if outcome is None:
            line = (
                f"{method} {path}{'?…' if cut else ''} {status} "
                f"{size} {time * 1000:.1f}ms {request.remote or '-'}"
            )
        elif reporting.json:
            fields = {
                "message": f"{method} {path} {status}",
                "request_id": outcome.request_id, "method": method, "path": path,
                "route": outcome.route, "decision": outcome.decision, "status": status,
                "bytes": size, "duration_ms": round(time * 1000, 3),
                "upstream_ms": None if outcome.upstream_s is None
                else round(outcome.upstream_s * 1000, 3),
                "cache": outcome.cache, "identity_id": outcome.identity_id,
                "peer": request.remote,
            }
            if outcome.checked is not None:
                fields["checked_method"], fields["checked_path"] = outcome.checked
            line = json_line(fields)
        else:
            line = (
                f"{method} {path}{'?…' if cut else ''} {status} "
                f"{size} {time * 1000:.1f}ms {request.remote or '-'} "
                f"{outcome.decision} {outcome.request_id}"
            )
            if outcome.checked is not None:
                line = f"{line} checked {outcome.checked[0]} {outcome.checked[1]}"
        handlers = self.logger.handlers
        if len(handlers) == 1 and isinstance(handlers[0], BatchingHandler):
            handlers[0].line(line, formatted=reporting.json)
        else:
            self.logger.info("%s", line, extra={"access_json": reporting.json})

    @property
    def enabled(self) -> bool:
        return self.reporting.enabled


_CUT_AT = ("?", "#", ";", "%3f", "%23", "%3b")
# A path with nothing to cut or hide (most of them): shown as it is, after one match.
_PLAIN_PATH = re.compile(r"/[^?#;%@]{0,511}")


def loggable_path(raw: str) -> tuple[str, bool]:
    """The path as a log line may show it, and whether something was cut: never a query,
    fragment, `;` parameters or what follows an encoded `?`, `#` or `;` (refused requests
    carry such things), no path segment holding an `@` (an email, user info), and no target
    that is not a path at all (`http://user:pass@host/`)."""
    if _PLAIN_PATH.fullmatch(raw):
        return raw, False
    if not raw.startswith("/"):
        return "(not a path)", True
    lower = raw.lower()
    end = min((i for i in (lower.find(mark) for mark in _CUT_AT) if i >= 0), default=len(raw))
    path = raw[:min(end, 512)]
    if "@" in path or "%40" in lower[:end]:
        path = "/".join(
            "…" if "@" in part or "%40" in part.lower() else part for part in path.split("/")
        )
    return path, end < len(raw)


def body_size(
    method: str, response: web.StreamResponse, outcome: Outcome | None, status: int
) -> int:
    """Bytes of the answer's body (aiohttp's own count includes its head)."""
    if method == "HEAD" or status in (204, 304) or status < 200:
        return 0
    if isinstance(response, web.Response):
        body = response.body
        if isinstance(body, _BYTES):
            return len(body)
    if outcome is not None and outcome.body_bytes is not None:
        return outcome.body_bytes
    return response.content_length or 0


def json_line(fields: dict[str, Any]) -> str:
    """An access line as one JSON object, `time`, `level` and `logger` first: what
    `json.dumps(..., ensure_ascii=True, separators=(",", ":"))` writes, built by hand
    (a third of the time: this runs once per request)."""
    parts = [f'{{"time":"{rfc3339(_time.time())}","level":"INFO","logger":"gateway.access"']
    for name, value in fields.items():
        kind = type(value)
        if kind is str:
            text = _quote(value)
        elif value is None:
            text = "null"
        elif kind is int or (kind is float and math.isfinite(value)):
            text = repr(value)  # what json writes for them
        else:
            text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
        parts.append(f',"{name}":{text}')
    parts.append("}")
    return "".join(parts)


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Formats each record at once but writes them in batches (see `flushing`)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._second = -1
        self._prefix = ""
        self._millisecond = -1
        self._stamped = ""  # the prefix of lines in the current millisecond

    def line(self, message: str, *, formatted: bool = False) -> None:
        """An INFO line without a LogRecord: in LOG_FORMAT's shape (`asctime LEVEL name:
        msg`), or as given when `formatted` (a JSON line). The time prefix is formatted once
        per millisecond (several lines share one under load)."""
        if not formatted:
            millisecond = int(_time.time() * 1000)
            if millisecond != self._millisecond:
                self._millisecond = millisecond
                second = millisecond // 1000
                if second != self._second:
                    self._second = second
                    stamp = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(second))
                    self._prefix = f"{stamp},%03d INFO gateway.access: "
                self._stamped = self._prefix % (millisecond % 1000)
            message = self._stamped + message
        self._pending.append(message)
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
                # isascii() reads a flag: only a line with other characters is encoded to count
                length = (len(line) if line.isascii() else len(line.encode())) + 1
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
