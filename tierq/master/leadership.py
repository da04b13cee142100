"""The leader lease as the master uses it: taken, kept, and known to be valid by its own clock.

A lease is only as good as the holder's knowledge of it. The server expires the key ``ttl``
seconds after it stored the last write, and that write was sent after the holder read its
monotonic clock, so ``sent + ttl`` (less a margin for clock-rate differences) is a moment
before which no other master can have taken the key. The master answers nothing after that
moment unless a renewal sent later was confirmed: a process that was paused (SIGSTOP, a GC
pause, a frozen VM) or cut off from NATS wakes up knowing it may have been deposed, and stays
silent instead of serving stale reads. This is the leader lease of Chubby and of Raft's
lease-based reads; writes are fenced by the log regardless (see ``EventLog``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from ..engine import LeaderLease
from ..errors import EngineUnavailableError, FencedError

__all__ = ["Leadership"]

log = logging.getLogger("tierq.master")


class Leadership:
    """Takes and keeps the leader lease; ``held()`` says whether it is surely still ours.

    Args:
        lease: the KV-backed lease.
        holder: this master's identity in the lease.
        ttl: the configured lease duration; the shorter of it and the bucket's own is used.
        clock: a monotonic clock (tests may pass their own).
    """

    def __init__(
        self,
        lease: LeaderLease,
        holder: str,
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self.holder = holder
        self._clock = clock
        self._valid_until = -math.inf
        self._renewing = asyncio.Lock()
        self._set_ttl(ttl)

    def _set_ttl(self, ttl: float) -> None:
        self.ttl = ttl
        #: Taken off every validity window: clocks of two machines do not run at exactly the
        #: same rate, and the server's expiry timer is not exact either.
        self.margin = min(0.5, max(0.05, ttl * 0.1))
        #: Renew four times per lease, so that two lost renewals in a row still leave time.
        self.renew_every = ttl / 4
        #: A standby tries to take the lease this often.
        self.poll_interval = min(1.0, ttl / 8)

    async def open(self) -> None:
        """Read the lease duration the server enforces (it may differ from the configured)."""
        await self.lease.open()
        server = await self.lease.server_ttl()
        if server < self.ttl:
            self._set_ttl(server)
        elif server > self.ttl:
            log.warning(
                "the leader bucket expires keys after %.1f s, not the configured %.1f s: a "
                "standby takes over only that long after a leader dies (delete the bucket "
                "while no master runs to change it)",
                server,
                self.ttl,
            )

    def held(self) -> bool:
        """True while no other master can hold the lease, by this process's own clock."""
        return self._clock() < self._valid_until

    def remaining(self) -> float:
        """Seconds the lease is surely still ours (negative once it is not)."""
        return self._valid_until - self._clock()

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; a transient NATS error counts as "not now"."""
        sent = self._clock()
        try:
            acquired = await self.lease.try_acquire(self.holder)
        except EngineUnavailableError as exc:
            log.warning("master %s: NATS unavailable while standing by: %s", self.holder, exc)
            return False
        if acquired:
            self._valid_until = sent + self.ttl - self.margin
        return acquired

    async def renew(self) -> None:
        """Extend the lease once; raises as :meth:`LeaderLease.renew` does.

        Renewals are serialised: two at once would both compare-and-set against the same
        revision, and the loser would look like a lost lease."""
        async with self._renewing:
            sent = self._clock()
            await self.lease.renew()
            self._valid_until = sent + self.ttl - self.margin

    def forget(self) -> None:
        """Treat the lease as lost (the server's ``ttl`` ends it if it is still stored)."""
        self._valid_until = -math.inf
        self.lease.forget()

    async def release(self) -> None:
        """Give the lease up so that a standby need not wait for it to expire."""
        self._valid_until = -math.inf
        try:
            await self.lease.release()
        except EngineUnavailableError as exc:
            log.warning("master %s could not release the leader lease: %s", self.holder, exc)

    async def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew until cancelled; when the lease is lost or its renewal cannot be confirmed
        before it runs out, forget it and call ``on_lost(reason)`` once."""
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                self._lose(on_lost, "no renewal was confirmed before the lease ran out")
                return
            try:
                async with asyncio.timeout(remaining):
                    await self.renew()
            except TimeoutError:
                self._lose(on_lost, "no renewal was confirmed before the lease ran out")
                return
            except FencedError as exc:
                self._lose(on_lost, str(exc))
                return
            except EngineUnavailableError as exc:
                log.warning("master %s: could not renew the leader lease: %s", self.holder, exc)
                await asyncio.sleep(min(0.1, max(0.0, self.remaining())))
                continue
            await asyncio.sleep(self.renew_every)

    def _lose(self, on_lost: Callable[[str], None], reason: str) -> None:
        self.forget()
        log.error("master %s lost the leader lease: %s", self.holder, reason)
        on_lost(reason)
