"""Class IDENTITY-SPOOF: identity headers that survive stripping
(docs/reference.md#identity-header-stripping, #headers-toward-the-upstream).

tests/integration/test_paths_and_headers.py checks that spoofed values vanish on /public,
/maybe and /app with a cookie. Here the upstream must receive exactly the session's value
(or nothing) under every spelling, for every access level, both credential kinds, duplicated
and comma-joined values, and on a WebSocket handshake.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.headers import normalise_name
from tests.conftest import Stack
from tests.rawhttp import get, raw_request

SPOOF = "spoofed-by-client"
SPELLINGS = [
    pytest.param("X-User-Id", id="canonical"),
    pytest.param("x-user-id", id="lower"),
    pytest.param("X_User_Id", id="underscores"),
    pytest.param("X-User_Id", id="mixed-separators"),
    pytest.param("x_USER-id", id="mixed-case-and-separators"),
    pytest.param("X-USER-EMAIL", id="email-upper"),
    pytest.param("x_user_email", id="email-underscores"),
]
IDENTITY_NAMES = frozenset({"x-user-id", "x-user-email"})


def identity_values(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Every identity header the upstream saw, by normalised name."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        if normalise_name(name) in IDENTITY_NAMES:
            found.setdefault(normalise_name(name), []).append(value)
    return found


# (path, credential kind): what the upstream must be told is fixed by the session alone.
ACCESS = [
    pytest.param("/public/x", None, id="public-anonymous"),
    pytest.param("/public/x", "cookie", id="public-with-cookie"),
    pytest.param("/maybe/x", None, id="optional-anonymous"),
    pytest.param("/maybe/x", "cookie", id="optional-with-cookie"),
    pytest.param("/maybe/x", "token", id="optional-with-token"),
    pytest.param("/admin/x", "cookie", id="authenticated-with-cookie"),
    pytest.param("/admin/x", "token", id="authenticated-with-token"),
]


@pytest.mark.parametrize(("path", "credential"), ACCESS)
@pytest.mark.parametrize("name", SPELLINGS)
async def test_spoofed_identity_header_never_reaches_upstream(
    guarded: Stack, name: str, path: str, credential: str | None
) -> None:
    identity = guarded.ory.add_identity("real@example.com", password="pw")
    session = guarded.ory.create_session(identity)
    lines = [f"{name}: {SPOOF}", f"{name}: {SPOOF}-2", f"{name}: {SPOOF}-3, {SPOOF}-4"]
    if credential == "cookie":
        lines.append(f"Cookie: ory_kratos_session={session.cookie_value}")
    elif credential == "token":
        lines.append(f"X-Session-Token: {session.token}")
    response = await raw_request(guarded.client.port or 0, get(path, *lines))
    assert response.status == 200
    seen = guarded.upstream.last().headers
    assert not [value for _, value in seen if SPOOF in value]
    vouched = path != "/public/x" and credential is not None
    expected = {"x-user-id": [identity], "x-user-email": ["real@example.com"]} if vouched else {}
    assert identity_values(seen) == expected


@pytest.mark.parametrize("name", SPELLINGS)
async def test_spoofed_identity_header_is_replaced_on_websocket_handshake(
    guarded: Stack, name: str
) -> None:
    identity = guarded.ory.add_identity("ws@example.com", password="pw")
    session = guarded.ory.create_session(identity)
    headers = {**guarded.cookie(session.cookie_value), name: SPOOF}
    async with asyncio.timeout(5):
        ws = await guarded.client.ws_connect("/ws", headers=headers)
        assert await ws.receive_str() == "hello ws@example.com"
        await ws.close()
    handshake = [s for s in guarded.upstream.seen if s.method == "WS"][-1]
    assert not [value for _, value in handshake.headers if SPOOF in value]
    assert identity_values(handshake.headers) == {
        "x-user-id": [identity], "x-user-email": ["ws@example.com"]
    }


# A session without an email trait: the upstream must see no X-User-Email at all, never the
# client's (integration covers the canonical spelling with a cookie on the default route).
NO_EMAIL = [
    pytest.param("/admin/x", "cookie", "X-User-Email", id="authenticated-cookie"),
    pytest.param("/admin/x", "token", "x_user_email", id="authenticated-token-underscores"),
    pytest.param("/maybe/x", "cookie", "X-USER-EMAIL", id="optional-cookie-upper"),
    pytest.param("/maybe/x", "token", "X-User_Email", id="optional-token-mixed"),
]


@pytest.mark.parametrize(("path", "credential", "name"), NO_EMAIL)
async def test_session_without_email_never_forwards_a_client_email(
    guarded: Stack, path: str, credential: str, name: str
) -> None:
    identity = guarded.ory.add_identity("", password="pw", traits={"username": "no-mail"})
    session = guarded.ory.create_session(identity)
    auth = (f"Cookie: ory_kratos_session={session.cookie_value}" if credential == "cookie"
            else f"X-Session-Token: {session.token}")
    response = await raw_request(
        guarded.client.port or 0, get(path, auth, f"{name}: forged@evil.example")
    )
    assert response.status == 200
    assert identity_values(guarded.upstream.last().headers) == {"x-user-id": [identity]}


async def test_identity_header_named_in_connection_is_still_the_sessions(guarded: Stack) -> None:
    """`Connection: X-User-Id` makes it hop-by-hop; the gateway's own value must survive."""
    identity = guarded.ory.add_identity("hop@example.com", password="pw")
    session = guarded.ory.create_session(identity)
    head = get("/admin/x", f"Cookie: ory_kratos_session={session.cookie_value}",
               "Connection: close, X-User-Id, X-User-Email", f"X-User-Id: {SPOOF}")
    response = await raw_request(guarded.client.port or 0, head)
    assert response.status == 200
    assert identity_values(guarded.upstream.last().headers) == {
        "x-user-id": [identity], "x-user-email": ["hop@example.com"]
    }
