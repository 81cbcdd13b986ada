"""Class REUSE: a kept-alive upstream connection carries exactly one answer per request.

After alice's exchange goes wrong (the upstream answers early, answers twice, sends bytes
while idle, breaks off mid-answer, or alice vanishes mid-upload) the next request, bob's,
must get bob's answer: never a stray one, and never over the connection that misbehaved,
whose state no one can know any more. Each misbehaviour is followed once by a GET and once
by a POST with a body (a relay may keep separate pools for the two).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from pytest_aiohttp import AiohttpServer

from tests.security.raw_client import RawClient, cookie, exchange, request
from tests.security.scripted_upstream import ScriptedStack, scripted_stack

HALF = b"a" * 500  # of a body announced as 1000 bytes


def last_request_of(stack: ScriptedStack, user: str) -> int:
    """The upstream connection number of `user`'s latest request."""
    mine = [r for r in stack.upstream.requests if r.header("X-User-Id") == user]
    assert mine, f"no request of {user} reached the upstream"
    return mine[-1].conn


async def answered_misbehaviour(
    stack: ScriptedStack, kind: str, method: str, user: str, session: str
) -> int:
    """alice asks for an answer the upstream gets wrong; returns its connection number once
    the misbehaviour is over (for a stray: once the stray has been sent)."""
    strays = len(stack.upstream.strays)
    body = b"x" * 100 if method == "POST" else b""
    answer = await exchange(stack.port, request(method, f"/private/{kind}", cookie(session),
                                                body=body))
    assert answer is not None
    assert answer.stray is None, f"alice got an earlier stray answer: {answer.body!r}"
    if kind != "close-mid":
        assert answer.status == 200
        assert answer.user == user
    if kind == "stray-idle":
        await stack.upstream.wait_for(lambda: len(stack.upstream.strays) > strays)
    return last_request_of(stack, user)


async def early_answer_mid_upload(
    stack: ScriptedStack, held: AsyncExitStack, user: str, session: str
) -> int:
    """alice sends half her body; the upstream answers before reading it, and the answer
    reaches alice at once (bodies stream both ways, §3.9). alice stays, mid-upload."""
    client = await held.enter_async_context(RawClient(stack.port))
    await client.send(request("POST", "/private/early", cookie(session),
                              "Content-Length: 1000") + HALF)
    answer = await client.answer()
    assert answer is not None
    assert answer.user == user
    return last_request_of(stack, user)


async def client_vanishing_mid_upload(stack: ScriptedStack, user: str, session: str) -> int:
    """alice sends half her body and goes away: the upstream connection is half written."""
    seen = len(stack.upstream.requests)
    async with RawClient(stack.port) as client:
        await client.send(request("POST", "/private/echo", cookie(session),
                                  "Content-Length: 1000") + HALF)
        await stack.upstream.wait_for(lambda: len(stack.upstream.requests) > seen)
    conn = last_request_of(stack, user)
    assert await stack.upstream.ended(conn), "a half-written upstream connection stayed open"
    return conn


MISBEHAVIOURS = [
    pytest.param("twice", "GET", id="answer-twice-after-get"),
    pytest.param("twice", "POST", id="answer-twice-after-post"),
    pytest.param("stray-idle", "GET", id="stray-408-while-idle-after-get"),
    pytest.param("stray-idle", "POST", id="stray-408-while-idle-after-post"),
    pytest.param("close-mid", "GET", id="close-mid-answer-after-get"),
    pytest.param("close-mid", "POST", id="close-mid-answer-after-post"),
    pytest.param("early", "POST", id="early-answer-mid-upload"),
    pytest.param("vanish", "POST", id="client-vanishes-mid-upload"),
]


@pytest.mark.parametrize(("kind", "method"), MISBEHAVIOURS)
async def test_next_request_gets_its_own_answer_after_misbehaviour(
    aiohttp_server: AiohttpServer, kind: str, method: str
) -> None:
    """Fails on 1c02853 for the stray 408 after a POST: bob's next POST goes out over the
    connection holding the 408, never reaches the upstream, and bob gets the 408 naming
    alice. The other rows are guards there (that relay closes those connections)."""
    async with scripted_stack(aiohttp_server) as stack, AsyncExitStack() as held:
        alice, alice_session = stack.login("alice@example.com")
        bob, bob_session = stack.login("bob@example.com")
        stack.upstream.stray_user = alice
        for follow_up in ("POST", "GET"):
            if kind == "early":
                bad = await early_answer_mid_upload(stack, held, alice, alice_session)
            elif kind == "vanish":
                bad = await client_vanishing_mid_upload(stack, alice, alice_session)
            else:
                bad = await answered_misbehaviour(stack, kind, method, alice, alice_session)
            body = b"b" * 300 if follow_up == "POST" else b""
            answer = await exchange(stack.port, request(
                follow_up, "/private/echo", cookie(bob_session), body=body))
            assert answer is not None, f"bob's {follow_up} got no answer"
            assert answer.stray is None, f"bob's {follow_up} got a stray answer: {answer.body!r}"
            assert (answer.status, answer.user) == (200, bob), answer.body
            assert last_request_of(stack, bob) != bad, (
                f"bob's {follow_up} went over the connection that misbehaved")
