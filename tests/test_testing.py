"""``tierq.testing`` reports a service that crashed instead of swallowing it at teardown."""

from __future__ import annotations

import asyncio

import pytest

from tierq.testing import _stopped


async def test_a_service_that_crashed_is_raised_at_teardown() -> None:
    async def service() -> None:
        raise RuntimeError("the service crashed")

    task = asyncio.create_task(service())
    await asyncio.wait({task})
    with pytest.raises(RuntimeError, match="the service crashed"):
        await _stopped(task)


async def test_a_service_stopped_by_cancellation_stops_cleanly() -> None:
    task = asyncio.create_task(asyncio.Event().wait())
    task.cancel()
    await _stopped(task)
    assert task.cancelled()


async def test_the_caller_being_cancelled_is_not_taken_for_a_stop() -> None:
    service = asyncio.create_task(asyncio.Event().wait())
    stopping = asyncio.create_task(_stopped(service))
    await asyncio.sleep(0)  # let it start waiting on the service: nothing to wait for here
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert stopping.cancelled()
