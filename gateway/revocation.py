"""The one owner of ending sessions: evict here, tell Ory, evict again
(docs/reference.md#endpoints).

Every way a session ends at this gateway goes through `Revoker`: logout (cookie or token),
re-authentication, revoking one or all other sessions, and (fleet) the revocation hook.
The order matters. The cache forgets the session first, so no request can be let in on it
while Ory is asked; then Ory acts; then the cache forgets again, whatever became of the
call (the client may hang up meanwhile), so nothing looked up in between survives. The
cache tells the other workers and replicas of each eviction itself (`SessionCache.announce`).
"""

from __future__ import annotations

from gateway.cache import SessionCache
from gateway.credentials import Credential
from gateway.observe import Metrics
from gateway.ory import OryClient
from gateway.session import Session

LOGOUT_HOLD = 120.0  # seconds a logged-out cookie is never cached again (see logout_cookie)


class Revoker:
    """Ends sessions in the cache (here and, through it, everywhere) and at Ory."""

    def __init__(self, cache: SessionCache, metrics: Metrics) -> None:
        self._cache = cache
        self._metrics = metrics

    async def logout_cookie(self, credential: Credential) -> None:
        """A browser logout: Ory ends the session only when the browser follows its logout
        URL, so until then this cookie is asked about at Ory every time, never cached."""
        session = self._cache.peek(credential.key)
        self._cache.evict_key(credential.key, hold=LOGOUT_HOLD)
        if session is not None:
            self._cache.evict_session(session.session_id, session.identity_id)
        self._metrics.revocation("logout")
        await self._cache.settle()

    async def logout_token(
        self, ory: OryClient, credential: Credential, session: Session | None
    ) -> None:
        """An API logout: Ory ends the token's session now."""
        try:
            await ory.revoke_token(credential)
        finally:  # even if the client hangs up: Ory may have ended it already
            self._cache.evict_key(credential.key)
            if session is not None:
                self._cache.evict_session(session.session_id, session.identity_id)
            self._metrics.revocation("logout")
            await self._cache.settle()

    def forget(self, credential: Credential) -> None:
        """Re-authentication: the next request asks Ory afresh (no revocation)."""
        self._cache.evict_key(credential.key)

    async def revoke_others(
        self, ory: OryClient, credential: Credential, session: Session
    ) -> int:
        """Every other session of the user, at Ory and here; Ory's (loose) count."""
        self._cache.evict_identity(session.identity_id, keep_session=session.session_id)
        try:
            return await ory.revoke_other_sessions(credential)
        finally:
            self._cache.evict_identity(session.identity_id, keep_session=session.session_id)
            self._metrics.revocation("revoke")
            await self._cache.settle()

    async def revoke_one(
        self, ory: OryClient, credential: Credential, session: Session, target: str
    ) -> None:
        """One other session of the user (Ory lets a caller revoke only its own)."""
        self._cache.evict_session(target, session.identity_id)
        try:
            await ory.revoke_session(credential, target)
        finally:
            self._cache.evict_session(target, session.identity_id)
            self._metrics.revocation("revoke")
            await self._cache.settle()

    async def hook(self, identity_id: str | None, session_id: str | None) -> int:
        """The revocation hook (Kratos after a password change or recovery, or an admin
        script): every session of the identity, or one session, everywhere; how many
        entries this replica dropped."""
        dropped = 0
        if identity_id:
            dropped += self._cache.evict_identity(identity_id)
        if session_id:
            dropped += self._cache.evict_session(session_id, "")
        self._metrics.revocation("hook")
        await self._cache.settle()
        return dropped
