"""The short form of `bench/soak.py`: 100 users over 50 connections for 5 s through a gateway
process, Ory failing 0.25 s in every 2 s. Zero answers naming another user, zero 5xx outside
the injected faults, zero strangers let in, and an RSS that has stopped growing (issue 4.4)."""

from __future__ import annotations

from bench.soak import SoakOptions, run_soak


async def test_short_soak_loses_nothing_and_lets_no_one_in() -> None:
    report = await run_soak(SoakOptions(users=100, connections=50, seconds=5.0))
    summary = report.render()
    assert report.identity_mismatches == 0, summary
    assert report.unexpected_5xx == 0, summary
    assert report.wrong_answers == 0, summary
    assert report.transport_errors == 0, summary
    assert report.total >= 1000, summary
    for kind in ("page", "upload", "sse", "websocket", "page (stranger)"):
        assert report.requests.get(kind, 0) > 0, summary
    assert report.injected_503 > 0, summary  # the faults did bite, and only as 503s
    assert report.rss_plateaued, summary
