"""Generators: declared ranges are enforced at construction; draws stay in range and are seeded."""

from __future__ import annotations

import numpy as np
import pytest

from swarmgym import FAMILIES, DependentChains, LayeredDAG, Mixed, SerialReasoning, WideSearch
from swarmgym.config import SubAgentReliability, SwarmConfig, TokenModel


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
