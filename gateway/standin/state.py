"""What every handler reads: the settings, the tables, the faults and the counters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from .credentials import find_session
from .faults import Faults
from .flows import LoginFlow
from .models import StandinSession
from .return_to import AllowedUrl, check_return_to, parse_allow_list
from .store import Store


@dataclass(frozen=True)
class StandinConfig:
    """The Kratos settings the gateway can observe (docs/standin.md#python-api)."""

    cookie_name: str
    allowed_return_urls: tuple[str, ...]
    session_lifespan: float
    required_aal: str
    public_url: str
    default_return_url: str
    login_hint: str
    edge_cache_max_age: float | None


@dataclass
class StandinState:
    config: StandinConfig
    clock: Callable[[], float]
    store: Store
    faults: Faults = field(default_factory=Faults)
    calls: Counter[str] = field(default_factory=Counter)
    whoami_requests: list[CIMultiDict[str]] = field(default_factory=list)
    flows: dict[str, LoginFlow] = field(default_factory=dict)
    flow_errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def base_url(self, request: web.Request) -> str:
        """`serve.public.base_url`, or what the caller used to reach us."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"

    def default_return_url(self, request: web.Request) -> str:
        """`selfservice.default_browser_return_url`: configured, else the first allowed URL."""
        if self.config.default_return_url:
            return self.config.default_return_url
        if self.config.allowed_return_urls:
            return self.config.allowed_return_urls[0]
        return self.base_url(request) + "/"

    def allow_list(self, request: web.Request) -> tuple[AllowedUrl, ...]:
        """The configured URLs plus `<public-base>/self-service`, always
        (docs/standin.md#return_to-allow-list)."""
        own = self.base_url(request) + "/self-service"
        return parse_allow_list((*self.config.allowed_return_urls, own))

    def return_to(self, request: web.Request) -> tuple[str, bool]:
        """The request's `return_to` resolved and checked: (URL, allowed?)."""
        raw = request.query.get("return_to", "")
        return check_return_to(raw, self.allow_list(request), self.default_return_url(request))

    def valid_session(self, request: web.Request) -> StandinSession | None:
        session = find_session(request, self.store, self.config.cookie_name)
        if session is None or not self.store.is_valid(session):
            return None
        return session

    def satisfies_required_aal(self, session: StandinSession) -> bool:
        """`highest_available`: an identity with a second factor must have used it
        (docs/standin.md#whoami)."""
        if self.config.required_aal != "highest_available":
            return True
        identity = self.store.identities[session.identity_id]
        return not identity.has_second_factor or session.aal == "aal2"


STATE = web.AppKey("ory_standin_state", StandinState)
