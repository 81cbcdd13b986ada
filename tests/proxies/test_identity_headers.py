"""Identity headers a client sends never reach the app through nginx or Caddy, on any kind of
route: the app gets the gateway's value or none at all (docs/reference.md#forward-auth,
#identity-header-stripping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.proxies.deployment import API, Deployment, cookie, header_values, unique
from tests.proxies.front_proxies import free_port, start_proxy
from tests.upstream_app import Seen

pytestmark = pytest.mark.asyncio(loop_scope="module")

SPOOFED = [
    ("X-User-Id", "spoofed-id"),
    ("x-user-id", "spoofed-id-lower"),
    ("X-USER-EMAIL", "spoofed@evil.example"),
    ("x-user-email", "spoofed-lower@evil.example"),
]


def assert_no_placeholder(seen: Seen) -> None:
    """Caddy before 2.9 copies a missing header as its placeholder's literal text."""
    leaked = [(k, v) for k, v in seen.headers if "{http." in v]
    assert not leaked, f"the app received Caddy placeholders: {leaked}"


@pytest.mark.parametrize(
    ("prefix", "signed_in"),
    [("/app", True), ("/public", False), ("/public", True), ("/maybe", False),
     ("/maybe", True)],
    ids=["authenticated", "public-anonymous", "public-signed-in", "optional-anonymous",
         "optional-signed-in"],
)
async def test_client_identity_headers_never_reach_the_app(
    deployment: Deployment, prefix: str, signed_in: bool
) -> None:
    user = deployment.sign_up("frank")
    credential = cookie(deployment.session(user)) if signed_in else {}
    path = unique(prefix)
    answer = await deployment.request("GET", path, [*API.items(), *credential.items(), *SPOOFED])
    assert answer.status == 200, str(answer)
    [seen] = deployment.received(path)
    # A public route never looks at the session; the others vouch for whoever signed in.
    vouched = signed_in and prefix != "/public"
    assert header_values(seen, "X-User-Id") == ([user.identity_id] if vouched else [])
    assert header_values(seen, "X-User-Email") == ([user.email] if vouched else [])
    assert_no_placeholder(seen)


@pytest.mark.parametrize("spelling", ["X_User_Id", "x_user_email"])
@pytest.mark.parametrize("prefix", ["/app", "/public"], ids=["authenticated", "public"])
async def test_underscore_spelling_of_an_identity_header_never_reaches_the_app(
    deployment: Deployment, prefix: str, spelling: str
) -> None:
    """Frameworks that read headers as CGI variables (PHP, Rack, many WSGI servers) take
    `X_User_Id` for `X-User-Id`. nginx drops such headers itself; Caddy passes them on (as
    `X_user_id`) to the check too, and the gateway refuses that check with 400."""
    user = deployment.sign_up("gina")
    path = unique(prefix)
    answer = await deployment.request(
        "GET", path, {**API, **cookie(deployment.session(user)), spelling: "spoofed"}
    )
    if deployment.kind == "caddy":
        assert answer.status == 400, str(answer)
        assert deployment.received(path) == []
        return
    assert answer.status == 200, str(answer)
    [seen] = deployment.received(path)
    name = spelling.replace("_", "-")
    assert "spoofed" not in header_values(seen, name), seen.headers


# The README's lines that keep a client's value (nginx) or Caddy's placeholder away from the
# app, and what the app gets on a public route without them.
LOAD_BEARING = {
    "nginx": (("proxy_set_header X-User-Id", "proxy_set_header X-User-Email"), "spoofed-id"),
    "caddy": (("@no_user_id", "@no_user_email"), "{http.reverse_proxy.header.X-User-Id}"),
}


async def test_without_the_readmes_clearing_lines_the_app_would_be_fooled(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The control for the tests above: the same request through the same proxy, configured
    without those lines, brings the app a client's value (nginx) or Caddy 2.6's placeholder
    text, so the checks above can see a leak when there is one."""
    lines, fooled_with = LOAD_BEARING[deployment.kind]
    variant = start_proxy(
        deployment.kind, tmp_path, port=free_port(), gateway_port=deployment.gateway_port,
        app_port=deployment.app_port, without=lines,
    )
    try:
        await variant.wait_listening()
        path = unique("/public")
        answer = await deployment.request("GET", path, [*API.items(), *SPOOFED[:1]],
                                          base=variant.origin)
    finally:
        variant.stop()
    assert answer.status == 200, str(answer)
    [seen] = deployment.received(path)
    leaked = header_values(seen, "X-User-Id")
    assert leaked == [fooled_with], (
        f"{deployment.kind} without {lines} gave the app {leaked}; if this proxy no longer "
        "needs those lines, the README should say from which version"
    )


CLIENT_ID = "client-chosen-request-id"


@pytest.mark.parametrize("signed_in", [True, False], ids=["allowed", "refused"])
async def test_a_clients_request_id_is_not_the_gateways(
    deployment: Deployment, signed_in: bool
) -> None:
    """The gateway keeps a trusted proxy's request id, so the proxy must not pass a client's
    on: a client could reuse another request's id or put its own text in the gateway's log.
    nginx sends its own `$request_id`, Caddy none (the gateway makes one)."""
    credential = cookie(deployment.session(deployment.sign_up("ida"))) if signed_in else {}
    path = unique("/app")
    answer = await deployment.request(
        "GET", path, {**API, **credential, "X-Request-Id": CLIENT_ID}
    )
    if signed_in:
        assert answer.status == 200, str(answer)
        [seen] = deployment.received(path)
        assert CLIENT_ID not in header_values(seen, "X-Request-Id")
    else:
        assert answer.status == 401, str(answer)
        assert answer.json()["error"]["request"] not in ("", CLIENT_ID)
        assert answer.headers.get("X-Request-Id") != CLIENT_ID
