"""A region played by the test over a real nats-server: it hands out the tasks the test
queues and records what the worker sends, so worker behaviour is checked on its own."""

from __future__ import annotations

import asyncio
import contextlib

from tierq.core.model import LeasedTask, Outcome
from tierq.engine import Engine, Message, Subjects, Subscription
from tierq.protocol import (
    Ack,
    PullReply,
    PullRequest,
    RegisterWorkerReply,
    RegisterWorkerRequest,
    WorkerHeartbeat,
    WorkerHeartbeatReply,
    WorkerReport,
    decode,
    encode_ok,
)


class ScriptedRegion:
    def __init__(self, engine: Engine, name: str = "default") -> None:
        self.engine = engine
        self.name = name
        self.subjects = Subjects("tierq")
        self.queue: list[LeasedTask] = []
        self.registrations: list[RegisterWorkerRequest] = []
        self.pulls: list[PullRequest] = []
        self.heartbeats: list[WorkerHeartbeat] = []
        self.reports: list[WorkerReport] = []
        #: Sent (once) in the next heartbeat reply.
        self.cancel_next: list[tuple[str, int]] = []
        self.drain = False
        self.unknown_next = False
        self._changed = asyncio.Condition()
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        for op, cb in (
            ("register", self._register),
            ("pull", self._pull),
            ("heartbeat", self._heartbeat),
            ("report", self._report),
        ):
            self._subs.append(
                await self.engine.subscribe(self.subjects.region(self.name, op), cb=cb)
            )
        await self.engine.flush()

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()

    async def push(self, *tasks: LeasedTask) -> None:
        async with self._changed:
            self.queue.extend(tasks)
            self._changed.notify_all()

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for r in self.reports for o in r.outcomes]

    def outcome_of(self, task_id: str) -> Outcome | None:
        found = [o for o in self.outcomes if o.task_id == task_id]
        return found[-1] if found else None

    async def wait_for(self, predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _register(self, msg: Message) -> None:
        self.registrations.append(decode(msg.data, RegisterWorkerRequest))
        await msg.respond(encode_ok(RegisterWorkerReply(lease_seconds=10, heartbeat_interval=0.1)))
        await self._notify()

    async def _pull(self, msg: Message) -> None:
        req = decode(msg.data, PullRequest)
        self.pulls.append(req)
        if self.drain:
            await msg.respond(encode_ok(PullReply(drain=True)))
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(req.wait, 0.5)):
                async with self._changed:
                    await self._changed.wait_for(lambda: bool(self.queue) or self.drain)
        tasks, self.queue = self.queue[: req.slots], self.queue[req.slots :]
        await msg.respond(encode_ok(PullReply(tasks=tasks, drain=self.drain and not tasks)))
        await self._notify()

    async def _heartbeat(self, msg: Message) -> None:
        beat = decode(msg.data, WorkerHeartbeat)
        self.heartbeats.append(beat)
        reply = WorkerHeartbeatReply(
            cancel=self.cancel_next, unknown=self.unknown_next, drain=self.drain
        )
        self.cancel_next, self.unknown_next = [], False
        await msg.respond(encode_ok(reply))
        await self._notify()

    async def _report(self, msg: Message) -> None:
        self.reports.append(decode(msg.data, WorkerReport))
        await msg.respond(encode_ok(Ack()))
        await self._notify()
