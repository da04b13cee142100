from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tierq import testing
from tierq.engine import (
    ConnectOptions,
    EmbeddedNats,
    Engine,
    EventLog,
    Message,
    Subjects,
    connect,
    find_nats_server,
    free_port,
)
from tierq.errors import EngineUnavailableError


@pytest.fixture
async def nats_server() -> AsyncIterator[EmbeddedNats]:
    """An open server: these tests are about connections, on subjects of their own.

    NATS users and permissions are tested in test_auth.py.
    """
    async with testing.nats_server(auth=False) as server:
        yield server


async def test_nothing_listening_names_the_url() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    opts = ConnectOptions(servers=[url], connect_timeout=0.5, reconnect_wait=0.05)
    with pytest.raises(EngineUnavailableError, match=f"cannot reach NATS at {url}"):
        await connect(opts)


async def test_request_reply_and_queue_groups(engine: Engine) -> None:
    seen: list[str] = []

    async def echo(msg: Message) -> None:
        seen.append(msg.subject)
        await msg.respond(b"re:" + msg.data)

    sub = await engine.subscribe("svc.echo", cb=echo, queue="q")
    try:
        assert await engine.request("svc.echo", b"hi", timeout=2) == b"re:hi"
    finally:
        await sub.unsubscribe()
        await sub.unsubscribe()  # idempotent
    assert seen == ["svc.echo"]


async def test_no_responders_is_unavailable(engine: Engine) -> None:
    with pytest.raises(EngineUnavailableError, match="no responders"):
        await engine.request("nobody.home", b"", timeout=1)


async def test_gather_takes_every_answer(engine: Engine) -> None:
    """``gather``: all the services that answer one subject (each region's autoscalers); an
    empty list at once when nobody listens, and a silent one is not waited for past the
    settle time once another answered."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await engine.gather("nobody.home", b"", timeout=5) == []
    assert loop.time() - start < 1.0  # the server said "no responders": no 5 s wait

    def answering(name: bytes, delay: float) -> Callable[[Message], Awaitable[None]]:
        async def answer(msg: Message) -> None:
            await asyncio.sleep(delay)
            await msg.respond(name + b":" + msg.data)

        return answer

    async def silent(msg: Message) -> None:
        pass

    subs = [
        await engine.subscribe("pools", cb=answering(b"a", 0.0)),
        await engine.subscribe("pools", cb=answering(b"b", 0.01)),
        await engine.subscribe("pools", cb=silent),
    ]
    try:
        start = loop.time()
        got = await engine.gather("pools", b"q", timeout=5, settle=0.2)
        assert sorted(got) == [b"a:q", b"b:q"]
        assert loop.time() - start < 2.0  # the settle time after b, not the 5 s timeout
        for sub in subs[:2]:
            await sub.unsubscribe()
        start = loop.time()
        assert await engine.gather("pools", b"q", timeout=0.3) == []  # only the silent one
        assert loop.time() - start >= 0.3
    finally:
        for sub in subs:
            await sub.unsubscribe()


async def test_request_timeout_is_unavailable(engine: Engine) -> None:
    async def silent(msg: Message) -> None:
        pass

    sub = await engine.subscribe("slow", cb=silent)
    try:
        with pytest.raises(EngineUnavailableError, match="timed out"):
            await engine.request("slow", b"", timeout=0.1)
    finally:
        await sub.unsubscribe()


async def test_publish_subscribe_with_headers(engine: Engine) -> None:
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def cb(msg: Message) -> None:
        await got.put(msg)

    sub = await engine.subscribe("events.>", cb=cb)
    try:
        await engine.publish("events.x", b"payload", headers={"Tierq-Kind": "x"})
        await engine.flush()
        msg = await asyncio.wait_for(got.get(), 5)
        assert (msg.subject, msg.data, msg.reply) == ("events.x", b"payload", "")
        assert msg.headers == {"Tierq-Kind": "x"}
        await msg.respond(b"ignored")  # nothing to answer: no error
    finally:
        await sub.drain()


async def test_close_is_idempotent(nats_server: EmbeddedNats) -> None:
    eng = await connect(ConnectOptions(servers=[nats_server.url]))
    assert eng.is_connected
    assert eng.connected_url == nats_server.url
    async with eng:
        pass
    await eng.close()
    assert eng.is_closed
    with pytest.raises(EngineUnavailableError):
        await eng.publish("x", b"")


async def test_reconnects_after_server_restart(nats_server: EmbeddedNats) -> None:
    eng = await connect(ConnectOptions(servers=[nats_server.url], reconnect_wait=0.05))
    try:
        nats_server.kill()
        await nats_server.astart()

        async def echo(msg: Message) -> None:
            await msg.respond(msg.data)

        for _ in range(200):
            if eng.is_connected:
                break
            await asyncio.sleep(0.05)
        sub = await eng.subscribe("echo", cb=echo)
        assert await eng.request("echo", b"back", timeout=2) == b"back"
        await sub.unsubscribe()
    finally:
        await eng.close()


def test_options_repr_hides_secrets() -> None:
    text = repr(ConnectOptions(user="u", password="hunter2", token="t0k"))
    assert "hunter2" not in text and "t0k" not in text


async def test_a_server_without_jetstream_is_named_as_such() -> None:
    """A plain ``nats-server`` (no -js) answered "JetStream error None/None: None"."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        find_nats_server(), "-a", "127.0.0.1", "-p", str(port)
    )
    try:
        opts = ConnectOptions(servers=[f"nats://127.0.0.1:{port}"], connect_timeout=5)
        for _ in range(100):
            try:
                eng = await connect(opts)
                break
            except EngineUnavailableError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("the plain nats-server did not start")
        try:
            with pytest.raises(EngineUnavailableError, match="no JetStream: start it with -js"):
                await EventLog(eng, Subjects()).provision()
        finally:
            await eng.close()
    finally:
        proc.terminate()
        await proc.wait()


async def test_the_sdk_says_what_to_do_when_no_nats_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 15, item 13: three log lines of noise came before the error, and no hint."""
    import tierq

    caplog.set_level(logging.DEBUG, logger="tierq")
    url = f"nats://127.0.0.1:{free_port()}"
    app = tierq.App(url)
    with pytest.raises(EngineUnavailableError) as failed:
        await app.submit("x.y")
    assert f"cannot reach NATS at {url}" in failed.value.message
    assert "start a local server with `tierq dev`" in failed.value.message
    noise = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noise == [], [r.getMessage() for r in noise]
    await app.close()
