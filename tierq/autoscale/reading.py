"""What the autoscaler reads from the master: the figures one pool's policy decision needs.

Three read-only queries per check (statistics, the region's workers, the settings), so the
settings are the live ones: a change from the API, the CLI or the dashboard applies at the
next check.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field

from ..core.autoscale import PoolObservation
from ..core.settings import AutoscaleSettings
from ..protocol import (
    QueryKind,
    QueryRequest,
    SettingsReply,
    StatsReply,
    WorkersReply,
    WorkerView,
)
from ..rpc import MasterClient

__all__ = ["RateMeter", "Reading", "read_pool"]


@dataclass(slots=True)
class RateMeter:
    """Attempts finished per second by a set of workers, over the last ``window`` seconds.

    Computed from the counters each worker reports (completed + failed), so it is the pool's
    own rate, fresh within a check, and a worker that leaves takes nothing back.
    """

    window: float = 10.0
    _last: dict[str, int] = field(default_factory=dict)
    _samples: deque[tuple[float, int]] = field(default_factory=deque)

    def observe(self, now: float, workers: Collection[WorkerView]) -> float:
        done = 0
        seen: dict[str, int] = {}
        for w in workers:
            total = w.completed + w.failed
            seen[w.id] = total
            done += max(0, total - self._last.get(w.id, total))
        self._last = seen
        self._samples.append((now, done))
        while self._samples and self._samples[0][0] < now - self.window:
            self._samples.popleft()
        span = now - self._samples[0][0]
        if span <= 0:
            return 0.0
        # The oldest sample counts what finished before the window: leave it out.
        return sum(n for _, n in list(self._samples)[1:]) / span


@dataclass(frozen=True, slots=True)
class Reading:
    observation: PoolObservation
    settings: AutoscaleSettings
    #: The region's workers by id, as the master last heard of them.
    views: dict[str, WorkerView]


async def read_pool(
    master: MasterClient,
    *,
    region: str,
    task_types: Collection[str],
    managed: Collection[str],
    slots_per_worker: int,
    meter: RateMeter,
    now: float,
) -> Reading:
    """The pool's figures; ``managed`` are the ids of its live workers (not draining). One
    that has not registered yet counts as a worker, idle."""
    stats, workers, settings = await asyncio.gather(
        master.query(QueryRequest(kind=QueryKind.STATS), StatsReply),
        master.query(QueryRequest(kind=QueryKind.WORKERS, region=region), WorkersReply),
        master.query(QueryRequest(kind=QueryKind.SETTINGS), SettingsReply),
    )
    views = {w.id: w for w in workers.workers}
    mine = [views[i] for i in managed if i in views and not views[i].draining]
    starting = sum(1 for i in managed if i not in views)
    running_here = sum(w.running for w in views.values())
    s = stats.stats
    ready = sum(n for name, n in s.ready_by_name.items() if name in task_types)
    latency = s.latency.p90_ms if s.latency is not None else None
    # The slowest of the pool's types: any of them waiting too long calls for workers.
    p50s = [
        v.p50_ms for t, v in s.latency_by_name.items() if t in task_types and v.p50_ms is not None
    ]
    observation = PoolObservation(
        ready=ready,
        # Held by the region (assigned or running) less what runs: queued there.
        assigned=max(0, s.held_by_region.get(region, 0) - running_here),
        running=sum(w.running for w in mine),
        workers=len(mine) + starting,
        idle_workers=sum(1 for w in mine if w.running == 0) + starting,
        slots_per_worker=slots_per_worker,
        throughput=meter.observe(now, mine),
        latency_p90=latency / 1000.0 if latency is not None else None,
        latency_p50=max(p50s) / 1000.0 if p50s else None,
    )
    return Reading(observation, settings.settings.autoscale.for_pool(region, task_types), views)
