"""A stand-in on a real in-process server, a fake clock, and a signed-up user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from gateway.standin import OryStandin, StandinSession

APP_URL = "http://127.0.0.1:4180"
COOKIE = "ory_kratos_session"
NO_CACHE = "private, no-cache, no-store, must-revalidate"

Client = TestClient[web.Request, web.Application]


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class User:
    identity_id: str
    email: str
    password: str


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ory(clock: FakeClock) -> OryStandin:
    return OryStandin(allowed_return_urls=(APP_URL,), clock=clock)


MakeClient = Callable[[OryStandin], Awaitable[Client]]


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient) -> MakeClient:
    """A client for a differently configured stand-in; no cookie jar, so every test says
    which credential it sends."""

    async def make(standin: OryStandin) -> Client:
        return await aiohttp_client(standin.build_app(), cookie_jar=DummyCookieJar())

    return make


@pytest.fixture
async def client(make_client: MakeClient, ory: OryStandin) -> Client:
    return await make_client(ory)


@pytest.fixture
def base_url(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


@pytest.fixture
def alice(ory: OryStandin) -> User:
    identity_id = ory.add_identity("alice@example.com", password="alice-password")
    return User(identity_id, "alice@example.com", "alice-password")


@pytest.fixture
def carol(ory: OryStandin) -> User:
    """Has a second factor set up, so `highest_available` wants aal2 from her."""
    identity_id = ory.add_identity(
        "carol@example.com", password="carol-password", has_second_factor=True
    )
    return User(identity_id, "carol@example.com", "carol-password")


def cookie_header(session: StandinSession) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={session.cookie_value}"}


def token_header(session: StandinSession) -> dict[str, str]:
    return {"X-Session-Token": session.token}
