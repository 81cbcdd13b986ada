"""`/_auth/check` and `/_auth/check/nginx`: the decision alone, for a proxy that stays in front
(docs/reference.md#forward-auth), against the real Ory stand-in. Each test plays the proxy: it
describes the user's request in forwarded headers and passes the user's credential on."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse

from gateway.standin import StandinSession
from tests.conftest import Stack, StackFactory

CHECK = "/_auth/check"
NGINX = "/_auth/check/nginx"
ENDPOINTS = [pytest.param(CHECK, id="check"), pytest.param(NGINX, id="nginx")]
TRUSTED = 'trusted_proxies = ["127.0.0.1/32"]\nlog_format = "json"'
ORIGIN = "https://app.example.com"
WAIT = 5.0

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}
API = {"Accept": "application/json"}

ROUTES = """
[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/maybe/**"
access = "optional"

[[routes]]
path = "/admin/**"
aal = "aal2"

[[routes]]
path = "/recent/**"
max_age = "5m"

[[routes]]
path = "/internal/**"
access = "deny"

[[routes]]
path = "/staff/**"
[routes.require]
"identity.metadata_public.role" = "admin"

[[routes]]
path = "/read/**"
methods = ["GET"]
access = "public"

[[routes]]
host = "locked.test"
path = "/**"
access = "deny"
"""


def described(uri: str, *, method: str = "GET", host: str = "app.example.com",
              nginx: bool = False) -> dict[str, str]:
    """The forwarded description of a user's request, as Caddy / Traefik (`X-Forwarded-*`)
    or nginx (`X-Original-*`, README's config) write it."""
    if nginx:
        return {"X-Original-Method": method, "X-Original-URI": uri,
                "X-Forwarded-Host": host, "X-Forwarded-Proto": "https"}
    return {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri,
            "X-Forwarded-Host": host, "X-Forwarded-Proto": "https"}


def asks(endpoint: str, uri: str, *, method: str = "GET",
         host: str = "app.example.com") -> dict[str, str]:
    """The description in the spelling of the proxy that asks `endpoint`."""
    return described(uri, method=method, host=host, nginx=endpoint == NGINX)


def login_query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


def sign_in(stack: Stack, email: str = "alice@example.com", *,
            role: str | None = None) -> StandinSession:
    """An aal1 session of a new identity (with `metadata_public.role` when given)."""
    identity = stack.ory.add_identity(
        email, password="pw", metadata_public={"role": role} if role else None,
    )
    return stack.ory.create_session(identity)


def whoami_calls(stack: Stack) -> int:
    return stack.ory.calls["GET /sessions/whoami"]


async def error_id(response: ClientResponse) -> str:
    """The envelope's id, after checking what every error answer carries."""
    assert response.headers["Content-Type"].startswith("application/json")
    assert "no-store" in response.headers["Cache-Control"]
    body = await response.json()
    assert body["error"]["code"] == response.status
    assert body["error"]["request"] == response.headers["X-Request-Id"]
    found: str = body["error"]["id"]
    return found


@pytest.fixture
async def proxy(make_stack: StackFactory) -> Stack:
    """The gateway with the test client (127.0.0.1) as its trusted proxy."""
    return await make_stack(routes=ROUTES, server=TRUSTED)


# --- Allowed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "DELETE"])
async def test_allowed_is_200_empty_with_identity_headers_and_request_id(
    proxy: Stack, endpoint: str, method: str
) -> None:
    session = sign_in(proxy)

    response = await proxy.client.request(
        method, endpoint, headers={**asks(endpoint, "/app/page?x=1", method=method),
                                   **proxy.cookie(session.cookie_value), **API},
    )

    assert response.status == 200
    assert await response.read() == b""
    assert response.headers["X-User-Email"] == "alice@example.com"
    assert response.headers["X-User-Id"] == session.identity_id
    assert response.headers["X-Request-Id"]
    assert "no-store" in response.headers["Cache-Control"]
    assert proxy.upstream.seen == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_trusted_proxy_request_id_is_kept(proxy: Stack, endpoint: str) -> None:
    session = sign_in(proxy)

    response = await proxy.client.get(
        endpoint, headers={**asks(endpoint, "/app"), **proxy.cookie(session.cookie_value),
                           "X-Request-Id": "edge-1234"},
    )

    assert response.status == 200
    assert response.headers["X-Request-Id"] == "edge-1234"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("uri", ["/public/x", "/maybe/x"])
async def test_route_without_session_allows_with_no_identity_headers(
    proxy: Stack, endpoint: str, uri: str
) -> None:
    response = await proxy.client.get(endpoint, headers={**asks(endpoint, uri), **API,
                                                         "X-User-Email": "forged@example.com"})

    assert response.status == 200
    assert "X-User-Email" not in response.headers
    assert "X-User-Id" not in response.headers
    assert whoami_calls(proxy) == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("source", "ory_extra"),
    [
        pytest.param("cookie", "", id="cookie"),
        pytest.param("session_token", "", id="x-session-token"),
        pytest.param("bearer", 'credentials = ["cookie", "session_token", "bearer"]',
                     id="bearer-enabled"),
    ],
)
async def test_credential_from_each_configured_source(
    make_stack: StackFactory, endpoint: str, source: str, ory_extra: str
) -> None:
    stack = await make_stack(routes=ROUTES, server=TRUSTED, ory=ory_extra)
    session = sign_in(stack)
    credential = {
        "cookie": stack.cookie(session.cookie_value),
        "session_token": {"X-Session-Token": session.token},
        "bearer": {"Authorization": f"Bearer {session.token}"},
    }[source]

    response = await stack.client.get(endpoint, headers={**asks(endpoint, "/app"),
                                                          **credential, **API})

    assert response.status == 200
    assert response.headers["X-User-Email"] == "alice@example.com"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_bearer_is_no_credential_unless_enabled(proxy: Stack, endpoint: str) -> None:
    session = sign_in(proxy)

    response = await proxy.client.get(
        endpoint, headers={**asks(endpoint, "/app"), "Authorization": f"Bearer {session.token}",
                           **API},
    )

    assert response.status == 401
    assert whoami_calls(proxy) == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_warm_check_does_not_ask_ory_again(proxy: Stack, endpoint: str) -> None:
    session = sign_in(proxy)
    headers = {**asks(endpoint, "/app"), **proxy.cookie(session.cookie_value)}

    first = await proxy.client.get(endpoint, headers=headers)
    second = await proxy.client.get(endpoint, headers=headers)
    proxied = await proxy.client.get("/app", headers=proxy.cookie(session.cookie_value))

    assert (first.status, second.status, proxied.status) == (200, 200, 200)
    assert whoami_calls(proxy) == 1


# --- Login needed --------------------------------------------------------------------------------


async def test_check_sends_a_navigation_without_session_to_the_login(proxy: Stack) -> None:
    response = await proxy.client.get(
        CHECK, headers={**described("/app/page?x=1&y=2"), **BROWSER}, allow_redirects=False
    )

    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(proxy.config.ory.url + proxy.config.ory.login_path + "?")
    assert login_query(location)["return_to"] == [f"{ORIGIN}/app/page?x=1&y=2"]


async def test_nginx_says_401_with_the_login_url_for_a_navigation(proxy: Stack) -> None:
    response = await proxy.client.get(
        NGINX, headers={**described("/app/page?x=1", nginx=True), **BROWSER},
        allow_redirects=False,
    )

    assert response.status == 401
    location = response.headers["Location"]
    assert location.startswith(proxy.config.ory.url + proxy.config.ory.login_path + "?")
    assert login_query(location)["return_to"] == [f"{ORIGIN}/app/page?x=1"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(API, id="accept-json"),
        pytest.param({"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, id="xhr"),
    ],
)
async def test_api_call_without_session_is_401_json(
    proxy: Stack, headers: dict[str, str]
) -> None:
    check = await proxy.client.get(CHECK, headers={**described("/app"), **headers},
                                   allow_redirects=False)
    nginx = await proxy.client.get(NGINX, headers={**described("/app", nginx=True), **headers},
                                   allow_redirects=False)

    assert check.status == 401
    assert await error_id(check) == "session_required"
    assert nginx.status == 401
    assert "Location" not in nginx.headers


async def test_forwarded_post_from_a_browser_is_not_a_navigation(proxy: Stack) -> None:
    response = await proxy.client.get(
        CHECK, headers={**described("/app", method="POST"), **BROWSER}, allow_redirects=False
    )

    assert response.status == 401


async def test_loop_guard_tells_clients_apart_by_the_last_forwarded_for(proxy: Stack) -> None:
    """A proxy speaks for many clients; one client stuck in a login loop gets the page, the
    next client asking for the same URL still gets its redirect."""

    async def ask(client: str) -> ClientResponse:
        proxy.client.session.cookie_jar.clear()  # clients that keep no cookies
        return await proxy.client.get(
            CHECK, headers={**described("/loop"), **BROWSER, "X-Forwarded-For": client},
            allow_redirects=False,
        )

    statuses = [(await ask("203.0.113.1")).status for _ in range(8)]
    stuck = await ask("198.51.100.7, 203.0.113.1")
    other = await ask("203.0.113.2")

    assert statuses[0] == 303
    assert statuses[-1] == 401, statuses
    assert stuck.status == 401
    assert stuck.headers["Content-Type"].startswith("text/html")
    assert other.status == 303


# --- Step-up, re-login, refusals, Ory down -------------------------------------------------------


async def test_step_up_for_a_navigation(proxy: Stack) -> None:
    session = sign_in(proxy)
    cookie = proxy.cookie(session.cookie_value)

    check = await proxy.client.get(CHECK, headers={**described("/admin/x?q=1"), **cookie,
                                                   **BROWSER}, allow_redirects=False)
    nginx = await proxy.client.get(NGINX, headers={**described("/admin/x?q=1", nginx=True),
                                                   **cookie, **BROWSER}, allow_redirects=False)

    assert check.status == 303
    assert login_query(check.headers["Location"])["aal"] == ["aal2"]
    assert login_query(check.headers["Location"])["return_to"] == [f"{ORIGIN}/admin/x?q=1"]
    assert nginx.status == 401
    assert login_query(nginx.headers["Location"])["aal"] == ["aal2"]


async def test_step_up_for_an_api_call(proxy: Stack) -> None:
    session = sign_in(proxy)
    cookie = proxy.cookie(session.cookie_value)

    check = await proxy.client.get(CHECK, headers={**described("/admin/x"), **cookie, **API},
                                   allow_redirects=False)
    nginx = await proxy.client.get(NGINX, headers={**described("/admin/x", nginx=True),
                                                   **cookie, **API}, allow_redirects=False)

    assert check.status == 403
    assert await error_id(check) == "session_aal2_required"
    assert nginx.status == 401
    assert login_query(nginx.headers["Location"])["aal"] == ["aal2"]


@pytest.mark.parametrize("headers", [pytest.param(BROWSER, id="navigation"),
                                     pytest.param(API, id="api")])
async def test_login_too_old_asks_for_refresh(proxy: Stack, headers: dict[str, str]) -> None:
    session = sign_in(proxy)
    cookie = proxy.cookie(session.cookie_value)
    proxy.clock.advance(301)

    check = await proxy.client.get(CHECK, headers={**described("/recent/x"), **cookie,
                                                   **headers}, allow_redirects=False)
    nginx = await proxy.client.get(NGINX, headers={**described("/recent/x", nginx=True),
                                                   **cookie, **headers}, allow_redirects=False)

    if headers is BROWSER:
        assert check.status == 303
        assert login_query(check.headers["Location"])["refresh"] == ["true"]
    else:
        assert check.status == 403
        assert await error_id(check) == "session_refresh_required"
    assert nginx.status == 401
    assert login_query(nginx.headers["Location"])["refresh"] == ["true"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("uri", "host"),
    [pytest.param("/internal/x", "app.example.com", id="deny-route"),
     pytest.param("/app", "locked.test", id="deny-host-route"),
     pytest.param("/app", "LOCKED.test:8443", id="deny-host-route-any-case-and-port")],
)
async def test_deny_route_is_403(proxy: Stack, endpoint: str, uri: str, host: str) -> None:
    session = sign_in(proxy)

    response = await proxy.client.get(
        endpoint, headers={**asks(endpoint, uri, host=host),
                           **proxy.cookie(session.cookie_value), **API},
    )

    assert response.status == 403
    assert await error_id(response) == "access_denied"
    assert whoami_calls(proxy) == 0


async def test_deny_route_is_a_403_page_for_a_navigation_on_check(proxy: Stack) -> None:
    response = await proxy.client.get(CHECK, headers={**described("/internal/x"), **BROWSER})

    assert response.status == 403
    assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_require_not_met_is_403_json_for_an_api_call(proxy: Stack, endpoint: str) -> None:
    session = sign_in(proxy, role="viewer")

    response = await proxy.client.get(
        endpoint, headers={**asks(endpoint, "/staff/x"), **proxy.cookie(session.cookie_value),
                           **API},
    )

    assert response.status == 403
    assert await error_id(response) == "access_denied"
    assert "X-User-Email" not in response.headers


async def test_require_not_met_is_the_forbidden_page_for_a_navigation(proxy: Stack) -> None:
    session = sign_in(proxy, "viewer@example.com", role="viewer")
    cookie = proxy.cookie(session.cookie_value)

    check = await proxy.client.get(CHECK, headers={**described("/staff/x"), **cookie, **BROWSER})
    nginx = await proxy.client.get(NGINX, headers={**described("/staff/x", nginx=True),
                                                   **cookie, **BROWSER})

    assert check.status == 403
    assert check.headers["Content-Type"].startswith("text/html")
    page = await check.text()
    assert "viewer@example.com" in page
    assert session.cookie_value not in page
    switch = [href for href in re.findall(r'href="([^"]+)"', page) if "return_to=" in href]
    assert switch, page
    returns = parse_qs(urlsplit(html.unescape(switch[0])).query)["return_to"]
    assert returns == [f"{ORIGIN}/staff/x"]  # the user's URL, not the check's
    assert nginx.status == 403


async def test_require_met_is_allowed(proxy: Stack) -> None:
    session = sign_in(proxy, "root@example.com", role="admin")

    response = await proxy.client.get(
        NGINX, headers={**described("/staff/x", nginx=True), **proxy.cookie(session.cookie_value)}
    )

    assert response.status == 200
    assert response.headers["X-User-Email"] == "root@example.com"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("headers", [pytest.param(BROWSER, id="navigation"),
                                     pytest.param(API, id="api")])
@pytest.mark.parametrize("uri", ["/app", "/maybe/x", "/staff/x"])
async def test_ory_down_is_503(
    proxy: Stack, endpoint: str, headers: dict[str, str], uri: str
) -> None:
    session = sign_in(proxy, role="admin")
    proxy.ory.faults.whoami_status = 503

    response = await proxy.client.get(
        endpoint, headers={**asks(endpoint, uri), **proxy.cookie(session.cookie_value),
                           **headers}, allow_redirects=False,
    )

    assert response.status == 503
    assert "X-User-Email" not in response.headers
    if headers is API:
        assert await error_id(response) == "ory_unavailable"


# --- What the proxy describes --------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("/public/../internal/x", id="dot-dot"),
        pytest.param("/public/./x", id="dot"),
        pytest.param("/public/%2e%2e/internal/x", id="encoded-dot-dot"),
        pytest.param("/public/%2E%2e/internal/x", id="encoded-dot-dot-mixed-case"),
        pytest.param("/public%2finternal/x", id="encoded-slash"),
        pytest.param("/public%5cx", id="encoded-backslash"),
        pytest.param("/public/x;a=b", id="path-parameter"),
        pytest.param("/public/%zz", id="bad-escape"),
        pytest.param("public/x", id="not-a-path"),
        pytest.param("http://evil.example/public/x", id="absolute-url"),
        pytest.param("/public/x?a=#b", id="hash-in-query"),
        pytest.param("/public/x?a=\u00e9", id="non-ascii-query"),
    ],
)
async def test_ambiguous_forwarded_path_is_400(proxy: Stack, endpoint: str, uri: str) -> None:
    response = await proxy.client.get(endpoint, headers={**asks(endpoint, uri), **API})

    assert response.status == 400
    assert await error_id(response) == "bad_request"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_missing_forwarded_uri_is_400(proxy: Stack, endpoint: str) -> None:
    headers = asks(endpoint, "/app")
    del headers["X-Original-URI" if endpoint == NGINX else "X-Forwarded-Uri"]

    response = await proxy.client.get(endpoint, headers={**headers, **API})

    assert response.status == 400
    assert await error_id(response) == "bad_request"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("method", ["G@T", "GET POST", "GET/1", "(GET)"])
async def test_forwarded_method_that_is_not_a_token_is_400(
    proxy: Stack, endpoint: str, method: str
) -> None:
    response = await proxy.client.get(endpoint, headers={**asks(endpoint, "/public/x",
                                                                method=method), **API})

    assert response.status == 400
    assert await error_id(response) == "bad_request"


@pytest.mark.parametrize(
    ("endpoint", "headers", "status"),
    [
        pytest.param(NGINX, {"X-Original-URI": "/internal/x", "X-Forwarded-Uri": "/public/x"},
                     403, id="nginx-original-uri-wins-deny"),
        pytest.param(NGINX, {"X-Original-URI": "/public/x", "X-Forwarded-Uri": "/internal/x"},
                     200, id="nginx-original-uri-wins-public"),
        pytest.param(CHECK, {"X-Forwarded-Uri": "/internal/x", "X-Original-URI": "/public/x"},
                     403, id="check-forwarded-uri-wins-deny"),
        pytest.param(CHECK, {"X-Forwarded-Uri": "/public/x", "X-Original-URI": "/internal/x"},
                     200, id="check-forwarded-uri-wins-public"),
        pytest.param(NGINX, {"X-Original-URI": "/read/x", "X-Original-Method": "POST",
                             "X-Forwarded-Method": "GET"}, 401,
                     id="nginx-original-method-wins"),
        pytest.param(CHECK, {"X-Forwarded-Uri": "/read/x", "X-Forwarded-Method": "POST",
                             "X-Original-Method": "GET"}, 401,
                     id="check-forwarded-method-wins"),
        pytest.param(CHECK, {"X-Forwarded-Uri": "/read/x", "X-Forwarded-Method": "head"}, 200,
                     id="head-counts-as-get"),
    ],
)
async def test_each_endpoint_believes_its_own_proxys_spelling_first(
    proxy: Stack, endpoint: str, headers: dict[str, str], status: int
) -> None:
    response = await proxy.client.get(
        endpoint, headers={"X-Forwarded-Host": "app.example.com", "X-Forwarded-Proto": "https",
                           **headers, **API},
    )

    assert response.status == status


# --- Untrusted peers -----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "server",
    [pytest.param("", id="no-trusted-proxies"),
     pytest.param('trusted_proxies = ["10.0.0.0/8"]', id="other-network")],
)
async def test_untrusted_peer_is_refused_and_logged_without_secrets(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture, endpoint: str, server: str
) -> None:
    stack = await make_stack(routes=ROUTES, server=server)
    session = sign_in(stack)
    caplog.set_level(logging.WARNING)

    response = await stack.client.get(
        endpoint, headers={**asks(endpoint, "/app?secret=query-value"),
                           **stack.cookie(session.cookie_value),
                           "X-Session-Token": session.token, **API},
    )

    assert response.status == 403
    assert await error_id(response) == "access_denied"
    assert "X-User-Email" not in response.headers
    assert whoami_calls(stack) == 0
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and r.name.startswith("gateway")]
    assert warnings, "the refusal is logged"
    for record in warnings:
        line = record.getMessage()
        assert session.cookie_value not in line
        assert session.token not in line
        assert "query-value" not in line


# --- One decision, in one place ------------------------------------------------------------------


class AccessLines(logging.Handler):
    """The gateway's JSON access lines, as they are written; `line_for` waits for one."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[dict[str, Any]] = []
        self.written = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))
        self.written.set()

    async def line_for(self, request_id: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                for line in self.lines:
                    if line["request_id"] == request_id:
                        return line
                self.written.clear()
                await self.written.wait()


@pytest.fixture
def access_lines() -> Iterator[AccessLines]:
    logger = logging.getLogger("gateway.access")
    handler = AccessLines()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def logged(lines: AccessLines, response: ClientResponse) -> tuple[Any, Any]:
    line = await lines.line_for(response.headers["X-Request-Id"])
    return line["route"], line["decision"]


@pytest.fixture
def users(proxy: Stack) -> dict[str, StandinSession | None]:
    return {
        "none": None,
        "alice": sign_in(proxy, "alice@example.com"),
        "viewer": sign_in(proxy, "viewer@example.com", role="viewer"),
    }


@pytest.mark.parametrize(
    ("user", "uri", "headers"),
    [
        pytest.param("alice", "/app/x", API, id="allowed"),
        pytest.param("none", "/public/x", API, id="public"),
        pytest.param("none", "/maybe/x", API, id="anonymous"),
        pytest.param("none", "/app/x", BROWSER, id="login-redirect"),
        pytest.param("none", "/app/x", API, id="unauthenticated"),
        pytest.param("alice", "/admin/x", API, id="step-up"),
        pytest.param("alice", "/internal/x", API, id="denied"),
        pytest.param("viewer", "/staff/x", API, id="forbidden"),
    ],
)
async def test_check_decides_as_the_proxy_does(
    proxy: Stack, users: dict[str, StandinSession | None], access_lines: AccessLines,
    user: str, uri: str, headers: dict[str, str],
) -> None:
    session = users[user]
    cookie = proxy.cookie(session.cookie_value) if session is not None else {}
    host = {"Host": "app.example.com", "X-Forwarded-Proto": "https"}

    proxied = await proxy.client.get(uri, headers={**host, **cookie, **headers},
                                     allow_redirects=False)
    checked = await proxy.client.get(CHECK, headers={**described(uri), **cookie, **headers},
                                     allow_redirects=False)
    nginx = await proxy.client.get(NGINX, headers={**described(uri, nginx=True), **cookie,
                                                   **headers}, allow_redirects=False)

    assert checked.status == proxied.status
    assert checked.headers.get("Location") == proxied.headers.get("Location")
    decided = await logged(access_lines, proxied)
    assert decided[0] != "auth"
    assert await logged(access_lines, checked) == decided
    assert await logged(access_lines, nginx) == decided


# --- Found by the proxy tests ------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("spelling", ["X_User_Id", "x_user_email", "X-User_Id", "X_user-email"])
async def test_identity_header_spelled_with_underscores_is_refused(
    proxy: Stack, endpoint: str, spelling: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Caddy and Traefik remove `X-User-Id` but pass `X_User_Id` on to the check and to the
    app, where PHP, Rack and WSGI servers read it as X-User-Id: the check says no."""
    session = sign_in(proxy)
    caplog.set_level(logging.WARNING, logger="gateway.forward_auth")

    response = await proxy.client.get(
        endpoint, headers={**asks(endpoint, "/public/x"), **proxy.cookie(session.cookie_value),
                           spelling: "spoofed", **API},
    )

    assert response.status == 400
    assert await error_id(response) == "bad_request"
    assert "X-User-Id" not in response.headers
    assert "underscores" in caplog.text
    assert "spoofed" not in caplog.text


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_other_underscored_headers_pass(proxy: Stack, endpoint: str) -> None:
    session = sign_in(proxy)

    response = await proxy.client.get(
        endpoint, headers={**asks(endpoint, "/app"), **proxy.cookie(session.cookie_value),
                           "X_Custom_Thing": "fine", **API},
    )

    assert response.status == 200
    assert response.headers["X-User-Id"] == session.identity_id


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_host_with_a_trailing_dot_meets_its_host_routes(
    proxy: Stack, endpoint: str
) -> None:
    """`locked.test.` names the same host as `locked.test`; it must not slip past the route."""
    session = sign_in(proxy)

    response = await proxy.client.get(
        endpoint, headers={**asks(endpoint, "/app", host="locked.test."),
                           **proxy.cookie(session.cookie_value), **API},
    )

    assert response.status == 403
    assert await error_id(response) == "access_denied"


async def test_requirement_is_judged_before_step_up(make_stack: StackFactory) -> None:
    """A second factor cannot give an account the role it lacks: no step-up first."""
    stack = await make_stack(server=TRUSTED, routes="""
[[routes]]
path = "/admin/**"
aal = "aal2"
[routes.require]
"identity.metadata_public.role" = "admin"
""")
    viewer = sign_in(stack, "viewer@example.com", role="viewer")
    admin = sign_in(stack, "root@example.com", role="admin")

    refused = await stack.client.get(
        "/admin/", headers={**stack.cookie(viewer.cookie_value), **BROWSER})
    stepped = await stack.client.get(
        "/admin/", headers={**stack.cookie(admin.cookie_value), **BROWSER},
        allow_redirects=False)

    assert refused.status == 403
    assert "viewer@example.com" in await refused.text()
    assert stepped.status == 303
    assert login_query(stepped.headers["Location"])["aal"] == ["aal2"]


# --- The access line names what was decided about ----------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_check_access_line_names_the_described_request_without_query_or_email(
    proxy: Stack, access_lines: AccessLines, endpoint: str
) -> None:
    """An operator reading the log sees which request a check decided about: its method and
    path as the access line shows paths (no query, no segment holding an email)."""
    session = sign_in(proxy)
    uri = "/users/alice@example.com/files?token=s3cret"

    checked = await proxy.client.post(endpoint, headers={
        **asks(endpoint, uri, method="DELETE"), **proxy.cookie(session.cookie_value), **API,
    })
    proxied = await proxy.client.get("/app/x", headers={
        "Host": "app.example.com", **proxy.cookie(session.cookie_value), **API,
    })

    assert checked.status == 200
    line = await access_lines.line_for(checked.headers["X-Request-Id"])
    assert (line["method"], line["path"]) == ("POST", endpoint)
    assert (line["checked_method"], line["checked_path"]) == ("DELETE", "/users/…/files")
    assert line["identity_id"] == session.identity_id
    text = json.dumps(line)
    assert "s3cret" not in text
    assert "alice@" not in text
    assert "checked_path" not in await access_lines.line_for(proxied.headers["X-Request-Id"])


async def test_refused_description_logs_no_checked_request(
    proxy: Stack, access_lines: AccessLines
) -> None:
    response = await proxy.client.get(CHECK, headers={**described("/a/%2e%2e/admin"), **API})

    assert response.status == 400
    line = await access_lines.line_for(response.headers["X-Request-Id"])
    assert "checked_path" not in line
    assert line["decision"] == "bad_request"


class TextLines(logging.Handler):
    """Text access lines as written; `line_with` waits for the one holding a request id."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []
        self.written = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.written.set()

    async def line_with(self, request_id: str) -> str:
        async with asyncio.timeout(WAIT):
            while True:
                for line in self.lines:
                    if request_id in line:
                        return line
                self.written.clear()
                await self.written.wait()


async def test_text_access_line_ends_with_the_checked_request(make_stack: StackFactory) -> None:
    stack = await make_stack(routes=ROUTES, server='trusted_proxies = ["127.0.0.1/32"]')
    lines = TextLines()
    logger = logging.getLogger("gateway.access")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(lines)
    try:
        response = await stack.client.get(NGINX, headers={
            **described("/internal/report?id=7", nginx=True), **API,
        })
        assert response.status == 403
        request_id = response.headers["X-Request-Id"]
        line = await lines.line_with(request_id)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)

    assert line.startswith(f"GET {NGINX} 403 ")
    assert line.endswith(f" denied {request_id} checked GET /internal/report")
