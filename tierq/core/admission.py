"""Backpressure: refuse new work above soft and hard watermarks, with a retry-after hint.

Two limits apply to *waiting* tasks (accepted, not yet handed to a region): one across all
queues and one per queue. Below ``soft_watermark * limit`` everything is admitted; between the
soft and the hard watermark only tasks with ``priority >= soft_min_priority``; above the hard
watermark nothing. A batch is admitted or refused as a whole.

The retry-after hint grows linearly from ``retry_after_min`` at the soft watermark to
``retry_after_max`` at the limit: the fuller the queue, the longer a client should wait. (A
drain-rate estimate would be sharper, but it needs a clock the core does not read.)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import msgspec

from ..errors import BackpressureError
from .settings import AdmissionSettings

__all__ = ["AdmissionLevel", "AdmissionStatistics", "admission_level", "check_admission"]


class AdmissionLevel(enum.Enum):
    #: Below the soft watermark.
    OPEN = "open"
    #: Between the watermarks: only high priorities are admitted.
    SOFT = "soft"
    #: At or above the hard watermark: nothing is admitted.
    HARD = "hard"


class AdmissionStatistics(msgspec.Struct, frozen=True, kw_only=True):
    level: AdmissionLevel
    waiting: int
    max_queued: int
    #: Queues that are above their soft watermark, with their level.
    queues: dict[str, AdmissionLevel]
    rejected: int


def admission_level(count: int, limit: int, settings: AdmissionSettings) -> AdmissionLevel:
    if count >= settings.hard_watermark * limit:
        return AdmissionLevel.HARD
    if count >= settings.soft_watermark * limit:
        return AdmissionLevel.SOFT
    return AdmissionLevel.OPEN


def _retry_after(after: int, limit: int, settings: AdmissionSettings) -> float:
    soft = settings.soft_watermark * limit
    span = max(settings.hard_watermark * limit - soft, 1.0)
    frac = min(max((after - soft) / span, 0.0), 1.0)
    lo, hi = settings.retry_after_min, settings.retry_after_max
    return round(lo + (hi - lo) * frac, 3)


def _check_one(
    what: str, count: int, adding: int, min_priority: int, limit: int, s: AdmissionSettings
) -> None:
    after = count + adding
    if after > s.hard_watermark * limit:
        raise BackpressureError(
            f"{what} is full: {count} waiting, {adding} more would exceed the limit of "
            f"{int(s.hard_watermark * limit)}",
            retry_after=_retry_after(after, limit, s),
        )
    if after > s.soft_watermark * limit and min_priority < s.soft_min_priority:
        raise BackpressureError(
            f"{what} is above its soft watermark ({count} waiting of {limit}): only priority "
            f">= {s.soft_min_priority} is admitted, got {min_priority}",
            retry_after=_retry_after(after, limit, s),
        )


def check_admission(
    settings: AdmissionSettings,
    waiting: int,
    waiting_by_queue: Mapping[str, int],
    batch: Mapping[str, tuple[int, int]],
) -> None:
    """Raise BackpressureError unless the batch fits.

    ``batch`` maps each queue to (tasks added, lowest priority among them).
    """
    adding = sum(n for n, _ in batch.values())
    if adding == 0:
        return
    lowest = min(p for _, p in batch.values())
    _check_one("the scheduler", waiting, adding, lowest, settings.max_queued, settings)
    for queue in sorted(batch):
        n, low = batch[queue]
        _check_one(
            f"queue {queue!r}",
            waiting_by_queue.get(queue, 0),
            n,
            low,
            settings.max_queued_per_queue,
            settings,
        )
