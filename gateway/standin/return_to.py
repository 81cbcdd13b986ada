"""`return_to` checking against the allow-list, as `x/redir/secure_redirect.go` does it
(docs/standin.md#return_to-allow-list)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit


@dataclass(frozen=True)
class AllowedUrl:
    """One allow-list entry; `host` keeps the port and may start with `*.`."""

    scheme: str
    host: str
    path: str


def _host(parts: SplitResult) -> str:
    """Go's `URL.Host`: the netloc without user info, port kept."""
    return parts.netloc.rpartition("@")[2]


def _is_safe_wildcard(host: str) -> bool:
    """Only `*.example.com`-style wildcards survive; `*`, `*.com`, `*foo.com`, `a*.b` do not."""
    if "*" not in host:
        return True
    rest = host.removeprefix("*.")
    return host.startswith("*.") and "*" not in rest and "." in rest.partition(":")[0]


def parse_allow_list(entries: Iterable[str]) -> tuple[AllowedUrl, ...]:
    """Entries must be absolute; unparseable ones and unsafe wildcards are dropped."""
    allowed = []
    for entry in entries:
        try:
            parts = urlsplit(entry.strip())
        except ValueError:
            continue
        host = _host(parts)
        if parts.scheme and host and _is_safe_wildcard(host):
            allowed.append(AllowedUrl(parts.scheme.lower(), host.lower(), parts.path))
    return tuple(allowed)


def _is_allowed(scheme: str, host: str, path: str, entry: AllowedUrl) -> bool:
    if scheme.lower() != entry.scheme:
        return False
    if entry.host.startswith("*"):
        host_ok = host.lower().endswith(entry.host[1:])
    else:
        host_ok = host.lower() == entry.host
    return host_ok and (path or "/").startswith(entry.path or "/")


def check_return_to(raw: str, allowed: Iterable[AllowedUrl], default: str) -> tuple[str, bool]:
    """(the URL to use, allowed?). Empty → the default; a relative URL borrows the default's
    scheme and host (not Kratos' own); rejected URLs are never replaced by the default."""
    if not raw:
        return default, True
    try:
        parts = urlsplit(raw)
        fallback = urlsplit(default)
    except ValueError:
        return raw, False
    scheme = parts.scheme or fallback.scheme
    netloc = parts.netloc or fallback.netloc
    url = urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))
    host = netloc.rpartition("@")[2]
    ok = any(_is_allowed(scheme, host, parts.path, entry) for entry in allowed)
    return url, ok
