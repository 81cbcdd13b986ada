"""The whole Kratos loop (docs/reference.md#the-revocation-hook): a password change at Ory
ends every other session (`revoke_active_sessions`), then Kratos' `web_hook` calls gateway
A's `POST /_auth/hooks/revoke`; every replica refuses those sessions at once, though each
had them cached for 30 s, and the session that changed the password goes on."""

from __future__ import annotations

import time

from tests.fleet.conftest import HOOK_TOKEN, Stack, cookie, get_page, needs_redis, token

pytestmark = needs_redis


async def test_password_change_ends_other_sessions_on_every_replica_at_once(
    stack: Stack,
) -> None:
    a = stack.nodes[0]
    stack.ory.add_web_hook(f"{a.origin}/_auth/hooks/revoke", HOOK_TOKEN, after=("settings",))
    identity, (s1, s2, s3) = stack.backends.user("kratos@example.com", sessions=3)
    bystander, (b1,) = stack.backends.user("bystander@example.com")
    await stack.warm(token(s1), cookie(s2), token(s3), token(b1))

    assert await stack.ory.change_password(identity, "new", keep_session=s1.id) == [200]
    done = time.monotonic()
    for gone in (cookie(s2), token(s3)):
        assert max(await stack.all_refused(gone, done)) <= 0.2
    for node in stack.nodes:
        assert await get_page(stack.http, node, token(s1)) == (200, identity)
    calls = stack.backends.whoami_calls
    for node in stack.nodes:  # another identity's cached session was left alone
        assert await get_page(stack.http, node, token(b1)) == (200, bystander)
    assert stack.backends.whoami_calls == calls


async def test_hook_refuses_what_is_not_a_revocation_from_its_caller(stack: Stack) -> None:
    """docs/reference.md#the-revocation-hook: wrong or missing token 401 `unauthorized`, a
    body that is not such an object 400, over 64 KiB 413; nothing is evicted by any."""
    a, b, _ = stack.nodes
    identity, (session,) = stack.backends.user("hook-errors@example.com")
    await stack.warm(token(session))
    url, bearer = f"{a.origin}/_auth/hooks/revoke", {"Authorization": f"Bearer {HOOK_TOKEN}"}
    refusals: list[tuple[dict[str, str], bytes, int]] = [
        ({}, b'{"identity_id": "x"}', 401),
        ({"Authorization": "Bearer not-the-token-0123456789"}, b'{"identity_id": "x"}', 401),
        ({"Authorization": HOOK_TOKEN}, b'{"identity_id": "x"}', 401),
        (bearer, b"not json", 400),
        (bearer, b'["identity_id"]', 400),
        (bearer, b"{}", 400),
        (bearer, b'{"identity_id": 7}', 400),
        (bearer, b'{"session_id": ""}', 400),
        (bearer, b'{"identity_id": "' + b"x" * 70_000 + b'"}', 413),
    ]
    for headers, body, status in refusals:
        async with stack.http.post(url, data=body, headers={
                **headers, "Content-Type": "application/json"}) as answer:
            assert answer.status == status, (headers, body[:30])
            if status == 401:
                assert (await answer.json())["error"]["id"] == "unauthorized"
    calls = stack.backends.whoami_calls
    for node in (a, b):
        assert await get_page(stack.http, node, token(session)) == (200, identity)
    assert stack.backends.whoami_calls == calls
