"""How lenient upstream servers read a path the gateway forwards (the oracle of the corpus).

Each advisory in the path class is one server reading a path differently from the proxy in
front of it: decoding twice (IIS), backslash as slash (Windows, many frameworks), `;`
parameters dropped (Tomcat, Jetty), NUL ending the string (C), `#` / `?` found after decoding,
dot segments resolved after decoding. `readings()` gives every path such a server might
route to; a request is safe only if none of them is a protected route.
"""

from __future__ import annotations

import itertools
import re
from urllib.parse import unquote

from gateway.routes import RouteTable

_PARAMS = re.compile(r";[^/]*")
_SLASHES = re.compile(r"/{2,}")


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on an already split path: `..` never climbs above the root."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _read(path: str, *, drop_params: bool) -> str:
    path = path.split("\x00", 1)[0].split("#", 1)[0].split("?", 1)[0]
    path = path.replace("\\", "/")
    if drop_params:
        path = _PARAMS.sub("", path)
    if not path.startswith("/"):
        path = "/" + path
    return _SLASHES.sub("/", remove_dot_segments(_SLASHES.sub("/", path)))


def readings(raw_path: str) -> frozenset[str]:
    """Every path (no query) a lenient server might route the raw `raw_path` to."""
    raw_path = raw_path.split("?", 1)[0]
    once = unquote(raw_path, errors="replace")
    twice = unquote(once, errors="replace")
    return frozenset(
        _read(candidate, drop_params=drop)
        for candidate, drop in itertools.product((raw_path, once, twice), (False, True))
    )


def protected_readings(raw_path: str, routes: RouteTable) -> list[str]:
    """The readings of `raw_path` that land on an authenticated or deny route."""
    return sorted(
        reading
        for reading in readings(raw_path)
        if routes.match("GET", reading).access in ("authenticated", "deny")
    )


def denied_readings(raw_path: str, routes: RouteTable) -> list[str]:
    """The readings of `raw_path` that land on a deny route."""
    return sorted(
        reading for reading in readings(raw_path) if routes.match("GET", reading).access == "deny"
    )
