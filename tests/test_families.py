"""Generators: declared ranges are enforced at construction; draws stay in range and are seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmgym import FAMILIES, DeepResearch, DependentChains, LayeredDAG, Mixed, SerialReasoning, VerifiedPipeline, WideSearch
from swarmgym.config import SubAgentReliability, SwarmConfig, TokenModel
from swarmgym.graph import TaskGraph
from swarmgym.testing.invariants import check_graph
from swarmgym.testing.strategies import generator_params


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family__same_rng_seed_same_graph(name):
    gen = FAMILIES[name]()
    a, b = gen(np.random.default_rng(7)), gen(np.random.default_rng(7))
    assert a.parents == b.parents and np.array_equal(a.work, b.work) and np.array_equal(a.kind, b.kind)


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (WideSearch, {"width": 0}, r"WideSearch: width must be .* 1 <= lo <= hi <= 30"),
        (WideSearch, {"width": (5, 3)}, r"WideSearch: width must be"),
        (WideSearch, {"lookup_work": (1, 65)}, r"lookup_work must be"),
        (WideSearch, {"budget_factor": -1.0}, r"budget_factor must be in \[0.1, 100.0\]"),
        (SerialReasoning, {"depth": 33}, r"depth must be"),
        (DependentChains, {"chains": 8, "length": 5}, r"chains x length must be <= n_max=32"),
        (DependentChains, {"link_prob": 1.5}, r"link_prob must be in \[0.0, 1.0\]"),
        (LayeredDAG, {"parallelism": -0.1}, r"parallelism must be in \[0.0, 1.0\]"),
        (LayeredDAG, {"n_nodes": 1}, r"n_nodes must be"),
        (Mixed, {"weights": [1, -1, 1, 1]}, r"weights must be 4 non-negative numbers"),
        (Mixed, {"families": {"Nope": {}}}, r"families keys must be in"),
    ],
)
def test_family__out_of_range_parameter_names_it_and_its_range(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (WideSearch, {"width": "wide"}, r"width must be an integer or a \(lo, hi\) pair"),
        (WideSearch, {"plan_work": 1.5}, r"plan_work must be an integer"),
        (LayeredDAG, {"parallelism": "high"}, r"parallelism must be a number"),
        (WideSearch, {"colour": 3}, r"unknown parameter\(s\) \['colour'\]"),
        (WideSearch, {"n_max": "big"}, r"n_max must be an integer in \[2, 1024\]"),
    ],
)
def test_family__wrongly_typed_parameter_is_a_type_error(cls, kwargs, message):
    with pytest.raises(TypeError, match=message):
        cls(**kwargs)


def test_wide_search__structure():
    g = WideSearch(width=5, lookup_work=2)(np.random.default_rng(0))
    assert g.n_nodes == 7 and g.parents[0] == () and all(g.parents[i] == (0,) for i in range(1, 6))
    assert g.parents[6] == (1, 2, 3, 4, 5) and g.targets.tolist() == [False] + [True] * 6
    assert g.critical_path == 1 + 2 + 2 and g.total_work == 1 + 10 + 2


def test_serial_reasoning__is_a_chain_scored_on_its_last_step():
    g = SerialReasoning(depth=6)(np.random.default_rng(0))
    assert g.depth() == 6 and g.targets.tolist() == [False] * 5 + [True]
    assert g.critical_path == g.total_work  # no parallelism at all


@pytest.mark.parametrize("p, layers", [(0.0, 12), (1.0, 1), (0.5, 7)])
def test_layered_dag__parallelism_dial_sets_the_number_of_layers(p, layers):
    g = LayeredDAG(n_nodes=12, parallelism=p, edge_prob=0.0)(np.random.default_rng(3))
    assert g.n_nodes == 12 and g.depth() == layers


def test_dependent_chains__without_links_are_independent_chains():
    g = DependentChains(chains=3, length=4, link_prob=0.0)(np.random.default_rng(0))
    assert g.n_edges == 3 * 3 and int(g.targets.sum()) == 3 and g.depth() == 4


def test_dependent_chains__links_cross_chains():
    g = DependentChains(chains=4, length=5, link_prob=1.0)(np.random.default_rng(0))
    assert all(len(g.parents[i]) == 2 for i in range(20) if i % 5)
    assert all(p // 5 != i // 5 for i in range(20) if i % 5 for p in g.parents[i] if p != i - 1)


def test_mixed__draws_every_family():
    gen = Mixed()
    rng = np.random.default_rng(0)
    assert {gen(rng).family for _ in range(60)} == {"WideSearch", "SerialReasoning", "DependentChains", "LayeredDAG"}


@pytest.mark.parametrize(
    "cls, kwargs, exc, message",
    [
        (SwarmConfig, {"max_subagents": -1}, ValueError, r"max_subagents must be in \[0, 64\]"),
        (SwarmConfig, {"max_subagents": 2.5}, TypeError, r"max_subagents must be an integer"),
        (SwarmConfig, {"max_attempts": 0}, ValueError, r"max_attempts must be in \[1, 16\]"),
        (SwarmConfig, {"spawn_ticks": 17}, ValueError, r"spawn_ticks must be in \[0, 16\]"),
        (SwarmConfig, {"max_spawns_per_turn": 0}, ValueError, r"max_spawns_per_turn must be in \[1, 64\]"),
        (SwarmConfig, {"reliability": 3}, TypeError, r"reliability must be a SubAgentReliability"),
        (SubAgentReliability, {"fail_base": (0.1, 0.1)}, ValueError, r"fail_base must be 4 probabilities"),
        (SubAgentReliability, {"wrong_base": (0.1, 0.1, 0.99, 0.1)}, ValueError, r"wrong_base\[reason\] must be in \[0.0, 0.95\]"),
        (SubAgentReliability, {"max_jitter": -1}, ValueError, r"max_jitter must be in \[0, 16\]"),
        (TokenModel, {"handoff_base": -5}, ValueError, r"handoff_base must be in"),
        (TokenModel, {"price_input_per_million": float("nan")}, ValueError, r"price_input_per_million must be in"),
    ],
)
def test_config__bad_values_name_the_field_and_range(cls, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        cls(**kwargs)


def test_config__dict_form_round_trips():
    cfg = SwarmConfig(max_subagents=4, reliability={"max_jitter": 0}, tokens={"result_tokens": 10})
    assert SwarmConfig(**cfg.to_dict()) == cfg


# ------------------------------------------------------------------ the trusted construction path
def _validated_twin(graph, n_max):
    """The graph rebuilt through full validation (TaskGraph(...)) from its defining fields."""
    return TaskGraph(
        graph.work.tolist(),
        graph.kind.tolist(),
        graph.parents,
        np.flatnonzero(graph.targets).tolist(),
        family=graph.family,
        budget_factor=graph.budget_factor,
        n_max=n_max,
    )


def _assert_same_graph(trusted, validated):
    for name in ("parents", "children", "family", "budget_factor", "critical_path", "total_work"):
        assert getattr(trusted, name) == getattr(validated, name), name
    for name in ("work", "kind", "targets", "topo_order", "bottom_level"):
        a, b = getattr(trusted, name), getattr(validated, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name


_TRUSTED_CASES = [
    (WideSearch, {}),
    (WideSearch, {"width": (1, 30), "lookup_work": (1, 64), "plan_work": 64, "merge_work": 64}),
    (SerialReasoning, {}),
    (SerialReasoning, {"depth": (1, 32), "step_work": (1, 64)}),
    (DependentChains, {}),
    (DependentChains, {"chains": (1, 8), "length": (1, 4), "link_prob": 1.0}),
    (DependentChains, {"chains": (2, 6), "length": (2, 5), "link_prob": 0.5}),
    (LayeredDAG, {}),
    (LayeredDAG, {"n_nodes": (2, 32), "parallelism": 0.0, "edge_prob": 1.0}),
    (LayeredDAG, {"n_nodes": (2, 32), "parallelism": 1.0}),
    (LayeredDAG, {"n_nodes": (2, 32), "parallelism": 0.8, "edge_prob": 0.9, "work": (1, 64)}),
    (Mixed, {}),
    (DeepResearch, {}),
    (DeepResearch, {"width": (1, 15), "sections": (1, 1), "cross_read_prob": 1.0, "read_work": (1, 64)}),
    (DeepResearch, {"width": (1, 10), "sections": (1, 10), "cross_read_prob": 0.5}),
    (VerifiedPipeline, {}),
    (VerifiedPipeline, {"pipelines": (1, 8), "stages": (1, 4), "link_prob": 1.0}),
]


@pytest.mark.parametrize("cls, kwargs", _TRUSTED_CASES, ids=lambda x: getattr(x, "name", None) or str(x))
def test_family__trusted_graphs_pass_full_validation_and_equal_the_validated_build(cls, kwargs):
    gen = cls(**kwargs)
    rng = np.random.default_rng(12345)
    for _ in range(400):
        graph = gen(rng)
        _assert_same_graph(graph, _validated_twin(graph, gen.n_max))
        check_graph(graph, gen.n_max)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(FAMILIES)), seed=st.integers(0, 2**32 - 1))
def test_family__trusted_graphs_over_drawn_parameters_equal_the_validated_build(data, name, seed):
    n_max = data.draw(st.integers(max(3, FAMILIES[name].least_n_max()), 64), label="n_max")
    gen = FAMILIES[name](n_max=n_max, **data.draw(generator_params(name, n_max), label="params"))
    rng = np.random.default_rng(seed)
    for _ in range(20):
        graph = gen(rng)
        _assert_same_graph(graph, _validated_twin(graph, gen.n_max))


def test_task_graph__trusted_path_is_used_by_built_in_families_only():
    import inspect

    import swarmgym

    callers = []
    for path in sorted(Path(swarmgym.__file__).parent.rglob("*.py")):
        if "_trusted(" in path.read_text() and path.name != "graph.py":
            callers.append(path.name)
    assert callers == ["families.py"]
    assert "_trusted(" not in inspect.getsource(Mixed)  # Mixed delegates to the families it draws


def test_user_generator__an_invalid_graph_fails_at_every_reset():
    from swarmgym.env import SwarmEnv

    calls = {"n": 0}

    def generator(rng):
        calls["n"] += 1
        # valid for the probe draw at construction, then a cycle
        parents = [(), (0,)] if calls["n"] == 1 else [(1,), (0,)]
        return TaskGraph([1, 1], ["reason", "reason"], parents)

    env = SwarmEnv(generator=generator, n_max=4)
    with pytest.raises(ValueError, match="cycle"):
        env.reset(seed=0)
    with pytest.raises(ValueError, match="cycle"):
        env.reset(seed=1)


def test_mixed__family_draw_equals_numpy_choice_draw_for_draw():
    weights = [0.1, 3.0, 0.0, 2.5]
    gen = Mixed(families={name: {} for name in Mixed.FAMILY_ORDER}, weights=weights)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    p = np.asarray(weights) / sum(weights)
    for _ in range(2000):
        family = gen(a).family
        expected = Mixed.FAMILY_ORDER[int(b.choice(4, p=p))]
        assert family == expected
        gen.generators[Mixed.FAMILY_ORDER.index(family)](b)  # keep b's stream in step with a's
    assert a.random() == b.random()
