"""Requests are tallied in plain numbers and handed to prometheus_client later
(gateway/observe.py): the scrape must read exactly what calling prometheus_client for each
request would have written. This also pins the prometheus_client internals the hand-over
uses (a histogram's `_buckets` and `_sum`): an upgrade that changes them fails here."""

from __future__ import annotations

import pytest

from gateway.observe import DURATION_BUCKETS, PrometheusMetrics
from gateway.outcome import Outcome

# On, between and past the bounds: the edges are where a bucket index goes wrong.
SECONDS = (0.0, 0.0005, 0.0004999, 0.00051, 0.003, 0.01, 0.0100001, 29.9, 30.0, 31.0, 1e9)


def outcome(route: str | None, decision: str, cache: str | None, upstream: float | None
            ) -> Outcome:
    record = Outcome("0123456789abcdef")
    record.route, record.decision, record.cache, record.upstream_s = (
        route, decision, cache, upstream
    )
    return record


REQUESTS = [
    (outcome("/", "allowed", "hit", seconds / 2), 200, seconds) for seconds in SECONDS
] + [
    (outcome(None, "login_redirect", None, None), 303, 0.002),
    (outcome("/api", "unauthenticated", "miss", None), 401, 0.004),
    (outcome("/", "allowed", "shared", 0.001), 502, 0.2),
]


def exposition_observed_one_by_one() -> bytes:
    """What prometheus_client itself writes for REQUESTS, observed as they come."""
    metrics = PrometheusMetrics()
    for record, status, seconds in REQUESTS:
        route = record.route or "default"
        metrics._requests.labels(route, record.decision, str(status)).inc()
        metrics._durations.labels(route, record.decision).observe(seconds)
        if record.cache is not None:
            metrics._lookup_children[record.cache].inc()
        if record.upstream_s is not None:
            metrics._upstream.observe(record.upstream_s)
    return metrics.exposition()[0]


@pytest.mark.parametrize("hand_overs", [1, 2, 3])
def test_tallied_requests_scrape_exactly_as_observed_ones(hand_overs: int) -> None:
    metrics = PrometheusMetrics()
    for index, (record, status, seconds) in enumerate(REQUESTS):
        metrics.request(record, status, seconds)
        if hand_overs > 1 and index % (len(REQUESTS) // hand_overs) == 0:
            metrics.refresh()  # the once-a-second hand-over, at any moment
    assert metrics.exposition()[0] == exposition_observed_one_by_one()


def test_a_scrape_shows_requests_made_just_before_it() -> None:
    metrics = PrometheusMetrics()
    metrics.request(outcome("/", "allowed", "hit", 0.001), 200, 0.002)
    body = metrics.exposition()[0].decode()
    assert 'gateway_requests_total{code="200",decision="allowed",route="/"} 1.0' in body
    assert 'gateway_session_cache_lookups_total{result="hit"} 1.0' in body


def test_the_plus_inf_bucket_is_the_one_past_the_last_bound() -> None:
    histogram = PrometheusMetrics()._upstream
    assert len(histogram._buckets) == len(DURATION_BUCKETS) + 1
    assert list(histogram._upper_bounds) == [*DURATION_BUCKETS, float("inf")]
