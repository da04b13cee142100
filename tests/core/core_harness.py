"""Test harness for the pure core: a SchedulerState that records its events, and replay checks."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import msgspec

from tierq.core import (
    ErrorSummary,
    Event,
    LeasedTask,
    Outcome,
    OutcomeKind,
    RegionInfo,
    SchedulerState,
    Settings,
    TaskSpec,
)

T0 = 1_700_000_000.0
_decoder = msgspec.msgpack.Decoder(list[Event])


class Harness:
    """A SchedulerState that records every event it emitted, for replay checks."""

    def __init__(self, settings: Settings | None = None, seed: int = 7) -> None:
        self.settings = settings or Settings()
        self.state = SchedulerState(self.settings, random.Random(seed))
        self.events: list[Event] = []
        self.now = T0

    def rec(self, events: Sequence[Event]) -> list[Event]:
        self.events.extend(events)
        return list(events)

    def submit(self, *specs: TaskSpec, now: float | None = None) -> list[str]:
        evs, ids = self.state.submit(list(specs), self.now if now is None else now)
        self.rec(evs)
        return ids

    def region(
        self,
        name: str = "eu",
        types: tuple[str, ...] = ("a", "b", "c"),
        labels: tuple[str, ...] = (),
        instance: str = "i1",
    ) -> list[Event]:
        info = RegionInfo(name=name, instance=instance, task_types=types, labels=labels)
        return self.rec(self.state.register_region(info, self.now))

    def lease(self, slots: int = 10, region: str = "eu", instance: str = "i1") -> list[LeasedTask]:
        evs, leased = self.state.lease(region, instance, slots, self.now)
        self.rec(evs)
        return leased

    def succeed(self, task_id: str, attempt: int = 1, result: object = None) -> list[Event]:
        o = Outcome(task_id=task_id, attempt=attempt, kind=OutcomeKind.SUCCEEDED, result=result)
        return self.rec(self.state.report([o], self.now))

    def fail(self, task_id: str, attempt: int = 1, etype: str = "ValueError") -> list[Event]:
        o = Outcome(
            task_id=task_id,
            attempt=attempt,
            kind=OutcomeKind.FAILED,
            error=ErrorSummary(type=etype, message="boom"),
        )
        return self.rec(self.state.report([o], self.now))

    def tick(self, now: float) -> list[Event]:
        self.now = now
        return self.rec(self.state.tick(now))

    def replayed(self) -> SchedulerState:
        """A fresh state fed the recorded events after a msgpack round trip (like the log)."""
        fresh = SchedulerState(self.settings, random.Random(0))
        for ev in _decoder.decode(msgspec.msgpack.encode(self.events)):
            fresh.apply(ev)
        return fresh

    def check_replay(self) -> None:
        assert self.replayed().snapshot() == self.state.snapshot()
        restored = SchedulerState.restore(self.state.snapshot(), random.Random(0))
        assert restored == self.state


def explain_difference(a: bytes, b: bytes) -> str:
    """Which part of two snapshots differs (for assertion messages)."""
    from tierq.core.live import LiveTask
    from tierq.core.model import Task
    from tierq.core.records import Snapshot

    def decode(data: bytes) -> Snapshot[Any]:
        # Schema 1 held full Task records, schema 2 chunks of the scheduler's LiveTask records.
        if msgspec.msgpack.decode(data, type=Snapshot[Any]).schema_version == 1:
            return msgspec.msgpack.decode(data, type=Snapshot[Task])
        snap = msgspec.msgpack.decode(data, type=Snapshot[list[LiveTask]])
        return msgspec.structs.replace(snap, tasks=[t for chunk in snap.tasks for t in chunk])

    sa = decode(a)
    sb = decode(b)
    out = []
    for field in Snapshot.__struct_fields__:
        va, vb = getattr(sa, field), getattr(sb, field)
        if va != vb:
            if field == "tasks":
                for ta, tb in zip(va, vb, strict=False):
                    if ta != tb:
                        out.append(f"task {ta.id}:\n  {ta}\n  {tb}")
                        break
                else:
                    out.append(f"tasks: {len(va)} vs {len(vb)}")
            else:
                out.append(f"{field}: {va!r} vs {vb!r}")
    return "\n".join(out)
