"""The gateway's HTML pages: built-in templates, each replaceable from `server.templates_dir`
(docs/reference.md#pages).

An operator's directory may hold any of the page templates and `style.css`; whatever it
does not hold comes from the built-in set, so overriding one page never breaks another.
Autoescaping is always on.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
from aiohttp import web

from gateway.errors import SessionRequiredError

_PACKAGE_DIR = Path(__file__).resolve().parent
# base.html first: the frame the others extend, never rendered on its own.
PAGES = (
    "base.html", "error.html", "forbidden.html", "loop.html", "sessions.html",
    "signed_out.html",
)
STYLESHEET = "style.css"


@cache
def builtin_dir() -> Path:
    """The wheel ships `templates/` inside the package; a checkout keeps it at the top."""
    for candidate in (_PACKAGE_DIR / "templates", _PACKAGE_DIR.parent / "templates"):
        if (candidate / "base.html").is_file():
            return candidate
    raise FileNotFoundError("templates/ not found beside the gateway package")


@cache
def builtin_stylesheet() -> str:
    """The one small stylesheet every page inlines (no external assets)."""
    return (builtin_dir() / STYLESHEET).read_text(encoding="utf-8")


class Pages:
    """Renders the pages; `override` is `server.templates_dir` ("" = built-in only)."""

    def __init__(self, override: str = "", *, strict: bool = False) -> None:
        """`strict`: a name the template uses but the context lacks is an error (checks)."""
        self.override = Path(override) if override else None
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(builtin_dir()))]
        if self.override is not None:
            loaders.insert(0, jinja2.FileSystemLoader(str(self.override)))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders), autoescape=True, auto_reload=False,
            undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
        )
        own = self.override / STYLESHEET if self.override is not None else None
        self.stylesheet = (
            own.read_text(encoding="utf-8") if own is not None and own.is_file()
            else builtin_stylesheet()
        )

    def render(self, name: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
        """The page as an answer, never cached by anyone."""
        html = self._env.get_template(name).render(stylesheet=self.stylesheet, **context)
        return web.Response(
            text=html, status=status, content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    def overridden(self) -> list[str]:
        """The operator's files that replace built-in ones."""
        if self.override is None:
            return []
        return [name for name in (*PAGES, STYLESHEET) if (self.override / name).is_file()]


def check_pages(override: str) -> list[str]:
    """`server.templates_dir: problem` lines: the directory is readable and each page it
    overrides renders once with sample data (`gateway check`)."""
    if not override:
        return []
    where = Path(override)
    if not where.is_dir():
        return [f"server.templates_dir: {override}: not a readable directory"]
    try:
        pages = Pages(override, strict=True)
    except (OSError, UnicodeDecodeError) as exc:
        return [f"server.templates_dir: {STYLESHEET}: cannot read: {exc}"]
    problems = []
    # Every page, not only the overridden ones: a page that is not overridden still extends
    # an overridden base.html, and each is rendered with exactly what the gateway gives it.
    for name in (PAGES[1:] if pages.overridden() else ()):
        try:
            pages.render(name, sample_context(name))
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"server.templates_dir: {name}: line {exc.lineno}: {exc.message}")
        except (jinja2.TemplateError, OSError, UnicodeDecodeError, TypeError) as exc:
            problems.append(f"server.templates_dir: {name}: {type(exc).__name__}: {exc}")
    return problems


def sample_context(name: str) -> dict[str, Any]:
    """What each page is rendered with (the same names the gateway passes: every page gets
    `title` and `request_id`, then its own), for checks."""
    error = SessionRequiredError()
    common: dict[str, Any] = {"title": "Sample", "request_id": "0123456789abcdef"}
    if name in ("error.html", "loop.html", "forbidden.html"):
        extra = {"signed_in_as": "alice@example.com", "return_to": "https://app/admin/"} \
            if name == "forbidden.html" else {}
        return {**common, "error": error, "status": error.status, "login": "https://login",
                "cookie_name": "ory_kratos_session", "auth_prefix": "/_auth", **extra}
    if name == "sessions.html":
        device = SimpleNamespace(ip_address="192.0.2.1", location="Berlin", label="Firefox")
        here = SimpleNamespace(id="id-1", aal="aal2", current=True, devices=[device],
                               authenticated_at=0.0, expires_at=0.0, label="Firefox")
        there = SimpleNamespace(id="id-2", aal="aal1", current=False, devices=[],
                                authenticated_at=0.0, expires_at=None, label="")
        return {**common, "sessions": [here, there], "csrf_token": "token", "prefix": "/_auth",
                "flash": None, "when": lambda seconds: "2026-01-01 00:00 UTC",
                "iso": lambda seconds: "2026-01-01T00:00:00Z"}
    return {**common, "sign_in": "/"}
