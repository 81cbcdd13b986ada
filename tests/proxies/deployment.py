"""One forward-auth deployment as the README describes it: a proxy in front, the gateway
answering its questions, the app behind it, Ory beside them.

The Ory stand-in, the app (tests/upstream_app.py, which records what it receives) and the
gateway are real aiohttp servers in the test's event loop, each on a socket bound to a port
the kernel chose; nginx or Caddy runs as a subprocess. The gateway's configuration is the
README's, with its addresses replaced, plus the routes below.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.app import build_app
from gateway.config import load_config
from gateway.relay.server import GatewayRunner
from gateway.standin import OryStandin, StandinSession
from tests.proxies.front_proxies import (
    HOST,
    README_GATEWAY,
    ProxyProcess,
    free_port,
    start_proxy,
)
from tests.proxies.readme import snippet, substitute
from tests.upstream_app import Seen, UpstreamState, build_upstream

PROXIES = ("nginx", "caddy")
COOKIE = "ory_kratos_session"
PASSWORD = "correct horse battery staple"
REQUEST_WITHIN = 10.0  # seconds for any one answer
OPEN_HOST = "open.example.com"  # the host whose /internal/ is public (a host route)

# Every access level, a host route, a method route and both kinds of requirement
# (docs/reference.md#who-may-enter); anything else needs a session (default_access).
ROUTES = f"""
[[routes]]
host = "{OPEN_HOST}"
path = "/internal/**"
access = "public"

[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/readonly/**"
methods = ["GET"]
access = "public"

[[routes]]
path = "/maybe/**"
access = "optional"

[[routes]]
path = "/internal/**"
access = "deny"

[[routes]]
path = "/admin/**"
aal = "aal2"
[routes.require]
"identity.metadata_public.role" = "admin"

[[routes]]
path = "/billing/**"
[routes.require]
"identity.traits.plan" = "pro"
"""

# What a browser sends when the user follows a link or types a URL.
NAVIGATION = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
}
API = {"Accept": "application/json"}

Headers = Iterable[tuple[str, str]] | dict[str, str]


def gateway_toml(*, gateway_port: int, origin: str, ory_url: str) -> str:
    """The README's gateway configuration on our addresses, plus ROUTES."""
    readme = substitute(
        snippet("gateway", "toml"),
        {f'listen = "{README_GATEWAY}"': f'listen = "{HOST}:{gateway_port}"',
         'public_url = "https://app.example.com"': f'public_url = "{origin}"',
         'url = "https://auth.example.com"': f'url = "{ory_url}"'},
        what="gateway",
    )
    return readme + ROUTES


@dataclass(frozen=True, slots=True)
class User:
    """An identity in the stand-in that can sign in with PASSWORD."""

    identity_id: str
    email: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What a client got back."""

    status: int
    headers: CIMultiDictProxy[str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def error_id(self) -> str | None:
        """The `error.id` of Ory's envelope, or None when this is no such JSON."""
        try:
            return str(self.json()["error"]["id"])
        except (ValueError, KeyError, TypeError):
            return None

    def __str__(self) -> str:
        return f"{self.status} {dict(self.headers)} {self.text[:600]!r}"


@dataclass
class Deployment:
    """The running pieces, and what a test needs to talk to them."""

    kind: str  # "nginx" or "caddy"
    proxy: ProxyProcess
    gateway_port: int
    app_port: int
    ory_url: str
    ory: OryStandin
    app: UpstreamState
    http: aiohttp.ClientSession

    @property
    def origin(self) -> str:
        """What users see: the proxy."""
        return self.proxy.origin

    @property
    def gateway(self) -> str:
        """The gateway's own origin, as the proxy reaches it."""
        return f"http://{HOST}:{self.gateway_port}"

    async def request(
        self, method: str, target: str, headers: Headers = (), *, base: str | None = None,
        http: aiohttp.ClientSession | None = None,
    ) -> Answer:
        """One request, sent as written (no redirects followed, no cookie jar); `target` is
        a path on the proxy, or on `base`, or an absolute URL."""
        url = target if "://" in target else (base or self.origin) + target
        client = http or self.http
        async with client.request(
            method, URL(url, encoded=True), headers=CIMultiDict(headers), allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=REQUEST_WITHIN),
        ) as response:
            return Answer(response.status, response.headers, await response.text())

    def sign_up(self, name: str, *, role: str | None = None, plan: str | None = None,
                second_factor: bool = False) -> User:
        """A new identity with a unique email (tests share one stand-in per module)."""
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        traits: dict[str, Any] = {"email": email}
        if plan is not None:
            traits["plan"] = plan
        identity_id = self.ory.add_identity(
            email, password=PASSWORD, has_second_factor=second_factor, traits=traits,
            metadata_public={"role": role} if role is not None else None,
        )
        return User(identity_id, email)

    def session(self, user: User, aal: str = "aal1") -> StandinSession:
        return self.ory.create_session(user.identity_id, aal=aal)

    def received(self, path: str) -> list[Seen]:
        """The requests the app got for `path` (query ignored)."""
        return [seen for seen in self.app.seen if seen.raw_path.split("?", 1)[0] == path]


def cookie(session: StandinSession) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={session.cookie_value}"}


def token(session: StandinSession) -> dict[str, str]:
    return {"X-Session-Token": session.token}


def unique(prefix: str) -> str:
    """A path nobody else asks for, so that what the app received is this test's alone."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def header_values(seen: Seen, name: str) -> list[str]:
    """Every value the app received under `name`, in any case, `_` or `-` (the spellings a
    framework may read as one header: docs/reference.md#identity-header-stripping)."""
    wanted = name.lower().replace("_", "-")
    return [value for key, value in seen.headers if key.lower().replace("_", "-") == wanted]


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


@asynccontextmanager
async def serving(app: web.Application, sock: socket.socket | None = None, *,
                  gateway: bool = False) -> AsyncIterator[int]:
    """`app` served on `sock` (default: a fresh one); yields the port."""
    sock = sock or bound_socket()
    port = int(sock.getsockname()[1])
    runner: web.AppRunner = (GatewayRunner(app, shutdown_timeout=2.0) if gateway
                             else web.AppRunner(app, shutdown_timeout=2.0))
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield port
    finally:
        await runner.cleanup()


@asynccontextmanager
async def deploy(kind: str, directory: Path) -> AsyncIterator[Deployment]:
    """Everything up, in dependency order; down in reverse, the proxy first."""
    async with AsyncExitStack() as stack:
        ory = OryStandin(required_aal="aal1")  # aal1 passes until a route asks for aal2
        ory_port = await stack.enter_async_context(serving(ory.build_app()))
        ory_url = f"http://{HOST}:{ory_port}"
        app = UpstreamState()
        app_port = await stack.enter_async_context(serving(build_upstream(app)))
        gateway_socket = bound_socket()
        stack.callback(gateway_socket.close)  # the runner closes it too; twice is harmless
        gateway_port = int(gateway_socket.getsockname()[1])
        proxy_port = free_port()
        origin = f"http://{HOST}:{proxy_port}"
        config = load_config(
            gateway_toml(gateway_port=gateway_port, origin=origin, ory_url=ory_url), {}
        )
        await stack.enter_async_context(
            serving(await build_app(config), gateway_socket, gateway=True)
        )
        ory.allow_return_to(origin)
        proxy = start_proxy(kind, directory, port=proxy_port, gateway_port=gateway_port,
                            app_port=app_port)
        stack.callback(proxy.stop)
        await proxy.wait_listening()
        http = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        )
        yield Deployment(kind, proxy, gateway_port, app_port, ory_url, ory, app, http)
