"""Class SOAK: alice and bob share one gateway, and so its kept-alive upstream connections,
while the upstream gets ~5 % of its answers wrong (answers twice, sends a 408 while idle,
answers before reading the body). No answer may ever reach the wrong user (bounded ~25 s).

Every stray answer names the *other* user, so a relay that lets one through to the next
request on that connection shows up as an answer naming the wrong person. The upstream
marks a stray that a request may have crossed on the wire (the request arrived within
CROSSING_GRACE of it): no proxy can tell that one from the request's own answer, so it is
set aside, counted, and never excuses anything else.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from pytest_aiohttp import AiohttpServer

from tests.security.raw_client import RawClient, cookie, request
from tests.security.scripted_upstream import Received, ScriptedStack, scripted_stack

LOAD_SECONDS = 20.0
CONNECTIONS_PER_USER = 6
MISBEHAVING_SHARE = 0.05
MISBEHAVIOURS = ("twice", "stray-idle", "early")
STRAY_DELAY = 0.005  # short, so strays land on connections idle for a moment, as under load


@dataclass(frozen=True)
class Outcome:
    requester: str
    method: str
    status: int
    user: str | None  # whom the upstream's answer named (None: not an upstream answer)
    stray: int | None


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    broken: int = 0  # connections that ended under a client (allowed, counted)


def think_time(rng: random.Random) -> float:
    """A user's pause between requests: mostly none, now and then a longer one, so the
    number of busy upstream connections rises and falls and some of them sit idle."""
    return rng.uniform(0.05, 0.3) if rng.random() < 0.15 else 0.0


async def client_loop(stack: ScriptedStack, user: str, session: str, tally: Tally,
                      rng: random.Random, deadline: float) -> None:
    """One kept-alive connection after another, GETs and POSTs until `deadline`."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        async with RawClient(stack.port) as client:
            while loop.time() < deadline:
                method = rng.choice(("GET", "POST"))
                body = rng.randbytes(rng.randrange(1, 4096)) if method == "POST" else b""
                try:
                    await client.send(request(method, "/private/soak", cookie(session),
                                              body=body))
                    answer = await client.answer()
                except (ConnectionError, TimeoutError):
                    answer = None
                if answer is None or answer.framing == "cut":
                    tally.broken += 1
                    break
                tally.outcomes.append(
                    Outcome(user, method, answer.status, answer.user, answer.stray))
                if (answer.header("Connection") or "").lower() == "close":
                    break
                await asyncio.sleep(think_time(rng))


async def test_interleaved_users_never_get_each_others_answers_from_a_misbehaving_upstream(
    aiohttp_server: AiohttpServer,
) -> None:
    """Fails on 1c02853: stray 408s left on idle upstream connections (the POST path) are
    handed to whoever sends the next POST over that connection, naming the other user."""
    async with scripted_stack(aiohttp_server) as stack:
        alice, alice_session = stack.login("alice@example.com")
        bob, bob_session = stack.login("bob@example.com")
        other = {alice: bob, bob: alice}
        script_rng = random.Random(5)

        def choose(request: Received) -> str:
            if script_rng.random() < MISBEHAVING_SHARE:
                return script_rng.choice(MISBEHAVIOURS)
            return "echo"

        stack.upstream.choose = choose
        stack.upstream.stray_delay = STRAY_DELAY
        stack.upstream.stray_for = lambda r: other.get(r.header("X-User-Id") or "", "nobody")
        tally = Tally()
        deadline = asyncio.get_running_loop().time() + LOAD_SECONDS
        clients = [
            client_loop(stack, user, session, tally, random.Random(f"{user}{n}"), deadline)
            for user, session in ((alice, alice_session), (bob, bob_session))
            for n in range(CONNECTIONS_PER_USER)
        ]
        async with asyncio.timeout(LOAD_SECONDS + 10):
            await asyncio.gather(*clients)
        strays = stack.upstream.strays

    crossed = {s.id for s in strays if s.crossed}
    judged = [o for o in tally.outcomes if o.stray not in crossed]
    wrong_user = [o for o in judged if o.user is not None and o.user != o.requester]
    not_own_2xx = [o for o in judged if 200 <= o.status < 300 and o.user != o.requester]
    delivered_strays = [o for o in judged if o.stray is not None]
    summary = (f"{len(tally.outcomes)} answers {Counter(o.status for o in tally.outcomes)}, "
               f"{len(strays)} strays sent ({len(crossed)} crossed a request), "
               f"{tally.broken} connections broken")
    assert len(tally.outcomes) > 1000, summary
    assert len(strays) > 10, summary
    assert wrong_user == [], f"{len(wrong_user)} answers reached the wrong user; {summary}"
    assert not_own_2xx == [], f"{len(not_own_2xx)} 2xx did not name their requester; {summary}"
    assert delivered_strays == [], f"{len(delivered_strays)} stray answers delivered; {summary}"
