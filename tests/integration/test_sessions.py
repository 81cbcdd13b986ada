"""docs/reference.md#endpoints: the sessions page, revocation with instant effect, CSRF."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from ory_client.models import Session as OrySession

from gateway.context import services_of
from tests.conftest import Stack

API = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0 Safari/537.36")
URLENCODED = "application/x-www-form-urlencoded"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"


def two_sessions(stack: Stack) -> tuple[str, str, str, str]:
    """Alice signed in on two devices: (cookie1, id1, cookie2, id2)."""
    identity = stack.ory.add_identity("alice@example.com", password="pw")
    one = stack.ory.create_session(identity, user_agent=CHROME, ip_address="10.1.1.1",
                                   location="Munich, DE")
    two = stack.ory.create_session(identity, user_agent=FIREFOX, ip_address="10.2.2.2")
    return one.cookie_value, one.id, two.cookie_value, two.id


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def test_sessions_json_lists_current_and_others(stack: Stack) -> None:
    cookie1, id1, _, id2 = two_sessions(stack)
    response = await stack.client.get("/_auth/sessions", headers={**stack.cookie(cookie1), **API})
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["current"]["id"] == id1
    assert body["current"]["current"] is True
    by_id = {s["id"]: s for s in body["sessions"]}
    assert set(by_id) == {id1, id2}
    assert by_id[id2]["current"] is False
    assert by_id[id1]["devices"][0]["browser"] == "Chrome on Linux"
    assert by_id[id1]["devices"][0]["ip_address"] == "10.1.1.1"
    assert by_id[id1]["devices"][0]["location"] == "Munich, DE"
    assert by_id[id2]["devices"][0]["browser"] == "Firefox on Windows"
    for item in body["sessions"]:
        assert item["aal"] == "aal1"
        assert item["authenticated_at"].endswith("Z")
        assert item["expires_at"].endswith("Z")
    assert cookie1 not in await response.text()


async def test_sessions_page_html_for_browser(stack: Stack) -> None:
    cookie1, id1, _, id2 = two_sessions(stack)
    response = await stack.client.get("/_auth/sessions", headers={**stack.cookie(cookie1),
                                                                   **BROWSER})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-store"
    html = await response.text()
    assert f'data-session-id="{id1}" data-current="true"' in html
    assert f'data-session-id="{id2}" data-current="false"' in html
    assert "Chrome on Linux" in html
    assert "<script" not in html
    assert "http://" not in html.split("</style>")[0]


async def test_sessions_page_without_session_sends_browser_to_login(stack: Stack) -> None:
    response = await stack.client.get("/_auth/sessions", headers=BROWSER, allow_redirects=False)
    assert response.status == 303
    assert "return_to=" in response.headers["Location"]
    api = await stack.client.get("/_auth/sessions", headers=API)
    assert api.status == 401


async def test_revoke_one_by_form_takes_effect_at_once(stack: Stack) -> None:
    cookie1, _, cookie2, id2 = two_sessions(stack)
    assert (await stack.client.get("/app", headers=stack.cookie(cookie2))).status == 200  # cached
    page = await stack.client.get("/_auth/sessions", headers={**stack.cookie(cookie1), **BROWSER})
    token = csrf_token(await page.text())
    response = await stack.client.post(
        f"/_auth/sessions/{id2}/revoke", data={"csrf_token": token},
        headers={**stack.cookie(cookie1), "Origin": stack.origin}, allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/_auth/sessions?revoked=1"
    after = await stack.client.get("/app", headers={**stack.cookie(cookie2), **API})
    assert after.status == 401  # inside the cache TTL, yet refused
    assert stack.ory.whoami_requests[-1].get("Cache-Control") == "max-age=0"
    flash = await stack.client.get(response.headers["Location"],
                                   headers={**stack.cookie(cookie1), **BROWSER})
    assert "Signed out 1 other session." in await flash.text()


async def test_revoke_one_by_delete_is_204(stack: Stack) -> None:
    cookie1, _, cookie2, id2 = two_sessions(stack)
    response = await stack.client.delete(
        f"/_auth/sessions/{id2}", headers={**stack.cookie(cookie1), "Origin": stack.origin}
    )
    assert response.status == 204
    assert (await stack.client.get("/app", headers={**stack.cookie(cookie2), **API})).status == 401


async def test_revoke_one_spelled_in_upper_case_still_evicts_the_cached_session(
    stack: Stack,
) -> None:
    cookie1, _, cookie2, id2 = two_sessions(stack)
    assert (await stack.client.get("/app", headers=stack.cookie(cookie2))).status == 200  # cached
    response = await stack.client.delete(
        f"/_auth/sessions/{id2.upper()}",
        headers={**stack.cookie(cookie1), "Origin": stack.origin},
    )
    assert response.status == 204
    assert (await stack.client.get("/app", headers={**stack.cookie(cookie2), **API})).status == 401


async def test_revoking_current_session_is_400_pointing_at_logout(stack: Stack) -> None:
    cookie1, id1, _, _ = two_sessions(stack)
    response = await stack.client.delete(
        f"/_auth/sessions/{id1}", headers={**stack.cookie(cookie1), "Origin": stack.origin, **API}
    )
    assert response.status == 400
    body = await response.json()
    assert "/_auth/logout" in body["error"]["reason"]
    assert (await stack.client.get("/app", headers=stack.cookie(cookie1))).status == 200


async def test_revoke_others_by_form_and_json(stack: Stack) -> None:
    cookie1, _, cookie2, _ = two_sessions(stack)
    await stack.client.get("/app", headers=stack.cookie(cookie2))
    response = await stack.client.delete(
        "/_auth/sessions", headers={**stack.cookie(cookie1), "Origin": stack.origin, **API}
    )
    assert response.status == 200
    assert await response.json() == {"revoked": 1}
    assert (await stack.client.get("/app", headers={**stack.cookie(cookie2), **API})).status == 401
    assert (await stack.client.get("/app", headers=stack.cookie(cookie1))).status == 200


async def test_revoke_others_form_redirects_back_with_flash(stack: Stack) -> None:
    cookie1, _, _, _ = two_sessions(stack)
    page = await stack.client.get("/_auth/sessions", headers={**stack.cookie(cookie1), **BROWSER})
    response = await stack.client.post(
        "/_auth/sessions/revoke-others", data={"csrf_token": csrf_token(await page.text())},
        headers={**stack.cookie(cookie1), "Origin": stack.origin}, allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"].startswith("/_auth/sessions?revoked=")


@pytest.mark.parametrize(
    ("origin", "token_ok"),
    [
        pytest.param("https://evil.example", True, id="foreign-origin"),
        pytest.param(None, True, id="no-origin"),
        pytest.param("SAME", False, id="bad-token"),
    ],
)
async def test_cross_site_revocation_changes_nothing(
    stack: Stack, origin: str | None, token_ok: bool
) -> None:
    cookie1, _, cookie2, id2 = two_sessions(stack)
    page = await stack.client.get("/_auth/sessions", headers={**stack.cookie(cookie1), **BROWSER})
    token = csrf_token(await page.text()) if token_ok else "forged"
    headers = stack.cookie(cookie1)
    if origin is not None:
        headers["Origin"] = stack.origin if origin == "SAME" else origin
    for path in (f"/_auth/sessions/{id2}/revoke", "/_auth/sessions/revoke-others"):
        response = await stack.client.post(path, data={"csrf_token": token}, headers=headers,
                                           allow_redirects=False)
        assert response.status == 403
    assert (await stack.client.get("/app", headers=stack.cookie(cookie2))).status == 200
    assert stack.ory.calls.get("DELETE /sessions", 0) == 0


async def test_token_client_may_revoke_without_origin(stack: Stack) -> None:
    identity = stack.ory.add_identity("api@example.com", password="pw")
    one = stack.ory.create_session(identity)
    two = stack.ory.create_session(identity)
    response = await stack.client.delete(f"/_auth/sessions/{two.id}",
                                         headers={"X-Session-Token": one.token})
    assert response.status == 204


async def test_revoke_with_bad_id_is_400(stack: Stack) -> None:
    cookie1, _, _, _ = two_sessions(stack)
    response = await stack.client.delete(
        "/_auth/sessions/not-a-uuid", headers={**stack.cookie(cookie1), "Origin": stack.origin}
    )
    assert response.status == 400


async def test_stand_in_session_list_parses_with_ory_sdk(stack: Stack) -> None:
    cookie1, _, _, _ = two_sessions(stack)
    async with stack.client.session.get(
        stack.config.ory.url + "/sessions", headers={**stack.cookie(cookie1), **API}
    ) as response:
        items = await response.json()
    assert len(items) == 1
    assert all(OrySession.from_dict(item) is not None for item in items)


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        pytest.param("multipart/form-data; boundary=x", b"--y\r\nno part\r\n", 400, id="multipart"),
        pytest.param("multipart/form-data", b"--x\r\n\r\n--x--\r\n", 400, id="no-boundary"),
        pytest.param(URLENCODED, b"csrf_token=\xff\xfe", 400, id="not-ascii"),
        pytest.param(URLENCODED, b"a=b&" * 2000, 400, id="too-large"),
        pytest.param(URLENCODED, b"a&" * 40, 400, id="too-many-fields"),
        pytest.param(URLENCODED + "; charset=nope", b"a=b", 403, id="bad-charset-no-token"),
        pytest.param(URLENCODED, b"csrf_token=%ff%fe", 403, id="escaped-garbage-token"),
    ],
)
async def test_malformed_form_gets_a_clear_4xx_and_changes_nothing(
    stack: Stack, content_type: str, body: bytes, status: int
) -> None:
    cookie1, _, cookie2, _ = two_sessions(stack)
    response = await stack.client.post(
        "/_auth/sessions/revoke-others", data=body,
        headers={**stack.cookie(cookie1), "Origin": stack.origin, "Content-Type": content_type},
        allow_redirects=False,
    )
    assert response.status == status, await response.text()
    assert (await stack.client.get("/app", headers=stack.cookie(cookie2))).status == 200


async def test_revocation_holds_even_if_the_handler_is_cancelled_after_ory_acted(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client hangs up (handler cancellation) after Ory revoked but before the
    gateway's own bookkeeping: the revoked session must still stop at once."""
    cookie1, _, cookie2, id2 = two_sessions(stack)
    assert (await stack.client.get("/app", headers=stack.cookie(cookie2))).status == 200  # cached
    services = services_of(stack.client.app)

    async def revoked_then_cancelled(credential: object, session_id: str) -> None:
        # Meanwhile the other device makes a request, caching its still-valid session …
        assert (await stack.client.get("/app", headers=stack.cookie(cookie2))).status == 200
        stack.ory.revoke_session(session_id)  # … then Ory revokes it …
        raise asyncio.CancelledError  # … and then the client went away

    monkeypatch.setattr(services.auth.ory, "revoke_session", revoked_then_cancelled)
    with pytest.raises(aiohttp.ServerDisconnectedError):  # the handler was cancelled
        await stack.client.delete(
            f"/_auth/sessions/{id2}",
            headers={**stack.cookie(cookie1), "Origin": stack.origin, **API},
        )
    monkeypatch.undo()
    after = await stack.client.get("/app", headers={**stack.cookie(cookie2), **API})
    assert after.status == 401


async def test_form_read_whole_when_it_arrives_in_pieces(stack: Stack) -> None:
    cookie1, _, cookie2, _ = two_sessions(stack)
    page = await stack.client.get("/_auth/sessions", headers={**stack.cookie(cookie1), **BROWSER})
    body = f"csrf_token={csrf_token(await page.text())}".encode()
    host = f"127.0.0.1:{stack.client.port}"
    head = (f"POST /_auth/sessions/revoke-others HTTP/1.1\r\nHost: {host}\r\n"
            f"Origin: {stack.origin}\r\nCookie: ory_kratos_session={cookie1}\r\n"
            f"Content-Type: {URLENCODED}\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n").encode()
    half = len(body) // 2
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.client.port)
        writer.write(head + b"%x\r\n%s\r\n" % (half, body[:half]))
        await writer.drain()
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - half, body[half:]))
        await writer.drain()
        answer = await reader.read()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 303"), answer[:200]
    assert (await stack.client.get("/app", headers={**stack.cookie(cookie2), **API})).status == 401
