"""Revocation everywhere (docs/reference.md#running-several-replicas): a logout, a revocation
through `/_auth/sessions` or the hook on gateway A ends the session on B and C at once (here:
within 200 ms of A's answer, polled every 10 ms), while the sessions that were kept go on.
Every session is first used on all three gateways, so each has it cached (ttl 30 s)."""

from __future__ import annotations

import time

from tests.fleet.conftest import HOOK_TOKEN, Stack, cookie, get_page, needs_redis, token

pytestmark = needs_redis
AT_ONCE = 0.2


async def still_works(stack: Stack, headers: dict[str, str], identity: str) -> None:
    for node in stack.nodes:
        assert await get_page(stack.http, node, headers) == (200, identity), node.origin


async def test_logout_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    a, b, c = stack.nodes
    identity, (gone, kept) = stack.backends.user("logout@example.com", sessions=2)
    await stack.warm(cookie(gone), token(kept))

    async with stack.http.get(f"{a.origin}/_auth/logout", headers={"Cookie": cookie(gone)[
            "Cookie"]}, allow_redirects=False) as answer:
        assert answer.status == 303
        ory_logout = answer.headers["Location"]
    # Until the browser has finished the logout at Ory, no replica caches the cookie again:
    # each use asks Ory.
    before = stack.backends.whoami_calls
    for node in (b, c, b, c):
        assert await get_page(stack.http, node, cookie(gone)) == (200, identity)
    assert stack.backends.whoami_calls == before + 4

    async with stack.http.get(ory_logout, headers={"Cookie": cookie(gone)["Cookie"]},
                              allow_redirects=False) as finished:
        assert finished.status == 303
    done = time.monotonic()
    assert max(await stack.all_refused(cookie(gone), done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)


async def test_revoke_others_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    a, b, c = stack.nodes
    identity, (kept, second, third) = stack.backends.user("others@example.com", sessions=3)
    await stack.warm(token(kept), cookie(second), token(third))

    async with stack.http.delete(f"{a.origin}/_auth/sessions", headers=token(kept)) as answer:
        assert answer.status == 200
        assert (await answer.json())["revoked"] >= 2
    done = time.monotonic()
    for gone in (cookie(second), token(third)):
        assert max(await stack.all_refused(gone, done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)


async def test_revoke_one_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    a, b, c = stack.nodes
    identity, (kept, gone, bystander) = stack.backends.user("one@example.com", sessions=3)
    await stack.warm(token(kept), cookie(gone), cookie(bystander))

    async with stack.http.delete(f"{a.origin}/_auth/sessions/{gone.id}",
                                 headers=token(kept)) as answer:
        assert answer.status == 204
    done = time.monotonic()
    assert max(await stack.all_refused(cookie(gone), done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)
    await still_works(stack, cookie(bystander), identity)


async def hook(stack: Stack, body: dict[str, str]) -> int:
    a = stack.nodes[0]
    async with stack.http.post(f"{a.origin}/_auth/hooks/revoke", json=body,
                               headers={"Authorization": f"Bearer {HOOK_TOKEN}"}) as answer:
        assert answer.status == 200, await answer.text()
        evicted = (await answer.json())["evicted"]
        assert isinstance(evicted, int)
        return evicted


async def test_session_hook_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    _, b, c = stack.nodes
    identity, (kept, gone) = stack.backends.user("hook@example.com", sessions=2)
    await stack.warm(token(kept), cookie(gone))
    stack.ory.revoke_session(gone.id)  # an admin at Ory: the caches do not know yet
    assert await get_page(stack.http, b, cookie(gone)) == (200, identity)

    assert await hook(stack, {"session_id": gone.id}) == 1
    done = time.monotonic()
    assert max(await stack.all_refused(cookie(gone), done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)


async def test_identity_hook_on_one_gateway_is_refused_by_all_others(stack: Stack) -> None:
    _, b, c = stack.nodes
    identity, (kept, gone, also_gone) = stack.backends.user("id-hook@example.com", sessions=3)
    await stack.warm(token(kept), cookie(gone), token(also_gone))
    stack.ory.revoke_session(gone.id)
    stack.ory.revoke_session(also_gone.id)
    assert await get_page(stack.http, c, token(also_gone)) == (200, identity)

    assert await hook(stack, {"identity_id": identity}) == 3
    done = time.monotonic()
    for headers in (cookie(gone), token(also_gone)):
        assert max(await stack.all_refused(headers, done, [b, c])) <= AT_ONCE
    await still_works(stack, token(kept), identity)  # Ory is asked again, and says yes
