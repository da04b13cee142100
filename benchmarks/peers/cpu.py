"""How busy the shared machine is: before a run (idle share) and during it (others' share).

Linux only (``/proc``). Tick counts are in USER_HZ, like ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable
from pathlib import Path

_HZ = os.sysconf("SC_CLK_TCK")


def _machine() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _groups(pgids: set[int]) -> int:
    """Ticks used so far by the live processes of these process groups (and their reaped kids)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields[0] is the state; pgrp is [2]; utime, stime, cutime, cstime are [11:15].
        if int(fields[2]) in pgids:
            ticks += sum(int(x) for x in fields[11:15])
    return ticks


def _own() -> int:
    """Ticks used by this process and its reaped children."""
    used = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        used += usage.ru_utime + usage.ru_stime
    return round(used * _HZ)


def idle_share(seconds: float = 1.0) -> float:
    """Share of the machine's CPU left idle over the next ``seconds``."""
    busy0, total0 = _machine()
    time.sleep(seconds)
    busy1, total1 = _machine()
    return 1 - (busy1 - busy0) / max(1, total1 - total0)


def wait_for_quiet(min_idle: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until others leave ``min_idle`` of the CPU idle; return it."""
    deadline = time.monotonic() + max_wait
    idle = idle_share()
    while idle < min_idle and time.monotonic() < deadline:
        time.sleep(2)
        idle = idle_share()
    return idle


class OthersMeter:
    """Share of the machine's CPU used by processes that are not ours, since construction.

    Ours: this process, the children it has reaped (the producer) and the process groups named
    when reading (Redis and the workers, still running).
    """

    def __init__(self) -> None:
        self._busy, self._total = _machine()
        self._own = _own()

    def share(self, pgids: Iterable[int]) -> float:
        ours = _groups(set(pgids)) + _own() - self._own
        busy, total = _machine()
        return max(0.0, (busy - self._busy - ours) / max(1, total - self._total))
