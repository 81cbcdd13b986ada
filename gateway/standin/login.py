"""Browser login: start a flow
(docs/standin.md#browser-login), then check the submitted form and finish the login."""

from __future__ import annotations

import hmac
import re

from aiohttp import web
from multidict import MultiDictProxy

from . import errors
from .error_ui import forward_error
from .flows import LoginFlow, flow_json, new_flow, restart_url
from .models import Identity, StandinSession
from .responses import is_json_request, json_error, json_ok, see_other
from .state import STATE, StandinState

INVALID_CREDENTIALS = (
    "The provided credentials are invalid, check for spelling mistakes in your password or"
    " username, email address, or phone number."
)
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_DEMO_CODE = re.compile(r"[0-9]{6}")
_Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


async def create_browser_login_flow(request: web.Request) -> web.Response:
    """Already satisfied → straight to return_to; otherwise a flow and a 303 to the login page."""
    state = request.app[STATE]
    return_to, allowed = state.return_to(request)
    if not allowed:
        return forward_error(request, errors.return_to_forbidden(request, return_to))
    aal = request.query.get("aal", "").lower()
    if aal not in ("", "aal1", "aal2"):
        reason = f"Unable to parse AuthenticationMethod Assurance Level (AAL): {aal}"
        return forward_error(request, errors.bad_request(request, reason=reason))
    refresh = request.query.get("refresh", "") in _GO_TRUE
    session = state.valid_session(request)
    if session is None and aal == "aal2":
        return forward_error(request, errors.aal1_required(request))
    if session is not None and not refresh and (aal != "aal2" or session.aal == "aal2"):
        if is_json_request(request):
            return json_error(errors.already_logged_in(request))
        return see_other(return_to)
    flow = new_flow(
        request_url=str(request.url),
        return_to=return_to if request.query.get("return_to") else "",
        refresh=refresh and session is not None,  # without a session `refresh` is dropped
        requested_aal=aal or "aal1",
        session_id=session.id if session is not None else None,
        now=state.clock(),
    )
    state.flows[flow.id] = flow
    base_url = state.base_url(request)
    if is_json_request(request):
        return json_ok(flow_json(flow, base_url))
    return see_other(f"{base_url}/ui/login?flow={flow.id}")


def _form_value(form: _Form, *names: str) -> str:
    """Our page posts `email`/`code`; Kratos' own field names are accepted too."""
    for name in names:
        value = form.get(name)
        if isinstance(value, str) and value:
            return value.strip() if name != "password" else value
    return ""


def _password_matches(identity: Identity, password: str) -> bool:
    if not identity.password:
        return False
    return hmac.compare_digest(identity.password.encode(), password.encode())


def _check(state: StandinState, flow: LoginFlow, form: _Form) -> Identity | str:
    """The identity the form proves, or the message to show on the page."""
    email = _form_value(form, "email", "identifier")
    password = _form_value(form, "password")
    if flow.session_id is None:
        identity = state.store.identity_by_email(email)
    else:
        session = state.store.sessions[flow.session_id]
        if not state.store.is_valid(session):
            return "Your session has ended. Please sign in again."
        identity = state.store.identities[session.identity_id]
        if email and email.casefold() != identity.email.casefold():
            return "Please confirm with the account you are signed in with."
    if identity is None:
        return INVALID_CREDENTIALS
    # A step-up on a live session has its first factor already; refresh and sign-in do not.
    password_needed = flow.session_id is None or flow.refresh
    if (password_needed or password) and not _password_matches(identity, password):
        return INVALID_CREDENTIALS
    if not identity.is_active:
        return "This account is disabled."
    if flow.is_step_up:
        if not identity.has_second_factor:
            return "No second factor is set up for this account."
        if not _DEMO_CODE.fullmatch(_form_value(form, "code", "totp_code")):
            return "The one-time code must be 6 digits."
    return identity


def _finish(
    request: web.Request, state: StandinState, flow: LoginFlow, identity: Identity
) -> StandinSession:
    """A new session, or the flow's session with a fresh login on it (same id;
    docs/standin.md#browser-login)."""
    if flow.session_id is None:
        city = request.headers.get("Cf-Ipcity", "")
        country = request.headers.get("Cf-Ipcountry", "")
        return state.store.create_session(
            identity.id,
            aal="aal1",
            authenticated_at=None,
            user_agent=request.headers.get("User-Agent"),
            ip_address=request.remote or "",
            location=", ".join(part for part in (city, country) if part),
        )
    session = state.store.sessions[flow.session_id]
    if flow.refresh or not flow.is_step_up:
        state.store.complete_login(session, "password", "aal1")
    if flow.is_step_up:
        state.store.complete_login(session, "totp", "aal2")
    return session


async def submit_login(request: web.Request) -> web.Response:
    """Success: the session cookie and a 303 to return_to; failure: back to the page."""
    state = request.app[STATE]
    base_url = state.base_url(request)
    flow = state.flows.get(request.query.get("flow", ""))
    if flow is None or flow.is_expired(state.clock()):
        return see_other(restart_url(base_url, flow))
    checked = _check(state, flow, await request.post())
    if isinstance(checked, str):
        flow.error = checked
        return see_other(f"{base_url}/ui/login?flow={flow.id}")
    session = _finish(request, state, flow, checked)
    del state.flows[flow.id]
    response = see_other(flow.return_to or state.default_return_url(request))
    response.set_cookie(
        state.config.cookie_name,
        session.cookie_value,
        path="/",
        max_age=max(int(session.expires_at - state.clock()), 0),
        httponly=True,
        samesite="Lax",
        secure=base_url.startswith("https://"),
    )
    return response
