"""The autoscaling policy: a table of cases, properties over any reading, and a simulated
steady load that must keep a constant count (no flapping)."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierq.core.autoscale import (
    LATENCY_SUSTAIN,
    Decision,
    Direction,
    PoolObservation,
    ScaleState,
    decide,
    need,
)
from tierq.core.settings import AutoscaleRegion, AutoscaleSettings, AutoscaleTaskType, Settings
from tierq.errors import InvalidRequestError

S = AutoscaleSettings(min_workers=0, max_workers=4, target_utilisation=0.75, cooldown=30.0)


def _decide(obs: PoolObservation, previous: ScaleState, now: float = 100.0) -> Decision:
    return decide(obs, S, previous, now)


@pytest.mark.parametrize(
    ("obs", "previous", "desired", "direction", "reason"),
    [
        # From zero: one waiting task, no worker -> workers now, sized to drain it.
        (PoolObservation(ready=1, slots_per_worker=8), ScaleState(desired=0), 1, "up", "from zero"),
        (
            PoolObservation(ready=100, slots_per_worker=8),
            ScaleState(desired=0),
            4,
            "up",
            "from zero",
        ),
        # Up fast: 30 running on 4 x 8 slots is above 75%: capped at max_workers.
        (
            PoolObservation(running=30, workers=4, slots_per_worker=8, throughput=60.0),
            ScaleState(desired=2),
            4,
            "up",
            "capped at max_workers 4",
        ),
        # Backlog at a known rate: 8 running at 16/s (2/s per slot), 80 waiting to drain in
        # 10 s: 8/0.75 + 80/20 = 14.7 slots -> 2 workers of 8.
        (
            PoolObservation(ready=80, running=8, workers=1, slots_per_worker=8, throughput=16.0),
            ScaleState(desired=1),
            2,
            "up",
            "up: 8 running, 80 waiting, 16.0/s",
        ),
        # Nothing waits, all idle, but the need only just fell: hold through the cool-down.
        (
            PoolObservation(workers=3, idle_workers=3, slots_per_worker=8),
            ScaleState(desired=3, below_since=80.0),
            3,
            "hold",
            "down in 10 s (cool-down)",
        ),
        # ... and after it: to zero (min_workers 0).
        (
            PoolObservation(workers=3, idle_workers=3, slots_per_worker=8),
            ScaleState(desired=3, below_since=70.0),
            0,
            "down",
            "nothing waits or runs",
        ),
        # Down only by the idle workers: 2 busy of 3, one running task each.
        (
            PoolObservation(running=2, workers=3, idle_workers=1, slots_per_worker=8),
            ScaleState(desired=3, below_since=0.0),
            2,
            "down",
            "down: 2 running",
        ),
        # No idle worker: hold even after the cool-down.
        (
            PoolObservation(running=3, workers=3, idle_workers=0, slots_per_worker=8),
            ScaleState(desired=3, below_since=0.0),
            3,
            "hold",
            "no idle worker to drain",
        ),
    ],
)
def test_decisions(
    obs: PoolObservation, previous: ScaleState, desired: int, direction: str, reason: str
) -> None:
    decision = _decide(obs, previous)
    assert (decision.desired, decision.direction.value) == (desired, direction)
    assert reason in decision.reason


def test_min_workers_is_kept_and_a_need_above_resets_the_cool_down() -> None:
    s = AutoscaleSettings(min_workers=2, max_workers=8, cooldown=10.0)
    idle = PoolObservation(workers=5, idle_workers=5, slots_per_worker=1)
    first = decide(idle, s, ScaleState(desired=5), now=0.0)
    assert first.direction is Direction.HOLD and first.state.below_since == 0.0
    # A burst in the middle of the cool-down restarts it.
    busy = PoolObservation(running=4, workers=5, idle_workers=1, slots_per_worker=1)
    second = decide(busy, s, first.state, now=5.0)
    assert second.desired == 6 and second.state.below_since is None
    third = decide(idle, s, second.state, now=12.0)
    assert third.direction is Direction.HOLD
    fourth = decide(idle, s, third.state, now=22.0)
    assert fourth.desired == 2 and "min_workers 2" in fourth.reason


def test_bounds_changed_at_run_time_are_a_change() -> None:
    raised = AutoscaleSettings(min_workers=1, max_workers=4)
    d = decide(PoolObservation(), raised, ScaleState(desired=0), now=0.0)
    assert (d.desired, d.direction) == (1, Direction.UP) and "min_workers 1" in d.reason
    lowered = AutoscaleSettings(min_workers=0, max_workers=2)
    busy = PoolObservation(running=40, workers=4, slots_per_worker=8)
    d = decide(busy, lowered, ScaleState(desired=4), now=0.0)
    assert (d.desired, d.direction) == (2, Direction.DOWN) and "max_workers 2" in d.reason


def test_a_partial_scale_down_keeps_the_cool_down_spent() -> None:
    """Busy workers kept by a scale-down may leave as soon as they are idle, down to the
    highest need of the cool-down (1 here)."""
    obs = PoolObservation(running=1, workers=4, idle_workers=2, slots_per_worker=8)
    d = _decide(obs, ScaleState(desired=4, below_since=0.0))
    assert d.desired == 2 and d.state.below_since == 0.0
    idle = PoolObservation(workers=2, idle_workers=2, slots_per_worker=8)
    after = _decide(idle, d.state, now=101.0)
    assert after.desired == 1 and "1 needed within the cool-down" in after.reason


def test_need_reads_the_rate_per_slot() -> None:
    # 4 running finishing 40/s: 10/s per slot; 100 waiting drain in 10 s with 1 slot.
    obs = PoolObservation(ready=100, running=4, slots_per_worker=2, throughput=40.0)
    wanted, why = need(obs, AutoscaleSettings(max_workers=100, target_utilisation=1.0))
    assert wanted == math.ceil((4 + 1) / 2) and "40.0/s" in why


observations = st.builds(
    PoolObservation,
    ready=st.integers(0, 10_000),
    assigned=st.integers(0, 1_000),
    running=st.integers(0, 1_000),
    workers=st.integers(0, 50),
    idle_workers=st.integers(0, 50),
    slots_per_worker=st.integers(1, 64),
    throughput=st.floats(0, 10_000),
)
limits = st.builds(
    lambda lo, extra, u, cd: AutoscaleSettings(
        min_workers=lo, max_workers=lo + extra, target_utilisation=u, cooldown=cd
    ),
    st.integers(0, 10),
    st.integers(0, 20),
    st.floats(0.01, 1.0),
    st.floats(0, 300),
)
states = st.builds(
    ScaleState,
    desired=st.none() | st.integers(0, 40),
    changed_at=st.none() | st.floats(0, 1000),
    below_since=st.none() | st.floats(0, 1000),
)


@settings(max_examples=500, deadline=None)
@given(observations, limits, states, st.floats(1000, 2000))
def test_properties(
    obs: PoolObservation, s: AutoscaleSettings, previous: ScaleState, now: float
) -> None:
    d = decide(obs, s, previous, now)
    before = previous.desired if previous.desired is not None else obs.workers
    current = min(max(before, s.min_workers), s.max_workers)
    assert s.min_workers <= d.desired <= s.max_workers
    assert d.state.desired == d.desired
    if d.direction is Direction.DOWN and before > s.max_workers:
        assert d.desired == s.max_workers  # max_workers was lowered: at once
    elif d.direction is Direction.DOWN:
        # Only after a whole cool-down below, and never more than the idle workers.
        since = previous.below_since if previous.below_since is not None else now
        assert now - since >= s.cooldown
        assert d.desired >= current - obs.idle_workers
    if d.direction is Direction.HOLD:
        assert d.desired == current == before
    else:
        assert d.desired != before
    if obs.ready + obs.assigned and obs.workers == 0 and s.max_workers:
        assert d.desired >= 1  # from zero
    nothing_left = obs.ready + obs.assigned + obs.running == 0
    if nothing_left and d.direction is not Direction.HOLD and before <= s.max_workers:
        # To min_workers (zero) when nothing is left. A max_workers lowered below the count
        # is applied first, on its own (the branch above); the next decision goes on down.
        assert d.desired == s.min_workers


class Pool:
    """A fluid model of a pool fed at a steady rate: each second ``arrivals`` tasks come in;
    a worker's slots start tasks of ``service`` seconds as they free up."""

    def __init__(self, service: float, slots: int) -> None:
        self.service, self.slots = service, slots
        self.backlog = 0.0
        self.started = 0.0

    def step(self, arrivals: float, workers: int) -> PoolObservation:
        self.backlog += arrivals
        capacity = workers * self.slots / self.service  # starts per second
        self.started = min(self.backlog, capacity)
        self.backlog -= self.started
        running = self.started * self.service
        busy_workers = math.ceil(round(running / self.slots, 9))
        return PoolObservation(
            ready=math.ceil(round(self.backlog, 9)),
            running=math.ceil(round(running, 9)),
            workers=workers,
            idle_workers=max(0, workers - busy_workers),
            slots_per_worker=self.slots,
            throughput=self.started,
        )


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 400),
    service=st.floats(0.01, 2.0),
    slots=st.integers(1, 16),
    wobble=st.lists(st.floats(-0.2, 0.2), min_size=1, max_size=20),
    cooldown=st.floats(20, 120),
)
def test_a_steady_load_keeps_a_constant_count(
    rate: float, service: float, slots: int, wobble: list[float], cooldown: float
) -> None:
    """Arrivals at a constant mean rate, wobbling by up to 20% in a repeating pattern (shorter
    than the cool-down): once settled, the count never changes again."""
    s = AutoscaleSettings(min_workers=0, max_workers=1000, cooldown=cooldown)
    pool = Pool(service, slots)
    state, workers, counts = ScaleState(), 0, []
    for second in range(int(4 * cooldown) + 400):
        obs = pool.step(rate * (1 + wobble[second % len(wobble)]), workers)
        d = decide(obs, s, state, float(second))
        state, workers = d.state, d.desired
        counts.append(workers)
    settled = counts[int(3 * cooldown) + 100 :]
    assert len(set(settled)) == 1, f"flapping: {sorted(set(settled))}"
    assert settled[0] >= 1


def test_a_region_may_have_its_own_settings() -> None:
    eu = AutoscaleRegion(region="eu", min_workers=2, max_workers=3, cooldown=5.0)
    scale = AutoscaleSettings(max_workers=8, regions=(eu,))
    Settings(autoscale=scale).validate()
    assert scale.for_region("eu") == AutoscaleSettings(min_workers=2, max_workers=3, cooldown=5.0)
    assert scale.for_region("us") == AutoscaleSettings(max_workers=8)


@pytest.mark.parametrize(
    ("regions", "field"),
    [
        (
            (AutoscaleRegion(region="a.b", min_workers=0, max_workers=1),),
            "autoscale.regions[0].region",
        ),
        (
            (AutoscaleRegion(region="eu", min_workers=3, max_workers=1),),
            "autoscale.regions[0].max_workers",
        ),
        (
            (
                AutoscaleRegion(region="eu", min_workers=0, max_workers=1),
                AutoscaleRegion(region="eu", min_workers=0, max_workers=2),
            ),
            "autoscale.regions[1]",
        ),
        (
            (AutoscaleRegion(region="eu", min_workers=0, max_workers=1, target_utilisation=0),),
            "autoscale.regions[0].target_utilisation",
        ),
    ],
)
def test_region_settings_are_validated_by_field(
    regions: tuple[AutoscaleRegion, ...], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as err:
        Settings(autoscale=AutoscaleSettings(regions=regions)).validate()
    assert err.value.field == field


def _tt(task_type: str, region: str | None = None, **figures: float) -> AutoscaleTaskType:
    lo, hi = int(figures.pop("min", 0)), int(figures.pop("max", 1))
    return AutoscaleTaskType(
        task_type=task_type, region=region, min_workers=lo, max_workers=hi, **figures
    )


_PER_TYPE = AutoscaleSettings(
    max_workers=8,
    regions=(AutoscaleRegion(region="gpu", min_workers=1, max_workers=2),),
    task_types=(
        _tt("render", max=4, cooldown=10.0),
        _tt("render", "gpu", min=2, max=6, target_utilisation=0.5),
        _tt("mail", max=1),
        _tt("thumbs", "eu", max=20, cooldown=600.0),
    ),
)


@pytest.mark.parametrize(
    ("region", "types", "expected"),
    [
        # No type of the pool has an entry: the region's settings (or the defaults).
        ("eu", ["other"], AutoscaleSettings(max_workers=8)),
        ("gpu", ["other"], AutoscaleSettings(min_workers=1, max_workers=2)),
        ("eu", [], AutoscaleSettings(max_workers=8)),
        # One type with an entry for every region, or one for this region (which wins).
        ("eu", ["render"], AutoscaleSettings(max_workers=4, cooldown=10.0)),
        (
            "gpu",
            ["render"],
            AutoscaleSettings(min_workers=2, max_workers=6, target_utilisation=0.5),
        ),
        # An entry for another region does not apply here.
        ("us", ["thumbs"], AutoscaleSettings(max_workers=8)),
        ("eu", ["thumbs"], AutoscaleSettings(max_workers=20, cooldown=600.0)),
        # Several types: the loosest of their settings (types without an entry: the region's).
        ("eu", ["mail", "render"], AutoscaleSettings(max_workers=4, cooldown=60.0)),
        ("eu", ["mail", "other"], AutoscaleSettings(max_workers=8)),
        (
            "gpu",
            ["mail", "render"],
            AutoscaleSettings(min_workers=2, max_workers=6, target_utilisation=0.5),
        ),
        ("eu", ["mail", "mail"], AutoscaleSettings(max_workers=1)),
    ],
)
def test_a_pool_takes_the_settings_of_its_task_types(
    region: str, types: list[str], expected: AutoscaleSettings
) -> None:
    Settings(autoscale=_PER_TYPE).validate()
    assert _PER_TYPE.for_pool(region, types) == expected


def test_target_latency_per_region_and_task_type() -> None:
    """A region's or a type's own target_latency wins; without one, the level above holds;
    a pool of several types aims at the lowest of theirs."""
    scale = AutoscaleSettings(
        target_latency=5.0,
        regions=(
            AutoscaleRegion(region="eu", min_workers=0, max_workers=4, target_latency=2.0),
            AutoscaleRegion(region="us", min_workers=0, max_workers=4),
        ),
        task_types=(
            _tt("render", "eu", max=4, target_latency=0.5),
            _tt("mail", max=2),
            _tt("batch", max=2, target_latency=60.0),
        ),
    )
    Settings(autoscale=scale).validate()
    assert scale.for_region("eu").target_latency == 2.0
    assert scale.for_region("us").target_latency == 5.0  # the entry names none
    assert scale.for_region("asia").target_latency == 5.0
    assert scale.for_pool("eu", ["render"]).target_latency == 0.5
    assert scale.for_pool("eu", ["mail"]).target_latency == 2.0  # the region's
    assert scale.for_pool("us", ["mail"]).target_latency == 5.0
    assert scale.for_pool("eu", ["batch"]).target_latency == 60.0
    assert scale.for_pool("eu", ["batch", "mail", "render"]).target_latency == 0.5
    assert (
        AutoscaleSettings(task_types=(_tt("mail"),)).for_pool("eu", ["mail"]).target_latency is None
    )
    for bad, field in [
        (AutoscaleRegion(region="eu", min_workers=0, max_workers=1, target_latency=0.0),
         "autoscale.regions[0].target_latency"),
    ]:  # fmt: skip
        with pytest.raises(InvalidRequestError) as err:
            Settings(autoscale=AutoscaleSettings(regions=(bad,))).validate()
        assert err.value.field == field
    with pytest.raises(InvalidRequestError) as err:
        Settings(autoscale=AutoscaleSettings(task_types=(_tt("x", target_latency=-1),))).validate()
    assert err.value.field == "autoscale.task_types[0].target_latency"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from([None, "eu", "us"]),
            st.integers(0, 5),
            st.integers(0, 5),
            st.sampled_from([0.25, 0.5, 1.0]),
            st.sampled_from([0.0, 30.0, 90.0]),
        ),
        max_size=6,
        unique_by=lambda t: (t[0], t[1]),
    ),
    st.sampled_from(["eu", "us", "asia"]),
    st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4),
)
def test_a_pool_is_never_tighter_than_any_of_its_types(
    entries: list[tuple[str, str | None, int, int, float, float]],
    region: str,
    types: list[str],
) -> None:
    scale = AutoscaleSettings(
        task_types=tuple(
            AutoscaleTaskType(
                task_type=t,
                region=r,
                min_workers=min(lo, hi),
                max_workers=max(lo, hi),
                target_utilisation=u,
                cooldown=c,
            )
            for t, r, lo, hi, u, c in entries
        )
    )
    Settings(autoscale=scale).validate()
    pool = scale.for_pool(region, types)
    Settings(autoscale=pool).validate()  # a valid set of settings itself
    for name in types:
        entry = scale.for_task_type(region, name)
        own = scale.for_region(region) if entry is None else entry
        assert pool.min_workers >= own.min_workers and pool.max_workers >= own.max_workers
        assert pool.target_utilisation <= own.target_utilisation
        assert pool.cooldown >= own.cooldown
        if entry is not None and entry.region is None:
            # An entry for every region counts only where none names the region.
            assert all(t.region != region for t in scale.task_types if t.task_type == name)
    if len(set(types)) == 1:
        entry = scale.for_task_type(region, types[0])
        if entry is not None:
            assert (pool.min_workers, pool.max_workers) == (entry.min_workers, entry.max_workers)


@pytest.mark.parametrize(
    ("task_types", "field"),
    [
        ((_tt("render"), _tt("render")), "autoscale.task_types[1].task_type"),
        (
            (_tt("render", "eu"), _tt("render"), _tt("render", "eu")),
            "autoscale.task_types[2].task_type",
        ),
        ((_tt("render", "a.b"),), "autoscale.task_types[0].region"),
        ((_tt(""),), "autoscale.task_types[0].task_type"),
        ((_tt("render", min=3, max=1),), "autoscale.task_types[0].max_workers"),
        ((_tt("render", cooldown=-1.0),), "autoscale.task_types[0].cooldown"),
        ((_tt("render", target_utilisation=1.5),), "autoscale.task_types[0].target_utilisation"),
    ],
)
def test_task_type_settings_are_validated_by_field(
    task_types: tuple[AutoscaleTaskType, ...], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as err:
        Settings(autoscale=AutoscaleSettings(task_types=task_types)).validate()
    assert err.value.field == field


def test_the_same_type_in_two_regions_and_for_every_region_is_allowed() -> None:
    scale = AutoscaleSettings(task_types=(_tt("render"), _tt("render", "eu"), _tt("render", "us")))
    Settings(autoscale=scale).validate()


# --- target_latency ----------------------------------------------------------------------

_LATE = AutoscaleSettings(min_workers=0, max_workers=5, cooldown=30.0, target_latency=2.0)


def _late(p50: float | None, ready: int = 1, workers: int = 2, running: int = 2) -> PoolObservation:
    # Two workers of 8 slots with 2 running and 1 waiting: the backlog rule wants 1 worker.
    return PoolObservation(
        ready=ready,
        running=running,
        workers=workers,
        idle_workers=0,
        slots_per_worker=8,
        throughput=4.0,
        latency_p50=p50,
    )


def test_a_latency_above_target_adds_one_worker_after_it_stayed_there() -> None:
    state = ScaleState(desired=2)
    d = decide(_late(5.0), _LATE, state, 100.0)
    assert (d.desired, d.direction) == (2, Direction.HOLD)  # above, but not for long yet
    assert d.state.slow_since == 100.0 and "above target_latency 2 s" in d.reason
    d = decide(_late(5.0), _LATE, d.state, 100.0 + LATENCY_SUSTAIN - 1)
    assert d.desired == 2
    d = decide(_late(5.0), _LATE, d.state, 100.0 + LATENCY_SUSTAIN)
    assert (d.desired, d.direction) == (3, Direction.UP)
    assert d.reason.startswith("up: submit-to-start p50 5.00 s above target_latency 2 s")
    # The wait starts again: the new worker must show in the figure first.
    assert d.state.slow_since == 100.0 + LATENCY_SUSTAIN
    d = decide(_late(5.0, workers=3), _LATE, d.state, 100.0 + LATENCY_SUSTAIN + 1)
    assert d.desired == 3


@pytest.mark.parametrize(
    ("settings", "obs"),
    [
        (AutoscaleSettings(max_workers=5, cooldown=30.0), _late(5.0)),  # no target
        (_LATE, _late(1.5)),  # below the target
        (_LATE, _late(None)),  # nothing started lately
        (_LATE, _late(5.0, ready=0)),  # nothing waits: old starts, no call for workers
    ],
)
def test_the_latency_rule_keeps_out_otherwise(
    settings: AutoscaleSettings, obs: PoolObservation
) -> None:
    state = ScaleState(desired=2)
    for t in range(0, 100, 5):
        d = decide(obs, settings, state, float(t))
        assert d.state.slow_since is None
        assert d.desired <= 2  # what the backlog rule says (it wants 1, so down after 30 s)
        state = d.state


def test_no_worker_added_for_latency_while_one_is_idle() -> None:
    state = ScaleState(desired=2)
    idle = msgspec.structs.replace(_late(5.0), idle_workers=1)
    for t in range(0, 100, 5):
        d = decide(idle, _LATE, state, float(t))
        assert d.desired == 2 and d.state.slow_since == 0.0  # held (late), not raised
        state = d.state


def test_no_scale_down_while_late_and_never_past_max_workers() -> None:
    state = ScaleState(desired=5)
    for t in range(0, 200, 5):
        d = decide(_late(9.0, workers=5), _LATE, state, float(t))
        assert d.desired == 5  # the backlog rule wants 1; held, and capped at max
        state = d.state


class LatePool(Pool):
    """The fluid pool with a latency: a floor (transport, polls, prefetch) during which
    arrivals are on their way and count as waiting, plus the time the backlog takes to start
    at the pool's capacity (Little's law), times a noise pattern."""

    def __init__(self, service: float, slots: int, floor: float, noise: list[float]) -> None:
        super().__init__(service, slots)
        self.floor, self.noise, self.second = floor, noise, 0

    def step(self, arrivals: float, workers: int) -> PoolObservation:
        obs = super().step(arrivals, workers)
        capacity = workers * self.slots / self.service
        noise = 1 + self.noise[self.second % len(self.noise)]
        self.second += 1
        p50 = None
        if capacity > 0 and self.started > 0:
            p50 = (self.floor + self.backlog / capacity) * noise
        in_transit = math.ceil(round(arrivals * self.floor, 9))
        return msgspec.structs.replace(obs, ready=obs.ready + in_transit, latency_p50=p50)


def _settle(
    pool: Pool, s: AutoscaleSettings, rate: float, wobble: list[float], seconds: int
) -> list[int]:
    state, workers, counts = ScaleState(), 0, []
    for second in range(seconds):
        obs = pool.step(rate * (1 + wobble[second % len(wobble)]), workers)
        d = decide(obs, s, state, float(second))
        state, workers = d.state, d.desired
        counts.append(workers)
    return counts


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 400),
    service=st.floats(0.01, 2.0),
    slots=st.integers(1, 16),
    wobble=st.lists(st.floats(-0.2, 0.2), min_size=1, max_size=20),
    noise=st.lists(st.floats(-0.5, 0.5), min_size=1, max_size=20),
    cooldown=st.floats(20, 120),
    floor=st.floats(0.001, 2.0),
    target=st.floats(0.05, 3.0),
    max_workers=st.integers(1, 60),
)
def test_a_steady_load_keeps_a_constant_count_with_a_latency_target(
    rate: float,
    service: float,
    slots: int,
    wobble: list[float],
    noise: list[float],
    cooldown: float,
    floor: float,
    target: float,
    max_workers: int,
) -> None:
    """The steady load of the test above with ``target_latency`` set, below, near or above
    what the pool can reach, the latency wobbling by up to 50% in a pattern shorter than
    the cool-down: once settled, the count never changes again."""
    s = AutoscaleSettings(max_workers=max_workers, cooldown=cooldown, target_latency=target)
    seconds = int(4 * cooldown) + 1000
    counts = _settle(LatePool(service, slots, floor, noise), s, rate, wobble, seconds)
    settled = counts[int(3 * cooldown) + 700 :]
    assert len(set(settled)) == 1, f"flapping: {sorted(set(settled))}"
    assert settled[0] >= 1


def test_at_a_steady_load_the_latency_target_holds_more_workers() -> None:
    """Starts take 1 s (the floor) while the backlog rule is content with 2 busy workers:
    with a 0.5 s target the pool gets more while none is idle, and keeps them while the
    latency stays above the target."""
    args = (20.0, [0.0], 600)
    plain = AutoscaleSettings(max_workers=6, cooldown=30.0)
    late = msgspec.structs.replace(plain, target_latency=0.5)
    without = _settle(LatePool(0.5, 8, 1.0, [0.0]), plain, *args)
    with_target = _settle(LatePool(0.5, 8, 1.0, [0.0]), late, *args)
    assert set(without[300:]) == {2}
    # More than the backlog rule's 2 (added while every worker was busy), then constant.
    assert len(set(with_target[300:])) == 1 and 2 < with_target[-1] <= 6
    # A reachable target changes nothing.
    reachable = msgspec.structs.replace(plain, target_latency=1.5)
    assert _settle(LatePool(0.5, 8, 1.0, [0.0]), reachable, *args)[300:] == without[300:]
