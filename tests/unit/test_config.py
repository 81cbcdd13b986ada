"""`load_config(text, env)`: defaults, validation and environment overrides
(docs/reference.md#configuration)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from gateway.config import ENV_OVERRIDES, ConfigError, GatewayConfig, IdentityHeader, load_config
from gateway.routeconfig import RouteConfig
from gateway.units import HostPort, parse_duration

FULL = """
default_access = "deny"

[server]
listen = "10.1.2.3:8080"
public_url = "https://App.Example.com"
trusted_proxies = ["10.0.0.0/8", "192.168.1.1"]
auth_prefix = "/gw"
secret = "s3cret-s3cret-s3cret-s3cret-s3cret"
allowed_origins = ["https://admin.example.com:8443"]

[ory]
url = "https://ory.example.com/"
browser_url = "https://auth.example.com"
login_path = "/ui/login"
session_cookie = "ory_session_playground"
credentials = ["bearer", "cookie"]
timeout = "500ms"

[cache]
ttl = "1m"
max_entries = 10
stale_if_error = "30s"

[upstream]
url = "http://app.internal:3000/base"
timeout = 5
preserve_host = true

[identity_headers]
"X-Remote-User" = "identity.traits.email"
"X-Remote-Id" = "identity.id"

[[routes]]
path = "/static/**"
methods = ["get", "HEAD"]
access = "public"

[[routes]]
path = "/admin/*"
aal = "AAL2"
max_age = "10m"
"""


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    """The `KEY: problem` lines a config produces (it must fail)."""
    with pytest.raises(ConfigError) as caught:
        load_config(text, env or {})
    return caught.value.problems


def test_defaults_equal_contract_when_text_is_empty() -> None:
    config = load_config("", {})

    assert config.server.listen == HostPort("127.0.0.1", 4180)
    assert config.server.public_url == ""
    assert config.server.trusted_proxies == ()
    assert config.server.auth_prefix == "/_auth"
    assert config.server.secret == ""
    assert config.server.allowed_origins == ()
    assert config.ory.url == "http://127.0.0.1:4433"
    assert config.ory.browser_url == ""
    assert config.ory.browser_base == "http://127.0.0.1:4433"
    assert config.ory.login_path == "/self-service/login/browser"
    assert config.ory.session_cookie == "ory_kratos_session"
    assert config.ory.credentials == ("cookie", "session_token")
    assert config.ory.timeout == 3.0
    assert config.cache.ttl == 10.0
    assert config.cache.max_entries == 100_000
    assert config.cache.refresh_ahead == 0.0
    assert config.ory.max_connections == 256
    assert config.upstream.keepalive_connections == 128
    assert config.cache.stale_if_error == 0.0
    assert config.upstream.url == "http://127.0.0.1:3000"
    assert config.upstream.timeout == 60.0
    assert config.upstream.preserve_host is False
    assert config.identity_headers == (
        IdentityHeader("X-User-Id", ("identity", "id")),
        IdentityHeader("X-User-Email", ("identity", "traits", "email")),
    )
    assert config.routes == ()
    assert config.default_access == "authenticated"


def test_defaults_equal_dataclass_defaults() -> None:
    assert load_config("", {}) == GatewayConfig()


def test_full_config_is_parsed_into_typed_values() -> None:
    config = load_config(FULL, {})

    assert config.default_access == "deny"
    assert config.server.listen == HostPort("10.1.2.3", 8080)
    assert config.server.public_url == "https://app.example.com"
    assert config.server.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.1/32"),
    )
    assert config.server.auth_prefix == "/gw"
    assert config.server.allowed_origins == ("https://admin.example.com:8443",)
    assert config.ory.url == "https://ory.example.com"
    assert config.ory.browser_base == "https://auth.example.com"
    assert config.ory.login_path == "/ui/login"
    assert config.ory.session_cookie == "ory_session_playground"
    assert config.ory.credentials == ("bearer", "cookie")
    assert config.ory.timeout == 0.5
    assert config.cache.ttl == 60.0
    assert config.cache.max_entries == 10
    assert config.cache.stale_if_error == 30.0
    assert config.upstream.url == "http://app.internal:3000/base"
    assert config.upstream.timeout == 5.0
    assert config.upstream.preserve_host is True
    assert config.identity_headers == (
        IdentityHeader("X-Remote-User", ("identity", "traits", "email")),
        IdentityHeader("X-Remote-Id", ("identity", "id")),
    )
    assert config.routes == (
        RouteConfig(path="/static/**", access="public", methods=frozenset({"GET", "HEAD"})),
        RouteConfig(path="/admin/*", access="authenticated", aal="aal2", max_age=600.0),
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
        (" 2s ", 2.0),
    ],
    ids=["ms", "s", "m", "h", "h-and-m", "fraction", "zero", "surrounding-space"],
)
def test_duration_string_is_parsed_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert load_config(f'[cache]\nttl = "{text}"', {}).cache.ttl == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("toml_value", "seconds"),
    [("10", 10.0), ("0", 0.0), ("2.5", 2.5)],
    ids=["int", "zero", "float"],
)
def test_duration_number_is_seconds(toml_value: str, seconds: float) -> None:
    assert load_config(f"[cache]\nttl = {toml_value}", {}).cache.ttl == seconds


@pytest.mark.parametrize(
    "toml_value",
    ['"10 s"', '"-1s"', '"abc"', "true", '""', '"10"', '"5M"', "-1", "nan", "inf", "[1]"],
    ids=[
        "space-inside", "negative-string", "word", "boolean", "empty", "no-unit",
        "upper-case-unit", "negative-number", "nan", "inf", "list",
    ],
)
def test_bad_duration_is_reported_under_its_key(toml_value: str) -> None:
    problems = problems_of(f"[cache]\nttl = {toml_value}")

    assert len(problems) == 1
    assert problems[0].startswith("cache.ttl: ")


def test_huge_integer_duration_is_reported_not_crashing() -> None:
    problems = problems_of("[cache]\nttl = 1" + "0" * 400)

    assert problems[0].startswith("cache.ttl: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rotues = []", 'rotues: unknown key (did you mean "routes"?)'),
        ("[server]\nlistn = \"1.2.3.4:5\"", 'server.listn: unknown key (did you mean "listen"?)'),
        ("[ory]\nsession_cookei = \"x\"",
         'ory.session_cookei: unknown key (did you mean "session_cookie"?)'),
        ("[cache]\nttll = \"1s\"", 'cache.ttll: unknown key (did you mean "ttl"?)'),
        ("[upstream]\nzzz = 1", "upstream.zzz: unknown key"),
        ("[[routes]]\npath = \"/a\"\nacess = \"public\"",
         'routes[0].acess: unknown key (did you mean "access"?)'),
        ("default_acces = \"deny\"",
         'default_acces: unknown key (did you mean "default_access"?)'),
    ],
    ids=["top-level", "server", "ory", "cache", "upstream-no-hint", "route", "default-access"],
)
def test_unknown_key_is_reported_with_hint(text: str, expected: str) -> None:
    assert problems_of(text) == [expected]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[ory]\nurl = "ftp://ory.example"', "ory.url"),
        ('[ory]\nurl = "ory.example"', "ory.url"),
        ('[ory]\nurl = "http://ory.example/?x=1"', "ory.url"),
        ('[ory]\nurl = "http://user:pw@ory.example"', "ory.url"),
        ('[ory]\nurl = "http://ory.example:99999"', "ory.url"),
        ('[ory]\nurl = "http://ory example"', "ory.url"),
        ('[ory]\nbrowser_url = "javascript:alert(1)"', "ory.browser_url"),
        ('[upstream]\nurl = ""', "upstream.url"),
        ('[upstream]\nurl = "http://app#frag"', "upstream.url"),
        ('[server]\npublic_url = "https://app.example.com/path"', "server.public_url"),
        ('[server]\nallowed_origins = ["https://x.example/path"]', "server.allowed_origins"),
        ('[server]\nallowed_origins = "https://x.example"', "server.allowed_origins"),
    ],
    ids=[
        "ftp-scheme", "no-scheme", "query", "user-info", "bad-port", "space",
        "javascript-browser-url", "empty-upstream", "fragment", "origin-with-path",
        "allowed-origin-with-path", "allowed-origins-not-a-list",
    ],
)
def test_bad_url_is_reported_under_its_key(text: str, key: str) -> None:
    problems = problems_of(text)

    assert len(problems) == 1
    assert problems[0].startswith(f"{key}: ")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[server]\nlisten = "localhost"', "server.listen"),
        ('[server]\nlisten = "127.0.0.1:70000"', "server.listen"),
        ('[server]\ntrusted_proxies = ["10.0.0.0/8", "nope"]', "server.trusted_proxies"),
        ('[server]\nauth_prefix = "/_auth/"', "server.auth_prefix"),
        ('[server]\nauth_prefix = "_auth"', "server.auth_prefix"),
        ('[server]\nauth_prefix = "/a/../b"', "server.auth_prefix"),
        ('[server]\nsecret = 5', "server.secret"),
        ('[ory]\nlogin_path = "ui/login"', "ory.login_path"),
        ('[ory]\nsession_cookie = "bad name;"', "ory.session_cookie"),
        ('[ory]\ntimeout = "0s"', "ory.timeout"),
        ('[cache]\nmax_entries = 0', "cache.max_entries"),
        ('[cache]\nmax_entries = true', "cache.max_entries"),
        ('[cache]\nttl = "5s"\nrefresh_ahead = "5s"', "cache.refresh_ahead"),
        ('[cache]\nrefresh_ahead = "-1s"', "cache.refresh_ahead"),
        ('[upstream]\ntimeout = 0', "upstream.timeout"),
        ('[upstream]\nkeepalive_connections = -1', "upstream.keepalive_connections"),
        ('[ory]\nmax_connections = 0', "ory.max_connections"),
        ('[upstream]\npreserve_host = "yes"', "upstream.preserve_host"),
        ('default_access = "everyone"', "default_access"),
        ("server = 1", "server"),
        ("identity_headers = 1", "identity_headers"),
        ('[routes]\npath = "/a"', "routes"),
    ],
    ids=[
        "listen-no-port", "listen-port-range", "bad-cidr", "prefix-trailing-slash",
        "prefix-relative", "prefix-dot-segments", "secret-not-string", "login-path-relative",
        "cookie-name", "ory-timeout-zero", "max-entries-zero", "max-entries-bool",
        "refresh-ahead-not-shorter-than-ttl", "refresh-ahead-negative",
        "upstream-timeout-zero", "keepalive-negative", "ory-max-connections-zero",
        "preserve-host-string", "default-access", "section-not-table",
        "identity-headers-not-table", "routes-not-array",
    ],
)
def test_bad_value_is_reported_under_its_key(text: str, key: str) -> None:
    problems = problems_of(text)

    assert len(problems) == 1
    assert problems[0].startswith(f"{key}: ")


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ('path = "/a"\naccess = "everyone"',
         "routes[0].access: 'everyone' is not one of"),
        ('path = "/a"\naccess = "public"\naal = "aal2"',
         'routes[0].aal: requires a session, which access = "public" does not ask for'),
        ('path = "/a"\naccess = "deny"\naal = "aal2"',
         'routes[0].aal: requires a session, which access = "deny" does not ask for'),
        ('path = "/a"\naccess = "optional"\naal = "aal2"',
         'routes[0].aal: requires a session, which access = "optional" does not ask for'),
        ('path = "/a"\naccess = "public"\nmax_age = "10m"',
         'routes[0].max_age: requires a session, which access = "public" does not ask for'),
        ('path = "/a"\naal = "aal9"', "routes[0].aal: 'aal9' is not one of"),
        ('path = "/a"\nmax_age = "0s"', "routes[0].max_age: must be longer than 0s"),
        ('path = "/a"\nmethods = ["GETT"]', "routes[0].methods: unknown method 'GETT'"),
        ('path = "/a"\nmethods = []', "routes[0].methods: must list at least one method"),
        ('path = "/a"\nmethods = "GET"', "routes[0].methods: expected a list"),
        ('path = "/a"\nmethods = ["GET", 1]', "routes[0].methods: expected a string"),
        ('path = "a/b"', 'routes[0].path: must start with "/"'),
        ('path = ""', 'routes[0].path: must start with "/"'),
        ('path = "/a/../b"', "routes[0].path: must not contain . or .. segments"),
        ('path = "/a/**b"', 'routes[0].path: "**" must be a whole segment'),
        ('path = "/a//b"', "routes[0].path: must be a plain path"),
        ('path = "/a?b"', "routes[0].path: must be a plain path"),
        ('path = "/a;b"', "routes[0].path: must be a plain path"),
        ('path = "/a%2Fb"', "routes[0].path: must be a plain path"),
        ('path = "/a b"', "routes[0].path: must be a plain path"),
        ('path = "/_auth"', "routes[0].path: lies under auth_prefix '/_auth'"),
        ('path = "/_auth/**"', "routes[0].path: lies under auth_prefix '/_auth'"),
        ('access = "public"', "routes[0].path: is required"),
    ],
    ids=[
        "bad-access", "aal-on-public", "aal-on-deny", "aal-on-optional", "max-age-on-public",
        "bad-aal", "zero-max-age", "bad-method", "empty-methods", "methods-not-list",
        "method-not-string", "relative-path", "empty-path", "dot-segments", "partial-double-star",
        "double-slash", "question-mark", "semicolon", "percent", "space", "auth-prefix-itself",
        "under-auth-prefix", "missing-path",
    ],
)
def test_bad_route_is_reported_with_its_index(route: str, expected: str) -> None:
    problems = problems_of(f"[[routes]]\n{route}")

    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_route_under_custom_auth_prefix_is_reported() -> None:
    text = '[server]\nauth_prefix = "/gw"\n[[routes]]\npath = "/gw/x"\n[[routes]]\npath = "/_auth"'

    assert problems_of(text) == [
        "routes[0].path: lies under auth_prefix '/gw', which the gateway answers itself"
    ]


def test_route_problem_names_the_right_index() -> None:
    text = '[[routes]]\npath = "/ok"\n[[routes]]\npath = "/also-ok"\n[[routes]]\npath = "bad"'

    assert problems_of(text) == ['routes[2].path: must start with "/"']


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ('"X-User-Id" = "identity.id"\n"x_user_id" = "identity.traits.email"',
         'identity_headers.x_user_id: is the same header as "X-User-Id"'),
        ('"X-A" = "identity.id"\n"x-a" = "identity.id"',
         'identity_headers.x-a: is the same header as "X-A"'),
        ('"Cookie" = "identity.id"',
         "identity_headers.Cookie: is managed by the gateway and cannot be an identity header"),
        ('"authorization" = "identity.id"',
         "identity_headers.authorization: is managed by the gateway"),
        ('"X_Forwarded_For" = "identity.id"', "identity_headers.X_Forwarded_For: is managed"),
        ('"Host" = "identity.id"', "identity_headers.Host: is managed"),
        ('"X-Session-Token" = "identity.id"', "identity_headers.X-Session-Token: is managed"),
        ('"X User" = "identity.id"', "identity_headers.X User: is not a valid header name"),
        ('"X-User" = "identity..id"', "identity_headers.X-User: expected a dotted path"),
        ('"X-User" = ""', "identity_headers.X-User: expected a dotted path"),
        ('"X-User" = 5', "identity_headers.X-User: expected a dotted path"),
    ],
    ids=[
        "underscore-collision", "case-collision", "reserved-cookie", "reserved-authorization",
        "reserved-forwarded-underscore", "reserved-host", "reserved-session-token",
        "invalid-name", "empty-step", "empty-path", "path-not-string",
    ],
)
def test_bad_identity_header_is_reported(headers: str, expected: str) -> None:
    problems = problems_of(f"[identity_headers]\n{headers}")

    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_empty_identity_headers_table_means_no_identity_headers() -> None:
    assert load_config("[identity_headers]\n", {}).identity_headers == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["cookie", "jwt"]', "ory.credentials: unknown source 'jwt'"),
        ("[]", "ory.credentials: needs at least one source"),
        ('["cookie", "cookie"]', "ory.credentials: lists a source twice"),
        ('"cookie"', "ory.credentials: expected a list"),
        ("[1]", "ory.credentials: expected a string"),
    ],
    ids=["unknown-source", "empty", "duplicate", "not-a-list", "not-strings"],
)
def test_bad_credentials_list_is_reported(value: str, expected: str) -> None:
    problems = problems_of(f"[ory]\ncredentials = {value}")

    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_toml_syntax_error_is_one_problem() -> None:
    problems = problems_of("[server\nlisten = ")

    assert len(problems) == 1
    assert problems[0].startswith("gateway.toml: not valid TOML: ")


def test_all_problems_are_reported_at_once() -> None:
    text = """
typo = 1
default_access = "nobody"
[server]
listen = "nowhere"
[ory]
url = "ftp://x"
credentials = []
[cache]
ttl = "10 s"
[upstream]
timeout = true
[identity_headers]
"Cookie" = "identity.id"
[[routes]]
path = "relative"
[[routes]]
path = "/p"
access = "public"
aal = "aal2"
"""
    problems = problems_of(text)

    assert {line.split(":", 1)[0] for line in problems} == {
        "typo", "default_access", "server.listen", "ory.url", "ory.credentials", "cache.ttl",
        "upstream.timeout", "identity_headers.Cookie", "routes[0].path", "routes[1].aal",
    }
    assert len(problems) == 10
    assert str(ConfigError(problems)) == "\n".join(problems)


@pytest.mark.parametrize(
    ("var", "value", "read"),
    [
        ("GATEWAY_LISTEN", "10.1.2.3:8080",
         lambda c: c.server.listen == HostPort("10.1.2.3", 8080)),
        ("GATEWAY_PUBLIC_URL", "https://App.example.com",
         lambda c: c.server.public_url == "https://app.example.com"),
        ("GATEWAY_SECRET", "from-env", lambda c: c.server.secret == "from-env"),
        ("GATEWAY_ORY_URL", "https://ory.example/", lambda c: c.ory.url == "https://ory.example"),
        ("GATEWAY_ORY_BROWSER_URL", "https://auth.example",
         lambda c: c.ory.browser_base == "https://auth.example"),
        ("GATEWAY_SESSION_COOKIE", "ory_session_x",
         lambda c: c.ory.session_cookie == "ory_session_x"),
        ("GATEWAY_UPSTREAM_URL", "http://app:9000",
         lambda c: c.upstream.url == "http://app:9000"),
    ],
    ids=["listen", "public-url", "secret", "ory-url", "ory-browser-url", "session-cookie",
         "upstream-url"],
)
def test_env_variable_overrides_file(
    var: str, value: str, read: Callable[[GatewayConfig], bool]
) -> None:
    text = """
[server]
listen = "127.0.0.1:1"
public_url = "https://file.example"
secret = "from-file"
[ory]
url = "http://file-ory"
browser_url = "http://file-browser"
session_cookie = "file_cookie"
[upstream]
url = "http://file-app"
"""
    assert load_config(text, {var: value}) != load_config(text, {})
    assert read(load_config(text, {var: value})) is True
    assert read(load_config("", {var: value})) is True


def test_env_overrides_cover_every_documented_variable() -> None:
    assert set(ENV_OVERRIDES) == {
        "GATEWAY_LISTEN", "GATEWAY_PUBLIC_URL", "GATEWAY_ORY_URL", "GATEWAY_ORY_BROWSER_URL",
        "GATEWAY_SESSION_COOKIE", "GATEWAY_UPSTREAM_URL", "GATEWAY_SECRET",
        "GATEWAY_REDIS_URL", "GATEWAY_HOOKS_TOKEN",
    }


def test_a_fleet_needs_the_secret_its_replicas_share() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config('[fleet]\nredis_url = "redis://127.0.0.1:6379/0"\n', {})
    assert any(line.startswith("server.secret: is required with fleet.redis_url")
               for line in raised.value.problems)
    config = load_config("", {"GATEWAY_REDIS_URL": "rediss://redis:6380/1",
                              "GATEWAY_SECRET": "s" * 32, "GATEWAY_HOOKS_TOKEN": "t" * 16})
    assert (config.fleet.redis_url, config.hooks.token) == ("rediss://redis:6380/1", "t" * 16)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("GATEWAY_LISTEN", "nowhere"),
        ("GATEWAY_PUBLIC_URL", "https://app.example/path"),
        ("GATEWAY_ORY_URL", "ftp://ory"),
        ("GATEWAY_ORY_BROWSER_URL", "not a url"),
        ("GATEWAY_SESSION_COOKIE", "bad cookie"),
        ("GATEWAY_UPSTREAM_URL", ""),
    ],
    ids=["listen", "public-url", "ory-url", "ory-browser-url", "session-cookie", "upstream-url"],
)
def test_bad_env_value_is_reported_naming_the_variable(var: str, value: str) -> None:
    section, key = ENV_OVERRIDES[var]

    problems = problems_of("", {var: value})

    assert len(problems) == 1
    assert problems[0].startswith(f"{var} ({section}.{key}): ")


def test_env_only_config_needs_no_file() -> None:
    env = {
        "GATEWAY_LISTEN": "10.1.2.3:4180",
        "GATEWAY_PUBLIC_URL": "https://app.example.com",
        "GATEWAY_ORY_URL": "http://kratos:4433",
        "GATEWAY_ORY_BROWSER_URL": "https://auth.example.com",
        "GATEWAY_SESSION_COOKIE": "ory_session_app",
        "GATEWAY_UPSTREAM_URL": "http://legacy:8080",
        "GATEWAY_SECRET": "x" * 40,
    }

    config = load_config("", env)

    assert config.server.listen == HostPort("10.1.2.3", 4180)
    assert config.server.public_url == "https://app.example.com"
    assert config.ory.url == "http://kratos:4433"
    assert config.ory.browser_base == "https://auth.example.com"
    assert config.ory.session_cookie == "ory_session_app"
    assert config.upstream.url == "http://legacy:8080"
    assert config.server.secret == "x" * 40
    assert config.routes == ()


def test_unrelated_env_variables_are_ignored() -> None:
    assert load_config("", {"PATH": "/bin", "GATEWAY_CONFIG": "x.toml"}) == GatewayConfig()


def test_default_access_after_routes_is_the_top_level_key() -> None:
    text = """
[[routes]]
path = "/static/**"
methods = ["GET", "HEAD"]
access = "public"

default_access = "deny"
"""
    config = load_config(text, {})

    assert config.default_access == "deny"
    assert config.routes == (
        RouteConfig(path="/static/**", access="public", methods=frozenset({"GET", "HEAD"})),
    )


def test_default_access_set_twice_is_reported() -> None:
    text = 'default_access = "public"\n[[routes]]\npath = "/a"\ndefault_access = "deny"'

    assert problems_of(text) == ["routes[0].default_access: default_access is set twice"]


def test_route_without_access_defaults_to_authenticated() -> None:
    config = load_config('[[routes]]\npath = "/a"\naal = "aal2"', {})

    assert config.routes == (RouteConfig(path="/a", access="authenticated", aal="aal2"),)
