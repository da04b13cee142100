"""tierq: a distributed task scheduler for Python, on NATS JetStream.

::

    import tierq

    app = tierq.App()                     # nats://127.0.0.1:4222, or $TIERQ_NATS

    @app.task(retries=2, timeout=30)
    async def add(x: int, y: int) -> int:
        return x + y

    handle = await add.submit(1, 2)
    print(await handle.result())
"""

from .client import (
    App as App,
)
from .client import (
    NodeRef as NodeRef,
)
from .client import (
    PendingTask as PendingTask,
)
from .client import (
    SyncApp as SyncApp,
)
from .client import (
    SyncPendingTask as SyncPendingTask,
)
from .client import (
    SyncTaskHandle as SyncTaskHandle,
)
from .client import (
    SyncWorkflowHandle as SyncWorkflowHandle,
)
from .client import (
    TaskContext as TaskContext,
)
from .client import (
    TaskDef as TaskDef,
)
from .client import (
    TaskHandle as TaskHandle,
)
from .client import (
    TaskPage as TaskPage,
)
from .client import (
    Workflow as Workflow,
)
from .client import (
    WorkflowHandle as WorkflowHandle,
)
from .config import NatsConfig as NatsConfig
from .core.model import (
    PRIORITY_DEFAULT as PRIORITY_DEFAULT,
)
from .core.model import (
    PRIORITY_MAX as PRIORITY_MAX,
)
from .core.model import (
    PRIORITY_MIN as PRIORITY_MIN,
)
from .core.model import (
    FailurePolicy as FailurePolicy,
)
from .core.model import (
    RetryPolicy as RetryPolicy,
)
from .core.model import (
    Task as Task,
)
from .core.model import (
    TaskSpec as TaskSpec,
)
from .core.model import (
    TaskState as TaskState,
)
from .errors import (
    BackpressureError as BackpressureError,
)
from .errors import (
    ChangedSinceReadError as ChangedSinceReadError,
)
from .errors import (
    ConflictError as ConflictError,
)
from .errors import (
    CycleError as CycleError,
)
from .errors import (
    DuplicateTaskError as DuplicateTaskError,
)
from .errors import (
    EngineUnavailableError as EngineUnavailableError,
)
from .errors import (
    FencedError as FencedError,
)
from .errors import (
    GraphTooLargeError as GraphTooLargeError,
)
from .errors import (
    IntakeBehindError as IntakeBehindError,
)
from .errors import (
    InvalidRequestError as InvalidRequestError,
)
from .errors import (
    InvalidTransitionError as InvalidTransitionError,
)
from .errors import (
    NotFoundError as NotFoundError,
)
from .errors import (
    PayloadTooLargeError as PayloadTooLargeError,
)
from .errors import (
    PermissionDeniedError as PermissionDeniedError,
)
from .errors import (
    TaskCancelledError as TaskCancelledError,
)
from .errors import (
    TaskError as TaskError,
)
from .errors import (
    TaskFailedError as TaskFailedError,
)
from .errors import (
    TaskTimeoutError as TaskTimeoutError,
)
from .errors import (
    TierqError as TierqError,
)
from .errors import (
    UnauthenticatedError as UnauthenticatedError,
)
from .errors import (
    UnknownTaskError as UnknownTaskError,
)
from .errors import (
    WaitTimeoutError as WaitTimeoutError,
)

__all__ = [
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


def __getattr__(name: str) -> object:
    # CircuitOpenError left the public API: nothing raises it (an open breaker makes tasks
    # wait in the master's queue, it refuses no caller). The old name keeps working, with a
    # warning, until the next minor release.
    if name == "CircuitOpenError":
        import warnings

        from .errors import CircuitOpenError

        warnings.warn(
            "tierq.CircuitOpenError is deprecated: nothing raises it", DeprecationWarning, 2
        )
        return CircuitOpenError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
