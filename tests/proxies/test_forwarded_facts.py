"""A client cannot describe its own request to the gateway: forwarded method, URI and host
that it sends through nginx or Caddy never turn a refusal into a pass, although the same
headers do decide when a trusted proxy sends them (docs/reference.md#forward-auth)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.proxies.deployment import API, OPEN_HOST, Deployment, cookie, unique
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
    "double-slash": ("//internal/{}", 403),  # one canonical spelling: /internal/, denied
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
