"""Input checks for everything a client or a region hands the core (RELIABILITY.md §3).

Every failure is an InvalidRequestError whose ``field`` names the offending field, with a path
prefix such as ``specs[3].kwargs``. Checks on strings that repeat across millions of tasks (task
names, queues, labels) are memoised: each distinct value is checked once.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

import msgspec

from ..errors import InvalidRequestError
from .model import PRIORITY_MAX, PRIORITY_MIN, RetryPolicy, TaskSpec
from .settings import Settings

__all__ = [
    "MAX_NAME_LEN",
    "check_json",
    "check_key",
    "check_name",
    "check_spec",
    "check_specs",
    "check_task_name",
    "check_text",
    "check_token",
    "is_result_ref",
    "normalise_spec",
    "result_refs",
]

MAX_NAME_LEN = 200
MAX_KEY_LEN = 256
MAX_LABELS = 32
MAX_DEPENDS = 10_000
#: Latest accepted timestamp: 9999-12-31T23:59:59Z.
MAX_TIME = 253_402_300_799.0
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

#: Queues, labels, resources: safe as one NATS token and in a URL path.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: Region names: no dots or colons, so they can name subjects and streams directly.
REGION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Marks a value to be replaced by a parent's result when the child is leased.
RESULT_REF = "$result"

_MEMO_MAX = 65_536
_ok_names: set[str] = set()
_ok_task_names: set[str] = set()
_ok_tokens: set[str] = set()
_ok_regions: set[str] = set()
_ok_labels: set[tuple[str, ...]] = set()
_ok_retry: set[RetryPolicy] = {RetryPolicy()}


def _bad(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {message}", field=field)


def _remember(memo: set[str] | set[tuple[str, ...]] | set[RetryPolicy], value: object) -> None:
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo.add(value)  # type: ignore[arg-type]


def check_name(value: object, field: str, max_len: int = MAX_NAME_LEN) -> str:
    """A display name: non-empty, printable (no control, format or bidi characters, no lone
    surrogates), NFC-normalised, no surrounding spaces, at most ``max_len`` characters."""
    if type(value) is str and value in _ok_names:
        return value
    if not isinstance(value, str):
        raise _bad(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise _bad(field, "must not be empty")
    if len(value) > max_len:
        raise _bad(field, f"is {len(value)} characters long; the limit is {max_len}")
    if not value.isprintable():
        raise _bad(field, f"contains control or invisible characters: {value[:40]!r}")
    if value != value.strip():
        raise _bad(field, f"has leading or trailing spaces: {value[:40]!r}")
    if not unicodedata.is_normalized("NFC", value):
        raise _bad(field, f"is not NFC-normalised: {value[:40]!r}")
    if max_len == MAX_NAME_LEN:
        _remember(_ok_names, value)
    return value


#: Task names of built-in task types: only this exact spelling may use them, so a worker
#: serving a look-alike ("Shell", or the fullwidth letters) cannot be mistaken for one.
RESERVED_TASK_NAMES = frozenset({"shell"})


def check_task_name(value: object, field: str = "name") -> str:
    """A task name: :func:`check_name`, NFKC-normalised, and not a look-alike of a reserved
    name (case or width)."""
    if type(value) is str and value in _ok_task_names:
        return value
    name = check_name(value, field)
    if not unicodedata.is_normalized("NFKC", name):
        raise _bad(field, f"is not NFKC-normalised: {name[:40]!r}")
    folded = name.casefold()
    if folded in RESERVED_TASK_NAMES and name != folded:
        raise _bad(field, f"{name!r} is reserved: the built-in task type is spelled {folded!r}")
    _remember(_ok_task_names, name)
    return name


def check_text(value: object, field: str, max_len: int) -> str:
    """Free text an operator sees (idempotency keys, worker ids): printable and bounded."""
    if not isinstance(value, str) or not value:
        raise _bad(field, "must be a non-empty string")
    if len(value) > max_len or not value.isprintable():
        raise _bad(field, f"must be at most {max_len} printable characters: {value[:40]!r}")
    return value


def check_key(value: object, field: str) -> str:
    return check_text(value, field, MAX_KEY_LEN)


def check_token(value: object, field: str, region: bool = False) -> str:
    """Queue, label, resource (``[A-Za-z0-9_.:-]{1,64}``) or region (``[A-Za-z0-9_-]{1,64}``)."""
    memo = _ok_regions if region else _ok_tokens
    if type(value) is str and value in memo:
        return value
    pattern = REGION_RE if region else TOKEN_RE
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad(field, f"must match {pattern.pattern}, got {str(value)[:80]!r}")
    _remember(memo, value)
    return value


def check_subject_token(value: object, what: str) -> str:
    """Return ``value`` if it is safe as one NATS subject token, else raise naming the field.

    Anything a user chooses (a region name, the prefix, an event kind) goes through here
    before it is interpolated into a subject: a ``.`` would add tokens, ``*``/``>`` would
    turn a publish into a wildcard and ``$`` reaches the system's own API.
    """
    if not isinstance(value, str) or REGION_RE.fullmatch(value) is None:
        raise InvalidRequestError(
            f"{what} must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-', got {value!r}",
            field=what,
        )
    return value


def check_labels(labels: object, field: str) -> tuple[str, ...]:
    if type(labels) is tuple and labels in _ok_labels:
        return labels
    if not isinstance(labels, tuple | list):
        raise _bad(field, "must be a list of labels")
    if len(labels) > MAX_LABELS:
        raise _bad(field, f"has {len(labels)} labels; the limit is {MAX_LABELS}")
    for i, label in enumerate(labels):
        check_token(label, f"{field}[{i}]")
    out = tuple(labels)
    _remember(_ok_labels, out)
    return out


def check_time(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(field, f"must be epoch seconds, got {type(value).__name__}")
    if not math.isfinite(value) or not 0.0 <= value <= MAX_TIME:
        raise _bad(field, f"must be finite epoch seconds in [0, {MAX_TIME:.0f}], got {value!r}")
    return float(value)


def check_priority(value: object, field: str) -> int:
    if type(value) is not int:
        raise _bad(field, f"must be an integer, got {type(value).__name__}")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise _bad(field, f"must be in [{PRIORITY_MIN}, {PRIORITY_MAX}], got {value}")
    return value


def is_result_ref(value: object) -> bool:
    return type(value) is dict and len(value) == 1 and RESULT_REF in value


def result_refs(value: object) -> list[str]:
    """Every parent named by a {"$result": ref} inside ``value``."""
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is dict:
            assert isinstance(v, dict)
            ref = v.get(RESULT_REF) if len(v) == 1 else None
            if isinstance(ref, str):
                out.append(ref)
            else:
                stack.extend(v.values())
        elif type(v) is list:
            assert isinstance(v, list)
            stack.extend(v)
    return out


def check_json(  # noqa: C901 - one flat loop is the fast form of this hot check
    value: object, field: str, max_depth: int, max_bytes: int
) -> tuple[int, bool]:
    """Check a JSON-compatible value without recursion; return (estimated size, has $result).

    Allowed: str (valid UTF-8), int in int64, finite float, bool, None, list, dict with str keys
    (exactly the types a MessagePack decode yields, so a replayed value equals the live one).
    The size estimate is the UTF-8 length of every string plus 9 bytes per other scalar and 5
    per container header: an upper bound of the MessagePack size, so it never lets an over-limit
    payload through, and cheap enough for the submit path. One flat loop on purpose: this runs
    for every submitted task.
    """
    size = 0
    refs = False
    stack: list[tuple[object, int]] = [(value, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        v, depth = pop()
        t = type(v)
        if t is str:
            assert isinstance(v, str)
            if v.isascii():
                size += len(v) + 5
            else:
                try:
                    size += len(v.encode("utf-8")) + 5
                except UnicodeEncodeError:
                    raise _bad(field, "holds a string that is not valid UTF-8") from None
        elif t is int:
            assert isinstance(v, int)
            if not _INT64_MIN <= v <= _INT64_MAX:
                raise _bad(field, f"holds an integer outside the 64-bit range: {v}")
            size += 9
        elif t is float:
            assert isinstance(v, float)
            if not math.isfinite(v):
                raise _bad(field, f"holds a non-finite number: {v!r}")
            size += 9
        elif v is None or t is bool:
            size += 1
        elif t is list:
            assert isinstance(v, list)
            if depth > max_depth:
                raise _bad(field, f"is nested deeper than {max_depth} levels")
            size += 5
            for item in v:
                push((item, depth + 1))
        elif t is dict:
            assert isinstance(v, dict)
            if depth > max_depth:
                raise _bad(field, f"is nested deeper than {max_depth} levels")
            size += 5
            if len(v) == 1 and RESULT_REF in v:
                if not isinstance(v[RESULT_REF], str):
                    raise _bad(field, f"{RESULT_REF} must name a parent task")
                refs = True
            for k, item in v.items():
                if type(k) is not str:
                    raise _bad(field, f"has a non-string key {k!r}")
                push((k, depth))
                push((item, depth + 1))
        else:
            raise _bad(field, f"holds a {t.__name__}, which is not a JSON value")
        if size > max_bytes:
            raise _bad(field, f"is larger than the limit of {max_bytes} bytes")
    return size, refs


def json_error_path(value: object, path: str, max_depth: int, max_bytes: int) -> str | None:
    """Where in ``value`` :func:`check_json` finds its fault: the path of the innermost part it
    refuses (``args[0][1]``, ``kwargs.y['k']``), None when no one part is (a size over the
    limit). For error messages only, so it may be slow; it recurses at most ``max_depth``."""
    if type(value) is list or type(value) is dict:
        assert isinstance(value, list | dict)
        if max_depth <= 0:
            return path
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and type(key) is not str:
                return path
            found = json_error_path(item, f"{path}[{key!r}]", max_depth - 1, max_bytes)
            if found is not None:
                return found
        return None
    try:
        check_json(value, path, 1, max_bytes)
    except InvalidRequestError:
        return path
    return None


def check_retry(policy: object, field: str) -> RetryPolicy:
    if not isinstance(policy, RetryPolicy):
        raise _bad(field, "must be a retry policy")
    try:
        if policy in _ok_retry:
            return policy
    except TypeError:  # an unhashable retry_on (a list given from Python)
        pass
    if type(policy.max_attempts) is not int or not 1 <= policy.max_attempts <= 1000:
        raise _bad(f"{field}.max_attempts", f"must be in [1, 1000], got {policy.max_attempts!r}")
    for name in ("backoff_base", "backoff_max"):
        v = getattr(policy, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _bad(f"{field}.{name}", f"must be a finite number, got {v!r}")
        if not 0.0 <= v <= 86_400.0:
            raise _bad(f"{field}.{name}", f"must be in [0, 86400] seconds, got {v!r}")
    if policy.backoff_max < policy.backoff_base:
        raise _bad(f"{field}.backoff_max", "must not be below backoff_base")
    j = policy.jitter
    if isinstance(j, bool) or not isinstance(j, int | float) or not 0.0 <= j <= 1.0:
        raise _bad(f"{field}.jitter", f"must be in [0, 1], got {j!r}")
    if len(policy.retry_on) > 100:
        raise _bad(f"{field}.retry_on", "lists more than 100 error types")
    for i, name in enumerate(policy.retry_on):
        check_name(name, f"{field}.retry_on[{i}]")
    if type(policy.retry_on) is tuple:
        _remember(_ok_retry, policy)
    return policy


def normalise_spec(spec: TaskSpec) -> TaskSpec:
    """The spec as a decode of its encoding would give it back (tuples, floats), so the live
    state and one replayed from the log compare equal. Returns ``spec`` itself when canonical."""
    changes: dict[str, object] = {}
    for name in ("labels", "depends_on"):
        value = getattr(spec, name)
        if type(value) is not tuple:
            changes[name] = tuple(value)
    for name in ("run_at", "deadline", "timeout"):
        value = getattr(spec, name)
        if type(value) is int:
            changes[name] = float(value)
    r = spec.retry
    if (
        type(r.backoff_base) is int
        or type(r.backoff_max) is int
        or type(r.jitter) is int
        or type(r.retry_on) is not tuple
    ):
        changes["retry"] = msgspec.structs.replace(
            r,
            backoff_base=float(r.backoff_base),
            backoff_max=float(r.backoff_max),
            jitter=float(r.jitter),
            retry_on=tuple(r.retry_on),
        )
    return msgspec.structs.replace(spec, **changes) if changes else spec


def _check_payload(spec: TaskSpec, settings: Settings) -> bool:
    refs = False
    args, kwargs = spec.args, spec.kwargs
    if type(args) is not list:
        raise _bad("args", "must be a list")
    if type(kwargs) is not dict:
        raise _bad("kwargs", "must be an object")
    budget = settings.max_payload_bytes
    depth = settings.max_json_depth
    used = 0
    if args:
        used = _flat_size(args)
        if used < 0 or used > budget:
            used, refs = check_json(args, "args", depth, budget)
    if kwargs:
        _, krefs = check_json(kwargs, "kwargs", depth, budget - used)
        refs = refs or krefs
    return refs


def _flat_size(values: list[object]) -> int:
    """Size estimate of a list of plain ints and ASCII strings (the common args), or -1 when it
    holds anything else and needs the full ``check_json``."""
    size = 5
    for v in values:
        if type(v) is int:
            if not _INT64_MIN <= v <= _INT64_MAX:
                return -1
            size += 9
        elif isinstance(v, str) and type(v) is str and v.isascii():
            size += len(v) + 5
        else:
            return -1
    return size


def _check_placement(spec: TaskSpec) -> None:
    if spec.run_at is not None:
        check_time(spec.run_at, "run_at")
    if spec.deadline is not None:
        check_time(spec.deadline, "deadline")
    if spec.region is not None:
        check_token(spec.region, "region", region=True)
    if spec.labels:
        check_labels(spec.labels, "labels")
    deps = spec.depends_on
    if not isinstance(deps, tuple | list):
        raise _bad("depends_on", "must be a list of task ids")
    if deps:
        if len(deps) > MAX_DEPENDS:
            raise _bad("depends_on", f"lists more than {MAX_DEPENDS} tasks")
        for i, dep in enumerate(deps):
            if not isinstance(dep, str) or not dep or len(dep) > MAX_KEY_LEN:
                raise _bad(f"depends_on[{i}]", "must be a task id or workflow key")


def check_spec(spec: object, field: str, settings: Settings) -> tuple[TaskSpec, bool]:
    """Validate a TaskSpec (not its ``depends_on`` targets).

    Returns the normalised spec (see ``normalise_spec``) and whether it uses ``$result``.
    Errors name ``field`` plus the path inside the spec (``specs[3].kwargs``).
    """
    try:
        return _check_spec(spec, settings)
    except InvalidRequestError as exc:
        raise prefixed(exc, field) from None


def check_specs(
    specs: Sequence[object], field: str, settings: Settings, suffix: str = ""
) -> list[tuple[TaskSpec, bool]]:
    """``check_spec`` for a batch; errors name ``field[i]suffix``. One call per batch, and the
    field path is formatted only for the spec that failed."""
    out: list[tuple[TaskSpec, bool]] = []
    append = out.append
    try:
        for spec in specs:
            append(_check_spec(spec, settings))
    except InvalidRequestError as exc:
        raise prefixed(exc, f"{field}[{len(out)}]{suffix}") from None
    return out


def prefixed(exc: InvalidRequestError, prefix: str) -> InvalidRequestError:
    """The same error with its field path under ``prefix``."""
    inner = exc.field or ""
    field = f"{prefix}.{inner}" if inner else prefix
    message = exc.message
    message = (
        f"{prefix}.{message}" if inner and message.startswith(inner) else f"{prefix}: {message}"
    )
    return type(exc)(message, field=field, ids=exc.ids)


def _check_spec(spec: object, settings: Settings) -> tuple[TaskSpec, bool]:
    # Each check is an inline test against a memo first; the full check (and the formatting of
    # its error) runs only for values not seen before. This is the submit hot path.
    if type(spec) is not TaskSpec and not isinstance(spec, TaskSpec):
        raise _bad("spec", f"must be a task spec, got {type(spec).__name__}")
    name = spec.name
    if type(name) is not str or name not in _ok_task_names:
        check_task_name(name, "name")
    p = spec.priority
    if type(p) is not int or not PRIORITY_MIN <= p <= PRIORITY_MAX:
        check_priority(p, "priority")
    args, kwargs = spec.args, spec.kwargs
    refs = False
    if args or kwargs or type(args) is not list or type(kwargs) is not dict:
        refs = _check_payload(spec, settings)
    if (
        spec.run_at is not None
        or spec.deadline is not None
        or spec.region is not None
        or spec.labels
        or spec.depends_on
        or type(spec.labels) is not tuple
        or type(spec.depends_on) is not tuple
    ):
        _check_placement(spec)
    retry = spec.retry
    if (
        type(retry) is not RetryPolicy
        or type(retry.retry_on) is not tuple
        or retry not in _ok_retry
    ):
        check_retry(retry, "retry")
    t = spec.timeout
    if t is not None and (
        isinstance(t, bool)
        or not isinstance(t, int | float)
        or not math.isfinite(t)
        or not 0.0 < t <= settings.max_timeout
    ):
        raise _bad("timeout", f"must be in (0, {settings.max_timeout}], got {t!r}")
    if spec.idempotency_key is not None:
        check_key(spec.idempotency_key, "idempotency_key")
    q = spec.queue
    if type(q) is not str or q not in _ok_tokens:
        check_token(q, "queue")
    if spec.resource is not None:
        check_token(spec.resource, "resource")
    if (
        type(spec.labels) is tuple
        and type(spec.depends_on) is tuple
        and type(spec.run_at) is not int
        and type(spec.deadline) is not int
        and type(t) is not int
        and retry in _ok_retry
    ):
        return spec, refs
    return normalise_spec(spec), refs
