"""The dependency rule: core is pure, only engine talks to NATS, client imports nothing server-side."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "tierq"

FORBIDDEN_IN_CORE = {
    "asyncio",
    "nats",
    "time",
    "random",
    "socket",
    "http",
    "urllib",
    "grpc",
    "fastapi",
    "starlette",
    "os",
    "subprocess",
    "threading",
    "datetime",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _modules(sub: str) -> list[Path]:
    return sorted((PKG / sub).rglob("*.py")) if (PKG / sub).exists() else []


@pytest.mark.parametrize("path", _modules("core"), ids=lambda p: p.name)
def test_core_is_pure(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN_IN_CORE
    assert not bad, f"{path.name} imports {sorted(bad)}; core must not do I/O or read clocks"


def test_only_engine_imports_nats() -> None:
    offenders = [
        str(p.relative_to(PKG))
        for p in PKG.rglob("*.py")
        if "nats" in _imports(p) and p.relative_to(PKG).parts[0] not in ("engine", "testing.py")
    ]
    assert offenders == []


def test_client_imports_nothing_server_side() -> None:
    client = PKG / "client.py"
    if not client.exists():
        pytest.skip("no client yet")
    tree = ast.parse(client.read_text())
    relative = {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module
    }
    assert not relative & {"master", "region", "api", "autoscale", "dashboard"}
