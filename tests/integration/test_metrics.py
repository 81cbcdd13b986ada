"""Prometheus metrics (docs/reference.md#metrics): exact counts for requests with known
outcomes, a scrape promtool accepts, and two workers' counts summed by any scrape."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpServer

from gateway.app import build_app
from gateway.config import load_config
from gateway.observe import PrometheusMetrics, metrics_app
from gateway.standin import OryStandin
from tests.conftest import ROUTES, FakeClock, GatewayTestServer
from tests.rawhttp import get, raw_request
from tests.security.process_stack import gateway_process
from tests.upstream_app import UpstreamState, build_upstream

API = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}
Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def series(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """`name`'s non-zero samples keyed by the values of `keys`."""
    found: dict[tuple[str, ...], float] = {}
    for (sample, labels), value in samples.items():
        if sample == name and value:
            by_name = dict(labels)
            found[tuple(by_name[k] for k in keys)] = value
    return found


async def scrape(url: str) -> tuple[str, str]:
    """(body, content type) of one GET /metrics."""
    async with asyncio.timeout(10), aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.text(), response.headers["Content-Type"]


async def scrape_until(url: str, requests: int, *, within: float = 15.0) -> Samples:
    """Scrape until gateway_requests_total sums to `requests` (the access log, and so the
    count, follows the answer by a moment); fails after `within` seconds."""
    samples: Samples = {}
    try:
        async with asyncio.timeout(within):
            while True:
                samples = parse((await scrape(url))[0])
                if sum(series(samples, "gateway_requests_total", "route", "decision",
                              "code").values()) >= requests:
                    return samples
                await asyncio.sleep(0.02)  # between polls
    except TimeoutError:
        counted = series(samples, "gateway_requests_total", "route", "decision", "code")
        raise AssertionError(f"{requests} requests never all counted: {counted}") from None


@dataclass
class Metered:
    ory: OryStandin
    ory_server: TestServer
    client: TestClient[web.Request, web.Application]
    metrics_url: str

    async def get(self, path: str, headers: dict[str, str]) -> int:
        async with asyncio.timeout(10):
            response = await self.client.get(path, headers=headers, allow_redirects=False)
            await response.read()
        return response.status

    def login(self, email: str) -> dict[str, str]:
        identity = self.ory.add_identity(email, password="pw")
        return {"Cookie": f"ory_kratos_session={self.ory.create_session(identity).cookie_value}"}


MeteredFactory = Callable[..., Awaitable[Metered]]


@pytest.fixture
async def metered(
    aiohttp_server: AiohttpServer,
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    clock: FakeClock,
) -> AsyncIterator[MeteredFactory]:
    """The in-process stack of tests/conftest.py with PrometheusMetrics given to build_app
    and /metrics served from them."""
    standins: list[OryStandin] = []

    async def factory(ory: str = "") -> Metered:
        standin = OryStandin(clock=clock)
        standins.append(standin)
        ory_server = await aiohttp_server(standin.build_app())
        upstream = await aiohttp_server(build_upstream(UpstreamState()))
        config = load_config(f"""
[ory]
url = "{str(ory_server.make_url("")).rstrip("/")}"
{ory}
[upstream]
url = "{str(upstream.make_url("")).rstrip("/")}"
{ROUTES}""", {})
        metrics = PrometheusMetrics()
        app = await build_app(config, clock=clock, metrics=metrics)
        client = await aiohttp_client(GatewayTestServer(app))
        scrapes = await aiohttp_server(metrics_app(metrics))
        return Metered(standin, ory_server, client, str(scrapes.make_url("/metrics")))

    yield factory
    for standin in standins:
        standin.faults.release()  # no whoami left hanging


async def test_counts_are_exact_for_requests_with_known_outcomes(
    metered: MeteredFactory,
) -> None:
    stack = await metered()
    user = stack.login("metrics@example.com")
    statuses = [await stack.get("/app/x", {**user, **API}) for _ in range(8)]  # miss, 7 hits
    statuses += [await stack.get("/app/page", BROWSER) for _ in range(2)]
    statuses.append(await stack.get("/internal/x", API))
    statuses.append(await stack.get("/public/x", API))
    stack.ory.faults.whoami_status = 503
    statuses.append(await stack.get("/app/y", {**stack.login("down@example.com"), **API}))
    port = stack.client.port or 0  # refused before routing: by the path check, by the parser
    statuses.append((await raw_request(port, get("/a/../b"))).status)
    statuses.append((await raw_request(port, b"GARBAGE\x01 nonsense\r\n\r\n")).status)
    assert statuses == [200] * 8 + [303, 303, 403, 200, 503, 400, 400]

    samples = await scrape_until(stack.metrics_url, len(statuses))
    assert series(samples, "gateway_requests_total", "route", "decision", "code") == {
        ("default", "allowed", "200"): 8,
        ("default", "login_redirect", "303"): 2,
        ("/internal/**", "denied", "403"): 1,
        ("/public/**", "public", "200"): 1,
        ("default", "ory_unavailable", "503"): 1,
        ("default", "bad_request", "400"): 2,
    }
    assert series(samples, "gateway_request_duration_seconds_count", "route", "decision") == {
        ("default", "allowed"): 8,
        ("default", "login_redirect"): 2,
        ("/internal/**", "denied"): 1,
        ("/public/**", "public"): 1,
        ("default", "ory_unavailable"): 1,
        ("default", "bad_request"): 2,
    }
    assert series(samples, "gateway_request_duration_seconds_bucket", "route", "decision",
                  "le")[("default", "allowed", "+Inf")] == 8
    assert series(samples, "gateway_upstream_duration_seconds_count") == {(): 9}
    assert series(samples, "gateway_session_cache_lookups_total", "result") == {
        ("hit",): 7, ("miss",): 2,
    }
    for result in ("hit", "miss", "coalesced", "shared", "stale"):  # every result shows
        assert ("gateway_session_cache_lookups_total",
                frozenset({("result", result)})) in samples
    assert series(samples, "gateway_ory_requests_total", "endpoint", "outcome") == {
        ("whoami", "ok"): 1, ("whoami", "error"): 1,
    }
    assert series(samples, "gateway_ory_duration_seconds_count", "endpoint") == {("whoami",): 2}
    assert series(samples, "gateway_session_cache_entries") == {(): 1}
    # label values come from the configuration, never from a request
    values = {value for _, labels in samples for _, value in labels}
    assert not [v for v in values if v.startswith(("/app", "/_auth"))], values


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        pytest.param("none", "ok", id="ok"),
        pytest.param("forged", "unauthorized", id="unauthorized"),
        pytest.param("second-factor", "forbidden", id="forbidden"),
        pytest.param("429", "rate_limited", id="rate-limited"),
        pytest.param("500", "error", id="error"),
        pytest.param("hang", "timeout", id="timeout"),
        pytest.param("down", "unreachable", id="unreachable"),
    ],
)
async def test_ory_call_outcome_is_counted_when(
    metered: MeteredFactory, fault: str, outcome: str
) -> None:
    stack = await metered(ory='timeout = "300ms"')
    identity = stack.ory.add_identity("o@example.com", password="pw",
                                      has_second_factor=fault == "second-factor")
    cookie = stack.ory.create_session(identity).cookie_value
    if fault == "forged":
        cookie = "forged-cookie-value"
    elif fault in ("429", "500"):
        stack.ory.faults.whoami_status = int(fault)
    elif fault == "hang":
        stack.ory.faults.hang = True
    elif fault == "down":
        await stack.ory_server.close()
    await stack.get("/app/x", {"Cookie": f"ory_kratos_session={cookie}", **API})
    samples = await scrape_until(stack.metrics_url, 1)
    assert series(samples, "gateway_ory_requests_total", "endpoint", "outcome") == {
        ("whoami", outcome): 1,
    }


async def test_cache_lookups_are_counted_when_an_endpoint_looks_the_session_up(
    metered: MeteredFactory,
) -> None:
    stack = await metered()
    user = stack.login("whoami@example.com")
    assert [await stack.get("/_auth/whoami", {**user, **API}) for _ in range(3)] == [200] * 3
    samples = await scrape_until(stack.metrics_url, 3)
    assert series(samples, "gateway_ory_requests_total", "endpoint", "outcome") == {
        ("whoami", "ok"): 1,
    }
    assert series(samples, "gateway_session_cache_lookups_total", "result") == {
        ("miss",): 1, ("hit",): 2,
    }


async def promtool_check(text: str) -> tuple[int, str]:
    promtool = shutil.which("promtool")
    assert promtool is not None
    process = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(30):
        output, _ = await process.communicate(text.encode())
    assert process.returncode is not None
    return process.returncode, output.decode().strip()


needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian: prometheus)"
)


@needs_promtool
async def test_promtool_accepts_the_scrape_of_a_running_gateway(
    metered: MeteredFactory,
) -> None:
    stack = await metered()
    user = stack.login("lint@example.com")
    for path, headers in [("/app/x", {**user, **API}), ("/app/x", {**user, **API}),
                          ("/app/x", BROWSER), ("/internal/x", API), ("/public/x", API),
                          ("/_auth/whoami", {**user, **API})]:
        await stack.get(path, headers)
    await scrape_until(stack.metrics_url, 6)
    text, content_type = await scrape(stack.metrics_url)
    assert content_type.split(";")[0] == "text/plain"  # Prometheus text exposition
    assert await promtool_check(text) == (0, "")


# --- two workers, one scrape ------------------------------------------------------------------


WHOAMI = "GET /sessions/whoami"
ATTEMPTS = 200  # fresh connections until both workers have served (SO_REUSEPORT)


async def _get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """One request on a connection of its own, so the kernel picks a worker afresh."""
    async with asyncio.timeout(10), aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True)
    ) as http, http.get(url, headers=headers) as response:
        return response.status, await response.text()


async def test_scrape_sums_both_workers_and_is_not_on_the_public_listener(
    aiohttp_server: AiohttpServer,
) -> None:
    metrics_port = unused_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    async with gateway_process(  # several workers need fixed ports
        aiohttp_server, build_upstream(UpstreamState()), listen=f"127.0.0.1:{unused_port()}",
        cache_ttl="10m", server="workers = 2",
        routes=f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n',
    ) as stack:
        origin = stack.gateway.origin
        status, body = await _get(origin + "/metrics", API)  # the public listener
        assert status == 401
        assert "gateway_requests_total" not in body
        cookie, _ = stack.login("workers@example.com")
        user = {"Cookie": f"ory_kratos_session={cookie}", **API}
        made = 1
        while stack.ory.calls[WHOAMI] < 2:  # each worker asks Ory once: both have served
            assert made <= ATTEMPTS, "the kernel never picked the second worker"
            assert (await _get(origin + "/page", user))[0] == 200
            made += 1
        for _ in range(10):
            assert (await _get(origin + "/page", user))[0] == 200
        made += 10

        samples = await scrape_until(metrics_url, made)
        assert series(samples, "gateway_requests_total", "route", "decision", "code") == {
            ("default", "allowed", "200"): made - 1,
            ("default", "unauthenticated", "401"): 1,
        }
        assert series(samples, "gateway_ory_requests_total", "endpoint", "outcome") == {
            ("whoami", "ok"): 2,
        }
        assert series(samples, "gateway_session_cache_lookups_total", "result") == {
            ("miss",): 2, ("hit",): made - 3,
        }
        assert series(samples, "gateway_upstream_duration_seconds_count") == {(): made - 1}
        if shutil.which("promtool") is not None:  # the multiprocess exposition too
            assert await promtool_check((await scrape(metrics_url))[0]) == (0, "")
