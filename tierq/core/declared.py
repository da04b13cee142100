"""Options a task type declares in code, applied to submissions by name that leave them out.

``@app.task(timeout=2, retries=0)`` is known to the process that defines the function. A
submission through the SDK's :class:`TaskDef` carries those options; one by name (the CLI,
REST, gRPC, another service's SDK) did not, so the task ran without its timeout. Workers send
each task's declared options when they register, the region passes them up with its
registration, and the master fills them into a submitted spec wherever the request left a
field at its built-in default. A value the request gives explicitly wins, except that a value
equal to the built-in default cannot be told from an absent one. The stored spec holds the
options in force, so every view shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from ..errors import InvalidRequestError
from .book import Book
from .model import TaskSpec
from .settings import Settings
from .validate import check_specs

__all__ = ["OPTIONS", "check_declared", "with_declared"]

#: The fields a declaration may set.
OPTIONS = ("priority", "timeout", "retry", "queue", "resource", "region", "labels")
_BLANK = {name: getattr(TaskSpec(name="x"), name) for name in OPTIONS}
#: At most this many declarations in one registration.
MAX_DECLARED = 10_000


def check_declared(
    declared: object, types: Sequence[str], settings: Settings
) -> dict[str, TaskSpec]:
    """The declarations of a registration, checked like submissions and cut to the options
    (arguments, dependencies and times are not declarations)."""
    if not isinstance(declared, Mapping) or len(declared) > MAX_DECLARED:
        raise InvalidRequestError(
            f"declared: at most {MAX_DECLARED} task options by name", field="declared"
        )
    if not declared:
        return declared if isinstance(declared, dict) else {}
    known = set(types)
    out: dict[str, TaskSpec] = {}
    names = sorted(declared)
    checked = check_specs([declared[n] for n in names], "declared", settings)
    for name, (spec, _) in zip(names, checked, strict=True):
        if name != spec.name or name not in known:
            raise InvalidRequestError(
                f"declared[{name!r}]: must be one of the registered task types, named alike",
                field="declared",
            )
        out[name] = TaskSpec(name=name, **{f: getattr(spec, f) for f in OPTIONS})
    return out


def _setters(declared: TaskSpec) -> tuple[tuple[str, object], ...]:
    """The (field, value) pairs a declaration sets: usually one to three of ``OPTIONS``."""
    return tuple((f, v) for f in OPTIONS if (v := getattr(declared, f)) != _BLANK[f])


def with_declared(book: Book, specs: Sequence[TaskSpec]) -> Sequence[TaskSpec]:
    """``specs`` with each type's declared options where the spec left them at default.

    On the submission path: each declaration is read once per call, and a spec compares
    only the fields its declaration sets.
    """
    index = book.regions.declared
    if not index:
        return specs
    out: list[TaskSpec] | None = None
    setters: dict[str, tuple[tuple[str, object], ...]] = {}
    for i, spec in enumerate(specs):
        if not isinstance(spec, TaskSpec):
            continue
        name = spec.name
        pairs = setters.get(name)
        if pairs is None:
            declared = index.get(name)
            pairs = setters[name] = _setters(declared) if declared is not None else ()
        changes = {f: v for f, v in pairs if getattr(spec, f) == _BLANK[f]}
        if changes:
            if out is None:
                out = list(specs)
            out[i] = msgspec.structs.replace(spec, **changes)
    return specs if out is None else out
