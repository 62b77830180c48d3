"""Task instances: a DAG of subtasks, validated, with its scheduling bounds.

A :class:`TaskGraph` is what a generator returns. Nodes are numbered ``0 .. n-1``;
each has ``work`` (agent-steps, an integer >= 1), a ``kind`` (one of :data:`KINDS`)
and a tuple of parents. ``targets`` are the outputs the answer is scored on; by
default every sink (a node nothing depends on) is a target, and every node must
lead to a target (a node nobody needs would be dead work).

The bounds follow scheduling theory (Graham 1969): on ``m + 1`` agents (the
orchestrator and ``m`` sub-agents) no schedule beats
``max(critical path, ceil(total work / (m + 1)))``.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: Node kinds, in the order of the observation's one-hot columns.
KINDS: tuple[str, ...] = ("plan", "search", "reason", "merge")
PLAN, SEARCH, REASON, MERGE = range(len(KINDS))

#: Largest ``work`` a node may have (observations normalise by WORK_SCALE and clip).
MAX_WORK = 64


@dataclass(frozen=True, eq=False)
class TaskGraph:
    """One task instance: a validated DAG of subtasks.

    :param work: agent-steps each node needs, integers >= 1 (length n).
    :param kind: node kinds, indices into :data:`KINDS` or their names (length n).
    :param parents: for each node, the nodes whose outputs it needs.
    :param targets: nodes scored in the answer; default: every sink.
    :param family: name of the family that generated it (used to group metrics).
    :param budget_factor: the critical-step budget is
        ``ceil(budget_factor * lower_bound(max_subagents))``; > 0.
    :param n_max: largest number of nodes allowed (the env's padding size).
    :raises ValueError: naming the offending node, for a cycle, a missing parent,
        work outside ``[1, MAX_WORK]``, an unknown kind, too many nodes, or a
        node that leads to no target.
    """

    work: np.ndarray
    kind: np.ndarray
    parents: tuple[tuple[int, ...], ...]
    targets: np.ndarray
    family: str = "custom"
    budget_factor: float = 2.0
    # derived, filled in __post_init__
    children: tuple[tuple[int, ...], ...] = field(init=False, repr=False)
    topo_order: np.ndarray = field(init=False, repr=False)
    bottom_level: np.ndarray = field(init=False, repr=False)
    critical_path: int = field(init=False)
    total_work: int = field(init=False)

    def __init__(
        self,
        work: Sequence[int],
        kind: Sequence[int | str],
        parents: Sequence[Sequence[int]],
        targets: Sequence[int] | None = None,
        *,
        family: str = "custom",
        budget_factor: float = 2.0,
        n_max: int | None = None,
    ) -> None:
        work_list = list(work)
        n = len(work_list)
        if n < 1:
            raise ValueError("TaskGraph needs at least 1 node, got 0")
        if n_max is not None and (isinstance(n_max, (bool, np.bool_)) or not isinstance(n_max, (int, np.integer))):
            raise TypeError(f"n_max must be None or an integer >= 1, got {n_max!r}")
        if n_max is not None and n > n_max:
            raise ValueError(f"TaskGraph has {n} nodes; n_max allows at most {n_max} (node {n_max} is the first one too many)")
        if not all(type(w) is int for w in work_list):  # slow path only for unusual input
            for i, w in enumerate(work_list):
                if isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer)):
                    raise TypeError(f"node {i}: work must be an integer in [1, {MAX_WORK}], got {w!r}")
            work_list = [int(w) for w in work_list]
        if not 1 <= min(work_list) or not max(work_list) <= MAX_WORK:
            i = next(i for i, w in enumerate(work_list) if not 1 <= w <= MAX_WORK)
            raise ValueError(f"node {i}: work must be in [1, {MAX_WORK}], got {work_list[i]}")
        kinds = list(kind)
        if len(kinds) != n:
            raise ValueError(f"kind has {len(kinds)} entries; work has {n} (one per node)")
        kind_idx = []
        for i, k in enumerate(kinds):
            if type(k) is int and 0 <= k < len(KINDS):
                kind_idx.append(k)
            elif isinstance(k, str):
                if k not in KINDS:
                    raise ValueError(f"node {i}: kind must be one of {KINDS}, got {k!r}")
                kind_idx.append(KINDS.index(k))
            elif isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)) and 0 <= k < len(KINDS):
                kind_idx.append(int(k))
            else:
                raise ValueError(f"node {i}: kind must be a name in {KINDS} or an index in [0, {len(KINDS) - 1}], got {k!r}")
        parents_list = list(parents)
        if len(parents_list) != n:
            raise ValueError(f"parents has {len(parents_list)} entries; work has {n} (one per node)")
        par: list[tuple[int, ...]] = []
        children: list[list[int]] = [[] for _ in range(n)]
        for i, ps in enumerate(parents_list):
            if isinstance(ps, (str, bytes)) or not hasattr(ps, "__iter__"):
                raise TypeError(f"node {i}: parents must be a sequence of node indices, got {ps!r}")
            ps = tuple(ps)
            if not all(type(p) is int for p in ps):  # slow path only for unusual input
                for p in ps:
                    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)):
                        raise TypeError(f"node {i}: parent {p!r} is not a node index (an integer in [0, {n - 1}])")
                ps = tuple(int(p) for p in ps)
            ps = tuple(sorted(ps))
            for p in ps:
                if not 0 <= p < n:
                    raise ValueError(f"node {i}: parent {p} does not exist (nodes are 0..{n - 1})")
                if p == i:
                    raise ValueError(f"node {i}: a node cannot be its own parent (cycle {i} -> {i})")
                children[p].append(i)
            if len(set(ps)) != len(ps):
                raise ValueError(f"node {i}: parent listed twice in {ps}")
            par.append(ps)
        order = _topological_order(par, children)
        if targets is None:
            target_list = [not c for c in children]
        else:
            target_list = [False] * n
            for t in targets:
                if not isinstance(t, (int, np.integer)) or isinstance(t, (bool, np.bool_)):
                    raise TypeError(f"target {t!r} is not a node index (an integer in [0, {n - 1}])")
                if not 0 <= t < n:
                    raise ValueError(f"target {t!r} does not exist (nodes are 0..{n - 1})")
                target_list[int(t)] = True
            if not any(target_list):
                raise ValueError("targets must name at least one node")
        # every node must lead to a target; bottom levels (reverse topological sweep)
        leads = list(target_list)
        bottom = [0] * n
        for i in reversed(order):
            below = 0
            for c in children[i]:
                leads[i] = leads[i] or leads[c]
                if bottom[c] > below:
                    below = bottom[c]
            bottom[i] = work_list[i] + below
        if not all(leads):
            bad = leads.index(False)
            raise ValueError(f"node {bad}: leads to no target (make it a target, or give it a child that is one)")
        if isinstance(budget_factor, (bool, np.bool_)) or not isinstance(budget_factor, (int, float, np.integer, np.floating)):
            raise TypeError(f"budget_factor must be a finite number > 0, got {budget_factor!r}")
        if not (math.isfinite(budget_factor) and budget_factor > 0):
            raise ValueError(f"budget_factor must be a finite number > 0, got {budget_factor!r}")
        if not isinstance(family, str):
            raise TypeError(f"family must be a string (the family's name), got {family!r}")
        self._set_fields(work_list, kind_idx, tuple(par), children, target_list, order, bottom, family, budget_factor)

    @classmethod
    def _trusted(
        cls,
        work: list[int],
        kind: list[int],
        parents: list[tuple[int, ...]],
        targets: list[int] | None,
        *,
        family: str,
        budget_factor: float,
    ) -> "TaskGraph":
        """Build a graph without validating it: the construction path of the built-in
        families of :mod:`swarmgym.families` only, whose every output is valid by
        construction (tests/test_families.py draws many instances per family and checks
        that full validation accepts them and builds equal graphs).

        The inputs must be what validation would produce: ``work`` Python ints in
        ``[1, MAX_WORK]``, ``kind`` indices into :data:`KINDS`, ``parents`` sorted tuples
        of existing nodes forming a DAG, ``targets`` node indices (or None: every sink),
        and every node leading to a target. The derived fields are computed as
        :meth:`__init__` computes them.
        """
        self = object.__new__(cls)
        n = len(work)
        children: list[list[int]] = [[] for _ in range(n)]
        for i, ps in enumerate(parents):
            for p in ps:
                children[p].append(i)
        order = _topological_order(parents, children)
        bottom = [0] * n
        for i in reversed(order):
            below = 0
            for c in children[i]:
                if bottom[c] > below:
                    below = bottom[c]
            bottom[i] = work[i] + below
        if targets is None:
            target_list = [not c for c in children]
        else:
            target_list = [False] * n
            for t in targets:
                target_list[t] = True
        self._set_fields(work, kind, tuple(parents), children, target_list, order, bottom, family, budget_factor)
        return self

    def _set_fields(self, work, kind, parents, children, targets, order, bottom, family, budget_factor) -> None:
        """Store the fields from their (already checked) Python lists (all at once: the dataclass is frozen)."""
        vars(self).update(
            work=np.array(work, dtype=np.int64),
            kind=np.array(kind, dtype=np.int64),
            parents=parents,
            targets=np.array(targets, dtype=bool),
            family=str(family),
            budget_factor=float(budget_factor),
            children=tuple(map(tuple, children)),
            topo_order=np.array(order, dtype=np.int64),
            bottom_level=np.array(bottom, dtype=np.int64),
            critical_path=int(max(bottom)),
            total_work=int(sum(work)),
        )

    @property
    def n_nodes(self) -> int:
        return len(self.work)

    @property
    def n_edges(self) -> int:
        return sum(len(p) for p in self.parents)

    def lower_bound(self, max_subagents: int, fastest_percent: int = 100) -> int:
        """Makespan floor on ``max_subagents + 1`` agents: max(critical path, ceil(work / agents)).

        :param fastest_percent: the fastest agent's time per unit of work, in percent
            (:attr:`SwarmConfig.fastest_percent`; below 100 when a sub-agent tier is faster
            than the orchestrator): both terms scale by it, rounded up.
        """
        p = fastest_percent
        return max(-(-self.critical_path * p // 100), -(-self.total_work * p // (100 * (max_subagents + 1))))

    def ideal_speedup(self, max_subagents: int) -> float:
        """Serial time over the makespan floor: the most parallelism this task admits."""
        return self.total_work / self.lower_bound(max_subagents)

    def budget(self, max_subagents: int) -> int:
        """Critical-step budget: ``ceil(budget_factor * lower_bound)``, at least 1 (the floor at the orchestrator's speed, whatever the tiers)."""
        return max(1, math.ceil(self.budget_factor * self.lower_bound(max_subagents) - 1e-9))

    def depth(self) -> int:
        """Number of nodes on the longest chain (ignoring work)."""
        level = np.zeros(self.n_nodes, dtype=np.int64)
        for i in self.topo_order:
            level[i] = 1 + max((level[p] for p in self.parents[i]), default=0)
        return int(level.max())

    def __repr__(self) -> str:
        return (
            f"TaskGraph(family={self.family!r}, n_nodes={self.n_nodes}, n_edges={self.n_edges}, "
            f"total_work={self.total_work}, critical_path={self.critical_path}, "
            f"targets={int(self.targets.sum())}, budget_factor={self.budget_factor})"
        )


def _topological_order(parents: list[tuple[int, ...]], children: list[list[int]]) -> list[int]:
    """Kahn's algorithm, smallest index first (``parents``: sorted tuples); raises ValueError naming a node on a cycle."""
    n = len(parents)
    for i, ps in enumerate(parents):
        if ps and ps[-1] >= i:  # a parent after its child (parent tuples are sorted)
            break
    else:  # every parent precedes its child: smallest-index-first Kahn visits 0, 1, ..., n-1
        return list(range(n))
    indegree = [len(p) for p in parents]
    heap = [i for i in range(n) if indegree[i] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for c in children[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(heap, c)
    if len(order) < n:
        # walk parents from an unresolved node until a node repeats: that is a cycle
        remaining = {i for i in range(n) if indegree[i] > 0}
        node = min(remaining)
        seen: list[int] = []
        while node not in seen:
            seen.append(node)
            node = next(p for p in parents[node] if p in remaining)
        cycle = seen[seen.index(node) :] + [node]
        raise ValueError(f"node {node}: is on a cycle ({' -> '.join(map(str, reversed(cycle)))}); a task graph must be acyclic")
    return order
