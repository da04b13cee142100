"""Bad inputs are refused with InvalidRequestError naming the field (RELIABILITY.md §3)."""

from __future__ import annotations

import math

import pytest

from tierq.core import RetryPolicy, Settings, TaskSpec
from tierq.core.validate import check_json, check_spec, check_task_name
from tierq.errors import InvalidRequestError

S = Settings()


def nested(depth: int) -> object:
    v: object = 1
    for _ in range(depth):
        v = [v]
    return v


BAD_SPECS: list[tuple[str, dict[str, object]]] = [
    ("name", {"name": ""}),
    ("name", {"name": "x" * 201}),
    ("name", {"name": "a\x00b"}),
    ("name", {"name": "evil\u202eexe"}),  # RTL override
    ("name", {"name": "zero\u200dwidth"}),  # zero-width joiner
    ("name", {"name": "\ud800"}),  # lone surrogate
    ("name", {"name": " padded "}),
    ("name", {"name": "line\nbreak"}),
    ("name", {"name": "e\u0301"}),  # not NFC
    ("priority", {"priority": 1001}),
    ("priority", {"priority": -1001}),
    ("priority", {"priority": 2**63}),
    ("priority", {"priority": True}),
    ("priority", {"priority": 1.5}),
    ("priority", {"priority": "high"}),
    ("args", {"args": [math.nan]}),
    ("args", {"args": [math.inf]}),
    ("args", {"args": [2**63]}),
    ("args", {"args": [-(2**63) - 1]}),
    ("args", {"args": [object()]}),
    ("args", {"args": [b"bytes"]}),
    ("args", {"args": [(1, 2)]}),
    ("args", {"args": [{1: "non-str key"}]}),
    ("args", {"args": [nested(40)]}),
    ("args", {"args": ["\udcff"]}),
    ("args", {"args": ("not", "a", "list")}),
    ("kwargs", {"kwargs": {"k": math.nan}}),
    ("kwargs", {"kwargs": [1]}),
    ("args", {"args": ["x" * (1 << 20)]}),
    ("run_at", {"run_at": math.nan}),
    ("run_at", {"run_at": -1.0}),
    ("run_at", {"run_at": 1e20}),
    ("deadline", {"deadline": math.inf}),
    ("timeout", {"timeout": 0.0}),
    ("timeout", {"timeout": -1.0}),
    ("timeout", {"timeout": math.nan}),
    ("timeout", {"timeout": 1e9}),
    ("region", {"region": "eu.west"}),
    ("region", {"region": "a b"}),
    ("region", {"region": ""}),
    ("queue", {"queue": "q*"}),
    ("queue", {"queue": ">"}),
    ("queue", {"queue": "$JS.API"}),
    ("queue", {"queue": "x" * 65}),
    ("queue", {"queue": "ok\n"}),
    ("labels", {"labels": ("gpu", "bad label")}),
    ("resource", {"resource": "db/../etc"}),
    ("idempotency_key", {"idempotency_key": ""}),
    ("idempotency_key", {"idempotency_key": "k\x07"}),
    ("depends_on", {"depends_on": ("",)}),
    ("retry.max_attempts", {"retry": RetryPolicy(max_attempts=0)}),
    ("retry.backoff_base", {"retry": RetryPolicy(backoff_base=-1.0)}),
    ("retry.backoff_max", {"retry": RetryPolicy(backoff_base=10.0, backoff_max=1.0)}),
    ("retry.jitter", {"retry": RetryPolicy(jitter=1.5)}),
    ("retry.retry_on", {"retry": RetryPolicy(retry_on=("",))}),
]


@pytest.mark.parametrize(("field", "changes"), BAD_SPECS, ids=[f for f, _ in BAD_SPECS])
def test_bad_spec_names_the_field(field: str, changes: dict[str, object]) -> None:
    spec = TaskSpec(**{"name": "ok", **changes})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError) as info:
        check_spec(spec, "specs[3]", S)
    assert info.value.field is not None
    assert info.value.field.startswith(f"specs[3].{field}"), info.value.field
    assert info.value.message.startswith("specs[3]."), info.value.message


GOOD_SPECS: list[dict[str, object]] = [
    {"name": "emoji 🚀 task"},
    {"name": "x" * 200},
    {"name": "mod.sub:func"},
    {"priority": 1000, "args": [1, "two", 3.5, None, True, [1], {"k": "v"}]},
    {"kwargs": {"deep": nested(30)}},
    {"run_at": 0.0, "deadline": 253402300799.0, "timeout": 1.0},
    {"region": "eu-west_1", "queue": "tenant.a:high", "labels": ("gpu", "ssd"), "resource": "db:1"},
    {"args": ["é", "日本"]},
    {"args": [2**63 - 1, -(2**63)]},
]


@pytest.mark.parametrize("changes", GOOD_SPECS)
def test_good_spec_is_accepted(changes: dict[str, object]) -> None:
    spec = TaskSpec(**{"name": "ok", **changes})  # type: ignore[arg-type]
    normalised, refs = check_spec(spec, "spec", S)
    assert normalised == spec or normalised.labels == tuple(spec.labels)
    assert refs is False


def test_normalisation_makes_decoded_equal() -> None:
    spec = TaskSpec(name="n", labels=["gpu"], run_at=5, timeout=3)  # type: ignore[arg-type]
    normalised, _ = check_spec(spec, "spec", S)
    assert normalised.labels == ("gpu",)
    assert type(normalised.run_at) is float and type(normalised.timeout) is float


def test_result_refs_are_detected() -> None:
    spec = TaskSpec(name="n", args=[{"$result": "p"}], depends_on=("p",))
    assert check_spec(spec, "spec", S)[1] is True


def test_nesting_bomb_is_refused_without_recursion() -> None:
    with pytest.raises(InvalidRequestError, match="nested deeper"):
        check_json(nested(100_000), "args", 32, 1 << 20)


def test_self_referencing_list_is_refused() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(InvalidRequestError, match="nested deeper"):
        check_json(loop, "args", 32, 1 << 20)


def test_wide_payload_hits_the_size_limit_early() -> None:
    with pytest.raises(InvalidRequestError, match="larger than"):
        check_json(list(range(1_000_000)), "args", 32, 1 << 20)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("shell", True),
        ("myapp.tasks.add", True),
        ("Shell", False),  # a look-alike of the reserved name
        ("SHELL", False),
        ("\uff53\uff48\uff45\uff4c\uff4c", False),  # fullwidth: not NFKC-normalised
        ("\ufb01le", False),  # the "fi" ligature: not NFKC-normalised
        ("e\u0301", False),  # not even NFC
    ],
)
def test_task_names_are_nfkc_and_reserved_names_exact(name: str, ok: bool) -> None:
    if ok:
        assert check_task_name(name) == name
    else:
        with pytest.raises(InvalidRequestError, match="name"):
            check_task_name(name)
    if not ok:
        with pytest.raises(InvalidRequestError):
            check_spec(TaskSpec(name=name), "task", Settings())
