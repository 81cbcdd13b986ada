"""The demo's legacy app: what it shows must be true, or the demo proves nothing."""

import asyncio
import re
from datetime import datetime

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from gateway.sampleapp import MAX_TICKS, build_sample_app

WAIT = 5.0  # seconds: an upper bound on any single wait, never a synchronisation sleep
EVENT = re.compile(r"id: (\d+)\ndata: tick (\d+) (\S+)\n\n")

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    """The app with no pause between ticks, so whole streams finish at once."""
    return await aiohttp_client(build_sample_app(tick_interval=0))


async def fetch_text(client: Client, path: str, headers: dict[str, str] | None = None) -> str:
    async with asyncio.timeout(WAIT):
        response = await client.get(path, headers=headers)
        assert response.status == 200
        return await response.text()


def parse_event(raw: str) -> tuple[int, int, datetime]:
    """(id, tick number, time) of one server-sent event, or an assertion error."""
    match = EVENT.fullmatch(raw)
    assert match, raw
    return int(match[1]), int(match[2]), datetime.fromisoformat(match[3])


# --- identity and headers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {"X-User-Email": "ada@example.com", "X-User-Id": "id-1"},
            ["<strong>ada@example.com</strong>", "<code>id-1</code>"],
            id="ascii",
        ),
        pytest.param(
            {"X-User-Email": "j%C3%B6rg%40example.com", "X-User-Id": "%E7%94%A8%E6%88%B7"},
            ["<strong>jörg@example.com</strong>", "<code>用户</code>"],
            id="percent-encoded-utf8",
        ),
        pytest.param(
            {"X-User-Email": "<b>x</b>@example.com"},
            ["<strong>&lt;b&gt;x&lt;/b&gt;@example.com</strong>"],
            id="html-escaped",
        ),
        pytest.param({}, ["This app thinks you are <strong>anonymous</strong>"], id="absent"),
    ],
)
async def test_identity_is_shown_decoded_from_headers(
    client: Client, headers: dict[str, str], expected: list[str]
) -> None:
    text = await fetch_text(client, "/", headers)
    for fragment in expected:
        assert fragment in text


async def test_header_table_escapes_html_when_value_is_markup(client: Client) -> None:
    text = await fetch_text(client, "/", {"X-Probe": "<script>alert(1)</script>"})
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in text
    assert "<script>alert(1)" not in text


async def test_set_cookie_is_sent_twice_on_index(client: Client) -> None:
    async with asyncio.timeout(WAIT):
        response = await client.get("/")
    cookies = response.headers.getall("Set-Cookie")
    assert len(cookies) == 2
    assert cookies[0].startswith("legacy_pref=1;")
    assert cookies[1].startswith("legacy_theme=light;")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"X-User-Email": "ada@example.com"}, "<strong>signed in</strong> as", id="in"),
        pytest.param({}, "<strong>not signed in</strong>", id="out"),
    ],
)
async def test_public_page_says_who_when_signed_in_or_not(
    client: Client, headers: dict[str, str], expected: str
) -> None:
    assert expected in await fetch_text(client, "/public/", headers)


async def test_pages_have_distinct_titles_and_shared_nav(client: Client) -> None:
    titles = set()
    for path in ("/", "/public/", "/admin/", "/events", "/ws"):
        text = await fetch_text(client, path)
        title = re.search(r"<title>(.*?)</title>", text)
        assert title, path
        titles.add(title[1])
        assert '<meta name="viewport"' in text
        assert '<header class="topbar"><nav aria-label="Legacy app">' in text
        assert f'<a href="{path}" aria-current="page">' in text
    assert len(titles) == 5


# --- server-sent events ---------------------------------------------------------------------


async def test_first_event_arrives_when_stream_is_far_from_finished(
    aiohttp_client: AiohttpClient,
) -> None:
    # An hour between ticks: only an unbuffered first write can reach the client in time.
    client = await aiohttp_client(build_sample_app(tick_interval=3600))
    async with asyncio.timeout(WAIT):
        response = await client.get("/events/stream")
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        first = await response.content.readuntil(b"\n\n")
    assert parse_event(first.decode())[:2] == (1, 1)
    response.close()


async def test_stream_sends_count_events_then_ends(client: Client) -> None:
    async with asyncio.timeout(WAIT):
        response = await client.get("/events/stream", params={"count": "3"})
        first = await response.content.readuntil(b"\n\n")
        rest = await response.text()
    assert parse_event(first.decode())[:2] == (1, 1)
    events = [parse_event(raw + "\n\n") for raw in rest.split("\n\n") if raw]
    assert [(event_id, tick) for event_id, tick, _ in events] == [(2, 2), (3, 3)]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        pytest.param("1", 1, id="one"),
        pytest.param("0", 1, id="zero-is-raised-to-one"),
        pytest.param(str(MAX_TICKS + 1), MAX_TICKS, id="too-many-is-capped"),
    ],
)
async def test_stream_length_follows_count_within_bounds(
    client: Client, count: str, expected: int
) -> None:
    async with asyncio.timeout(WAIT):
        response = await client.get("/events/stream", params={"count": count})
        body = await response.text()
    assert body.count("data: tick ") == expected


async def test_stream_refuses_count_when_not_a_number(client: Client) -> None:
    async with asyncio.timeout(WAIT):
        response = await client.get("/events/stream", params={"count": "many"})
    assert response.status == 400


async def test_stream_resumes_after_last_event_id_when_reconnecting(client: Client) -> None:
    async with asyncio.timeout(WAIT):
        response = await client.get(
            "/events/stream", params={"count": "2"}, headers={"Last-Event-ID": "41"}
        )
        body = await response.text()
    assert re.findall(r"^id: (\d+)$", body, re.MULTILINE) == ["42", "43"]


# --- WebSocket ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "greeting"),
    [
        pytest.param({"X-User-Email": "ada@example.com"}, "hello ada@example.com", id="email"),
        pytest.param(
            {"X-User-Email": "j%C3%B6rg%40example.com"}, "hello jörg@example.com", id="utf8"
        ),
        pytest.param({}, "hello anonymous", id="anonymous"),
    ],
)
async def test_websocket_greets_with_identity_from_upgrade_headers(
    client: Client, headers: dict[str, str], greeting: str
) -> None:
    async with asyncio.timeout(WAIT), client.ws_connect("/ws/echo", headers=headers) as ws:
        assert await ws.receive_str() == greeting


async def test_websocket_echoes_text_and_binary_when_connected(client: Client) -> None:
    async with asyncio.timeout(WAIT), client.ws_connect("/ws/echo") as ws:
        await ws.receive_str()  # the greeting
        await ws.send_str("héllo ✓")
        assert await ws.receive_str() == "echo: héllo ✓"
        await ws.send_bytes(b"\x00\xffbytes")
        assert await ws.receive_bytes() == b"\x00\xffbytes"


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        pytest.param(1000, 1000, id="normal"),
        pytest.param(1001, 1001, id="going-away"),
        pytest.param(4001, 4001, id="application"),
    ],
)
async def test_websocket_close_answers_with_client_code(
    client: Client, sent: int, expected: int
) -> None:
    async with asyncio.timeout(WAIT):
        ws = await client.ws_connect("/ws/echo")
        await ws.receive_str()
        await ws.close(code=sent)
        message = await ws.receive()
    assert message.type is WSMsgType.CLOSED
    assert ws.close_code == expected
