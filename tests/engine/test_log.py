from __future__ import annotations

import asyncio

import pytest

from tierq import testing
from tierq.engine import (
    MAX_BATCH_MSGS,
    EmbeddedNats,
    Engine,
    EventLog,
    GroupCommitter,
    Subjects,
    connect,
)
from tierq.errors import EngineUnavailableError, FencedError, PayloadTooLargeError


async def _read_all(log: EventLog, after: int = 0) -> list[tuple[int, bytes]]:
    return [item async for item in log.read(after)]


async def test_provision_is_idempotent(engine: Engine) -> None:
    log = EventLog(engine)
    await log.provision()
    await log.provision()
    # A different size limit updates the existing stream instead of failing.
    await EventLog(engine, max_msg_size=1024 * 1024).provision()
    info = await engine.js.stream_info("TIERQ_LOG")
    assert info.config.max_msg_size == 1024 * 1024
    assert info.config.allow_atomic


async def test_append_and_read_round_trip(engine: Engine) -> None:
    log = EventLog(engine)
    assert await log.open() == 0
    assert await log.append([b"a"]) == 1
    assert await log.append([b"b", b"c", b"d"]) == 4
    assert await log.append([b"e"]) == 5
    assert await log.last_seq() == 5
    assert await _read_all(log) == [(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d"), (5, b"e")]
    assert await _read_all(log, 3) == [(4, b"d"), (5, b"e")]
    assert await _read_all(log, 5) == []


async def test_read_of_empty_log(engine: Engine) -> None:
    log = EventLog(engine)
    await log.open()
    assert await _read_all(log) == []


async def test_read_many_in_batches_and_close_early(engine: Engine) -> None:
    log = EventLog(engine)
    await log.open()
    for start in range(0, 3000, MAX_BATCH_MSGS):
        await log.append([str(i).encode() for i in range(start, start + MAX_BATCH_MSGS)])
    got = [int(p) for _, p in await _read_all(log)]
    assert got == list(range(3000))
    async with log.read(10, batch=7) as reader:
        async for seq, _ in reader:
            if seq == 20:
                break
    infos = await engine.js.consumers_info("TIERQ_LOG")
    assert infos == []  # replay consumers are deleted on close


async def test_second_writer_is_fenced_and_nothing_is_stored(engine: Engine) -> None:
    old = EventLog(engine, writer_id="old")
    new = EventLog(engine, writer_id="new")
    await old.open()
    await new.open()
    assert await new.append([b"new-1"]) == 1
    with pytest.raises(FencedError):
        await old.append([b"old-1"])
    assert await _read_all(old) == [(1, b"new-1")]
    # Fenced for good, even for a batch, until it re-opens.
    with pytest.raises(FencedError):
        await old.append([b"x", b"y"])
    assert await old.last_seq() == 1
    assert await old.open() == 1
    assert await old.append([b"old-2"]) == 2


async def test_stale_batch_stores_nothing(engine: Engine) -> None:
    old = EventLog(engine)
    new = EventLog(engine)
    await old.open()
    await new.open()
    await new.append([b"n1", b"n2"])
    with pytest.raises(FencedError):
        await old.append([b"o1", b"o2", b"o3"])
    assert await _read_all(new) == [(1, b"n1"), (2, b"n2")]
    # The fenced batch left nothing behind that a later batch could complete.
    assert await new.append([b"n3", b"n4"]) == 4


async def test_empty_log_expects_zero(engine: Engine) -> None:
    a = EventLog(engine)
    b = EventLog(engine)
    await a.open()
    await b.open()
    await a.append([b"first", b"second"])
    with pytest.raises(FencedError):
        await b.append([b"also-first"])


async def test_purge_keeps_later_messages_and_fencing(engine: Engine) -> None:
    log = EventLog(engine)
    await log.open()
    await log.append([b"1", b"2", b"3", b"4", b"5"])
    await log.purge(3)
    assert await log.first_seq() == 4
    assert await _read_all(log) == [(4, b"4"), (5, b"5")]
    assert await _read_all(log, 1) == [(4, b"4"), (5, b"5")]
    assert await log.append([b"6"]) == 6
    await log.purge(6)
    assert await _read_all(log) == []


async def test_limits(engine: Engine) -> None:
    log = EventLog(engine, max_msg_size=64 * 1024)
    await log.open()
    with pytest.raises(PayloadTooLargeError):
        await log.append([b"x" * (64 * 1024)])
    with pytest.raises(ValueError, match="at most"):
        await log.append([b"x"] * (MAX_BATCH_MSGS + 1))
    with pytest.raises(ValueError):
        await log.append([])
    assert await log.last_seq() == 0
    with pytest.raises(RuntimeError, match="open"):
        await EventLog(engine).append([b"x"])


async def test_prefixes_are_separate_logs(open_engine: Engine) -> None:
    engine = open_engine
    a = EventLog(engine, Subjects("a"))
    b = EventLog(engine, Subjects("b"))
    await a.open()
    await b.open()
    await a.append([b"a1"])
    assert await b.append([b"b1"]) == 1
    assert await _read_all(b) == [(1, b"b1")]


async def test_unanswered_append_is_resolved_from_the_tail(engine: Engine) -> None:
    """An append whose reply was lost is found in the stream, not written twice."""
    log = EventLog(engine, retry_timeout=5)
    await log.open()
    await log.append([b"0"])
    real = log._append_once
    calls = 0

    async def lose_reply(*args: object) -> int:
        nonlocal calls
        calls += 1
        seq = await real(*args)  # type: ignore[arg-type]
        if calls == 1:
            raise TimeoutError  # stored, but the writer never heard back
        return seq

    log._append_once = lose_reply  # type: ignore[method-assign,assignment]
    assert await log.append([b"1", b"2"]) == 3
    assert calls == 1
    assert await _read_all(log) == [(1, b"0"), (2, b"1"), (3, b"2")]


async def test_append_that_never_lands_is_retried_then_gives_up(engine: Engine) -> None:
    log = EventLog(engine, retry_timeout=0.3)
    await log.open()

    async def unreachable(*args: object) -> int:
        raise TimeoutError

    log._append_once = unreachable  # type: ignore[method-assign,assignment]
    with pytest.raises(EngineUnavailableError, match="outcome unknown"):
        await log.append([b"x"])
    with pytest.raises(EngineUnavailableError):
        await log.append([b"y"])  # refuses until re-opened
    assert await log.open() == 0


async def test_appends_continue_after_server_crash(nats_server: EmbeddedNats) -> None:
    eng = await connect(nats_server.connect_options("master", reconnect_wait=0.05))
    try:
        log = EventLog(eng, retry_timeout=15)
        await log.open()
        await log.append([b"before-1", b"before-2"])
        nats_server.kill()
        await nats_server.astart()
        # The first append may hit the reconnect; it is retried after checking the tail.
        assert await log.append([b"after"]) == 3
        assert [p async for _, p in log.read()] == [b"before-1", b"before-2", b"after"]
    finally:
        await eng.close()


@pytest.mark.starts_nats
async def test_durable_profile_group_commit() -> None:
    async with testing.nats_server(durable=True) as srv:
        eng = await connect(srv.connect_options("master"))
        try:
            log = EventLog(eng)
            await log.open()
            async with GroupCommitter(log) as gc:
                seqs = await asyncio.gather(*(gc.submit([b"\x01"]) for _ in range(100)))
            assert seqs[-1] == await log.last_seq()
        finally:
            await eng.close()


async def test_a_hole_in_the_log_fails_the_replay_instead_of_skipping_it(engine: Engine) -> None:
    """A replay that jumps over a sequence has lost messages on the way (the server drops a
    slow consumer's backlog): it must fail, so that the caller reads again from the hole."""
    log = EventLog(engine)
    await log.open()
    for i in range(6):
        await log.append([b"%d" % i])
    await engine.js.delete_msg(log.stream, 4)
    seen: list[int] = []
    with pytest.raises(EngineUnavailableError, match="expected log sequence 4, got 5"):
        async for seq, _ in log.read(0):
            seen.append(seq)
    assert seen == [1, 2, 3]
    # A purged head is not a hole: reading from before it starts at the first message kept.
    await log.purge(upto_seq=4)
    assert [seq for seq, _ in await _read_all(log, 0)] == [5, 6]


async def test_large_messages_replay_completely(engine: Engine) -> None:
    """80 messages of 1 MiB: one fetch of all of them would queue more than the server keeps
    for a client (64 MiB) and be cut off; the reader asks for a bounded number of bytes."""
    log = EventLog(engine)
    await log.open()
    blob = bytes(1024 * 1024)
    for _ in range(8):
        await log.append([blob] * 10)
    seqs = [seq async for seq, data in log.read(0) if len(data) == len(blob)]
    assert seqs == list(range(1, 81))
