"""docs/reference.md#command-line: the command line, run as a real subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=30,
        env={**os.environ, **(env or {})}, cwd=cwd, check=False,
    )


def test_check_accepts_the_example_config() -> None:
    result = run("check", "--config", str(ROOT / "gateway.toml"))
    assert result.returncode == 0, result.stderr
    assert "routes[2] /admin/** [any method] -> authenticated (aal=aal2)" in result.stdout
    assert "default [any method] -> authenticated" in result.stdout


def test_check_reports_every_problem_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nlistn = "x"\n[cache]\nttl = "10 s"\n[[routes]]\npath = "/a"\n'
                      'access = "public"\naal = "aal2"\n')
    result = run("check", "--config", str(config))
    assert result.returncode == 1
    assert 'server.listn: unknown key (did you mean "listen"?)' in result.stderr
    assert "cache.ttl:" in result.stderr
    assert "routes[0].aal:" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_warns_about_a_route_that_can_never_match(tmp_path: Path) -> None:
    config = tmp_path / "shadow.toml"
    config.write_text('[[routes]]\npath = "/a/**"\naccess = "public"\n'
                      '[[routes]]\npath = "/a/b"\naccess = "deny"\n')
    result = run("check", "--config", str(config))
    assert result.returncode == 0
    assert "routes[1]: can never match" in result.stdout


def test_missing_explicit_config_is_exit_1(tmp_path: Path) -> None:
    result = run("check", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert "no such config file" in result.stderr


def test_config_path_that_is_a_directory_says_so(tmp_path: Path) -> None:
    result = run("check", "--config", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path}: not a file" in result.stderr


def test_toml_syntax_error_names_the_file_given(tmp_path: Path) -> None:
    config = tmp_path / "prod.toml"
    config.write_text("[server\n")
    result = run("check", "--config", str(config))
    assert result.returncode == 1
    assert f"{config}: not valid TOML" in result.stderr
    assert "Traceback" not in result.stderr


def test_explain_of_a_malformed_url_is_a_usage_error() -> None:
    result = run("explain", "--config", str(ROOT / "gateway.toml"), "GET", "http://[::1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Invalid IPv6 URL" in result.stderr


def test_usage_error_is_exit_2() -> None:
    assert run("bogus").returncode == 2
    assert run("explain", "GET").returncode == 2


def test_explain_names_route_and_outcome() -> None:
    result = run("explain", "--config", str(ROOT / "gateway.toml"), "GET",
                 "https://app.example.com/internal/x?y=1")
    assert result.returncode == 0
    assert "routes[3] /internal/**" in result.stdout
    assert "403" in result.stdout


def test_env_only_configuration_works(tmp_path: Path) -> None:
    result = run("check", env={"GATEWAY_UPSTREAM_URL": "http://app:8080",
                               "GATEWAY_ORY_URL": "https://auth.example.com"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "upstream: http://app:8080" in result.stdout


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    result = run("check", env={"GATEWAY_LISTEN": "nonsense"}, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("GATEWAY_LISTEN (server.listen):")


@contextlib.contextmanager
def serving(tmp_path: Path, toml: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`gateway serve` with this config, once it logs "listening on URL": (process, URL)."""
    config = tmp_path / "gateway.toml"
    config.write_text(toml)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 20
        url = ""
        while time.monotonic() < deadline and not url:
            line = process.stderr.readline()
            match = re.search(r"listening on (http://\S+)", line)
            url = match.group(1) if match else ""
        assert url, "the gateway never logged its listening line"
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    toml = '[server]\nlisten = "127.0.0.1:0"\n[ory]\nurl = "http://127.0.0.1:9"\n'
    with serving(tmp_path, toml) as pair:
        yield pair


def test_serve_answers_health_and_stops_cleanly_on_sigterm(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    process, url = served
    with urllib.request.urlopen(url + "/_auth/health", timeout=5) as response:
        assert response.status == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_serve_fails_closed_when_ory_is_unreachable(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    _, url = served
    request = urllib.request.Request(
        url + "/private", headers={"Cookie": "ory_kratos_session=x", "Accept": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 503
    caught.value.close()


def test_port_in_use_is_exit_1_without_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", env={"GATEWAY_LISTEN": f"127.0.0.1:{port}"}, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot start" in result.stderr


def test_workers_share_one_port_and_stop_together(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "gateway.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 2\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert process.stderr is not None
        listening = 0
        deadline = time.monotonic() + 20
        while listening < 2 and time.monotonic() < deadline:
            listening += "listening on" in process.stderr.readline()
        assert listening == 2
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_auth/health", timeout=5) as r:
            assert r.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


def test_demo_starts_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import socket

    for port in (4180, 4433, 3000):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is in use; the demo needs it")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        seen = ""
        deadline = time.monotonic() + 20
        while "Ctrl-C" not in seen and time.monotonic() < deadline:
            seen += process.stdout.readline()
        assert "http://127.0.0.1:4180/" in seen
        assert "alice@example.com" in seen
        with urllib.request.urlopen("http://127.0.0.1:4180/public/", timeout=5) as r:
            assert r.status == 200
        request = urllib.request.Request("http://127.0.0.1:4180/",
                                         headers={"Accept": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 401
        caught.value.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


@pytest.mark.parametrize("enabled", [True, False], ids=["access-log-on", "access-log-off"])
def test_access_log_lines_are_written_by_stop_or_not_at_all(tmp_path: Path, enabled: bool) -> None:
    toml = f'[server]\nlisten = "127.0.0.1:0"\naccess_log = {"true" if enabled else "false"}\n'
    with serving(tmp_path, toml) as (process, url):
        with urllib.request.urlopen(url + "/_auth/health?k=v", timeout=5) as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=20)
    access = [line for line in rest.splitlines() if "gateway.access" in line]
    if enabled:
        assert len(access) == 1
        assert "GET /_auth/health?… 200" in access[0]
    else:
        assert access == []
