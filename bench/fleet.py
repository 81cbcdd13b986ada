#!/usr/bin/env python3
"""The fleet benchmark: three replicas on one Redis (issue 12; docs/performance.md).

    python bench/fleet.py             # ~2 minutes
    python bench/fleet.py --quick     # ~45 s

Starts redis-server, the Ory stand-in (bench/standin_server.py, 1 000 users, 5 ms per
answer) and a static upstream on free ports, then measures:

1. Ory calls per user per ttl for the whole fleet: three gateways sharing one Redis, each
   driven by its own wrk with every user's cookie at random, for --seconds; then the same
   with `fleet.shared_cache = false` (expected: about 1.0 and about 3.0).
2. CPU per request on a local-cache hit against a shared-cache hit: one gateway as usual,
   and one whose local cache holds a single entry, so nearly every request is answered
   from Redis; each alone under the same load.
3. Revocation propagation: a new session is used on replicas B and C, revoked at Ory, then
   revoked through the hook on replica A; the time until B and C refuse it (p50, p99).

Needs redis-server and wrk (Debian packages); children run under the project's .venv.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    BENCH,
    CLK_TCK,
    COOKIE,
    HOST,
    ROOT,
    BenchError,
    Children,
    cpu_ticks,
    free_port,
    nginx_static_conf,
    process_tree,
    wait_port,
)

SECRET = "bench-fleet-secret-bench-fleet-secret"
TOKEN = "bench-hook-token-0123456789"


def gateway_toml(port: int, ory: int, upstream: int, redis: int, ttl: float, *,
                 shared: bool = True, local_entries: int = 100_000) -> str:
    return f"""\
[server]
listen = "{HOST}:{port}"
secret = "{SECRET}"
access_log = false

[ory]
url = "http://{HOST}:{ory}"

[cache]
ttl = "{ttl:g}s"
max_entries = {local_entries}

[upstream]
url = "http://{HOST}:{upstream}"

[fleet]
redis_url = "redis://{HOST}:{redis}/0"
shared_cache = {"true" if shared else "false"}

[hooks]
token = "{TOKEN}"
"""


class Fleet:
    """redis-server, the stand-in, an upstream, and gateways started on demand."""

    def __init__(self, args: argparse.Namespace, work: Path, children: Children) -> None:
        self.args = args
        self.work = work
        self.children = children
        self.python = str(ROOT / ".venv" / "bin" / "python")
        self.redis = free_port()
        self.ory = free_port()
        self.upstream = free_port()
        self.cookies_file = work / "cookies.txt"

    def start_shared(self) -> None:
        redis = self.children.start("redis", [
            "redis-server", "--port", str(self.redis), "--bind", HOST, "--save", "",
            "--appendonly", "no", "--dir", str(self.work),
        ], cpus=None)
        wait_port(self.redis, redis, "redis", self.children)
        ory = self.children.start("standin", [
            self.python, str(BENCH / "standin_server.py"), "--port", str(self.ory),
            "--users", str(self.args.users), "--cookies-file", str(self.cookies_file),
        ], cpus=None)
        wait_port(self.ory, ory, "standin", self.children, timeout=60)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        prefix = self.work / "upstream-nginx"
        for sub in ("", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_static_conf(prefix, self.upstream))
        upstream = self.children.start("upstream", [
            nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
        ], cpus=None)
        wait_port(self.upstream, upstream, "upstream", self.children)

    def gateway(self, name: str, **options: object) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        config = self.work / f"{name}.toml"
        config.write_text(gateway_toml(port, self.ory, self.upstream, self.redis,
                                       self.args.ttl, **options))  # type: ignore[arg-type]
        proc = self.children.start(
            name, [self.python, "-m", "gateway", "serve", "--config", str(config)],
            cpus=None, cwd=ROOT,
        )
        wait_port(port, proc, name, self.children)
        return port, proc

    def whoami_calls(self) -> int:
        return int(json.loads(request(self.ory, "GET", "/__bench/calls")[1])["whoami"])

    def flush_redis(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.redis), "FLUSHALL"], check=True,
                       capture_output=True)


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wrk(port: int, seconds: int, connections: int, cookies: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
         "-s", str(BENCH / "cookies.lua"), f"http://{HOST}:{port}/bench", "--",
         str(cookies), COOKIE],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def requests_done(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("BENCH_JSON"):
            return int(json.loads(line.split(" ", 1)[1])["requests"])
    raise BenchError(f"wrk printed no result:\n{output[-800:]}")


def whoami_per_user_per_ttl(fleet: Fleet, shared: bool) -> tuple[float, int]:
    """Three replicas under load for --seconds: Ory calls / (users x ttl windows begun)."""
    ports = [fleet.gateway(f"{'shared' if shared else 'local'}-{n}", shared=shared)[0]
             for n in range(3)]
    fleet.flush_redis()
    before = fleet.whoami_calls()
    started = time.monotonic()
    loads = [wrk(port, fleet.args.seconds, 8, fleet.cookies_file) for port in ports]
    total = sum(requests_done(load.communicate()[0]) for load in loads)
    elapsed = time.monotonic() - started
    calls = fleet.whoami_calls() - before
    # A perfect cache asks about a user when the run starts and again each time its entry
    # expires: floor(elapsed / ttl) + 1 times (the bound bench/run.py checks too).
    windows = int(elapsed // fleet.args.ttl) + 1
    fleet.children.stop_all_named(("shared-", "local-"))
    return calls / (fleet.args.users * windows), total


def cpu_per_request(fleet: Fleet, name: str, **options: object) -> float:
    """One gateway alone under the load: CPU time (us) per request."""
    port, proc = fleet.gateway(name, **options)
    warm = wrk(port, 2, 16, fleet.cookies_file)
    warm.communicate()
    pids = process_tree(proc.pid)
    ticks = cpu_ticks(pids)
    load = wrk(port, fleet.args.seconds, 16, fleet.cookies_file)
    done = requests_done(load.communicate()[0])
    used = cpu_ticks(pids) - ticks
    fleet.children.stop_all_named((name,))
    return used / CLK_TCK * 1e6 / max(done, 1)


def propagation(fleet: Fleet) -> list[float]:
    """Seconds from the hook call on A until both B and C refuse the revoked session."""
    (a, _), (b, _), (c, _) = (fleet.gateway(f"p{n}") for n in range(3))
    found = []
    for _ in range(fleet.args.revocations):
        _, body = request(fleet.ory, "POST", "/__bench/sessions")
        made = json.loads(body)
        cookie = {"Cookie": f"{COOKIE}={made['cookie']}", "Accept": "application/json"}
        for port in (b, c):  # cached on both
            if request(port, "GET", "/bench", cookie)[0] != 200:
                raise BenchError("a fresh session was refused")
        request(fleet.ory, "POST", f"/__bench/sessions/{made['session_id']}/revoke")
        started = time.monotonic()
        status, _ = request(a, "POST", "/_auth/hooks/revoke",
                            {"Authorization": f"Bearer {TOKEN}"},
                            json.dumps({"identity_id": made["identity_id"]}).encode())
        if status != 200:
            raise BenchError(f"the hook answered {status}")
        waiting = {b, c}
        while waiting:
            for port in list(waiting):
                if request(port, "GET", "/bench", cookie)[0] == 401:
                    waiting.discard(port)
            if time.monotonic() - started > 5:
                raise BenchError("a revocation did not reach every replica within 5 s")
        found.append(time.monotonic() - started)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--ttl", type=float, default=10.0)
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--revocations", type=int, default=None)
    args = parser.parse_args()
    args.seconds = args.seconds or (8 if args.quick else 25)
    args.revocations = args.revocations or (50 if args.quick else 200)
    for tool in ("redis-server", "redis-cli", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (apt-get install redis-server wrk)")
            return 2
    with tempfile.TemporaryDirectory(prefix="gateway-fleet-bench-") as tmp:
        work = Path(tmp)
        children = Children(work, pin=False)
        try:
            fleet = Fleet(args, work, children)
            fleet.start_shared()
            shared, shared_requests = whoami_per_user_per_ttl(fleet, shared=True)
            alone, local_requests = whoami_per_user_per_ttl(fleet, shared=False)
            local_hit = cpu_per_request(fleet, "local-hit")
            shared_hit = cpu_per_request(fleet, "shared-hit", local_entries=1)
            times = sorted(propagation(fleet))
        finally:
            children.stop_all()
    p50 = statistics.median(times) * 1000
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
    print(f"users {args.users}, ttl {args.ttl:g} s, {args.seconds} s per load run, "
          f"3 replicas, 1 Redis")
    print(f"Ory calls per user per ttl, shared cache:    {shared:.2f}  "
          f"({shared_requests} requests)")
    print(f"Ory calls per user per ttl, no shared cache: {alone:.2f}  "
          f"({local_requests} requests)")
    print(f"CPU per request, local-cache hit:  {local_hit:.0f} us")
    print(f"CPU per request, shared-cache hit: {shared_hit:.0f} us")
    print(f"revocation reaches every replica: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
          f"({len(times)} revocations)")
    verdict = shared <= 1.05 and alone >= 2.5
    print(("PASS" if verdict else "FAIL") + " one Ory call per credential per ttl for the "
          "fleet with the shared cache, about three without")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
