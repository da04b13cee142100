"""Workflow graphs: validation (keys, edges, cycles, size), topological order and levels.

Everything here is iterative and O(V + E): a 100k-node chain must not hit the recursion limit
(Airflow#25898 and dask#525 fixed recursive walks that did).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import (
    CycleError,
    DuplicateTaskError,
    GraphTooLargeError,
    InvalidRequestError,
    UnknownTaskError,
)
from .model import WorkflowSpec
from .validate import check_text

__all__ = ["WorkflowPlan", "find_cycle", "plan_workflow", "topological_levels"]

MAX_KEY_LEN = 128
_SHOW = 10


def _show(ids: Sequence[str]) -> str:
    head = ", ".join(ids[:_SHOW])
    return head + (f" and {len(ids) - _SHOW} more" if len(ids) > _SHOW else "")


class WorkflowPlan:
    """A validated workflow: node indices in topological order, local and external parents."""

    __slots__ = ("external", "order", "parents")

    def __init__(
        self, order: list[int], parents: list[list[int]], external: list[tuple[str, ...]]
    ) -> None:
        #: Node indices, every parent before its children.
        self.order = order
        #: Local parent indices per node.
        self.parents = parents
        #: Parent task ids outside the workflow per node.
        self.external = external

    @property
    def edges(self) -> list[tuple[int, int]]:
        """Deduplicated (parent index, child index) pairs, made on request (submit does not
        need them: 200,000 tuples for a 100,000-node workflow)."""
        return [(p, c) for c, ps in enumerate(self.parents) for p in ps]


def plan_workflow(
    wf: WorkflowSpec,
    max_nodes: int,
    max_edges: int,
    task_exists: Callable[[str], bool],
) -> WorkflowPlan:
    """Validate ``wf`` and return its plan, or raise naming the offending keys."""
    nodes = wf.nodes
    n = len(nodes)
    if n == 0:
        raise InvalidRequestError("nodes: a workflow needs at least one task", field="nodes")
    if n > max_nodes:
        raise GraphTooLargeError(
            f"nodes: the workflow has {n} tasks; the limit is {max_nodes}", field="nodes"
        )
    if len(wf.edges) > max_edges:
        raise GraphTooLargeError(
            f"edges: the workflow has {len(wf.edges)} edges; the limit is {max_edges}",
            field="edges",
        )
    index = _index_keys(wf)
    builder = _Edges(wf, index, task_exists)
    parents = builder.parents
    order = _kahn(n, parents)
    if len(order) < n:
        cycle = find_cycle(n, parents, set(order))
        keys = [nodes[i].key for i in cycle]
        raise CycleError(
            f"edges: dependency cycle {' -> '.join(keys[:_SHOW])}"
            + (" -> ..." if len(keys) > _SHOW else f" -> {keys[0]}"),
            field="edges",
            ids=tuple(keys[:100]),
        )
    return WorkflowPlan(order, parents, builder.external)


def _index_keys(wf: WorkflowSpec) -> dict[str, int]:
    index: dict[str, int] = {}
    dups: list[str] = []
    for i, node in enumerate(wf.nodes):
        key = node.key
        if type(key) is not str or not 0 < len(key) <= MAX_KEY_LEN or not key.isprintable():
            check_text(key, f"nodes[{i}].key", MAX_KEY_LEN)
        if key in index:
            dups.append(key)
        index[key] = i
    if dups:
        raise DuplicateTaskError(
            f"nodes: duplicate keys {_show(dups)}", field="nodes", ids=tuple(dups[:100])
        )
    return index


class _Edges:
    """Collects deduplicated edges from ``edges`` and from each spec's ``depends_on``."""

    def __init__(
        self, wf: WorkflowSpec, index: dict[str, int], task_exists: Callable[[str], bool]
    ) -> None:
        n = len(wf.nodes)
        self.parents: list[list[int]] = [[] for _ in range(n)]
        self.external: list[tuple[str, ...]] = [()] * n
        # An edge p -> c is the int p * n + c here: cheaper to hash than a tuple.
        self.seen: set[int] = set()
        unknown: list[str] = []
        self._from_edges(wf, index, unknown)
        self._from_depends(wf, index, task_exists, unknown)
        if unknown:
            # Unknown and foreign ids answer alike: no existence leak across tenants.
            uniq = list(dict.fromkeys(unknown))
            raise UnknownTaskError(
                f"edges/depends_on name unknown keys or task ids: {_show(uniq)}",
                field="edges",
                ids=tuple(uniq[:100]),
            )

    def _from_edges(self, wf: WorkflowSpec, index: dict[str, int], unknown: list[str]) -> None:
        n = len(wf.nodes)
        parents = self.parents
        seen = self.seen
        get = index.get
        for j, edge in enumerate(wf.edges):
            try:
                pk, ck = edge
            except (TypeError, ValueError):
                raise InvalidRequestError(
                    f"edges[{j}]: an edge is [parent, child]", field=f"edges[{j}]"
                ) from None
            p = get(pk)
            c = get(ck)
            if p is None or c is None:
                unknown.extend(str(k) for k, i in ((pk, p), (ck, c)) if i is None)
                continue
            if p == c:
                _self_loop(ck)
            code = p * n + c
            if code not in seen:
                seen.add(code)
                parents[c].append(p)

    def _from_depends(
        self,
        wf: WorkflowSpec,
        index: dict[str, int],
        task_exists: Callable[[str], bool],
        unknown: list[str],
    ) -> None:
        n = len(wf.nodes)
        parents = self.parents
        seen = self.seen
        get = index.get
        for i, node in enumerate(wf.nodes):
            deps = node.spec.depends_on
            if not deps:
                continue
            ext: list[str] = []
            for dep in deps:
                p = get(dep)
                if p is not None:
                    if p == i:
                        _self_loop(node.key)
                    code = p * n + i
                    if code not in seen:
                        seen.add(code)
                        parents[i].append(p)
                elif task_exists(dep):
                    if dep not in ext:
                        ext.append(dep)
                else:
                    unknown.append(dep)
            if ext:
                self.external[i] = tuple(ext)


def _self_loop(key: str) -> None:
    raise CycleError(f"edges: {key!r} depends on itself", field="edges", ids=(key,))


def _kahn(n: int, parents: list[list[int]]) -> list[int]:
    children: list[list[int]] = [[] for _ in range(n)]
    for c, ps in enumerate(parents):
        for p in ps:
            children[p].append(c)
    indegree = [len(ps) for ps in parents]
    order = [i for i, d in enumerate(indegree) if d == 0]
    # Iterating a list while appending to it visits the appended items too: a FIFO queue.
    for node in order:
        for c in children[node]:
            d = indegree[c] - 1
            indegree[c] = d
            if d == 0:
                order.append(c)
    return order


def find_cycle(n: int, parents: list[list[int]], done: set[int]) -> list[int]:
    """One cycle among the nodes Kahn's algorithm could not order, in edge order.

    Every such node keeps at least one parent that is also unordered, so walking from one to
    such a parent must revisit a node; the revisited stretch is a cycle.
    """
    start = next(i for i in range(n) if i not in done)
    pos: dict[int, int] = {}
    path: list[int] = []
    node = start
    while node not in pos:
        pos[node] = len(path)
        path.append(node)
        node = next(p for p in parents[node] if p not in done)
    cycle = path[pos[node] :]
    cycle.reverse()  # we walked child -> parent; report parent -> child
    return cycle


def topological_levels(ids: Sequence[str], parents: Callable[[str], Sequence[str]]) -> list[int]:
    """Level of each id for drawing: 0 for roots, else 1 + the deepest parent among ``ids``."""
    pos = {tid: i for i, tid in enumerate(ids)}
    local = [[pos[p] for p in parents(tid) if p in pos] for tid in ids]
    order = _kahn(len(ids), local)
    level = [0] * len(ids)
    for i in order:
        for p in local[i]:
            if level[p] + 1 > level[i]:
                level[i] = level[p] + 1
    return level
