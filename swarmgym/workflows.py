"""Workflows: task graphs of real scientific workflows (WfCommons recipes), coarsened to n_max nodes.

The pool (``swarmgym/data/workflows.json.gz``, 96 workflows of 57..248 tasks) was made
offline by ``scripts/generate_workflows.py`` from WfCommons 1.6's WfChef recipes of nine
real workflows -- Blast, BWA, Cycles, Epigenomics, 1000Genome, Montage, Seismology,
SoyKB, SRA search -- with fixed seeds; ``pip install swarmgym`` does not need wfcommons.
Each episode draws one workflow of the pool uniformly (from ``rng``). The family turns
it into a :class:`~swarmgym.graph.TaskGraph` once, at construction:

1. **Coarsening** (only when the workflow has more tasks than fit): tasks are grouped
   by (level, task type), where a task's level is its depth in the DAG (longest chain
   of parents above it). Each group is split into chunks, so that the chunk count
   over all groups fits ``n_max`` (one node is kept free for the plan root when the
   workflow has several entry tasks): every group gets one chunk, then the group
   with the largest chunks gets one more, until the budget of nodes is used. Within a
   group, tasks are ordered by their parents' chunks before being cut into chunks,
   so that pipelines stay aligned (task i of one stage lands with task i of the
   next). A chunk's runtime is the sum of its tasks'; its parents are the chunks
   holding its tasks' parents. If even one chunk per group does not fit, groups are
   merged per level, then consecutive levels are merged into bands (a chain).
2. **Work**: ``work = max(1, round(max_work * runtime / longest runtime))`` per node.
3. **Kinds** from what each task does (:data:`TASK_KINDS`): data gathering (split,
   download, extract) -> search, computation -> reason, aggregation (cat, merge,
   concatenate, joint genotyping, summaries) -> merge.
4. **Plan root**: when the (coarsened) workflow has several entry tasks, a ``plan``
   node of ``plan_work`` becomes the parent of all of them.

Targets are the sinks (the workflow's final outputs). docs/workflows.md lists the
mapping and what coarsening loses.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from importlib import resources
from typing import Any, Sequence

import numpy as np

from swarmgym.families import DEFAULT_N_MAX, FAMILIES, Param, TaskGenerator
from swarmgym.graph import MAX_WORK, MERGE, PLAN, REASON, SEARCH, TaskGraph

#: The pool file inside the package.
POOL_FILE = "workflows.json.gz"

#: Node kind of every task type of the pool, from what the task does.
TASK_KINDS: dict[str, dict[str, int]] = {
    "Blast": {"split_fasta": SEARCH, "blastall": REASON, "cat_blast": MERGE, "cat": MERGE},
    "Bwa": {"fastq_reduce": SEARCH, "bwa_index": REASON, "bwa": REASON, "cat_bwa": MERGE, "cat": MERGE},
    "Cycles": {
        "baseline_cycles": REASON,
        "cycles": REASON,
        "fertilizer_increase_cycles": REASON,
        "cycles_fertilizer_increase_output_parser": REASON,
        "cycles_output_summary": MERGE,
        "cycles_fertilizer_increase_output_summary": MERGE,
        "cycles_plots": REASON,
    },
    "Epigenomics": {
        "fastqSplit": SEARCH,
        "filterContams": REASON,
        "sol2sanger": REASON,
        "fast2bfq": REASON,
        "map": REASON,
        "mapMerge": MERGE,
        "chr21": REASON,
        "pileup": REASON,
    },
    "Genome": {"individuals": SEARCH, "sifting": SEARCH, "individuals_merge": MERGE, "mutation_overlap": REASON, "frequency": REASON},
    "Montage": {
        "mProject": REASON,
        "mDiffFit": REASON,
        "mConcatFit": MERGE,
        "mBgModel": REASON,
        "mBackground": REASON,
        "mImgtbl": MERGE,
        "mAdd": MERGE,
        "mViewer": REASON,
    },
    "Seismology": {"sG1IterDecon": REASON, "wrapper_siftSTFByMisfit": MERGE},
    "Soykb": {
        "alignment_to_reference": REASON,
        "sort_sam": REASON,
        "dedup": REASON,
        "add_replace": REASON,
        "realign_target_creator": REASON,
        "indel_realign": REASON,
        "haplotype_caller": REASON,
        "merge_gcvf": MERGE,
        "genotype_gvcfs": MERGE,
        "combine_variants": MERGE,
        "select_variants_snp": REASON,
        "select_variants_indel": REASON,
        "filtering_snp": REASON,
        "filtering_indel": REASON,
    },
    "Srasearch": {"fasterq-dump": SEARCH, "bowtie2-build": REASON, "bowtie2": REASON, "merge": MERGE},
}
RECIPES: tuple[str, ...] = tuple(TASK_KINDS)


@functools.cache
def load_pool() -> tuple[dict[str, Any], ...]:
    """The shipped workflows (uncoarsened): recipe, types, type per task, runtime, parents."""
    raw = resources.files("swarmgym").joinpath("data", POOL_FILE).read_bytes()
    return tuple(json.loads(gzip.decompress(raw))["instances"])


def task_levels(parents: Sequence[Sequence[int]]) -> list[int]:
    """Depth of each task (0 for entry tasks); tasks must be in topological order."""
    level: list[int] = []
    for ps in parents:
        level.append(1 + max((level[p] for p in ps), default=-1))
    return level


def coarsen(
    task_type: Sequence[int], parents: Sequence[Sequence[int]], limit: int, runtime: Sequence[float] | None = None
) -> tuple[list[list[int]], list[tuple[int, ...]]]:
    """Group tasks into at most ``limit`` nodes, keeping the dependency structure.

    :param task_type: type of each task (tasks in topological order).
    :param parents: parents of each task.
    :param limit: most nodes allowed, >= 1.
    :param runtime: runtime of each task (default 1 each): spare nodes go to the groups
        whose chunks take longest.
    :return: ``(members, node_parents)``: the tasks of each node (nodes in topological
        order) and each node's parents.
    """
    n = len(task_type)
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if n <= limit:
        return [[i] for i in range(n)], [tuple(sorted(set(ps))) for ps in parents]
    level = task_levels(parents)
    groups: dict[tuple[int, int], list[int]] = {}
    for i in range(n):
        groups.setdefault((level[i], task_type[i]), []).append(i)
    keys = sorted(groups)
    cost = {k: sum(runtime[i] for i in groups[k]) if runtime is not None else float(len(groups[k])) for k in keys}
    node_of = [0] * n
    members: list[list[int]] = []
    if len(keys) <= limit:
        chunks = {k: 1 for k in keys}
        spare = limit - len(keys)
        while spare > 0:
            # the group whose chunks take longest gets one more chunk (ties: the earlier group)
            best = max(
                (k for k in keys if chunks[k] < len(groups[k])),
                key=lambda k: (cost[k] / chunks[k], -keys.index(k)),
                default=None,
            )
            if best is None:
                break
            chunks[best] += 1
            spare -= 1
        for key in keys:  # level order: parents are placed before their children
            tasks = sorted(groups[key], key=lambda i: (min((node_of[p] for p in parents[i]), default=-1), i))
            for part in np.array_split(np.asarray(tasks), chunks[key]):
                for i in part.tolist():
                    node_of[i] = len(members)
                members.append(sorted(part.tolist()))
    else:
        depth = max(level) + 1
        for i in range(n):
            node_of[i] = level[i] * min(limit, depth) // depth
        for b in range(min(limit, depth)):
            members.append([i for i in range(n) if node_of[i] == b])
    node_parents = [tuple(sorted({node_of[p] for i in tasks for p in parents[i]} - {k})) for k, tasks in enumerate(members)]
    return members, node_parents


@functools.lru_cache(maxsize=4096)
def _coarse(index: int, n_max: int) -> tuple[list[float], list[int], list[tuple[int, ...]]]:
    """Runtime, kind and parents of each node of pool workflow ``index`` coarsened to ``n_max``
    nodes, the plan root (runtime 0) first when the workflow has several entry tasks."""
    instance = load_pool()[index]
    parents = instance["parents"]
    several_roots = sum(1 for ps in parents if not ps) > 1
    limit = n_max - 1 if several_roots and n_max > 1 else n_max
    members, node_parents = coarsen(instance["type"], parents, limit, instance["runtime"])
    runtime = [sum(instance["runtime"][i] for i in tasks) for tasks in members]
    table = TASK_KINDS.get(instance["recipe"], {})
    kind = []
    for tasks in members:
        share: dict[int, float] = {}
        for i in tasks:  # a merged band takes the kind that holds most of its runtime
            name = instance["types"][instance["type"][i]]
            fallback = MERGE if len(parents[i]) >= 3 else (SEARCH if not parents[i] else REASON)
            kind_i = table.get(name, fallback)
            share[kind_i] = share.get(kind_i, 0.0) + instance["runtime"][i] + 1e-9
        kind.append(max(sorted(share), key=lambda c: share[c]))
    if sum(1 for ps in node_parents if not ps) > 1:
        runtime = [0.0] + runtime
        kind = [PLAN] + kind
        node_parents = [()] + [tuple(p + 1 for p in ps) if ps else (0,) for ps in node_parents]
    return runtime, kind, node_parents


def workflow_graph(index: int, n_max: int, *, max_work: int = 16, plan_work: int = 1, budget_factor: float = 1.5) -> TaskGraph:
    """The task graph of pool workflow ``index`` (see :func:`load_pool`), coarsened to ``n_max``
    nodes, its work scaled so that the longest node has ``max_work`` (see the module docstring)."""
    runtime, kind, parents = _coarse(index, n_max)
    longest = max(runtime)
    work = [max(1, int(math.floor(max_work * r / longest + 0.5))) if longest > 0 else 1 for r in runtime]
    if kind[0] == PLAN:
        work[0] = plan_work
    return TaskGraph(work, kind, parents, None, family="Workflows", budget_factor=budget_factor, n_max=n_max)


@functools.lru_cache(maxsize=64)
def _graphs(n_max: int, max_work: int, plan_work: int, budget_factor: float, recipes: tuple[str, ...]) -> tuple[TaskGraph, ...]:
    pool = [k for k, inst in enumerate(load_pool()) if inst["recipe"] in recipes]
    return tuple(workflow_graph(k, n_max, max_work=max_work, plan_work=plan_work, budget_factor=budget_factor) for k in pool)


class Workflows(TaskGenerator):
    """Real scientific workflows (WfCommons recipes), one drawn per episode, coarsened to
    ``n_max`` nodes. ``recipes`` restricts the pool to some of :data:`RECIPES`.
    Parallelism available: what the workflow has (wide fan-outs in Seismology, Blast,
    BWA; long pipelines in Epigenomics and SoyKB)."""

    name = "Workflows"
    params = (
        Param("max_work", "int", 1, MAX_WORK, 16, "work of the node with the longest runtime; others scale linearly"),
        Param("plan_work", "int", 1, MAX_WORK, 1, "work of the plan root added when a workflow has several entry tasks"),
        Param("budget_factor", "float", 0.1, 100.0, 1.5, "budget = ceil(factor x lower bound)"),
    )

    def __init__(self, n_max: int = DEFAULT_N_MAX, recipes: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(n_max, **kwargs)
        if recipes is None:
            recipes = RECIPES
        if isinstance(recipes, str) or not isinstance(recipes, (list, tuple)) or not recipes or any(r not in RECIPES for r in recipes):
            raise ValueError(f"{self.name}: recipes must be a non-empty list of names from {list(RECIPES)}, got {recipes!r}")
        k = self.kwargs
        self.graphs = _graphs(self.n_max, k["max_work"], k["plan_work"], k["budget_factor"], tuple(sorted(set(recipes))))
        self.kwargs = {**k, "recipes": tuple(sorted(set(recipes)))}

    def generate(self, rng: np.random.Generator) -> TaskGraph:
        return self.graphs[int(rng.integers(len(self.graphs)))]


# the family is known by name wherever swarmgym is imported (SwarmEnv(generator="Workflows"), Mixed, spec files)
FAMILIES[Workflows.name] = Workflows

__all__ = ["RECIPES", "TASK_KINDS", "Workflows", "coarsen", "load_pool", "task_levels", "workflow_graph"]
