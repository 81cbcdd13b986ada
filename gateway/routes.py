"""Routes compiled once from the config; first match wins
(docs/reference.md#routes, #route-match)."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.config import GatewayConfig
from gateway.errors import BadRequestError
from gateway.paths import encode_path
from gateway.routeconfig import Access, Requirement, RouteConfig

_AAL_RANK = {"aal0": 0, "aal1": 1, "aal2": 2, "aal3": 3}


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled route: what a matching request needs."""

    pattern: str
    access: Access
    methods: frozenset[str] | None
    aal: str | None
    max_age: float | None
    index: int | None  # position in [[routes]]; None for the default
    regex: re.Pattern[str] | None
    host: str | None = None  # exact or "*.example.com"; None: any host
    upstream: str | None = None  # this route's app; None: [upstream].url
    require: tuple[Requirement, ...] = ()

    @property
    def label(self) -> str | None:
        """The route as logs and metrics name it: its pattern (after its host, if it has
        one), None for the default."""
        if self.index is None:
            return None
        return self.pattern if self.host is None else f"{self.host}{self.pattern}"

    def matches(self, method: str, path: str, host: str = "") -> bool:
        """Whether this route covers the request (HEAD counts as GET); `host` as the
        client sent it, lower-case and without port."""
        if self.host is not None and not host_matches(self.host, host):
            return False
        if self.methods is not None and method not in self.methods:
            return method == "HEAD" and "GET" in self.methods and self._path_matches(path)
        return self._path_matches(path)

    def _path_matches(self, path: str) -> bool:
        return self.regex is None or self.regex.fullmatch(path) is not None

    def describe(self) -> str:
        """One line for `gateway check` / `gateway explain`."""
        where = "default" if self.index is None else f"routes[{self.index}] {self.pattern}"
        methods = ",".join(sorted(self.methods)) if self.methods else "any method"
        needs = [f"aal={self.aal}"] if self.aal else []
        if self.max_age is not None:
            needs.append(f"max_age={self.max_age:g}s")
        needs += [f"require {describe_requirement(r)}" for r in self.require]
        extra = f" ({', '.join(needs)})" if needs else ""
        host = f" host={self.host}" if self.host else ""
        upstream = f" -> upstream {self.upstream}" if self.upstream else ""
        return f"{where}{host} [{methods}] -> {self.access}{extra}{upstream}"


def describe_requirement(requirement: Requirement) -> str:
    """`identity.metadata_public.role in ["admin", "ops"]`, values as JSON (so `true` and
    `"true"` read differently, as they compare)."""
    values = [json.dumps(value, ensure_ascii=False) for value in requirement.values]
    if len(values) == 1:
        return f"{requirement.dotted} = {values[0]}"
    return f"{requirement.dotted} in [{', '.join(values)}]"


def host_matches(pattern: str, host: str) -> bool:
    """`app.example.com` exactly, or `*.example.com`: any name below example.com (not the
    bare domain itself)."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


_HOST = re.compile(
    r"(?P<name>[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?"
)


def request_host(value: str) -> str:
    """A Host header (or X-Forwarded-Host) as routes compare it: lower-case, no port, no
    trailing dot (`a.test.` is the same name as `a.test`, and must meet its routes).
    Anything but `name[:port]` or `[v6][:port]` is refused: `b.test:80:80` is `b.test` to
    nginx's virtual hosts, so it must not be "no host route" to us."""
    # Cached only when short: a name is at most 253 characters, and no client may fill the
    # cache with kilobytes of Host each.
    host = _cached_host_name(value) if len(value) <= _CACHED_UP_TO else _host_name(value)
    if host is None:
        raise BadRequestError("the Host is not a host name or address with an optional port")
    return host


_CACHED_UP_TO = 300
_LONGEST_HOST = 253 + len(".:65535")  # a full name, its root dot and a port


def _host_name(value: str) -> str | None:
    """The name of a Host value, None when it is not one."""
    host = value.strip().lower()
    if not host:
        return ""  # HTTP/1.0 without Host: only routes without a host match
    if len(host) > _LONGEST_HOST:
        return None  # no name is that long (253 characters, plus a port)
    match = _HOST.fullmatch(host)
    if match is None:
        return None
    name = match.group("name")
    return name[:-1] if name.endswith(".") else name


# A gateway serves few host names, and every request names one.
_cached_host_name = functools.lru_cache(maxsize=1024)(_host_name)


def aal_rank(aal: str) -> int:
    """Order of assurance levels; unknown or legacy "" counts as the lowest."""
    return _AAL_RANK.get(aal, 0)


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """`*` = within one segment, `**` = any depth; "/a/**" also matches "/a"."""
    out: list[str] = []
    segments = pattern.split("/")[1:]
    for position, segment in enumerate(segments):
        if segment == "**":
            out.append("(?:/.*)?" if position == len(segments) - 1 else "(?:/[^/]*)*")
            continue
        pieces = [re.escape(part) for part in segment.split("*")]
        out.append("/" + "[^/]*".join(pieces))
    return re.compile("".join(out) or "/")


def folded(path: str) -> str:
    """A path as `server.routes_ignore_case` compares it: escapes decoded (the canonical
    path keeps none that could split a segment) and each character upper-cased on its own,
    as IIS and .NET compare (`é`/`É` alike, dotless i as `I`; `ß` stays one letter)."""
    if "%" in path:
        path = unquote(path)
    if path.isascii():
        return path.upper()
    return "".join(upper if len(upper := char.upper()) == 1 else char for char in path)


class RouteTable:
    """The ordered routes plus the default; `match` is the only thing the hot path calls."""

    def __init__(self, config: GatewayConfig) -> None:
        self.fold = config.server.routes_ignore_case
        self.routes = tuple(
            _compile(route, index, self.fold) for index, route in enumerate(config.routes)
        )
        self.default = Route("**", config.default_access, None, None, None, None, None)

    def match(self, method: str, path: str, host: str = "") -> Route:
        """First route that matches, else the default."""
        if self.fold:
            path = folded(path)
        for route in self.routes:
            if route.matches(method, path, host):
                return route
        return self.default

    def depends_on_host(self, path: str) -> bool:
        """Whether requests for `path` may meet different routes by their host: a host
        route covers the path before a route every method and host stops at."""
        if self.fold:
            path = folded(path)
        for route in self.routes:
            if route._path_matches(path):
                if route.host is not None:
                    return True
                if route.methods is None:
                    return False
        return False

    def depends_on_method(self, path: str, host: str = "") -> bool:
        """Whether requests for `path` on `host` may meet different routes by their method:
        the first route covering the path and host lists methods (the others go on)."""
        if self.fold:
            path = folded(path)
        for route in self.routes:
            if route.host is not None and not host_matches(route.host, host):
                continue
            if route._path_matches(path):
                return route.methods is not None
        return False

    def claim_paths(self) -> tuple[tuple[str, ...], ...]:
        """Every session field a route requires: what the cache keeps of a session beyond
        what the gateway always needs."""
        return tuple(sorted({r.path for route in self.routes for r in route.require}))

    def shadowed(self) -> list[tuple[Route, Route]]:
        """(later, earlier) pairs where the earlier route covers every request of the later."""
        found: list[tuple[Route, Route]] = []
        for position, later in enumerate(self.routes):
            for earlier in self.routes[:position]:
                if _covers(earlier, later, self.fold):
                    found.append((later, earlier))
                    break
        return found


def _compile(route: RouteConfig, index: int, fold: bool) -> Route:
    pattern = encode_path(route.path)  # "/café" matches what browsers send: "/caf%C3%A9"
    return Route(
        pattern=pattern,
        access=route.access,
        methods=route.methods,
        aal=route.aal,
        max_age=route.max_age,
        index=index,
        regex=glob_to_regex(folded(pattern) if fold else pattern),
        host=route.host,
        upstream=route.upstream,
        require=route.require,
    )


def _covers(earlier: Route, later: Route, fold: bool) -> bool:
    """Probe the later route's pattern with sample paths; all must match the earlier one,
    for every host the later one serves."""
    if earlier.methods is not None and not (later.methods and later.methods <= earlier.methods):
        return False
    if not _host_covers(earlier.host, later.host):
        return False
    assert earlier.regex is not None  # noqa: S101 - compiled routes always have one
    later_pattern = folded(later.pattern) if fold else later.pattern
    return all(earlier.regex.fullmatch(probe) for probe in _probes(later_pattern))


def _host_covers(earlier: str | None, later: str | None) -> bool:
    """Every host `later` serves is served by `earlier` too."""
    if earlier is None or earlier == later:
        return True
    if later is None or not earlier.startswith("*."):
        return False
    return later.endswith(earlier[1:])  # "x.a.com" or "*.x.a.com" under "*.a.com"


def _probes(pattern: str) -> list[str]:
    samples = []
    for deep, star in (("", "x"), ("/p", "yz"), ("/p/q/r", ""), ("/p.q/r", "x.y")):
        text = pattern.replace("/**", deep if deep else "").replace("**", "p/q")
        samples.append(text.replace("*", star) or "/")
    return samples
