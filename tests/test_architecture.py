"""Imports flow one way (config -> routes -> session -> access -> proxy/endpoints -> app ->
cli), and the Ory stand-in stays independent of the gateway."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gateway"

# A module may import only modules of a lower (or equal) layer.
LAYERS = {
    "units": 0, "errors": 0, "parsing": 0, "logs": 0, "deadlines": 0, "bus": 0,
    "routeconfig": 1, "config": 1, "paths": 1, "headers": 1, "pages": 1, "outcome": 1,
    "bus_local": 1,
    "routes": 2, "session": 2, "credentials": 2, "redirects": 2, "observe": 2, "tls": 2,
    "hooks": 2, "sampleapp": 2,
    "csrf": 3, "devices": 3, "ory": 3, "fleet": 3, "live": 3, "accesslog": 3,
    "cache": 4,
    "access": 5, "respond": 5, "explain": 5, "revocation": 5,
    "relay": 0, "relay.answers": 1, "relay.client": 5, "relay.server": 6,
    "decision": 6, "proxy": 6, "websocket": 6, "context": 6, "forward_auth": 7,
    "sessions_page": 7, "endpoints": 8, "pipeline": 9, "app": 10,
    "reload": 11, "server": 11, "demo": 12, "cli": 13, "__main__": 14, "__init__": 0,
}


def gateway_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.add("." + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


SUBPACKAGES = ("relay",)  # their modules are layered one by one, as "relay.client"


def module_path(module: str) -> Path:
    parts = module.split(".")
    if parts[0] in SUBPACKAGES and len(parts) == 1:
        return PACKAGE / parts[0] / "__init__.py"
    return PACKAGE.joinpath(*parts[:-1], parts[-1] + ".py")


def layer_of(imported: str) -> str:
    """`gateway.relay.client` -> "relay.client"; `gateway.config` -> "config"."""
    parts = imported.split(".")[1:]
    return ".".join(parts[:2]) if parts[0] in SUBPACKAGES and len(parts) > 1 else parts[0]


@pytest.mark.parametrize("module", sorted(LAYERS), ids=str)
def test_module_imports_only_lower_layers(module: str) -> None:
    path = module_path(module)
    assert path.is_file(), f"{module} is listed but missing"
    for name in gateway_imports(path):
        if not name.startswith("gateway.") or name.startswith("gateway.standin"):
            continue
        target = layer_of(name)
        assert target in LAYERS, f"{module} imports unknown {name}"
        assert LAYERS[target] <= LAYERS[module], f"{module} imports higher layer {name}"


def test_every_module_has_a_layer() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} | set(SUBPACKAGES)
    for package in SUBPACKAGES:
        modules |= {
            f"{package}.{p.stem}" for p in (PACKAGE / package).glob("*.py")
            if p.stem != "__init__"
        }
    assert modules == set(LAYERS)


def test_standin_imports_nothing_from_the_gateway() -> None:
    for path in (PACKAGE / "standin").glob("*.py"):
        for name in gateway_imports(path):
            assert name.split(".")[0] != "gateway", (
                f"{path.name} imports {name}: the stand-in must stay an independent implementation"
            )


def reads_environment(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"))
        or (isinstance(node, ast.ImportFrom) and node.module == "os")
        for node in ast.walk(tree)
    )


def test_only_cli_reads_the_environment() -> None:
    readers = {p.stem for p in PACKAGE.rglob("*.py")
               if "standin" not in p.parts and reads_environment(p)}
    assert readers == {"cli"}
