"""Keep cookie and token values out of every log line (issue 4.5).

aiohttp logs malformed requests with the offending bytes (a header line can carry a session
cookie) and a traceback. This filter replaces such records with the exception's class and
the peer, and drops the traceback.
"""

from __future__ import annotations

import logging

_SERVER_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access")


class RedactBadRequests(logging.Filter):
    """Rewrites aiohttp's error records so no request bytes reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.levelno >= logging.ERROR:
            error = record.exc_info[1] if record.exc_info else None
            kind = type(error).__name__ if error is not None else "error"
            record.msg = "request failed (%s); details withheld: they may contain credentials"
            record.args = (kind,)
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


def install_log_redaction() -> None:
    """Idempotent: attach the filter to aiohttp's server-side loggers."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactBadRequests) for f in logger.filters):
            logger.addFilter(RedactBadRequests())
