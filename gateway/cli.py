"""`gateway serve | check | explain | demo` (docs/reference.md#command-line).

The only module that prints, exits or reads os.environ. Exit codes: 0 fine, 1 bad config
or start-up failure (message on stderr, no traceback), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import multiprocessing
import os
import secrets
import signal
import ssl
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.accesslog import BatchingHandler, flushing
from gateway.bus_local import LocalBus
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.explain import check_report, explain_request
from gateway.logs import TEXT_FORMAT, formatter
from gateway.observe import (
    MULTIPROCESS_DIR,
    NO_METRICS,
    Metrics,
    PrometheusMetrics,
    metrics_app,
    refreshing,
)
from gateway.pages import check_pages
from gateway.server import SHUTDOWN_GRACE, Stopper, start_site
from gateway.tls import TlsError, check_tls, server_context
from gateway.tls import load as load_tls

log = logging.getLogger("gateway")


class StartupError(Exception):
    """Anything that stops the gateway from starting, said in one line."""


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=TEXT_FORMAT)
    # The logging HOWTO's "Optimization": our lines never show caller, thread or process,
    # so skip collecting them on every record (the access log writes one per request).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    try:
        code = args.run(args)
    except (ConfigError, StartupError) as exc:
        print(str(exc), file=sys.stderr)
        code = 1
    sys.exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="An authenticating reverse proxy for Ory sessions."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    config_help = "path to gateway.toml (default: $GATEWAY_CONFIG, else ./gateway.toml)"
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help=config_help)
    serve.set_defaults(run=_serve)
    check = commands.add_parser("check", help="validate the config and print the routes")
    check.add_argument("--config", help=config_help)
    check.set_defaults(run=_check)
    explain = commands.add_parser("explain", help="say what would happen to one request")
    explain.add_argument("--config", help=config_help)
    explain.add_argument("method", metavar="METHOD")
    explain.add_argument("url", metavar="URL")
    explain.set_defaults(run=_explain)
    demo = commands.add_parser("demo", help="run stand-in Ory + sample app + gateway, offline")
    demo.set_defaults(run=_demo)
    health = commands.add_parser(
        "healthcheck", help="exit 0 if the local gateway answers /_auth/health (for Docker)"
    )
    health.add_argument("--config", help=config_help)
    health.set_defaults(run=_healthcheck)
    return parser


def read_config(path_arg: str | None) -> GatewayConfig:
    """The file (if any) plus GATEWAY_* overrides. No file at all is fine with env only."""
    explicit = path_arg or os.environ.get("GATEWAY_CONFIG")
    path = Path(explicit or "gateway.toml")
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StartupError(f"{path}: cannot read: {exc}") from None
    elif path.exists():
        raise StartupError(f"{path}: not a file")
    elif explicit:
        raise StartupError(f"{path}: no such config file")
    else:
        text = ""
    return load_config(text, os.environ, source=str(path))


def _check(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    _check_files(config)
    print(check_report(config))
    return 0


def _explain(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    try:
        print(explain_request(config, args.method, args.url))
    except ValueError as exc:  # urlsplit: "http://[::1" and the like
        print(f"gateway explain: error: URL {args.url!r}: {exc}", file=sys.stderr)
        return 2
    return 0


def _healthcheck(args: argparse.Namespace) -> int:
    """Needs no curl in the image: asks the gateway on its own port."""
    config = read_config(args.config)
    host = config.server.listen.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a bind-all address is reached locally
        host = "127.0.0.1" if host != "::" else "::1"
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{config.server.listen.port}{config.server.auth_prefix}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace) -> int:
    # Until the gateway can reload, a SIGHUP must not end it (its default action would).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config = read_config(args.config)
    _check_files(config)
    if config.server.workers > 1:
        return _serve_workers(config, args.config)
    return _serve_one(config, args.config)


def _check_files(config: GatewayConfig) -> None:
    """What load_config cannot see (it reads no files): TLS material and page overrides."""
    problems = check_tls(config) + check_pages(config.server.templates_dir)
    if problems:
        raise ConfigError(problems)


def _serve_one(
    config: GatewayConfig, path_arg: str | None, *, reuse_port: bool = False,
    siblings: LocalBus | None = None, multiprocess: bool = False,
) -> int:
    return run_until_signal(
        lambda: _serve_app(config, path_arg, reuse_port, siblings, multiprocess)
    )


def _serve_workers(config: GatewayConfig, path_arg: str | None) -> int:
    """N processes on one port (SO_REUSEPORT), each with its own cache; the parent only
    forwards SIGTERM/SIGINT/SIGHUP and waits, so all stop (or reload) together. Evictions
    travel between the workers (instant revocation holds), and all share one CSRF secret.
    With metrics on, the workers count in prometheus_client's multiprocess files, named
    here before anything imports it, so a scrape of any worker shows the sum."""
    if not config.server.secret:
        server = dataclasses.replace(config.server, secret=secrets.token_hex(32))
        config = dataclasses.replace(config, server=server)
    metrics_dir = None
    if config.metrics.listen is not None:
        metrics_dir = tempfile.TemporaryDirectory(prefix="gateway-metrics-")
        os.environ[MULTIPROCESS_DIR] = metrics_dir.name
    siblings = LocalBus(config.server.workers)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_worker, args=(config, path_arg, siblings, n, bool(metrics_dir)),
                        name=f"gateway-worker-{n}")
        for n in range(config.server.workers)
    ]
    for worker in workers:
        worker.start()

    def forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    for worker in workers:
        worker.join()
    if metrics_dir is not None:
        metrics_dir.cleanup()
    return 0 if all(worker.exitcode == 0 for worker in workers) else 1


def _worker(
    config: GatewayConfig, path_arg: str | None, siblings: LocalBus, index: int,
    multiprocess: bool,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until this worker can reload
    siblings.adopt(index)
    try:
        code = _serve_one(config, path_arg, reuse_port=True, siblings=siblings,
                          multiprocess=multiprocess)
    except StartupError as exc:
        print(str(exc), file=sys.stderr)
        code = 1
    if multiprocess:
        from prometheus_client import multiprocess as shared

        shared.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
    sys.exit(code)


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_until_signal(run_demo)


Starter = Callable[[], Coroutine[Any, Any, Stopper]]


def run_until_signal(start: Starter) -> int:
    """Start, wait for SIGTERM/SIGINT, stop gracefully; uvloop when available."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_until_signal(start))


async def _until_signal(start: Starter) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        cleanup = await start()
    except OSError as exc:
        raise StartupError(f"cannot start: {exc.strerror or exc}") from None
    try:
        await stop.wait()
    finally:
        log.info("stopping: letting in-flight requests finish (up to %gs)", SHUTDOWN_GRACE)
        await cleanup()
    return 0


async def _serve_app(
    config: GatewayConfig, path_arg: str | None, reuse_port: bool,
    siblings: LocalBus | None, multiprocess: bool,
) -> Stopper:
    """Build and start the gateway (and its metrics listener); SIGHUP reloads the config."""
    from gateway.app import build_app

    loop = asyncio.get_running_loop()
    early: list[None] = []  # a SIGHUP while starting is applied once started
    loop.add_signal_handler(signal.SIGHUP, early.append, None)
    _log_as(config.server.log_format)
    metrics: Metrics = NO_METRICS
    if config.metrics.listen is not None:
        metrics = PrometheusMetrics(multiprocess=multiprocess,
                                    fleet=bool(config.fleet.redis_url))
    app = await build_app(config, bus=siblings, metrics=metrics)
    tls = server_context(config)
    _settle_memory()
    resources = contextlib.AsyncExitStack()
    await resources.enter_async_context(flushing(_batched_access_log(config)))
    await resources.enter_async_context(refreshing(metrics))
    try:
        listen = config.server.listen
        runner = await start_site(app, listen.host, listen.port, "gateway",
                                  reuse_port=reuse_port, ssl_context=tls)
        resources.push_async_callback(runner.cleanup)
        if config.metrics.listen is not None:
            where = config.metrics.listen
            scrapes = await start_site(metrics_app(metrics), where.host, where.port,
                                       "gateway.metrics", reuse_port=reuse_port,
                                       access_log=False)
            resources.push_async_callback(scrapes.cleanup)
    except BaseException:
        loop.remove_signal_handler(signal.SIGHUP)
        await resources.aclose()
        raise
    loop.add_signal_handler(signal.SIGHUP, _reload, app, path_arg, tls, metrics)
    if early:
        _reload(app, path_arg, tls, metrics)

    async def stop() -> None:
        loop.remove_signal_handler(signal.SIGHUP)
        await resources.aclose()

    return stop


def _reload(
    app: web.Application, path_arg: str | None, tls: ssl.SSLContext | None, metrics: Metrics
) -> None:
    """SIGHUP: read the file and the environment again and apply what is valid; an invalid
    config changes nothing and says why, one `KEY: problem` a line."""
    from gateway.reload import apply

    try:
        config = read_config(path_arg)
        _check_files(config)
        if tls is not None and config.server.tls_cert:
            load_tls(tls, config)
    except (ConfigError, StartupError, TlsError) as exc:
        metrics.config_reload("failed")
        for line in str(exc).splitlines():
            log.error("config reload failed, nothing changed: %s", line)
        return
    for note in apply(app, config):
        log.warning("config reload: %s", note)
    _log_as(config.server.log_format)
    metrics.config_reload("ok")
    log.info("config reloaded")


def _log_as(log_format: str) -> None:
    """Every handler the gateway writes through takes the configured format."""
    for logger in (logging.getLogger(), logging.getLogger("gateway.access")):
        for handler in logger.handlers:
            handler.setFormatter(formatter(log_format))


def _settle_memory() -> None:
    """Startup objects (modules, config, templates) live forever: freeze them out of every
    collection. A request makes many short-lived containers and hardly any cycles, so young
    collections every 10 000 allocations instead of 700 cost less and stall the loop less
    often (p99 fell from ~16 to ~10 ms in bench/run.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _batched_access_log(config: GatewayConfig) -> BatchingHandler:
    """The access logger writes through its own batching handler, not per line."""
    handler = BatchingHandler(sys.stderr)
    handler.setFormatter(formatter(config.server.log_format))
    access = logging.getLogger("gateway.access")
    access.handlers = [handler]
    access.propagate = False
    return handler
