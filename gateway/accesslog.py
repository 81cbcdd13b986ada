"""One access-log line per request, with no cookie, token or query value in it (issue 4.5)."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class AccessLogger(AbstractAccessLogger):
    """`METHOD /path STATUS bytes ms peer`: the query is replaced by `?…` (it may hold secrets)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.raw_path.partition("?")[0][:512]
        query = "?…" if "?" in request.raw_path else ""
        self.logger.info(
            "%s %s%s %d %d %.1fms %s",
            request.method, path, query, response.status, response.body_length,
            time * 1000, request.remote or "-",
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
