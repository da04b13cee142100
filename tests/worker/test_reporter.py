"""The reporter's batching and retry, with a stand-in for the region's answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tierq import EngineUnavailableError, InvalidRequestError
from tierq.core.model import Outcome, OutcomeKind, Progress, Started
from tierq.protocol import WorkerReport
from tierq.worker.reporter import Reporter


def ok(task_id: str, result: object = None) -> Outcome:
    return Outcome(task_id=task_id, attempt=1, kind=OutcomeKind.SUCCEEDED, result=result)


class Region:
    """Records reports; each answer waits for ``release`` so batching can be observed."""

    def __init__(self) -> None:
        self.reports: list[WorkerReport] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_next = 0
        self.reject_next = 0
        self._arrived = asyncio.Event()

    async def send(self, report: WorkerReport) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise EngineUnavailableError("no responders")
        if self.reject_next:
            self.reject_next -= 1
            raise InvalidRequestError("bad report")
        self.reports.append(report)
        self._arrived.set()
        await self.release.wait()

    async def wait_reports(self, count: int) -> None:
        """Until ``count`` reports have arrived (answered or still held)."""
        async with asyncio.timeout(5):
            while len(self.reports) < count:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture
async def region() -> AsyncIterator[Region]:
    yield Region()


async def run_reporter(reporter: Reporter) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(reporter.run())


async def test_outcomes_batch_while_one_report_is_in_flight(region: Region) -> None:
    reporter = Reporter("w", region.send)
    loop_task = await run_reporter(reporter)
    try:
        region.release.clear()
        reporter.outcome(ok("a"))
        await region.wait_reports(1)  # "a" is in flight, held by the region
        for name in "bcd":
            reporter.outcome(ok(name))
        region.release.set()
        assert await reporter.wait_flushed(5)
        assert [[o.task_id for o in r.outcomes] for r in region.reports] == [["a"], ["b", "c", "d"]]
    finally:
        loop_task.cancel()


async def test_progress_is_coalesced_and_rides_with_the_outcome(region: Region) -> None:
    reporter = Reporter("w", region.send)
    reporter.started(Started(task_id="a", attempt=1, worker="w"))
    reporter.progress(Progress(task_id="a", attempt=1, fraction=0.1))
    reporter.progress(Progress(task_id="a", attempt=1, fraction=0.5))
    reporter.progress(Progress(task_id="b", attempt=1, fraction=0.2))
    reporter.outcome(ok("b"))
    loop_task = await run_reporter(reporter)
    try:
        assert await reporter.wait_flushed(5)
        (report,) = region.reports
        # The last progress of "b" goes with its outcome, so its final message is kept.
        assert [(p.task_id, p.fraction) for p in report.progress] == [("a", 0.5), ("b", 0.2)]
        assert [s.task_id for s in report.started] == ["a"]
        assert [o.task_id for o in report.outcomes] == ["b"]
    finally:
        loop_task.cancel()


async def test_a_start_alone_sends_nothing(region: Region) -> None:
    reporter = Reporter("w", region.send)
    loop_task = await run_reporter(reporter)
    try:
        reporter.started(Started(task_id="a", attempt=1, worker="w"))
        assert await reporter.wait_flushed(1)
        assert region.reports == []
    finally:
        loop_task.cancel()


async def test_unavailable_region_is_retried_until_acknowledged(region: Region) -> None:
    region.fail_next = 3
    reporter = Reporter("w", region.send)
    loop_task = await run_reporter(reporter)
    try:
        reporter.outcome(ok("a"))
        assert await reporter.wait_flushed(10)
        assert [o.task_id for r in region.reports for o in r.outcomes] == ["a"]
    finally:
        loop_task.cancel()


async def test_a_refused_report_is_dropped_not_looped(region: Region) -> None:
    region.reject_next = 1
    reporter = Reporter("w", region.send)
    loop_task = await run_reporter(reporter)
    try:
        reporter.outcome(ok("a"))
        assert await reporter.wait_flushed(5)
        reporter.outcome(ok("b"))
        assert await reporter.wait_flushed(5)
        assert [o.task_id for r in region.reports for o in r.outcomes] == ["b"]
    finally:
        loop_task.cancel()


async def test_reports_are_split_under_the_size_limit(region: Region) -> None:
    reporter = Reporter("w", region.send, max_payload=10_000)
    for i in range(6):
        reporter.outcome(ok(f"t{i}", "x" * 2000))
    reporter.outcome(ok("huge", "y" * 50_000))
    loop_task = await run_reporter(reporter)
    try:
        assert await reporter.wait_flushed(5)
        assert len(region.reports) > 1
        by_id = {o.task_id: o for r in region.reports for o in r.outcomes}
        assert len(by_id) == 7
        assert by_id["t0"].kind is OutcomeKind.SUCCEEDED
        huge = by_id["huge"]
        assert huge.kind is OutcomeKind.FAILED
        assert huge.error is not None and huge.error.type == "PayloadTooLargeError"
    finally:
        loop_task.cancel()


async def test_wait_flushed_times_out_when_the_region_holds_the_report(region: Region) -> None:
    region.release.clear()
    reporter = Reporter("w", region.send)
    loop_task = await run_reporter(reporter)
    try:
        reporter.outcome(ok("a"))
        assert not await reporter.wait_flushed(0.1)
    finally:
        loop_task.cancel()


async def test_progress_alone_is_paced_but_outcomes_are_not(region: Region) -> None:
    reporter = Reporter("w", region.send)
    loop_task = await run_reporter(reporter)
    try:
        reporter.progress(Progress(task_id="a", attempt=1, fraction=0.1))
        assert await reporter.wait_flushed(5)
        for i in range(50):
            reporter.progress(Progress(task_id="a", attempt=1, fraction=i / 50))
            await asyncio.sleep(0)
        reporter.outcome(ok("b"))  # cuts the pause short and takes the latest progress along
        assert await reporter.wait_flushed(5)
        assert len(region.reports) == 2
        assert [o.task_id for o in region.reports[1].outcomes] == ["b"]
        assert [p.fraction for p in region.reports[1].progress] == [49 / 50]
    finally:
        loop_task.cancel()


async def test_pending_counts_what_is_in_flight(region: Region) -> None:
    region.release.clear()
    reporter = Reporter("w", region.send)
    loop_task = await run_reporter(reporter)
    try:
        reporter.outcome(ok("a"))
        await region.wait_reports(1)
        assert reporter.pending == 1
        region.release.set()
        assert await reporter.wait_flushed(5)
        assert reporter.pending == 0
    finally:
        loop_task.cancel()
