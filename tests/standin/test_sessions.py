"""`GET /sessions`, `DELETE /sessions`, `DELETE /sessions/{id}` (docs/standin.md#sessions)."""

from __future__ import annotations

import json
import uuid

import pytest
from ory_client import DeleteMySessionsCount, GenericError, Session

from gateway.standin import OryStandin
from gateway.standin.pagination import encode_token

from .conftest import Client, FakeClock, User, cookie_header, token_header

SESSIONS_401 = {
    "error": {
        "code": 401,
        "status": "Unauthorized",
        "reason": "No valid session cookie found.",
        "message": "The request could not be authorized",
    }
}


def _link(rel: str, size: int, offset: int) -> str:
    query = (
        f"page={offset // size}&page_size={size}&page_token={encode_token(offset)}&per_page={size}"
    )
    return f'</sessions?{query}>; rel="{rel}"'


async def test_list_shows_only_other_live_sessions_newest_first(
    client: Client, ory: OryStandin, alice: User, clock: FakeClock
) -> None:
    current = ory.create_session(alice.identity_id)
    older = ory.create_session(alice.identity_id, authenticated_at=clock() - 60)
    newer = ory.create_session(alice.identity_id, authenticated_at=clock() + 60)
    ory.revoke_session(ory.create_session(alice.identity_id).id)
    ory.expire_session(ory.create_session(alice.identity_id).id)
    ory.create_session(ory.add_identity("bob@example.com"))
    resp = await client.get("/sessions", headers=cookie_header(current))
    text = await resp.text()
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["Cache-Control"] == "private, no-cache, no-store, must-revalidate"
    assert resp.headers["X-Total-Count"] == "2"
    items = json.loads(text)
    assert [item["id"] for item in items] == [newer.id, older.id]
    for item in items:
        assert Session.from_dict(item) is not None
        assert item["active"] is True
        assert len(item["devices"]) == 1


async def test_list_pages_three_others_two_at_a_time(
    client: Client, ory: OryStandin, alice: User
) -> None:
    current = ory.create_session(alice.identity_id)
    others = [ory.create_session(alice.identity_id) for _ in range(3)]
    first = await client.get("/sessions", params={"page_size": "2"}, headers=token_header(current))
    assert first.headers["X-Total-Count"] == "3"
    assert first.headers["Link"] == f"{_link('next', 2, 2)},{_link('last', 2, 2)}"
    assert [s["id"] for s in await first.json()] == [others[2].id, others[1].id]
    token = encode_token(2)
    second = await client.get(
        "/sessions", params={"page_size": "2", "page_token": token}, headers=token_header(current)
    )
    assert second.headers["Link"] == f"{_link('first', 2, 0)},{_link('prev', 2, 0)}"
    assert [s["id"] for s in await second.json()] == [others[0].id]


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        pytest.param({"page": "1", "per_page": "1"}, [1], id="legacy-page-one"),
        pytest.param({"per_page": "5"}, [2, 1, 0], id="legacy-one-page"),
        pytest.param({"page_size": "0"}, [2], id="size-clamped-to-one"),
        pytest.param({"page_size": "2", "page_token": "%%%"}, [2, 1], id="bad-token-is-start"),
    ],
)
async def test_list_paging_parameters(
    client: Client, ory: OryStandin, alice: User, params: dict[str, str], ids: list[int]
) -> None:
    current = ory.create_session(alice.identity_id)
    others = [ory.create_session(alice.identity_id) for _ in range(3)]
    resp = await client.get("/sessions", params=params, headers=token_header(current))
    assert [s["id"] for s in await resp.json()] == [others[i].id for i in ids]


async def test_list_single_page_link_keeps_other_query_parameters(
    client: Client, ory: OryStandin, alice: User
) -> None:
    current = ory.create_session(alice.identity_id)
    ory.create_session(alice.identity_id)
    resp = await client.get(
        "/sessions", params={"page_size": "250", "x": "1"}, headers=token_header(current)
    )
    token = encode_token(0)
    assert resp.headers["Link"] == (
        f'</sessions?page=0&page_size=1&page_token={token}&per_page=1&x=1>; rel="first"'
    )


async def test_list_without_session_is_401(client: Client) -> None:
    resp = await client.get("/sessions")
    assert resp.status == 401
    assert resp.headers["Content-Type"] == "application/json"
    assert await resp.json() == SESSIONS_401


async def test_list_needs_second_factor_like_whoami(
    client: Client, ory: OryStandin, carol: User
) -> None:
    resp = await client.get(
        "/sessions", headers=token_header(ory.create_session(carol.identity_id))
    )
    assert resp.status == 403
    assert resp.headers["Ory-Error-Id"] == "session_aal2_required"


async def test_revoke_others_counts_them_and_keeps_own(
    client: Client, ory: OryStandin, alice: User
) -> None:
    current = ory.create_session(alice.identity_id)
    others = [ory.create_session(alice.identity_id) for _ in range(2)]
    bob_session = ory.create_session(ory.add_identity("bob@example.com"))
    resp = await client.delete("/sessions", headers=cookie_header(current))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Cache-Control" not in resp.headers
    assert DeleteMySessionsCount.from_json(await resp.text()) is not None
    assert await resp.json() == {"count": 2}
    assert [ory.get_session(s.id).active for s in others] == [False, False]
    assert ory.get_session(current.id).active
    assert ory.get_session(bob_session.id).active
    again = await client.delete("/sessions", headers=cookie_header(current))
    assert await again.json() == {"count": 2}  # PostgreSQL counts already inactive rows


async def test_revoke_others_without_session_is_401(client: Client) -> None:
    resp = await client.delete("/sessions")
    assert resp.status == 401
    assert await resp.json() == SESSIONS_401


@pytest.mark.parametrize(
    ("target", "status", "message"),
    [
        pytest.param("abc", 400, 'uuid: incorrect UUID length 3 in string "abc"', id="short-id"),
        pytest.param(
            "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
            400,
            'uuid: incorrect UUID format in string "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"',
            id="bad-hex",
        ),
        pytest.param("own", 400, "cannot revoke current session", id="own-session"),
        pytest.param("unknown", 204, None, id="unknown-id"),
        pytest.param("foreign", 204, None, id="other-identity"),
        pytest.param("sibling", 204, None, id="own-other-session"),
    ],
)
async def test_revoke_one_follows_kratos_order(
    client: Client, ory: OryStandin, alice: User, target: str, status: int, message: str | None
) -> None:
    current = ory.create_session(alice.identity_id)
    sibling = ory.create_session(alice.identity_id)
    foreign = ory.create_session(ory.add_identity("bob@example.com"))
    session_id = {
        "own": current.id,
        "unknown": str(uuid.uuid4()),
        "foreign": foreign.id,
        "sibling": sibling.id,
    }.get(target, target)
    resp = await client.delete(f"/sessions/{session_id}", headers=cookie_header(current))
    assert resp.status == status
    if message is None:
        assert await resp.read() == b""
    else:
        body = await resp.json()
        assert body == {"error": {"code": 400, "status": "Bad Request", "message": message}}
        assert GenericError.from_dict(body["error"]) is not None
    assert ory.get_session(foreign.id).active
    assert ory.get_session(current.id).active
    assert ory.get_session(sibling.id).active is (target != "sibling")


async def test_revoke_one_without_session_is_401(client: Client) -> None:
    resp = await client.delete("/sessions/abc")
    assert resp.status == 401
    assert await resp.json() == SESSIONS_401
