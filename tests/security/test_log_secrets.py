"""Class SECRETS-IN-LOGS: no cookie or token value in any log line the gateway writes.

The gateway runs as its own process with its real logging (`gateway serve`: INFO and up,
the access log `gateway.accesslog` included), so every line captured is the gateway's. The
flows cover success, every error answer, the /_auth endpoints, WebSockets and SSE; the
credentials also travel where they should not (query strings, bad paths).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer

from tests.rawhttp import raw_request
from tests.security.conftest import API, BROWSER, ROUTES_UNDER_ATTACK
from tests.security.process_stack import ProcessStack, gateway_process
from tests.upstream_app import UpstreamState, build_upstream

CREDENTIALS = 'credentials = ["cookie", "session_token", "bearer"]'
FORGED = ("forged-cookie-0123456789abcdef", "ory_st_forged_forged_forged_forged",
          "bearer-forged-0123456789abcdef")


@pytest.fixture
def upstream_state() -> UpstreamState:
    return UpstreamState()  # /hang and /sse wait for `release`


@pytest.fixture
async def stack(
    aiohttp_server: AiohttpServer, upstream_state: UpstreamState
) -> AsyncIterator[ProcessStack]:
    async with gateway_process(
        aiohttp_server, build_upstream(upstream_state), ory=CREDENTIALS, ory_timeout="500ms",
        upstream_timeout="500ms", routes=ROUTES_UNDER_ATTACK,
    ) as running:
        yield running


def leaked(lines: list[str], secrets: list[str]) -> list[str]:
    return [line for line in lines if any(secret in line for secret in secrets)]


async def run_flows(
    stack: ProcessStack, http: aiohttp.ClientSession, upstream: UpstreamState
) -> list[str]:
    """Every flow once; returns the secret values that were used."""
    base = stack.gateway.origin
    cookie, token = stack.login("logs@example.com")
    identity = stack.ory.add_identity("two@example.com", password="pw")
    mine = stack.ory.create_session(identity)
    other = stack.ory.create_session(identity)
    by_cookie = {"Cookie": f"ory_kratos_session={cookie}"}
    secrets = [cookie, token, *FORGED]
    for session in (mine, other):
        secrets += [session.cookie_value, session.token, session.logout_token]
    calls: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/admin/x?token=" + token, by_cookie),
        ("GET", "/admin/x", {"X-Session-Token": token}),
        ("GET", "/admin/x", {"Authorization": f"Bearer {token}"}),
        ("GET", "/maybe/x", {"Cookie": f"ory_kratos_session={FORGED[0]}"}),
        ("GET", "/admin/x", {"X-Session-Token": FORGED[1], **API}),
        ("GET", "/admin/x", {"Authorization": f"Bearer {FORGED[2]}", **API}),
        ("GET", "/admin/x?session=" + cookie, BROWSER),
        ("GET", "/stepup/x", {**by_cookie, **API}),
        ("GET", "/stepup/x", {**by_cookie, **BROWSER}),
        ("GET", "/internal/x", {**by_cookie, **API}),
        ("GET", "/public/%zz?token=" + token, by_cookie),
        ("GET", "/hang", {**by_cookie, **API}),
        ("POST", "/upload", {**by_cookie, "Content-Type": "text/plain"}),
        ("GET", "/_auth/whoami", by_cookie),
        ("GET", "/_auth/whoami", {"X-Session-Token": token}),
        ("GET", "/_auth/whoami?t=" + token, {"Cookie": f"ory_kratos_session={FORGED[0]}"}),
        ("GET", "/_auth/sessions", {"X-Session-Token": mine.token, **API}),
        ("GET", "/_auth/sessions", {"Cookie": f"ory_kratos_session={mine.cookie_value}",
                                    **BROWSER}),
        ("DELETE", f"/_auth/sessions/{other.id}", {"X-Session-Token": mine.token, **API}),
        ("GET", "/_auth/refresh?return_to=/x%3Ftoken%3D" + token, by_cookie),
        ("GET", "/_auth/nope?token=" + token, API),
        ("PUT", "/_auth/whoami", {**by_cookie, **API}),
        ("POST", "/_auth/logout", {**by_cookie, "Origin": "https://evil.example", **API}),
        ("GET", "/_auth/logout?return_to=/bye", {"Cookie": f"ory_kratos_session="
                                                 f"{mine.cookie_value}"}),
        ("GET", "/_auth/logout", {"X-Session-Token": mine.token}),
    ]
    statuses: list[int] = []
    async with asyncio.timeout(30):
        for method, path, headers in calls:
            body = token.encode() if method == "POST" else None
            async with http.request(method, base + path, headers=headers, data=body,
                                    allow_redirects=False) as response:
                await response.read()
                statuses.append(response.status)
        upstream.release.set()  # after /hang has timed out (504)
        async with http.get(base + "/sse", headers=by_cookie) as stream:
            assert await stream.read() == b"data: first\n\ndata: last\n\n"
        ws = await http.ws_connect(base + "/ws", headers={"Cookie": by_cookie["Cookie"]})
        await ws.receive_str()
        await ws.send_str(token)
        await ws.receive_str()
        await ws.close()
        for fault in ("whoami_status", "garbage", "truncate"):
            stack.ory.faults.reset()
            setattr(stack.ory.faults, fault, 500 if fault == "whoami_status" else True)
            fresh_cookie, fresh_token = stack.login(f"{fault}@example.com")
            secrets += [fresh_cookie, fresh_token]
            for headers in ({"Cookie": f"ory_kratos_session={fresh_cookie}"},
                            {"X-Session-Token": fresh_token, **API}):
                async with http.get(base + "/admin/x", headers=headers) as response:
                    assert response.status == 503
        stack.ory.faults.reset()
    # each answer class at least once: proxied, redirected, 400, 401, 403, 404, 405, 503, 504
    assert {200, 303, 400, 401, 403, 404, 405, 504} <= set(statuses), statuses
    return secrets


async def test_no_cookie_or_token_value_in_any_log_line(
    stack: ProcessStack, upstream_state: UpstreamState
) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        secrets = await run_flows(stack, http, upstream_state)
    await stack.gateway.stop()
    lines = stack.gateway.lines
    assert sum(" /admin/x" in line for line in lines) >= 6, "the access log was not captured"
    assert leaked(lines, secrets) == []


async def test_no_token_from_a_return_to_query_in_logs_when_ory_refuses_it(
    stack: ProcessStack,
) -> None:
    """Ory refuses a return_to on a host it does not know; the warning names the URL."""
    cookie, token = stack.login("refused@example.com")
    back = quote(f"/after?session_token={token}", safe="")
    head = (f"GET /_auth/logout?return_to={back} HTTP/1.1\r\nHost: elsewhere.example\r\n"
            f"Cookie: ory_kratos_session={cookie}\r\nConnection: close\r\n\r\n").encode()
    response = await raw_request(stack.gateway.port, head)
    assert response.status == 303
    await stack.gateway.stop()
    assert leaked(stack.gateway.lines, [cookie, token]) == []


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("Cookie: ory_kratos_session={cookie}\x01", id="control-char-in-cookie"),
        pytest.param("X-Session-Token: {token}\x00", id="nul-in-session-token"),
        pytest.param("Cookie : ory_kratos_session={cookie}", id="space-before-colon"),
    ],
)
async def test_no_credential_in_logs_from_malformed_request(
    stack: ProcessStack, line: str
) -> None:
    """aiohttp's parse errors quote the offending raw header line; it must not be logged."""
    cookie, token = stack.login("malformed@example.com")
    header = line.replace("{cookie}", cookie).replace("{token}", token)
    head = f"GET /admin/x HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\n\r\n".encode("latin-1")
    response = await raw_request(stack.gateway.port, head)
    assert response.status == 400
    await stack.gateway.stop()
    assert leaked(stack.gateway.lines, [cookie, token]) == []
