"""`[[routes]]` tables -> RouteConfig, every problem as `KEY: problem`
(docs/reference.md#routes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gateway.parsing import Problems, T, list_of, positive_duration, string
from gateway.units import parse_base_url

Access = Literal["public", "optional", "authenticated", "deny"]
ACCESS_LEVELS: tuple[Access, ...] = ("public", "optional", "authenticated", "deny")
AAL_LEVELS = ("aal1", "aal2", "aal3")
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
Value = str | int | float | bool  # a JSON scalar a requirement compares with
_HOST = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_DOTTED = re.compile(r"[^.\s]+(\.[^.\s]+)*")


def parse_access(value: Any) -> Access:
    text = string(value)
    for level in ACCESS_LEVELS:
        if text == level:
            return level
    raise ValueError(f"{text!r} is not one of {list(ACCESS_LEVELS)}")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One `[routes.require]` entry: the session field at `path` must equal one of
    `values` (or, when the field is a list, hold one of them)."""

    path: tuple[str, ...]
    values: tuple[Value, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """One `[[routes]]` entry, as written (compiled by routes.py)."""

    path: str
    access: Access = "authenticated"
    methods: frozenset[str] | None = None
    aal: str | None = None
    max_age: float | None = None
    host: str | None = None  # exact, or "*.example.com"; lower-case, no port
    upstream: str | None = None  # this route's app instead of [upstream].url
    require: tuple[Requirement, ...] = ()


_ROUTE_KEYS = ("path", "methods", "access", "aal", "max_age", "host", "upstream", "require")


def load_routes(items: Any, problems: Problems) -> tuple[RouteConfig, ...]:
    if not isinstance(items, list):
        problems.add("routes", "expected [[routes]] tables")
        return ()
    routes: list[RouteConfig] = []
    for index, item in enumerate(items):
        where = f"routes[{index}]"
        if not isinstance(item, dict):
            problems.add(where, "expected a table")
            continue
        route = _load_route(item, where, problems)
        if route is not None:
            routes.append(route)
    return tuple(routes)


def _load_route(item: dict[str, Any], where: str, problems: Problems) -> RouteConfig | None:
    before = len(problems.lines)
    for key in item:
        if key not in _ROUTE_KEYS:
            problems.unknown(f"{where}.{key}", key, _ROUTE_KEYS)
    path = _route_field(item, "path", where, _route_path, problems)
    access = _route_field(item, "access", where, parse_access, problems)
    methods = _route_field(item, "methods", where, _methods, problems)
    aal = _route_field(item, "aal", where, _aal, problems)
    max_age = _route_field(item, "max_age", where, positive_duration, problems)
    host = _route_field(item, "host", where, _host, problems)
    upstream = _route_field(item, "upstream", where, lambda v: parse_base_url(string(v)),
                            problems)
    require = _load_require(item.get("require"), f"{where}.require", problems)
    if "path" not in item:
        problems.add(f"{where}.path", "is required")
    if access is None and "access" not in item:
        access = "authenticated"
    needs_session = (
        aal is not None or max_age is not None or bool(require)
    ) and access != "authenticated"
    if needs_session and access is not None:
        what = "aal" if aal is not None else "max_age" if max_age is not None else "require"
        problems.add(
            f"{where}.{what}",
            f'requires a session, which access = "{access}" does not ask for;'
            ' use access = "authenticated"',
        )
    if len(problems.lines) > before or path is None or access is None:
        return None
    return RouteConfig(path=path, access=access, methods=methods, aal=aal, max_age=max_age,
                       host=host, upstream=upstream, require=require)


def _host(value: Any) -> str:
    """`app.example.com` or `*.example.com`: matched against the Host the client sent,
    case-insensitively and without its port."""
    text = string(value).strip().lower()
    if not _HOST.fullmatch(text) or len(text) > 253:
        raise ValueError('must be a host name such as "admin.example.com" or '
                         '"*.example.com" (no scheme, port or path)')
    return text


def _load_require(table: Any, where: str, problems: Problems) -> tuple[Requirement, ...]:
    """`{"dotted.path" = value | [values]}`: strings, numbers and booleans only."""
    if table is None:
        return ()
    if not isinstance(table, dict) or not table:
        problems.add(where, 'expected a table such as { "identity.metadata_public.role" = '
                            '"admin" }')
        return ()
    found = []
    for path, raw in table.items():
        key = f'{where}."{path}"'
        if not _DOTTED.fullmatch(path):
            problems.add(key, "expected a dotted path into the session, e.g. "
                              '"identity.traits.email"')
            continue
        values = raw if isinstance(raw, list) else [raw]
        if not values:
            problems.add(key, "an empty list can never be met; list at least one value")
            continue
        wrong = [v for v in values if not isinstance(v, str | int | float | bool)]
        if wrong:
            problems.add(key, f"values must be strings, numbers or booleans, not "
                              f"{type(wrong[0]).__name__}")
            continue
        found.append(Requirement(tuple(path.split(".")), tuple(values)))
    return tuple(found)


def _route_field(
    item: dict[str, Any], key: str, where: str, parse: Callable[[Any], T], problems: Problems
) -> T | None:
    if key not in item:
        return None
    try:
        return parse(item[key])
    except ValueError as exc:
        problems.add(f"{where}.{key}", str(exc))
        return None


def _route_path(value: Any) -> str:
    text = string(value)
    if not text.startswith("/"):
        raise ValueError('must start with "/"')
    segments = text.split("/")[1:]
    for segment in segments:
        if segment in (".", ".."):
            raise ValueError("must not contain . or .. segments")
        if "**" in segment and segment != "**":
            raise ValueError('"**" must be a whole segment, e.g. "/static/**"')
    if "//" in text or any(c in text for c in "?#\\;%") or any(c.isspace() for c in text):
        raise ValueError("must be a plain path (no //, ?, #, \\, ;, % or spaces)")
    return text


def _methods(value: Any) -> frozenset[str]:
    names = list_of(string)(value)
    if not names:
        raise ValueError("must list at least one method (leave it out to allow all)")
    upper = frozenset(n.upper() for n in names)
    unknown = sorted(upper - HTTP_METHODS)
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}")
    return upper


def _aal(value: Any) -> str:
    text = string(value).lower()
    if text not in AAL_LEVELS:
        raise ValueError(f"{value!r} is not one of {list(AAL_LEVELS)}")
    return text


def check_routes_against_prefix(
    routes: tuple[RouteConfig, ...], prefix: str, problems: Problems
) -> None:
    for index, route in enumerate(routes):
        if route.path == prefix or route.path.startswith(prefix + "/"):
            problems.add(
                f"routes[{index}].path",
                f"lies under auth_prefix {prefix!r}, which the gateway answers itself",
            )
