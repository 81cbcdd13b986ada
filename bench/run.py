#!/usr/bin/env python3
"""The gateway benchmark: one command, one table (GitHub issue 5; docs/performance.md).

    python bench/run.py            # ~5 minutes: 5 s warm-up + 10 s measured, 3 rounds
    python bench/run.py --quick    # ~1.5 minutes: 1 s + 3 s, 3 rounds

Starts, all on 127.0.0.1 and on ports free at run time:
  * the Ory stand-in (bench/standin_server.py): 1 000 users with a session each, every answer
    delayed by --ory-latency (5 ms);
  * a static upstream: nginx `return 200` when nginx is installed, else
    bench/upstream_server.py (raw asyncio), so the app is never the bottleneck;
  * each server under test: the gateway (1 worker, 2 workers), nginx auth_request with and
    without proxy_cache on the auth call, Caddy forward_auth (both asking Ory directly),
    nginx auth_request and Caddy forward_auth asking the gateway's /_auth/check (issue 13),
    and bench/floor_proxy.py;
then drives each with wrk (32 connections, a random user's cookie per request,
bench/cookies.lua) and prints requests/s, p50/p99 latency, the server's CPU time per request
(utime+stime of its whole process tree, from /proc), whoami calls (counted by the stand-in)
and peak RSS (VmHWM summed over its processes), the medians of 3 rounds, then PASS/FAIL
against the targets and bench/cache_memory.py's result.

The rounds are interleaved (every row once, then every row again, ...) so slow drift on a
noisy machine hits every row alike. Pinning (taskset, when there are 2+ cores): the server
under test on core 0; wrk, the stand-in and the upstream share core 1; the 2-worker gateway
is not pinned (both cores). Only this script's stdlib is needed to run it; its children run
under the project's .venv python (see --python).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
COOKIE = "ory_kratos_session"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BODY_SIZE = 1024
HOST = "127.0.0.1"


# --------------------------------------------------------------------------- processes


class Children:
    """Every process this script starts: each in its own process group, all killed on exit."""

    def __init__(self, logs: Path, pin: bool) -> None:
        self.logs = logs
        self.pin = pin
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, argv: list[str], *, cpus: str | None, env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        if cpus is not None and self.pin:
            argv = ["taskset", "-c", cpus, *argv]
        log = (self.logs / f"{name}.log").open("wb")
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=cwd,
            )
        finally:
            log.close()
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the whole group, SIGKILL after 5 s."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers of a group whose leader already exited: make sure none is left.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        while self.procs:
            _name, proc = self.procs.pop()
            self.stop(proc)

    def stop_all_named(self, prefixes: tuple[str, ...]) -> None:
        """Stop the children whose name starts with one of `prefixes`."""
        for name, proc in [(n, p) for n, p in self.procs if n.startswith(prefixes)]:
            self.stop(proc)
            self.procs.remove((name, proc))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], name: str, children: Children,
              timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}:\n{children.log_tail(name)}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise BenchError(f"{name} did not listen on {HOST}:{port} within {timeout:g}s:\n"
                     f"{children.log_tail(name)}")


class BenchError(Exception):
    """Something the benchmark cannot go on without, said in a few lines."""


# --------------------------------------------------------------------------- /proc


def _ppids() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        out[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return out


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (nginx workers, gateway workers, ...)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _ppids().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime (all threads) of each process, in clock ticks."""
    total = 0
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total


def core_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies of each core, from /proc/stat."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]  # idle + iowait
            out.append((sum(values) - idle, sum(values)))
    return out


def busy_percent(before: list[tuple[int, int]], after: list[tuple[int, int]]) -> list[float]:
    return [100.0 * (b1 - b0) / max(t1 - t0, 1)
            for (b0, t0), (b1, t1) in zip(before, after, strict=True)]


def peak_rss_kb(pids: list[int]) -> int:
    """VmHWM summed over the processes (shared pages are counted in each)."""
    total = 0
    for pid in pids:
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


# --------------------------------------------------------------------------- HTTP probes


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --------------------------------------------------------------------------- configs


def nginx_auth_conf(prefix: Path, port: int, ory_port: int, upstream_port: int,
                    cache: bool, ttl: float) -> str:
    cache_zone = (
        f"    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=auth:16m max_size=64m "
        "inactive=60s use_temp_path=off;\n" if cache else ""
    )
    cache_rules = (
        "            proxy_cache auth;\n"
        f"            proxy_cache_key $cookie_{COOKIE};\n"
        f"            proxy_cache_valid 200 {int(ttl)}s;\n"
        "            proxy_cache_lock on;\n"
        "            proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;\n"
        if cache else ""
    )
    return f"""\
{_nginx_head(prefix)}
{cache_zone}\
    upstream app {{ server {HOST}:{upstream_port}; keepalive 64; keepalive_requests 1000000; }}
    upstream ory {{ server {HOST}:{ory_port}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen {HOST}:{port};
        location / {{
            auth_request /__whoami;
            auth_request_set $user_id $upstream_http_x_kratos_authenticated_identity_id;
            proxy_set_header X-User-Id $user_id;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://app;
        }}
        location = /__whoami {{
            internal;
            proxy_pass http://ory/sessions/whoami;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Cookie $http_cookie;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{cache_rules}\
        }}
    }}
}}
"""


def nginx_static_conf(prefix: Path, port: int) -> str:
    body = ("ok " * (BODY_SIZE // 3 + 1))[:BODY_SIZE]
    return f"""\
{_nginx_head(prefix)}
    server {{
        listen {HOST}:{port};
        location / {{ default_type text/plain; return 200 "{body}"; }}
    }}
}}
"""


def _nginx_head(prefix: Path) -> str:
    """What every nginx config here starts with: one worker in the foreground, its files
    under `prefix`, and an open `http {` block."""
    names = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp_paths = "\n".join(f"    {name}_temp_path {prefix}/{name};" for name in names)
    return f"""\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temp_paths}
    keepalive_requests 1000000;"""


_CADDY_GLOBAL = """\
{
\tadmin off
\tauto_https off
\tlog {
\t\toutput stderr
\t\tlevel ERROR
\t}
}
"""


def caddyfile(port: int, ory_port: int, upstream_port: int) -> str:
    return f"""\
{_CADDY_GLOBAL}
http://{HOST}:{port} {{
\tbind {HOST}
\tforward_auth {HOST}:{ory_port} {{
\t\turi /sessions/whoami
\t\tcopy_headers X-Kratos-Authenticated-Identity-Id>X-User-Id
\t}}
\treverse_proxy {HOST}:{upstream_port}
}}
"""


def nginx_check_conf(prefix: Path, port: int, gateway_port: int, upstream_port: int) -> str:
    """nginx auth_request asking the gateway's /_auth/check/nginx (the README's check
    location), with keep-alive to the app like the direct row."""
    return f"""\
{_nginx_head(prefix)}
    upstream app {{ server {HOST}:{upstream_port}; keepalive 64; keepalive_requests 1000000; }}
    upstream gateway {{ server {HOST}:{gateway_port}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen {HOST}:{port};
        location / {{
            auth_request /_auth/check/nginx;
            auth_request_set $user_id $upstream_http_x_user_id;
            proxy_set_header X-User-Id $user_id;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://app;
        }}
        location = /_auth/check/nginx {{
            internal;
            proxy_pass http://gateway;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def caddyfile_check(port: int, gateway_port: int, upstream_port: int) -> str:
    """Caddy forward_auth asking the gateway's /_auth/check (the README's route)."""
    return f"""\
{_CADDY_GLOBAL}
http://{HOST}:{port} {{
\tbind {HOST}
\troute {{
\t\trequest_header -X-User-Id
\t\tforward_auth {HOST}:{gateway_port} {{
\t\t\turi /_auth/check
\t\t\tcopy_headers X-User-Id
\t\t}}
\t\treverse_proxy {HOST}:{upstream_port}
\t}}
}}
"""


def gateway_toml(port: int, ory_port: int, upstream_port: int, workers: int, ttl: float,
                 refresh_ahead: float, *, observed: bool = False, checks: bool = False) -> str:
    """`observed`: JSON logs and Prometheus metrics on (the `gw1-obs` row); `checks`: a
    proxy on this host may ask /_auth/check (the forward-auth rows)."""
    extra = f'log_format = "json"\n\n[metrics]\nlisten = "{HOST}:{free_port()}"\n' \
        if observed else ""
    trusted = f'trusted_proxies = ["{HOST}/32"]\n' if checks else ""
    return f"""\
default_access = "authenticated"

[server]
listen = "{HOST}:{port}"
workers = {workers}
secret = "bench-secret-bench-secret-bench-secret"
{trusted}{extra}
[ory]
url = "http://{HOST}:{ory_port}"
session_cookie = "{COOKIE}"

[cache]
ttl = "{ttl:g}s"
refresh_ahead = "{refresh_ahead:g}s"

[upstream]
url = "http://{HOST}:{upstream_port}"
"""


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    key: str
    label: str
    start: Callable[[], subprocess.Popen[bytes]]
    port: int
    workers: int = 1  # separate caches (for the whoami bound)
    # The gateway behind a forward-auth proxy: started first, its CPU counted apart too.
    companion: Callable[[], subprocess.Popen[bytes]] | None = None
    companion_port: int = 0
    companion_proc: subprocess.Popen[bytes] | None = None
    warm: bool = False  # every user's session is fetched before the rounds (forward auth)
    proc: subprocess.Popen[bytes] | None = None
    runs: list[dict[str, float]] = field(default_factory=list)
    peak_kb: int = 0


@dataclass
class Stack:
    """The shared pieces: stand-in, upstream, cookies, and how to start a server under test."""

    args: argparse.Namespace
    children: Children
    work: Path
    python: str
    nginx: str | None
    caddy: str | None
    ory_port: int = 0
    upstream_port: int = 0
    upstream_kind: str = ""
    cookies_file: Path = field(default_factory=Path)
    cookies: list[str] = field(default_factory=list)
    ory_pid: int = 0

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(extra)
        return env

    def start_shared(self) -> None:
        self.ory_port = free_port()
        self.cookies_file = self.work / "cookies.txt"
        ory = self.children.start(
            "standin",
            [self.python, str(BENCH / "standin_server.py"), "--port", str(self.ory_port),
             "--users", str(self.args.users), "--ory-latency", str(self.args.ory_latency),
             "--cookies-file", str(self.cookies_file)],
            cpus="1", env=self.env(),
        )
        self.ory_pid = ory.pid
        self.upstream_port = free_port()
        use_nginx = self.args.upstream == "nginx" or (
            self.args.upstream == "auto" and self.nginx is not None
        )
        if use_nginx:
            if self.nginx is None:
                raise BenchError("--upstream nginx: nginx is not installed "
                                 "(apt-get install -y nginx)")
            prefix = self._prefix("upstream-nginx")
            conf = prefix / "nginx.conf"
            conf.write_text(nginx_static_conf(prefix, self.upstream_port))
            upstream = self.children.start(
                "upstream", [self.nginx, "-p", str(prefix), "-c", str(conf),
                             "-e", str(prefix / "error.log")], cpus="1",
            )
            self.upstream_kind = "nginx `return 200` (1 worker)"
        else:
            upstream = self.children.start(
                "upstream",
                [self.python, str(BENCH / "upstream_server.py"), "--port",
                 str(self.upstream_port), "--body-size", str(BODY_SIZE)],
                cpus="1", env=self.env(),
            )
            self.upstream_kind = "bench/upstream_server.py (raw asyncio + uvloop)"
        wait_port(self.ory_port, ory, "standin", self.children, timeout=60)
        wait_port(self.upstream_port, upstream, "upstream", self.children)
        self.cookies = [c for c in self.cookies_file.read_text().splitlines() if c]
        if len(self.cookies) != self.args.users:
            raise BenchError(f"the stand-in wrote {len(self.cookies)} cookies, "
                             f"expected {self.args.users}")

    def whoami_calls(self) -> int:
        status, body = http_get(self.ory_port, "/__bench/calls")
        if status != 200:
            raise BenchError(f"stand-in /__bench/calls answered {status}")
        return int(json.loads(body)["whoami"])

    def _prefix(self, name: str) -> Path:
        """A directory nginx's unprivileged worker can write to (temp files, cache)."""
        prefix = self.work / name
        prefix.mkdir()
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "cache"):
            (prefix / sub).mkdir()
            (prefix / sub).chmod(0o777)
        prefix.chmod(0o755)
        return prefix

    # -- servers under test ------------------------------------------------------------

    def rows(self) -> list[Row]:
        wanted = set(self.args.rows.split(",")) if self.args.rows else None
        rows = [
            self._gateway_row(1), self._gateway_row(2),
            self._gateway_row(1, key="gw1-obs", label="gateway, JSON logs + metrics",
                              observed=True),
            self._baseline_row(),
            self._nginx_row(cache=False), self._nginx_row(cache=True), self._caddy_row(),
            self._nginx_check_row(), self._caddy_check_row(),
            self._nginx_check_row(floor=True), self._caddy_check_row(floor=True),
            self._floor_row(),
        ]
        return [r for r in rows if r is not None and (wanted is None or r.key in wanted)]

    def _gateway_row(
        self, workers: int, *, key: str = "", label: str = "", checkout: Path = ROOT,
        python: str = "", observed: bool = False,
    ) -> Row:
        port = free_port()
        key = key or f"gw{workers}"
        config = self.work / f"{key}.toml"
        config.write_text(gateway_toml(port, self.ory_port, self.upstream_port, workers,
                                       self.args.ttl, self.args.refresh_ahead,
                                       observed=observed))
        # 1 worker: core 0 like every other server; 2 workers: not pinned (both cores).
        cpus = "0" if workers == 1 else "0,1"
        argv = [python or self.python, "-m", "gateway", "serve", "--config", str(config)]

        def start() -> subprocess.Popen[bytes]:
            return self.children.start(key, argv, cpus=cpus, env=self.env(), cwd=checkout)

        label = label or (
            "gateway, 1 worker" if workers == 1 else f"gateway, {workers} workers *"
        )
        return Row(key, label, start, port, workers=workers)

    def _baseline_row(self) -> Row | None:
        """--baseline CHECKOUT: the gateway of another checkout (its own .venv), 1 worker,
        interleaved with this one: a before/after in one run."""
        checkout = self.args.baseline
        if checkout is None:
            return None
        python = checkout / ".venv" / "bin" / "python"
        if not python.is_file():
            raise BenchError(f"--baseline {checkout}: no .venv/bin/python there")
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=False).stdout.strip()
        return self._gateway_row(1, key="base", label=f"baseline {commit or checkout.name}",
                                 checkout=checkout, python=str(python))

    def _nginx_row(self, *, cache: bool) -> Row | None:
        if self.nginx is None:
            return None
        port = free_port()
        key = "nginx-cache" if cache else "nginx"
        prefix = self._prefix(key)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_auth_conf(prefix, port, self.ory_port, self.upstream_port,
                                        cache, self.args.ttl))
        nginx = self.nginx

        def start() -> subprocess.Popen[bytes]:
            return self.children.start(
                key, [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                cpus="0",
            )

        label = (f"nginx auth_request + cache {int(self.args.ttl)}s" if cache
                 else "nginx auth_request, no cache")
        return Row(key, label, start, port)

    def _caddy_row(self) -> Row | None:
        if self.caddy is None:
            return None
        port = free_port()
        home = self.work / "caddy-home"
        home.mkdir()
        conf = home / "Caddyfile"
        conf.write_text(caddyfile(port, self.ory_port, self.upstream_port))
        caddy = self.caddy
        env = self.env(HOME=str(home), XDG_DATA_HOME=str(home / "data"),
                       XDG_CONFIG_HOME=str(home / "config"))

        def start() -> subprocess.Popen[bytes]:
            return self.children.start(
                "caddy", [caddy, "run", "--config", str(conf), "--adapter", "caddyfile"],
                cpus="0", env=env,
            )

        return Row("caddy", "Caddy forward_auth", start, port)

    def _checking_gateway(
        self, key: str, *, floor: bool = False,
    ) -> tuple[Callable[[], subprocess.Popen[bytes]], int]:
        """A 1-worker gateway that answers /_auth/check for a proxy. It takes Ory's place in
        the direct rows, so it runs where the stand-in does (core 1). `floor`:
        bench/floor_check.py answers instead, the least any aiohttp check can cost."""
        port = free_port()
        ttl = self.args.check_ttl
        if floor:
            floor_argv = [self.python, str(BENCH / "floor_check.py"), "--port", str(port),
                          "--ory", f"http://{HOST}:{self.ory_port}", "--ttl", str(ttl)]

            def start_floor() -> subprocess.Popen[bytes]:
                return self.children.start(f"{key}-gateway", floor_argv, cpus="1",
                                           env=self.env())

            return start_floor, port
        config = self.work / f"{key}-gateway.toml"
        config.write_text(gateway_toml(port, self.ory_port, self.upstream_port, 1, ttl,
                                       self.args.refresh_ahead, checks=True))
        argv = [self.python, "-m", "gateway", "serve", "--config", str(config)]

        def start() -> subprocess.Popen[bytes]:
            return self.children.start(f"{key}-gateway", argv, cpus="1", env=self.env(),
                                       cwd=ROOT)

        return start, port

    def _nginx_check_row(self, *, floor: bool = False) -> Row | None:
        if self.nginx is None:
            return None
        port = free_port()
        key = "nginx-check-floor" if floor else "nginx-check"
        companion, gateway_port = self._checking_gateway(key, floor=floor)
        prefix = self._prefix(key)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_check_conf(prefix, port, gateway_port, self.upstream_port))
        nginx = self.nginx

        def start() -> subprocess.Popen[bytes]:
            return self.children.start(
                key, [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                cpus="0",
            )

        label = ("nginx auth_request -> floor check" if floor
                 else "nginx auth_request -> gateway check")
        return Row(key, label, start, port, warm=True,
                   companion=companion, companion_port=gateway_port)

    def _caddy_check_row(self, *, floor: bool = False) -> Row | None:
        if self.caddy is None:
            return None
        port = free_port()
        key = "caddy-check-floor" if floor else "caddy-check"
        companion, gateway_port = self._checking_gateway(key, floor=floor)
        home = self.work / f"{key}-home"
        home.mkdir()
        conf = home / "Caddyfile"
        conf.write_text(caddyfile_check(port, gateway_port, self.upstream_port))
        caddy = self.caddy
        env = self.env(HOME=str(home), XDG_DATA_HOME=str(home / "data"),
                       XDG_CONFIG_HOME=str(home / "config"))

        def start() -> subprocess.Popen[bytes]:
            return self.children.start(
                key, [caddy, "run", "--config", str(conf), "--adapter", "caddyfile"],
                cpus="0", env=env,
            )

        label = ("Caddy forward_auth -> floor check" if floor
                 else "Caddy forward_auth -> gateway check")
        return Row(key, label, start, port, warm=True,
                   companion=companion, companion_port=gateway_port)

    def _floor_row(self) -> Row:
        port = free_port()

        def start() -> subprocess.Popen[bytes]:
            return self.children.start(
                "floor",
                [self.python, str(BENCH / "floor_proxy.py"), "--port", str(port),
                 "--ory", f"http://{HOST}:{self.ory_port}",
                 "--upstream", f"http://{HOST}:{self.upstream_port}",
                 "--ttl", str(self.args.ttl)],
                cpus="0", env=self.env(),
            )

        return Row("floor", "floor: aiohttp + dict cache", start, port)

    def start_row(self, row: Row) -> None:
        if row.companion is not None:
            row.companion_proc = row.companion()
            wait_port(row.companion_port, row.companion_proc, f"{row.key}-gateway",
                      self.children)
        row.proc = row.start()
        wait_port(row.port, row.proc, row.key, self.children)
        if row.workers > 1:
            time.sleep(1.0)  # let every worker bind before load arrives
        status, body = http_get(row.port, "/bench", {"Cookie": f"{COOKIE}={self.cookies[0]}"})
        if status != 200 or len(body) != BODY_SIZE:
            raise BenchError(f"{row.label}: a request with a valid cookie got {status} "
                             f"({len(body)} bytes), expected 200 ({BODY_SIZE} bytes):\n"
                             f"{self.children.log_tail(row.key)}")
        status, _ = http_get(row.port, "/bench")
        if status == 200:
            raise BenchError(f"{row.label}: a request without a cookie got 200: "
                             "authentication is not enforced")
        if row.warm:
            self.warm(row)

    def warm(self, row: Row) -> None:
        """One request per user through the proxy, so the check's cache holds every session
        (issue 13 measures forward auth with the cache warm; its ttl outlasts the rounds)."""

        def one(cookie: str) -> int:
            return http_get(row.port, "/bench", {"Cookie": f"{COOKIE}={cookie}"})[0]

        with ThreadPoolExecutor(8) as pool:
            refused = sum(status != 200 for status in pool.map(one, self.cookies))
        if refused:
            raise BenchError(f"{row.label}: {refused} of {len(self.cookies)} users were "
                             "refused while warming the cache")


# --------------------------------------------------------------------------- wrk


def run_wrk(wrk: str, port: int, seconds: int, stack: Stack, pin: bool) -> dict[str, Any]:
    argv = [wrk, "-t1", f"-c{stack.args.connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(BENCH / "cookies.lua"), f"http://{HOST}:{port}/bench",
            "--", str(stack.cookies_file), COOKIE]
    if pin:
        argv = ["taskset", "-c", "1", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                          check=False)
    match = re.search(r"^BENCH_JSON (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(match.group(1)))


def measure_pair(rows: list[Row], stack: Stack, wrk: str, pin: bool) -> list[dict[str, float]]:
    """--paired: both rows loaded at once, over the same seconds, so the machine's drift
    (this VM's speed wanders by a third between rounds) hits both alike and their ratio
    holds still. Each gets its own wrk; both share core 0, as each alone would use it."""
    with ThreadPoolExecutor(len(rows)) as pool:
        return list(pool.map(lambda row: measure(row, stack, wrk, pin), rows))


def measure(row: Row, stack: Stack, wrk: str, pin: bool) -> dict[str, float]:
    assert row.proc is not None
    args = stack.args
    run_wrk(wrk, row.port, args.warmup, stack, pin)
    pids = process_tree(row.proc.pid)
    gateway_pids = process_tree(row.companion_proc.pid) if row.companion_proc else []
    gateway_ticks = cpu_ticks(gateway_pids)
    ticks, calls, ory_ticks = cpu_ticks(pids), stack.whoami_calls(), cpu_ticks([stack.ory_pid])
    cores = core_times()
    result = run_wrk(wrk, row.port, args.duration, stack, pin)
    busy = busy_percent(cores, core_times())
    ticks = cpu_ticks(pids) - ticks
    gateway_ticks = cpu_ticks(gateway_pids) - gateway_ticks
    ory_ticks = cpu_ticks([stack.ory_pid]) - ory_ticks
    calls = stack.whoami_calls() - calls
    row.peak_kb = max(row.peak_kb, peak_rss_kb(process_tree(row.proc.pid) + gateway_pids))
    requests = max(int(result["requests"]), 1)
    seconds = result["duration_us"] / 1e6
    errors = sum(int(v) for k, v in result.items() if k.startswith("errors_"))
    return {
        "rps": requests / seconds,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "cpu_us": (ticks + gateway_ticks) / CLK_TCK * 1e6 / requests,
        "gateway_cpu_us": gateway_ticks / CLK_TCK * 1e6 / requests,
        "whoami": float(calls),
        "ory_cpu_pct": ory_ticks / CLK_TCK / seconds * 100,
        "core0_busy_pct": busy[0],
        "core1_busy_pct": busy[1] if len(busy) > 1 else 0.0,
        "seconds": seconds,
        "requests": float(requests),
        "errors": float(errors),
    }


# --------------------------------------------------------------------------- report


def median(row: Row, key: str) -> float:
    return statistics.median(run[key] for run in row.runs)


def table(rows: list[Row]) -> str:
    head = (f"{'server under test':<34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'CPU us/req':>10} {'whoami/run':>10} {'peak RSS MB':>11} {'errors':>6} "
            f"{'Ory CPU':>7} {'cores busy':>10}  req/s of each round")
    lines = [head, "-" * len(head)]
    for row in rows:
        if not row.runs:
            continue
        each = " / ".join(f"{run['rps']:.0f}" for run in row.runs)
        errors = sum(run["errors"] for run in row.runs)
        lines.append(
            f"{row.label:<34} {median(row, 'rps'):>7.0f} {median(row, 'p50_ms'):>7.2f} "
            f"{median(row, 'p99_ms'):>7.2f} {median(row, 'cpu_us'):>10.0f} "
            f"{median(row, 'whoami'):>10.0f} {row.peak_kb / 1024:>11.1f} {errors:>6.0f} "
            f"{median(row, 'ory_cpu_pct'):>6.0f}% "
            f"{median(row, 'core0_busy_pct'):>4.0f}/{median(row, 'core1_busy_pct'):>3.0f}%  {each}"
        )
    return "\n".join(lines)


def verdicts(rows: dict[str, Row], args: argparse.Namespace) -> list[tuple[str, str]]:
    """(PASS|FAIL|SKIP, text) for each target (issues 5, 10, 11, 13)."""
    out: list[tuple[str, str]] = []

    def check(ok: bool | None, text: str) -> None:
        out.append(("SKIP" if ok is None else "PASS" if ok else "FAIL", text))

    gw = rows.get("gw1")
    if gw is None or not gw.runs:
        check(None, "gateway (1 worker) not measured: only the forward-auth ratios")
        return out + forward_auth_verdicts(rows, None)
    floor = rows.get("floor")
    if floor is not None and floor.runs:
        g, f = median(gw, "cpu_us"), median(floor, "cpu_us")
        check(g <= f, f"gateway CPU/request {g:.0f} us <= floor proxy's {f:.0f} us")
    else:
        check(None, "gateway CPU/request <= floor proxy's: floor row not run")
    for key, name in (("nginx", "nginx auth_request (no cache)"), ("caddy", "Caddy forward_auth")):
        other = rows.get(key)
        if other is None or not other.runs:
            check(None, f"gateway req/s >= 2x {name}: not installed / not run")
            continue
        g, o = median(gw, "rps"), median(other, "rps")
        check(g >= 2 * o, f"gateway req/s {g:.0f} >= 2x {name} {o:.0f} (= {2 * o:.0f}); "
                          f"ratio {g / o:.2f}x")
    out.extend(forward_auth_verdicts(rows, gw))
    p99 = median(gw, "p99_ms")
    check(p99 < 15.0, f"gateway p99 {p99:.2f} ms < 15 ms")
    observed = rows.get("gw1-obs")
    if observed is not None and observed.runs:
        g, o = median(gw, "cpu_us"), median(observed, "cpu_us")
        check(o <= 1.10 * g, f"JSON logs + metrics: CPU/request {o:.0f} us <= 1.10 x "
                             f"{g:.0f} us (issue 11); ratio {o / g:.3f}")
    base = rows.get("base")
    if base is not None and base.runs:
        g, b = median(gw, "cpu_us"), median(base, "cpu_us")
        check(g <= 1.05 * b, f"CPU/request {g:.0f} us <= 1.05 x baseline's {b:.0f} us "
                             f"(issue 10); ratio {g / b:.3f}")
    for row in (gw, rows.get("gw2")):
        if row is None or not row.runs:
            continue
        worst = max(row.runs, key=lambda run: run["whoami"] / _bound(run, row, args))
        bound = _bound(worst, row, args)
        per = worst["whoami"] / (args.users * row.workers * worst["seconds"] / args.ttl)
        caches = "" if row.workers == 1 else f" x {row.workers} worker caches"
        check(worst["whoami"] <= bound,
              f"{row.label.rstrip(' *')}: whoami calls {worst['whoami']:.0f} in "
              f"{worst['seconds']:.1f} s (worst round) <= {bound} = {args.users} users{caches}"
              f" x (floor({worst['seconds']:.1f}/{args.ttl:g}) + 1); "
              f"{per:.2f} per user per ttl")
    return out


def forward_auth_verdicts(rows: dict[str, Row], gw: Row | None) -> list[tuple[str, str]]:
    """Issue 13: each proxy asking the gateway's check (cache warm) against the same proxy
    asking Ory; the floor-check rows are shown beside them, not judged: what the least
    aiohttp check reaches on the same bench."""
    out: list[tuple[str, str]] = []
    for key, direct, name in (("nginx-check", "nginx", "nginx auth_request"),
                              ("caddy-check", "caddy", "Caddy forward_auth")):
        row, other = rows.get(key), rows.get(direct)
        if other is None or not other.runs:
            out.append(("SKIP", f"{name} -> check: {name} -> Ory not installed / not run"))
            continue
        o = median(other, "rps")
        if row is not None and row.runs:
            c = median(row, "rps")
            out.append(("PASS" if c >= 3 * o else "FAIL",
                        f"{name} -> gateway check {c:.0f} req/s >= 3x {name} -> Ory {o:.0f} "
                        f"(= {3 * o:.0f}); ratio {c / o:.2f}x (issue 13)"))
            if gw is not None and gw.runs:
                per_check, per_request = median(row, "gateway_cpu_us"), median(gw, "cpu_us")
                out.append(("PASS" if per_check <= per_request else "FAIL",
                            f"{name}: gateway CPU per check {per_check:.0f} us <= per proxied "
                            f"request {per_request:.0f} us (issue 13)"))
        floor = rows.get(f"{key}-floor")
        if floor is not None and floor.runs:
            f = median(floor, "rps")
            out.append(("INFO", f"{name} -> floor check {f:.0f} req/s: ratio {f / o:.2f}x, "
                                f"{median(floor, 'gateway_cpu_us'):.0f} us per check"))
    return out


def _bound(run: dict[str, float], row: Row, args: argparse.Namespace) -> int:
    """At most one whoami per user per ttl (per cache): floor(D/ttl) + 1 fetches in D s."""
    return int(args.users * row.workers * (int(run["seconds"] // args.ttl) + 1))


def machine_summary(stack: Stack, wrk: str, pin: bool) -> str:
    model = ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = Path("/proc/loadavg").read_text().split()[:3]
    versions = [subprocess.run([wrk, "-v"], capture_output=True, text=True,
                               check=False).stdout.splitlines()[0].split(" [")[0]]
    if stack.nginx:
        done = subprocess.run([stack.nginx, "-v"], capture_output=True, text=True, check=False)
        versions.append(done.stderr.strip().replace("nginx version: ", ""))
    if stack.caddy:
        done = subprocess.run([stack.caddy, "version"], capture_output=True, text=True,
                              check=False)
        versions.append("caddy " + done.stdout.split()[0] if done.stdout else "caddy ?")
    a = stack.args
    return "\n".join([
        f"machine: {os.cpu_count()} cores ({model}), load average {' '.join(load)} at start",
        f"tools: {', '.join(versions)}; python {stack.python}",
        f"load: wrk -t1 -c{a.connections}, {a.users} users (random cookie per request), "
        f"GET /bench, {BODY_SIZE}-byte answer",
        f"rounds: {a.repeats} x every row (interleaved), each {a.warmup} s warm-up + "
        f"{a.duration} s measured; medians shown",
        f"stand-in: whoami latency {a.ory_latency * 1000:g} ms; gateway/floor/nginx cache "
        f"ttl {a.ttl:g} s (gateway refresh_ahead {a.refresh_ahead:g} s); "
        f"upstream: {stack.upstream_kind}",
        "columns: CPU us/req = utime+stime of the server's processes / requests; whoami/run "
        "= calls the stand-in answered during the measured run; Ory CPU = the stand-in's "
        "CPU, % of one core; cores busy = core 0 / core 1, whole machine; '-> gateway "
        "check' rows: the proxy (core 0) asks a 1-worker gateway on core 1, where Ory's "
        "stand-in sits for the direct rows; CPU us/req is both together, the gateway's own "
        "share is in the targets; their cache is warm (every user fetched once before the "
        f"rounds, ttl {a.check_ttl:g} s); '-> floor check' rows ask bench/floor_check.py "
        "instead: the least an aiohttp check can cost",
        "pinning: " + ("server under test on core 0; wrk, stand-in and upstream share core 1; "
                       "* = not pinned (both cores)" if pin else "none (fewer than 2 cores "
                       "or no taskset)"),
    ])


def run_cache_memory(python: str) -> list[tuple[str, str]]:
    argv = [python, str(BENCH / "cache_memory.py")]
    print(f"\n$ {' '.join(argv[1:])}", flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    print(done.stdout.rstrip())
    if done.returncode not in (0, 1):
        print(done.stderr.rstrip())
        return [("FAIL", f"cache_memory.py crashed ({done.returncode})")]
    found = re.findall(r"^(PASS|FAIL) (.*)$", done.stdout, re.MULTILINE)
    return [(verdict, text) for verdict, text in found]


def run_fleet(python: str, *, quick: bool) -> list[tuple[str, str]]:
    argv = [python, str(BENCH / "fleet.py"), *(["--quick"] if quick else [])]
    print(f"\n$ {' '.join(argv[1:])}", flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    print(done.stdout.rstrip())
    if done.returncode not in (0, 1):
        print(done.stderr.rstrip())
        return [("FAIL", f"fleet.py crashed ({done.returncode})")]
    found = re.findall(r"^\s*(PASS|FAIL) (.*)$", done.stdout, re.MULTILINE)
    return [(verdict, text) for verdict, text in found]


# --------------------------------------------------------------------------- profile


def profile(stack: Stack, wrk: str, pin: bool, out: Path) -> None:
    """py-spy the 1-worker gateway under the usual load; print its hottest functions."""
    py_spy = shutil.which("py-spy") or str(Path(stack.python).parent / "py-spy")
    if not Path(py_spy).exists():
        raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
    row = stack._gateway_row(1)
    stack.start_row(row)
    assert row.proc is not None
    out.mkdir(parents=True, exist_ok=True)
    seconds = stack.args.duration
    run_wrk(wrk, row.port, stack.args.warmup, stack, pin)
    for fmt, name in (("raw", "gateway.folded"), ("flamegraph", "gateway.svg")):
        spy = subprocess.Popen(
            [py_spy, "record", "--pid", str(row.proc.pid), "--duration", str(seconds),
             "--rate", "250", "--format", fmt, "-o", str(out / name)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        try:
            result = run_wrk(wrk, row.port, seconds, stack, pin)
            _, err = spy.communicate(timeout=60)
        finally:
            if spy.poll() is None:
                os.killpg(spy.pid, signal.SIGKILL)
                spy.wait()
        if spy.returncode != 0:
            raise BenchError(f"py-spy failed: {err.decode(errors='replace')[-2000:]}")
        print(f"{fmt}: {out / name} ({result['requests'] / (result['duration_us'] / 1e6):.0f} "
              "req/s while sampled)")
    print(summarise_folded(out / "gateway.folded"))


def summarise_folded(path: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [f.replace(str(ROOT) + "/", "").replace(
            str(Path(sys.prefix)) + "/", "") for f in frames]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", f"top {top} by own time:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", f"top {top} gateway functions by inclusive time:"]
    gateway = [(f, n) for f, n in inclusive.most_common() if "gateway/" in f]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in gateway[:top]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the gateway against nginx, Caddy and a minimal Python proxy.",
        epilog="Rows: gw1, gw2, gw1-obs, base (with --baseline), nginx, nginx-cache, caddy, "
               "nginx-check, caddy-check, nginx-check-floor, caddy-check-floor, floor.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="1 s warm-up + 3 s measured per round (default 5 s + 10 s)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up before each round")
    parser.add_argument("--duration", type=int, help="measured seconds per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (medians are quoted)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--ory-latency", type=float, default=0.005,
                        help="seconds the stand-in adds to every answer")
    parser.add_argument("--ttl", type=float, default=10.0, help="cache ttl (seconds)")
    parser.add_argument("--check-ttl", type=float, default=3600.0, metavar="SECONDS",
                        help="cache ttl of the gateways behind the forward-auth rows, warmed "
                             "before the rounds (default 3600: warm throughout)")
    parser.add_argument("--refresh-ahead", type=float, default=0.0, metavar="SECONDS",
                        help="the gateway's cache.refresh_ahead (default 0: off, as shipped)")
    parser.add_argument("--rows", help="comma-separated subset of the rows, e.g. gw1,floor")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also run the gateway of another checkout (with its own .venv) "
                             "as row 'base', for a before/after in one run")
    parser.add_argument("--upstream", choices=("auto", "nginx", "python"), default="auto",
                        help="static upstream: nginx when installed (auto) or the asyncio one")
    parser.add_argument("--python", default=None,
                        help="python for the children (default: the repo's .venv)")
    parser.add_argument("--json", type=Path, help="also write every round's numbers here")
    parser.add_argument("--skip-memory", action="store_true",
                        help="do not run bench/cache_memory.py")
    parser.add_argument("--fleet", action="store_true",
                        help="also run bench/fleet.py (three replicas on one Redis: Ory calls "
                             "per user per ttl, shared vs local hits, revocation propagation)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="instead of the table: py-spy the 1-worker gateway under load "
                             "and write DIR/gateway.svg and DIR/gateway.folded")
    parser.add_argument("--paired", action="store_true",
                        help="two --rows loaded at once in every round (a drift-proof A/B)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 1 if args.quick else 5
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if args.paired and len((args.rows or "").split(",")) != 2:
        parser.error("--paired needs two rows: --rows gw1,base (say)")
    return args


def find(binary: str) -> str | None:
    return shutil.which(binary) or next(
        (str(p) for d in ("/usr/sbin", "/usr/local/sbin", "/sbin")
         if (p := Path(d, binary)).exists()), None)


@contextmanager
def terminating_cleanly() -> Iterator[None]:
    """SIGTERM/SIGHUP become SystemExit and SIGINT KeyboardInterrupt, so every `finally`
    (killing the children) runs."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl-C even when started in the background by a shell that ignores SIGINT there.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find("wrk")
    if wrk is None:
        print("wrk is not installed: apt-get install -y wrk (needed for every row)",
              file=sys.stderr)
        return 2
    python = args.python or (
        str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable
    )
    nginx, caddy = find("nginx"), find("caddy")
    for name, path in (("nginx", nginx), ("caddy", caddy)):
        if path is None:
            print(f"note: {name} is not installed, its rows are skipped "
                  f"(apt-get install -y {name})", file=sys.stderr)
    pin = (os.cpu_count() or 1) >= 2 and find("taskset") is not None
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    work.chmod(0o711)  # nginx's unprivileged worker must reach its cache directory
    children = Children(work, pin)
    stack = Stack(args, children, work, python, nginx, caddy)
    started = time.monotonic()
    try:
        with terminating_cleanly():
            stack.start_shared()
            if args.profile is not None:
                profile(stack, wrk, pin, args.profile)
                return 0
            return benchmark(stack, wrk, pin, started)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        if args.keep:
            print(f"logs and configs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def benchmark(stack: Stack, wrk: str, pin: bool, started: float) -> int:
    args = stack.args
    print(machine_summary(stack, wrk, pin), flush=True)
    rows = stack.rows()
    for row in rows:
        stack.start_row(row)
    print(f"\nstarted {len(rows)} servers under test; measuring "
          f"(~{len(rows) * args.repeats * (args.warmup + args.duration + 0.5):.0f} s)",
          flush=True)
    for round_ in range(args.repeats):
        runs = (measure_pair(rows, stack, wrk, pin) if args.paired
                else (measure(row, stack, wrk, pin) for row in rows))
        for row, run in zip(rows, runs, strict=True):
            row.runs.append(run)
            print(f"  round {round_ + 1}: {row.label:<34} {run['rps']:7.0f} req/s  "
                  f"p99 {run['p99_ms']:6.2f} ms  {run['cpu_us']:5.0f} us/req  "
                  f"whoami {run['whoami']:.0f}  stand-in CPU {run['ory_cpu_pct']:.0f}%"
                  + (f"  check {run['gateway_cpu_us']:.0f} us" if row.companion else ""),
                  flush=True)
    for row in rows:
        if row.proc is not None:
            companion = process_tree(row.companion_proc.pid) if row.companion_proc else []
            row.peak_kb = max(row.peak_kb,
                              peak_rss_kb(process_tree(row.proc.pid) + companion))
    print()
    print(table(rows))
    if args.paired:
        pairs = zip(rows[0].runs, rows[1].runs, strict=True)
        ratios = sorted(b["cpu_us"] / a["cpu_us"] for a, b in pairs)
        print(f"paired: CPU/request of {rows[1].label} / {rows[0].label}, per round: "
              + " ".join(f"{r:.3f}" for r in ratios)
              + f"; median {statistics.median(ratios):.3f}")
    print(machine_summary(stack, wrk, pin).split("\n", 1)[1])
    results = verdicts({row.key: row for row in rows}, args)
    stack.children.stop_all()  # free the cores for the memory measurement
    if not args.skip_memory:
        results += run_cache_memory(stack.python)
    if args.fleet:
        results += run_fleet(stack.python, quick=args.quick)
    print("\ntargets:")
    for verdict, text in results:
        print(f"  {verdict}  {text}")
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(
            {row.key: {"label": row.label, "runs": row.runs, "peak_rss_kb": row.peak_kb}
             for row in rows}, indent=2))
    return 1 if any(verdict == "FAIL" for verdict, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
