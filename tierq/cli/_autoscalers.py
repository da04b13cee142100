"""What `tierq regions` and `tierq workers` show of the autoscalers: each region's
autoscaler is asked on ``<prefix>.autoscale.<region>.status``; a region without one is
simply absent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from rich.table import Table

from ..errors import TierqError
from ..protocol import AutoscaleStatus, decode_reply
from ..rpc import MasterClient
from ._common import escape, when

#: Seconds an autoscaler gets to answer.
ASK_TIMEOUT = 1.0


async def autoscalers(master: MasterClient, regions: Iterable[str]) -> dict[str, AutoscaleStatus]:
    """The status of each region's autoscaler that answers, by region."""

    async def ask(region: str) -> AutoscaleStatus | None:
        subject = master.subjects.autoscale_status(region)
        try:
            data = await master.engine.request(subject, b"", timeout=ASK_TIMEOUT)
            return decode_reply(data, AutoscaleStatus)
        except TierqError:
            return None

    names = sorted(set(regions))
    found = await asyncio.gather(*(ask(name) for name in names))
    return {name: status for name, status in zip(names, found, strict=True) if status}


def health(status: AutoscaleStatus, now: float | None = None) -> str:
    """ "ok", "error: …" or "stale" (no check for three intervals)."""
    if status.error:
        return f"error: {status.error}"
    age = (now if now is not None else time.time()) - status.checked_at
    return "ok" if age <= max(5.0, 3 * status.interval) else f"stale ({age:.0f} s)"


def workers_cell(status: AutoscaleStatus | None) -> str:
    """Desired and actual workers, as the tables show them."""
    if status is None:
        return "-"
    extra = [
        f"{n} {what}"
        for n, what in ((status.starting, "starting"), (status.draining, "draining"))
        if n
    ]
    return f"{status.desired} desired / {status.actual} live" + (
        f" ({', '.join(extra)})" if extra else ""
    )


def autoscaler_table(found: dict[str, AutoscaleStatus]) -> Table:
    """One row per autoscaler, then its latest decisions."""
    table = Table("region", "provider", "workers", "bounds", "health", "last decisions")
    for region, s in sorted(found.items()):
        decisions = "\n".join(
            f"{when(d.at)}  {d.previous} -> {d.desired}  {d.reason}" for d in s.decisions[-3:]
        )
        table.add_row(
            escape(region),
            s.provider,
            workers_cell(s),
            f"{s.min_workers}-{s.max_workers}",
            escape(health(s)),
            escape(decisions or s.reason or "-"),
        )
    return table
