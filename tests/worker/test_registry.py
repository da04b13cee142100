from __future__ import annotations

import pytest

from tierq import InvalidRequestError
from tierq.worker.registry import load_tasks

from .conftest import ModuleMaker

TASKS = """
import tierq
app = tierq.App()

@app.task
def add(x, y):
    return x + y

@app.task(name="custom.name")
async def other():
    return 1
"""


def test_loads_every_task_of_the_module_apps(make_module: ModuleMaker) -> None:
    name = make_module(TASKS)
    registry = load_tasks([name])
    assert registry.names == sorted([f"{name}.add", "custom.name"])
    assert registry[f"{name}.add"].fn(1, 2) == 3
    assert registry.modules == (name,)


def test_app_imported_from_elsewhere_is_found(make_module: ModuleMaker) -> None:
    base = make_module(TASKS)
    user = make_module(f"from {base} import add\n")
    assert f"{base}.add" in load_tasks([user])


def test_missing_module_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="no module named 'no_such_mod_xyz'") as info:
        load_tasks(["no_such_mod_xyz.tasks"])
    assert info.value.field == "modules"


def test_module_that_raises_names_the_error(make_module: ModuleMaker) -> None:
    name = make_module("import tierq\nraise RuntimeError('bad config')\n")
    with pytest.raises(InvalidRequestError, match="raised RuntimeError: bad config"):
        load_tasks([name])


def test_module_importing_a_missing_dependency(make_module: ModuleMaker) -> None:
    name = make_module("import not_installed_pkg_xyz\n")
    with pytest.raises(InvalidRequestError, match="ModuleNotFoundError"):
        load_tasks([name])


def test_module_without_tasks(make_module: ModuleMaker) -> None:
    name = make_module("X = 1\n")
    with pytest.raises(InvalidRequestError, match="declares no tasks"):
        load_tasks([name])


def test_file_path_instead_of_module() -> None:
    with pytest.raises(InvalidRequestError, match="looks like a file path"):
        load_tasks(["myapp/tasks.py"])


def test_no_modules() -> None:
    with pytest.raises(InvalidRequestError, match="at least one module"):
        load_tasks([])


def test_one_name_two_functions(make_module: ModuleMaker) -> None:
    src = """
import tierq
app = tierq.App()

@app.task(name="dup")
def one():
    pass
"""
    a, b = make_module(src), make_module(src)
    with pytest.raises(InvalidRequestError, match="declared twice"):
        load_tasks([a, b])
