"""A client cannot describe its own request to the gateway: forwarded method, URI and host
that it sends through nginx or Caddy never turn a refusal into a pass, although the same
headers do decide when a trusted proxy sends them (docs/reference.md#forward-auth)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.proxies.deployment import API, OPEN_HOST, Deployment, cookie, header_values, unique
from tests.rawhttp import get, raw_request

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass(frozen=True)
class Spoof:
    """A request the route table refuses, with headers that describe an allowed one."""

    method: str
    prefix: str  # of the request's path: /app needs a session, /internal/ is denied
    signed_in: bool
    headers: tuple[tuple[str, str], ...]
    refused: int


EVERY_DESCRIPTION = (
    ("X-Forwarded-Uri", "/public/x"), ("X-Original-URI", "/public/x"),
    ("X-Forwarded-Method", "GET"), ("X-Original-Method", "GET"),
    ("X-Forwarded-Host", OPEN_HOST),
)
SPOOFS = {
    "uri-to-public-route": Spoof(
        "GET", "/app", False, (("X-Forwarded-Uri", "/public/x"), ("X-Original-URI", "/public/x")),
        401),
    "everything-at-once": Spoof("GET", "/app", False, EVERY_DESCRIPTION, 401),
    "everything-on-denied-route": Spoof("GET", "/internal", True, EVERY_DESCRIPTION, 403),
    "method-to-get-only-public-route": Spoof(
        "POST", "/readonly", False,
        (("X-Forwarded-Method", "GET"), ("X-Original-Method", "GET")), 401),
    "host-of-a-public-host-route": Spoof(
        "GET", "/internal", True, (("X-Forwarded-Host", OPEN_HOST),), 403),
}


@pytest.mark.parametrize("spoof", SPOOFS.values(), ids=SPOOFS.keys())
async def test_forwarded_facts_sent_by_a_client_cannot_turn_a_refusal_into_a_pass(
    deployment: Deployment, spoof: Spoof
) -> None:
    path = unique(spoof.prefix)
    credential = cookie(deployment.session(deployment.sign_up("hank"))) if spoof.signed_in else {}
    answer = await deployment.request(
        spoof.method, path, [*API.items(), *credential.items(), *spoof.headers]
    )
    assert answer.status == spoof.refused, str(answer)
    assert deployment.received(path) == []


@pytest.mark.parametrize("endpoint", ["/_auth/check", "/_auth/check/nginx"])
@pytest.mark.parametrize("spoof", SPOOFS.values(), ids=SPOOFS.keys())
async def test_the_same_facts_decide_when_a_trusted_proxy_sends_them(
    deployment: Deployment, spoof: Spoof, endpoint: str
) -> None:
    """The control: asked by a trusted peer, these headers describe an allowed request, so
    the test above shows the proxies replace or ignore them."""
    nginx = endpoint.endswith("/nginx")
    facts = dict(spoof.headers)
    described = {
        "X-Original-URI" if nginx else "X-Forwarded-Uri":
            facts.get("X-Forwarded-Uri", unique(spoof.prefix)),
        "X-Original-Method" if nginx else "X-Forwarded-Method":
            facts.get("X-Forwarded-Method", spoof.method),
        "X-Forwarded-Host": facts.get("X-Forwarded-Host", "127.0.0.1"),
    }
    answer = await deployment.request("GET", endpoint, {**API, **described},
                                      base=deployment.gateway)
    assert answer.status == 200, str(answer)


async def test_get_only_public_route_is_public_through_the_proxy(deployment: Deployment) -> None:
    path = unique("/readonly")
    answer = await deployment.request("GET", path, API)
    assert answer.status == 200, str(answer)
    assert len(deployment.received(path)) == 1


async def test_check_asked_through_the_proxy_speaks_only_for_the_callers_credential(
    deployment: Deployment,
) -> None:
    """The README routes /_auth/ to the gateway, so a client may ask /_auth/check itself; it
    learns what its own credential may do, and never gets an identity for nothing."""
    described = {"X-Forwarded-Uri": unique("/app"), "X-Forwarded-Method": "GET"}
    anonymous = await deployment.request("GET", "/_auth/check", {**API, **described})
    assert (anonymous.status, anonymous.error_id) == (401, "session_required"), str(anonymous)
    assert "X-User-Id" not in anonymous.headers

    user = deployment.sign_up("ivan")  # no plan: /billing/ is not for him
    billing = {**described, "X-Forwarded-Uri": unique("/billing")}
    answer = await deployment.request(
        "GET", "/_auth/check", {**API, **billing, **cookie(deployment.session(user))}
    )
    assert (answer.status, answer.error_id) == (403, "access_denied"), str(answer)
    assert "X-User-Id" not in answer.headers


AMBIGUOUS = {
    "dots": ("/public/../internal/{}", 400),
    "encoded-dots": ("/public/%2e%2e/internal/{}", 400),
    "encoded-slash": ("/public/..%2Finternal/{}", 400),
    "all-encoded": ("/public%2F..%2Finternal/{}", 400),
    "dot-then-dots": ("/public/./../internal/{}", 400),
    "path-parameter": ("/public/..;/internal/{}", 400),
    "double-slash": ("//internal/{}", 400),  # the app gets it raw: an empty segment is refused
}


@pytest.mark.parametrize(("target", "status"), AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
async def test_ambiguous_path_is_refused_before_the_app(
    deployment: Deployment, target: str, status: int
) -> None:
    """Sent byte for byte: a path the proxy and the app might read as /internal/ is either
    refused as ambiguous or decided on its one canonical spelling
    (docs/reference.md#canonical-path)."""
    user = deployment.sign_up("jane")
    nonce = unique("x").removeprefix("x/")
    session = f"Cookie: ory_kratos_session={deployment.session(user).cookie_value}"
    answer = await raw_request(deployment.proxy.port, get(
        target.format(nonce), session, "Accept: application/json",
        host=f"127.0.0.1:{deployment.proxy.port}",
    ))
    assert answer.status == status, (answer.status, answer.body[:300])
    assert [seen.raw_path for seen in deployment.app.seen if nonce in seen.raw_path] == []


OVERRIDES = (
    ("X-Original-URL", "/internal/x"), ("X-Original-URI", "/internal/x"),
    ("X-Rewrite-URL", "/internal/x"), ("X-Forwarded-Uri", "/internal/x"),
    ("X-Forwarded-Path", "/internal/x"), ("X-Forwarded-Prefix", "/internal"),
    ("X-Forwarded-Port", "8443"), ("X-Real-IP", "10.9.9.9"),
    ("Forwarded", "for=10.9.9.9;host=evil.example;proto=https"),
    ("X-Forwarded-Host", "evil.example"),
)


async def test_path_and_origin_overrides_from_a_client_never_reach_the_app(
    deployment: Deployment,
) -> None:
    """Found by an outside tester (F4 of issue 13): an app that honours X-Original-URL
    (Symfony, IIS) or reads its host from X-Forwarded-Host must get neither from a client,
    as it gets neither from the gateway in proxy mode
    (docs/reference.md#headers-toward-the-upstream). Each proxy replaces X-Forwarded-Host
    with the host it served."""
    path = unique("/public")
    answer = await deployment.request("GET", path, [*API.items(), *OVERRIDES])
    assert answer.status == 200, str(answer)
    [seen] = deployment.received(path)
    for name, value in OVERRIDES:
        assert value not in header_values(seen, name), (name, seen.headers)


async def test_cross_site_websocket_handshake_is_refused_through_the_proxy(
    deployment: Deployment,
) -> None:
    """Found by an outside tester (F3 of issue 13): the check judged a WebSocket handshake
    without its Origin, so a page on another site could open a socket with the user's cookie
    (docs/reference.md#bodies-and-websockets). Proxies keep `Upgrade` to themselves but pass
    `Sec-WebSocket-Key` on, which is how the gateway recognises the handshake."""
    path = unique("/app")
    handshake = [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
        *cookie(deployment.session(deployment.sign_up("wanda"))).items(),
    ]
    evil = await deployment.request("GET", path, [*handshake, ("Origin", "https://evil.example")])
    assert evil.status == 403, str(evil)
    assert deployment.received(path) == []
