"""The suite's own property-based tests, written with swarmgym.testing (issue 2's list):

every graph is acyclic and within its family's declared ranges; observations stay
in the space; critical steps >= lower bound; speedup <= ideal speedup; no node
starts before its parents are done; tokens never decrease; every episode ends by
the budget; score in [0, 1]; serial-only play gives speedup 1 and no spawns; masks
never allow an action the env then rejects; the batched engine equals the reference.
Each property is an invariant of swarmgym.testing.INVARIANTS, checked after every
step of hypothesis-drawn episodes (see swarmgym/testing/invariants.py).
"""

from __future__ import annotations


import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import swarmgym
from swarmgym import FAMILIES, SwarmEnv
from swarmgym.families import Fixed, Mixed, TaskGenerator
from swarmgym.testing import (
    PROFILES,
    check_batched,
    check_family,
    drawn_policy,
    generator_params,
    run_episode,
    seeds,
    swarm_configs,
    task_graphs,
)

CI = PROFILES["ci"]
SUITE_EXAMPLES = 100  # the suite's own check goes deeper than a user's default (40)
DICT_IDS = [i for i in swarmgym.SUITE_IDS if "-flat-" not in i]
# small work and budgets keep the drawn episodes short; every other range is the declared one
SMALL = {"budget_factor": (0.3, 3.0), "lookup_work": (1, 6), "step_work": (1, 6), "work": (1, 6), "plan_work": (1, 6), "merge_work": (1, 6)}


@pytest.mark.parametrize("env_id", swarmgym.SUITE_IDS)
def test_suite__every_id_keeps_every_invariant(env_id):
    # Workflows episodes take about ten times the steps of the synthetic families' (work up to 16 per
    # node, 32 nodes): 20 of them cost about what 100 synthetic ones do
    examples = 20 if "Workflows" in env_id else SUITE_EXAMPLES
    check_family(env_id, batched=False, max_examples=examples)


@pytest.mark.parametrize("env_id", swarmgym.SUITE_IDS)
def test_batched__equals_the_reference_on_drawn_episodes(env_id):
    if env_id in DICT_IDS:  # the tensor engine, then gymnasium.make_vec on the same episodes
        check_batched(env_id, num_envs=3, max_examples=25)
    else:  # the flat twin: the same engine underneath, so only make_vec's flat encoding is new
        check_batched(env_id, num_envs=3, max_examples=10, via="make_vec")


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def assert_within_declared_ranges(generator: TaskGenerator, graph) -> None:
    """The graph's shape and work lie in the ranges the generator was given."""
    if isinstance(generator, Mixed):
        (generator,) = [g for g in generator.generators if g.name == graph.family]
    k, n, work = generator.kwargs, graph.n_nodes, graph.work

    def within(values, pair, what):
        lo, hi = _pair(pair)
        values = np.atleast_1d(values)
        assert lo <= values.min() and values.max() <= hi, f"{generator.name}: {what} {values.tolist()} outside [{lo}, {hi}]"

    name = generator.name
    if name == "WideSearch":
        within(n - 2, k["width"], "width")
        within(work[1:-1], k["lookup_work"], "lookup work")
        assert (work[0], work[-1]) == (k["plan_work"], k["merge_work"])
    elif name == "SerialReasoning":
        within(n, k["depth"], "depth")
        within(work, k["step_work"], "step work")
    elif name == "DependentChains":
        chains = int(graph.targets.sum())
        within(chains, k["chains"], "chains")
        assert n % chains == 0
        within(n // chains, k["length"], "length")
        within(work, k["step_work"], "step work")
    elif name == "LayeredDAG":
        within(n, k["n_nodes"], "n_nodes")
        within(work, k["work"], "work")
    elif name == "Workflows":
        plan = int(graph.kind[0] == 0)  # the plan root of a workflow with several entry tasks
        assert work[plan:].max() == k["max_work"] and (not plan or work[0] == k["plan_work"])
    elif name == "DeepResearch":
        width = int(np.sum(graph.kind == 1))  # searches
        within(width, k["width"], "width")
        within(n - 1 - 2 * width, (min(k["sections"][0], width), k["sections"][1]), "sections")
        within(work[1 : 1 + width], k["search_work"], "search work")
        within(work[1 + width : 1 + 2 * width], k["read_work"], "read work")
        assert work[0] == k["plan_work"] and (work[1 + 2 * width :] == k["merge_work"]).all()
    elif name == "VerifiedPipeline":
        chains = int(graph.targets.sum())
        within(chains, k["pipelines"], "pipelines")
        assert n % chains == 0
        within(n // chains, k["stages"], "stages")
        within(work, k["step_work"], "step work")
    else:  # pragma: no cover - a new family needs its ranges here
        raise AssertionError(f"no declared-range check for family {name}")
    assert graph.budget_factor == k["budget_factor"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_families__any_declared_parameters_keep_every_invariant(family):
    n_max = 16

    @settings(CI, max_examples=SUITE_EXAMPLES)
    @given(kwargs=generator_params(family, n_max, limits=SMALL), seed=seeds(), data=st.data())
    def episode(kwargs, seed, data):
        env = SwarmEnv(family, kwargs, n_max=n_max)
        twin = SwarmEnv(family, kwargs, n_max=n_max)
        run_episode(env, seed, drawn_policy(data, 120), twin=twin, target=f"<factory>SwarmEnv({family!r}, {kwargs!r}, n_max={n_max})")
        assert_within_declared_ranges(env.generator, env.instance.graph)  # graph validity itself: INVARIANTS['graph_valid']

    episode()


@settings(CI, max_examples=2 * SUITE_EXAMPLES)
@given(
    graph=task_graphs(12, work=(1, 6)),
    config=swarm_configs(),
    mode=st.sampled_from(["dict", "flat"]),
    adjacency=st.booleans(),
    seed=seeds(),
    data=st.data(),
)
def test_any_graph_and_config__keeps_every_invariant(graph, config, mode, adjacency, seed, data):
    def make():
        return SwarmEnv(Fixed(graph), config=config, n_max=12, observation_mode=mode, with_adjacency=adjacency)

    run_episode(make(), seed, drawn_policy(data, 120), twin=make(), target=f"<factory>SwarmEnv(Fixed({graph!r}), config={config!r})")


@pytest.mark.parametrize("env_id", DICT_IDS)
def test_serial_play__speedup_one_and_no_spawns(env_id):
    env = gym.make(env_id)
    lay = env.unwrapped.layout

    def first_do(mask, step):
        do = np.flatnonzero(lay.block(mask, "do"))
        return lay.do + int(do[0]) if do.size else lay.answer

    for seed in range(3):
        record = run_episode(env, seed, first_do, target=repr(env_id))  # checks 'serial_play' among the rest
        m = record.metrics
        assert m["n_spawned"] == 0 and m["speedup"] == 1.0 and m["critical_steps"] == m["serial_steps"]
