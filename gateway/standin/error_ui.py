"""Self-service errors: JSON for API callers, a 303 to the error UI for browsers
(docs/standin.md#conventions)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from . import errors
from .models import rfc3339
from .pages import error_page
from .responses import is_json_request, json_error, json_ok, see_other
from .state import STATE


def forward_error(request: web.Request, envelope: dict[str, Any]) -> web.Response:
    """`SelfServiceErrorManager.Forward`: JSON callers get the envelope, browsers a redirect."""
    if is_json_request(request):
        return json_error(envelope)
    state = request.app[STATE]
    error_id = str(uuid.uuid4())
    state.flow_errors[error_id] = {"created_at": state.clock(), **envelope}
    return see_other(f"{state.base_url(request)}/ui/error?id={error_id}")


async def show_error_page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    stored = state.flow_errors.get(request.query.get("id", ""))
    error = stored["error"] if stored else errors.envelope(404)["error"]
    html = error_page(
        title=str(error["status"]),
        message=str(error.get("reason") or error["message"]),
        login_url=state.base_url(request) + "/self-service/login/browser",
    )
    return web.Response(
        status=200 if stored else 404, text=html, content_type="text/html", charset="utf-8"
    )


async def get_flow_error(request: web.Request) -> web.Response:
    """`GET /self-service/errors?id=`: what an error UI reads to render the page."""
    state = request.app[STATE]
    error_id = request.query.get("id", "")
    stored = state.flow_errors.get(error_id)
    if stored is None:
        return json_error(errors.envelope(404, message="Unable to locate the resource"))
    created = rfc3339(float(stored["created_at"]))
    body = {"id": error_id, "error": stored["error"], "created_at": created, "updated_at": created}
    return json_ok(body)
