"""The blocking facade's private loop thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

import tierq
from tierq import EngineUnavailableError, WaitTimeoutError


def test_runs_coroutines_on_its_own_thread_and_stops() -> None:
    sync = tierq.App("nats://127.0.0.1:1").sync

    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert sync.run(where()) == "tierq-sync"
    sync.close()
    assert sync.run(where()) == "tierq-sync"  # a later call starts it again
    sync.close()


def test_errors_propagate_and_timeouts_are_wait_timeouts() -> None:
    with tierq.App("nats://127.0.0.1:1").sync as sync:

        async def boom() -> None:
            raise ValueError("inside")

        with pytest.raises(ValueError, match="inside"):
            sync.run(boom())
        with pytest.raises(WaitTimeoutError):
            sync.run(asyncio.sleep(5), timeout=0.05)


def test_unreachable_server_raises_engine_unavailable() -> None:
    with tierq.App("nats://127.0.0.1:1").sync as sync, pytest.raises(EngineUnavailableError):
        sync.get("0000")
