"""Who may enter: `[routes.require]`, host routes and per-route upstreams, through the real
gateway, the real Ory stand-in and real upstream apps (docs/reference.md#who-may-enter,
#route-match, #errors, #html-pages)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port
from pytest_aiohttp import AiohttpServer

from gateway.standin import StandinSession
from tests.conftest import Stack, StackFactory
from tests.upstream_app import UpstreamState, build_upstream

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}
API = {"Accept": "application/json"}

POLICY = """
[[routes]]
path = "/admin/**"
aal = "aal2"
[routes.require]
"identity.metadata_public.role" = ["admin", "ops"]

[[routes]]
path = "/staff/**"
[routes.require]
"identity.metadata_public.role" = "admin"

[[routes]]
path = "/billing/**"
[routes.require]
"identity.verifiable_addresses.0.verified" = true

[[routes]]
path = "/team/**"
[routes.require]
"identity.traits.groups" = "dev"
"""


def sign_in(
    stack: Stack, email: str, *, role: str | None = None, aal: str = "aal1",
    traits: dict[str, Any] | None = None,
) -> StandinSession:
    """A stand-in identity (with `metadata_public.role` when given) and a session for it."""
    identity = stack.ory.add_identity(
        email, password="pw", has_second_factor=aal == "aal2", traits=traits,
        metadata_public={"role": role} if role is not None else None,
    )
    return stack.ory.create_session(identity, aal=aal)


def whoami_calls(stack: Stack) -> int:
    return stack.ory.calls["GET /sessions/whoami"]


@pytest.fixture
async def policy(make_stack: StackFactory) -> Stack:
    return await make_stack(routes=POLICY)


class Actions(HTMLParser):
    """The links and forms of a page: (target URL, visible label), labels lower-cased."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._open: list[list[str]] = []  # [target, label so far] of the open <a> or <form>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self._open.append([values["href"] or "", ""])
        elif tag == "form":
            self._open.append([values.get("action") or "", ""])
        elif tag in ("input", "button") and self._open:
            self._open[-1][1] += " " + (values.get("value") or "")

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("a", "form") and self._open:
            target, label = self._open.pop()
            self.found.append((target, " ".join(label.split()).lower()))


def actions_of(html: str) -> list[tuple[str, str]]:
    parser = Actions()
    parser.feed(html)
    return parser.found


# --- require: refused and admitted ----------------------------------------------------------


async def test_require_met_is_proxied_with_identity_headers(policy: Stack) -> None:
    session = sign_in(policy, "root@example.com", role="admin")

    response = await policy.client.get("/staff/report", headers=policy.cookie(session.cookie_value))

    assert response.status == 200
    assert policy.upstream.last().raw_path == "/staff/report"
    assert policy.upstream.header("X-User-Email") == ["root@example.com"]


@pytest.mark.parametrize(
    "role",
    [pytest.param("viewer", id="other-role"), pytest.param(None, id="no-metadata")],
)
async def test_require_not_met_api_call_gets_403_access_denied_json(
    policy: Stack, role: str | None
) -> None:
    session = sign_in(policy, "viewer@example.com", role=role)

    response = await policy.client.get(
        "/staff/report", headers={**policy.cookie(session.cookie_value), **API}
    )

    assert response.status == 403
    assert response.headers["Content-Type"].startswith("application/json")
    error = (await response.json())["error"]
    assert error["id"] == "access_denied"
    assert error["code"] == 403
    assert error["status"] == "Forbidden"
    assert error["message"]
    assert policy.upstream.seen == []


async def test_require_not_met_browser_gets_forbidden_page_naming_the_account(
    policy: Stack,
) -> None:
    session = sign_in(policy, "viewer@example.com", role="viewer")

    response = await policy.client.get(
        "/staff/report?q=1", headers={**policy.cookie(session.cookie_value), **BROWSER},
        allow_redirects=False,
    )

    assert response.status == 403
    assert response.headers["Content-Type"].startswith("text/html")
    assert "no-store" in response.headers["Cache-Control"]
    html = await response.text()
    assert "viewer@example.com" in html
    assert session.cookie_value not in html
    assert session.token not in html
    assert policy.upstream.seen == []
    actions = actions_of(html)
    logout = policy.config.server.auth_prefix + "/logout"
    login = policy.config.ory.url + policy.config.ory.login_path
    sign_out = [t for t, label in actions if "sign out" in label]
    switch = [t for t, label in actions if "someone else" in label or "switch" in label]
    assert sign_out, actions
    assert switch, actions
    assert all(urlsplit(t).path == logout for t in sign_out), sign_out
    assert all(urlsplit(t).path == logout or t.startswith(login) for t in switch), switch


async def test_switch_account_link_logs_out_at_ory_and_comes_back(policy: Stack) -> None:
    session = sign_in(policy, "viewer@example.com", role="viewer")
    page = await policy.client.get(
        "/staff/report?q=1&r=2", headers={**policy.cookie(session.cookie_value), **BROWSER}
    )
    switch = next(t for t, label in actions_of(await page.text()) if "someone else" in label)

    response = await policy.client.get(
        switch, headers={**policy.cookie(session.cookie_value), **BROWSER},
        allow_redirects=False,
    )

    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(policy.config.ory.url + "/self-service/logout?")
    assert parse_qs(urlsplit(location).query)["return_to"] == [
        policy.origin + "/staff/report?q=1&r=2"
    ]


async def test_forbidden_page_escapes_the_account_name(policy: Stack) -> None:
    email = 'x"><script>alert(1)</script>@example.com'
    session = sign_in(policy, email, role="viewer")

    response = await policy.client.get(
        "/staff/report", headers={**policy.cookie(session.cookie_value), **BROWSER}
    )

    assert response.status == 403
    html = await response.text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@example.com" in html


async def test_require_not_met_with_header_credential_is_json_even_for_a_browser(
    policy: Stack,
) -> None:
    session = sign_in(policy, "viewer@example.com", role="viewer")

    response = await policy.client.get(
        "/staff/report", headers={"X-Session-Token": session.token, **BROWSER},
        allow_redirects=False,
    )

    assert response.status == 403
    assert (await response.json())["error"]["id"] == "access_denied"


async def test_unverified_email_is_refused_where_a_verified_one_is_required(
    policy: Stack,
) -> None:
    session = sign_in(policy, "new@example.com")  # the stand-in's addresses start unverified

    response = await policy.client.get(
        "/billing/invoices", headers={**policy.cookie(session.cookie_value), **API}
    )

    assert response.status == 403
    assert (await response.json())["error"]["id"] == "access_denied"


@pytest.mark.parametrize(
    ("groups", "status"),
    [
        pytest.param(["ops", "dev"], 200, id="holds-dev"),
        pytest.param(["ops"], 403, id="lacks-dev"),
        pytest.param("dev", 200, id="equals-dev"),
        pytest.param("developers", 403, id="other-string"),
        pytest.param(["dev", None], 200, id="holds-dev-and-a-null"),
        pytest.param(["dev", {"team": "ops"}], 200, id="holds-dev-and-an-object"),
    ],
)
async def test_list_trait_admits_when_it_holds_the_value(
    policy: Stack, groups: list[Any] | str, status: int
) -> None:
    session = sign_in(policy, "dev@example.com",
                      traits={"email": "dev@example.com", "groups": groups})

    response = await policy.client.get(
        "/team/board", headers={**policy.cookie(session.cookie_value), **API}
    )

    assert response.status == status


# --- The demo's rule: /admin/ needs role admin AND aal2 ---------------------------------------


async def test_admin_route_steps_up_an_admin_at_aal1(policy: Stack) -> None:
    session = sign_in(policy, "root@example.com", role="admin", aal="aal1")
    cookie = policy.cookie(session.cookie_value)

    browser = await policy.client.get("/admin/x?y=1", headers={**cookie, **BROWSER},
                                      allow_redirects=False)
    api = await policy.client.get("/admin/x", headers={**cookie, **API})

    assert browser.status == 303
    query = parse_qs(urlsplit(browser.headers["Location"]).query)
    assert query["aal"] == ["aal2"]
    assert query["return_to"] == [policy.origin + "/admin/x?y=1"]
    assert api.status == 403
    assert (await api.json())["error"]["id"] == "session_aal2_required"
    assert policy.upstream.seen == []


@pytest.mark.parametrize(
    ("role", "status"),
    [
        pytest.param("viewer", 403, id="aal2-non-admin"),
        pytest.param(None, 403, id="aal2-no-role"),
        pytest.param("admin", 200, id="aal2-admin"),
        pytest.param("ops", 200, id="aal2-ops"),
    ],
)
async def test_admin_route_at_aal2_admits_only_the_listed_roles(
    policy: Stack, role: str | None, status: int
) -> None:
    session = sign_in(policy, "someone@example.com", role=role, aal="aal2")

    response = await policy.client.get(
        "/admin/x", headers={**policy.cookie(session.cookie_value), **API}
    )

    assert response.status == status
    if status == 403:
        assert (await response.json())["error"]["id"] == "access_denied"
    else:
        assert policy.upstream.header("X-User-Email") == ["someone@example.com"]


# --- The cache keeps what require needs -------------------------------------------------------


async def test_cached_session_still_meets_require_within_ttl(policy: Stack) -> None:
    session = sign_in(policy, "root@example.com", role="admin")
    cookie = {**policy.cookie(session.cookie_value), **API}
    first = await policy.client.get("/staff/a", headers=cookie)
    assert first.status == 200
    policy.ory.deactivate_identity(session.identity_id)  # Ory would now say 401

    cached = await policy.client.get("/staff/b", headers=cookie)
    policy.clock.advance(policy.config.cache.ttl + 1)
    expired = await policy.client.get("/staff/c", headers=cookie)

    assert cached.status == 200  # decided on the cached copy, which kept the role
    assert expired.status == 401  # the change was real: past the ttl, Ory is asked again
    assert whoami_calls(policy) == 2


@pytest.mark.parametrize(
    ("role", "status"),
    [pytest.param("admin", 200, id="admin"), pytest.param("viewer", 403, id="viewer")],
)
async def test_session_cached_on_a_route_without_require_carries_the_required_fields(
    policy: Stack, role: str, status: int
) -> None:
    session = sign_in(policy, f"{role}@example.com", role=role)
    cookie = {**policy.cookie(session.cookie_value), **API}
    plain = await policy.client.get("/app/home", headers=cookie)
    assert plain.status == 200

    response = await policy.client.get("/staff/report", headers=cookie)

    assert response.status == status
    assert whoami_calls(policy) == 1


async def test_route_without_require_admits_a_session_lacking_the_fields(policy: Stack) -> None:
    session = sign_in(policy, "plain@example.com", traits={"username": "plain"})

    response = await policy.client.get(
        "/app/home", headers={**policy.cookie(session.cookie_value), **API}
    )

    assert response.status == 200
    assert policy.upstream.header("X-User-Email") == []
    assert policy.upstream.header("X-User-Id") == [session.identity_id]


# --- Host routes and per-route upstreams --------------------------------------------------------


@dataclass
class App:
    """A real upstream (tests/upstream_app.py) plus the client ports it was reached from: one
    port per connection, so reuse shows."""

    state: UpstreamState = field(default_factory=UpstreamState)
    ports: list[int] = field(default_factory=list)
    url: str = ""

    def build(self) -> web.Application:
        app = build_upstream(self.state)

        async def note_port(request: web.Request, response: web.StreamResponse) -> None:
            assert request.transport is not None
            self.ports.append(request.transport.get_extra_info("peername")[1])

        app.on_response_prepare.append(note_port)
        return app


@dataclass
class Hosts:
    """The gateway with apps A and B behind host routes; the stack's upstream is the default."""

    stack: Stack
    a: App
    b: App

    @property
    def default(self) -> UpstreamState:
        return self.stack.upstream

    def counts(self) -> tuple[int, int, int]:
        """Requests seen by (A, B, the default app)."""
        return len(self.a.state.seen), len(self.b.state.seen), len(self.default.seen)


async def start(aiohttp_server: AiohttpServer, app: App) -> App:
    server: TestServer = await aiohttp_server(app.build())
    app.url = str(server.make_url("")).rstrip("/")
    return app


def host_routes(a: str, b: str, dead: str) -> str:
    return f"""
[[routes]]
host = "a.test"
path = "/**"
access = "public"
upstream = "{a}"

[[routes]]
host = "B.Test"
path = "/**"
access = "public"
upstream = "{b}"

[[routes]]
host = "*.c.test"
path = "/**"
access = "public"
upstream = "{b}"

[[routes]]
path = "/down/**"
access = "public"
upstream = "{dead}"

[[routes]]
path = "/**"
access = "public"
"""


HostsFactory = Callable[..., Awaitable[Hosts]]


@pytest.fixture
async def hosts_factory(
    make_stack: StackFactory, aiohttp_server: AiohttpServer
) -> HostsFactory:
    """Apps A and B behind host routes, a route whose app is down, and the stack's own
    upstream as the default; `server` is TOML for [server]."""

    async def factory(server: str = "") -> Hosts:
        a = await start(aiohttp_server, App())
        b = await start(aiohttp_server, App())
        dead = f"http://127.0.0.1:{unused_port()}"
        stack = await make_stack(routes=host_routes(a.url, b.url, dead), server=server)
        return Hosts(stack, a, b)

    return factory


@pytest.fixture
async def hosts(hosts_factory: HostsFactory) -> Hosts:
    return await hosts_factory()


@pytest.mark.parametrize(
    ("host", "counts"),
    [
        pytest.param("a.test", (1, 0, 0), id="exact"),
        pytest.param("A.Test", (1, 0, 0), id="exact-any-case"),
        pytest.param("a.test:8080", (1, 0, 0), id="exact-with-port"),
        pytest.param("b.test", (0, 1, 0), id="second-host"),
        pytest.param("B.TEST:8080", (0, 1, 0), id="second-host-upper-case-with-port"),
        pytest.param("x.c.test", (0, 1, 0), id="wildcard-one-below"),
        pytest.param("y.x.c.test", (0, 1, 0), id="wildcard-deeper"),
        pytest.param("c.test", (0, 0, 1), id="wildcard-not-the-domain-itself"),
        pytest.param("xc.test", (0, 0, 1), id="wildcard-not-a-suffix-match"),
        pytest.param("a.test.evil", (0, 0, 1), id="exact-not-a-prefix-match"),
        pytest.param("sub.a.test", (0, 0, 1), id="exact-not-subdomains"),
    ],
)
async def test_host_route_sends_each_host_to_its_app(
    hosts: Hosts, host: str, counts: tuple[int, int, int]
) -> None:
    response = await hosts.stack.client.get("/page?x=1", headers={"Host": host})

    assert response.status == 200
    assert hosts.counts() == counts
    receivers = [app for app in (hosts.a.state, hosts.b.state, hosts.default) if app.seen]
    assert receivers[0].last().raw_path == "/page?x=1"


@pytest.mark.parametrize(
    ("server", "counts"),
    [
        pytest.param('trusted_proxies = ["127.0.0.1/32"]', (1, 0, 0), id="trusted-proxy"),
        pytest.param("", (0, 0, 1), id="untrusted-peer"),
        pytest.param('trusted_proxies = ["10.0.0.0/8"]', (0, 0, 1), id="other-proxy-trusted"),
    ],
)
async def test_forwarded_host_is_believed_only_from_a_trusted_proxy(
    hosts_factory: HostsFactory, server: str, counts: tuple[int, int, int]
) -> None:
    hosts = await hosts_factory(server)

    response = await hosts.stack.client.get(
        "/page", headers={"Host": "other.test", "X-Forwarded-Host": "a.test"}
    )

    assert response.status == 200
    assert hosts.counts() == counts


async def test_each_app_keeps_its_own_kept_alive_connection(hosts: Hosts) -> None:
    for _ in range(3):
        for host in ("a.test", "b.test", "elsewhere.test"):
            response = await hosts.stack.client.get("/page", headers={"Host": host})
            assert response.status == 200
            await response.read()

    assert hosts.counts() == (3, 3, 3)
    assert len(hosts.a.ports) == 3
    assert len(set(hosts.a.ports)) == 1, hosts.a.ports  # one connection, kept alive
    assert len(hosts.b.ports) == 3
    assert len(set(hosts.b.ports)) == 1, hosts.b.ports


async def test_websocket_upgrade_goes_to_the_host_routes_app(hosts: Hosts) -> None:
    async with hosts.stack.client.ws_connect(
        "/ws", headers={"Host": "b.test", "Origin": "http://b.test"}
    ) as ws:
        greeting = await ws.receive_str(timeout=5)

    assert greeting == "hello anonymous"
    assert [seen.method for seen in hosts.b.state.seen] == ["WS"]
    assert hosts.a.state.seen == []
    assert hosts.default.seen == []


async def test_per_route_upstream_down_is_502_for_that_route_only(hosts: Hosts) -> None:
    down = await hosts.stack.client.get("/down/x", headers=API)
    elsewhere = await hosts.stack.client.get("/up/x", headers=API)
    on_a = await hosts.stack.client.get("/down/x", headers={"Host": "a.test", **API})

    assert down.status == 502
    assert (await down.json())["error"]["id"] == "upstream_unavailable"
    assert elsewhere.status == 200
    assert on_a.status == 200  # the host route comes first in the file
    assert hosts.counts() == (1, 0, 1)
