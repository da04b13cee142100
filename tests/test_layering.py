"""The dependency rule: core is pure, only engine talks to NATS, the SDK stays client-side."""

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
    """The SDK must run where only the client is installed: no master, region, api, …"""
    server_side = {"master", "region", "api", "autoscale", "dashboard", "dev"}
    for path in sorted((PKG / "client").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.level >= 1:
                    # from ..master import x (level 2 from tierq/client/) or from .x import y
                    top = node.module.split(".")[0] if node.level == 2 else None
                else:
                    parts = node.module.split(".")
                    top = parts[1] if parts[0] == "tierq" and len(parts) > 1 else None
                assert top not in server_side, f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    assert not (parts[0] == "tierq" and len(parts) > 1 and parts[1] in server_side)


def test_no_wait_for() -> None:
    """``asyncio.wait_for`` swallows a cancellation that arrives as the awaited thing completes
    (Python 3.11, gh-86296): a master under load then ignored SIGTERM. ``asyncio.timeout`` is
    the form to use."""
    offenders = [
        str(path.relative_to(PKG.parent))
        for path in PKG.rglob("*.py")
        if "proto" not in path.parts and "asyncio.wait_for(" in path.read_text()
    ]
    assert offenders == []
