"""The autoscaler service: read the pool's figures, let the policy decide, have the provider
carry it out; publish every change, answer status requests.

Every ``interval`` seconds: ``read_pool`` (three read-only queries to the master) ->
``tierq.core.autoscale.decide`` -> ``provider.scale``. A change of the desired count is an
:class:`~tierq.protocol.AutoscaleDecision` on ``<prefix>.events.autoscale_decision``; the
latest ones, the counts and the last error are its :class:`~tierq.protocol.AutoscaleStatus`,
answered on ``<prefix>.autoscale.<region>.status`` (the API, the dashboard and
``tierq regions`` ask there). A check that fails (no master during a failover) changes
nothing and is retried at the next interval; the workers keep running meanwhile.

Shutdown: :meth:`Autoscaler.stop` ends the loop; with ``keep_workers`` False the provider then
drains every worker and the service waits for them (up to their drain grace plus a margin).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path

import msgspec

from ..config import NatsConfig
from ..core.autoscale import DEFAULT_DRAIN_SECONDS, Direction, ScaleState, decide
from ..engine import Engine, Message, Subjects, connect
from ..errors import TierqError
from ..protocol import AutoscaleDecision, AutoscaleStatus, encode_ok
from ..rpc import MasterClient
from ..worker.registry import load_tasks
from .local import LocalProvider
from .reading import RateMeter, read_pool

__all__ = ["AutoscaleConfig", "Autoscaler", "run_autoscaler"]

log = logging.getLogger("tierq.autoscale")


class AutoscaleConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One autoscaler: a pool of workers of ``modules`` for ``region``."""

    nats: NatsConfig
    modules: tuple[str, ...]
    region: str = "default"
    provider: str = "local"
    concurrency: int = 8
    pool: str = "async"
    drain_grace: float = 30.0
    #: Where the local provider keeps its workers' files.
    state_dir: str = ".tierq/autoscale"
    #: Seconds between two checks.
    interval: float = 1.0
    #: The policy sizes the pool to drain what waits within this many seconds.
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    #: On stop, leave the workers running (a restarted autoscaler finds them again).
    keep_workers: bool = False


class Autoscaler:
    """One pool's control loop (an async service: :meth:`run` until :meth:`stop`)."""

    def __init__(self, config: AutoscaleConfig, engine: Engine) -> None:
        if config.provider != "local":
            raise TierqError(
                f"unknown provider {config.provider!r}: 'local' runs here; on Kubernetes, "
                "KEDA scales the workers through the API's external scaler"
            )
        self.config = config
        self.engine = engine
        self.subjects = Subjects(config.nats.prefix)
        self.master = MasterClient(engine, self.subjects, timeout=max(2.0, config.interval * 2))
        self.task_types = sorted(load_tasks(config.modules).names)
        url = config.nats.servers[0] if config.nats.servers else "nats://127.0.0.1:4222"
        self.provider = LocalProvider(
            # The workers log in as their region's worker user (``tierq worker`` picks it).
            nats=config.nats,
            nats_url=url,
            region=config.region,
            modules=config.modules,
            state_dir=Path(config.state_dir) / config.region,
            concurrency=config.concurrency,
            pool=config.pool,
            drain_grace=config.drain_grace,
        )
        self.state = ScaleState()
        self.meter = RateMeter()
        self.decisions: deque[AutoscaleDecision] = deque(maxlen=20)
        self.reason = "starting"
        self.error: str | None = None
        self.checked_at = 0.0
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._settings_seen = (0, 0)
        self._registered: set[str] = set()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self.provider.adopt()
        sub = await self.engine.subscribe(
            self.subjects.autoscale_status(self.config.region), cb=self._on_status
        )
        self.ready.set()
        try:
            while not self._stop.is_set():
                await self.check()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.interval):
                        await self._stop.wait()
        finally:
            await sub.unsubscribe()
            if self.config.keep_workers:
                self.provider.release()
            else:
                await self._drain_all()

    async def check(self) -> None:
        """One round: read, decide, carry out, publish."""
        self.provider.reap()
        live = self.provider.live()
        now = time.monotonic()
        try:
            reading = await read_pool(
                self.master,
                region=self.config.region,
                task_types=self.task_types,
                managed=[w.id for w in live],
                slots_per_worker=self.config.concurrency,
                meter=self.meter,
                now=now,
            )
        except TierqError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("autoscaler %s: check failed: %s", self.config.region, self.error)
            # Still replace a crashed worker: the last decided count stands.
            if self.state.desired is not None:
                self.provider.scale(self.state.desired, {})
            return
        obs, s = reading.observation, reading.settings
        self._settings_seen = (s.min_workers, s.max_workers)
        decision = decide(obs, s, self.state, now, self.config.drain_seconds)
        previous = self.state.desired if self.state.desired is not None else len(live)
        self.state = decision.state
        self.reason = decision.reason
        self.error = None
        self.checked_at = time.time()
        self._registered = set(reading.views)
        self.provider.scale(decision.desired, reading.views)
        if decision.direction is not Direction.HOLD:
            await self._publish(previous, decision.desired, decision.direction, decision.reason)

    async def _publish(self, previous: int, desired: int, direction: Direction, why: str) -> None:
        event = AutoscaleDecision(
            at=time.time(),
            region=self.config.region,
            provider=self.provider.name,
            previous=previous,
            desired=desired,
            direction=direction.value,
            reason=why,
            actual=len(self.provider.live()),
        )
        self.decisions.append(event)
        log.info("autoscaler %s: %d -> %d workers (%s)", event.region, previous, desired, why)
        with contextlib.suppress(TierqError):
            await self.engine.publish(
                self.subjects.event("autoscale_decision"), msgspec.json.encode(event)
            )

    def status(self) -> AutoscaleStatus:
        live = self.provider.live()
        desired = self.state.desired if self.state.desired is not None else len(live)
        return AutoscaleStatus(
            region=self.config.region,
            provider=self.provider.name,
            task_types=self.task_types,
            desired=desired,
            actual=len(live),
            starting=sum(1 for w in live if w.id not in self._registered),
            draining=len(self.provider.draining()),
            min_workers=self._settings_seen[0],
            max_workers=self._settings_seen[1],
            reason=self.reason,
            checked_at=self.checked_at,
            interval=self.config.interval,
            error=self.error,
            restarts=self.provider.restarts,
            exits=list(self.provider.exits),
            decisions=list(self.decisions),
        )

    async def _on_status(self, msg: Message) -> None:
        with contextlib.suppress(TierqError):
            await msg.respond(encode_ok(self.status()))

    async def _drain_all(self) -> None:
        self.provider.stop_all()
        deadline = time.monotonic() + self.config.drain_grace + 10.0
        while self.provider.workers and time.monotonic() < deadline:
            self.provider.reap()
            await asyncio.sleep(0.1)
        for worker in list(self.provider.workers.values()):
            worker.kill()
        self.provider.reap()


async def run_autoscaler(config: AutoscaleConfig) -> None:
    """Connect as the autoscaler's NATS user and run until cancelled."""
    nats = config.nats.for_role("autoscaler")
    engine = await connect(nats.connect_options(name=f"tierq-autoscale-{config.region}"))
    try:
        await Autoscaler(config, engine).run()
    finally:
        await engine.close()
