"""`/sessions`: list and revoke the caller's other sessions (docs/standin.md#sessions)."""

from __future__ import annotations

import uuid

from aiohttp import web

from . import errors
from .models import StandinSession, session_json
from .pagination import link_header, parse_page
from .responses import json_error, json_ok
from .state import STATE, StandinState
from .whoami import whoami

_UUID_LENGTHS = (32, 36, 38, 41)  # hex, canonical, braced, urn:uuid:


def _caller(request: web.Request, state: StandinState) -> StandinSession | web.Response:
    session = state.valid_session(request)
    if session is None:
        return json_error(errors.no_session(request, errors.SESSIONS_REASON))
    return session


def _parse_uuid(text: str) -> str | None:
    """The forms gofrs/uuid reads; Python alone would also take misplaced dashes."""
    if len(text) not in _UUID_LENGTHS:
        return None
    if len(text) == 36 and any(text[i] != "-" for i in (8, 13, 18, 23)):
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _uuid_error(text: str) -> str:
    """gofrs/uuid's wording for a bad id."""
    length = len(text.encode())
    if length not in _UUID_LENGTHS:
        return f"uuid: incorrect UUID length {length} in string {errors.go_quote(text)}"
    return f"uuid: incorrect UUID format in string {errors.go_quote(text)}"


async def list_my_sessions(request: web.Request) -> web.Response:
    """Others only, live only, newest first; paging headers even for one page."""
    state = request.app[STATE]
    caller = _caller(request, state)
    if isinstance(caller, web.Response):
        return caller
    base_url = state.base_url(request)
    if not state.satisfies_required_aal(caller):
        return json_error(errors.aal2_required(request, base_url))
    others = state.store.others(caller)
    page = parse_page(request.query)
    now = state.clock()
    body = [
        session_json(s, state.store.identities[s.identity_id], now=now, base_url=base_url)
        for s in others[page.offset : page.offset + page.size]
    ]
    headers = {
        "X-Total-Count": str(len(others)),
        "Link": link_header(request.path, request.query, len(others), page),
    }
    return json_ok(body, headers=headers)


async def revoke_my_other_sessions(request: web.Request) -> web.Response:
    state = request.app[STATE]
    caller = _caller(request, state)
    if isinstance(caller, web.Response):
        return caller
    return json_ok({"count": state.store.revoke_others(caller)})


async def revoke_my_session(request: web.Request) -> web.StreamResponse:
    """Checks in Kratos' order; an unknown or foreign id is a silent 204, never a 404."""
    raw_id = request.match_info["id"]
    if raw_id == "whoami":
        return await whoami(request)
    state = request.app[STATE]
    caller = _caller(request, state)
    if isinstance(caller, web.Response):
        return caller
    session_id = _parse_uuid(raw_id)
    if session_id is None:
        return json_error(errors.bad_request(request, message=_uuid_error(raw_id)))
    if session_id == caller.id:
        return json_error(errors.bad_request(request, message="cannot revoke current session"))
    state.store.revoke_of_identity(caller.identity_id, session_id)
    return web.Response(status=204)
