"""Task declarations: the decorated function, its context parameter, its specs."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

import msgspec

from ..core.model import TaskSpec
from ..core.validate import check_spec
from ..errors import InvalidRequestError
from ._context import TaskContext
from ._validate import (
    DEFAULT_SETTINGS,
    OVERRIDE_OPTIONS,
    SUBMIT_OPTIONS,
    check_name,
    check_priority,
    check_value,
    overrides,
    task_ids,
    to_seconds,
    to_timestamp,
)

if TYPE_CHECKING:
    from ._app import App
    from ._handles import TaskHandle
    from ._pipeline import PendingTask

P = ParamSpec("P")
R = TypeVar("R")


class TaskDef(Generic[P, R]):
    """A function registered as a task. Calling it runs it here; ``submit`` runs it remotely.

    Made by :meth:`App.task`; ``name`` is how workers and other clients refer to it.
    """

    def __init__(self, app: App, fn: Callable[P, R], name: str, defaults: TaskSpec) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        #: The spec every submission starts from (args empty).
        self.defaults = defaults
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature, self._ctx_param, self._ctx_index = _context_parameter(fn)
        functools.update_wrapper(self, fn)

    @property
    def wants_context(self) -> bool:
        return self._ctx_param is not None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in this process; a context parameter left out gets a local one."""
        p, i = self._ctx_param, self._ctx_index
        given = p is not None and (
            p.name in kwargs
            or (
                p.kind is not inspect.Parameter.KEYWORD_ONLY
                and len(args) > i
                and isinstance(args[i], TaskContext)
            )
        )
        if p is None or given:
            return self.fn(*args, **kwargs)
        return self.invoke(args, kwargs, TaskContext.local(self.name))  # type: ignore[no-any-return]

    def invoke(self, args: Sequence[Any], kwargs: Mapping[str, Any], ctx: TaskContext) -> Any:
        """Call the function with submitted ``args``/``kwargs``, filling its context parameter."""
        p = self._ctx_param
        if p is None:
            return self.fn(*args, **kwargs)
        i = self._ctx_index
        if p.kind is not inspect.Parameter.KEYWORD_ONLY and len(args) >= i:
            return self.fn(*args[:i], ctx, *args[i:], **kwargs)  # type: ignore[arg-type]
        return self.fn(*args, **kwargs, **{p.name: ctx})  # type: ignore[arg-type]

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidRequestError` if the arguments do not fit the signature."""
        if self._signature is None:
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidRequestError(
                f"arguments do not match task {self.name!r}{self._signature}: {exc}", field="args"
            ) from None

    def spec(self, *args: Any, **kwargs: Any) -> TaskSpec:
        """The :class:`TaskSpec` that ``submit`` with the same arguments would send."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SUBMIT_OPTIONS}
        return build_spec(self, args, kwargs, options)

    async def submit(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """Run the task remotely. Options: ``priority``, ``run_at``, ``delay``, ``deadline``,
        ``depends_on``, ``idempotency_key``; every other keyword goes to the function.

        A task whose own parameters use those names takes its arguments via
        :meth:`submit_with`.
        """
        return (await self.app.submit_many([self.spec(*args, **kwargs)]))[0]

    def submit_nowait(self, *args: Any, **kwargs: Any) -> PendingTask:
        """Like :meth:`submit`, without waiting: see :meth:`App.submit_nowait`."""
        return self.app.submit_nowait(self, *args, **kwargs)

    async def submit_with(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskHandle:
        """Like :meth:`submit` with the arguments spelled out; also accepts ``timeout``,
        ``region``, ``labels``, ``queue``, ``resource`` and ``retries`` overrides."""
        spec = build_spec(self, tuple(args), dict(kwargs or {}), options)
        return (await self.app.submit_many([spec]))[0]

    def __repr__(self) -> str:
        return f"<TaskDef {self.name}>"


def _context_parameter(
    fn: Callable[..., Any],
) -> tuple[inspect.Signature | None, inspect.Parameter | None, int]:
    """The signature without the context parameter, that parameter, and its position."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None, None, 0
    params = list(sig.parameters.values())
    for index, p in enumerate(params):
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if p.name == "ctx" or _is_context_annotation(p.annotation):
            rest = params[:index] + params[index + 1 :]
            return sig.replace(parameters=rest), p, index
    return sig, None, 0


def _is_context_annotation(annotation: Any) -> bool:
    if isinstance(annotation, str):
        # ``from __future__ import annotations`` leaves the annotation as text.
        text = annotation.replace(" ", "").strip("'\"").split("|")[0]
        return text.rsplit(".", 1)[-1] == "TaskContext"
    return isinstance(annotation, type) and issubclass(annotation, TaskContext)


def build_spec(
    task: TaskDef[Any, Any] | str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
    *,
    allowed: frozenset[str] = SUBMIT_OPTIONS | OVERRIDE_OPTIONS,
) -> TaskSpec:
    """Validate one submission and build its :class:`TaskSpec`; errors name the field."""
    unknown = set(options) - allowed
    if unknown:
        raise InvalidRequestError(
            f"unknown submit option(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0]
        )
    if isinstance(task, TaskDef):
        base = task.defaults
        task.check_arguments(args, kwargs)
    else:
        base = TaskSpec(name=check_name(task))
    for i, value in enumerate(args):
        check_value(value, f"args[{i}]")
    for key, value in kwargs.items():
        check_value(value, f"kwargs.{key}")
    changes: dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs)}
    if "priority" in options:
        changes["priority"] = check_priority(options["priority"])
    run_at = to_timestamp(options.get("run_at"), "run_at")
    if options.get("delay") is not None:
        if run_at is not None:
            raise InvalidRequestError("give run_at or delay, not both", field="delay")
        run_at = time.time() + to_seconds(options["delay"], "delay")
    if run_at is not None:
        changes["run_at"] = run_at
    deadline = to_timestamp(options.get("deadline"), "deadline")
    if deadline is not None:
        changes["deadline"] = deadline
    if options.get("depends_on"):
        changes["depends_on"] = task_ids(options["depends_on"])
    idem = options.get("idempotency_key")
    if idem is not None:
        if not isinstance(idem, str) or not 1 <= len(idem) <= 256:
            raise InvalidRequestError(
                "idempotency_key must be a string of 1-256 characters", field="idempotency_key"
            )
        changes["idempotency_key"] = idem
    changes.update(overrides(options, base))
    spec = msgspec.structs.replace(base, **changes)
    # Last, the master's own check with its default limits: the SDK refuses exactly what a
    # default master refuses (the checks above only name the offending argument better).
    check_spec(spec, "spec", DEFAULT_SETTINGS)
    return spec
