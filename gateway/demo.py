"""`gateway demo`: the Ory stand-in, a sample legacy app and the gateway, offline, one command.

Everything listens on 127.0.0.1; cookies are not port-scoped, so the stand-in's session
cookie (set on :4433) reaches the gateway (on :4180) as it would on a shared domain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from gateway.app import build_app
from gateway.config import GatewayConfig, load_config
from gateway.sampleapp import build_sample_app
from gateway.server import Stopper, start_site
from gateway.standin import OryStandin

HOST = "127.0.0.1"

DEMO_USERS = (
    ("alice@example.com", "alice-password", True),  # has a second factor: code 123456
    ("bob@example.com", "bob-password", False),
)
DEMO_ROLES = {"alice@example.com": "admin"}  # identity.metadata_public.role
SECOND_FACTOR_CODE = "123456"


@dataclass(frozen=True, slots=True)
class DemoPorts:
    """Where the three pieces listen (tests use free ports instead of these)."""

    gateway: int = 4180
    ory: int = 4433
    app: int = 3000

    def url(self, port: int) -> str:
        return f"http://{HOST}:{port}"


def demo_config(ports: DemoPorts) -> GatewayConfig:
    """The gateway's config for the demo: sample app behind it, stand-in beside it."""
    return load_config(
        f"""
[server]
listen = "{HOST}:{ports.gateway}"
public_url = "{ports.url(ports.gateway)}"

[ory]
url = "{ports.url(ports.ory)}"

[upstream]
url = "{ports.url(ports.app)}"

[[routes]]
path = "/public/**"
access = "optional"

[[routes]]
path = "/admin/**"
access = "authenticated"
aal = "aal2"
[routes.require]
"identity.metadata_public.role" = "admin"
""",
        {},
    )


def demo_standin(ports: DemoPorts) -> OryStandin:
    """The stand-in with the demo users; `aal1` lets aal1 sessions in until a route asks more."""
    gateway = ports.url(ports.gateway)
    hint = "Demo users: " + ", ".join(f"{e} / {p}" for e, p, _ in DEMO_USERS)
    standin = OryStandin(
        allowed_return_urls=(gateway,),
        required_aal="aal1",
        login_hint=f"{hint}. Second factor for alice: {SECOND_FACTOR_CODE}.",
        default_return_url=gateway + "/",
    )
    for email, password, second_factor in DEMO_USERS:
        role = DEMO_ROLES.get(email)
        standin.add_identity(email, password=password, has_second_factor=second_factor,
                             metadata_public={"role": role} if role else None)
    return standin


async def run_demo(ports: DemoPorts | None = None) -> Stopper:
    """Start all three; return the function that stops them in reverse order."""
    ports = ports or DemoPorts()
    apps = (
        (demo_standin(ports).build_app(), ports.ory, "ory-standin"),
        (build_sample_app(), ports.app, "sample-app"),
        (await build_app(demo_config(ports)), ports.gateway, "gateway"),
    )
    runners: list[web.AppRunner] = []
    try:
        for app, port, name in apps:
            runners.append(await start_site(app, HOST, port, name))
    except OSError:
        for runner in reversed(runners):
            await runner.cleanup()
        raise
    _announce(ports)

    async def stop() -> None:
        for runner in reversed(runners):
            await runner.cleanup()

    return stop


def _announce(ports: DemoPorts) -> None:
    url = ports.url(ports.gateway)
    users = [
        f"    {email:<20} password {password}"
        + (f"  (second factor: {SECOND_FACTOR_CODE})" if tfa else "")
        for email, password, tfa in DEMO_USERS
    ]
    lines = [
        "",
        f"  Open {url}/ in a browser.",
        "",
        "  Sign in as one of:",
        *users,
        "",
        f"  Try: {url}/public/ (no login needed), {url}/admin/ (alice only: admin role"
        " and second factor),",
        f"       {url}/events (server-sent events), {url}/ws (WebSocket),",
        f"       {url}/_auth/sessions, {url}/_auth/whoami, {url}/_auth/logout",
        "",
        f"  Stand-in Ory on :{ports.ory}, sample app on :{ports.app} (use it through the gateway).",
        "  Ctrl-C stops all three.",
        "",
    ]
    print("\n".join(lines), flush=True)
    logging.getLogger("gateway.demo").info("demo ready at %s", url)
