"""The allow-list rules (docs/standin.md#return_to-allow-list) as a table, plus how the endpoints
answer a refusal."""

from __future__ import annotations

import pytest

from gateway.standin import OryStandin
from gateway.standin.return_to import check_return_to, parse_allow_list

from .conftest import APP_URL, Client, User, cookie_header

DEFAULT = "http://127.0.0.1:4180/home"


@pytest.mark.parametrize(
    ("entries", "raw", "allowed"),
    [
        pytest.param([APP_URL], "http://127.0.0.1:4180/x?y=1#z", True, id="same-origin"),
        pytest.param([APP_URL], "http://127.0.0.1:4181/x", False, id="other-port"),
        pytest.param([APP_URL], "http://127.0.0.2:4180/x", False, id="other-host"),
        pytest.param([APP_URL], "https://127.0.0.1:4180/x", False, id="other-scheme"),
        pytest.param(["http://App.Example.com"], "HTTP://app.EXAMPLE.com/", True, id="any-case"),
        pytest.param(["http://a.com/app"], "http://a.com/application", True, id="plain-prefix"),
        pytest.param(["http://a.com/app"], "http://a.com/other", False, id="outside-path"),
        pytest.param(["http://a.com/app"], "http://a.com", False, id="empty-path-is-slash"),
        pytest.param(["http://a.com"], "http://a.com", True, id="both-paths-empty"),
        pytest.param(["https://*.ex.com"], "https://a.b.ex.com/", True, id="wildcard-deep"),
        pytest.param(["https://*.ex.com"], "https://ex.com/", False, id="wildcard-not-apex"),
        pytest.param(["https://*.ex.com"], "https://a.ex.com:8443/", False, id="wildcard-port"),
        pytest.param(["https://*"], "https://evil.org/", False, id="bare-star-dropped"),
        pytest.param(["https://*.com"], "https://evil.com/", False, id="star-tld-dropped"),
        pytest.param(["https://*ex.com"], "https://evilex.com/", False, id="star-glued-dropped"),
        pytest.param(["https://a*.ex.com"], "https://ab.ex.com/", False, id="mid-label-dropped"),
        pytest.param([APP_URL], "/deep/link", True, id="relative-uses-default-host"),
        pytest.param([APP_URL], "//evil.com/x", False, id="protocol-relative"),
        pytest.param([APP_URL], "http://127.0.0.1:4180@evil.com/", False, id="userinfo-trick"),
        pytest.param([APP_URL], "javascript:alert(1)", False, id="javascript-scheme"),
    ],
)
def test_return_to_allow_list_rules(entries: list[str], raw: str, allowed: bool) -> None:
    _, ok = check_return_to(raw, parse_allow_list(entries), DEFAULT)
    assert ok is allowed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("", DEFAULT, id="missing-is-default"),
        pytest.param("/deep?a=1", "http://127.0.0.1:4180/deep?a=1", id="relative-completed"),
    ],
)
def test_return_to_resolves_against_default(raw: str, expected: str) -> None:
    assert check_return_to(raw, parse_allow_list([APP_URL]), DEFAULT) == (expected, True)


async def test_login_refuses_foreign_return_to_for_json_callers(client: Client) -> None:
    resp = await client.get(
        "/self-service/login/browser",
        params={"return_to": "https://evil.example/"},
        headers={"Accept": "application/json"},
        allow_redirects=False,
    )
    assert resp.status == 400
    assert resp.headers["Ory-Error-Id"] == "self_service_flow_return_to_forbidden"
    assert await resp.json() == {
        "error": {
            "id": "self_service_flow_return_to_forbidden",
            "code": 400,
            "status": "Bad Request",
            "reason": 'Requested return_to URL "https://evil.example/" is not allowed.',
            "message": "The request was malformed or contained invalid parameters",
        }
    }


async def test_login_sends_browsers_with_foreign_return_to_to_error_ui(
    client: Client, base_url: str
) -> None:
    resp = await client.get(
        "/self-service/login/browser",
        params={"return_to": "https://evil.example/"},
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"].startswith(f"{base_url}/ui/error?id=")


async def test_own_self_service_urls_are_always_allowed(
    client: Client, ory: OryStandin, alice: User, base_url: str
) -> None:
    session = ory.create_session(alice.identity_id)
    own = f"{base_url}/self-service/login/browser"
    resp = await client.get(
        "/self-service/login/browser",
        params={"return_to": own},
        headers=cookie_header(session),
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == own
