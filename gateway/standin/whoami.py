"""`/sessions/whoami`: the one call the gateway makes per request (docs/standin.md#whoami)."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from . import errors
from .credentials import has_credentials
from .faults import garbage_response, status_response, truncated_response
from .models import session_json
from .responses import json_error, json_ok
from .state import STATE, StandinState

_NO_CREDENTIALS_CACHE_FOR = "60"


async def _faulted(request: web.Request, state: StandinState) -> web.StreamResponse | None:
    """The answer a switched-on fault gives instead of the real one, if any."""
    faults = state.faults
    if faults.hang:
        await faults.hold()
    if faults.whoami_status is not None:
        return status_response(faults.whoami_status)
    if faults.garbage:
        return garbage_response()
    if faults.truncate:
        return await truncated_response(request)
    return None


def _unauthorized(request: web.Request, state: StandinState) -> web.Response:
    headers = {}
    no_credentials = not has_credentials(request, state.config.cookie_name)
    if state.config.edge_cache_max_age is not None and no_credentials:
        headers["Ory-Session-Cache-For"] = _NO_CREDENTIALS_CACHE_FOR
    return json_error(errors.no_session(request, errors.WHOAMI_REASON), headers=headers)


async def whoami(request: web.Request) -> web.StreamResponse:
    """200 Session, the id-less 401, or the step-up 403, after any fault has had its say."""
    state = request.app[STATE]
    state.whoami_requests.append(CIMultiDict(request.headers))
    faulted = await _faulted(request, state)
    if faulted is not None:
        return faulted
    if "tokenize_as" in request.query:
        # No tokenizer templates are configured here, so every template is unknown
        # (docs/standin.md#whoami).
        reason = "Unable to find tokenizer template: " + request.query["tokenize_as"]
        return json_error(errors.bad_request(request, reason=reason))
    session = state.valid_session(request)
    if session is None:
        return _unauthorized(request, state)
    base_url = state.base_url(request)
    if not state.satisfies_required_aal(session):
        return json_error(errors.aal2_required(request, base_url))
    identity = state.store.identities[session.identity_id]
    now = state.clock()
    headers = {"X-Kratos-Authenticated-Identity-Id": identity.id}
    if state.config.edge_cache_max_age is not None:
        cache_for = min(session.expires_at - now, state.config.edge_cache_max_age)
        headers["Ory-Session-Cache-For"] = str(max(int(cache_for), 0))
    return json_ok(session_json(session, identity, now=now, base_url=base_url), headers=headers)
