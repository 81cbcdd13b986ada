"""The login page and the landing page that Kratos' UI settings would point at."""

from __future__ import annotations

from aiohttp import web

from .flows import restart_url, submit_url
from .pages import home_page, login_page
from .state import STATE


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8")


async def show_login_page(request: web.Request) -> web.Response:
    """`/ui/login?flow=<id>`; a stale flow restarts with the same request."""
    state = request.app[STATE]
    base_url = state.base_url(request)
    flow = state.flows.get(request.query.get("flow", ""))
    if flow is None or flow.is_expired(state.clock()):
        return web.Response(status=303, headers={"Location": restart_url(base_url, flow)})
    email = ""
    if flow.session_id is not None:
        email = state.store.identities[state.store.sessions[flow.session_id].identity_id].email
    error, flow.error = flow.error, ""
    return _html(
        login_page(
            action=submit_url(base_url, flow),
            email=email,
            password_optional=flow.session_id is not None and not flow.refresh,
            ask_code=flow.is_step_up,
            error=error,
            hint=state.config.login_hint,
        )
    )


async def show_home_page(request: web.Request) -> web.Response:
    """The default return URL when none is configured."""
    state = request.app[STATE]
    return _html(home_page(login_url=state.base_url(request) + "/self-service/login/browser"))
