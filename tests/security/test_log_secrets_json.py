"""`server.log_format = "json"` (docs/reference.md#logs-and-metrics), from a real `gateway
serve` process: every stderr line is one JSON object, access lines carry exactly the
documented fields and decisions, no line holds a cookie value, a token, a query string or an
email (one request per decision, credentials in cookies, headers and queries), and a
traceback is a field."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer

from tests.rawhttp import raw_request
from tests.security.conftest import API, BROWSER, ROUTES_UNDER_ATTACK
from tests.security.process_stack import ProcessStack, gateway_process
from tests.upstream_app import UpstreamState, build_upstream

JSON_LOGS = 'log_format = "json"'
CREDENTIALS = 'credentials = ["cookie", "session_token", "bearer"]'
HEAD = {"time", "level", "logger", "message"}
ACCESS_FIELDS = {
    "request_id", "method", "path", "route", "decision", "status", "bytes", "duration_ms",
    "upstream_ms", "cache", "identity_id", "peer",
}
CACHE_VALUES = {"hit", "miss", "coalesced", "shared", "stale", None}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
FORGED = "ory_st_forged_forged_forged_forged"


@pytest.fixture
async def stack(aiohttp_server: AiohttpServer) -> AsyncIterator[ProcessStack]:
    async with gateway_process(
        aiohttp_server, build_upstream(UpstreamState()), server=JSON_LOGS, ory=CREDENTIALS,
        ory_timeout="500ms", routes=ROUTES_UNDER_ATTACK,
    ) as running:
        yield running


@dataclass
class Sent:
    """One request and what its access line must say."""

    path: str  # without the query
    status: int
    decision: str
    route: str | None
    identity_id: str | None = None  # the user whose valid session the request carried
    anonymous: bool = False  # no credential: identity_id must be null
    request_id: str = ""
    body_size: int = -1  # bytes of the answer's body as the client got it


@dataclass
class Drive:
    sent: list[Sent]
    secrets: list[str]  # cookie values, tokens, emails
    queries: list[str]  # every query string sent


async def drive(stack: ProcessStack) -> Drive:
    """One request per decision; returns what was sent and what must never be logged."""
    ory, base = stack.ory, stack.gateway.origin
    who = ory.add_identity("json-logs@example.com", password="pw")
    session = ory.create_session(who)
    old = ory.create_session(ory.add_identity("old-login@example.com", password="pw"),
                             authenticated_at=time.time() - 3600)
    down_cookie, down_token = stack.login("ory-down@example.com")
    secrets = [session.cookie_value, session.token, old.cookie_value, old.token, down_cookie,
               down_token, FORGED, "json-logs@example.com", "old-login@example.com",
               "ory-down@example.com"]
    cookie = {"Cookie": f"ory_kratos_session={session.cookie_value}"}
    q_token, q_email = f"token={session.token}", f"email={quote('json-logs@example.com')}"
    q_plain = "marker=visible-query-7f3a"
    calls: list[tuple[str, dict[str, str], Sent]] = [
        (f"/public/x?{q_token}", cookie, Sent("/public/x", 200, "public", "/public/**")),
        (f"/admin/x?{q_email}", {**cookie, **API},
         Sent("/admin/x", 200, "allowed", "/admin/**", identity_id=who)),
        ("/admin/y", {"X-Session-Token": session.token},
         Sent("/admin/y", 200, "allowed", "/admin/**", identity_id=who)),
        ("/admin/z", {"Authorization": f"Bearer {session.token}"},
         Sent("/admin/z", 200, "allowed", "/admin/**", identity_id=who)),
        (f"/maybe/x?{q_plain}", {}, Sent("/maybe/x", 200, "anonymous", "/maybe/**",
                                         anonymous=True)),
        (f"/admin/x?session={session.cookie_value}", BROWSER,
         Sent("/admin/x", 303, "login_redirect", "/admin/**", anonymous=True)),
        ("/admin/x", {"X-Session-Token": FORGED, **API},
         Sent("/admin/x", 401, "unauthenticated", "/admin/**")),
        ("/stepup/x", {**cookie, **API},
         Sent("/stepup/x", 403, "step_up", "/stepup/**", identity_id=who)),
        ("/recent/x", {"Cookie": f"ory_kratos_session={old.cookie_value}", **API},
         Sent("/recent/x", 403, "reauthenticate", "/recent/**", identity_id=old.identity_id)),
        # ("/forbidden/x", ..., Sent("/forbidden/x", 403, "forbidden", ...)): routes have no
        # `require` yet (docs/reference.md#logs-and-metrics lists the decision already).
        (f"/internal/x?{q_token}", cookie, Sent("/internal/x", 403, "denied", "/internal/**")),
        ("/_auth/whoami", cookie, Sent("/_auth/whoami", 200, "endpoint", "auth",
                                       identity_id=who)),
    ]
    sent: list[Sent] = []
    async with asyncio.timeout(30), aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        for target, headers, expected in calls:
            async with http.get(base + target, headers=headers,
                                allow_redirects=False) as response:
                expected.body_size = len(await response.read())
            assert response.status == expected.status, (target, response.status)
            expected.request_id = response.headers["X-Request-Id"]
            sent.append(expected)
        ory.faults.whoami_status = 503
        async with http.get(base + "/admin/x", headers={
            "Cookie": f"ory_kratos_session={down_cookie}", **API,
        }) as response:
            assert response.status == 503
            sent.append(Sent("/admin/x", 503, "ory_unavailable", "/admin/**",
                             request_id=response.headers["X-Request-Id"],
                             body_size=len(await response.read())))
        ory.faults.reset()
    bad = await raw_request(stack.gateway.port, (
        f"GET /public/%2e%2e/x?{q_token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: ory_kratos_session={session.cookie_value}\r\nConnection: close\r\n\r\n"
    ).encode())
    assert bad.status == 400
    sent.append(Sent("/public/%2e%2e/x", 400, "bad_request", None,
                     request_id=bad.header("X-Request-Id") or "", body_size=len(bad.body)))
    # Ory refuses a return_to on a host it does not know: a warning line.
    back = quote(f"/after?{q_token}", safe="")
    refused = await raw_request(stack.gateway.port, (
        f"GET /_auth/logout?return_to={back} HTTP/1.1\r\nHost: elsewhere.example\r\n"
        f"Cookie: ory_kratos_session={down_cookie}\r\nConnection: close\r\n\r\n").encode())
    assert refused.status == 303
    sent.append(Sent("/_auth/logout", 303, "endpoint", "auth",
                     request_id=refused.header("X-Request-Id") or "",
                     body_size=len(refused.body)))
    return Drive(sent, secrets, [q_token, q_email, q_plain, back])


async def logged(stack: ProcessStack) -> tuple[Drive, list[str]]:
    """Drive, stop the gateway (its access lines are flushed on the way out), its lines."""
    driven = await drive(stack)
    assert await stack.gateway.stop() == 0
    return driven, [line.rstrip("\n") for line in stack.gateway.lines]


def documents(lines: list[str]) -> list[dict[str, Any]]:
    """Every line as one JSON object (fails naming the first line that is not)."""
    parsed = []
    for line in lines:
        try:
            document = json.loads(line)
        except ValueError:
            raise AssertionError(f"not one JSON object: {line!r}") from None
        assert isinstance(document, dict), line
        parsed.append(document)
    return parsed


def access_lines(driven: Drive, lines: list[str]) -> list[tuple[Sent, dict[str, Any]]]:
    by_id = {d["request_id"]: d for d in documents(lines) if d.get("logger") == "gateway.access"}
    return [(sent, by_id[sent.request_id]) for sent in driven.sent]


async def test_every_line_is_one_json_object_with_time_level_logger_message(
    stack: ProcessStack,
) -> None:
    _, lines = await logged(stack)
    parsed = documents(lines)
    missing = [(d.get("logger"), sorted(HEAD - d.keys())) for d in parsed if HEAD - d.keys()]
    assert missing == [], missing[:3]
    assert all(RFC3339_UTC.fullmatch(d["time"]) for d in parsed), [d["time"] for d in parsed]
    assert {d["level"] for d in parsed} <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


async def test_start_up_warning_and_access_lines_are_json_when_log_format_is_json(
    stack: ProcessStack,
) -> None:
    """The parts of the previous test that hold: each kind of line is there, as JSON."""
    driven, lines = await logged(stack)
    parsed = documents(lines)
    assert all({"time", "level", "logger"} <= d.keys() for d in parsed)
    assert any("listening on http://127.0.0.1:" in d.get("message", "") for d in parsed)
    warnings = [d for d in parsed if d["level"] == "WARNING"]
    assert warnings, "the refused return_to logged no warning"
    assert all(isinstance(d.get("message"), str) for d in warnings)
    assert sum(d["logger"] == "gateway.access" for d in parsed) == len(driven.sent)


async def test_access_lines_have_exactly_the_documented_fields_when_log_format_is_json(
    stack: ProcessStack,
) -> None:
    driven, lines = await logged(stack)
    access = [d for d in documents(lines) if d.get("logger") == "gateway.access"]
    assert len({d["request_id"] for d in access}) == len(access) == len(driven.sent), access
    for sent, line in access_lines(driven, lines):
        assert line.keys() - {"message"} == ACCESS_FIELDS | {"time", "level", "logger"}, line
        assert line["level"] == "INFO"
        assert (line["method"], line["path"], line["status"]) == ("GET", sent.path,
                                                                 sent.status), line
        assert (line["decision"], line["route"]) == (sent.decision, sent.route), line
        assert isinstance(line["bytes"], int), line
        assert isinstance(line["duration_ms"], int | float), line
        assert line["duration_ms"] >= 0, line
        proxied = sent.decision in ("public", "allowed", "anonymous")
        assert isinstance(line["upstream_ms"], int | float) if proxied \
            else line["upstream_ms"] is None, line
        assert line["cache"] in CACHE_VALUES, line
        if sent.decision == "public" or sent.anonymous:
            assert line["cache"] is None, line
        if sent.decision == "allowed":
            assert line["identity_id"] == sent.identity_id, line
        if sent.identity_id is None:
            assert line["identity_id"] is None, line
        assert line["peer"] == "127.0.0.1", line
    assert {d["cache"] for d in access} >= {"hit", "miss"}


async def test_no_line_holds_a_secret_query_or_email_when_log_format_is_json(
    stack: ProcessStack,
) -> None:
    driven, lines = await logged(stack)
    assert sum('"gateway.access"' in line for line in lines) == len(driven.sent)
    leaks = [line for line in lines if any(s in line for s in driven.secrets)]
    assert leaks == []
    queries = [line for line in lines if any(q in line for q in driven.queries)]
    assert queries == []
    assert [line for line in lines if "@" in line] == []


async def test_access_line_bytes_is_the_body_size_when_log_format_is_json(
    stack: ProcessStack,
) -> None:
    driven, lines = await logged(stack)
    wrong = [(sent.decision, sent.status, sent.body_size, line["bytes"])
             for sent, line in access_lines(driven, lines) if line["bytes"] != sent.body_size]
    assert wrong == []


@pytest.mark.parametrize(
    "decision",
    [
        pytest.param("allowed", id="allowed"),
        pytest.param("step_up", id="step-up-of-a-known-session"),
        pytest.param("reauthenticate", id="reauthenticate-a-known-session"),
        pytest.param("endpoint", id="endpoint-whoami"),
    ],
)
async def test_access_line_names_the_session_looked_up_when(
    stack: ProcessStack, decision: str
) -> None:
    """`identity_id`: the user's id, null only without a session; `cache`: null only when no
    session was looked up."""
    driven, lines = await logged(stack)
    lines_of = [(sent, line) for sent, line in access_lines(driven, lines)
                if sent.decision == decision and sent.identity_id is not None]
    assert lines_of
    for sent, line in lines_of:
        assert (line["identity_id"], line["cache"] is not None) == (sent.identity_id, True), line


ERROR_PAGE = """{% extends "base.html" %}{% block content %}
{% if status == 403 %}{{ dict(a=1).pop("missing-" ~ request_id) }}{% endif %}
<p>{{ status }} {{ title }}</p>{% endblock %}
"""


async def test_an_error_with_a_traceback_is_one_json_line_with_a_traceback_field(
    aiohttp_server: AiohttpServer, tmp_path: Path,
) -> None:
    """A page template that fails only on a 403 (`gateway check` renders a 401): the deny
    page raises KeyError('missing-<request id>') inside the gateway, a 500 and a log line."""
    (tmp_path / "error.html").write_text(ERROR_PAGE, encoding="utf-8")
    async with gateway_process(
        aiohttp_server, build_upstream(UpstreamState()), routes=ROUTES_UNDER_ATTACK,
        server=f'{JSON_LOGS}\ntemplates_dir = "{tmp_path}"',
    ) as stack, aiohttp.ClientSession() as http, http.get(
        stack.gateway.origin + "/internal/x", headers=BROWSER
    ) as response:
        assert response.status == 500
        request_id = response.headers["X-Request-Id"]
        assert (await response.json())["error"]["id"] == "internal_error"
    await stack.gateway.stop()
    parsed = documents([line.rstrip("\n") for line in stack.gateway.lines])
    errors = [d for d in parsed if "traceback" in d]
    assert len(errors) == 1, parsed
    error = errors[0]
    assert error["level"] == "ERROR"
    assert error.keys() >= HEAD, error
    trace = error["traceback"]
    assert trace.startswith("Traceback (most recent call last):\n")
    assert trace.rstrip().endswith("KeyError"), trace
    assert 'File "' in trace
    assert request_id not in trace  # the exception's message, KeyError('missing-<id>')
    assert request_id not in error["message"]
