"""Declaring tasks: names, defaults, the context parameter, local calls."""

from __future__ import annotations

import pytest

import tierq
from tierq import InvalidRequestError, RetryPolicy, TaskContext

app = tierq.App("nats://127.0.0.1:1")


@app.task
def plain(x: int, y: int = 2) -> int:
    return x + y


@app.task(
    name="custom",
    priority=5,
    retries=4,
    timeout=30,
    region="eu",
    labels=["gpu"],
    queue="heavy",
    resource="db:orders",
    retry_on=[KeyError, "pkg.Err"],
    backoff=(0.5, 9),
)
async def configured(n: int) -> int:
    return n


@app.task
def ctx_first(ctx: TaskContext, a: int, b: int) -> tuple[int, int, int]:
    return ctx.attempt, a, b


@app.task
def ctx_middle(a: int, ctx, b: int = 0) -> tuple[int, str, int]:  # type: ignore[no-untyped-def]
    return a, ctx.task_id, b


@app.task
def ctx_kwonly(a: int, *, ctx: TaskContext) -> str:
    return f"{a}:{ctx.task_id}"


def test_default_name_and_defaults() -> None:
    assert plain.name == f"{__name__}.plain"
    assert app.tasks[plain.name] is plain
    assert not plain.wants_context
    assert not plain.is_async
    assert plain.defaults.retry == RetryPolicy()


def test_decorator_options_become_the_spec_defaults() -> None:
    spec = configured.defaults
    assert configured.name == "custom" and configured.is_async
    assert spec.priority == 5
    assert spec.retry.max_attempts == 5
    assert spec.retry.retry_on == ("KeyError", "pkg.Err")
    assert (spec.retry.backoff_base, spec.retry.backoff_max) == (0.5, 9)
    assert spec.timeout == 30 and spec.region == "eu" and spec.labels == ("gpu",)
    assert spec.queue == "heavy" and spec.resource == "db:orders"


def test_still_callable_locally() -> None:
    assert plain(1) == 3
    assert plain.__name__ == "plain"
    assert ctx_first(1, 2) == (1, 1, 2)
    assert ctx_middle(5) == (5, "local", 0)
    assert ctx_kwonly(3) == "3:local"
    mine = TaskContext(task_id="given", attempt=9, name="x")
    assert ctx_first(mine, 1, 2) == (9, 1, 2)
    assert ctx_kwonly(3, ctx=mine) == "3:given"


@pytest.mark.parametrize(
    ("fn", "args", "kwargs", "expected"),
    [
        (ctx_first, [1, 2], {}, (7, 1, 2)),
        (ctx_first, [], {"a": 1, "b": 2}, (7, 1, 2)),
        (ctx_middle, [1, 2], {}, (1, "t", 2)),
        (ctx_middle, [1], {"b": 4}, (1, "t", 4)),
        (ctx_middle, [], {"a": 1}, (1, "t", 0)),
        (ctx_kwonly, [1], {}, "1:t"),
    ],
)
def test_invoke_fills_the_context_parameter(fn, args, kwargs, expected) -> None:  # type: ignore[no-untyped-def]
    ctx = TaskContext(task_id="t", attempt=7, name=fn.name)
    assert fn.invoke(args, kwargs, ctx) == expected


def test_context_is_not_part_of_the_submitted_arguments() -> None:
    ctx_first.check_arguments([1, 2], {})
    with pytest.raises(InvalidRequestError, match="arguments do not match") as info:
        ctx_first.check_arguments([1, 2, 3], {})
    assert info.value.field == "args"


def test_string_annotation_is_recognised() -> None:
    local = tierq.App("nats://127.0.0.1:1")

    def f(a: int, c: "tierq.TaskContext") -> int:  # noqa: UP037
        return c.attempt + a

    t = local.task(f)
    assert t.wants_context
    assert t(1) == 2


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"priority": 5000}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"retries": -1}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"region": "eu.west"}, "region"),
        ({"labels": ["has space"]}, "labels"),
        ({"backoff": -1}, "backoff"),
        ({"retry_on": [42]}, "retry_on"),
        ({"name": " padded "}, "name"),
    ],
)
def test_bad_decorator_options(options: dict[str, object], field: str) -> None:
    local = tierq.App("nats://127.0.0.1:1")
    with pytest.raises(InvalidRequestError) as info:
        local.task(**options)(lambda: None)  # type: ignore[call-overload]
    assert info.value.field == field


def test_one_name_for_two_functions_is_refused() -> None:
    local = tierq.App("nats://127.0.0.1:1")
    local.task(name="same")(lambda: 1)
    with pytest.raises(InvalidRequestError, match="already used"):
        local.task(name="same")(lambda: 2)
