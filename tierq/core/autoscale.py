"""The autoscaling policy: what a pool of workers sees -> how many workers it should have.

Pure and synchronous like the rest of ``core``: the provider (``tierq.autoscale``) reads the
master's figures, passes them in with ``now`` and the previous :class:`ScaleState`, and
carries out the :class:`Decision` that comes back.

A *pool* is the workers one provider runs for one region: the same task types and the same
slots each. The rules, in the order they are tried:

1. **From zero.** Work of the pool's types waits and no live worker serves it: at least one
   worker at once, whatever the cool-down.
2. **Up fast.** The slots needed are the busy ones at ``target_utilisation``
   (``running / target_utilisation``) plus enough to drain what waits (ready at the master and
   assigned to the region) within ``drain_seconds`` at the measured rate per slot (one slot per
   waiting task while no rate is known yet). More workers than the current count are granted
   at once, up to ``max_workers``.
3. **Down slowly.** Fewer workers are granted only after the need has stayed below the
   current count for a whole ``cooldown`` (any moment of need at the count restarts the
   wait), down to the highest need of that cool-down, and only as many as there are idle
   workers: a worker is drained, never killed, and a busy one
   is never chosen. Never below ``min_workers``; to zero when ``min_workers`` is 0 and nothing
   waits or runs.

4. **Latency** (with ``target_latency``). While the p50 submit-to-start latency of the
   pool's types stays above ``target_latency`` and work waits, no scale-down; and when it
   has stayed there for ``LATENCY_SUSTAIN`` seconds and no worker is idle, one worker more
   (up to ``max_workers``), even if the backlog rule is content. A measured figure lags
   what it measures: one step, then a fresh wait, gives the new worker time to show in the
   figure before the next. With a worker idle, tasks do not wait for a worker (the time goes
   to transport, polls, batching) and more workers would not shorten it: a target the pool
   cannot reach that way adds one worker, not ``max_workers``.

The cool-down on the way down is what keeps a steady load at a steady count: the need of a
constant arrival rate wobbles as attempts start and end, and the count follows only its
highest value over a cool-down, which a steady load does not exceed
(``tests/core/test_autoscale.py`` simulates it).
"""

from __future__ import annotations

import enum
import math

import msgspec

from .settings import AutoscaleSettings

__all__ = [
    "DEFAULT_DRAIN_SECONDS",
    "LATENCY_SUSTAIN",
    "Decision",
    "Direction",
    "PoolObservation",
    "ScaleState",
    "decide",
]

#: Seconds within which the policy sizes the pool to drain what waits.
DEFAULT_DRAIN_SECONDS = 10.0
#: Seconds the latency must stay above ``target_latency`` before a worker is added for it.
LATENCY_SUSTAIN = 10.0


class Direction(enum.Enum):
    UP = "up"  #: more workers than before
    DOWN = "down"  #: fewer workers than before
    HOLD = "hold"  #: the same count


class PoolObservation(msgspec.Struct, frozen=True, kw_only=True):
    """What a pool of workers looks like at one moment (the provider's reading)."""

    #: READY tasks at the master of the pool's task types (waiting for any region).
    ready: int = 0
    #: Tasks held by the region that no worker runs yet.
    assigned: int = 0
    #: Attempts running on the pool's workers.
    running: int = 0
    #: Live workers of the pool that are not draining.
    workers: int = 0
    #: Of those, workers with nothing running (the only ones a scale-down may drain).
    idle_workers: int = 0
    #: Slots (concurrency) of one worker.
    slots_per_worker: int = 1
    #: Attempts the pool's region finished per second recently (0: not known).
    throughput: float = 0.0
    #: 90th percentile of submit-to-start latency of recent first attempts, seconds.
    latency_p90: float | None = None
    #: Median submit-to-start latency of the pool's types' recent first starts, seconds (the
    #: slowest of its types; None: none started lately).
    latency_p50: float | None = None


class ScaleState(msgspec.Struct, frozen=True, kw_only=True):
    """What the policy remembers between two decisions (returned in every Decision)."""

    #: The count last decided; None before the first decision.
    desired: int | None = None
    #: When ``desired`` last changed.
    changed_at: float | None = None
    #: Since when the need has been below ``desired`` without a break (None: it is not).
    below_since: float | None = None
    #: The highest need since ``below_since``: how far a scale-down may go.
    peak: int = 0
    #: Since when the latency has been above ``target_latency`` with work waiting (None: it
    #: is not); restarted by each worker added for it.
    slow_since: float | None = None


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """How many workers the pool should have, why, and what to remember for next time."""

    desired: int
    direction: Direction
    reason: str
    #: Workers the figures call for, before the cool-down and the idle-only rule.
    need: int
    state: ScaleState


def need(
    obs: PoolObservation, settings: AutoscaleSettings, drain_seconds: float = DEFAULT_DRAIN_SECONDS
) -> tuple[int, str]:
    """Workers the figures call for (within min/max) and the figure that decided it."""
    waiting = obs.ready + obs.assigned
    lo, hi = settings.min_workers, settings.max_workers
    if waiting == 0 and obs.running == 0:
        return lo, f"nothing waits or runs (min_workers {lo})"
    slots = max(1, obs.slots_per_worker)
    busy = obs.running / settings.target_utilisation
    # Per-slot rate: the attempts finished per second spread over the slots that ran them.
    rate = obs.throughput / obs.running if obs.throughput > 0 and obs.running > 0 else 0.0
    # Never more than a slot per waiting task: a slow rate cannot ask for more than that.
    drain = min(float(waiting), waiting / (rate * drain_seconds)) if rate > 0 else float(waiting)
    workers = math.ceil(round((busy + drain) / slots, 9))
    why = (
        f"{obs.running} running, {waiting} waiting"
        + (f", {obs.throughput:.1f}/s" if rate > 0 else "")
        + f": {workers} x {slots} slots at {settings.target_utilisation:.0%}"
    )
    if workers > hi:
        return hi, why + f", capped at max_workers {hi}"
    if workers < lo:
        return lo, why + f", raised to min_workers {lo}"
    return max(workers, 1 if waiting else 0), why


def decide(
    obs: PoolObservation,
    settings: AutoscaleSettings,
    previous: ScaleState,
    now: float,
    drain_seconds: float = DEFAULT_DRAIN_SECONDS,
) -> Decision:
    """The desired worker count of one pool (``settings`` already validated)."""
    slow = _slow_since(obs, settings, previous, now)
    decision = _decide(obs, settings, previous, now, drain_seconds, slow)
    if slow is None:
        return decision
    # A worker added (for whatever reason) restarts the latency's wait.
    since = now if decision.direction is Direction.UP else slow
    state = msgspec.structs.replace(decision.state, slow_since=since)
    return msgspec.structs.replace(decision, state=state)


def _slow_since(
    obs: PoolObservation, settings: AutoscaleSettings, previous: ScaleState, now: float
) -> float | None:
    """Since when the latency has been above its target with work waiting, if it is now."""
    target, p50 = settings.target_latency, obs.latency_p50
    if target is None or p50 is None or p50 <= target or obs.ready + obs.assigned == 0:
        return None
    return previous.slow_since if previous.slow_since is not None else now


def _decide(
    obs: PoolObservation,
    settings: AutoscaleSettings,
    previous: ScaleState,
    now: float,
    drain_seconds: float,
    slow_since: float | None,
) -> Decision:
    wanted, why = need(obs, settings, drain_seconds)
    before = previous.desired if previous.desired is not None else obs.workers
    # The bounds may have moved since (settings change at run time): that alone is a change.
    current = min(max(before, settings.min_workers), settings.max_workers)
    waiting = obs.ready + obs.assigned
    if waiting and obs.workers == 0 and settings.max_workers > 0:
        # From zero: work waits and nobody serves it. The decided count may already be up
        # (a worker starting); then the ordinary rules below keep it.
        wanted = max(wanted, 1)
        if current == 0:
            reason = f"from zero: {waiting} waiting, no live worker"
            return _change(before, wanted, wanted, reason, now)
    if wanted > current:
        return _change(before, wanted, wanted, "up: " + why, now)
    if current != before:
        bounds = f"min_workers {settings.min_workers}, max_workers {settings.max_workers}"
        return _change(before, current, wanted, f"within {bounds}: {why}", now)
    if slow_since is not None:
        late = (
            f"submit-to-start p50 {obs.latency_p50:.2f} s above target_latency "
            f"{settings.target_latency:g} s for {now - slow_since:.0f} s"
        )
        sustained = now - slow_since >= LATENCY_SUSTAIN
        if sustained and obs.idle_workers == 0 and current < settings.max_workers:
            return _change(before, current + 1, wanted, f"up: {late}; {why}", now)
        # Not down while work waits too long, whatever the backlog rule says.
        return _hold(current, wanted, f"{why}; {late}", previous)
    if wanted == current:
        return _hold(current, wanted, why, previous)
    below_since = previous.below_since if previous.below_since is not None else now
    # The highest need of the cool-down, not the latest: a load that wobbles goes down only to
    # its own peak (Kubernetes' HPA keeps the same "stabilization window" for scale-down).
    peak = max(wanted, previous.peak if previous.below_since is not None else 0)
    left = settings.cooldown - (now - below_since)
    if left > 0:
        reason = f"{why}; down in {math.ceil(left)} s (cool-down)"
        return _hold(current, wanted, reason, previous, below_since, peak)
    # Drain only idle workers; the rest keep theirs until they are idle at a later decision.
    target = max(peak, current - obs.idle_workers, settings.min_workers)
    if target >= current:
        reason = f"{why}; no idle worker to drain"
        if peak > wanted:
            reason = f"{why}; {peak} needed within the cool-down"
        return _hold(current, wanted, reason, previous, below_since, peak)
    if peak > wanted:
        why += f"; {peak} needed within the cool-down"
    # Still above the need (busy workers kept): the rest may go as soon as they are idle.
    kept = (below_since, peak) if target > peak else (None, 0)
    return _change(current, target, wanted, "down: " + why, now, *kept)


def _change(
    current: int,
    desired: int,
    wanted: int,
    reason: str,
    now: float,
    below_since: float | None = None,
    peak: int = 0,
) -> Decision:
    direction = Direction.UP if desired > current else Direction.DOWN
    state = ScaleState(desired=desired, changed_at=now, below_since=below_since, peak=peak)
    return Decision(desired=desired, direction=direction, reason=reason, need=wanted, state=state)


def _hold(
    current: int,
    wanted: int,
    reason: str,
    previous: ScaleState,
    below_since: float | None = None,
    peak: int = 0,
) -> Decision:
    state = ScaleState(
        desired=current, changed_at=previous.changed_at, below_since=below_since, peak=peak
    )
    return Decision(
        desired=current, direction=Direction.HOLD, reason=reason, need=wanted, state=state
    )
