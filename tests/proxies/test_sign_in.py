"""Through nginx and Caddy: who is sent to sign in, who gets 401, who reaches the app and as
whom, and the second-factor step-up (docs/reference.md#forward-auth)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.proxies.deployment import (
    API,
    NAVIGATION,
    Answer,
    Deployment,
    cookie,
    header_values,
    token,
    unique,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


def login_query(deployment: Deployment, answer: Answer) -> dict[str, list[str]]:
    """The query of a 303 to the stand-in's browser login (asserts it is one)."""
    assert answer.status == 303, str(answer)
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{deployment.ory_url}/self-service/login/browser"
    ), str(answer)
    return parse_qs(location.query, keep_blank_values=True)


@pytest.mark.parametrize(
    "query", ["?x=1&y=%2F", "?q=a%20b&empty=&r=%26%3D", ""], ids=["encoded-slash", "mixed", "none"]
)
async def test_navigation_without_session_goes_to_login_returning_to_the_exact_url(
    deployment: Deployment, query: str
) -> None:
    path = unique("/app/page")
    answer = await deployment.request("GET", path + query, NAVIGATION)
    assert login_query(deployment, answer) == {"return_to": [deployment.origin + path + query]}
    assert deployment.received(path) == []


async def test_api_call_without_session_gets_401_json_naming_the_login(
    deployment: Deployment,
) -> None:
    path = unique("/app/api")
    answer = await deployment.request("GET", path + "?page=2", API)
    assert answer.status == 401, str(answer)
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.error_id == "session_required"
    login = urlsplit(answer.json()["error"]["details"]["login_url"])
    assert parse_qs(login.query)["return_to"] == [deployment.origin + path + "?page=2"]
    assert deployment.received(path) == []


async def test_script_call_that_accepts_html_still_gets_401_not_a_redirect(
    deployment: Deployment,
) -> None:
    path = unique("/app/xhr")
    headers = {"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}
    answer = await deployment.request("GET", path, headers)
    assert answer.status == 401, str(answer)
    assert deployment.received(path) == []


async def test_unknown_cookie_gets_401(deployment: Deployment) -> None:
    path = unique("/app/forged")
    answer = await deployment.request("GET", path, {**API, "Cookie": "ory_kratos_session=forged"})
    assert answer.status == 401, str(answer)
    assert deployment.received(path) == []


@pytest.mark.parametrize("credential", ["cookie", "session_token"])
async def test_signed_in_call_reaches_the_app_as_the_signed_in_user(
    deployment: Deployment, credential: str
) -> None:
    user = deployment.sign_up("carol")
    session = deployment.session(user)
    path = unique("/app/home")
    sent = cookie(session) if credential == "cookie" else token(session)
    answer = await deployment.request("GET", path + "?tab=2", {**API, **sent})
    assert answer.status == 200, str(answer)
    [seen] = deployment.received(path)
    assert seen.raw_path == path + "?tab=2"
    assert header_values(seen, "X-User-Id") == [user.identity_id]
    assert header_values(seen, "X-User-Email") == [user.email]


async def test_signed_in_post_reaches_the_app_with_its_body(deployment: Deployment) -> None:
    user = deployment.sign_up("dora")
    path = unique("/app/form")
    async with deployment.http.post(
        deployment.origin + path, data=b"a=1&b=2", headers=cookie(deployment.session(user)),
        allow_redirects=False,
    ) as answer:
        assert answer.status == 200, await answer.text()
    [seen] = deployment.received(path)
    assert (seen.method, seen.body_size) == ("POST", 7)
    assert header_values(seen, "X-User-Id") == [user.identity_id]


async def test_aal1_session_on_aal2_route_is_stepped_up_then_an_aal2_session_enters(
    deployment: Deployment,
) -> None:
    admin = deployment.sign_up("erin", role="admin", second_factor=True)
    path = unique("/admin/users")
    aal1 = cookie(deployment.session(admin, aal="aal1"))

    navigation = await deployment.request("GET", path + "?sort=name", {**NAVIGATION, **aal1})
    assert login_query(deployment, navigation) == {
        "aal": ["aal2"], "return_to": [deployment.origin + path + "?sort=name"],
    }
    api = await deployment.request("GET", path, {**API, **aal1})
    assert (api.status, api.error_id) == (403, "session_aal2_required"), str(api)
    assert deployment.received(path) == []

    aal2 = cookie(deployment.session(admin, aal="aal2"))
    entered = await deployment.request("GET", path, {**NAVIGATION, **aal2})
    assert entered.status == 200, str(entered)
    [seen] = deployment.received(path)
    assert header_values(seen, "X-User-Id") == [admin.identity_id]


async def test_header_credential_never_gets_a_redirect_even_on_a_navigation(
    deployment: Deployment,
) -> None:
    """A token comes from a program, not a browser: 401/403 JSON, never a 303
    (docs/reference.md#credential)."""
    path = unique("/app/token")
    bogus = await deployment.request("GET", path, {**NAVIGATION, "X-Session-Token": "ory_st_x"})
    assert (bogus.status, bogus.error_id) == (401, "session_required"), str(bogus)
    admin = deployment.sign_up("uma", role="admin", second_factor=True)
    admin_path = unique("/admin")
    step_up = await deployment.request(
        "GET", admin_path, {**NAVIGATION, **token(deployment.session(admin))}
    )
    assert (step_up.status, step_up.error_id) == (403, "session_aal2_required"), str(step_up)
    assert deployment.received(path) == deployment.received(admin_path) == []
