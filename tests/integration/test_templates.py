"""`server.templates_dir` under `gateway check` (docs/reference.md#pages): every overridden
page is rendered once, and a template error is `server.templates_dir: NAME: problem`,
exit 1, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.live_gateway import ROOT

BRANDED_ERROR = """{% extends "base.html" %}
{% block content %}
<p class="brand">Acme Intranet</p>
<p class="status">{{ status }}</p>
<h1>{{ title }}</h1>
<p class="lead">{{ error.message }}</p>
{% if login %}<a href="{{ login }}">Sign in</a>{% endif %}
{% endblock %}
"""


def check(tmp_path: Path, templates: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[server]\ntemplates_dir = "{templates}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=30, env=env, cwd=ROOT,
                          check=False)


def overrides(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    directory = tmp_path / "pages"
    directory.mkdir()
    for name, content in files.items():
        if isinstance(content, bytes):
            (directory / name).write_bytes(content)
        else:
            (directory / name).write_text(content, encoding="utf-8")
    return directory


def problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line]


def test_a_valid_override_is_ok(tmp_path: Path) -> None:
    pages = overrides(tmp_path, {"error.html": BRANDED_ERROR,
                                 "style.css": ".brand { color: rgb(200, 0, 100); }\n"})
    result = check(tmp_path, pages)
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout


def test_a_template_syntax_error_names_the_page_and_line(tmp_path: Path) -> None:
    broken = BRANDED_ERROR.replace("{% if login %}", "{% if login %")
    pages = overrides(tmp_path, {"error.html": broken})
    lines = problems(check(tmp_path, pages))
    assert len(lines) == 1, lines
    assert lines[0].startswith("server.templates_dir: error.html: line 7: "), lines


@pytest.mark.parametrize("name", ["error.html", "signed_out.html", "loop.html",
                                  "sessions.html"])
def test_an_undefined_variable_names_the_page(tmp_path: Path, name: str) -> None:
    page = '{% extends "base.html" %}{% block content %}{{ no_such_name }}{% endblock %}'
    pages = overrides(tmp_path, {name: page})
    lines = problems(check(tmp_path, pages))
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"server.templates_dir: {name}: "), lines
    assert "no_such_name" in lines[0]


def test_every_broken_page_is_reported_at_once(tmp_path: Path) -> None:
    pages = overrides(tmp_path, {"error.html": "{% if %}", "loop.html": "{{ nope }}"})
    lines = problems(check(tmp_path, pages))
    assert sorted(line.split(":")[1].strip() for line in lines) == ["error.html", "loop.html"]


def test_a_missing_directory_is_reported(tmp_path: Path) -> None:
    lines = problems(check(tmp_path, tmp_path / "no-such-dir"))
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"server.templates_dir: {tmp_path / 'no-such-dir'}: "), lines


@pytest.mark.parametrize("name", ["error.html", "style.css"])
def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path, name: str) -> None:
    pages = overrides(tmp_path, {name: b"\xff\xfe caf\xe9"})
    lines = problems(check(tmp_path, pages))
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"server.templates_dir: {name}: "), lines


def test_a_base_override_is_checked_for_every_page_that_extends_it(tmp_path: Path) -> None:
    """base.html is the frame of every page (docs/reference.md#pages), so it must render
    with what each of them gets: `status` exists only for the error pages, and the
    signed-out and sessions pages, which extend it, would fail on it."""
    base = (ROOT / "templates" / "base.html").read_text(encoding="utf-8").replace(
        "<main", '{% if status >= 500 %}<p>Incident</p>{% endif %}<main')
    pages = overrides(tmp_path, {"base.html": base})
    lines = problems(check(tmp_path, pages))
    assert lines, "gateway check accepted a base.html that the signed-out page cannot render"
    assert all(line.startswith("server.templates_dir: ") for line in lines), lines


@pytest.mark.parametrize("name", ["signed_out.html", "sessions.html"])
def test_a_name_the_page_never_gets_is_reported(tmp_path: Path, name: str) -> None:
    """Checked with what the gateway passes that page, not with names of other pages
    (`status` exists only for the error pages)."""
    page = '{% extends "base.html" %}{% block content %}{{ status + 1 }}{% endblock %}'
    pages = overrides(tmp_path, {name: page})
    lines = problems(check(tmp_path, pages))
    assert lines, f"gateway check accepted a {name} that cannot render"
    assert lines[0].startswith(f"server.templates_dir: {name}: "), lines


@pytest.mark.parametrize("name", ["signed_out.html", "sessions.html", "error.html"])
def test_every_page_gets_the_request_id(tmp_path: Path, name: str) -> None:
    """Every page may show the request id (for support): the check agrees."""
    page = '{% extends "base.html" %}{% block content %}Ref {{ request_id[:8] }}{% endblock %}'
    pages = overrides(tmp_path, {name: page})
    result = check(tmp_path, pages)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
