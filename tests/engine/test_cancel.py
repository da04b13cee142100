"""Cancellations swallowed by a call (as Python 3.11's wait_for does inside nats-py) surface."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from tierq.engine import Engine, raise_if_cancelled
from tierq.engine._cancel import surface_cancellation

T = TypeVar("T")


async def _swallowing() -> str:
    """What 3.11's wait_for does when the reply arrives in the turn the task is cancelled."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        return "reply"
    return "late"


async def _cancelled_once_started(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait({task})
    return task


async def test_a_swallowed_cancellation_is_raised_after_the_call() -> None:
    plain = await _cancelled_once_started(_swallowing())
    assert plain.result() == "reply"  # the hazard: the task carries on as if not cancelled
    guarded = await _cancelled_once_started(surface_cancellation(_swallowing)())
    assert guarded.cancelled()


async def test_a_swallowed_timeout_becomes_a_timeout() -> None:
    guarded = surface_cancellation(_swallowing)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await guarded()


async def test_cleanup_of_a_cancelled_task_still_makes_calls() -> None:
    """A call made in a ``finally`` after the cancellation (releasing a lease, say) returns."""
    done: list[str] = []

    async def quick() -> str:
        await asyncio.sleep(0)
        return "released"

    async def service() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            done.append(await surface_cancellation(quick)())

    task = await _cancelled_once_started(service())
    assert task.cancelled() and done == ["released"]


async def test_an_engines_requests_are_guarded(engine: Engine) -> None:
    """Every JetStream call goes through the guarded ``request`` of its connection."""
    assert getattr(engine.nc.request, "__wrapped__", None) is not None
    assert getattr(engine.nc.flush, "__wrapped__", None) is not None
    info = await engine.js.account_info()
    assert info.limits is not None


async def test_a_loop_ends_when_a_wait_swallowed_its_cancellation() -> None:
    """A service loop that checks ``raise_if_cancelled`` at the top of each round ends one
    round after a wait swallowed its cancellation, instead of running on for ever."""
    rounds = 0

    async def swallowing_wait() -> None:
        # What 3.11's wait_for does when the awaited result arrives in the same turn.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)

    async def service_loop() -> None:
        nonlocal rounds
        while True:
            raise_if_cancelled()
            rounds += 1
            await swallowing_wait()

    task = asyncio.create_task(service_loop())
    await asyncio.sleep(0.01)
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert rounds == 1
