"""Load without loss: many users through a real gateway process, counting what went wrong.

    python bench/soak.py --users 1000 --connections 200 --seconds 60

Starts the Ory stand-in and an upstream that echoes the identity headers in this process,
and the gateway as a subprocess (`python -m gateway serve` with a temporary config), so the
RSS sampled from /proc is the gateway's own. Then `--connections` workers mix page loads,
uploads, server-sent events, WebSockets and anonymous or forged requests for `--seconds`,
while Ory fails for a short window every `--fault-every` seconds. Every answer is checked:
a body naming another user's identity is a mismatch, a 5xx outside an injected Ory fault is
an error, and RSS must stop growing. Exit 0 only when all of that holds. Issue 4, item 4.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp
from aiohttp import WSMsgType, web

from gateway.standin import OryStandin

LISTENING = re.compile(r"listening on http://([^:\s]+):(\d+)")
MIB = 1024 * 1024


# --- the gateway as a process of its own ----------------------------------------------------


class GatewayProcess:
    """`python -m gateway serve` with a temporary config; every stderr line is kept."""

    def __init__(self, config_text: str, *, start_within: float = 20.0) -> None:
        self._config_text = config_text
        self._start_within = start_within
        self._tmp = tempfile.TemporaryDirectory(prefix="gateway-soak-")
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listening: asyncio.Future[int] | None = None
        self.lines: list[str] = []
        self.port = 0

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def __aenter__(self) -> GatewayProcess:
        path = Path(self._tmp.name) / "gateway.toml"
        path.write_text(self._config_text, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        self._listening = asyncio.get_running_loop().create_future()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--config", str(path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env, cwd=self._tmp.name,
        )
        self._reader = asyncio.create_task(self._read_stderr())
        try:
            async with asyncio.timeout(self._start_within):
                self.port = await asyncio.shield(self._listening)
        except (TimeoutError, RuntimeError):
            await self.stop()
            raise RuntimeError("the gateway did not start:\n" + "".join(self.lines)) from None
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _read_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        assert self._listening is not None
        while line := await self._process.stderr.readline():
            text = line.decode("utf-8", "replace")
            self.lines.append(text)
            found = LISTENING.search(text)
            if found and not self._listening.done():
                self._listening.set_result(int(found.group(2)))
        if not self._listening.done():
            self._listening.set_exception(RuntimeError("the gateway exited"))

    def rss_bytes(self) -> int:
        """Resident set size of the gateway process, from /proc (0 once it has gone)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        except OSError:
            return 0
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) * 1024 if found else 0

    async def stop(self) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL; returns the exit code."""
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._reader
        self._tmp.cleanup()
        return process.returncode


def gateway_config(ory_url: str, upstream_url: str, *, cache_ttl: str = "1s",
                   listen: str = "127.0.0.1:0", ory_timeout: str = "2s",
                   upstream_timeout: str = "10s", server: str = "", ory: str = "",
                   upstream: str = "", routes: str = "") -> str:
    """A config in front of `upstream_url` (port 0: any free port); extra TOML lines per
    section, and `[[routes]]` tables."""
    return f"""
[server]
listen = "{listen}"
{server}
[ory]
url = "{ory_url}"
timeout = "{ory_timeout}"
{ory}
[cache]
ttl = "{cache_ttl}"
[upstream]
url = "{upstream_url}"
timeout = "{upstream_timeout}"
{upstream}
{routes}
"""


# --- the stand-in and an upstream that says who it was told the user is ---------------------


async def echo_page(request: web.Request) -> web.StreamResponse:
    return web.json_response({"user": request.headers.get("X-User-Id", "")})


async def echo_upload(request: web.Request) -> web.StreamResponse:
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
    return web.json_response({"user": request.headers.get("X-User-Id", ""), "size": size})


async def echo_events(request: web.Request) -> web.StreamResponse:
    user = request.headers.get("X-User-Id", "")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for _ in range(3):
        await response.write(f"data: {user}\n\n".encode())
    await response.write_eof()
    return response


async def echo_websocket(request: web.Request) -> web.StreamResponse:
    user = request.headers.get("X-User-Id", "")
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(user)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(f"{user}:{message.data}")
    return ws


def build_identity_upstream() -> web.Application:
    app = web.Application(client_max_size=0)
    app.router.add_get("/app/page", echo_page)
    app.router.add_post("/app/upload", echo_upload)
    app.router.add_get("/app/events", echo_events)
    app.router.add_get("/app/ws", echo_websocket)
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Bind `app` to a free 127.0.0.1 port; returns the runner and its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    return runner, f"http://127.0.0.1:{port}"


# --- the load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakOptions:
    users: int = 1000
    connections: int = 200
    seconds: float = 60.0
    fault_every: float = 2.0  # seconds between injected Ory faults; 0 = none
    fault_for: float = 0.25  # how long each lasts
    upload_size: int = 64 * 1024
    seed: int = 4


@dataclass(frozen=True)
class Caller:
    """Who sends a request: a user, or a stranger (no credential, or a forged one)."""

    identity_id: str | None  # None: a stranger, who must never get past the gateway
    headers: dict[str, str]


STRANGERS = (
    Caller(None, {}),
    Caller(None, {"Cookie": "ory_kratos_session=forged-cookie-value"}),
    Caller(None, {"X-Session-Token": "ory_st_forged_forged_forged_forged_fo"}),
)


@dataclass
class Tally:
    """Everything counted while the load runs."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    identity_mismatches: int = 0
    unexpected_5xx: int = 0
    injected_503: int = 0
    wrong_answers: int = 0
    transport_errors: int = 0
    examples: list[str] = field(default_factory=list)
    fault_windows: list[tuple[float, float]] = field(default_factory=list)
    fault_active_since: float | None = None

    def note(self, problem: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(problem)

    def during_fault(self, start: float, end: float) -> bool:
        """Whether [start, end] overlaps an injected fault (a little margin either side)."""
        margin = 0.05
        windows = list(self.fault_windows)
        if self.fault_active_since is not None:
            windows.append((self.fault_active_since, end))
        return any(a - margin <= end and start <= b + margin for a, b in windows)


@dataclass(frozen=True)
class SoakReport:
    options: SoakOptions
    elapsed: float
    requests: dict[str, int]
    statuses: dict[int, int]
    identity_mismatches: int
    unexpected_5xx: int
    injected_503: int
    wrong_answers: int
    transport_errors: int
    whoami_calls: int
    rss_samples: list[tuple[float, int]]
    examples: list[str]

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def rss_at(self, fraction: float) -> int:
        """Median RSS over the 10% of the run around `fraction` of it."""
        if not self.rss_samples:
            return 0
        end = self.rss_samples[-1][0]
        near = [rss for t, rss in self.rss_samples if abs(t - fraction * end) <= 0.05 * end]
        return int(statistics.median(near)) if near else self.rss_samples[-1][1]

    @property
    def rss_before(self) -> int:
        """Before the first request had an answer."""
        return self.rss_samples[0][1] if self.rss_samples else 0

    @property
    def rss_start(self) -> int:
        """Once warm: 10% into the run."""
        return self.rss_at(0.1)

    @property
    def rss_middle(self) -> int:
        return self.rss_at(0.5)

    @property
    def rss_end(self) -> int:
        return self.rss_at(0.95)

    @property
    def rss_peak(self) -> int:
        return max((rss for _, rss in self.rss_samples), default=0)

    @property
    def rss_late_growth(self) -> int:
        """Growth over the second half: a plateau stays near 0."""
        return self.rss_end - self.rss_middle

    @property
    def rss_plateaued(self) -> bool:
        """Stopped growing: the second half adds at most 8 MiB or 10%."""
        return self.rss_late_growth <= max(8 * MIB, self.rss_middle // 10)

    @property
    def lossless(self) -> bool:
        return (self.identity_mismatches == 0 and self.unexpected_5xx == 0
                and self.wrong_answers == 0 and self.transport_errors == 0 and self.total > 0)

    def render(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.requests.items()))
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        lines = [
            f"soak: {self.options.users} users, {self.options.connections} connections, "
            f"{self.elapsed:.1f} s",
            f"requests            {self.total} ({self.total / max(self.elapsed, 1e-9):.0f}/s):"
            f" {kinds}",
            f"statuses            {statuses}",
            f"identity mismatches {self.identity_mismatches}",
            f"unexpected 5xx      {self.unexpected_5xx}",
            f"injected-fault 503  {self.injected_503} (Ory failing {self.options.fault_for}s "
            f"every {self.options.fault_every}s)",
            f"wrong answers       {self.wrong_answers}",
            f"transport errors    {self.transport_errors}",
            f"Ory whoami calls    {self.whoami_calls}",
            f"gateway RSS MiB     idle {self.rss_before / MIB:.1f}, warm {self.rss_start / MIB:.1f}"
            f", middle "
            f"{self.rss_middle / MIB:.1f}, end {self.rss_end / MIB:.1f}, peak "
            f"{self.rss_peak / MIB:.1f}; second-half growth {self.rss_late_growth / MIB:+.1f}"
            f" ({'plateau' if self.rss_plateaued else 'STILL GROWING'})",
        ]
        lines += [f"  e.g. {example}" for example in self.examples]
        return "\n".join(lines)


def judge(tally: Tally, kind: str, caller: Caller, status: int, seen: str | None,
          started: float) -> None:
    """Count one answer. `seen` is the identity the upstream was told (None: no upstream)."""
    tally.requests[kind if caller.identity_id else f"{kind} (stranger)"] += 1
    tally.statuses[status] += 1
    if seen is not None and seen != caller.identity_id:
        tally.identity_mismatches += 1
        tally.note(f"{kind}: sent by {caller.identity_id!r}, upstream was told {seen!r}")
    if status >= 500:
        if status == 503 and tally.during_fault(started, time.monotonic()):
            tally.injected_503 += 1
        else:
            tally.unexpected_5xx += 1
            tally.note(f"{kind}: {status} outside any injected fault")
    elif status not in ((401,) if caller.identity_id is None else (200, 101)):
        tally.wrong_answers += 1
        tally.note(f"{kind}: {status} for {caller.identity_id or 'a stranger'}")


async def page(http: aiohttp.ClientSession, base: str, caller: Caller, tally: Tally) -> None:
    started = time.monotonic()
    headers = {"Accept": "application/json", **caller.headers}
    async with http.get(f"{base}/app/page", headers=headers) as response:
        body = await response.json(content_type=None)
        seen = body["user"] if response.status == 200 else None
    judge(tally, "page", caller, response.status, seen, started)


async def upload(http: aiohttp.ClientSession, base: str, caller: Caller, tally: Tally,
                 payload: bytes) -> None:
    started = time.monotonic()
    headers = {"Accept": "application/json", **caller.headers}
    async with http.post(f"{base}/app/upload", data=payload, headers=headers) as response:
        body = await response.json(content_type=None)
        seen = body["user"] if response.status == 200 else None
        if response.status == 200 and body["size"] != len(payload):
            tally.wrong_answers += 1
            tally.note(f"upload: upstream got {body['size']} of {len(payload)} bytes")
    judge(tally, "upload", caller, response.status, seen, started)


async def events(http: aiohttp.ClientSession, base: str, caller: Caller, tally: Tally) -> None:
    started = time.monotonic()
    headers = {"Accept": "text/event-stream", **caller.headers}
    async with http.get(f"{base}/app/events", headers=headers) as response:
        text = (await response.read()).decode()
    seen: str | None = None
    if response.status == 200:
        told = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
        seen = told[0] if len(told) == 3 and len(set(told)) == 1 else f"<broken: {text!r}>"
    judge(tally, "sse", caller, response.status, seen, started)


async def websocket(http: aiohttp.ClientSession, base: str, caller: Caller,
                    tally: Tally) -> None:
    started = time.monotonic()
    try:
        ws = await http.ws_connect(f"{base}/app/ws", headers=caller.headers)
    except aiohttp.WSServerHandshakeError as refused:
        judge(tally, "websocket", caller, refused.status, None, started)
        return
    async with ws:
        hello = await ws.receive_str()
        await ws.send_str("ping")
        echo = await ws.receive_str()
    seen = hello if echo == f"{hello}:ping" else f"<broken: {echo!r}>"
    judge(tally, "websocket", caller, 101, seen, started)


async def worker(http: aiohttp.ClientSession, base: str, users: list[Caller], tally: Tally,
                 deadline: float, rng: random.Random, payload: bytes) -> None:
    """One connection's worth of load: 60% pages, 15% uploads, 15% SSE, 10% WebSockets;
    one request in ten from a stranger."""
    while time.monotonic() < deadline:
        caller = rng.choice(users) if rng.random() < 0.9 else rng.choice(STRANGERS)
        kind = rng.random()
        try:
            async with asyncio.timeout(15):
                if kind < 0.6:
                    await page(http, base, caller, tally)
                elif kind < 0.75:
                    await upload(http, base, caller, tally, payload)
                elif kind < 0.9:
                    await events(http, base, caller, tally)
                else:
                    await websocket(http, base, caller, tally)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            tally.transport_errors += 1
            tally.note(f"client error: {type(exc).__name__}: {exc}")


async def inject_faults(ory: OryStandin, tally: Tally, options: SoakOptions,
                        deadline: float) -> None:
    """Ory answers 503 for `fault_for` seconds every `fault_every` seconds."""
    if options.fault_every <= 0:
        return
    while time.monotonic() + options.fault_every < deadline:
        await asyncio.sleep(options.fault_every)
        tally.fault_active_since = start = time.monotonic()
        ory.faults.whoami_status = 503
        await asyncio.sleep(options.fault_for)
        ory.faults.whoami_status = None
        tally.fault_windows.append((start, time.monotonic()))
        tally.fault_active_since = None


async def sample_rss(gateway: GatewayProcess, samples: list[tuple[float, int]],
                     started: float, deadline: float) -> None:
    while time.monotonic() < deadline:
        samples.append((time.monotonic() - started, gateway.rss_bytes()))
        await asyncio.sleep(0.25)


def make_users(ory: OryStandin, count: int) -> list[Caller]:
    """`count` identities with a session each; one in five presents a session token."""
    users = []
    for n in range(count):
        identity = ory.add_identity(f"soak{n}@example.com", password="pw")
        session = ory.create_session(identity)
        headers = ({"X-Session-Token": session.token} if n % 5 == 0
                   else {"Cookie": f"ory_kratos_session={session.cookie_value}"})
        users.append(Caller(identity, headers))
    return users


async def run_soak(options: SoakOptions) -> SoakReport:
    """Everything in one call: stand-in, upstream, gateway process, load, report."""
    ory = OryStandin()
    ory_runner, ory_url = await serve(ory.build_app())
    upstream_runner, upstream_url = await serve(build_identity_upstream())
    tally = Tally()
    samples: list[tuple[float, int]] = []
    try:
        async with GatewayProcess(gateway_config(ory_url, upstream_url)) as gateway:
            users = make_users(ory, options.users)
            rng = random.Random(options.seed)
            payload = rng.randbytes(options.upload_size)
            connector = aiohttp.TCPConnector(limit=options.connections)
            async with aiohttp.ClientSession(connector=connector,
                                             cookie_jar=aiohttp.DummyCookieJar()) as http:
                started = time.monotonic()
                deadline = started + options.seconds
                async with asyncio.timeout(options.seconds + 60):
                    await asyncio.gather(
                        sample_rss(gateway, samples, started, deadline),
                        inject_faults(ory, tally, options, deadline),
                        *(worker(http, gateway.origin, users, tally, deadline,
                                 random.Random(options.seed + n), payload)
                          for n in range(options.connections)),
                    )
                elapsed = time.monotonic() - started
    finally:
        await upstream_runner.cleanup()
        await ory_runner.cleanup()
    return SoakReport(
        options=options, elapsed=elapsed, requests=dict(tally.requests),
        statuses=dict(tally.statuses), identity_mismatches=tally.identity_mismatches,
        unexpected_5xx=tally.unexpected_5xx, injected_503=tally.injected_503,
        wrong_answers=tally.wrong_answers, transport_errors=tally.transport_errors,
        whoami_calls=ory.calls["GET /sessions/whoami"], rss_samples=samples,
        examples=tally.examples,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fault-every", type=float, default=2.0,
                        help="seconds between injected Ory faults (0 = none)")
    parser.add_argument("--fault-for", type=float, default=0.25)
    args = parser.parse_args(argv)
    options = SoakOptions(users=args.users, connections=args.connections, seconds=args.seconds,
                          fault_every=args.fault_every, fault_for=args.fault_for)
    report = asyncio.run(run_soak(options))
    print(report.render())
    return 0 if report.lossless and report.rss_plateaued else 1


if __name__ == "__main__":
    sys.exit(main())
