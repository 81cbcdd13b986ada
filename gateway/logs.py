"""Keep cookie and token values out of every log line (issue 4.5).

aiohttp logs malformed requests with the offending bytes (a header line can carry a session
cookie), and an exception's message may quote a header. This filter keeps the exception's
class and where it was raised (file, line, code: enough to fix a bug) and drops every
message and value.
"""

from __future__ import annotations

import logging
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
