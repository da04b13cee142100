from __future__ import annotations

import math

import pytest

from tierq import TaskCancelledError, TaskContext


def test_progress_is_clamped_and_forwarded() -> None:
    seen: list[tuple[float, str | None]] = []
    ctx = TaskContext(
        task_id="t1", attempt=2, name="n", on_progress=lambda f, m: seen.append((f, m))
    )
    ctx.progress(0.5, "half")
    ctx.progress(-1)
    ctx.progress(7, "over")
    assert seen == [(0.5, "half"), (0.0, None), (1.0, "over")]
    assert ctx.attempt == 2
    assert ctx.task_id == "t1"


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_progress_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        TaskContext.local().progress(bad)


def test_progress_message_must_be_text() -> None:
    with pytest.raises(TypeError, match="message"):
        TaskContext.local().progress(0.1, 42)  # type: ignore[arg-type]


def test_cancel_flag() -> None:
    ctx = TaskContext.local()
    assert not ctx.cancelled
    ctx.raise_if_cancelled()
    ctx.cancel()
    assert ctx.cancelled
    with pytest.raises(TaskCancelledError):
        ctx.raise_if_cancelled()


def test_local_context_swallows_progress() -> None:
    ctx = TaskContext.local("x")
    ctx.progress(0.3, "nobody listens")
    assert ctx.name == "x"
    assert ctx.parent_results == {}
