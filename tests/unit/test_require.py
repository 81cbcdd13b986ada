"""`[routes.require]`, `host` and `upstream` on a route: what a session must hold, and what
`gateway check` refuses (docs/reference.md#who-may-enter, #routes).

The requirement is judged the way the gateway meets it: Ory's whoami document is parsed once
(keeping the fields the routes require), possibly packed into the cache and back, and the
route's requirements are checked against what was kept.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.access import meets_all
from gateway.config import ConfigError, load_config
from gateway.routes import RouteTable
from gateway.session import pack, parse_session, parse_timestamp, unpack
from tests.unit.fakes import load_example

ROOT = Path(__file__).resolve().parents[2]
WHOAMI = "whoami-200-via-cookie.ory-docs.json"


def whoami(**identity: Any) -> dict[str, Any]:
    """Ory's published whoami example, with these identity fields replaced."""
    document = load_example(WHOAMI)
    document["identity"].update(identity)
    return document


def admits(require: str, document: dict[str, Any], *, through_cache: bool = False) -> bool:
    """Whether a session with this whoami `document` meets a route whose `[routes.require]`
    table is `require` (TOML lines)."""
    config = load_config(f'[[routes]]\npath = "/**"\n[routes.require]\n{require}\n', {})
    routes = RouteTable(config)
    route = routes.match("GET", "/x")
    now = parse_timestamp(document["authenticated_at"])
    assert now is not None
    session = parse_session(document, config.identity_headers, now, routes.claim_paths())
    if through_cache:
        packed = pack(session, now + 10)
        assert packed is not None
        session = unpack(packed)
    return meets_all(session, route.require)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(text, {})
    return caught.value.problems


# --- Equality and any-of on dotted paths ---------------------------------------------------


@pytest.mark.parametrize(
    ("require", "identity", "met"),
    [
        pytest.param('"identity.traits.email" = "email@example.com"', {}, True,
                     id="trait-equal"),
        pytest.param('"identity.traits.email" = "other@example.com"', {}, False,
                     id="trait-differs"),
        pytest.param('"identity.traits.email" = "EMAIL@example.com"', {}, False,
                     id="strings-compare-exactly"),
        pytest.param('"identity.metadata_public.role" = ["admin", "ops"]',
                     {"metadata_public": {"role": "ops"}}, True, id="any-of-second"),
        pytest.param('"identity.metadata_public.role" = ["admin", "ops"]',
                     {"metadata_public": {"role": "viewer"}}, False, id="any-of-none"),
        pytest.param('"identity.metadata_public.role" = "admin"',
                     {"metadata_public": {"role": "admin"}}, True, id="metadata-public"),
        pytest.param('"identity.verifiable_addresses.0.verified" = false', {}, True,
                     id="index-into-list"),
        pytest.param('"identity.verifiable_addresses.0.verified" = true', {}, False,
                     id="index-into-list-unverified"),
        pytest.param('"identity.traits.groups" = "dev"',
                     {"traits": {"groups": ["ops", "dev"]}}, True, id="list-holds-value"),
        pytest.param('"identity.traits.groups" = ["sales", "dev"]',
                     {"traits": {"groups": ["ops", "dev"]}}, True, id="list-holds-one-of"),
        pytest.param('"identity.traits.groups" = "admin"',
                     {"traits": {"groups": ["ops", "dev"]}}, False, id="list-lacks-value"),
        pytest.param('"identity.traits.groups" = "dev"', {"traits": {"groups": []}}, False,
                     id="empty-list"),
        pytest.param('"identity.traits.groups.1" = "dev"',
                     {"traits": {"groups": ["ops", "dev"]}}, True, id="number-is-list-index"),
        pytest.param('"identity.traits.groups.0" = "dev"',
                     {"traits": {"groups": ["ops", "dev"]}}, False, id="other-index"),
        pytest.param('"authenticator_assurance_level" = "aal1"', {}, True, id="session-field"),
    ],
)
def test_require_matches_dotted_paths_into_whoami(
    require: str, identity: dict[str, Any], met: bool
) -> None:
    assert admits(require, whoami(**identity)) is met


# --- JSON-value comparison ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "held", "met"),
    [
        pytest.param("true", True, True, id="true-is-true"),
        pytest.param("true", "true", False, id="true-is-not-string-true"),
        pytest.param("true", 1, False, id="true-is-not-1"),
        pytest.param("false", 0, False, id="false-is-not-0"),
        pytest.param("false", False, True, id="false-is-false"),
        pytest.param("1", True, False, id="1-is-not-true"),
        pytest.param("3", 3, True, id="3-is-3"),
        pytest.param("3", 3.0, True, id="3-is-3.0"),
        pytest.param("3.0", 3, True, id="3.0-is-3"),
        pytest.param("3", "3", False, id="3-is-not-string-3"),
        pytest.param('"3"', "3", True, id="string-3-is-string-3"),
        pytest.param('"3"', 3, False, id="string-3-is-not-3"),
        pytest.param('"3"', 3.0, False, id="string-3-is-not-3.0"),
        pytest.param('"true"', True, False, id="string-true-is-not-true"),
        pytest.param("[1, true]", True, True, id="any-of-mixed-true"),
        pytest.param("[1, true]", 1, True, id="any-of-mixed-1"),
        pytest.param('[1, "x"]', "1", False, id="any-of-mixed-not-string-1"),
        pytest.param("true", [False, True], True, id="list-holds-true"),
        pytest.param("true", [1, "true"], False, id="list-holds-lookalikes-only"),
        pytest.param("3", ["3", 3.0], True, id="list-holds-3.0"),
        pytest.param('"3"', [3, True], False, id="list-holds-no-string"),
    ],
)
def test_require_compares_as_json_values(wanted: str, held: Any, met: bool) -> None:
    document = whoami(metadata_public={"level": held})

    assert admits(f'"identity.metadata_public.level" = {wanted}', document) is met


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param(["dev", None], id="list-with-null"),
        pytest.param(["dev", {"name": "ops"}], id="list-with-object"),
    ],
)
def test_require_list_field_holding_the_value_among_others_matches(groups: list[Any]) -> None:
    document = whoami(traits={"email": "e@example.com", "groups": groups})

    assert admits('"identity.traits.groups" = "dev"', document) is True


# --- A field that is not there never matches -------------------------------------------------


@pytest.mark.parametrize(
    ("require", "identity"),
    [
        pytest.param('"identity.metadata_public.role" = "admin"', {"metadata_public": None},
                     id="parent-null"),
        pytest.param('"identity.metadata_public.role" = "admin"', {"metadata_public": {}},
                     id="key-absent"),
        pytest.param('"identity.metadata_public.role" = "admin"',
                     {"metadata_public": {"role": None}}, id="value-null"),
        pytest.param('"identity.traits.nickname" = ""', {}, id="absent-is-not-empty-string"),
        pytest.param('"identity.verifiable_addresses.1.verified" = false', {},
                     id="index-out-of-range"),
        pytest.param('"identity.verifiable_addresses.x.verified" = false', {},
                     id="name-into-list"),
        pytest.param('"identity.traits.email.domain" = "example.com"', {},
                     id="through-a-string"),
        pytest.param('"identity.traits.email.0" = "e"', {}, id="index-into-a-string"),
        pytest.param('"identity.traits.tos.x" = true', {}, id="through-a-boolean"),
        pytest.param('"identity.traits.0" = "email@example.com"', {},
                     id="index-into-an-object"),
        pytest.param('"identity.metadata_public.role" = "admin"',
                     {"metadata_public": {"role": {"name": "admin"}}}, id="object-not-value"),
        pytest.param('"identity.traits.groups" = "dev"', {"traits": {"groups": [["dev"]]}},
                     id="nested-list"),
        pytest.param('"nothing.here" = false', {}, id="no-such-top-level-field"),
    ],
)
def test_require_missing_field_never_matches(require: str, identity: dict[str, Any]) -> None:
    assert admits(require, whoami(**identity)) is False


# --- Every key must hold --------------------------------------------------------------------

BOTH = '"identity.metadata_public.role" = ["admin", "ops"]\n"identity.traits.tos" = true\n'


@pytest.mark.parametrize(
    ("metadata", "tos", "met"),
    [
        pytest.param({"role": "admin"}, True, True, id="both-hold"),
        pytest.param({"role": "admin"}, False, False, id="second-fails"),
        pytest.param({"role": "guest"}, True, False, id="first-fails"),
        pytest.param(None, True, False, id="first-missing"),
    ],
)
def test_require_needs_every_key(metadata: dict[str, str] | None, tos: bool, met: bool) -> None:
    document = whoami(metadata_public=metadata, traits={"email": "e@example.com", "tos": tos})

    assert admits(BOTH, document) is met


@pytest.mark.parametrize("met", [True, False], ids=["admitted", "refused"])
def test_require_is_judged_the_same_on_a_cached_session(met: bool) -> None:
    document = whoami(metadata_public={"role": "admin" if met else "guest", "level": 3},
                      traits={"email": "e@example.com", "groups": ["a", "b"], "tos": True})
    require = BOTH + '"identity.metadata_public.level" = 3\n"identity.traits.groups" = "b"\n'

    assert admits(require, document, through_cache=True) is met


def test_require_on_one_route_does_not_leak_into_another() -> None:
    config = load_config(
        '[[routes]]\npath = "/admin/**"\n[routes.require]\n'
        '"identity.metadata_public.role" = "admin"\n'
        '[[routes]]\npath = "/app/**"\n', {})
    routes = RouteTable(config)
    document = whoami(metadata_public=None)
    now = parse_timestamp(document["authenticated_at"])
    assert now is not None
    session = parse_session(document, config.identity_headers, now, routes.claim_paths())

    assert meets_all(session, routes.match("GET", "/app/x").require) is True
    assert meets_all(session, routes.match("GET", "/admin/x").require) is False


# --- gateway check: what a require table may hold -------------------------------------------

REQUIRE_PROBLEMS = [
    pytest.param('"identity.metadata_public.role" = []',
                 'routes[0].require."identity.metadata_public.role": ', id="empty-list"),
    pytest.param('"identity.metadata_public.role" = { name = "admin" }',
                 'routes[0].require."identity.metadata_public.role": ', id="inline-table"),
    pytest.param('identity.metadata_public.role = "admin"',
                 "routes[0].require.", id="unquoted-key-makes-a-table"),
    pytest.param('"identity.traits.groups" = [["a"], ["b"]]',
                 'routes[0].require."identity.traits.groups": ', id="nested-list"),
    pytest.param('"identity.traits.groups" = ["a", ["b"]]',
                 'routes[0].require."identity.traits.groups": ', id="list-holding-a-list"),
    pytest.param('"identity.traits.born" = 1979-05-27',
                 'routes[0].require."identity.traits.born": ', id="date"),
    pytest.param('"identity..role" = "admin"', 'routes[0].require."identity..role": ',
                 id="empty-middle-segment"),
    pytest.param('".identity.role" = "admin"', 'routes[0].require.".identity.role": ',
                 id="empty-first-segment"),
    pytest.param('"identity.role." = "admin"', 'routes[0].require."identity.role.": ',
                 id="empty-last-segment"),
    pytest.param('"" = "admin"', 'routes[0].require."": ', id="empty-key"),
]


@pytest.mark.parametrize(("require", "key"), REQUIRE_PROBLEMS)
def test_check_rejects_bad_require(require: str, key: str) -> None:
    problems = problems_of(f'[[routes]]\npath = "/a"\n[routes.require]\n{require}\n')

    assert len(problems) == 1, problems
    assert problems[0].startswith(key), problems


def test_check_rejects_require_given_as_array_of_tables() -> None:
    problems = problems_of('[[routes]]\npath = "/a"\n'
                           '[[routes.require."identity.metadata_public.role"]]\nname = "admin"\n')

    assert len(problems) == 1, problems
    assert problems[0].startswith('routes[0].require."identity.metadata_public.role": ')


@pytest.mark.parametrize("access", ["public", "optional", "deny"])
def test_check_rejects_require_on_a_route_without_a_session(access: str) -> None:
    problems = problems_of(f'[[routes]]\npath = "/a"\naccess = "{access}"\n'
                           '[routes.require]\n"identity.traits.email" = "a@example.com"\n')

    assert problems == [f'routes[0].require: requires a session, which access = "{access}" '
                        'does not ask for; use access = "authenticated"']


def test_check_accepts_every_documented_require_value() -> None:
    config = load_config(
        '[[routes]]\npath = "/a"\n[routes.require]\n'
        '"identity.metadata_public.role" = ["admin", "ops"]\n'
        '"identity.verifiable_addresses.0.verified" = true\n'
        '"identity.metadata_public.level" = 3\n'
        '"identity.metadata_public.score" = 2.5\n'
        '"identity.traits.any" = ["x", 1, false]\n', {})

    values = {".".join(r.path): r.values for r in config.routes[0].require}
    assert values == {
        "identity.metadata_public.role": ("admin", "ops"),
        "identity.verifiable_addresses.0.verified": (True,),
        "identity.metadata_public.level": (3,),
        "identity.metadata_public.score": (2.5,),
        "identity.traits.any": ("x", 1, False),
    }


# --- gateway check: host and upstream ------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("a.test:8080", id="port"),
        pytest.param("http://a.test", id="scheme"),
        pytest.param("a.test/admin", id="path"),
        pytest.param("*foo.com", id="star-glued-to-label"),
        pytest.param("a.*.com", id="star-in-the-middle"),
        pytest.param("*.*.com", id="two-stars"),
        pytest.param("**.a.com", id="double-star"),
        pytest.param("*", id="star-alone"),
        pytest.param("a.test.", id="trailing-dot"),
        pytest.param("", id="empty"),
        pytest.param("a test", id="space"),
        pytest.param("-a.test", id="label-starts-with-hyphen"),
        pytest.param("user@a.test", id="user-info"),
    ],
)
def test_check_rejects_bad_host(host: str) -> None:
    problems = problems_of(f'[[routes]]\nhost = "{host}"\npath = "/**"\n')

    assert len(problems) == 1, problems
    assert problems[0].startswith("routes[0].host: "), problems


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        pytest.param("Admin.Example.COM", "admin.example.com", id="exact"),
        pytest.param("*.Example.com", "*.example.com", id="wildcard"),
        pytest.param("localhost", "localhost", id="single-label"),
    ],
)
def test_check_folds_host_case(written: str, kept: str) -> None:
    config = load_config(f'[[routes]]\nhost = "{written}"\npath = "/**"\n', {})

    assert config.routes[0].host == kept


@pytest.mark.parametrize(
    "upstream",
    [
        pytest.param("ftp://127.0.0.1:3100", id="ftp"),
        pytest.param("ws://127.0.0.1:3100", id="ws"),
        pytest.param("127.0.0.1:3100", id="no-scheme"),
        pytest.param("http://", id="no-host"),
        pytest.param("http://127.0.0.1:3100/?x=1", id="query"),
        pytest.param("http://user:pw@127.0.0.1:3100", id="user-info"),
        pytest.param("http://127.0.0.1:99999", id="port-out-of-range"),
        pytest.param("", id="empty"),
    ],
)
def test_check_rejects_upstream_that_is_not_http(upstream: str) -> None:
    problems = problems_of(f'[[routes]]\npath = "/**"\nupstream = "{upstream}"\n')

    assert len(problems) == 1, problems
    assert problems[0].startswith("routes[0].upstream: "), problems


def test_check_accepts_https_upstream() -> None:
    config = load_config('[[routes]]\npath = "/**"\nupstream = "https://crm.internal:8443"\n', {})

    assert config.routes[0].upstream == "https://crm.internal:8443"


# --- The command line says it too -------------------------------------------------------------

BAD_ROUTES = """
[[routes]]
path = "/empty"
[routes.require]
"identity.metadata_public.role" = []

[[routes]]
path = "/table"
[routes.require]
"identity.metadata_public.role" = { name = "admin" }

[[routes]]
path = "/nested"
[routes.require]
"identity.traits.groups" = [["a"]]

[[routes]]
path = "/dots"
[routes.require]
"identity..role" = "admin"

[[routes]]
host = "*foo.com"
path = "/**"

[[routes]]
host = "a.*.com"
path = "/**"

[[routes]]
path = "/ftp/**"
upstream = "ftp://127.0.0.1:21"
"""

BAD_KEYS = (
    'routes[0].require."identity.metadata_public.role": ',
    'routes[1].require."identity.metadata_public.role": ',
    'routes[2].require."identity.traits.groups": ',
    'routes[3].require."identity..role": ',
    "routes[4].host: ",
    "routes[5].host: ",
    "routes[6].upstream: ",
)


def run_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check", "--config", str(config)],
        capture_output=True, text=True, timeout=30, cwd=ROOT, check=False,
    )


def test_cli_check_reports_every_policy_problem_as_key_lines(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(BAD_ROUTES, encoding="utf-8")

    result = run_check(config)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    for key in BAD_KEYS:
        assert sum(line.startswith(key) for line in lines) == 1, (key, result.stderr)
    assert result.stdout == ""


def test_cli_check_prints_host_upstream_and_requirements(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[[routes]]\nhost = "CRM.Example.com"\npath = "/**"\n'
        'upstream = "http://127.0.0.1:3200"\n[routes.require]\n'
        '"identity.metadata_public.role" = ["admin", "ops"]\n'
        '"identity.verifiable_addresses.0.verified" = true\n', encoding="utf-8")

    result = run_check(config)

    assert result.returncode == 0, result.stderr
    route_line = next(line for line in result.stdout.splitlines() if "routes[0]" in line)
    assert "crm.example.com" in route_line
    assert "http://127.0.0.1:3200" in route_line
    assert 'identity.metadata_public.role in ["admin", "ops"]' in route_line
    assert "identity.verifiable_addresses.0.verified = true" in route_line
