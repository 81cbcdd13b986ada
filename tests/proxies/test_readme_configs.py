"""The README's forward-auth configurations are what the other tests here run, and each is
well-formed for its proxy (docs/reference.md#forward-auth)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from tests.proxies.block_yaml import YamlSubsetError, load
from tests.proxies.deployment import gateway_toml
from tests.proxies.front_proxies import BINARIES, caddyfile, free_port, nginx_conf
from tests.proxies.readme import snippet, substitute

CHECK_WITHIN = 20.0  # seconds for `nginx -t` or `caddy adapt`


@pytest.mark.parametrize(
    ("name", "language"),
    [("gateway", "toml"), ("nginx", "nginx"), ("caddy", "caddyfile"), ("traefik", "yaml")],
)
def test_every_forward_auth_marker_is_followed_by_its_configuration(
    name: str, language: str
) -> None:
    assert snippet(name, language).strip()


def test_substitute_fails_loudly_when_the_readme_no_longer_has_an_address() -> None:
    with pytest.raises(AssertionError, match=r"no longer contains \['listen 80;'\]"):
        substitute("listen 8080;", {"listen 80;": "listen 1;"}, what="nginx")


def test_substitute_replaces_all_at_once_so_a_new_port_is_never_rewritten_again() -> None:
    text = "server 127.0.0.1:4180; proxy_pass http://127.0.0.1:3000;"
    replaced = substitute(
        text, {"127.0.0.1:4180": "127.0.0.1:30001", "127.0.0.1:3000": "127.0.0.1:40000"},
        what="nginx",
    )
    assert replaced == "server 127.0.0.1:30001; proxy_pass http://127.0.0.1:40000;"


def test_gateway_configuration_trusts_only_the_local_proxy_and_uses_its_origin() -> None:
    config = load_config(
        gateway_toml(gateway_port=41800, origin="http://127.0.0.1:41801",
                     ory_url="http://127.0.0.1:41802"), {},
    )
    assert config.server.trusted_proxies == (ipaddress.ip_network("127.0.0.1/32"),)
    assert config.server.public_url == "http://127.0.0.1:41801"
    assert config.ory.url == "http://127.0.0.1:41802"
    assert str(config.server.listen).endswith(":41800")


@pytest.mark.skipif(not BINARIES["nginx"].exists(), reason="nginx is not installed")
def test_nginx_accepts_the_readme_configuration(tmp_path: Path) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(nginx_conf(tmp_path, port=free_port(), gateway_port=free_port(),
                                 app_port=free_port()), encoding="utf-8")
    checked = subprocess.run(
        [str(BINARIES["nginx"]), "-t", "-p", str(tmp_path), "-c", str(config),
         "-e", str(tmp_path / "error.log")],
        capture_output=True, text=True, timeout=CHECK_WITHIN, check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


@pytest.mark.skipif(not BINARIES["caddy"].exists(), reason="caddy is not installed")
def test_caddy_adapts_the_readme_configuration_to_clear_then_copy_identity_headers(
    tmp_path: Path,
) -> None:
    """The adapted JSON deletes the client's identity headers before it asks the gateway."""
    config = tmp_path / "Caddyfile"
    config.write_text(caddyfile(tmp_path, port=free_port(), gateway_port=free_port(),
                                app_port=free_port()), encoding="utf-8")
    adapted = subprocess.run(
        [str(BINARIES["caddy"]), "adapt", "--config", str(config), "--adapter", "caddyfile"],
        capture_output=True, text=True, timeout=CHECK_WITHIN, check=False, cwd=tmp_path,
        env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
             "XDG_CONFIG_HOME": str(tmp_path / "config")},
    )
    assert adapted.returncode == 0, adapted.stderr
    handlers = [h for h in _walk(json.loads(adapted.stdout)) if "handler" in h]
    order = [h["handler"] for h in handlers]
    first_delete = next(i for i, h in enumerate(handlers) if h["handler"] == "headers"
                        and "X-User-Id" in h.get("request", {}).get("delete", []))
    ask = next(i for i, h in enumerate(handlers) if h["handler"] == "reverse_proxy"
               and "/_auth/check" in json.dumps(h.get("rewrite", {})))
    assert first_delete < ask, order


def _walk(value: Any) -> list[dict[str, Any]]:
    """Every JSON object in `value`, depth first, in document order."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found += _walk(item)
    elif isinstance(value, list):
        for item in value:
            found += _walk(item)
    return found


def test_traefik_configuration_is_yaml_that_drops_then_copies_identity_headers() -> None:
    document = load(snippet("traefik", "yaml"))
    http = document["http"]
    middlewares = http["middlewares"]
    forward_auth = middlewares["ory-gateway"]["forwardAuth"]
    assert forward_auth["address"].endswith("/_auth/check")
    assert forward_auth["trustForwardHeader"] is False
    assert forward_auth["authResponseHeaders"] == ["X-User-Id", "X-User-Email"]
    dropped = middlewares["drop-client-claims"]["headers"]["customRequestHeaders"]
    assert set(dropped.values()) == {""}  # an empty value removes the header
    assert {"X-User-Id", "X-User-Email", "X-Original-Url", "X-Rewrite-Url"} <= set(dropped)
    assert http["routers"]["app"]["middlewares"] == ["drop-client-claims", "ory-gateway"]
    assert "PathPrefix(`/_auth/`)" in http["routers"]["gateway-pages"]["rule"]


@pytest.mark.parametrize(
    "text",
    ["a: 1\na: 2", "a:\n\tb: 1", "a: &anchor 1", "a: |\n  text", "a: {b: 1}", "a: b: c",
     "a:\n  - 1\n   - 2", 'a: "open', "a: [1, [2]]", "a: 1\n  b: 2"],
    ids=["duplicate-key", "tab", "anchor", "block-scalar", "flow-mapping", "nested-colon",
         "bad-indent", "open-quote", "nested-flow", "over-indented"],
)
def test_yaml_reader_refuses_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(YamlSubsetError):
        load(text)


def test_yaml_reader_reads_block_and_flow_collections() -> None:
    text = 'a:\n- x\n- y: 1\n  z: [p, "q,r"]  # note\nb: false\nc: ""\n'
    assert load(text) == {"a": ["x", {"y": 1, "z": ["p", "q,r"]}], "b": False, "c": ""}
