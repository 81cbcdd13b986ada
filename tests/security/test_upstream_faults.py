"""Faults at the upstream: refusing, resetting, closing early, answering garbage, slow.

Before the answer starts the client gets 502 / 504 JSON
(docs/reference.md#bodies-and-websockets); once it has started the
gateway must cut the client's connection rather than pretend the body was complete (STYLE
habit 5). Each leaves no gateway task or connection behind, and the next request works.
integration/test_streaming.py covers a closed port (502) and a hanging handler (504).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.security.conftest import API, Gate, GateFactory
from tests.security.leaks import assert_nothing_left
from tests.security.raw_upstream import PROMISED, RawUpstream


@pytest.fixture
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream()
    yield upstream
    upstream.release.set()
    await upstream.stop()


@pytest.fixture
async def gate(raw_upstream: RawUpstream, make_gate: GateFactory) -> Gate:
    port = await raw_upstream.start()
    return await make_gate(f"http://127.0.0.1:{port}", upstream='timeout = "300ms"')


async def assert_recovers(gate: Gate, cookie: str) -> None:
    response = await gate.http.get(gate.url("/admin/ok"), headers=gate.cookie(cookie))
    assert response.status == 200
    assert await response.read() == b"ok"
    await assert_nothing_left(gate.services)


BEFORE_THE_ANSWER = [
    pytest.param("close-before-answer", 502, "upstream_unavailable", id="closes-early"),
    pytest.param("reset-before-answer", 502, "upstream_unavailable", id="resets"),
    pytest.param("garbage", 502, "upstream_unavailable", id="not-http"),
    pytest.param("slow-head", 504, "upstream_timeout", id="slower-than-timeout"),
]


@pytest.mark.parametrize(("behaviour", "status", "error_id"), BEFORE_THE_ANSWER)
async def test_upstream_failing_before_answer_is_502_or_504_and_recovers(
    gate: Gate, raw_upstream: RawUpstream, behaviour: str, status: int, error_id: str
) -> None:
    cookie = gate.login()
    async with asyncio.timeout(5):
        response = await gate.http.get(
            gate.url(f"/admin/{behaviour}"), headers={**gate.cookie(cookie), **API}
        )
    assert response.status == status
    assert (await response.json())["error"]["id"] == error_id
    raw_upstream.release.set()
    await assert_nothing_left(gate.services)
    await assert_recovers(gate, cookie)


MID_BODY = [
    pytest.param("reset-mid-body", id="resets-mid-body"),
    pytest.param("close-mid-body", id="closes-mid-body"),
    pytest.param("chunked-cut", id="chunked-body-cut"),
]


@pytest.mark.parametrize("behaviour", MID_BODY)
async def test_upstream_breaking_off_mid_body_cuts_the_client_off(
    gate: Gate, raw_upstream: RawUpstream, behaviour: str
) -> None:
    cookie = gate.login()
    received: list[int] = []

    async def read_all(response: aiohttp.ClientResponse) -> None:
        async for chunk in response.content.iter_any():
            received.append(len(chunk))

    async with asyncio.timeout(5):
        response = await gate.http.get(gate.url(f"/admin/{behaviour}"), headers=gate.cookie(cookie))
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_all(response)
    assert sum(received) < PROMISED
    await assert_nothing_left(gate.services)
    await assert_recovers(gate, cookie)


async def test_slow_upstream_body_streams_as_it_comes(
    gate: Gate, raw_upstream: RawUpstream
) -> None:
    cookie = gate.login()
    async with asyncio.timeout(5):
        response = await gate.http.get(gate.url("/admin/trickle"), headers=gate.cookie(cookie))
        assert await response.content.readexactly(5) == b"first"
        assert "Content-Type" not in response.headers  # streamed untyped stays untyped
        assert not raw_upstream.release.is_set()  # the rest has not been sent yet
        raw_upstream.release.set()
        assert await response.read() == b"last"
    await assert_nothing_left(gate.services)


async def test_upstream_refusing_is_502_and_recovers_when_it_listens_again(
    gate: Gate, raw_upstream: RawUpstream
) -> None:
    cookie = gate.login()
    port = int(gate.config.upstream.url.rsplit(":", 1)[1])
    await raw_upstream.stop()
    for _ in range(3):
        response = await gate.http.get(
            gate.url("/admin/ok"), headers={**gate.cookie(cookie), **API}
        )
        assert response.status == 502
    await assert_nothing_left(gate.services)
    await raw_upstream.start(port)
    await assert_recovers(gate, cookie)


async def test_answer_without_content_type_is_not_given_one(gate: Gate) -> None:
    """Transparency: a browser sniffs an untyped body; `application/octet-stream` (which
    aiohttp adds by default) would turn the same page into a download."""
    cookie = gate.login()
    async with asyncio.timeout(5):
        response = await gate.http.get(gate.url("/admin/ok"), headers=gate.cookie(cookie))
        assert await response.read() == b"ok"
    assert response.status == 200
    assert "Content-Type" not in response.headers
