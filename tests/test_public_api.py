"""``tierq.__all__`` is the SDK surface: changing it is a deliberate, changelogged act."""

from __future__ import annotations

import tierq

EXPECTED = [
    "PRIORITY_DEFAULT",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "App",
    "BackpressureError",
    "ChangedSinceReadError",
    "ConflictError",
    "CycleError",
    "DuplicateTaskError",
    "EngineUnavailableError",
    "FailurePolicy",
    "FencedError",
    "GraphTooLargeError",
    "IntakeBehindError",
    "InvalidRequestError",
    "InvalidTransitionError",
    "NatsConfig",
    "NodeRef",
    "NotFoundError",
    "PayloadTooLargeError",
    "PendingTask",
    "PermissionDeniedError",
    "RetryPolicy",
    "SyncApp",
    "SyncPendingTask",
    "SyncTaskHandle",
    "SyncWorkflowHandle",
    "Task",
    "TaskCancelledError",
    "TaskContext",
    "TaskDef",
    "TaskError",
    "TaskFailedError",
    "TaskHandle",
    "TaskPage",
    "TaskSpec",
    "TaskState",
    "TaskTimeoutError",
    "TierqError",
    "UnauthenticatedError",
    "UnknownTaskError",
    "WaitTimeoutError",
    "Workflow",
    "WorkflowHandle",
]


def test_all_is_pinned() -> None:
    assert tierq.__all__ == EXPECTED


def test_all_is_sorted_constants_first() -> None:
    constants = [n for n in tierq.__all__ if n.isupper()]
    others = [n for n in tierq.__all__ if not n.isupper()]
    assert tierq.__all__ == sorted(constants) + sorted(others)


def test_every_name_resolves() -> None:
    for name in tierq.__all__:
        assert getattr(tierq, name) is not None, name


def test_every_exported_error_is_a_tierq_error() -> None:
    for name in tierq.__all__:
        value = getattr(tierq, name)
        if name.endswith("Error"):
            assert issubclass(value, tierq.TierqError), name


def test_no_public_name_leaks_outside_all() -> None:
    """Built from ``vars()`` as httpx's check is: a name imported into ``tierq`` without being
    added to ``__all__`` (or the reverse) fails here, not only a change of the pinned list."""
    import types

    public = {
        name
        for name, value in vars(tierq).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(tierq.__all__)


def test_circuit_open_error_is_deprecated_and_out_of_all() -> None:
    """It was exported but nothing raised it; the old name warns until the next minor."""
    import warnings

    assert "CircuitOpenError" not in tierq.__all__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cls = tierq.CircuitOpenError  # type: ignore[attr-defined]
    assert issubclass(cls, tierq.TierqError)
    assert [w.category for w in caught] == [DeprecationWarning]
