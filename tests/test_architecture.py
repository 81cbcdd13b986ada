"""Imports flow one way (STYLE.md), and the Ory stand-in stays independent of the gateway."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gateway"

# A module may import only modules of a lower (or equal) layer.
LAYERS = {
    "units": 0, "errors": 0, "assets": 0, "logs": 0, "deadlines": 0,
    "config": 1, "paths": 1, "headers": 1,
    "routes": 2, "session": 2, "credentials": 2, "redirects": 2, "csrf": 3, "devices": 3,
    "ory": 3, "cache": 4, "access": 5, "siblings": 5, "respond": 5, "explain": 5,
    "upstream": 5,
    "proxy": 6, "websocket": 6, "context": 6, "accesslog": 6,
    "sessions_page": 7, "endpoints": 8, "pipeline": 9, "app": 10, "sampleapp": 0,
    "server": 11, "demo": 12, "cli": 13, "__main__": 14, "__init__": 0,
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


@pytest.mark.parametrize("module", sorted(LAYERS), ids=str)
def test_module_imports_only_lower_layers(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    assert path.is_file(), f"{module} is listed but missing"
    for name in gateway_imports(path):
        if not name.startswith("gateway.") or name.startswith("gateway.standin"):
            continue
        target = name.split(".")[1]
        assert target in LAYERS, f"{module} imports unknown {name}"
        assert LAYERS[target] <= LAYERS[module], f"{module} imports higher layer {name}"


def test_every_module_has_a_layer() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
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
    readers = {p.stem for p in PACKAGE.glob("*.py") if reads_environment(p)}
    assert readers == {"cli"}
