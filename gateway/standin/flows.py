"""Login flows: what a browser asked for, kept until the login page is submitted
(docs/standin.md#browser-login)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .models import rfc3339

FLOW_LIFESPAN = 3600.0  # Kratos' default `selfservice.flows.login.lifespan`


@dataclass
class LoginFlow:
    """`session_id` is set for re-authentication and step-up: the login finishes on it."""

    id: str
    request_url: str
    return_to: str
    refresh: bool
    requested_aal: str
    session_id: str | None
    issued_at: float
    expires_at: float
    error: str = ""

    @property
    def is_step_up(self) -> bool:
        return self.requested_aal == "aal2"

    def is_expired(self, now: float) -> bool:
        return self.expires_at <= now


def new_flow(
    *,
    request_url: str,
    return_to: str,
    refresh: bool,
    requested_aal: str,
    session_id: str | None,
    now: float,
) -> LoginFlow:
    return LoginFlow(
        id=str(uuid.uuid4()),
        request_url=request_url,
        return_to=return_to,
        refresh=refresh,
        requested_aal=requested_aal,
        session_id=session_id,
        issued_at=now,
        expires_at=now + FLOW_LIFESPAN,
    )


def submit_url(base_url: str, flow: LoginFlow) -> str:
    return f"{base_url}/self-service/login?flow={flow.id}"


def flow_json(flow: LoginFlow, base_url: str) -> dict[str, Any]:
    """The flow for JSON callers; the UI nodes are left out, our page is the only UI."""
    body: dict[str, Any] = {
        "id": flow.id,
        "type": "browser",
        "expires_at": rfc3339(flow.expires_at),
        "issued_at": rfc3339(flow.issued_at),
        "request_url": flow.request_url,
        "refresh": flow.refresh,
        "requested_aal": flow.requested_aal,
        "state": "choose_method",
        "ui": {"action": submit_url(base_url, flow), "method": "POST", "nodes": []},
    }
    if flow.return_to:
        body["return_to"] = flow.return_to
    return body


def restart_url(base_url: str, flow: LoginFlow | None) -> str:
    """Where a stale or unknown flow sends the browser: a fresh flow asking the same thing."""
    query = []
    if flow is not None:
        if flow.return_to:
            query.append(("return_to", flow.return_to))
        if flow.refresh:
            query.append(("refresh", "true"))
        if flow.is_step_up:
            query.append(("aal", "aal2"))
    suffix = "?" + urlencode(query) if query else ""
    return f"{base_url}/self-service/login/browser{suffix}"
