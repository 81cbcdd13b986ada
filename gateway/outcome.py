"""One record per request, filled as the request goes and read once at its end by the access
log and the metrics (docs/reference.md#logs-and-metrics).

The pipeline notes what it decided here instead of threading counters through every module:
which route matched, what was decided and why, whether the session came from the cache, who
the user is (their id, never an email), and how long the app took.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import time

from aiohttp import web

# What a request's `decision` can be (docs/reference.md#logs-and-metrics).
DECISIONS = (
    "public", "allowed", "anonymous", "login_redirect", "unauthenticated", "step_up",
    "reauthenticate", "forbidden", "denied", "ory_unavailable", "bad_request", "endpoint",
)
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class Outcome:
    """What happened to one request; `route` is the matching route's pattern ("auth" for the
    gateway's own endpoints, None for the default access), `cache` one of "hit", "miss",
    "coalesced", "shared", "stale" or None when no session was looked up."""

    __slots__ = (
        "body_bytes", "cache", "checked", "decision", "identity_id", "request_id", "route",
        "started", "upstream_s",
    )

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.started = time.monotonic()
        self.route: str | None = None
        self.decision = "bad_request"  # until the pipeline knows better
        self.cache: str | None = None
        self.identity_id: str | None = None
        self.upstream_s: float | None = None  # time to the app's answer head
        self.body_bytes: int | None = None  # a streamed answer's body, as relayed
        # A forward-auth check: the request it decided about (method, loggable path).
        self.checked: tuple[str, str] | None = None


OUTCOME = web.RequestKey("outcome", Outcome)


_IDS = random.Random(secrets.randbits(128))  # noqa: S311 - ids correlate, guard nothing
os.register_at_fork(after_in_child=lambda: _IDS.seed(secrets.randbits(128)))


def new_request_id() -> str:
    """A fresh id: 16 random hex digits (a seeded PRNG: the system's random source costs
    a system call per request, and an id needs to be unique, not secret)."""
    return f"{_IDS.getrandbits(64):016x}"


def request_id_from(value: str | None, trusted: bool) -> str:
    """A trusted proxy's well-formed id is kept; anything else gets a fresh one (never
    echoed: a hostile id could split a header or a log line)."""
    if trusted and value is not None and _WELL_FORMED_ID.fullmatch(value):
        return value
    return new_request_id()


def outcome_of(request: web.BaseRequest) -> Outcome:
    """The request's record (one is made for requests the gateway never saw whole)."""
    outcome = request.get(OUTCOME)
    if outcome is None:
        outcome = request[OUTCOME] = Outcome(new_request_id())
    return outcome
