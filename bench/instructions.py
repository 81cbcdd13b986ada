#!/usr/bin/env python3
"""Instructions per proxied request, counted by valgrind: an A/B of the gateway's CPU work
that the machine's drift cannot blur (docs/performance.md).

    python bench/instructions.py                             # this checkout, ~3 minutes
    python bench/instructions.py --baseline ../wt-before     # and another, with the ratio

Each gateway runs under `valgrind --tool=callgrind` twice, serving N1 and then N2 requests
(session-cache hits for 50 users, after a warm-up) over C keep-alive connections; then
instructions per request = (I(N2) - I(N1)) / (N2 - N1), so start-up and shutdown cancel
out. With C=1 a count repeats within about 0.1 %; with more connections, within about 1 %
(how requests share a turn of the loop varies). What the kernel does for the process
(system calls, the network stack) is not counted: for CPU time as a whole, use
`bench/run.py --paired`.

Needs valgrind (Debian package); children run under each checkout's .venv.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    BENCH,
    BODY_SIZE,
    COOKIE,
    HOST,
    ROOT,
    BenchError,
    Children,
    find,
    free_port,
    gateway_toml,
    wait_port,
)

USERS = 50
WARM = 200  # requests before either count: every user's session is cached by then


# What each kind of request looks like: a client's, or a proxy's check describing it (the
# headers Debian's nginx and Caddy send with the bench's configs, bench/run.py).
REQUESTS = {
    "proxy": "GET /bench HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n",
    "nginx": ("GET /_auth/check/nginx HTTP/1.1\r\nX-Original-Method: GET\r\n"
              "X-Original-URI: /bench\r\nX-Forwarded-Host: 127.0.0.1\r\n"
              "X-Forwarded-Proto: http\r\nHost: gateway\r\nCookie: {cookie}\r\n\r\n"),
    "caddy": ("GET /_auth/check HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
              "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Host: {host}\r\n"
              "X-Forwarded-Method: GET\r\nX-Forwarded-Proto: http\r\n"
              "X-Forwarded-Uri: /bench\r\nAccept-Encoding: gzip\r\n\r\n"),
}


async def _load(port: int, cookies: list[str], requests: int, connections: int,
                kind: str = "proxy") -> None:
    """`requests` keep-alive requests over `connections` connections, one at a time on
    each."""
    template = REQUESTS[kind]

    async def one_connection(share: int, offset: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for i in range(share):
                cookie = cookies[(offset + i) % len(cookies)]
                writer.write(template.format(host=f"{HOST}:{port}",
                                             cookie=f"{COOKIE}={cookie}").encode())
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise BenchError(f"the gateway answered {head[:40]!r}")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                if length is None:
                    raise BenchError("an answer without Content-Length")
                await reader.readexactly(int(length.group(1)))
        finally:
            writer.close()

    share = requests // connections
    await asyncio.gather(*(one_connection(share, c * 7) for c in range(connections)))


def _instructions(checkout: Path, requests: int, args: argparse.Namespace,
                  children: Children, work: Path, ports: tuple[int, int],
                  cookies: list[str]) -> int:
    """Instructions of one gateway process that served WARM + `requests` requests."""
    port = free_port()
    config = work / f"gateway-{port}.toml"
    config.write_text(gateway_toml(port, ports[0], ports[1], 1, 600.0, 0.0,
                                   checks=args.request != "proxy"))
    out = work / f"callgrind-{port}.out"
    python = checkout / ".venv" / "bin" / "python"
    name = f"gateway-{port}"
    server = ["-m", "gateway", "serve", "--config", str(config)]
    if args.floor:
        server = [str(BENCH / "floor_check.py"), "--port", str(port),
                  "--ory", f"http://{HOST}:{ports[0]}", "--ttl", "600"]
    proc = children.start(
        name, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(python),
               *server],
        cpus=None, cwd=checkout,
    )
    try:
        wait_port(port, proc, name, children, timeout=300)
        asyncio.run(_load(port, cookies, WARM, args.connections, args.request))
        asyncio.run(_load(port, cookies, requests, args.connections, args.request))
    finally:
        proc.terminate()  # SIGTERM: the gateway stops, callgrind writes its counts
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            children.stop(proc)
    match = re.search(r"^(?:totals|summary): (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise BenchError(f"no totals in {out}:\n{children.log_tail(name)}")
    return int(match.group(1))


def per_request(checkout: Path, args: argparse.Namespace, children: Children, work: Path,
                ports: tuple[int, int], cookies: list[str]) -> float:
    fewer = _instructions(checkout, args.n1, args, children, work, ports, cookies)
    more = _instructions(checkout, args.n2, args, children, work, ports, cookies)
    return float(more - fewer) / (args.n2 - args.n1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also count another checkout (with its own .venv)")
    parser.add_argument("--connections", type=int, default=1, help="C (default 1)")
    parser.add_argument("--n1", type=int, default=400)
    parser.add_argument("--n2", type=int, default=1400)
    parser.add_argument("--request", choices=sorted(REQUESTS), default="proxy",
                        help="a proxied request (default), or nginx's / Caddy's check")
    parser.add_argument("--floor", action="store_true",
                        help="count bench/floor_check.py instead of the gateway (a check)")
    args = parser.parse_args(argv)
    if args.floor and args.request == "proxy":
        parser.error("--floor answers checks only: add --request nginx (or caddy)")
    if find("valgrind") is None:
        print("bench/instructions.py needs valgrind: apt-get install -y valgrind",
              file=sys.stderr)
        return 2
    checkouts = [ROOT] + ([args.baseline.resolve()] if args.baseline else [])
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-instructions-") as tmp:
        work = Path(tmp)
        children = Children(work, pin=False)
        try:
            ory_port, upstream_port = free_port(), free_port()
            cookies_file = work / "cookies.txt"
            python = str(ROOT / ".venv" / "bin" / "python")
            ory = children.start("standin", [
                python, str(BENCH / "standin_server.py"), "--port", str(ory_port),
                "--users", str(USERS), "--ory-latency", "0",
                "--cookies-file", str(cookies_file)], cpus=None)
            upstream = children.start("upstream", [
                python, str(BENCH / "upstream_server.py"), "--port", str(upstream_port),
                "--body-size", str(BODY_SIZE)], cpus=None)
            wait_port(ory_port, ory, "standin", children, timeout=60)
            wait_port(upstream_port, upstream, "upstream", children)
            cookies = [c for c in cookies_file.read_text().splitlines() if c]
            counts = {}
            for checkout in checkouts:
                counts[checkout] = per_request(
                    checkout, args, children, work, (ory_port, upstream_port), cookies
                )
                print(f"{checkout.name}: {counts[checkout]:,.0f} instructions per request "
                      f"({args.connections} connection(s), {args.n2 - args.n1} requests)")
            if args.baseline:
                base = counts[checkouts[1]]
                print(f"ratio baseline / this checkout: {base / counts[ROOT]:.3f}")
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            children.stop_all()
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
