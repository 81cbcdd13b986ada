"""SIGHUP reloads a running `gateway serve` (docs/reference.md#reload), with one worker and
with two: what changes applies to the next request in every worker, what is invalid or
restart-only changes nothing it should not, and what is in flight is left alone."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import unused_port
from pytest_aiohttp import AiohttpServer

from gateway.standin import OryStandin
from tests.integration.live_gateway import LiveGateway, Upstream

WHOAMI = "GET /sessions/whoami"
API = {"Accept": "application/json"}
SPREAD = 20  # requests, each on a fresh connection: SO_REUSEPORT spreads them over workers
BOUND = 10.0  # seconds any one request may take


@dataclass(frozen=True)
class Settings:
    """The config file, one field per thing a test changes."""

    ory: str
    upstream: str
    listen: str
    metrics: str
    workers: int
    open_access: str = "public"
    ws_access: str = "public"
    mail_header: str = "X-User-Email"
    timeout: str = "30s"
    server_extra: str = ""
    ttl: str = "10m"
    max_connections: int = 256

    def render(self) -> str:
        return f"""
default_access = "authenticated"
[server]
listen = "{self.listen}"
workers = {self.workers}
{self.server_extra}
[metrics]
listen = "{self.metrics}"
[ory]
url = "{self.ory}"
max_connections = {self.max_connections}
[cache]
ttl = "{self.ttl}"
[upstream]
url = "{self.upstream}"
timeout = "{self.timeout}"
[identity_headers]
"X-User-Id" = "identity.id"
"{self.mail_header}" = "identity.traits.email"
[[routes]]
path = "/open/**"
access = "{self.open_access}"
[[routes]]
path = "/ws/**"
access = "{self.ws_access}"
[[routes]]
path = "/hang/**"
access = "public"
[[routes]]
path = "/stall/**"
access = "public"
[[routes]]
path = "/events/**"
access = "public"
"""


@dataclass
class Reloading:
    gateway: LiveGateway
    settings: Settings
    ory: OryStandin
    upstream: Upstream
    gateway_metrics: str  # where metrics are served (restart-only: never changes)

    async def apply(self, **changes: Any) -> None:
        """Rewrite the file with `changes`, SIGHUP, wait for every worker's reload."""
        self.settings = dataclasses.replace(self.settings, **changes)
        await self.gateway.reload(self.settings.render())

    async def get(self, path: str, headers: dict[str, str] | None = None
                  ) -> tuple[int, dict[str, Any]]:
        """One request on its own connection (so the kernel picks a worker afresh)."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            asyncio.timeout(BOUND),
            aiohttp.ClientSession(connector=connector) as http,
            http.get(self.gateway.origin + path, headers={**API, **(headers or {})}) as answer,
        ):
            if answer.status == 200 and answer.content_type == "application/json":
                return answer.status, await answer.json()
            return answer.status, {"text": await answer.text()}

    async def reloads(self, result: str) -> float:
        """gateway_config_reloads_total{result=...}, summed over the workers."""
        url = f"http://{self.gateway_metrics}/metrics"
        async with aiohttp.ClientSession() as http, asyncio.timeout(BOUND), http.get(url) as a:
            text = await a.text()
        found = re.search(rf'^gateway_config_reloads_total{{result="{result}"}} (\S+)$', text,
                          re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    async def statuses(self, path: str) -> list[int]:
        return [(await self.get(path))[0] for _ in range(SPREAD)]


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
async def stack(aiohttp_server: AiohttpServer, tmp_path: Path, workers: int
                ) -> AsyncIterator[Reloading]:
    ory = OryStandin()
    ory_server = await aiohttp_server(ory.build_app())
    upstream = Upstream()
    upstream_server = await aiohttp_server(upstream.app())
    settings = Settings(
        ory=str(ory_server.make_url("")).rstrip("/"),
        upstream=str(upstream_server.make_url("")).rstrip("/"),
        listen=f"127.0.0.1:{unused_port() if workers > 1 else 0}",  # workers: a fixed port
        metrics=f"127.0.0.1:{unused_port()}", workers=workers,
    )
    # every worker: the public listener and the metrics one
    async with LiveGateway(tmp_path, settings.render(), workers=workers,
                           listeners=2 * workers) as gateway:
        try:
            yield Reloading(gateway, settings, ory, upstream, settings.metrics)
        finally:
            upstream.release.set()
            upstream.closing.set()


async def test_a_route_changed_to_deny_applies_to_the_next_request(stack: Reloading) -> None:
    assert await stack.statuses("/open/x") == [200] * SPREAD
    await stack.apply(open_access="deny")
    assert await stack.statuses("/open/x") == [403] * SPREAD


async def test_a_renamed_identity_header_replaces_the_old_one_for_a_cached_session(
    stack: Reloading,
) -> None:
    identity = stack.ory.add_identity("mail@example.com", password="pw")
    cookie = {"Cookie": f"ory_kratos_session={stack.ory.create_session(identity).cookie_value}"}
    workers = stack.gateway.workers
    for _ in range(200):  # until every worker has asked Ory once: all of them cache it
        status, body = await stack.get("/app/x", cookie)
        assert status == 200
        assert body["headers"].get("x-user-email") == "mail@example.com"
        if stack.ory.calls[WHOAMI] >= workers:
            break
    assert stack.ory.calls[WHOAMI] == workers

    await stack.apply(mail_header="X-Mail")
    for _ in range(SPREAD):
        status, body = await stack.get("/app/x", cookie)
        assert status == 200
        assert body["headers"].get("x-mail") == "mail@example.com", body["headers"]
        assert "x-user-email" not in body["headers"], body["headers"]
    # the cache was emptied: every worker asked Ory again, once
    assert stack.ory.calls[WHOAMI] == 2 * workers


async def test_a_look_up_in_flight_during_the_reload_never_caches_the_old_header(
    stack: Reloading,
) -> None:
    """A whoami that was asked under the old [identity_headers] answers its own request
    (in flight: the old configuration) but is never stored for later ones."""
    identity = stack.ory.add_identity("race@example.com", password="pw")
    cookie = {"Cookie": f"ory_kratos_session={stack.ory.create_session(identity).cookie_value}"}
    stack.ory.faults.hang = True
    before = asyncio.create_task(stack.get("/app/before", cookie))
    async with asyncio.timeout(BOUND):
        await stack.ory.faults.wait_hanging(1)
    await stack.apply(mail_header="X-Mail")
    after = asyncio.create_task(stack.get("/app/after", cookie))
    async with asyncio.timeout(BOUND):
        await stack.ory.faults.wait_hanging(2)  # a look-up of its own, not the old one's
    stack.ory.faults.release()
    (status, old), (new_status, new) = await before, await after
    assert (status, new_status) == (200, 200)
    assert old["headers"].get("x-user-email") == "race@example.com", old["headers"]
    assert "x-mail" not in old["headers"], old["headers"]
    for headers in [new["headers"]] + [(await stack.get("/app/x", cookie))[1]["headers"]
                                       for _ in range(SPREAD)]:
        assert headers.get("x-mail") == "race@example.com", headers
        assert "x-user-email" not in headers, headers


async def test_an_invalid_file_changes_nothing_and_says_why(stack: Reloading) -> None:
    gateway = stack.gateway
    reloaded = gateway.count("config reloaded")
    bad = dataclasses.replace(stack.settings, open_access="deny", ttl="10 s",
                              server_extra='listn = "127.0.0.1:1"')
    failed = "config reload failed, nothing changed: "
    await gateway.reload(bad.render(), expect=failed + 'server.listn: unknown key')
    await gateway.wait_for(failed + "cache.ttl: ", gateway.workers)
    assert gateway.count("config reloaded") == reloaded
    assert await stack.statuses("/open/x") == [200] * SPREAD  # the deny was not applied
    assert await stack.reloads("failed") == gateway.workers

    await stack.apply(open_access="deny")  # and a valid file afterwards still is
    assert await stack.statuses("/open/x") == [403] * SPREAD
    assert await stack.reloads("ok") == gateway.workers


async def test_restart_only_keys_are_reported_and_the_old_listeners_keep_serving(
    stack: Reloading,
) -> None:
    gateway = stack.gateway
    old_metrics = stack.settings.metrics
    new_listen, new_metrics = f"127.0.0.1:{unused_port()}", f"127.0.0.1:{unused_port()}"
    await stack.apply(listen=new_listen, metrics=new_metrics, workers=gateway.workers + 1,
                      max_connections=8, open_access="deny")
    for key in ("server.listen", "server.workers", "metrics.listen", "ory.max_connections"):
        reported = [line for line in gateway.lines if key in line and "restart" in line]
        assert len(reported) == gateway.workers, gateway.log()
    assert gateway.count("listening on") == gateway.listeners  # nothing new was started
    # the old public listener serves, under the rest of the new file
    assert await stack.statuses("/open/x") == [403] * SPREAD
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(BOUND), http.get(f"http://{old_metrics}/metrics") as answer:
            assert answer.status == 200
        for where in (new_listen, new_metrics):  # nothing was bound to the new addresses
            with pytest.raises(aiohttp.ClientConnectionError):
                async with asyncio.timeout(BOUND), http.get(f"http://{where}/"):
                    pass


async def test_an_upstream_timeout_change_applies_to_the_next_request(
    stack: Reloading,
) -> None:
    await stack.apply(timeout="200ms")  # was 30 s: /stall never answers
    statuses = await asyncio.gather(*(stack.get(f"/stall/{n}") for n in range(6)))
    assert [status for status, _ in statuses] == [504] * 6


async def test_a_request_in_flight_finishes_under_the_old_configuration(
    stack: Reloading,
) -> None:
    in_flight = asyncio.create_task(stack.get("/hang/x"))
    async with asyncio.timeout(BOUND):
        await stack.upstream.entered.wait()
    await stack.apply(timeout="100ms", open_access="deny")
    # A request that waits out the new timeout: the one in flight has now been waiting
    # longer than that since its worker reloaded (no sleep needed to know it).
    assert (await stack.get("/stall/x"))[0] == 504
    assert not in_flight.done()
    stack.upstream.release.set()
    assert await in_flight == (200, {"text": "released"})


async def test_an_open_websocket_keeps_working_after_a_reload(stack: Reloading) -> None:
    url = stack.gateway.origin + "/ws/chat"
    async with aiohttp.ClientSession() as http, asyncio.timeout(BOUND):
        async with http.ws_connect(url) as ws:
            await ws.send_str("before")
            assert await ws.receive_str() == "echo:before"
            await stack.apply(ws_access="deny")
            await ws.send_str("after")
            assert await ws.receive_str() == "echo:after"
            await ws.close()
            assert ws.close_code == 1000
        # a new upgrade is a new request: it gets the new rule
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url)
        assert refused.value.status == 403


async def test_a_stream_that_started_before_a_reload_runs_to_its_end(stack: Reloading) -> None:
    async with (
        aiohttp.ClientSession() as http, asyncio.timeout(BOUND),
        http.get(stack.gateway.origin + "/events/x") as answer,
    ):
        assert answer.status == 200
        assert await answer.content.readline() == b"data: one\n"
        await stack.apply(timeout="100ms", open_access="deny")
        assert (await stack.get("/stall/x"))[0] == 504  # the new timeout has run out
        stack.upstream.release.set()
        assert await answer.content.read() == b"\ndata: two\n\n"
