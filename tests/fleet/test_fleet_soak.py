"""A soak of the fleet (docs/reference.md#running-several-replicas): three gateways, 50
users, requests spread over the replicas while sessions are revoked at random moments and in
every way (token and browser logouts, revoke-one, revoke-others, the hook after an admin
revocation, a Kratos recovery calling the hook). After the answer of a revocation has
arrived, no replica may serve that session again; no answer may name another user.

FLEET_SOAK_SECONDS sets how long the load runs (default 60)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field

from gateway.standin import StandinSession
from tests.fleet.conftest import (
    HOOK_TOKEN,
    Node,
    Stack,
    cookie,
    get_page,
    needs_redis,
    token,
)

pytestmark = needs_redis
SECONDS = float(os.environ.get("FLEET_SOAK_SECONDS", "60"))
USERS = 50
WORKERS = 8
PAUSE = 0.005  # between one worker's requests: a steady load, not a saturating one


@dataclass
class Ledger:
    """Who owns each session, how it is sent, and when its revocation was answered."""

    owner: dict[str, str] = field(default_factory=dict)
    session: dict[str, StandinSession] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    revoked_at: dict[str, float] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, list[str]] = field(default_factory=dict)  # identity -> its sessions
    served: list[tuple[str, int, float, int, str | None]] = field(default_factory=list)
    revocations: list[str] = field(default_factory=list)

    def add(self, identity: str, session: StandinSession, rng: random.Random) -> None:
        self.owner[session.id] = identity
        self.session[session.id] = session
        self.headers[session.id] = cookie(session) if rng.random() < 0.5 else token(session)
        self.sessions.setdefault(identity, []).append(session.id)

    def active(self, identity: str) -> list[str]:
        return [s for s in self.sessions[identity] if s not in self.revoked_at]

    def revoked(self, how: str, *ids: str) -> None:
        now = time.monotonic()
        for session_id in ids:
            self.revoked_at.setdefault(session_id, now)
            self.how.setdefault(session_id, how)
        self.revocations.append(how)


async def traffic(stack: Stack, ledger: Ledger, rng: random.Random, until: float) -> None:
    """Mostly live sessions, some already revoked, on a random replica."""
    while time.monotonic() < until:
        identity = rng.choice(list(ledger.sessions))
        live = ledger.active(identity)
        pool = live if live and rng.random() < 0.8 else ledger.sessions[identity]
        session_id = rng.choice(pool)
        node = rng.randrange(len(stack.nodes))
        started = time.monotonic()
        status, seen = await get_page(stack.http, stack.nodes[node], ledger.headers[session_id])
        ledger.served.append((session_id, node, started, status, seen))
        await asyncio.sleep(PAUSE)


async def revoke_one_at_random(stack: Stack, ledger: Ledger, rng: random.Random) -> None:
    http, ory = stack.http, stack.ory
    node = rng.choice(stack.nodes)
    identity = rng.choice(list(ledger.sessions))
    live = ledger.active(identity)
    if not live:
        return
    target = rng.choice(live)
    how = rng.choice(["token-logout", "browser-logout", "revoke-one", "revoke-others",
                      "hook", "recovery"])
    others = [s for s in live if s != target]
    if how in ("revoke-one", "revoke-others") and not others:
        how = "hook"
    if how == "browser-logout" and "Cookie" not in ledger.headers[target]:
        # A browser logout ends the session at Ory only when the browser follows the
        # gateway's 303; the gateway holds back the cookie meanwhile, not other credentials
        # of the session (a browser has none), so only sessions used as cookies go this way.
        how = "token-logout"
    if how == "token-logout":
        async with http.get(f"{node.origin}/_auth/logout", allow_redirects=False,
                            headers=token(ledger.session[target])) as answer:
            assert answer.status == 303
        ledger.revoked(how, target)
    elif how == "browser-logout":
        await browser_logout(stack, node, ledger, target)
    elif how == "revoke-one":
        async with http.delete(f"{node.origin}/_auth/sessions/{target}",
                               headers=token(ledger.session[rng.choice(others)])) as answer:
            assert answer.status == 204, await answer.text()
        ledger.revoked(how, target)
    elif how == "revoke-others":  # by the target: the others go
        async with http.delete(f"{node.origin}/_auth/sessions",
                               headers=token(ledger.session[target])) as answer:
            assert answer.status == 200, await answer.text()
        ledger.revoked(how, *others)
    elif how == "hook":
        ory.revoke_session(target)
        async with http.post(f"{node.origin}/_auth/hooks/revoke", json={"session_id": target},
                             headers={"Authorization": f"Bearer {HOOK_TOKEN}"}) as answer:
            assert answer.status == 200
        ledger.revoked(how, target)
    elif how == "recovery":
        assert await ory.recover(identity) == [200]
        ledger.revoked(how, *live)


async def browser_logout(stack: Stack, node: Node, ledger: Ledger, target: str) -> None:
    """The gateway's 303 to Ory's logout, followed as a browser would: Ory ends it then."""
    cookie_header = {"Cookie": cookie(ledger.session[target])["Cookie"]}
    async with stack.http.get(f"{node.origin}/_auth/logout", headers=cookie_header,
                              allow_redirects=False) as answer:
        assert answer.status == 303
        location = answer.headers["Location"]
    async with stack.http.get(location, headers=cookie_header,
                              allow_redirects=False) as finished:
        assert finished.status == 303
    ledger.revoked("browser-logout", target)


async def test_no_revoked_session_served_and_no_identity_mixed_up_under_load(
    stack: Stack,
) -> None:
    rng = random.Random(7)
    ledger = Ledger()
    for n in range(USERS):
        identity, made = stack.backends.user(f"soak{n}@example.com", sessions=3)
        for session in made:
            ledger.add(identity, session, rng)
    stack.ory.add_web_hook(f"{stack.nodes[2].origin}/_auth/hooks/revoke", HOOK_TOKEN,
                           after=("recovery",))
    until = time.monotonic() + SECONDS

    async def revocations() -> None:
        while time.monotonic() < until - 1:
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            await revoke_one_at_random(stack, ledger, rng)
            for identity in ledger.sessions:  # nobody runs out of sessions
                if not ledger.active(identity):
                    ledger.add(identity, stack.ory.create_session(identity), rng)

    async with asyncio.timeout(SECONDS + 60):
        await asyncio.gather(revocations(), *(
            traffic(stack, ledger, random.Random(n), until) for n in range(WORKERS)))

    statuses = {status for _, _, _, status, _ in ledger.served}
    assert statuses <= {200, 401}, statuses
    mixed = [r for r in ledger.served if r[3] == 200 and r[4] != ledger.owner[r[0]]]
    assert mixed == []
    late = [(ledger.how[r[0]], how_late, r) for r in ledger.served
            if r[3] == 200 and r[0] in ledger.revoked_at
            and (how_late := r[2] - ledger.revoked_at[r[0]]) > 0]
    outages = [[e for e in node.events() if "Redis" in e] for node in stack.nodes]
    assert late == [], f"{len(late)} served after their revocation: {late[:5]}; {outages}"
    assert len(ledger.served) > 500 * SECONDS / 40
    assert set(ledger.revocations) >= {"token-logout", "browser-logout", "revoke-one",
                                       "revoke-others", "hook", "recovery"}, ledger.revocations
    # The check had teeth: revoked sessions were tried, many right after their revocation.
    soon = [r for r in ledger.served if r[0] in ledger.revoked_at
            and 0 < r[2] - ledger.revoked_at[r[0]] < 0.2]
    assert len(soon) > 0, len(soon)
    assert all(node.count("Redis unavailable") == 0 for node in stack.nodes), outages
