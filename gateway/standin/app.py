"""`OryStandin`: the Python face tests and the demo use, and the aiohttp app it serves."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from . import health, login, logout, sessions, ui, web_hooks, whoami
from .error_ui import get_flow_error, show_error_page
from .faults import Faults
from .models import StandinSession
from .responses import NO_CACHE
from .state import STATE, StandinConfig, StandinState
from .store import Store
from .web_hooks import WebHook

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36"
)


@web.middleware
async def _count_and_delay(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Count every call by method and path, then add the configured latency."""
    state = request.app[STATE]
    state.calls[f"{request.method} {request.path}"] += 1
    if state.faults.latency > 0:
        await asyncio.sleep(state.faults.latency)
    return await handler(request)


async def _no_cache_on_get(request: web.Request, response: web.StreamResponse) -> None:
    """Kratos' `NoCacheNegroni`: every public GET, whatever the status
    (docs/standin.md#conventions)."""
    if request.method == "GET":
        response.headers["Cache-Control"] = NO_CACHE


async def _release_hangs(app: web.Application) -> None:
    """A hanging handler must not hold the server's shutdown for its full timeout."""
    app[STATE].faults.release()


def _add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/sessions/whoami", whoami.whoami)
    app.router.add_get("/sessions", sessions.list_my_sessions)
    app.router.add_delete("/sessions", sessions.revoke_my_other_sessions)
    app.router.add_delete("/sessions/{id}", sessions.revoke_my_session)
    app.router.add_get("/self-service/logout/browser", logout.create_browser_logout_flow)
    app.router.add_get("/self-service/logout", logout.update_logout_flow)
    app.router.add_delete("/self-service/logout/api", logout.perform_native_logout)
    app.router.add_get("/self-service/login/browser", login.create_browser_login_flow)
    app.router.add_post("/self-service/login", login.submit_login)
    app.router.add_get("/self-service/errors", get_flow_error)
    app.router.add_get("/ui/login", ui.show_login_page)
    app.router.add_get("/ui/error", show_error_page)
    app.router.add_get("/health/alive", health.alive)
    app.router.add_get("/health/ready", health.ready)
    app.router.add_get("/", ui.show_home_page)


class OryStandin:
    """An in-process Kratos public API with the knobs tests need (docs/standin.md)."""

    def __init__(
        self,
        cookie_name: str = "ory_kratos_session",
        allowed_return_urls: Iterable[str] = (),
        session_lifespan: float = 86400.0,
        required_aal: str = "highest_available",
        clock: Callable[[], float] = time.time,
        public_url: str = "",
        *,
        login_hint: str = "",
        default_return_url: str = "",
        edge_cache_max_age: float | None = None,
    ) -> None:
        if required_aal not in ("highest_available", "aal1"):
            raise ValueError(f"required_aal must be 'highest_available' or 'aal1': {required_aal}")
        config = StandinConfig(
            cookie_name=cookie_name,
            allowed_return_urls=tuple(allowed_return_urls),
            session_lifespan=session_lifespan,
            required_aal=required_aal,
            public_url=public_url,
            default_return_url=default_return_url,
            login_hint=login_hint,
            edge_cache_max_age=edge_cache_max_age,
        )
        self._state = StandinState(config, clock, Store(clock, session_lifespan))
        self._hooks: list[WebHook] = []

    def allow_return_to(self, *urls: str) -> None:
        """Add to `selfservice.allowed_return_urls`, as a Kratos config reload would (tests
        learn the gateway's port only once it listens)."""
        config = self._state.config
        allowed = (*config.allowed_return_urls, *urls)
        self._state.config = dataclasses.replace(config, allowed_return_urls=allowed)

    @property
    def faults(self) -> Faults:
        return self._state.faults

    @property
    def calls(self) -> Counter[str]:
        return self._state.calls

    @property
    def whoami_requests(self) -> list[CIMultiDict[str]]:
        return self._state.whoami_requests

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[_count_and_delay])
        app[STATE] = self._state
        app.on_response_prepare.append(_no_cache_on_get)
        app.on_shutdown.append(_release_hangs)
        _add_routes(app)
        return app

    def add_identity(
        self,
        email: str,
        password: str = "",
        has_second_factor: bool = False,
        traits: dict[str, Any] | None = None,
        metadata_public: dict[str, Any] | None = None,
    ) -> str:
        """An active identity; an empty password means it cannot sign in through the form.
        `metadata_public`: what an admin set through Ory's admin API (a role, say)."""
        return self._state.store.add_identity(
            email, password, has_second_factor, traits, metadata_public
        ).id

    def create_session(
        self,
        identity_id: str,
        aal: str = "aal1",
        authenticated_at: float | None = None,
        user_agent: str | None = DEFAULT_USER_AGENT,
        ip_address: str = "127.0.0.1",
        location: str = "",
    ) -> StandinSession:
        """A session as if the identity had just signed in (`expires_at` counts from then)."""
        return self._state.store.create_session(
            identity_id,
            aal=aal,
            authenticated_at=authenticated_at,
            user_agent=user_agent,
            ip_address=ip_address,
            location=location,
        )

    def get_session(self, session_id: str) -> StandinSession:
        return self._state.store.get(session_id)

    def revoke_session(self, session_id: str) -> None:
        """Mark inactive, as an admin would."""
        self._state.store.get(session_id).active = False

    def expire_session(self, session_id: str) -> None:
        self._state.store.get(session_id).expires_at = self._state.clock()

    def add_web_hook(
        self, url: str, token: str, *, after: Iterable[str] = ("settings", "recovery"),
        header: str = "Authorization",
    ) -> None:
        """A Kratos `web_hook` after these flows, authenticated with `header: Bearer token`
        (docs/standin.md#web-hooks)."""
        self._hooks.append(WebHook(url, header, f"Bearer {token}", frozenset(after)))

    async def change_password(
        self, identity_id: str, password: str, *, keep_session: str | None = None
    ) -> list[int]:
        """A settings flow with the password method, configured like the gateway's README:
        `revoke_active_sessions` (every session but `keep_session`, the one that changed it),
        then the web hooks. Returns the hooks' statuses."""
        self._state.store.identities[identity_id].password = password
        for session in self._state.store.sessions.values():
            if session.identity_id == identity_id and session.id != keep_session:
                session.active = False
        return await web_hooks.call(self._hooks, "settings", identity_id)

    async def recover(self, identity_id: str) -> list[int]:
        """A finished recovery flow, configured with `revoke_active_sessions` then the web
        hooks: every session of the identity ends."""
        for session in self._state.store.sessions.values():
            if session.identity_id == identity_id:
                session.active = False
        return await web_hooks.call(self._hooks, "recovery", identity_id)

    def deactivate_identity(self, identity_id: str) -> None:
        """Identity state `inactive`: all its sessions fail whoami with the usual 401."""
        identity = self._state.store.identities[identity_id]
        identity.state = "inactive"
        identity.state_changed_at = self._state.clock()
