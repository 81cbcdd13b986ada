"""`gateway check` and `gateway explain` reports (docs/reference.md#command-line)."""

from __future__ import annotations

import pytest

from gateway.config import GatewayConfig, load_config
from gateway.explain import check_report, config_warnings, explain_request

CONFIG = """
[server]
public_url = "https://app.example.com"
secret = "0123456789abcdef0123456789abcdef"

[upstream]
url = "http://legacy:8080"

[[routes]]
path = "/static/**"
methods = ["GET", "HEAD"]
access = "public"

[[routes]]
path = "/maybe/*"
access = "optional"

[[routes]]
path = "/admin/**"
aal = "aal2"
max_age = "10m"

[[routes]]
path = "/admin/users"
access = "public"

[[routes]]
path = "/internal/**"
access = "deny"

default_access = "authenticated"
"""


@pytest.fixture
def config() -> GatewayConfig:
    return load_config(CONFIG, {})


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_check_report_lists_routes_in_order_then_default(config: GatewayConfig) -> None:
    lines = lines_of(check_report(config))

    assert lines[0] == "config OK"
    start = lines.index("routes (first match wins):") + 1
    assert lines[start:start + 6] == [
        "routes[0] /static/** [GET,HEAD] -> public",
        "routes[1] /maybe/* [any method] -> optional",
        "routes[2] /admin/** [any method] -> authenticated (aal=aal2, max_age=600s)",
        "routes[3] /admin/users [any method] -> public",
        "routes[4] /internal/** [any method] -> deny",
        "default [any method] -> authenticated",
    ]
    assert "upstream: http://legacy:8080" in lines
    assert "identity headers: X-User-Id, X-User-Email" in lines


def test_check_report_warns_about_shadowed_route(config: GatewayConfig) -> None:
    warnings = [line for line in lines_of(check_report(config)) if line.startswith("warning:")]

    assert warnings == [
        "warning: routes[3]: can never match: routes[2] '/admin/**' already covers every "
        "request it would"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[server]\npublic_url = "https://a.example"\nsecret = "' + "x" * 32 + '"', []),
        ('[server]\npublic_url = "https://a.example"\nsecret = "short"',
         ["server.secret: shorter than 32 characters; use a long random value"]),
        ("", ["server.public_url: not set; the origin is taken from each request's Host header"]),
    ],
    ids=["clean", "short-secret", "no-public-url"],
)
def test_config_warnings(text: str, expected: list[str]) -> None:
    assert config_warnings(load_config(text, {})) == expected


def test_explain_public_route(config: GatewayConfig) -> None:
    report = explain_request(config, "get", "/static/app.css?v=1")

    assert lines_of(report) == [
        "GET /static/app.css?v=1",
        "path:     /static/app.css (canonical; the query never takes part in matching)",
        "route:    routes[0] /static/** [GET,HEAD] -> public",
        "outcome:  proxied without a session look-up; identity headers from the client are "
        "stripped",
        "upstream: http://legacy:8080/static/app.css?v=1",
        "stripped: client-sent x-user-email, x-user-id (every spelling)",
    ]


def test_explain_deny_route_has_no_upstream(config: GatewayConfig) -> None:
    report = explain_request(config, "POST", "https://app.example.com/internal/metrics")

    assert "route:    routes[4] /internal/** [any method] -> deny" in report
    assert "outcome:  refused with 403 access_denied" in report
    assert "upstream:" not in report


def test_explain_authenticated_route_with_requirements(config: GatewayConfig) -> None:
    report = explain_request(config, "DELETE", "https://app.example.com/admin/x?y=1")

    lines = lines_of(report)
    assert lines[0] == "DELETE /admin/x?y=1"
    assert "outcome:  proxied only with a valid Ory session" in lines
    assert (
        "no session: browsers get 303 to http://127.0.0.1:4433/self-service/login/browser"
        "?return_to=https%3A%2F%2Fapp.example.com%2Fadmin%2Fx%3Fy%3D1; API clients get 401 JSON"
    ) in lines
    assert "requires: aal2 (else step-up: login with aal=aal2)" in lines
    assert "requires: login at most 600s old (else refresh=true)" in lines
    assert "upstream: http://legacy:8080/admin/x?y=1" in lines


def test_explain_optional_route_has_no_requirements(config: GatewayConfig) -> None:
    report = explain_request(config, "GET", "/maybe/page")

    assert "outcome:  proxied; a valid session adds identity headers" in report
    assert "requires:" not in report
    assert "no session:" not in report


@pytest.mark.parametrize(
    ("method", "url", "route"),
    [
        ("GET", "/%61dmin/x", "routes[2]"),
        ("GET", "https://app.example.com//admin//x", "routes[2]"),
        ("HEAD", "/static/x", "routes[0]"),
        ("POST", "/static/x", "default"),
        ("GET", "/public?next=/admin/x", "default"),
        ("GET", "/static?x=/internal/y", "routes[0]"),
    ],
    ids=["escaped-letter", "double-slashes", "head-on-get-route", "post-on-get-route",
         "query-ignored", "query-ignored-on-public"],
)
def test_explain_matches_on_canonical_path(
    config: GatewayConfig, method: str, url: str, route: str
) -> None:
    report = explain_request(config, method, url)

    assert f"route:    {route}" in report


@pytest.mark.parametrize(
    "url",
    ["/a/../internal/x", "/static/%2e%2e/internal/x", "/internal%2Fx", "/a;b", "/a\\b"],
    ids=["dot-dot", "encoded-dot-dot", "encoded-slash", "semicolon", "backslash"],
)
def test_explain_bad_path_is_400(config: GatewayConfig, url: str) -> None:
    report = explain_request(config, "GET", url)

    assert "outcome:  400 bad_request: " in report
    assert "route:" not in report


@pytest.mark.parametrize(
    "url", ["/_auth/whoami", "/_auth", "https://app.example.com/_auth/logout?return_to=/"]
)
def test_explain_auth_prefix_is_answered_by_gateway(config: GatewayConfig, url: str) -> None:
    report = explain_request(config, "GET", url)

    assert "outcome:  answered by the gateway itself (/_auth)" in report
    assert "route:" not in report


def test_explain_bare_double_slash_target_is_explained_as_the_gateway_routes_it(
    config: GatewayConfig,
) -> None:
    assert "route:    routes[2]" in explain_request(config, "GET", "//admin//x")


def test_explain_path_beside_auth_prefix_is_proxied(config: GatewayConfig) -> None:
    assert "route:    default" in explain_request(config, "GET", "/_authx")


HOSTS = """
[upstream]
url = "http://legacy:8080"

[[routes]]
host = "crm.example.com"
path = "/**"
upstream = "http://crm:3200"
[routes.require]
"identity.traits.department" = "sales"
"identity.metadata_public.level" = [1, true]

[[routes]]
host = "*.example.com"
path = "/reports/**"
access = "public"

[[routes]]
host = "crm.example.com"
path = "/x"
"""


def test_explain_full_url_matches_host_routes_and_names_their_app_and_requirements() -> None:
    config = load_config(HOSTS, {})
    report = lines_of(explain_request(config, "GET", "https://CRM.Example.com:8443/deals?q=1"))

    assert "host:     crm.example.com" in report
    route = next(line for line in report if line.startswith("route:"))
    assert "host=crm.example.com" in route
    assert "-> upstream http://crm:3200" in route
    assert 'requires: identity.traits.department = "sales" (else 403 access_denied, the ' \
        "forbidden page)" in report
    assert "requires: identity.metadata_public.level in [1, true] (else 403 access_denied, " \
        "the forbidden page)" in report
    assert "upstream: http://crm:3200/deals?q=1" in report
    login = next(line for line in report if line.startswith("no session:"))
    assert "return_to=https%3A%2F%2Fcrm.example.com%3A8443%2Fdeals%3Fq%3D1" in login


def test_explain_wildcard_host_and_bare_path_skip_host_routes() -> None:
    config = load_config(HOSTS, {})
    wiki = lines_of(explain_request(config, "GET", "http://wiki.example.com/reports/q3"))
    assert any("routes[1] /reports/** host=*.example.com" in line for line in wiki)
    assert "upstream: http://legacy:8080/reports/q3" in wiki

    bare = lines_of(explain_request(config, "GET", "/deals"))
    assert "route:    default [any method] -> authenticated" in bare
    assert any(line.startswith("host:     none given") for line in bare)
    apex = lines_of(explain_request(config, "GET", "http://example.com/reports/q3"))
    assert "route:    default [any method] -> authenticated" in apex


def test_check_warns_about_host_route_shadowed_by_an_earlier_one_on_the_same_host() -> None:
    warnings = config_warnings(load_config(HOSTS, {}))
    assert "routes[2]: can never match: routes[0] 'crm.example.com/**' already covers every " \
        "request it would" in warnings
    assert not any(w.startswith("routes[1]") for w in warnings)


def test_reports_say_when_route_paths_match_in_any_case() -> None:
    config = load_config(CONFIG.replace("[server]\n", "[server]\nroutes_ignore_case = true\n"), {})

    assert "routes (first match wins; paths in any case):" in check_report(config)
    report = explain_request(config, "GET", "/INTERNAL/x")
    assert "matched in any case" in report
    assert "/internal/**" in report


@pytest.mark.parametrize("networks", ['["0.0.0.0/0"]', '["10.0.0.0/8", "::/0"]'])
def test_check_warns_about_trusting_every_address(networks: str) -> None:
    config = load_config(f"[server]\ntrusted_proxies = {networks}\n", {})

    warnings = [w for w in config_warnings(config) if w.startswith("server.trusted_proxies")]

    assert len(warnings) == 1
    assert "/0 trusts every address" in warnings[0]


def test_no_warning_for_a_proxy_network() -> None:
    config = load_config('[server]\ntrusted_proxies = ["10.0.0.0/8", "127.0.0.1/32"]\n', {})

    assert not [w for w in config_warnings(config) if w.startswith("server.trusted_proxies")]
