"""The check of a schedule's cron expression and zone, shared by the master (which computes
fire times from them, ``tierq/master/firetimes.py``) and the SDK (so a schedule declared in
code with a typo fails where it is declared, not later in a worker's log). The core cannot
hold it: reading zone data is I/O."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]

from .core import ScheduleSpec
from .errors import InvalidRequestError

__all__ = ["check_cron", "zone"]


def check_cron(spec: ScheduleSpec) -> None:
    """Refuse a cron expression croniter cannot read, or a zone zoneinfo does not know."""
    zone(spec.timezone)
    if spec.cron is not None:
        expr = spec.cron.strip()
        fields = len(expr.split())
        if not expr.startswith("@") and fields not in (5, 6):
            raise InvalidRequestError(
                "cron: 5 fields (minute hour day month weekday), or 6 with seconds first",
                field="cron",
            )
        if not croniter.is_valid(expr, second_at_beginning=fields == 6):
            raise InvalidRequestError(f"cron: cannot read {spec.cron!r}", field="cron")


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; an unknown one is an InvalidRequestError naming ``timezone``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequestError(f"timezone: unknown zone {name!r}", field="timezone") from None
