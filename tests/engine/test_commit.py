from __future__ import annotations

import asyncio
import logging

import msgspec
import pytest

from tierq.engine import Engine, EventLog, GroupCommitter
from tierq.errors import EngineUnavailableError, FencedError, PayloadTooLargeError

enc = msgspec.msgpack.Encoder()


async def _items(log: EventLog) -> list[tuple[int, int]]:
    """(seq, item) for every item in the log, decoding the packed arrays."""
    out: list[tuple[int, int]] = []
    async for seq, payload in log.read():
        out.extend((seq, i) for i in msgspec.msgpack.decode(payload, type=list[int]))
    return out


async def test_order_under_concurrent_submits(engine: Engine) -> None:
    log = EventLog(engine)
    await log.open()
    async with GroupCommitter(log) as gc:

        async def one(i: int) -> tuple[int, int]:
            # Yield first so submits interleave with appends in flight.
            await asyncio.sleep(0)
            return i, await gc.submit([enc.encode(i)])

        results = await asyncio.gather(*(one(i) for i in range(1000)))
        stats = gc.statistics()
    stored = await _items(log)
    assert [i for _, i in stored] == list(range(1000))
    # Each future got the sequence of the message holding its item.
    assert dict(results) == {i: seq for seq, i in stored}
    assert stats.items == 1000
    assert stats.pending_items == 0
    assert stats.last_seq == await log.last_seq()
    # Many submits shared each append.
    assert stats.appends < 100
    assert stats.messages == stats.last_seq


async def test_sync_submits_share_one_append(engine: Engine) -> None:
    log = EventLog(engine)
    await log.open()
    async with GroupCommitter(log) as gc:
        futures = [gc.submit([enc.encode(i), enc.encode(-i)]) for i in range(500)]
        seqs = await asyncio.gather(*futures)
        assert gc.statistics().appends == 1
    assert set(seqs) == {1}
    assert [i for _, i in await _items(log)] == [x for i in range(500) for x in (i, -i)]


async def test_packing_respects_message_size_and_stays_atomic(engine: Engine) -> None:
    log = EventLog(engine)
    await log.open()
    item = b"\xc4\xff" + b"x" * 255  # a msgpack bin of 255 bytes: 257 bytes encoded
    async with GroupCommitter(log, max_msg_bytes=2048) as gc:
        futures = [gc.submit([item] * 3) for _ in range(20)]
        seqs = await asyncio.gather(*futures)
        stats = gc.statistics()
    assert stats.appends == 1
    assert stats.messages > 1
    assert seqs == sorted(seqs) and seqs[-1] == stats.last_seq
    count = 0
    async for _, payload in log.read():
        assert len(payload) <= 2048
        count += len(msgspec.msgpack.decode(payload))
    assert count == 60


async def test_empty_submit_is_a_barrier(engine: Engine) -> None:
    log = EventLog(engine)
    await log.open()
    async with GroupCommitter(log) as gc:
        assert await gc.submit([]) == 0
        first = gc.submit([enc.encode(1)])
        barrier = gc.submit([])
        assert await barrier == await first == 1


async def test_fenced_fails_pending_and_stops_accepting(engine: Engine) -> None:
    log = EventLog(engine)
    other = EventLog(engine)
    await log.open()
    await other.open()
    await other.append([b"usurper"])
    async with GroupCommitter(log) as gc:
        futures = [gc.submit([enc.encode(i)]) for i in range(10)]
        for fut in futures:
            with pytest.raises(FencedError):
                await fut
        with pytest.raises(FencedError):
            gc.submit([enc.encode(99)])
        assert gc.statistics().closed
    assert await log.last_seq() == 1


async def test_fenced_barrier_tells_the_owner(engine: Engine) -> None:
    # The owner hears of a fenced append through on_fail, once, whether or not anyone
    # awaits the futures (a snapshot's barrier is awaited by no reply path).
    log = EventLog(engine)
    other = EventLog(engine)
    await log.open()
    await other.open()
    await other.append([b"usurper"])
    seen: list[Exception] = []
    async with GroupCommitter(log, on_fail=seen.append) as gc:
        barrier = gc.submit([enc.encode(1)])
        with pytest.raises(FencedError):
            await barrier
    assert len(seen) == 1 and isinstance(seen[0], FencedError)


async def test_cancelled_owner_is_a_shutdown_not_a_failure(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # `tierq master` is stopped by cancelling its task: that must not read as a failed log.
    log = EventLog(engine)
    await log.open()
    seen: list[Exception] = []
    entered = asyncio.Event()

    async def owner() -> None:
        async with GroupCommitter(log, on_fail=seen.append):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(owner())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_item_too_large_is_refused_at_submit(engine: Engine) -> None:
    log = EventLog(engine)
    await log.open()
    async with GroupCommitter(log, max_msg_bytes=1024) as gc:
        with pytest.raises(PayloadTooLargeError):
            gc.submit([b"x" * 1024])
        assert await gc.submit([enc.encode(1)]) == 1


async def test_close_flushes_pending_then_refuses(engine: Engine) -> None:
    log = EventLog(engine)
    await log.open()
    gc = GroupCommitter(log)
    with pytest.raises(EngineUnavailableError):
        gc.submit([b"\x01"])  # not started
    async with gc:
        fut = gc.submit([enc.encode(7)])
    assert fut.done() and fut.result() == 1
    with pytest.raises(EngineUnavailableError):
        gc.submit([enc.encode(8)])
    assert gc.statistics().closed


async def test_committer_needs_an_open_log(engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        async with GroupCommitter(EventLog(engine)):
            pass
