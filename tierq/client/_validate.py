"""Checking what a submission says before it is sent; every error names its field."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from ..core.model import PRIORITY_MAX, PRIORITY_MIN, RetryPolicy, TaskSpec
from ..core.retry import error_type_name
from ..core.settings import Settings
from ..core.validate import check_json, check_subject_token, json_error_path
from ..errors import InvalidRequestError

#: Keyword arguments of ``submit``/``spec``/``Workflow.add`` that are options, not task kwargs.
SUBMIT_OPTIONS = frozenset(
    {"priority", "run_at", "delay", "deadline", "depends_on", "idempotency_key"}
)
#: What ``submit_with`` and ``Workflow.add_with`` also accept: per-call decorator overrides.
OVERRIDE_OPTIONS = frozenset({"timeout", "region", "labels", "queue", "resource", "retries"})


def overrides(options: Mapping[str, Any], base: TaskSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if options.get("timeout") is not None:
        out["timeout"] = positive_seconds(options["timeout"], "timeout")
    if options.get("region") is not None:
        out["region"] = token(options["region"], "region")
    if options.get("labels") is not None:
        out["labels"] = labels_of(options["labels"])
    if options.get("queue") is not None:
        out["queue"] = token(options["queue"], "queue")
    if options.get("resource") is not None:
        out["resource"] = resource_of(options["resource"])
    if options.get("retries") is not None:
        out["retry"] = retry_policy(options["retries"], None, None, base.retry)
    return out


#: The master's default limits: the SDK refuses what a master with default settings refuses
#: (a master configured with larger limits may take more through the API).
DEFAULT_SETTINGS = Settings()


def check_value(value: Any, path: str) -> None:
    """Refuse what the master would: the one JSON check of ``tierq.core.validate``; the error
    names the innermost offending place (``args[0][1]``, ``kwargs.y['k']``)."""
    depth, budget = DEFAULT_SETTINGS.max_json_depth, DEFAULT_SETTINGS.max_payload_bytes
    try:
        check_json(value, path, depth, budget)
    except InvalidRequestError as exc:
        where = json_error_path(value, path, depth, budget) or path
        raise InvalidRequestError(
            f"{where}: {exc.message.split(': ', 1)[-1]}; task arguments must be JSON values "
            "(None, bool, 64-bit int, finite float, str, list, dict with str keys)",
            field=where,
        ) from None


def check_priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"priority must be an integer, got {value!r}", field="priority")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise InvalidRequestError(
            f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, got {value}",
            field="priority",
        )
    return value


def to_timestamp(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise InvalidRequestError(
                f"{field} must be a timezone-aware datetime (or seconds since the epoch)",
                field=field,
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(
            f"{field} must be a datetime or seconds since the epoch, got {value!r}", field=field
        )
    return float(value)


def to_seconds(value: Any, field: str) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(
            f"{field} must be a number of seconds, got {value!r}", field=field
        )
    if value < 0:
        raise InvalidRequestError(f"{field} must not be negative, got {value}", field=field)
    return float(value)


def positive_seconds(value: Any, field: str) -> float:
    seconds = to_seconds(value, field)
    if seconds <= 0:
        raise InvalidRequestError(f"{field} must be positive, got {value}", field=field)
    return seconds


def token(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{field} must be a string, got {value!r}", field=field)
    return check_subject_token(value, field)


def labels_of(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    return tuple(token(v, "labels") for v in value)


def resource_of(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise InvalidRequestError("resource must be a string of 1-200 characters", field="resource")
    return value


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or name.strip() != name:
        raise InvalidRequestError(
            f"task name must be 1-200 characters without surrounding spaces, got {name!r}",
            field="name",
        )
    return name


def task_ids(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or isinstance(getattr(value, "id", None), str):
        value = (value,)
    ids: list[str] = []
    for item in value:
        if not isinstance(item, str) and isinstance(getattr(item, "id", None), str):
            ids.append(item.id)  # a TaskHandle
        elif isinstance(item, str) and item:
            ids.append(item)
        else:
            raise InvalidRequestError(
                f"depends_on takes task ids or TaskHandles, got {item!r}", field="depends_on"
            )
    return tuple(ids)


def retry_policy(
    retries: int | RetryPolicy | None,
    backoff: float | tuple[float, float] | None,
    retry_on: Iterable[type[BaseException] | str] | None,
    base: RetryPolicy | None = None,
) -> RetryPolicy:
    """Build a :class:`RetryPolicy` from the decorator's shorthand.

    ``retries`` is how many times a failed attempt is retried (``max_attempts - 1``), or a
    full policy; ``backoff`` the base delay in seconds or ``(base, max)``; ``retry_on`` the
    exception classes (or type names) that retry — anything else fails at once.
    """
    policy = base or RetryPolicy()
    if isinstance(retries, RetryPolicy):
        policy = retries
    elif retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise InvalidRequestError(
                f"retries must be an integer from 0 to 100, got {retries!r}", field="retries"
            )
        policy = msgspec.structs.replace(policy, max_attempts=retries + 1)
    if backoff is not None:
        if isinstance(backoff, tuple):
            low, high = (positive_seconds(b, "backoff") for b in backoff)
            policy = msgspec.structs.replace(policy, backoff_base=low, backoff_max=high)
        else:
            policy = msgspec.structs.replace(
                policy, backoff_base=positive_seconds(backoff, "backoff")
            )
    if retry_on is not None:
        names: list[str] = []
        for item in retry_on:
            if isinstance(item, type) and issubclass(item, BaseException):
                names.append(error_type_name(item))
            elif isinstance(item, str) and item:
                names.append(item)
            else:
                raise InvalidRequestError(
                    f"retry_on takes exception classes or type names, got {item!r}",
                    field="retry_on",
                )
        policy = msgspec.structs.replace(policy, retry_on=tuple(names))
    return policy
