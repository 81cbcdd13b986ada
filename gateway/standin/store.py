"""The in-memory identity and session tables, with the lookups Kratos' persister offers."""

from __future__ import annotations

import itertools
import secrets
import string
import uuid
from collections.abc import Callable
from typing import Any

from .models import AuthMethod, Device, Identity, StandinSession

_ALPHANUMERIC = string.ascii_letters + string.digits


def _prefixed_token(prefix: str) -> str:
    """Kratos' token shape: a prefix and 32 alphanumerics (`x/token_prefixes.go`)."""
    return prefix + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32))


def _methods_for(aal: str, at: float) -> list[AuthMethod]:
    if aal == "aal1":
        return [AuthMethod("password", "aal1", at)]
    if aal == "aal2":
        return [AuthMethod("password", "aal1", at), AuthMethod("totp", "aal2", at)]
    raise ValueError(f"aal must be 'aal1' or 'aal2', not {aal!r}")


class Store:
    """Identities and sessions; sessions are only ever marked inactive, never deleted."""

    def __init__(self, clock: Callable[[], float], session_lifespan: float) -> None:
        self._clock = clock
        self._lifespan = session_lifespan
        self._sequence = itertools.count()
        self.identities: dict[str, Identity] = {}
        self.sessions: dict[str, StandinSession] = {}
        self._by_token: dict[str, str] = {}
        self._by_cookie: dict[str, str] = {}

    def add_identity(
        self, email: str, password: str, has_second_factor: bool, traits: dict[str, Any] | None,
        metadata_public: dict[str, Any] | None = None,
    ) -> Identity:
        identity = Identity(
            id=str(uuid.uuid4()),
            email=email,
            password=password,
            has_second_factor=has_second_factor,
            traits=dict(traits) if traits is not None else {"email": email},
            created_at=self._clock(),
            verifiable_address_id=str(uuid.uuid4()),
            recovery_address_id=str(uuid.uuid4()),
            metadata_public=dict(metadata_public) if metadata_public is not None else None,
        )
        self.identities[identity.id] = identity
        return identity

    def identity_by_email(self, email: str) -> Identity | None:
        wanted = email.strip().casefold()
        for identity in self.identities.values():
            if identity.email and identity.email.casefold() == wanted:
                return identity
        return None

    def create_session(
        self,
        identity_id: str,
        *,
        aal: str,
        authenticated_at: float | None,
        user_agent: str | None,
        ip_address: str,
        location: str,
    ) -> StandinSession:
        if identity_id not in self.identities:
            raise KeyError(f"no identity {identity_id!r}")
        at = self._clock() if authenticated_at is None else authenticated_at
        session = StandinSession(
            id=str(uuid.uuid4()),
            token=_prefixed_token("ory_st_"),
            cookie_value=secrets.token_urlsafe(32),
            identity_id=identity_id,
            logout_token=_prefixed_token("ory_lo_"),
            created_at=at,
            authenticated_at=at,
            issued_at=at,
            expires_at=at + self._lifespan,
            device=Device(str(uuid.uuid4()), ip_address, user_agent, location),
            sequence=next(self._sequence),
            methods=_methods_for(aal, at),
        )
        self.sessions[session.id] = session
        self._by_token[session.token] = session.id
        self._by_cookie[session.cookie_value] = session.id
        return session

    def by_token(self, token: str) -> StandinSession | None:
        session_id = self._by_token.get(token)
        return None if session_id is None else self.sessions[session_id]

    def by_cookie(self, value: str) -> StandinSession | None:
        session_id = self._by_cookie.get(value)
        return None if session_id is None else self.sessions[session_id]

    def get(self, session_id: str) -> StandinSession:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise KeyError(f"no session {session_id!r}") from None

    def is_valid(self, session: StandinSession) -> bool:
        """What whoami accepts: live session of an active identity (docs/standin.md#whoami)."""
        return session.is_live(self._clock()) and self.identities[session.identity_id].is_active

    def others(self, session: StandinSession) -> list[StandinSession]:
        """The identity's other live sessions, newest first (docs/standin.md#sessions)."""
        now = self._clock()
        found = [
            s
            for s in self.sessions.values()
            if s.identity_id == session.identity_id and s.id != session.id and s.is_live(now)
        ]
        return sorted(found, key=lambda s: (s.created_at, s.sequence), reverse=True)

    def revoke_others(self, session: StandinSession) -> int:
        """PostgreSQL semantics (Ory Network): the count includes already inactive rows
        (docs/standin.md#sessions)."""
        count = 0
        for other in self.sessions.values():
            if other.identity_id == session.identity_id and other.id != session.id:
                other.active = False
                count += 1
        return count

    def revoke_of_identity(self, identity_id: str, session_id: str) -> None:
        """Scoped to the caller's identity: a foreign or unknown id silently matches nothing."""
        session = self.sessions.get(session_id)
        if session is not None and session.identity_id == identity_id:
            session.active = False

    def complete_login(self, session: StandinSession, method: str, aal: str) -> None:
        """A login finished on an existing session: same id, new times, a re-issued cookie
        (docs/standin.md#browser-login)."""
        now = self._clock()
        session.methods = [m for m in session.methods if m.method != method]
        session.methods.append(AuthMethod(method, aal, now))
        session.authenticated_at = now
        session.issued_at = now
        session.expires_at = now + self._lifespan
        session.cookie_value = secrets.token_urlsafe(32)
        self._by_cookie[session.cookie_value] = session.id
