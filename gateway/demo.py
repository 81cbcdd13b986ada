"""`gateway demo`: the Ory stand-in, a sample legacy app and the gateway, offline, one command.

Everything listens on 127.0.0.1; cookies are not port-scoped, so the stand-in's session
cookie (set on :4433) reaches the gateway (on :4180) as it would on a shared domain.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.app import build_app
from gateway.cli import Stopper, start_site
from gateway.config import GatewayConfig, load_config
from gateway.sampleapp import build_sample_app
from gateway.standin import OryStandin

HOST = "127.0.0.1"
ORY_PORT = 4433
APP_PORT = 3000
GATEWAY_PORT = 4180
GATEWAY_URL = f"http://{HOST}:{GATEWAY_PORT}"

DEMO_USERS = (
    ("alice@example.com", "alice-password", True),  # has a second factor: code 123456
    ("bob@example.com", "bob-password", False),
)

DEMO_CONFIG = f"""
[server]
listen = "{HOST}:{GATEWAY_PORT}"
public_url = "{GATEWAY_URL}"

[ory]
url = "http://{HOST}:{ORY_PORT}"

[upstream]
url = "http://{HOST}:{APP_PORT}"

[[routes]]
path = "/public/**"
access = "optional"

[[routes]]
path = "/admin/**"
access = "authenticated"
aal = "aal2"
"""


def demo_config() -> GatewayConfig:
    """The gateway's config for the demo (ports above)."""
    return load_config(DEMO_CONFIG, {})


def demo_standin() -> OryStandin:
    """The stand-in with the demo users; `aal1` lets aal1 sessions in until a route asks more."""
    hint = "Demo users: " + ", ".join(f"{e} / {p}" for e, p, _ in DEMO_USERS)
    standin = OryStandin(
        allowed_return_urls=(GATEWAY_URL,),
        required_aal="aal1",
        login_hint=hint + ". Second factor for alice: 123456.",
        default_return_url=GATEWAY_URL + "/",
    )
    for email, password, second_factor in DEMO_USERS:
        standin.add_identity(email, password=password, has_second_factor=second_factor)
    return standin


async def run_demo() -> Stopper:
    """Start all three; return the function that stops them in reverse order."""
    runners: list[web.AppRunner] = []
    try:
        runners.append(await start_site(demo_standin().build_app(), HOST, ORY_PORT, "ory-standin"))
        runners.append(await start_site(build_sample_app(), HOST, APP_PORT, "sample-app"))
        runners.append(await start_site(build_app(demo_config()), HOST, GATEWAY_PORT, "gateway"))
    except OSError:
        for runner in reversed(runners):
            await runner.cleanup()
        raise
    _announce()

    async def stop() -> None:
        for runner in reversed(runners):
            await runner.cleanup()

    return stop


def _announce() -> None:
    lines = [
        "",
        f"  Open {GATEWAY_URL}/ in a browser.",
        "",
        "  Sign in as one of:",
        *(f"    {email:<20} password {password}" + ("  (second factor: 123456)" if tfa else "")
          for email, password, tfa in DEMO_USERS),
        "",
        f"  Try: {GATEWAY_URL}/public/ (no login needed), {GATEWAY_URL}/admin/ (second factor),",
        f"       {GATEWAY_URL}/events (server-sent events), {GATEWAY_URL}/ws (WebSocket),",
        f"       {GATEWAY_URL}/_auth/whoami, {GATEWAY_URL}/_auth/logout",
        "",
        "  Stand-in Ory on :4433, sample app on :3000 (use it through the gateway).",
        "  Ctrl-C stops all three.",
        "",
    ]
    print("\n".join(lines), flush=True)
    logging.getLogger("gateway.demo").info("demo ready at %s", GATEWAY_URL)
