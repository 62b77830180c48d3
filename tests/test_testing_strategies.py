"""swarmgym.testing.strategies: graphs, parameters, configs and actions are valid, respect
their knobs, shrink to small examples, and bad knobs are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from swarmgym import FAMILIES, SwarmEnv
from swarmgym.families import Mixed
from swarmgym.graph import KINDS
from swarmgym.testing import check_graph, draw_action, draw_actions, generator_params, swarm_configs, task_graphs

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None)
SHRINK = settings(FAST, phases=(Phase.generate, Phase.shrink))  # for find(): no explain phase


def levels(graph) -> np.ndarray:
    """Nodes on the longest chain ending at each node (1 for roots)."""
    level = np.zeros(graph.n_nodes, dtype=int)
    for i in graph.topo_order:
        level[i] = 1 + max((level[p] for p in graph.parents[i]), default=0)
    return level


@FAST
@given(st.data())
def test_task_graphs__are_valid_and_respect_their_knobs(data):
    n_max = data.draw(st.integers(1, 24), label="n_max")
    width = data.draw(st.integers(1, 6), label="width")
    depth = data.draw(st.integers(1, 8), label="depth")
    lo = data.draw(st.integers(1, min(n_max, width * depth)), label="nodes_lo")
    kinds = data.draw(st.lists(st.sampled_from(KINDS), min_size=1, unique=True), label="kinds")
    graph = data.draw(task_graphs(n_max, nodes=(lo, n_max), width=width, depth=depth, work=(2, 5), kinds=kinds))
    check_graph(graph, n_max)
    assert lo <= graph.n_nodes <= min(n_max, width * depth)
    level = levels(graph)
    assert level.max() <= depth
    assert np.bincount(level).max() <= width
    assert graph.work.min() >= 2 and graph.work.max() <= 5
    assert {KINDS[k] for k in graph.kind} <= set(kinds)


@FAST
@given(task_graphs(12, edge_density=0.0, extra_targets=False, shuffle=False))
def test_task_graphs__zero_density_gives_in_trees_in_topological_order(graph):
    assert all(len(ps) <= 1 for ps in graph.parents)
    assert all(p < i for i, ps in enumerate(graph.parents) for p in ps)
    assert set(np.flatnonzero(graph.targets)) == {i for i, c in enumerate(graph.children) if not c}


def test_task_graphs__shrink_to_the_smallest_graph():
    assert find(task_graphs(16), lambda g: True, settings=SHRINK).n_nodes == 1
    graph = find(task_graphs(16), lambda g: g.n_edges >= 3, settings=SHRINK)
    assert graph.n_edges == 3 and graph.n_nodes <= 4 and graph.total_work == graph.n_nodes


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_max": 0}, "n_max must be an integer in [1, 1024]"),
        ({"width": 0}, "width must be None or an integer >= 1"),
        ({"nodes": (3, 2)}, "nodes must be a number or a (lo, hi) pair"),
        ({"work": (0, 3)}, "work must be a number or a (lo, hi) pair with 1 <= lo <= hi <= 64"),
        ({"edge_density": 1.5}, "edge_density must be a number in [0, 1]"),
        ({"kinds": ("think",)}, "kinds must be a non-empty subset"),
        ({"nodes": 9, "width": 2, "depth": 4}, "width x depth = 2 x 4 cannot hold the minimum of 9 nodes"),
    ],
)
def test_task_graphs__bad_knobs_are_refused_by_name(kwargs, message):
    n_max = kwargs.pop("n_max", 16)
    with pytest.raises(ValueError) as caught:
        task_graphs(n_max, **kwargs)  # refused when the strategy is made, not when it draws
    assert message in str(caught.value)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_generator_params__construct_and_stay_in_the_declared_ranges(family):
    cls = FAMILIES[family]

    @FAST
    @given(generator_params(family, 20, limits={"budget_factor": (0.5, 3.0)}), st.integers(0, 2**16))
    def draws(kwargs, seed):
        generator = cls(n_max=20, **kwargs)  # validates every declared range and cross-check
        if family != "Mixed":
            assert 0.5 <= kwargs["budget_factor"] <= 3.0
        check_graph(generator(np.random.default_rng(seed)), 20)

    draws()


def test_generator_params__dependent_chains_respect_chains_times_length():
    drawn = find(
        generator_params("DependentChains", 12),
        lambda kw: isinstance(kw["chains"], tuple) and isinstance(kw["length"], tuple),
        settings=SHRINK,
    )
    assert drawn["chains"][1] * drawn["length"][1] <= 12


def test_generator_params__bad_family_and_limits_are_refused():
    with pytest.raises(ValueError, match="family must be one of"):
        generator_params("NoSuchFamily")
    with pytest.raises(ValueError, match="limits names unknown parameters"):
        generator_params("WideSearch", limits={"wdith": (1, 2)})
    with pytest.raises(ValueError, match="limits leave width an empty range"):
        generator_params("WideSearch", 8, limits={"width": (10, 12)})


def test_generator_params__mixed_draws_a_subset_of_families():
    kwargs = find(generator_params(Mixed, 16), lambda kw: len(kw["families"]) >= 2, settings=SHRINK)
    assert set(kwargs["families"]) <= set(Mixed.FAMILY_ORDER) and len(kwargs["weights"]) == len(kwargs["families"])


@FAST
@given(swarm_configs())
def test_swarm_configs__are_valid_configs(config):
    assert 0 <= config.max_subagents <= 8 and 1 <= config.max_spawns_per_turn <= 8 and config.spawn_ticks <= 2


@FAST
@given(st.data())
def test_draw_action__only_valid_actions_and_do_only_when_asked(data):
    env = SwarmEnv("LayeredDAG", {"n_nodes": (4, 8)}, n_max=8)
    _, info = env.reset(seed=data.draw(st.integers(0, 100)))
    serial = data.draw(st.booleans())
    for _ in range(30):
        mask = info["action_mask"]
        a = draw_action(data, mask, serial_only=serial)
        assert mask[a]
        if serial:
            assert a < 8 or a == 17
        _, _, terminated, _, info = env.step(a)
        assert not info["invalid_action"]
        if terminated:
            break


def test_draw_action__answer_when_nothing_else_and_refuses_empty_masks():
    mask = np.zeros(10, dtype=bool)
    mask[-1] = True

    @FAST
    @given(st.data())
    def only_answer(data):
        assert draw_action(data, mask) == 9
        assert draw_action(data, mask, answer=True) == 9

    only_answer()
    with pytest.raises(ValueError, match="allows no action"):
        draw_action(None, np.zeros(10, dtype=bool))
    with pytest.raises(ValueError, match=r"1-D bool array of size ActionLayout\(n_max\).n = 2 n_max \+ 2"):
        draw_action(None, np.ones(7, dtype=bool))


@FAST
@given(st.data())
def test_draw_actions__one_valid_action_per_row(data):
    masks = np.zeros((3, 10), dtype=bool)
    masks[0, [1, 4, 9]] = True
    masks[2, [9]] = True
    actions = draw_actions(data, masks)
    assert actions.dtype == np.int64 and actions[0] in (1, 4, 9) and actions[1] == 0 and actions[2] == 9
