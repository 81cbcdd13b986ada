"""Route globs, first match wins, methods and shadowed routes (docs/reference.md#routes)."""

from __future__ import annotations

import pytest

from gateway.config import GatewayConfig, load_config
from gateway.paths import canonical_path
from gateway.routeconfig import Access, RouteConfig
from gateway.routes import RouteTable, aal_rank, glob_to_regex


def table(text: str) -> RouteTable:
    return RouteTable(load_config(text, {}))


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/a", "/a", True),
        ("/a", "/a/", False),
        ("/a", "/ab", False),
        ("/a", "/A", False),
        ("/", "/", True),
        ("/", "/a", False),
        ("/a/*", "/a/x", True),
        ("/a/*", "/a/", True),
        ("/a/*", "/a", False),
        ("/a/*", "/a/x/y", False),
        ("/a/*/c", "/a/b/c", True),
        ("/a/*/c", "/a/b/b/c", False),
        ("/*.css", "/site.css", True),
        ("/*.css", "/dir/site.css", False),
        ("/*.css", "/sitexcss", False),
        ("/a*b", "/axyzb", True),
        ("/a*b", "/ax/b", False),
        ("/a/**", "/a", True),
        ("/a/**", "/a/", True),
        ("/a/**", "/a/b", True),
        ("/a/**", "/a/b/c/d", True),
        ("/a/**", "/ab", False),
        ("/a/**", "/b/a", False),
        ("/a/**/z", "/a/z", True),
        ("/a/**/z", "/a/b/c/z", True),
        ("/a/**/z", "/a/b/c/zz", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("/a.b/(x)+[y]", "/a.b/(x)+[y]", True),
        ("/a.b", "/axb", False),
    ],
    ids=lambda value: str(value),
)
def test_glob_matches_as_documented(pattern: str, path: str, matches: bool) -> None:
    assert (glob_to_regex(pattern).fullmatch(path) is not None) is matches


def test_first_matching_route_wins() -> None:
    routes = table("""
[[routes]]
path = "/a/public"
access = "public"
[[routes]]
path = "/a/**"
access = "deny"
[[routes]]
path = "/a/other"
access = "optional"
""")

    assert routes.match("GET", "/a/public").index == 0
    assert routes.match("GET", "/a/other").access == "deny"
    assert routes.match("GET", "/a/other").index == 1


@pytest.mark.parametrize(
    ("methods", "method", "matches"),
    [
        ('["GET"]', "GET", True),
        ('["GET"]', "HEAD", True),
        ('["GET"]', "POST", False),
        ('["HEAD"]', "GET", False),
        ('["HEAD"]', "HEAD", True),
        ('["post", "Put"]', "POST", True),
        ('["post", "Put"]', "PUT", True),
        ('["post", "Put"]', "GET", False),
        ('["post", "Put"]', "HEAD", False),
        (None, "DELETE", True),
        (None, "OPTIONS", True),
    ],
    ids=[
        "get", "head-implied-by-get", "post-not-get", "get-not-implied-by-head", "head",
        "lower-case-config", "mixed-case-config", "get-not-listed", "head-needs-get",
        "all-delete", "all-options",
    ],
)
def test_route_methods_decide_match(methods: str | None, method: str, matches: bool) -> None:
    listed = f"methods = {methods}\n" if methods else ""
    routes = table(f'[[routes]]\npath = "/x"\naccess = "public"\n{listed}')

    assert (routes.match(method, "/x").index == 0) is matches


@pytest.mark.parametrize("default", ["public", "optional", "authenticated", "deny"])
def test_unmatched_request_gets_default_route(default: Access) -> None:
    routes = RouteTable(
        GatewayConfig(routes=(RouteConfig("/a", "public"),), default_access=default)
    )

    route = routes.match("GET", "/b")

    assert route is routes.default
    assert route.access == default
    assert route.index is None
    assert route.describe() == f"default [any method] -> {default}"


def test_route_carries_requirements() -> None:
    routes = table('[[routes]]\npath = "/admin/**"\naal = "aal2"\nmax_age = "10m"')

    route = routes.match("POST", "/admin/users")

    assert (route.access, route.aal, route.max_age) == ("authenticated", "aal2", 600.0)
    assert route.describe() == "routes[0] /admin/** [any method] -> authenticated " \
        "(aal=aal2, max_age=600s)"


@pytest.mark.parametrize(
    ("aal", "rank"),
    [("aal0", 0), ("aal1", 1), ("aal2", 2), ("aal3", 3), ("", 0), ("weird", 0)],
    ids=["aal0", "aal1", "aal2", "aal3", "legacy-empty", "unknown"],
)
def test_aal_rank_orders_levels(aal: str, rank: int) -> None:
    assert aal_rank(aal) == rank


def _route(path: str, methods: str | None = None) -> str:
    listed = f"methods = {methods}\n" if methods else ""
    return f'[[routes]]\npath = "{path}"\naccess = "public"\n{listed}'


@pytest.mark.parametrize(
    ("routes", "shadowed"),
    [
        ([_route("/a/**"), _route("/a/b")], [(1, 0)]),
        ([_route("/a/**"), _route("/a")], [(1, 0)]),
        ([_route("/a/**"), _route("/a/b/**")], [(1, 0)]),
        ([_route("/**"), _route("/x"), _route("/y/*")], [(1, 0), (2, 0)]),
        ([_route("/a/*"), _route("/a/b")], [(1, 0)]),
        ([_route("/a/*/c"), _route("/a/b/c")], [(1, 0)]),
        ([_route("/*.css"), _route("/site.css")], [(1, 0)]),
        ([_route("/a/*"), _route("/a/x*")], [(1, 0)]),
        ([_route("/a/b"), _route("/a/b")], [(1, 0)]),
        ([_route("/a/**", '["GET", "POST"]'), _route("/a/b", '["GET"]')], [(1, 0)]),
        ([_route("/x"), _route("/a/**"), _route("/a/b")], [(2, 1)]),
        ([_route("/a/*"), _route("/a/**")], []),
        ([_route("/a/b"), _route("/a/*")], []),
        ([_route("/a/b"), _route("/a/**")], []),
        ([_route("/a/*"), _route("/a/*/b")], []),
        ([_route("/a/**/c"), _route("/a/**")], []),
        ([_route("/a/x"), _route("/a/*")], []),
        ([_route("/p/**"), _route("/**")], []),
        ([_route("/ab/**"), _route("/a/**")], []),
        ([_route("/*x*"), _route("/*")], []),
        ([_route("/*.*"), _route("/*")], []),
        ([_route("/a/**", '["GET"]'), _route("/a/b")], []),
        ([_route("/a/**", '["GET"]'), _route("/a/b", '["POST"]')], []),
        ([_route("/a/**", '["GET"]'), _route("/a/b", '["GET", "POST"]')], []),
    ],
    ids=[
        "glob-then-exact", "glob-then-its-root", "glob-then-narrower-glob", "catch-all-first",
        "star-then-exact", "inner-star-then-exact", "extension-then-file", "star-then-prefix",
        "duplicate", "methods-superset", "only-later-pair", "star-before-double-star",
        "exact-before-star", "exact-before-glob", "star-before-deeper", "inner-glob-before-glob",
        "exact-before-star-2", "narrow-before-catch-all", "sibling-prefix",
        "letter-star-before-star", "dotted-before-star", "earlier-methods-narrower",
        "disjoint-methods", "later-methods-wider",
    ],
)
def test_shadowed_routes_are_found(routes: list[str], shadowed: list[tuple[int, int]]) -> None:
    found = table("\n".join(routes)).shadowed()

    assert [(later.index, earlier.index) for later, earlier in found] == shadowed


def test_no_routes_have_no_shadows() -> None:
    assert table("").shadowed() == []


@pytest.mark.parametrize(
    ("route_path", "request_path"),
    [
        ("/café/**", "/caf%C3%A9/x"),
        ("/admin:internal", "/admin:internal"),
        ("/user@admin/*", "/user@admin/x"),
    ],
)
def test_route_matches_the_canonical_spelling_of_its_path(
    route_path: str, request_path: str
) -> None:
    table = RouteTable(load_config(f'[[routes]]\npath = "{route_path}"\naccess = "deny"\n', {}))

    assert table.match("GET", canonical_path(request_path)).access == "deny"


CASE_ROUTES = """
[[routes]]
path = "/admin/**"
access = "deny"

[[routes]]
path = "/caf\u00e9/*.ASPX"
access = "public"
"""


@pytest.mark.parametrize("path", ["/ADMIN/x", "/Admin", "/aDmIn/users/1"])
def test_routes_match_any_case_when_told(path: str) -> None:
    """For apps that ignore case (IIS, ASP.NET): /ADMIN/x is their /admin/x."""
    sensitive = table(CASE_ROUTES)
    insensitive = table("[server]\nroutes_ignore_case = true\n" + CASE_ROUTES)

    assert sensitive.match("GET", path).access == "authenticated"  # the default
    assert insensitive.match("GET", path).access == "deny"


def test_any_case_covers_encoded_characters_and_globs() -> None:
    insensitive = table("[server]\nroutes_ignore_case = true\n" + CASE_ROUTES)

    assert insensitive.match("GET", "/CAF%c3%a9/Page.aspx").access == "public"
    assert insensitive.match("GET", "/caf%C3%A9/x/page.aspx").access == "authenticated"


@pytest.mark.parametrize("path", [
    "/CAF%C3%89/x", "/caf%C3%89/x", "/Caf%c3%a9/x",  # É, é: one letter in two cases
    "/adm%C4%B1n/x",  # dotless i (U+0131): .NET upper-cases it to I, IIS reads /admin/x
])
def test_any_case_folds_letters_beyond_ascii(path: str) -> None:
    """Case-insensitive apps compare characters, not their UTF-8 escapes (outside tester)."""
    insensitive = table("[server]\nroutes_ignore_case = true\n" + """
[[routes]]
path = "/caf\u00e9/**"
access = "deny"

[[routes]]
path = "/admin/**"
access = "deny"
""")

    assert insensitive.match("GET", path).access == "deny"


def test_any_case_keeps_sharp_s_one_letter() -> None:
    """`ß` upper-cases to `SS` in full case mapping, which IIS does not do: /strasse is
    not /straße there, so not here either."""
    insensitive = table('[server]\nroutes_ignore_case = true\n'
                        '[[routes]]\npath = "/stra\u00dfe/**"\naccess = "deny"\n')

    assert insensitive.match("GET", "/STRA%C3%9FE/x").access == "deny"
    assert insensitive.match("GET", "/strasse/x").access == "authenticated"
