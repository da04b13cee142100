"""Batching a worker's news (started, progress, outcomes) into reports to its region.

One report is in flight at a time and the next one leaves as soon as it is acknowledged, so
under load many outcomes ride one request while an idle worker's outcome leaves at once
(Nagle's algorithm without the timer). A report is retried until the region acknowledges it:
the region answers only after the master has committed the outcomes, and a repeat is
recognised there by ``(task_id, attempt)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..core.model import ErrorSummary, Outcome, OutcomeKind, Progress, Started
from ..errors import EngineUnavailableError, TierqError
from ..protocol import WorkerReport, encode

__all__ = ["Reporter"]

log = logging.getLogger("tierq.worker")

#: Sends one report and returns when the region acknowledged it (raises otherwise).
SendReport = Callable[[WorkerReport], Awaitable[None]]

#: Most outcomes in one report; more wait for the next one.
MAX_OUTCOMES = 1000
#: Progress alone is sent at most this often: a task may call ``ctx.progress`` in a tight
#: loop, and every report becomes events in the master's log. Outcomes never wait.
PROGRESS_INTERVAL = 0.2


class Reporter:
    """Collects news from running attempts and ships it; :meth:`run` is the sending loop."""

    def __init__(self, worker: str, send: SendReport, max_payload: int = 1024 * 1024) -> None:
        self.worker = worker
        self._send = send
        #: Leave headroom for the envelope and for the region's own report around ours.
        self._max_bytes = max(4096, int(max_payload * 0.8))
        self._started: list[Started] = []
        self._progress: dict[tuple[str, int], Progress] = {}
        self._outcomes: list[Outcome] = []
        self._wake = asyncio.Event()
        self._outcome_added = asyncio.Event()
        self._last_progress = -PROGRESS_INTERVAL
        self._in_flight = 0
        #: The attempts whose outcomes ride in the report being sent.
        self._in_flight_outcomes: list[tuple[str, int]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.sent_reports = 0

    # -- feeding (never blocks) ------------------------------------------------------------

    def started(self, item: Started) -> None:
        """Rides along with the next report; a start alone is not worth a round trip (the
        region already counts an attempt as started when it hands the task out)."""
        self._started.append(item)

    def progress(self, item: Progress) -> None:
        self._progress[(item.task_id, item.attempt)] = item
        self._kick()

    def outcome(self, item: Outcome) -> None:
        # Pending progress rides along (the master applies it before the outcome), so the
        # task's last message is not lost when it finishes inside the pacing interval.
        self._outcomes.append(item)
        self._outcome_added.set()
        self._kick()

    def unacknowledged(self) -> list[tuple[str, int]]:
        """Attempts with an outcome not yet acknowledged by the region (queued or in flight):
        the worker's heartbeat lists them, so the region does not take them for lost."""
        return [*self._in_flight_outcomes, *((o.task_id, o.attempt) for o in self._outcomes)]

    @property
    def pending(self) -> int:
        """Outcomes and progress not yet acknowledged (queued or in flight)."""
        return len(self._outcomes) + len(self._progress) + self._in_flight

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    # -- sending ---------------------------------------------------------------------------

    def close(self) -> None:
        """Make :meth:`run` return at its next step (what is unsent stays unsent)."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        """Send reports until :meth:`close` (or cancelled)."""
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            await self._pace_progress()
            report = self._take()
            if report is not None:
                self._in_flight = len(report.outcomes) + len(report.progress)
                self._in_flight_outcomes = [(o.task_id, o.attempt) for o in report.outcomes]
                try:
                    await self._deliver(report)
                finally:
                    self._in_flight = 0
                    self._in_flight_outcomes = []
            if self.pending:
                self._wake.set()
            else:
                self._idle.set()

    async def _pace_progress(self) -> None:
        """Hold a progress-only report until PROGRESS_INTERVAL after the last one."""
        if self._outcomes or not self._progress:
            return
        loop = asyncio.get_running_loop()
        left = self._last_progress + PROGRESS_INTERVAL - loop.time()
        if left <= 0:
            return
        self._outcome_added.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                await self._outcome_added.wait()

    async def wait_flushed(self, within: float) -> bool:
        """Wait until everything handed in so far was acknowledged; False on timeout."""
        if self.pending:
            self._kick()
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def _take(self) -> WorkerReport | None:
        if not (self._outcomes or self._progress):
            return None
        outcomes = self._outcomes[:MAX_OUTCOMES]
        del self._outcomes[:MAX_OUTCOMES]
        report = WorkerReport(
            worker=self.worker,
            started=self._started,
            progress=list(self._progress.values()),
            outcomes=outcomes,
        )
        self._started, self._progress = [], {}
        if report.progress:
            self._last_progress = asyncio.get_running_loop().time()
        return report

    async def _deliver(self, report: WorkerReport) -> None:
        for part in self._split(report):
            await self._send_until_acked(part)
            self.sent_reports += 1

    def _split(self, report: WorkerReport) -> list[WorkerReport]:
        """Reports under the size limit; an outcome too large alone becomes a failure."""
        if len(encode(report)) <= self._max_bytes:
            return [report]
        if len(report.outcomes) <= 1 and not report.progress and not report.started:
            (outcome,) = report.outcomes
            return [_replace_outcomes(report, [_too_large(outcome, self._max_bytes)])]
        if len(report.outcomes) > 1:
            half = len(report.outcomes) // 2
            first = WorkerReport(
                worker=report.worker,
                started=report.started,
                progress=report.progress,
                outcomes=report.outcomes[:half],
            )
            second = _replace_outcomes(report, report.outcomes[half:], bare=True)
            return self._split(first) + self._split(second)
        # Progress and starts are small; what is left over is a single big outcome.
        news = WorkerReport(worker=report.worker, started=report.started, progress=report.progress)
        return [news, *self._split(_replace_outcomes(report, report.outcomes, bare=True))]

    async def _send_until_acked(self, report: WorkerReport) -> None:
        delay = 0.05
        while True:
            try:
                await self._send(report)
                return
            except EngineUnavailableError as exc:
                log.warning("report to region failed, retrying in %.2f s: %s", delay, exc)
            except TierqError as exc:
                # The region refused the report itself; resending it cannot help.
                log.error("region rejected a report of %d outcomes: %s", len(report.outcomes), exc)
                return
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _replace_outcomes(
    report: WorkerReport, outcomes: list[Outcome], *, bare: bool = False
) -> WorkerReport:
    if bare:
        return WorkerReport(worker=report.worker, outcomes=outcomes)
    return WorkerReport(
        worker=report.worker, started=report.started, progress=report.progress, outcomes=outcomes
    )


def _too_large(outcome: Outcome, limit: int) -> Outcome:
    error = ErrorSummary(
        type="PayloadTooLargeError",
        message=f"the result of task {outcome.task_id} is larger than the {limit} bytes a "
        "report may carry; store big data elsewhere and return a reference",
    )
    if outcome.kind is OutcomeKind.SUCCEEDED:
        return Outcome(
            task_id=outcome.task_id,
            attempt=outcome.attempt,
            kind=OutcomeKind.FAILED,
            error=error,
            worker=outcome.worker,
        )
    summary = outcome.error
    trimmed = ErrorSummary(
        type=summary.type if summary else "Exception",
        message=(summary.message if summary else "")[:1000],
        lost=summary.lost if summary else False,
        timeout=summary.timeout if summary else False,
    )
    return Outcome(
        task_id=outcome.task_id,
        attempt=outcome.attempt,
        kind=outcome.kind,
        error=trimmed,
        worker=outcome.worker,
    )
