"""How Kratos writes answers: herodot JSON, its content types, and content negotiation
(docs/standin.md#conventions)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

JSON_SUCCESS = "application/json; charset=utf-8"
JSON_ERROR = "application/json"
NO_CACHE = "private, no-cache, no-store, must-revalidate"

_GO_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json(body: Any) -> bytes:
    """Go's `json.Encoder` output: compact, HTML characters escaped, a trailing newline."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in _GO_HTML_ESCAPES.items():
        text = text.replace(char, escaped)
    return (text + "\n").encode()


def json_ok(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A success body: herodot `Write` adds the charset."""
    response = web.Response(status=status, body=go_json(body), headers=headers)
    response.headers["Content-Type"] = JSON_SUCCESS
    return response


def json_error(
    envelope: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An error body: herodot `WriteErrorCode` sends no charset and mirrors the id in a header."""
    error = envelope["error"]
    response = web.Response(status=int(error["code"]), body=go_json(envelope), headers=headers)
    response.headers["Content-Type"] = JSON_ERROR
    response.headers["Ory-Error-Id"] = str(error.get("id", ""))
    return response


def see_other(location: str) -> web.Response:
    """Kratos answers browsers with 303 See Other, never 302."""
    return web.Response(status=303, headers={"Location": location})


def _accept_quality(accept: str, offer: str) -> float:
    """The q of the most specific Accept range matching `offer` (goautoneg's rule)."""
    offer_type, _, offer_sub = offer.partition("/")
    best_specificity, best_q = -1, 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        kind, _, sub = media.lower().partition("/")
        if (kind, sub) == (offer_type, offer_sub):
            specificity = 2
        elif kind == offer_type and sub == "*":
            specificity = 1
        elif (kind, sub) == ("*", "*"):
            specificity = 0
        else:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_q


def is_json_request(request: web.Request) -> bool:
    """`x.IsJSONRequest`: JSON content type, or Accept prefers JSON over HTML (ties go to HTML)."""
    if request.headers.get("Content-Type", "").split(";")[0].strip() == "application/json":
        return True
    accept = request.headers.get("Accept", "")
    if not accept:
        return False
    return _accept_quality(accept, "application/json") > _accept_quality(accept, "text/html")
