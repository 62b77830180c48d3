"""Workflows-v0: the shipped WfCommons pool, coarsening that keeps the dependency structure, the family's invariants."""

from __future__ import annotations

import gzip
import importlib.util
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import swarmgym
from swarmgym import FAMILIES, SwarmEnv, Workflows
from swarmgym.graph import KINDS, MERGE, PLAN, REASON, SEARCH
from swarmgym.testing import check_batched, check_family
from swarmgym.workflows import RECIPES, TASK_KINDS, coarsen, load_pool, task_levels, workflow_graph

ROOT = Path(__file__).resolve().parents[1]
POOL = load_pool()


def node_of(members: list[list[int]], n: int) -> list[int]:
    owner = [-1] * n
    for k, tasks in enumerate(members):
        for i in tasks:
            assert owner[i] == -1, f"task {i} is in two nodes"
            owner[i] = k
    assert -1 not in owner, "a task is in no node"
    return owner


@pytest.mark.parametrize("limit", [1, 2, 5, 12, 31, 64, 300])
def test_coarsen__keeps_every_dependency_and_invents_none(limit):
    for inst in POOL[::7]:
        parents, n = inst["parents"], len(inst["type"])
        members, node_parents = coarsen(inst["type"], parents, limit)
        assert len(members) <= max(limit, 1)
        owner = node_of(members, n)
        task_edges = {(owner[p], owner[i]) for i in range(n) for p in parents[i] if owner[p] != owner[i]}
        node_edges = {(p, k) for k, ps in enumerate(node_parents) for p in ps}
        assert task_edges == node_edges  # every task dependency is kept, and no other
        assert all(p < k for p, k in node_edges)  # nodes come in topological order
        if n <= limit:
            assert members == [[i] for i in range(n)]


def test_coarsen__groups_hold_one_task_type_at_one_level_when_they_fit():
    for inst in POOL[::5]:
        level = task_levels(inst["parents"])
        members, _ = coarsen(inst["type"], inst["parents"], 31)
        for tasks in members:
            assert len({(level[i], inst["type"][i]) for i in tasks}) == 1


def test_coarsen__hand_worked_fan_out_is_split_into_balanced_chunks():
    # split -> 6 parallel tasks (type 1) -> each has its own follow-up (type 2) -> merge (type 3)
    types = [0] + [1] * 6 + [2] * 6 + [3]
    parents = [[]] + [[0]] * 6 + [[1 + k] for k in range(6)] + [list(range(7, 13))]
    members, node_parents = coarsen(types, parents, 8)
    # 4 groups; the 4 spare nodes go to the two wide groups, 2 each: chunks of 2 tasks
    assert members == [[0], [1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13]]
    assert node_parents == [(), (0,), (0,), (0,), (1,), (2,), (3,), (4, 5, 6)]  # pipelines stay aligned


def test_workflow_graph__work_kinds_and_plan_root():
    for index in range(0, len(POOL), 3):
        inst = POOL[index]
        g = workflow_graph(index, 32, max_work=16, plan_work=2)
        several_roots = sum(1 for ps in inst["parents"] if not ps) > 1
        has_plan = int(g.kind[0] == PLAN)
        assert g.n_nodes <= 32 and 1 <= g.work.min() and g.work[has_plan:].max() == 16
        if has_plan:
            assert several_roots and g.work[0] == 2 and all(g.parents[i] for i in range(1, g.n_nodes))
            assert all(p != () for p in g.parents[1:]) and sum(1 for p in g.parents if not p) == 1
        kinds_used = {KINDS[k] for k in g.kind[has_plan:]}
        assert kinds_used <= {KINDS[k] for k in TASK_KINDS[inst["recipe"]].values()}


def test_workflow_graph__an_uncoarsened_workflow_keeps_its_runtime_ratios():
    index = min(range(len(POOL)), key=lambda k: len(POOL[k]["type"]))
    inst = POOL[index]
    n = len(inst["type"])
    g = workflow_graph(index, 1024, max_work=64)
    offset = g.n_nodes - n
    assert offset in (0, 1)
    runtime = np.asarray(inst["runtime"])
    expected = np.maximum(1, np.floor(64 * runtime / runtime.max() + 0.5)).astype(int)
    assert g.work[offset:].tolist() == expected.tolist()


def test_task_kinds__cover_every_task_type_of_the_pool():
    for inst in POOL:
        assert set(inst["types"]) <= set(TASK_KINDS[inst["recipe"]]), inst["recipe"]
    assert set(RECIPES) == {inst["recipe"] for inst in POOL}
    assert {SEARCH, REASON, MERGE} == {k for table in TASK_KINDS.values() for k in table.values()}


def test_workflows__is_a_registered_family_with_its_flat_twin():
    assert FAMILIES["Workflows"] is Workflows
    assert "swarmgym/Workflows-v0" in swarmgym.SUITE_IDS and "swarmgym/Workflows-flat-v0" in swarmgym.SUITE_IDS
    env = gym.make("swarmgym/Workflows-v0")
    obs, info = env.reset(seed=0)
    assert env.unwrapped.n_max == 32 and env.unwrapped.instance.graph.family == "Workflows"
    seen = {gym.make("swarmgym/Workflows-v0").unwrapped.generator(np.random.default_rng(s)).total_work for s in range(30)}
    assert len(seen) > 10  # draws vary over the pool


def test_workflows__recipes_restrict_the_pool_and_bad_ones_are_named():
    only = Workflows(recipes=["Seismology"])
    assert len(only.graphs) == sum(inst["recipe"] == "Seismology" for inst in POOL)
    with pytest.raises(ValueError, match=r"Workflows: recipes must be a non-empty list of names from"):
        Workflows(recipes=["Nope"])
    with pytest.raises(ValueError, match=r"max_work must be in \[1, 64\]"):
        Workflows(max_work=65)
    env = SwarmEnv("Workflows", {"recipes": ["Montage", "Blast"]}, n_max=12)
    env.reset(seed=1)
    assert env.instance.graph.n_nodes <= 12


def test_workflows__keeps_every_invariant():
    check_family("swarmgym/Workflows-v0", batched=False, max_examples=15)
    check_family("swarmgym/Workflows-flat-v0", batched=False, max_examples=4)


def test_workflows__batched_engine_equals_the_reference():
    check_batched("swarmgym/Workflows-v0", num_envs=3, max_examples=10)
    check_batched("swarmgym/Workflows-flat-v0", num_envs=3, max_examples=5, via="make_vec")


def test_pool__is_small_and_loads_from_the_package():
    path = ROOT / "swarmgym" / "data" / "workflows.json.gz"
    assert path.stat().st_size < 200_000 and len(POOL) == 96
    assert gzip.decompress(path.read_bytes())  # a valid gzip file


@pytest.mark.skipif(importlib.util.find_spec("wfcommons") is None, reason='needs wfcommons (pip install "swarmgym[workflows-data]")')
def test_pool__equals_what_the_committed_script_generates():
    script = ROOT / "scripts" / "generate_workflows.py"
    out = subprocess.run(
        [sys.executable, str(script), "--check", str(ROOT / "swarmgym" / "data" / "workflows.json.gz")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "matches" in out.stdout
