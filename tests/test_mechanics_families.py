"""The mechanics families (DeepResearch, VerifiedPipeline): their graphs, their registered ids and
the mechanics those ids turn on."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import swarmgym
from swarmgym import DeepResearch, VerifiedPipeline
from swarmgym.graph import KINDS, MERGE, PLAN, REASON, SEARCH
from swarmgym.layout import GLOBAL_COLUMN, ActionLayout

MECHANICS_IDS = (
    "swarmgym/DeepResearch-v0",
    "swarmgym/VerifiedPipeline-v0",
    "swarmgym/DeepResearchHard-v0",
    "swarmgym/VerifiedPipelineHard-v0",
    "swarmgym/LayeredDAGHard-v0",
)


def _kinds(graph) -> list[str]:
    return [KINDS[k] for k in graph.kind]


# ------------------------------------------------------------------ DeepResearch
def test_deep_research__structure_plan_searches_readings_merges():
    gen = DeepResearch(width=(7, 7), sections=(3, 3), cross_read_prob=0.0, search_work=(2, 2), read_work=(4, 4), plan_work=2, merge_work=2)
    g = gen(np.random.default_rng(0))
    w = 7
    assert g.n_nodes == 1 + 2 * w + 3
    assert _kinds(g) == ["plan"] + ["search"] * w + ["reason"] * w + ["merge"] * 3
    assert g.parents[0] == () and all(g.parents[1 + j] == (0,) for j in range(w))
    assert all(g.parents[1 + w + j] == (1 + j,) for j in range(w))  # no cross-reads: each reading needs its own search
    # sections split the readings into contiguous groups 7 // 3: [0, 2), [2, 4), [4, 7)
    assert [g.parents[1 + 2 * w + s] for s in range(3)] == [(8, 9), (10, 11), (12, 13, 14)]
    assert np.flatnonzero(g.targets).tolist() == list(range(1 + w, 1 + 2 * w + 3))  # readings and merges
    assert g.work.tolist() == [2] + [2] * w + [4] * w + [2] * 3
    assert g.critical_path == 2 + 2 + 4 + 2


def test_deep_research__cross_reads_add_the_next_search_and_sections_never_exceed_width():
    g = DeepResearch(width=(3, 3), sections=(5, 5), cross_read_prob=1.0)(np.random.default_rng(1))
    assert [g.parents[4 + j] for j in range(3)] == [(1, 2), (2, 3), (1, 3)]  # the last reading wraps to the first search
    assert _kinds(g).count("merge") == 3 and all(len(g.parents[7 + s]) == 1 for s in range(3))
    one = DeepResearch(width=(1, 1), sections=(1, 1), cross_read_prob=1.0)(np.random.default_rng(2))
    assert one.parents == ((), (0,), (1,), (2,))  # one search: nothing to cross-read


def test_deep_research__draws_the_width_in_its_range_and_is_seeded():
    gen = DeepResearch()
    rng = np.random.default_rng(3)
    widths = {int(np.sum(gen(rng).kind == SEARCH)) for _ in range(300)}
    assert widths == set(range(6, 13))
    a, b = gen(np.random.default_rng(9)), gen(np.random.default_rng(9))
    assert a.parents == b.parents and np.array_equal(a.work, b.work)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"width": (8, 16)}, r"DeepResearch: width must be .* 1 <= lo <= hi <= 15"),
        ({"width": (10, 14), "sections": (1, 4)}, r"1 \+ 2 x width \+ sections must be <= n_max=32 .* got 1 \+ 2 x 14 \+ 4 = 33"),
        ({"cross_read_prob": 1.5}, r"cross_read_prob must be in \[0.0, 1.0\]"),
        ({"sections": 0}, r"sections must be"),
    ],
)
def test_deep_research__bad_parameters_name_themselves_and_their_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeepResearch(**kwargs)


# ------------------------------------------------------------------ VerifiedPipeline
def test_verified_pipeline__chains_of_extract_reason_report_with_chain_ends_as_targets():
    g = VerifiedPipeline(pipelines=(3, 3), stages=(5, 5), link_prob=0.0)(np.random.default_rng(0))
    assert g.n_nodes == 15
    assert _kinds(g) == (["search"] + ["reason"] * 3 + ["merge"]) * 3
    assert all(g.parents[c * 5] == () for c in range(3))
    assert all(g.parents[c * 5 + j] == (c * 5 + j - 1,) for c in range(3) for j in range(1, 5))
    assert np.flatnonzero(g.targets).tolist() == [4, 9, 14]


def test_verified_pipeline__links_join_the_previous_step_of_another_chain():
    g = VerifiedPipeline(pipelines=(4, 4), stages=(4, 4), link_prob=1.0)(np.random.default_rng(5))
    for c in range(4):
        for j in range(1, 4):
            ps = g.parents[c * 4 + j]
            assert c * 4 + j - 1 in ps and len(ps) == 2
            linked = next(p for p in ps if p != c * 4 + j - 1)
            assert linked // 4 != c and linked % 4 == j - 1


def test_verified_pipeline__bad_parameters_name_themselves_and_their_range():
    with pytest.raises(ValueError, match=r"VerifiedPipeline: pipelines x stages must be <= n_max=32 .* got 6 x 6"):
        VerifiedPipeline(pipelines=(3, 6), stages=(4, 6))
    with pytest.raises(ValueError, match=r"link_prob must be in \[0.0, 1.0\]"):
        VerifiedPipeline(link_prob=-0.1)


def test_least_n_max__is_the_smallest_size_every_range_fits():
    assert DeepResearch.least_n_max() == 4 and VerifiedPipeline.least_n_max() == 2
    with pytest.raises(ValueError, match=r"DeepResearch: n_max=3 is too small for this family \(its width needs n_max >= 4\)"):
        DeepResearch(n_max=3, width=1, sections=1)
    DeepResearch(n_max=4, width=1, sections=1)(np.random.default_rng(0))


# ------------------------------------------------------------------ registered ids
@pytest.mark.parametrize("env_id", MECHANICS_IDS)
def test_registered__both_forms_with_every_mechanic_on(env_id):
    assert env_id in swarmgym.SUITE_IDS and swarmgym.flat_id(env_id) in swarmgym.SUITE_IDS
    env = gym.make(env_id).unwrapped
    cfg = env.config
    assert cfg.extended and cfg.verification is not None and cfg.hidden_reliability is not None and cfg.coordination is not None
    assert [t.name for t in cfg.tiers] == ["fast", "careful"]
    assert cfg.progressive == env_id.startswith("swarmgym/DeepResearch")
    assert env.action_space.n == ActionLayout(env.n_max, extended=True).n
    flat = gym.make(swarmgym.flat_id(env_id)).unwrapped
    assert flat.observation_space.shape == (flat.flat_layout.size,) and flat.flat_layout.extended


def test_registered__the_two_v0_families_share_one_public_sub_agent_table():
    a, b = (gym.make(i).unwrapped.config for i in MECHANICS_IDS[:2])
    for field in ("reliability", "tiers", "verification", "hidden_reliability", "max_subagents"):
        assert getattr(a, field) == getattr(b, field), field


def _spec_kwargs(env_id: str) -> dict:
    return gym.spec(env_id).kwargs


def test_registered__layered_dag_hard_is_layered_dag_with_verified_pipeline_hard_s_tiers_and_a_tighter_deadline():
    """docs/families_mechanics.md: LayeredDAG-v0's graphs and reliability, the mechanics' sub-agent table, budget 1.2."""
    base, hard = _spec_kwargs("swarmgym/LayeredDAG-v0"), _spec_kwargs("swarmgym/LayeredDAGHard-v0")
    assert hard["generator"] == base["generator"] == "LayeredDAG"
    assert hard["generator_kwargs"] == {**base["generator_kwargs"], "budget_factor": 1.2}
    assert base["generator_kwargs"]["budget_factor"] == 1.5
    cfg, vph = gym.make("swarmgym/LayeredDAGHard-v0").unwrapped.config, gym.make("swarmgym/VerifiedPipelineHard-v0").unwrapped.config
    for field in ("tiers", "verification", "coordination", "hidden_reliability", "max_subagents"):
        assert getattr(cfg, field) == getattr(vph, field), field
    assert cfg.reliability == gym.make("swarmgym/LayeredDAG-v0").unwrapped.config.reliability  # failures included
    assert not cfg.progressive


@pytest.mark.parametrize(
    ("hard", "generator_changes", "config_changes"),
    [
        (
            "swarmgym/DeepResearchHard-v0",
            {"budget_factor": 1.4},
            {
                ("reliability", "fail_base"): [0.0, 0.0, 0.0, 0.0],
                ("tiers", 1, "error_scale"): 0.1,
                ("verification", "work_percent"): 25,
            },
        ),
        ("swarmgym/VerifiedPipelineHard-v0", {"link_prob": 0.4}, {("reliability", "fail_base"): [0.0, 0.0, 0.0, 0.0]}),
    ],
)
def test_registered__each_hard_id_differs_from_its_family_in_exactly_the_documented_settings(hard, generator_changes, config_changes):
    """docs/families_headroom_search.md chose these settings; everything else is the family's -v0 spec."""
    a, b = _spec_kwargs(hard.replace("Hard-v0", "-v0")), _spec_kwargs(hard)
    assert {k: v for k, v in b["generator_kwargs"].items() if a["generator_kwargs"].get(k) != v} == generator_changes
    changed = {}

    def walk(x, y, path):
        if isinstance(x, dict):
            assert set(x) == set(y), path
            for k in x:
                walk(x[k], y[k], (*path, k))
        elif isinstance(x, list) and x and isinstance(x[0], dict):
            assert len(x) == len(y), path
            for i, (xi, yi) in enumerate(zip(x, y)):
                walk(xi, yi, (*path, i))
        elif x != y:
            changed[path] = y

    walk(a["config"], b["config"], ())
    assert changed == config_changes


def test_deep_research__the_width_is_hidden_until_the_plan_is_done():
    env = gym.make("swarmgym/DeepResearch-v0").unwrapped
    obs, info = env.reset(seed=4)
    g = env.instance.graph
    assert obs["nodes"][:, 0].sum() == 1  # only the plan is visible
    assert obs["globals"][GLOBAL_COLUMN["n_nodes"]] == pytest.approx(1 / env.n_max)
    lay = env.layout
    while env.sim.status[0] != 4:  # the orchestrator does the plan itself
        obs, _, _, _, info = env.step(lay.do + 0)
    width = int(np.sum(g.kind == SEARCH))
    assert obs["nodes"][:, 0].sum() == 1 + width  # the plan and its searches
    assert int(np.sum(g.kind == PLAN)) == 1 and int(np.sum(g.kind == REASON)) == width and int(np.sum(g.kind == MERGE)) >= 1
