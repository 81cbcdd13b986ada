"""Ory behind a narrow interface: the only module that knows Kratos paths
(docs/reference.md#asking-ory).

Decisions are made on status codes only, never on error ids or wording
(docs/reference.md#asking-ory).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from gateway.config import IdentityHeader
from gateway.credentials import Credential
from gateway.errors import OryUnavailableError
from gateway.observe import NO_METRICS, Metrics
from gateway.session import Session, SessionInactiveError, parse_session


@dataclass(frozen=True, slots=True)
class Unauthenticated:
    """Ory does not know the credential (whoami 401)."""


@dataclass(frozen=True, slots=True)
class StepUpRequired:
    """Ory knows the session but wants more (whoami 403, e.g. `session_aal2_required`)."""


WhoamiResult = Session | Unauthenticated | StepUpRequired
UNAUTHENTICATED = Unauthenticated()
STEP_UP_REQUIRED = StepUpRequired()


class OryClient(Protocol):
    """What the gateway asks of Ory. Tests swap it by construction, never by patching."""

    async def whoami(self, credential: Credential, *, fresh: bool = False) -> WhoamiResult:
        """Validate a credential; OryUnavailableError when Ory cannot answer."""
        ...

    async def session_document(self, credential: Credential) -> dict[str, Any] | None:
        """The full whoami JSON (devices included), uncached; None when not valid."""
        ...

    async def logout_url(self, credential: Credential, return_to: str) -> str | None:
        """A browser logout URL for a cookie session, or None when there is no session."""
        ...

    async def revoke_token(self, credential: Credential) -> None:
        """Log out a session token (API callers)."""
        ...

    async def list_sessions(self, credential: Credential) -> list[dict[str, Any]]:
        """The caller's other active sessions (one page)."""
        ...

    async def revoke_other_sessions(self, credential: Credential) -> int:
        """Revoke every other session; Ory's (loose) count."""
        ...

    async def revoke_session(self, credential: Credential, session_id: str) -> None:
        """Revoke one of the caller's other sessions."""
        ...

    async def is_ready(self) -> bool:
        """Whether Ory answers at all."""
        ...


log = logging.getLogger("gateway.ory")
_JSON = {"Accept": "application/json"}
_TRANSIENT = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class HttpOryClient:
    """Ory over HTTP through one pooled ClientSession owned by the app."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        cookie_name: str,
        timeout: float,
        identity_headers: tuple[IdentityHeader, ...],
        clock: Callable[[], float],
        metrics: Metrics = NO_METRICS,
        claim_paths: tuple[tuple[str, ...], ...] = (),
    ) -> None:
        self._http = http
        self._claim_paths = claim_paths  # the session fields routes require
        self._metrics = metrics
        self._base = base_url
        self._cookie = cookie_name
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._identity_headers = identity_headers
        self._clock = clock

    def _auth_headers(self, credential: Credential) -> dict[str, str]:
        """Exactly one credential (Ory has answered 500 when sent two;
        docs/reference.md#asking-ory)."""
        if credential.source == "cookie":
            return {**_JSON, "Cookie": f"{self._cookie}={credential.value}"}
        return {**_JSON, "X-Session-Token": credential.value}

    async def _request(
        self, endpoint: str | None, method: str, path: str, headers: dict[str, str],
        **kwargs: Any,
    ) -> tuple[int, bytes]:
        """One call; `endpoint` names it for the metrics (whoami, sessions, revoke, logout;
        None: a readiness probe, not counted)."""
        started = time.monotonic()
        try:
            async with self._http.request(
                method, self._base + path, headers=headers, timeout=self._timeout,
                allow_redirects=False, **kwargs,
            ) as response:
                status, body = response.status, await response.read()
        except _TRANSIENT as exc:
            if endpoint is not None:
                outcome = "timeout" if isinstance(exc, asyncio.TimeoutError) else "unreachable"
                self._metrics.ory_call(endpoint, outcome, time.monotonic() - started)
            raise OryUnavailableError(f"Ory could not be reached: {type(exc).__name__}") from None
        if endpoint is not None:
            self._metrics.ory_call(endpoint, _outcome(status), time.monotonic() - started)
        return status, body

    async def whoami(self, credential: Credential, *, fresh: bool = False) -> WhoamiResult:
        headers = self._auth_headers(credential)
        if fresh:
            # Ory Network's edge cache (docs/reference.md#session-cache)
            headers["Cache-Control"] = "max-age=0"
        status, body = await self._request("whoami", "GET", "/sessions/whoami", headers)
        if status == 200:
            try:
                return parse_session(json.loads(body), self._identity_headers, self._clock(),
                                     self._claim_paths)
            except SessionInactiveError:
                return UNAUTHENTICATED
            except ValueError:
                raise OryUnavailableError("Ory answered whoami with an unusable body") from None
        if status == 401:
            return UNAUTHENTICATED
        if status == 403:
            return STEP_UP_REQUIRED
        raise OryUnavailableError(f"Ory answered whoami with HTTP {status}")

    async def session_document(self, credential: Credential) -> dict[str, Any] | None:
        status, body = await self._request(
            "whoami", "GET", "/sessions/whoami", self._auth_headers(credential)
        )
        if status in (401, 403):
            return None
        document = _json_object(body) if status == 200 else None
        if document is None:
            raise OryUnavailableError(f"Ory answered whoami with HTTP {status}")
        return document

    async def logout_url(self, credential: Credential, return_to: str) -> str | None:
        headers = self._auth_headers(credential)
        path = "/self-service/logout/browser"
        status, body = await self._request(
            "logout", "GET", path, headers, params={"return_to": return_to}
        )
        if status == 400:
            # Ory refused our return_to (gateway origin not in allowed_return_urls): still log
            # the user out, and let Ory pick where they land.
            # Only the origin: the path and query may carry a token.
            log.warning("Ory refused a return_to on %s: add that origin to Ory's "
                        "selfservice.allowed_return_urls", _origin_of(return_to))
            status, body = await self._request("logout", "GET", path, headers)
        if status in (400, 401, 403):
            return None
        url = _json_field(body, "logout_url") if status == 200 else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise OryUnavailableError(f"Ory answered the logout request with HTTP {status}")
        return url

    async def revoke_token(self, credential: Credential) -> None:
        status, _ = await self._request(
            "logout", "DELETE", "/self-service/logout/api", _JSON,
            json={"session_token": credential.value},
        )
        if status not in (204, 400, 401, 403):
            raise OryUnavailableError(f"Ory answered the logout request with HTTP {status}")

    async def list_sessions(self, credential: Credential) -> list[dict[str, Any]]:
        status, body = await self._request(
            "sessions", "GET", "/sessions", self._auth_headers(credential),
            params={"page_size": "500"},
        )
        if status != 200:
            raise OryUnavailableError(f"Ory answered GET /sessions with HTTP {status}")
        try:
            items = json.loads(body)
        except ValueError:
            raise OryUnavailableError("Ory answered GET /sessions with non-JSON") from None
        if not isinstance(items, list):
            raise OryUnavailableError("Ory answered GET /sessions with a non-list")
        return [item for item in items if isinstance(item, dict)]

    async def revoke_other_sessions(self, credential: Credential) -> int:
        status, body = await self._request(
            "revoke", "DELETE", "/sessions", self._auth_headers(credential)
        )
        if status != 200:
            raise OryUnavailableError(f"Ory answered DELETE /sessions with HTTP {status}")
        count = _json_field(body, "count")
        return count if isinstance(count, int) else 0

    async def revoke_session(self, credential: Credential, session_id: str) -> None:
        status, _ = await self._request(
            "revoke", "DELETE", f"/sessions/{session_id}", self._auth_headers(credential)
        )
        if status not in (204, 400, 404):
            raise OryUnavailableError(f"Ory answered DELETE /sessions/{{id}} with HTTP {status}")

    async def is_ready(self) -> bool:
        """Self-hosted Kratos has /health/ready; Ory Network answers a bare whoami with 401."""
        try:
            status, _ = await self._request(None, "GET", "/health/ready", _JSON)
            if status == 200:
                return True
            if status == 404:
                status, _ = await self._request(None, "GET", "/sessions/whoami", _JSON)
                return status == 401
        except OryUnavailableError:
            return False
        return False


def _outcome(status: int) -> str:
    """A status as the Ory metric's `outcome` label."""
    if 200 <= status < 300:
        return "ok"
    return {401: "unauthorized", 403: "forbidden", 429: "rate_limited"}.get(status, "error")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _json_field(body: bytes, key: str) -> Any:
    document = _json_object(body)
    return document.get(key) if document is not None else None


def _origin_of(url: str) -> str:
    """scheme://host[:port] of an absolute URL, for log lines that must not hold its query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
