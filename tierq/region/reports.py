"""Splitting a region's report to the master when it is too large or refused.

A batch carries several workers' news. If the master refuses it (an item it will not take)
or it does not fit in one message, the region sends it again in halves, down to single
items; an item refused on its own is dropped with a log line. Its attempt is then missing
from the region's next ``held`` list, and the master re-queues it as lost (see
``tierq.core.reconcile``): nothing is stuck and the region never stops on one bad item.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec

from ..core.model import Outcome, Progress, Started
from ..errors import InvalidRequestError
from ..protocol import RegionReport, RegionReportReply, encode

log = logging.getLogger("tierq.region")

Send = Callable[[RegionReport], Awaitable[RegionReportReply | None]]

Item = Started | Progress | Outcome


async def deliver(report: RegionReport, send: Send, max_payload: int) -> list[RegionReportReply]:
    """Send ``report``; one too large for a message or refused by the master is sent again
    in halves, and an item refused on its own is dropped with a log line. ``send`` raises
    InvalidRequestError for a refusal and deals with every other failure itself."""
    size = len(encode(report))
    if size > max_payload:
        refused = InvalidRequestError(f"{size} bytes is over the message size limit")
    else:
        try:
            reply = await send(report)
        except InvalidRequestError as exc:
            refused = exc
        else:
            return [reply] if reply is not None else []
    parts = split(report)
    if parts is None:
        log.error(
            "region %s: the master refused %s; dropped: %s",
            report.region,
            describe(report),
            refused,
        )
        return []
    out: list[RegionReportReply] = []
    for part in parts:
        out += await deliver(part, send, max_payload)
    return out


def items(report: RegionReport) -> list[Item]:
    return [*report.started, *report.progress, *report.outcomes]


def split(report: RegionReport) -> list[RegionReport] | None:
    """Smaller reports carrying the same news, in the same order; None when it cannot get
    smaller.

    The worker views, the held list and the late reports ride with the first part; a single
    item is separated from them, since either may be what was refused.
    """
    news = items(report)
    bare = msgspec.structs.replace(report, workers=None, held=None, late=[])
    if len(news) >= 2:
        half = len(news) // 2
        return [_with(report, news[:half]), _with(bare, news[half:])]
    if news and (report.workers is not None or report.held is not None or report.late):
        return [_with(bare, news), _with(report, [])]
    return None


def describe(report: RegionReport) -> str:
    news = items(report)
    if len(news) == 1:
        item = news[0]
        what = type(item).__name__.lower()
        return f"{what} of task {item.task_id!r} attempt {item.attempt}"
    parts = [f"{len(news)} items"]
    if report.workers is not None:
        parts.append(f"{len(report.workers)} worker views")
    if report.held is not None:
        parts.append(f"{len(report.held)} held attempts")
    if report.late:
        parts.append(f"{len(report.late)} late reports")
    return ", ".join(parts)


def _with(report: RegionReport, news: list[Item]) -> RegionReport:
    return msgspec.structs.replace(
        report,
        started=[i for i in news if isinstance(i, Started)],
        progress=[i for i in news if isinstance(i, Progress)],
        outcomes=[i for i in news if isinstance(i, Outcome)],
    )
