"""Prometheus metrics behind a few methods (docs/reference.md#metrics).

The rest of the gateway calls `Metrics` methods and never imports prometheus_client: with
`metrics.listen` unset they are no-ops (`Metrics`), with it set `PrometheusMetrics` counts.
A request is tallied in plain numbers and handed to prometheus_client once a second and
before every scrape (`refresh`), so it costs a dictionary look-up and a few increments.
With `server.workers > 1` the values live in prometheus_client's multiprocess files (the
directory `cli.py` names before forking), and any worker's scrape shows the sum of all,
up to a second behind.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import Counter as CounterType
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from gateway.outcome import Outcome

# Seconds; finer than prometheus_client's defaults at the low end, where a gateway lives.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable


class Metrics:
    """The interface, doing nothing: what runs when metrics are off."""

    def request(self, outcome: Outcome, status: int, seconds: float) -> None:
        """One finished request (the access log's moment)."""

    def ory_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        """One call to Ory: `endpoint` whoami|sessions|revoke|logout, `outcome`
        ok|unauthorized|forbidden|rate_limited|error|timeout|unreachable."""

    def revocation(self, source: str, count: int = 1) -> None:
        """Sessions evicted: `source` logout|revoke|hook|fleet."""

    def connection_opened(self, kind: str) -> None:
        """A long-lived connection began: `kind` websocket|stream."""

    def connection_closed(self, kind: str) -> None:
        """... and ended."""

    def config_reload(self, result: str) -> None:
        """A SIGHUP was handled: `result` ok|failed."""

    def fleet_connected(self, connected: bool) -> None:
        """Whether this replica reaches the fleet's Redis."""

    def watch_cache(self, size: Callable[[], int]) -> None:
        """Where the session cache's size can be read at scrape time."""

    def exposition(self) -> tuple[bytes, str]:
        """The scrape: (body, content type)."""
        return b"", "text/plain"


NO_METRICS = Metrics()


class Tally:
    """Observations of one histogram series since the last hand-over: a count per bucket of
    DURATION_BUCKETS (and one past the last, +Inf) and their sum."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1  # the first bound >= it
        self.count += 1
        self.total += seconds

    def into(self, histogram: Any) -> None:
        """Add to a prometheus_client histogram (or labelled child) what `observe` would
        have, one call per bucket. prometheus_client internals: `_buckets` (one value per
        bound, not cumulative) and `_sum`; tests/unit/test_metrics_tally.py pins them."""
        for index, count in enumerate(self.buckets):
            if count:
                histogram._buckets[index].inc(count)
        histogram._sum.inc(self.total)


class PrometheusMetrics(Metrics):
    """The metrics of docs/reference.md#metrics in prometheus_client."""

    def __init__(self, *, multiprocess: bool = False, fleet: bool = False) -> None:
        """`multiprocess`: the workers share prometheus_client's multiprocess directory
        (its environment variable set before the first import, by cli.py)."""
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series next to every counter
        self._multiprocess = multiprocess
        self.registry = CollectorRegistry(auto_describe=True)
        # What each worker writes is registered nowhere in multiprocess mode: the scrape
        # reads every worker's files instead.
        own = None if self._multiprocess else self.registry
        self._requests = Counter(
            "gateway_requests_total", "Requests by route, decision and status code.",
            ("route", "decision", "code"), registry=own,
        )
        self._durations = Histogram(
            "gateway_request_duration_seconds", "Time from request to the end of the answer.",
            ("route", "decision"), buckets=DURATION_BUCKETS, registry=own,
        )
        self._upstream = Histogram(
            "gateway_upstream_duration_seconds", "Time to the app's answer head.",
            buckets=DURATION_BUCKETS, registry=own,
        )
        self._ory = Counter(
            "gateway_ory_requests_total", "Calls to Ory by endpoint and outcome.",
            ("endpoint", "outcome"), registry=own,
        )
        self._ory_durations = Histogram(
            "gateway_ory_duration_seconds", "Time Ory took to answer.", ("endpoint",),
            buckets=DURATION_BUCKETS, registry=own,
        )
        self._lookups = Counter(
            "gateway_session_cache_lookups_total", "Session look-ups by where they ended.",
            ("result",), registry=own,
        )
        self._entries = Gauge(
            "gateway_session_cache_entries", "Sessions in the cache.", registry=own,
            multiprocess_mode="livesum",
        )
        self._revocations = Counter(
            "gateway_revocations_total", "Sessions evicted, by source.", ("source",),
            registry=own,
        )
        self._open = Gauge(
            "gateway_open_connections", "Long-lived connections open now.", ("kind",),
            registry=own, multiprocess_mode="livesum",
        )
        self._reloads = Counter(
            "gateway_config_reloads_total", "Configuration reloads (SIGHUP).", ("result",),
            registry=own,
        )
        self._fleet = (
            Gauge("gateway_fleet_connected", "1 while the fleet's Redis is reachable.",
                  registry=own, multiprocess_mode="livemin")
            if fleet else None
        )
        self._cache_size: Callable[[], int] | None = None
        self._children: dict[tuple[Any, ...], Any] = {}
        self._tallies: dict[tuple[str, str, int], Tally] = {}
        self._upstream_tally = Tally()
        self._lookup_tally: CounterType[str] = CounterType()
        # Every result shows, at 0, from the first scrape.
        self._lookup_children = {
            result: self._lookups.labels(result)
            for result in ("hit", "miss", "coalesced", "shared", "stale")
        }
        for result in ("ok", "failed"):
            self._reloads.labels(result)

    def request(self, outcome: Outcome, status: int, seconds: float) -> None:
        """Tallied in plain numbers (about a tenth of prometheus_client's own calls, which
        take locks and check their arguments on every one), handed over by `refresh`."""
        key = (outcome.route or "default", outcome.decision, status)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = Tally()
        tally.add(seconds)
        if outcome.cache is not None:
            self._lookup_tally[outcome.cache] += 1
        if outcome.upstream_s is not None:
            self._upstream_tally.add(outcome.upstream_s)

    def ory_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        self._ory.labels(endpoint, outcome).inc()
        self._ory_durations.labels(endpoint).observe(seconds)

    def revocation(self, source: str, count: int = 1) -> None:
        self._revocations.labels(source).inc(count)

    def connection_opened(self, kind: str) -> None:
        self._open.labels(kind).inc()

    def connection_closed(self, kind: str) -> None:
        self._open.labels(kind).dec()

    def config_reload(self, result: str) -> None:
        self._reloads.labels(result).inc()

    def fleet_connected(self, connected: bool) -> None:
        if self._fleet is not None:
            self._fleet.set(1 if connected else 0)

    def watch_cache(self, size: Callable[[], int]) -> None:
        self._cache_size = size
        if not self._multiprocess:
            self._entries.set_function(size)

    def refresh(self) -> None:
        """The requests tallied since the last call handed to prometheus_client, and values
        only this worker can read written where every worker's scrape sees them
        (multiprocess mode has no callbacks): called every second and before a scrape."""
        self._hand_over()
        if self._multiprocess and self._cache_size is not None:
            self._entries.set(self._cache_size())

    def _hand_over(self) -> None:
        tallies, self._tallies = self._tallies, {}
        for (route, decision, status), tally in tallies.items():
            children = self._children.get((route, decision, status))
            if children is None:
                children = self._children[(route, decision, status)] = (
                    self._requests.labels(route, decision, str(status)),
                    self._durations.labels(route, decision),
                )
            children[0].inc(tally.count)
            tally.into(children[1])
        for result, count in self._lookup_tally.items():
            self._lookup_children[result].inc(count)
        self._lookup_tally.clear()
        if self._upstream_tally.count:
            upstream, self._upstream_tally = self._upstream_tally, Tally()
            upstream.into(self._upstream)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self.refresh()
        registry = self.registry
        if self._multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def metrics_app(metrics: Metrics) -> web.Application:
    """`GET /metrics` (and nothing else) for the `metrics.listen` listener."""

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


@asynccontextmanager
async def refreshing(metrics: Metrics, every: float = 1.0) -> AsyncIterator[None]:
    """Keep the values only this worker can read fresh for every worker's scrape."""
    if not isinstance(metrics, PrometheusMetrics):
        yield
        return

    async def tick() -> None:
        while True:
            await asyncio.sleep(every)
            metrics.refresh()

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        metrics.refresh()  # the last second's tallies, for a scrape of the files after us
