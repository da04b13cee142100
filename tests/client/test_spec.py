"""Submission options and argument checks, before anything is sent."""

from __future__ import annotations

import datetime as dt
import time

import pytest

import tierq
from tierq import InvalidRequestError, TaskHandle

app = tierq.App("nats://127.0.0.1:1")


@app.task(priority=3, timeout=10)
def work(x: int, y: int = 0) -> int:
    return x + y


@app.task
def clashes(priority: int) -> int:
    return priority


def test_spec_carries_arguments_and_options() -> None:
    spec = work.spec(
        1, y=2, priority=7, idempotency_key="k1", depends_on=["a", TaskHandle(app, "b")]
    )
    assert spec.name == work.name
    assert spec.args == [1] and spec.kwargs == {"y": 2}
    assert spec.priority == 7
    assert spec.timeout == 10
    assert spec.idempotency_key == "k1"
    assert spec.depends_on == ("a", "b")


def test_defaults_apply_when_not_given() -> None:
    spec = work.spec(1)
    assert spec.priority == 3 and spec.run_at is None and spec.depends_on == ()


def test_delay_and_run_at() -> None:
    before = time.time()
    spec = work.spec(1, delay=dt.timedelta(seconds=60))
    assert spec.run_at is not None and before + 59 < spec.run_at < time.time() + 61
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert work.spec(1, run_at=when).run_at == when.timestamp()
    assert work.spec(1, deadline=1_900_000_000).deadline == 1_900_000_000.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"priority": 1001}, "priority"),
        ({"priority": True}, "priority"),
        ({"delay": -1}, "delay"),
        ({"delay": 5, "run_at": 1_900_000_000}, "delay"),
        ({"run_at": dt.datetime(2030, 1, 1)}, "run_at"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"deadline": float("nan")}, "deadline"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"depends_on": [3]}, "depends_on"),
    ],
)
def test_bad_options_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        work.spec(1, **kwargs)
    assert info.value.field == field


def test_arguments_must_fit_the_signature() -> None:
    with pytest.raises(InvalidRequestError, match="arguments do not match"):
        work.spec(1, 2, 3)
    with pytest.raises(InvalidRequestError):
        work.spec(z=1)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((dt.date(2026, 1, 1),), {}, "args[0]"),
        ((1,), {"y": {1, 2}}, "kwargs.y"),
        (([1, object()],), {}, "args[0][1]"),
    ],
)
def test_arguments_must_be_json(
    args: tuple[object, ...], kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidRequestError, match="JSON") as info:
        work.spec(*args, **kwargs)
    assert info.value.field == field


def test_submit_with_for_parameters_named_like_options() -> None:
    from tierq.client import build_spec

    spec = build_spec(clashes, (), {"priority": 5}, {"priority": 9, "timeout": 3, "retries": 0})
    assert spec.kwargs == {"priority": 5}
    assert spec.priority == 9 and spec.timeout == 3 and spec.retry.max_attempts == 1


def test_unknown_option_is_refused() -> None:
    from tierq.client import build_spec

    with pytest.raises(InvalidRequestError, match="unknown submit option"):
        build_spec(work, (1,), {}, {"prio": 1})


def test_submit_by_name_skips_signature_checks() -> None:
    from tierq.client import build_spec

    spec = build_spec("elsewhere.task", (1, 2, 3), {"a": None}, {"priority": -5})
    assert spec.name == "elsewhere.task" and spec.args == [1, 2, 3] and spec.priority == -5


def test_app_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERQ_NATS", raising=False)
    assert tierq.App().config.servers == ("nats://127.0.0.1:4222",)
    monkeypatch.setenv("TIERQ_NATS", "nats://a:1,nats://b:2")
    assert tierq.App().config.servers == ("nats://a:1", "nats://b:2")
    assert tierq.App(["nats://c:3"], prefix="other").config.prefix == "other"
    with pytest.raises(InvalidRequestError):
        tierq.App(prefix="bad.prefix")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "bogus"}, "cron"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"every": 0.5}, "every"),
    ],
)
def test_a_schedule_declared_in_code_with_bad_input_fails_where_it_is_written(
    options: dict[str, object], field: str
) -> None:
    """Not later, in a worker's log when the master refuses it."""
    app = tierq.App()
    with pytest.raises(InvalidRequestError) as info:
        app.schedule("nightly", "jobs.report", **options)
    assert info.value.field == field
    cron = options.get("cron")
    if cron is not None and "timezone" not in options:
        with pytest.raises(InvalidRequestError) as info:

            @app.task(name="jobs.sweep", schedule=str(cron))
            async def sweep() -> None: ...

        assert info.value.field == "cron"
