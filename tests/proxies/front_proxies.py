"""Debian's nginx and Caddy as subprocesses, configured with the README's snippets.

Each runs in its own process group with every file it writes (pid, logs, temp bodies,
Caddy's storage and autosave) under one temporary directory; nothing goes to $HOME or
/var. A start that fails shows the proxy's own log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from tests.proxies.readme import addresses, snippet, substitute

HOST = "127.0.0.1"
BINARIES = {"nginx": Path("/usr/sbin/nginx"), "caddy": Path("/usr/bin/caddy")}
START_WITHIN = 10.0  # seconds for a proxy to listen
STOP_WITHIN = 5.0  # seconds for a proxy to exit after SIGTERM, then SIGKILL
POLL_EVERY = 0.02
README_GATEWAY = "127.0.0.1:4180"
README_APP = "127.0.0.1:3000"


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def nginx_conf(prefix: Path, *, port: int, gateway_port: int, app_port: int,
               without: tuple[str, ...] = ()) -> str:
    """The README's nginx server, put in a minimal main configuration of our own; `without`:
    drop the lines that contain one of these (only to show that they matter)."""
    server = substitute(
        snippet("nginx", "nginx"),
        {README_GATEWAY: f"{HOST}:{gateway_port}", README_APP: f"{HOST}:{app_port}",
         "listen 80;": f"listen {HOST}:{port};"},
        what="nginx",
    )
    _only_our_addresses(server, port, gateway_port, app_port, what="nginx")
    server = _dropping(server, without)
    temp_paths = "\n".join(
        f"    {name}_temp_path {prefix / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'proxy.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {prefix / 'access.log'};\n{temp_paths}\n\n"
        f"{server}\n}}\n"
    )


def caddyfile(prefix: Path, *, port: int, gateway_port: int, app_port: int,
              without: tuple[str, ...] = ()) -> str:
    """The README's Caddy site, behind a global block that keeps Caddy local: no admin
    endpoint, no certificates, storage in `prefix`, listening on 127.0.0.1 only; `without`
    as for nginx_conf."""
    site = substitute(
        snippet("caddy", "caddyfile"),
        {README_GATEWAY: f"{HOST}:{gateway_port}", README_APP: f"{HOST}:{app_port}",
         "app.example.com {": f"http://{HOST}:{port} {{"},
        what="Caddy",
    )
    _only_our_addresses(site, port, gateway_port, app_port, what="Caddy")
    site = _dropping(site, without)
    return (
        "{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n"
        f"\tstorage file_system {{\n\t\troot {prefix / 'storage'}\n\t}}\n}}\n\n{site}"
    )


def _dropping(text: str, without: tuple[str, ...]) -> str:
    missing = [part for part in without if part not in text]
    assert not missing, f"the README's configuration has no line with {missing}:\n{text}"
    kept = [line for line in text.splitlines() if not any(part in line for part in without)]
    return "\n".join(kept) + "\n"


def _only_our_addresses(text: str, *ports: int, what: str) -> None:
    unexpected = addresses(text) - {f"{HOST}:{port}" for port in ports}
    assert not unexpected, (
        f"the README's {what} configuration names {sorted(unexpected)}, which the tests do not "
        f"map to a running server:\n{text}"
    )


@dataclass
class ProxyProcess:
    """One running proxy: where it listens, and its log."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    async def wait_listening(self, within: float = START_WITHIN) -> None:
        """Until the port accepts a connection; fails with the log when the proxy exits or
        `within` seconds pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.process.poll() is None:
            try:
                _, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                if loop.time() > deadline:
                    break
                await asyncio.sleep(POLL_EVERY)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise AssertionError(
            f"{self.kind} did not listen on {self.origin} within {within:g}s "
            f"(exit status {self.process.poll()}):\n{self.log_text()}"
        )

    def stop(self) -> None:
        """SIGTERM to the whole process group (master and workers), SIGKILL if it lingers."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=STOP_WITHIN)
                break
            except subprocess.TimeoutExpired:
                continue
        with suppress(ProcessLookupError):  # a worker that outlived its master
            os.killpg(self.process.pid, signal.SIGKILL)


def start_proxy(
    kind: str, prefix: Path, *, port: int, gateway_port: int, app_port: int,
    without: tuple[str, ...] = (),
) -> ProxyProcess:
    """Start `kind` ("nginx" or "caddy") on `port` in front of the gateway and the app; call
    `wait_listening` next, and `stop` in every case. `without`: see nginx_conf."""
    binary = str(BINARIES[kind])
    log = prefix / "proxy.log"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(prefix),
           "XDG_DATA_HOME": str(prefix / "data"), "XDG_CONFIG_HOME": str(prefix / "config")}
    if kind == "nginx":
        config = prefix / "nginx.conf"
        config.write_text(nginx_conf(prefix, port=port, gateway_port=gateway_port,
                                     app_port=app_port, without=without), encoding="utf-8")
        argv = [binary, "-p", str(prefix), "-c", str(config), "-e", str(log)]
    else:
        config = prefix / "Caddyfile"
        config.write_text(caddyfile(prefix, port=port, gateway_port=gateway_port,
                                    app_port=app_port, without=without), encoding="utf-8")
        argv = [binary, "run", "--config", str(config), "--adapter", "caddyfile"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            cwd=prefix, env=env, start_new_session=True,
        )
    return ProxyProcess(kind, port, process, log)
