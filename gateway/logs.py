"""Log lines: never a cookie or token value, and one JSON object per line when asked
(docs/reference.md#logs-and-metrics).

aiohttp logs malformed requests with the offending bytes (a header line can carry a session
cookie), and an exception's message may quote a header. This filter keeps the exception's
class and where it was raised (file, line, code: enough to fix a bug) and drops every
message and value.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from types import TracebackType

_SERVER_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access")


class RedactBadRequests(logging.Filter):
    """Rewrites aiohttp's error records so no request bytes reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.levelno >= logging.ERROR:
            error = record.exc_info[1] if record.exc_info else None
            kind = type(error).__name__ if error is not None else "error"
            record.msg = "request failed (%s); messages withheld: they may contain credentials"
            record.args = (kind,)
            where = record.exc_info[2] if record.exc_info else None
            record.exc_info = None
            record.exc_text = _frames(where, kind) if where is not None else None
            record.stack_info = None
        return True


def _frames(trace: TracebackType, kind: str) -> str:
    """The traceback's frames and the exception's class, without its message."""
    lines = traceback.format_list(traceback.extract_tb(trace))
    return "Traceback (most recent call last):\n" + "".join(lines) + kind


def install_log_redaction() -> None:
    """Idempotent: attach the filter to aiohttp's server-side loggers."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactBadRequests) for f in logger.filters):
            logger.addFilter(RedactBadRequests())


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


_LAST_SECOND: list[int | str] = [-1, ""]  # the last whole second formatted, and its text


def rfc3339(seconds: float) -> str:
    """Epoch seconds -> `2026-12-06T07:30:15.123Z` (the seconds part formatted once per
    second: every access line asks)."""
    whole = int(seconds)
    if whole != _LAST_SECOND[0]:
        _LAST_SECOND[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_LAST_SECOND[1]}.{int((seconds - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """`log_format = "json"`: one object per line, `time`, `level`, `logger`, `message`, and
    `traceback` (frames and the exception's class, never its message) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "access_json", False):
            return record.getMessage()  # an access line, already one JSON object
        document: dict[str, object] = {
            "time": rfc3339(record.created), "level": record.levelname,
            "logger": record.name, "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[2] is not None:
            error = record.exc_info[1]
            document["traceback"] = _frames(record.exc_info[2], type(error).__name__)
        elif record.exc_text:
            document["traceback"] = record.exc_text
        return json.dumps(document, ensure_ascii=True, separators=(",", ":"))


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for `server.log_format`."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
