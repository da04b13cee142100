"""What a region accepts from workers: the master's rules, checked at the door.

Everything a worker sends is refused here, with an error naming the field, when the master
would refuse it later; by then the worker's report is part of a batch with other workers'
news, and the region could only drop it. The limits are the master's (worker ids and task
names) and the worker's own (concurrency).
"""

from __future__ import annotations

import math
import re

import msgspec

from ..core.validate import check_name, check_text, check_token
from ..errors import InvalidRequestError
from ..protocol import PullRequest, RegisterWorkerRequest, WorkerHeartbeat, WorkerReport

#: Longest worker id; the master refuses longer ones in reports.
MAX_WORKER_ID = 256
#: The most attempts one worker may run at once (``tierq worker --concurrency``).
MAX_CONCURRENCY = 10_000
#: Task types one worker may register (the master's limit for a whole region).
MAX_TASK_TYPES = 10_000
#: Longest a pull may be parked.
MAX_PULL_WAIT = 30.0
#: A worker's probe subject: a reply inbox, nothing the region could be made to call.
_PROBE_RE = re.compile(r"_INBOX[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+){1,8}")
#: The most attempts one heartbeat may list.
MAX_RUNNING = 2 * MAX_CONCURRENCY


def check_worker_id(value: object) -> str:
    return check_text(value, "worker", MAX_WORKER_ID)


def check_register(req: RegisterWorkerRequest) -> None:
    check_worker_id(req.worker)
    if not 1 <= req.concurrency <= MAX_CONCURRENCY:
        raise InvalidRequestError(
            f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {req.concurrency}",
            field="concurrency",
        )
    if len(req.task_types) > MAX_TASK_TYPES:
        raise InvalidRequestError(
            f"at most {MAX_TASK_TYPES} task types, got {len(req.task_types)}",
            field="task_types",
        )
    # The same rule as task names at submission: a type the master would refuse must not
    # reach the region's own registration.
    for i, name in enumerate(req.task_types):
        check_name(name, f"task_types[{i}]")
    if not set(req.declared) <= set(req.task_types) or any(
        spec.name != name for name, spec in req.declared.items()
    ):
        raise InvalidRequestError(
            "declared: options only for the task types registered, by their names",
            field="declared",
        )
    check_token(req.pool, "pool")
    if req.host:
        check_text(req.host, "host", 256)
    if not 0 <= req.pid < 1 << 32:
        raise InvalidRequestError(f"pid must be a process id, got {req.pid}", field="pid")
    if req.probe and (len(req.probe) > 128 or not _PROBE_RE.fullmatch(req.probe)):
        # The region sends requests there: only a reply inbox, never another subject.
        raise InvalidRequestError(
            f"probe must be an inbox subject (_INBOX...), got {req.probe[:80]!r}", field="probe"
        )


def check_pull(req: PullRequest) -> None:
    check_worker_id(req.worker)
    if not 0 <= req.slots <= MAX_CONCURRENCY:
        raise InvalidRequestError(
            f"slots must be between 0 and {MAX_CONCURRENCY}, got {req.slots}", field="slots"
        )
    if not math.isfinite(req.wait) or req.wait < 0:
        raise InvalidRequestError(
            f"wait must be a number of seconds >= 0, got {req.wait!r}", field="wait"
        )


def check_heartbeat(req: WorkerHeartbeat) -> None:
    check_worker_id(req.worker)
    if len(req.running) > MAX_RUNNING:
        raise InvalidRequestError(
            f"at most {MAX_RUNNING} running attempts, got {len(req.running)}", field="running"
        )


def check_report(req: WorkerReport) -> None:
    check_worker_id(req.worker)


def cancelled_id(data: bytes) -> str | None:
    """The task id of a ``task_cancelled`` event (JSON); None for anything else."""
    try:
        event = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    task_id = event.get("id") if isinstance(event, dict) else None
    return task_id if isinstance(task_id, str) else None
