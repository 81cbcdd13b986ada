"""Where browsers are sent: safe `return_to`, login / refresh / step-up URLs, loop guard.

`return_to` never leaves our origin
(docs/reference.md#endpoints): anything doubtful falls back to "/".
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from urllib.parse import unquote, urlencode, urlsplit

from cachetools import TTLCache

from gateway.units import origin_of

LOOP_LIMIT = 3  # redirects of one browser to the login for one URL ...
LOOP_WINDOW = 30.0  # ... within this many seconds, before the loop page is shown instead
LOOP_COOKIE = "gateway_login_loop"  # names one browser for the loop guard; never forwarded
GATEWAY_COOKIES = frozenset({LOOP_COOKIE})
FALLBACK_EXTRA = 2  # cookie-less clients get this many more redirects before the loop page


def safe_return_to(value: str | None, origins: tuple[str, ...]) -> str | None:
    """A same-origin path (`/x?y#z`) for `value`, or None when it is unsafe or foreign.

    `origins` are the origins that count as ours (the request's and `public_url`).
    """
    if not value or any(ord(c) < 0x21 or ord(c) > 0x7E or c == "\\" for c in value):
        return None
    if value.startswith("/"):
        relative = value
    else:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            return None
        if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc:
            return None
        if origin_of(value) not in origins:
            return None
        relative = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        relative += f"#{parts.fragment}" if parts.fragment else ""
    decoded = unquote(relative)
    if relative.startswith("//") or decoded.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        return None
    return relative


def login_url(base: str, login_path: str, return_to: str, *, refresh: bool = False,
              aal: str | None = None) -> str:
    """`{browser_url}{login_path}?[aal=…&][refresh=true&]return_to=…`
    (docs/reference.md#outcomes)."""
    params: list[tuple[str, str]] = []
    if aal:
        params.append(("aal", aal))
    if refresh:
        params.append(("refresh", "true"))
    params.append(("return_to", return_to))
    return f"{base}{login_path}?{urlencode(params)}"


class LoopGuard:
    """Counts login redirects per browser and URL; says when it looks like a loop
    (docs/reference.md#unauthenticated-answers).

    A loop means Ory believes the browser is signed in while the gateway sees no session
    (wrong cookie name or domain). A browser is recognised by a small cookie of the gateway's
    own (host-only, so it works even when Ory's cookie does not reach us). A client that keeps
    no cookies is recognised by address, user agent and credential, with a higher limit,
    since people behind one NAT share the first two. Navigations the user started
    (`Sec-Fetch-Site: none`) are never counted.
    """

    def __init__(self, clock: Callable[[], float], *, limit: int = LOOP_LIMIT,
                 window: float = LOOP_WINDOW, max_entries: int = 50_000) -> None:
        self._limit = limit
        self._counts: TTLCache[str, int] = TTLCache(max_entries, window, timer=clock)

    def check(self, browser_cookie: str | None, fallback: str, url: str) -> tuple[bool, str | None]:
        """Record one more redirect: (is it a loop?, a new cookie value to set or None)."""
        if browser_cookie is not None:
            return self._count(f"cookie:{browser_cookie}", url) > self._limit, None
        new_cookie = new_browser_id()
        self._count(f"cookie:{new_cookie}", url)
        return self._count(f"peer:{fallback}", url) > self._limit + FALLBACK_EXTRA, new_cookie

    def _count(self, browser: str, url: str) -> int:
        key = hashlib.sha256(f"{browser}\x00{url}".encode()).hexdigest()
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count


def new_browser_id() -> str:
    """A random value for the loop cookie."""
    return secrets.token_urlsafe(12)


def loop_cookie_header(value: str) -> str:
    """Set-Cookie for the loop guard: lives as long as the window, invisible to scripts."""
    return f"{LOOP_COOKIE}={value}; Path=/; Max-Age={int(LOOP_WINDOW) * 2}; HttpOnly; SameSite=Lax"
