"""Finding the tasks a worker can run: import the user's modules, collect their apps' tasks."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from ..client import App, TaskDef
from ..core import ScheduleSpec
from ..core.model import TaskSpec
from ..errors import InvalidRequestError

__all__ = ["TaskRegistry", "load_tasks"]


class TaskRegistry(Mapping[str, "TaskDef[Any, Any]"]):
    """Task definitions by name, as found in the loaded modules."""

    def __init__(
        self,
        tasks: Mapping[str, TaskDef[Any, Any]],
        modules: tuple[str, ...],
        schedules: Mapping[str, ScheduleSpec] | None = None,
    ) -> None:
        self._tasks = dict(tasks)
        self.modules = modules
        #: Schedules the loaded apps declare (``app.schedule``, ``@app.task(schedule=)``).
        self.schedules = dict(schedules or {})

    def __getitem__(self, name: str) -> TaskDef[Any, Any]:
        return self._tasks[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def names(self) -> list[str]:
        return sorted(self._tasks)

    def declared(self) -> dict[str, TaskSpec]:
        """The options each task declares in code (``@app.task(timeout=...)``), for those
        that declare any: the master applies them to submissions by name."""
        out: dict[str, TaskSpec] = {}
        for name in sorted(self._tasks):
            spec = self._tasks[name].defaults
            if spec != TaskSpec(name=spec.name):
                out[name] = spec
        return out


def load_tasks(modules: Iterable[str]) -> TaskRegistry:
    """Import ``modules`` and collect every task of every :class:`tierq.App` they hold.

    The current directory is put on ``sys.path`` first (as ``python -m`` would), so
    ``tierq worker myapp.tasks`` works from a project root.

    Raises:
        InvalidRequestError: a module cannot be imported, raised while importing, holds no
            tasks, or two different functions claim one task name (``field="modules"``).
    """
    names = tuple(modules)
    if not names:
        raise InvalidRequestError("give at least one module to load tasks from", field="modules")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    found: dict[str, TaskDef[Any, Any]] = {}
    schedules: dict[str, ScheduleSpec] = {}
    for name in names:
        module = _import(name)
        apps: list[App] = []
        for value in list(vars(module).values()):
            if isinstance(value, App):
                apps.append(value)
            elif isinstance(value, TaskDef):
                apps.append(value.app)
        tasks = [task for app in dict.fromkeys(apps) for task in app.tasks.values()]
        for app in dict.fromkeys(apps):
            schedules.update(app.declared_schedules)
        if not tasks:
            raise InvalidRequestError(
                f"module {name!r} declares no tasks: decorate functions with @app.task "
                "on a tierq.App created in (or imported into) that module",
                field="modules",
            )
        for task in tasks:
            other = found.get(task.name)
            if other is not None and other.fn is not task.fn:
                raise InvalidRequestError(
                    f"task name {task.name!r} is declared twice: by {_where(other.fn)} and "
                    f"{_where(task.fn)}",
                    field="modules",
                )
            found[task.name] = task
    return TaskRegistry(found, names, schedules)


def _import(name: str) -> ModuleType:
    if name.endswith(".py") or os.sep in name:
        raise InvalidRequestError(
            f"{name!r} looks like a file path; give a module name such as 'myapp.tasks'",
            field="modules",
        )
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise InvalidRequestError(
                f"cannot import module {name!r}: no module named {exc.name!r} "
                f"(searched from {os.getcwd()})",
                field="modules",
            ) from None
        raise _import_failed(name, exc) from None
    except Exception as exc:
        raise _import_failed(name, exc) from None


def _import_failed(name: str, exc: BaseException) -> InvalidRequestError:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return InvalidRequestError(
        f"importing module {name!r} raised {type(exc).__name__}: {exc}{where}", field="modules"
    )


def _where(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
