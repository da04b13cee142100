"""The SDK imports nothing server-side: an app that only submits needs no service code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "tierq" / "client"
SERVER_SIDE = {"master", "region", "api", "autoscale", "dashboard", "dev", "cli"}


def _tierq_imports(path: Path) -> set[str]:
    """First component under ``tierq`` of every import in ``path``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 2:  # from ..master import x
                found.add(node.module.split(".")[0])
            elif node.level == 0 and node.module.startswith("tierq."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tierq."):
                    found.add(alias.name.split(".")[1])
    return found


@pytest.mark.parametrize("path", sorted(CLIENT.glob("*.py")), ids=lambda p: p.name)
def test_client_imports_nothing_server_side(path: Path) -> None:
    assert not _tierq_imports(path) & SERVER_SIDE
