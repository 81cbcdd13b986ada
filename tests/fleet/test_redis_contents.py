"""Nothing readable in Redis (docs/reference.md#running-several-replicas): keys are keyed
hashes of credentials and ids, so no key holds a cookie, a token, a plain SHA-256 of one, an
email or an id; no value or eviction message holds a credential or a plain hash of one
(values may hold ids and the identity headers' values, as documented). Every key starts
with `fleet.key_prefix`."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from gateway.standin import StandinSession
from tests.fleet.conftest import (
    PREFIX,
    Stack,
    backends,
    client,
    cookie,
    fleet,
    get_page,
    needs_redis,
    token,
)
from tests.fleet.redis_process import RedisServer

pytestmark = needs_redis


def plain_forms(text: str) -> list[bytes]:
    """`text` as it could leak: itself and its unkeyed SHA-256 (raw and hex), including
    the hashes of `source\\0value` as the local cache key is made."""
    forms = [text.encode()]
    for data in (text, f"cookie\x00{text}", f"session_token\x00{text}"):
        digest = hashlib.sha256(data.encode()).digest()
        forms += [digest, digest.hex().encode(), digest.hex().upper().encode()]
    return forms


async def everything_in(redis: Any) -> tuple[list[bytes], list[bytes]]:
    """All keys, and the values of the string keys (others by their type)."""
    keys: list[bytes] = [key async for key in redis.scan_iter(match="*", count=1000)]
    values: list[bytes] = []
    for key in keys:
        kind = await redis.type(key)
        values.append(await redis.get(key) if kind == b"string" else kind)
    return keys, [v for v in values if v is not None]


def leaks(haystacks: list[bytes], needles: dict[str, list[bytes]]) -> list[str]:
    return [f"{name} in {hay[:80]!r}" for name, forms in needles.items() for form in forms
            for hay in haystacks if form in hay]


async def test_no_credential_email_or_plain_hash_in_redis_after_traffic(
    stack: Stack, redis_server: RedisServer
) -> None:
    redis = redis_server.client()
    pubsub = redis.pubsub()
    await pubsub.subscribe(f"{PREFIX}evictions")
    users: list[tuple[str, str, list[StandinSession]]] = []
    for n in range(5):
        email = f"reader{n}@example.com"
        identity, sessions = stack.backends.user(email, sessions=3)
        users.append((email, identity, sessions))
        await stack.warm(*(h for s in sessions for h in (cookie(s), token(s))))
    a, b, c = stack.nodes
    # Revocations of every kind, so markers and messages are there too.
    (_, _, (s1, s2, s3)), (_, identity1, (t1, _, _)) = users[0], users[1]
    async with stack.http.delete(f"{a.origin}/_auth/sessions/{s2.id}", headers=token(s1)) as r:
        assert r.status == 204
    async with stack.http.delete(f"{b.origin}/_auth/sessions", headers=token(t1)) as r:
        assert r.status == 200
    async with stack.http.get(f"{c.origin}/_auth/logout", headers={
            "Cookie": cookie(s3)["Cookie"]}, allow_redirects=False) as r:
        assert r.status == 303
    for node in stack.nodes:  # and new look-ups after them
        assert await get_page(stack.http, node, token(s1)) == (200, users[0][1])
        assert await get_page(stack.http, node, cookie(t1)) == (200, identity1)

    messages: list[bytes] = []
    deadline = time.monotonic() + 1.0  # they are all there already: read what came
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            messages.append(message["data"])
    keys, values = await everything_in(redis)
    await pubsub.aclose()
    await redis.aclose()

    assert all(key.startswith(PREFIX.encode()) for key in keys), keys
    kinds = {key[len(PREFIX):].split(b":")[0] for key in keys}
    assert {b"s", b"r"} <= kinds, kinds  # shared sessions and revocation markers
    assert len(messages) >= 3, messages

    credentials: dict[str, list[bytes]] = {}
    names: dict[str, list[bytes]] = {}
    for email, identity, sessions in users:
        names[email] = [email.encode()]
        names[identity] = plain_forms(identity)
        for s in sessions:
            credentials[f"cookie of {s.id}"] = plain_forms(s.cookie_value)
            credentials[f"token of {s.id}"] = plain_forms(s.token)
            names[s.id] = plain_forms(s.id)
    # The scan does see what the values hold (the identity headers' values, documented).
    assert leaks(values, {e: [e.encode()] for e, _, _ in users}) != []
    assert leaks(keys, {**credentials, **names}) == []
    assert leaks(values, credentials) == []
    assert leaks(messages, {**credentials, **{k: v for k, v in names.items() if "@" in k}}) \
        == []


async def test_every_key_and_channel_starts_with_the_configured_prefix(
    redis_server: RedisServer,
) -> None:
    prefix = "tenant.a:"
    async with backends() as shared, client() as http, \
            fleet(shared, redis_server.url, count=2, fleet_keys=f'key_prefix = "{prefix}"') \
            as nodes:
        stack = Stack(shared, nodes, http)
        _, (kept, gone) = shared.user("prefix@example.com", sessions=2)
        await stack.warm(token(kept), cookie(gone))
        async with http.delete(f"{nodes[0].origin}/_auth/sessions/{gone.id}",
                               headers=token(kept)) as answer:
            assert answer.status == 204
        redis = redis_server.client()
        keys, _ = await everything_in(redis)
        channels = await redis.pubsub_channels()
        await redis.aclose()
    assert {key.split(b":")[0] + b":" for key in keys} == {prefix.encode()}, keys
    assert len(keys) >= 2
    assert channels
    assert all(channel.startswith(prefix.encode()) for channel in channels), channels
