"""The Python SDK: declare tasks, submit them alone or as workflows, wait for results.

::

    app = tierq.App("nats://127.0.0.1:4222")

    @app.task(retries=2, timeout=30)
    async def add(x: int, y: int) -> int:
        return x + y

    handle = await add.submit(1, 2, priority=5)
    assert await handle.result(timeout=10) == 3

The connection is opened on first use, once per event loop, and reused; close it with
``await app.close()`` or ``async with app:``. Code without an event loop uses :attr:`App.sync`
(a :class:`SyncApp`). Workers find tasks by importing the modules that define them and
collecting every :class:`App` they hold, so the ``App`` a module creates needs no connection
settings that match the worker's.
"""

from ._app import App as App
from ._context import ProgressCallback as ProgressCallback
from ._context import TaskContext as TaskContext
from ._handles import TaskHandle as TaskHandle
from ._handles import TaskPage as TaskPage
from ._handles import WorkflowHandle as WorkflowHandle
from ._handles import task_result as task_result
from ._pipeline import PendingTask as PendingTask
from ._schedules import Schedules as Schedules
from ._schedules import declare_all as declare_all
from ._schedules import schedule_spec as schedule_spec
from ._sync import SyncApp as SyncApp
from ._sync import SyncPendingTask as SyncPendingTask
from ._sync import SyncTaskHandle as SyncTaskHandle
from ._sync import SyncWorkflowHandle as SyncWorkflowHandle
from ._task import TaskDef as TaskDef
from ._task import build_spec as build_spec
from ._validate import OVERRIDE_OPTIONS as OVERRIDE_OPTIONS
from ._validate import SUBMIT_OPTIONS as SUBMIT_OPTIONS
from ._validate import retry_policy as retry_policy
from ._workflow import NodeRef as NodeRef
from ._workflow import Workflow as Workflow

__all__ = [
    "OVERRIDE_OPTIONS",
    "SUBMIT_OPTIONS",
    "App",
    "NodeRef",
    "PendingTask",
    "ProgressCallback",
    "Schedules",
    "SyncApp",
    "SyncPendingTask",
    "SyncTaskHandle",
    "SyncWorkflowHandle",
    "TaskContext",
    "TaskDef",
    "TaskHandle",
    "TaskPage",
    "Workflow",
    "WorkflowHandle",
    "build_spec",
    "declare_all",
    "retry_policy",
    "schedule_spec",
    "task_result",
]
