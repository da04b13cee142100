"""A schedule firing every second while the leader master is SIGKILLed with a standby running:
every fire time before, during and after the takeover runs exactly once.

The runs write an independent ledger (``ctasks.fire``: the fire time each run was started
for, and its task id). A fire time with no run is a skip, one with two task ids a double
fire; an execution repeated under one task id is an at-least-once retry of the same run (a
counted attempt), not a second fire.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.chaos.harness import Stack
from tests.chaos.test_master_faults import FAILOVER_BOUND, _failover

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _ledger(path: Path) -> dict[float, dict[str, set[int]]]:
    """Fire time -> task id -> the attempts that ran it."""
    runs: dict[float, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "fire" in row:
                runs[row["fire"]][row["task"]].add(row["attempt"])
    return runs


async def _until(what: str, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.2)


@pytest.mark.chaos
async def test_every_fire_time_runs_once_across_a_leader_sigkill(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    try:
        await stack.start(workers=1)
        app = stack.app
        assert app is not None
        view = await app.schedules.create(
            "tick",
            "chaos.fire",
            every=1,
            overlap="allow_all",
            catchup_window=60,
            fire_time_arg="fired_for",
        )
        assert view.next_fire is not None
        first = view.next_fire
        await _until("3 fires before the fault", lambda: len(_ledger(stack.ledger)) >= 3, 20)
        assert await stack.leader() == "m1"
        killed_at = time.time()
        await stack.kill("m1")
        failover = await _failover(stack, "m1")
        assert failover < FAILOVER_BOUND
        resumed = time.time()
        # Fires after the takeover, well past the ones the dead leader may have decided.
        await _until(
            "fires after the takeover",
            lambda: any(t > resumed + 3 for t in _ledger(stack.ledger)),
            30,
        )
        view = await app.schedules.pause("tick", note="end of the test")
        last = view.last_fire
        assert last is not None and last > resumed + 3
        expected = [first + k for k in range(int(last - first) + 1)]
        # Every run started before the pause reaches the ledger.
        await _until(
            "every fire time in the ledger",
            lambda: set(expected) <= set(_ledger(stack.ledger)),
            30,
        )
        runs = _ledger(stack.ledger)
        assert sorted(runs) == expected, "a fire time ran that was never due"
        doubles = {t: sorted(ids) for t, ids in runs.items() if len(ids) != 1}
        assert doubles == {}, f"fire times with more than one run: {doubles}"
        during = [t for t in expected if killed_at - 1 <= t <= resumed + 1]
        assert during, "no fire time fell due during the takeover"
        print(
            f"schedule across SIGKILL: {len(expected)} fire times, {len(during)} during the "
            f"takeover, failover {failover:.2f} s, every one ran once"
        )
    finally:
        await stack.close()
