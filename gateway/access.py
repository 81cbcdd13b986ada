"""Authentication and authorisation: (route, credential) -> Session | None, or a typed error.

docs/reference.md#route-match and #outcomes. The decision uses only the route and Ory's
answer; it never looks
at headers the client could forge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from gateway.cache import Fetch, SessionCache
from gateway.credentials import Credential
from gateway.errors import (
    AccessDeniedError,
    ForbiddenError,
    RefreshRequiredError,
    SessionRequiredError,
    StepUpRequiredError,
)
from gateway.ory import OryClient, StepUpRequired, WhoamiResult
from gateway.outcome import Outcome
from gateway.routeconfig import Requirement
from gateway.routes import Route, aal_rank
from gateway.session import Session


class Authenticator:
    """Looks sessions up through the cache and applies a route's requirements."""

    def __init__(self, ory: OryClient, cache: SessionCache, clock: Callable[[], float]) -> None:
        self.ory = ory
        self.cache = cache
        self._clock = clock

    async def lookup(
        self, credential: Credential, outcome: Outcome | None = None
    ) -> WhoamiResult:
        """Cached whoami; raises OryUnavailableError when Ory fails and nothing stale helps."""
        return await self.cache.get(credential.key, self._fetcher(credential), outcome)

    def _fetcher(self, credential: Credential) -> Fetch:
        async def fetch(fresh: bool) -> WhoamiResult:
            return await self.ory.whoami(credential, fresh=fresh)

        return fetch

    async def authorize(
        self, route: Route, credential: Credential | None, outcome: Outcome
    ) -> Session | None:
        """The session to vouch for (None = pass anonymously), or raise why not."""
        if route.access == "deny":
            raise AccessDeniedError()
        if route.access == "public":
            return None
        if credential is None:
            if route.access == "optional":
                return None
            raise SessionRequiredError()
        result: WhoamiResult | None = self.cache.hit(credential.key, self._fetcher(credential))
        if result is not None:
            outcome.cache = "hit"
        else:
            result = await self.lookup(credential, outcome)
        if not isinstance(result, Session):
            if route.access == "optional":
                return None
            if isinstance(result, StepUpRequired):
                raise StepUpRequiredError()
            raise SessionRequiredError()
        outcome.identity_id = result.identity_id  # known even when refused below
        if route.access == "authenticated":
            self.check_requirements(route, result)
        return result

    def check_requirements(self, route: Route, session: Session) -> None:
        """The route's `require`, `aal` and `max_age` (docs/reference.md#outcomes). The
        requirements come first: a second factor or a fresh login cannot give an account
        the role it lacks, so nobody is sent through one only to be refused after."""
        if route.require and not meets_all(session, route.require):
            raise ForbiddenError(
                "the session does not meet this route's requirements",
                signed_in_as=session.email or session.identity_id,
            )
        if route.aal is not None and aal_rank(session.aal) < aal_rank(route.aal):
            raise StepUpRequiredError()
        if route.max_age is not None and self._clock() - session.authenticated_at > route.max_age:
            raise RefreshRequiredError()


def meets_all(session: Session, requirements: tuple[Requirement, ...]) -> bool:
    """Every requirement holds: the field equals one of the values, or (a list) holds one;
    values compare as JSON (`true` is no `1`, `"3"` is no `3`); a missing field never
    matches (docs/reference.md#who-may-enter)."""
    claims = json.loads(session.claims) if session.claims else {}
    for requirement in requirements:
        if requirement.dotted not in claims:
            return False
        value = claims[requirement.dotted]
        held = value if isinstance(value, list) else [value]
        if not any(_same(v, wanted) for v in held for wanted in requirement.values):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool | str) or isinstance(b, bool | str):
        return type(a) is type(b) and a == b
    return bool(a == b)  # numbers: 3 and 3.0 are one JSON number
