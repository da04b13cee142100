"""What `tierq regions` and `tierq workers` show of the autoscalers: each region's
autoscalers (one per pool of task types) answer on ``<prefix>.autoscale.<region>.status``;
a region without one is simply absent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from rich.table import Table

from ..protocol import AutoscaleStatus
from ..rpc import MasterClient, region_autoscalers
from ._common import escape, when

#: Seconds an autoscaler gets to answer.
ASK_TIMEOUT = 1.0


async def autoscalers(
    master: MasterClient, regions: Iterable[str]
) -> dict[str, list[AutoscaleStatus]]:
    """The status of every autoscaler that answers, by region (by task types within one)."""

    names = sorted(set(regions))
    found = await asyncio.gather(
        *(region_autoscalers(master.engine, master.subjects, n, ASK_TIMEOUT) for n in names)
    )
    return {name: pools for name, pools in zip(names, found, strict=True) if pools}


def health(status: AutoscaleStatus, now: float | None = None) -> str:
    """ "ok", "error: …" or "stale" (no check for three intervals)."""
    if status.error:
        return f"error: {status.error}"
    age = (now if now is not None else time.time()) - status.checked_at
    return "ok" if age <= max(5.0, 3 * status.interval) else f"stale ({age:.0f} s)"


def workers_cell(pools: list[AutoscaleStatus] | None) -> str:
    """Desired and live workers, as the tables show them (per pool when there are several)."""
    if not pools:
        return "-"
    cells = []
    for status in pools:
        extra = [
            f"{n} {what}"
            for n, what in ((status.starting, "starting"), (status.draining, "draining"))
            if n
        ]
        cell = f"{status.desired} desired / {status.actual} live" + (
            f" ({', '.join(extra)})" if extra else ""
        )
        cells.append(cell if len(pools) == 1 else f"{', '.join(status.task_types)}: {cell}")
    return "\n".join(cells)


def autoscaler_table(found: dict[str, list[AutoscaleStatus]]) -> Table:
    """One row per autoscaler (a region may have one per pool), then its latest decisions."""
    table = Table(
        "region", "task types", "provider", "workers", "bounds", "health", "last decisions"
    )
    for region, pools in sorted(found.items()):
        for s in pools:
            decisions = "\n".join(
                f"{when(d.at)}  {d.previous} -> {d.desired}  {d.reason}" for d in s.decisions[-3:]
            )
            table.add_row(
                escape(region),
                escape(", ".join(s.task_types) or "-"),
                s.provider,
                workers_cell([s]),
                f"{s.min_workers}-{s.max_workers}",
                escape(health(s)),
                escape(decisions or s.reason or "-"),
            )
    return table
