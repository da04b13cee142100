"""The dependency rule: core is pure, only engine talks to NATS, every part imports only what
the rule allows it; and modules and functions stay small."""

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


#: The dependency rule, as drawn in docs/architecture.md: a part of tierq may import the parts
#: its arrows reach, directly or through others, and nothing else. No exceptions: every import
#: counts, at the top of a module or inside a function, and under ``TYPE_CHECKING`` too.
ARROWS: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "credentials": {"core"},
    "config": {"credentials"},
    "protocol": {"core"},
    "engine": {"config"},
    "rpc": {"engine", "protocol"},
    "cronspec": {"core"},
    "master": {"engine", "protocol", "cronspec"},
    "region": {"engine", "protocol"},
    "api": {"rpc", "worker"},  # the shell runner is a Worker inside the API process
    "client": {"rpc", "cronspec"},
    "worker": {"client"},
    "dashboard": {"api"},
    "demo": {"client"},
    "devcheck": {"errors"},
    "autoscale": {"rpc", "worker"},  # it loads the task modules to know their types
    "dev": {"master", "region", "dashboard", "demo", "devcheck", "autoscale"},
    "testing": {"dev", "worker"},
    "cli": {"dev", "worker"},
    "__init__": {"client"},
    "__main__": {"cli"},
}


def _reach(part: str, path: tuple[str, ...] = ()) -> set[str]:
    assert part not in path, "the rule has a cycle: " + " -> ".join((*path, part))
    out: set[str] = set()
    for dep in ARROWS[part]:
        out |= {dep} | _reach(dep, (*path, part))
    return out


#: What each part may import besides itself (raises at import if the arrows had a cycle).
ALLOWED = {part: _reach(part) for part in ARROWS}


def _part(path: Path) -> str:
    """The part of tierq a module belongs to: its sub-package, or its own name at the top."""
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _tierq_imports(path: Path) -> list[tuple[str, int]]:
    """The parts of tierq that ``path`` imports, each with the line that imports it."""
    return _imports_in(path.read_text(), list(path.relative_to(PKG).parts[:-1]))


def _imports_in(source: str, package: list[str]) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("tierq.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] == "tierq":
                names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1]
            full = base + (node.module.split(".") if node.module else [])
            names = [full[0]] if full else [a.name for a in node.names]
        found += [(name, getattr(node, "lineno", 0)) for name in names]
    return found


def _parts() -> set[str]:
    return {_part(p) for p in PKG.rglob("*.py")}


def test_every_part_has_a_place_in_the_rule() -> None:
    assert _parts() == set(ARROWS), "give the new part its arrows here and in docs/architecture.md"


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_imports_follow_the_dependency_rule(part: str) -> None:
    offenders = [
        f"{path.relative_to(PKG.parent)}:{line} imports tierq.{name}"
        for path in sorted(PKG.rglob("*.py"))
        if _part(path) == part
        for name, line in _tierq_imports(path)
        if name != part and name not in ALLOWED[part]
    ]
    assert offenders == []


def test_the_rule_allows_only_downward_imports() -> None:
    assert "worker" not in ALLOWED["client"] and "client" in ALLOWED["worker"]
    assert "dashboard" not in ALLOWED["api"] and "api" in ALLOWED["dashboard"]
    assert "engine" not in ALLOWED["config"] and "config" in ALLOWED["engine"]
    assert ALLOWED["core"] == {"errors"} and "rpc" not in ALLOWED["master"]


def test_the_rule_check_sees_relative_and_nested_imports() -> None:
    """A test that cannot fail is a defect: the checker must find each form of import."""
    source = (
        "from ..worker import run_worker\n"
        "if TYPE_CHECKING:\n"
        "    from ..api.rest import create_app\n"
        "def f() -> None:\n"
        "    from tierq.master import Master\n"
        "    import tierq.region.service\n"
        "from . import _app\n"
        "from .. import errors\n"
        "from tierq import dev\n"
    )
    names = sorted(name for name, _ in _imports_in(source, ["client"]))
    assert names == ["api", "client", "dev", "errors", "master", "region", "worker"]


#: Generated code (the protobuf stubs) is not held to the size limits.
_GENERATED = ("proto",)


def _own_modules() -> list[Path]:
    return [p for p in sorted(PKG.rglob("*.py")) if not set(_GENERATED) & set(p.parts)]


def test_modules_stay_under_600_lines() -> None:
    sizes = {str(p.relative_to(PKG)): len(p.read_text().splitlines()) for p in _own_modules()}
    assert {name: n for name, n in sizes.items() if n > 600} == {}


def test_functions_stay_under_80_lines() -> None:
    long = {}
    for path in _own_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 80:
                    long[f"{path.relative_to(PKG)}:{node.name}"] = lines
    assert long == {}


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
