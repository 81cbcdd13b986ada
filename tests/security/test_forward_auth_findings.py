"""Regression tests for what a third outside tester found in forward auth (A1-A4), each with
the promise it broke (docs/reference.md#forward-auth):

* A1 a forwarded host is one host: `X-Forwarded-Host: app.test,admin.test` was judged as
  `app.test` (the first), while Rack and Werkzeug give the app the last, so a signed-in user
  reached an admins-only host route through nginx, which passes such a Host on. Now 400 on
  the checks and in proxy mode (the same value repeated is still one host);
* A2 a request the proxy does not describe is not judged as something it may not be: with no
  method header a POST was judged as GET (nginx's own `auth_request` example sets only the
  URI), and with no `X-Forwarded-Host` the check's own Host was judged against host routes.
  Now, where the routes for the path depend on the method (or the host), the endpoint's own
  method header (or `X-Forwarded-Host`) must be there: 400 otherwise;
* A4 a described CONNECT (how HTTP/2 and HTTP/3 open a WebSocket) gets the cross-site Origin
  check of a WebSocket handshake.

* A3 route paths match case-sensitively, as documented, so behind an app that ignores case
  (IIS, ASP.NET) `/ADMIN/` was the app's `/admin/` but not the route's. Now
  `server.routes_ignore_case` makes routes match in any case, in proxy mode and checks.

(A5, a client's request id through the README's proxy configs, is fixed in those configs.)
On 0db7ed7, the commit before the fixes, every test of a refusal below fails (most were
answered 200); A3's fails on f030383, before the option.
"""

from __future__ import annotations

import pytest

from gateway.standin import StandinSession
from tests.conftest import Stack, StackFactory

CHECK = "/_auth/check"
NGINX = "/_auth/check/nginx"
ENDPOINTS = [pytest.param(CHECK, id="check"), pytest.param(NGINX, id="nginx")]
TRUSTED = 'trusted_proxies = ["127.0.0.1/32"]'
API = {"Accept": "application/json"}
ROUTES = """
[[routes]]
host = "admin.test"
path = "/reports/**"
[routes.require]
"identity.metadata_public.role" = "admin"

[[routes]]
path = "/api/write/**"
methods = ["POST", "PUT", "DELETE", "PATCH"]
access = "deny"

[[routes]]
path = "/static/**"
methods = ["GET"]
access = "public"
"""


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack(routes=ROUTES, server=TRUSTED)


def sign_in(stack: Stack) -> StandinSession:
    identity = stack.ory.add_identity("bob@example.com", password="pw",
                                      metadata_public={"role": "user"})
    return stack.ory.create_session(identity)


def described(endpoint: str, uri: str, method: str | None = "GET",
              host: str | None = "app.test") -> dict[str, str]:
    """The description in the endpoint's own spelling; None leaves a header out."""
    nginx = endpoint == NGINX
    headers = {"X-Original-URI" if nginx else "X-Forwarded-Uri": uri,
               "X-Forwarded-Proto": "https"}
    if method is not None:
        headers["X-Original-Method" if nginx else "X-Forwarded-Method"] = method
    if host is not None:
        headers["X-Forwarded-Host"] = host
    return headers


async def check(stack: Stack, endpoint: str, headers: dict[str, str],
                session: StandinSession | None = None) -> tuple[int, str | None]:
    cookie = stack.cookie(session.cookie_value) if session is not None else {}
    response = await stack.client.get(endpoint, headers={**headers, **cookie, **API})
    return response.status, response.headers.get("X-User-Id")


# --- A1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("host", [
    "app.test,admin.test", "x,admin.test", ",admin.test", "app.test, ADMIN.test",
    "admin.test,app.test", ",", "admin.test,",
])
async def test_a1_forwarded_host_naming_several_hosts_is_400(
    stack: Stack, endpoint: str, host: str
) -> None:
    status, user = await check(stack, endpoint, described(endpoint, "/reports/x", host=host),
                               sign_in(stack))

    assert status == 400
    assert user is None


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a1_one_host_repeated_is_that_host(stack: Stack, endpoint: str) -> None:
    session = sign_in(stack)

    repeated = await check(stack, endpoint,
                           described(endpoint, "/reports/x", host="admin.test, admin.test"),
                           session)
    other = await check(stack, endpoint,
                        described(endpoint, "/reports/x", host="app.test,app.test"), session)

    assert repeated == (403, None)  # the admins-only host route, judged
    assert other == (200, session.identity_id)


async def test_a1_several_forwarded_hosts_in_proxy_mode_are_400(stack: Stack) -> None:
    session = sign_in(stack)

    response = await stack.client.get("/reports/x", headers={
        "X-Forwarded-Host": "app.test,admin.test", **stack.cookie(session.cookie_value), **API,
    })

    assert response.status == 400
    assert stack.upstream.seen == []


# --- A2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("uri", ["/api/write/x", "/static/x"])
async def test_a2_no_method_where_the_routes_depend_on_it_is_400(
    stack: Stack, endpoint: str, uri: str
) -> None:
    status, user = await check(stack, endpoint, described(endpoint, uri, method=None),
                               sign_in(stack))

    assert status == 400
    assert user is None


async def test_a2_nginx_endpoint_does_not_take_the_clients_spelling_of_the_method(
    stack: Stack,
) -> None:
    """nginx passes a client's `X-Forwarded-Method` on; when the config does not set
    `X-Original-Method`, that header is the client's word, not nginx's."""
    headers = {**described(NGINX, "/api/write/x", method=None), "X-Forwarded-Method": "GET"}

    assert await check(stack, NGINX, headers, sign_in(stack)) == (400, None)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a2_no_method_where_the_routes_do_not_care_is_judged_as_get(
    stack: Stack, endpoint: str
) -> None:
    session = sign_in(stack)

    allowed = await check(stack, endpoint, described(endpoint, "/app/x", method=None), session)
    anonymous = await check(stack, endpoint, described(endpoint, "/app/x", method=None))

    assert allowed == (200, session.identity_id)
    assert anonymous == (401, None)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a2_with_the_method_said_the_routes_decide(stack: Stack, endpoint: str) -> None:
    session = sign_in(stack)

    assert await check(stack, endpoint, described(endpoint, "/api/write/x", method="POST"),
                       session) == (403, None)
    assert await check(stack, endpoint, described(endpoint, "/api/write/x", method="GET"),
                       session) == (200, session.identity_id)
    assert await check(stack, endpoint, described(endpoint, "/static/x", method="GET")) == (
        200, None)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a2_no_forwarded_host_where_a_host_route_may_apply_is_400(
    stack: Stack, endpoint: str
) -> None:
    session = sign_in(stack)

    missing = await check(stack, endpoint, described(endpoint, "/reports/x", host=None),
                          session)
    blank = await check(stack, endpoint,
                        {**described(endpoint, "/reports/x", host=None),
                         "X-Forwarded-Host": " "}, session)
    elsewhere = await check(stack, endpoint, described(endpoint, "/app/x", host=None), session)

    assert missing == (400, None)
    assert blank == (400, None)
    assert elsewhere == (200, session.identity_id)  # no host route covers /app/x


# --- A4 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(("origin", "status"), [
    pytest.param("https://evil.example", 403, id="cross-site"),
    pytest.param("https://app.test", 200, id="own-origin"),
    pytest.param(None, 200, id="no-origin"),
])
async def test_a4_described_connect_websocket_from_another_site_is_refused(
    stack: Stack, endpoint: str, origin: str | None, status: int
) -> None:
    session = sign_in(stack)
    headers = {**described(endpoint, "/live", method="CONNECT"), "Sec-WebSocket-Version": "13"}
    if origin is not None:
        headers["Origin"] = origin

    answer, user = await check(stack, endpoint, headers, session)

    assert answer == status
    assert (user is not None) is (status == 200)


# --- A3 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/reports/x", "/REPORTS/x", "/Reports/X"])
async def test_a3_routes_ignoring_case_guard_every_spelling(
    make_stack: StackFactory, path: str
) -> None:
    stack = await make_stack(routes=ROUTES, server=TRUSTED + "\nroutes_ignore_case = true")
    session = sign_in(stack)

    proxied = await stack.client.get(path, headers={
        "Host": "admin.test", **stack.cookie(session.cookie_value), **API})
    checked = await check(stack, CHECK, described(CHECK, path, host="admin.test"), session)

    assert proxied.status == 403
    assert checked == (403, None)
    assert stack.upstream.seen == []


async def test_a3_by_default_a_route_guards_its_own_case_only(stack: Stack) -> None:
    """The control (documented): without the option /REPORTS/x is not /reports/x."""
    session = sign_in(stack)

    response = await stack.client.get("/REPORTS/x", headers={
        "Host": "admin.test", **stack.cookie(session.cookie_value), **API})

    assert response.status == 200
    assert [seen.raw_path for seen in stack.upstream.seen] == ["/REPORTS/x"]


# --- A second look (the same tester, after the fixes above) ----------------------------------


async def check_lines(stack: Stack, endpoint: str, lines: list[tuple[str, str]],
                      session: StandinSession) -> tuple[int, str | None]:
    """A check whose headers may repeat (a list of lines, as a proxy may append them)."""
    response = await stack.client.get(endpoint, headers=[
        *lines, *stack.cookie(session.cookie_value).items(), *API.items(),
    ])
    return response.status, response.headers.get("X-User-Id")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a1_forwarded_host_given_on_two_lines_is_one_list(
    stack: Stack, endpoint: str
) -> None:
    """Two lines say what `app.test,admin.test` says: Rack and Werkzeug join them and take
    the last. Failed on b769117: the check judged the first line alone (200)."""
    session = sign_in(stack)
    base = [(k, v) for k, v in described(endpoint, "/reports/x", host=None).items()]

    differing = await check_lines(stack, endpoint, [
        *base, ("X-Forwarded-Host", "app.test"), ("X-Forwarded-Host", "admin.test")], session)
    repeated = await check_lines(stack, endpoint, [
        *base, ("X-Forwarded-Host", "app.test"), ("X-Forwarded-Host", "app.test")], session)

    assert differing == (400, None)
    assert repeated == (200, session.identity_id)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("kind", ["Method", "Uri"])
async def test_a2_a_describing_header_given_twice_differently_is_400(
    stack: Stack, endpoint: str, kind: str
) -> None:
    """A proxy that adds its line after the client's would have the client's believed.
    Failed on b769117: the first line was judged (200 for a GET-only public path)."""
    session = sign_in(stack)
    nginx = endpoint == NGINX
    name = ("X-Original-" if nginx else "X-Forwarded-") + ("URI" if nginx and kind == "Uri"
                                                           else kind)
    first, second = ("GET", "DELETE") if kind == "Method" else ("/static/x", "/api/write/x")
    description = described(endpoint, "/static/x", method="GET")
    lines = [(k, v) for k, v in description.items() if k.lower() != name.lower()]

    twice = await check_lines(stack, endpoint, [*lines, (name, first), (name, second)],
                              session)
    same = await check_lines(stack, endpoint, [*lines, (name, first), (name, first)], session)

    assert twice == (400, None)
    assert same == (200, None)  # the GET-only public route, judged (no identity on it)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("spelling", ["X_Forwarded_Host", "x_forwarded_uri", "X_Original_URI"])
async def test_a1_a_describing_header_spelled_with_underscores_is_400(
    stack: Stack, endpoint: str, spelling: str
) -> None:
    """Caddy passes `X_Forwarded_Host` on to the app, and PHP, Rack and WSGI servers read it
    as `X-Forwarded-Host`: the app could serve a host the check never judged."""
    session = sign_in(stack)
    headers = {**described(endpoint, "/app/x"), spelling: "admin.test"}

    assert await check(stack, endpoint, headers, session) == (400, None)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_forwarded_host_longer_than_any_name_is_400(stack: Stack, endpoint: str) -> None:
    """No host name is longer than 253 characters; 6 000 of them name nothing."""
    session = sign_in(stack)
    longest = ("a" * 62 + ".") * 4 + "test"  # 256 characters: one too many with its port
    headers = described(endpoint, "/app/x", host=("a" * 60 + ".") * 100 + "test")

    assert await check(stack, endpoint, headers, session) == (400, None)
    assert (await check(stack, endpoint, described(endpoint, "/app/x", host=longest[-253:]),
                        session))[0] == 200
