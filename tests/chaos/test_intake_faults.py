"""The durable intake under leader faults: acknowledged means applied, once, by whoever leads.

A submission through the intake is acknowledged by the stream, not by the master, so the window
that matters is between that acknowledgement and the leader's log append. These scenarios open
it on purpose: the leader is frozen (SIGSTOP) while submissions keep being acknowledged, then
killed (SIGKILL) before it can append any of them. The standby must apply every one of them,
exactly once, and submissions must not stall while no master serves.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.chaos.harness import Producer, Report, Stack
from tests.chaos.test_master_faults import FAILOVER_BOUND, _failover, assert_kept_promises, run
from tierq.errors import BackpressureError, TierqError

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


class IntakeProducer(Producer):
    """Submits through the durable intake (no idempotency key): one publish per task.

    Only backpressure is resent (it stored nothing). Any other error is a broken promise here:
    the faults hit masters only, and the intake does not need one to acknowledge.
    """

    async def _one(self, key: str) -> None:
        try:
            while True:
                try:
                    handle = await self.app.submit("chaos.work", key, self.ms)
                except BackpressureError:
                    self.errors["BackpressureError"] += 1
                    await asyncio.sleep(0.1)
                    continue
                except TierqError as exc:
                    self.refused.append(f"{key}: {type(exc).__name__}: {exc}")
                    return
                assert "-" in handle.id, f"not submitted through the intake: {handle.id}"
                self.acked[key] = handle.id
                self.ack_times.append(time.monotonic())
                return
        finally:
            self._slots.release()


def freeze_then_kill(frozen: float) -> object:
    """SIGSTOP the leader, keep submitting for ``frozen`` s, SIGKILL it: whatever it had
    acknowledged through the intake meanwhile was never appended by it."""

    async def fault(stack: Stack, report: Report) -> None:
        assert await stack.leader() == "m1"
        stack.signal("m1", signal.SIGSTOP)
        start = time.monotonic()
        await asyncio.sleep(frozen)
        await stack.kill("m1")
        await _failover(stack, "m1")
        report.failover = time.monotonic() - start

    return fault


@pytest.mark.chaos
async def test_intake_entries_acknowledged_while_the_leader_froze_and_died(
    tmp_path: Path,
) -> None:
    report = await run(
        tmp_path,
        "intake: leader SIGSTOP 1.5 s then SIGKILL",
        freeze_then_kill(1.5),  # type: ignore[arg-type]
        seconds=4.0,
        producer_type=IntakeProducer,
    )
    assert_kept_promises(report)
    # Applied once: no task ran twice (a retried attempt is allowed: the takeover may find an
    # assignment of the old leader that never started, as in the other leader faults).
    assert report.duplicates == 0, report.line()
    # No master served for the freeze and the failover (over 2 s), yet submissions went on.
    assert report.max_ack_gap < 1.0, report.line()
    assert report.failover is not None and report.failover < 1.5 + FAILOVER_BOUND
