"""Bringing the scheduler's state to the end of the log, from scratch or from where it was.

A master keeps its state between terms whenever that state is known to equal the log up to
some sequence: a standby catches up on the tail while it waits (a warm standby, so failover
replays only what it missed), and a leader that lost its lease without a failed append keeps
what it has. Only a state that may hold events the log does not (an append was refused or its
outcome is unknown, or a command failed half-way) is thrown away and rebuilt from the newest
snapshot plus the log after it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import msgspec

from ..core import Event, SchedulerState, Settings
from ..engine import EventLog, GroupCommitter, IntakeStream, SnapshotStore
from .memory import release_free_memory

__all__ = ["Recovery", "term_start_events"]

log = logging.getLogger("tierq.master")

#: Apply at most this long before letting the event loop run (lease renewals, pings).
_SLICE_SECONDS = 0.05


def term_start_events(
    state: SchedulerState, initial: Settings | None, fresh_log: bool, now: float
) -> list[Event]:
    """Events that start a term: initial settings on a new log, fresh region leases.

    Regions could not renew their leases while no master ran, so each gets a new one
    instead of losing its tasks at the first tick.
    """
    events: list[Event] = []
    if fresh_log and initial is not None:
        events += state.configure(initial, now)
    for region in state.regions():
        events += state.region_heartbeat(region.name, region.instance, now)
    return events


class Recovery:
    """Owns the master's :class:`SchedulerState` between terms.

    ``seq`` is the log sequence the state is known to match; ``None`` means the state may
    hold events the log does not and must be rebuilt before it is used again.
    """

    def __init__(self, log: EventLog, snapshots: SnapshotStore) -> None:
        self.log = log
        self.snapshots = snapshots
        self.state = SchedulerState(Settings(), random.Random())
        self.seq: int | None = None
        #: Log sequence of the snapshot the last rebuild started from (0: none).
        self.snapshot_seq = 0
        self._decoder = msgspec.msgpack.Decoder(list[Event])

    @property
    def clean(self) -> bool:
        return self.seq is not None

    def invalidate(self) -> None:
        """The state may now differ from the log: rebuild it before it is used again."""
        self.seq = None

    def advanced(self, seq: int) -> None:
        """Everything applied to the state is in the log up to ``seq`` (a term ended well)."""
        self.seq = seq

    async def catch_up(self, *, upto: int | None = None) -> int:
        """Apply what the log holds beyond ``seq`` (rebuilding first if needed).

        Args:
            upto: stop once this sequence is applied (the log's last sequence when omitted).

        Returns:
            The number of events applied from the log.
        """
        last = await self.log.last_seq() if upto is None else upto
        if self.seq is not None and self.seq > last:
            # The stream was purged or recreated behind our back: start again.
            self.seq = None
        if self.seq is not None and self.seq < last and self.seq < await self.log.first_seq() - 1:
            self.seq = None  # what we missed was purged after a snapshot
        rebuild = self.seq is None
        started = time.monotonic()
        if rebuild:
            await self._load_snapshot()
        assert self.seq is not None
        applied = 0 if self.seq >= last else await self._replay(last)
        if rebuild:
            release_free_memory()  # what decoding the snapshot and the log left free
            log.info(
                "state rebuilt from the snapshot at %d plus %d events in %.1f s",
                self.snapshot_seq,
                applied,
                time.monotonic() - started,
            )
        elif applied:
            log.debug("caught up %d events to log sequence %d", applied, self.seq)
        return applied

    async def _load_snapshot(self) -> None:
        snap = await self.snapshots.latest()
        if snap is not None:
            start, data = snap
            self.state = SchedulerState.restore(data, random.Random())
        else:
            start = 0
            self.state = SchedulerState(Settings(), random.Random())
        self.snapshot_seq = start
        self.seq = start

    async def _replay(self, last: int) -> int:
        assert self.seq is not None
        apply = self.state.apply
        decode = self._decoder.decode
        applied = 0
        slice_end = time.monotonic() + _SLICE_SECONDS
        async with self.log.read(after_seq=self.seq) as reader:
            async for seq, payload in reader:
                if seq > last:
                    break
                for event in decode(payload):
                    apply(event)
                    applied += 1
                self.seq = seq
                if time.monotonic() >= slice_end:
                    await asyncio.sleep(0)
                    slice_end = time.monotonic() + _SLICE_SECONDS
                if seq >= last:
                    break
        return applied

    async def snapshot(self, committer: GroupCommitter, intake: IntakeStream) -> None:
        """Store the state with the log sequence it covers; purge the log and the intake.

        The state already includes every event handed to ``committer``, so an empty
        submission right after encoding resolves with exactly the sequence it covers.
        """
        intake_seq = self.state.intake_seq
        data = self.state.snapshot()
        seq = await committer.submit([])
        await self.snapshots.put(seq, data)
        await self.log.purge(upto_seq=seq)
        await intake.purge(upto_seq=intake_seq)
        log.info("snapshot at log sequence %d (%d bytes)", seq, len(data))
        del data
        release_free_memory()
