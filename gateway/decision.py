"""Who may enter: the decision for one request, apart from relaying it
(docs/reference.md#route-match, #outcomes).

canonical path -> route -> credential -> session (cache, Ory) -> requirements: `decide`
returns what to let in (the route, the session to vouch for), or raises the typed refusal
that respond.py renders. The proxy relays what was decided; it decides nothing itself.
"""

from __future__ import annotations

from typing import NamedTuple

from gateway.access import Authenticator
from gateway.credentials import Credential
from gateway.outcome import Outcome
from gateway.routes import Route, RouteTable
from gateway.session import Session


class Allow(NamedTuple):
    """Let the request in: as `session`'s user, or anonymously when it is None."""

    route: Route
    session: Session | None


async def decide(
    routes: RouteTable, auth: Authenticator, method: str, path: str, host: str,
    credential: Credential | None, outcome: Outcome,
) -> Allow:
    """The route for `path` (already canonical) on `host` (lower-case, no port), then the
    session it needs and what the route requires of it; every finding is noted in
    `outcome`. Raises a GatewayError when the answer is no. The proxy and the forward-auth
    endpoints both ask this, and nothing else, whether a request may enter."""
    route = routes.match(method, path, host)
    outcome.route = route.label
    session = await auth.authorize(route, credential, outcome)
    if session is None:
        outcome.decision = "public" if route.access == "public" else "anonymous"
    else:
        outcome.decision = "allowed"
    return Allow(route, session)
