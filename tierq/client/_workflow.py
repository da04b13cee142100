"""The workflow builder: tasks plus the edges their arguments imply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.model import FailurePolicy, WorkflowNode, WorkflowSpec
from ..errors import InvalidRequestError
from ._handles import WorkflowHandle, warn_unserved
from ._task import TaskDef, build_spec
from ._validate import SUBMIT_OPTIONS, check_name

if TYPE_CHECKING:
    from ._app import App


class NodeRef:
    """A node of a :class:`Workflow`; pass it as an argument to feed the node's result on."""

    __slots__ = ("_workflow", "key", "name")

    def __init__(self, workflow: Workflow, key: str, name: str) -> None:
        self._workflow = workflow
        self.key = key
        self.name = name

    def __repr__(self) -> str:
        return f"NodeRef({self.key!r})"


class Workflow:
    """Builds a DAG of tasks that is submitted in one request.

    ::

        wf = app.workflow("etl")
        raw = wf.add(extract, "s3://bucket/day.csv")
        rows = wf.add(transform, raw)              # transform(<extract's result>)
        wf.add(load, rows, table="daily")
        run = await wf.submit()
        print(await run.result())                  # {"load": ...}: results of the sinks

    A :class:`NodeRef` given as a positional or keyword argument becomes an edge, and the
    worker receives the parent's result in its place. ``depends_on=[ref, ...]`` adds edges
    that pass nothing.
    """

    def __init__(
        self,
        app: App,
        name: str = "workflow",
        *,
        on_failure: FailurePolicy | str = FailurePolicy.SKIP_DEPENDENTS,
        idempotency_key: str | None = None,
    ) -> None:
        self.app = app
        self.name = check_name(name)
        try:
            self.on_failure = FailurePolicy(on_failure)
        except ValueError:
            choices = ", ".join(p.value for p in FailurePolicy)
            raise InvalidRequestError(
                f"on_failure must be one of {choices}, got {on_failure!r}", field="on_failure"
            ) from None
        self.idempotency_key = idempotency_key
        self._nodes: dict[str, WorkflowNode] = {}
        self._edges: list[tuple[str, str]] = []

    @property
    def keys(self) -> list[str]:
        return list(self._nodes)

    def add(
        self,
        task: TaskDef[Any, Any] | str,
        *args: Any,
        key: str | None = None,
        **kwargs: Any,
    ) -> NodeRef:
        """Add one task; returns its ref. Options as for :meth:`TaskDef.submit`, where
        ``depends_on`` takes refs of this workflow."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SUBMIT_OPTIONS}
        return self.add_with(task, args, kwargs, key=key, **options)

    def add_with(
        self,
        task: TaskDef[Any, Any] | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        **options: Any,
    ) -> NodeRef:
        """Like :meth:`add` with the arguments spelled out (and per-node overrides)."""
        name = task.name if isinstance(task, TaskDef) else check_name(task)
        key = self._new_key(name) if key is None else self._check_key(key)
        parents: list[str] = []
        wire_args = [self._resolve(v, f"args[{i}]", parents) for i, v in enumerate(args)]
        wire_kwargs = {
            k: self._resolve(v, f"kwargs.{k}", parents) for k, v in (kwargs or {}).items()
        }
        after = options.pop("depends_on", None) or ()
        for ref in (after,) if isinstance(after, NodeRef) else after:
            parents.append(self._own(ref, "depends_on").key)
        if "idempotency_key" in options:
            raise InvalidRequestError(
                "idempotency_key belongs to the workflow (app.workflow(..., idempotency_key=))",
                field="idempotency_key",
            )
        spec = build_spec(task, wire_args, wire_kwargs, options)
        self._nodes[key] = WorkflowNode(key=key, spec=spec)
        for parent in dict.fromkeys(parents):
            self._edges.append((parent, key))
        return NodeRef(self, key, name)

    def spec(self) -> WorkflowSpec:
        """The :class:`WorkflowSpec` :meth:`submit` sends."""
        if not self._nodes:
            raise InvalidRequestError(f"workflow {self.name!r} has no tasks", field="nodes")
        return WorkflowSpec(
            nodes=list(self._nodes.values()),
            edges=list(self._edges),
            name=self.name,
            on_failure=self.on_failure,
            idempotency_key=self.idempotency_key,
        )

    async def submit(self) -> WorkflowHandle:
        spec = self.spec()
        reply = await (await self.app.master()).submit_workflow(spec)
        warn_unserved(reply.warnings)
        return WorkflowHandle(
            self.app,
            reply.workflow_id,
            reply.ids,
            sinks=sink_keys(spec),
            name=self.name,
            warnings=reply.warnings,
        )

    def _resolve(self, value: Any, path: str, parents: list[str]) -> Any:
        if isinstance(value, NodeRef):
            parents.append(self._own(value, path).key)
            return {"$result": value.key}
        if _contains_ref(value):
            raise InvalidRequestError(
                f"{path}: a workflow result can only be passed as a whole argument, "
                "not inside a list or dict",
                field=path,
            )
        return value

    def _own(self, ref: Any, path: str) -> NodeRef:
        if not isinstance(ref, NodeRef):
            raise InvalidRequestError(
                f"{path} takes refs returned by this workflow's add(), got {ref!r}", field=path
            )
        if ref._workflow is not self:
            raise InvalidRequestError(f"{path}: {ref!r} belongs to another workflow", field=path)
        return ref

    def _new_key(self, name: str) -> str:
        stem = name.rsplit(".", 1)[-1] or "task"
        key, n = stem, 1
        while key in self._nodes:
            n += 1
            key = f"{stem}-{n}"
        return key

    def _check_key(self, key: Any) -> str:
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise InvalidRequestError("a node key must be 1-128 characters", field="key")
        if key in self._nodes:
            raise InvalidRequestError(f"node key {key!r} is used twice", field="key")
        return key


def _contains_ref(value: Any) -> bool:
    if isinstance(value, NodeRef):
        return True
    if isinstance(value, list | tuple):
        return any(_contains_ref(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_ref(v) for v in value.values())
    return False


def sink_keys(spec: WorkflowSpec) -> list[str]:
    parents = {parent for parent, _ in spec.edges}
    return [node.key for node in spec.nodes if node.key not in parents]
