"""The orchestration mechanics of docs/mechanics.md, each in an episode worked out by hand.

Tiny graphs, hand-made fates, every number asserted. Token arithmetic uses the default
TokenModel: a timed turn costs 800 in + 100 out; a hand-off 150 + 300 per parent, written
(output) and read (input); a running sub-agent 400 in + 150 out per tick; a returned result
200 out + 200 in; a verify re-reads 200 + 300 per parent. Prices: $0.60 / M input,
$3.00 / M output.

Extended layout for N_MAX = 8: do 0..7, spawn 8..15, wait 16, answer 17, verify 18..25,
spawn_1 26..33, spawn_2 34..41.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import swarmgym
from swarmgym import Fates, Fixed, SubAgentReliability, SwarmConfig, SwarmEnv, TaskGraph, TaskInstance, draw_fates
from swarmgym.config import MAX_TIERS, CoordinationTax, SubAgentTier, Verification
from swarmgym.layout import (
    BLOCKED,
    DONE,
    GLOBAL_COLUMN,
    GLOBAL_FEATURES,
    METRIC_KEYS,
    NODE_COLUMN,
    NODE_FEATURES,
    READY,
    RESULTS_HALF,
    ActionLayout,
    FlatLayout,
    global_features,
    node_features,
)
from swarmgym.registration import uses_mechanics
from swarmgym.simulator import FAIL, OK, WRONG, SwarmSimulator, subagent_probabilities
from swarmgym.testing import drawn_policy, run_episode, seeds, swarm_configs, task_graphs

N_MAX = 8
LAYOUT = ActionLayout(N_MAX, extended=True)
DO, SPAWN, WAIT, ANSWER = LAYOUT.do, LAYOUT.spawn, LAYOUT.wait, LAYOUT.answer
VERIFY, SPAWN_1, SPAWN_2 = LAYOUT.verify, LAYOUT.spawn_tier(1), LAYOUT.spawn_tier(2)
PERFECT = SubAgentReliability.perfect()


def price(input_tokens: int, output_tokens: int) -> float:
    return (input_tokens * 0.60 + output_tokens * 3.00) / 1e6


def make_env(graph: TaskGraph, duration, outcome, **config) -> tuple[SwarmEnv, TaskInstance]:
    """An env on ``graph`` with hand-made fates ``[n, attempts, tiers]`` (``[n, attempts]`` is one tier)."""
    cfg = SwarmConfig(reliability=PERFECT, **config)
    assert cfg.extended
    duration, outcome = np.array(duration, dtype=np.int64), np.array(outcome, dtype=np.int64)
    if duration.ndim == 2:
        duration, outcome = duration[:, :, None], outcome[:, :, None]
    env = SwarmEnv(generator=Fixed(graph), config=cfg, n_max=N_MAX, with_adjacency=True)
    return env, TaskInstance(graph, Fates(duration, outcome, np.ones(cfg.n_tiers)))


def step(env: SwarmEnv, action: int):
    assert env.action_masks()[action], f"{env.describe_action(action)} should be valid"
    obs, reward, terminated, truncated, info = env.step(action)
    assert not info["invalid_action"] and not truncated
    return obs, reward, terminated, info


def row(obs, i: int, name: str) -> float:
    return float(obs["nodes"][i, NODE_COLUMN[name]])


def glob(obs, name: str) -> float:
    return float(obs["globals"][GLOBAL_COLUMN[name]])


# ---------------------------------------------------------------------------------------------
# verification: a caught wrong result invalidates everything built on it


def verify_graph() -> TaskGraph:
    """plan 0 (1) -> search 1 (2) -> {reason 2 (1) -> reason 3 (1), search 4 (2)}; targets 3 and 4."""
    return TaskGraph(
        [1, 2, 1, 1, 2], ["plan", "search", "reason", "reason", "search"], [(), (0,), (1,), (2,), (1,)], targets=[3, 4], budget_factor=4.0
    )


def test_verify__catching_a_wrong_result_cancels_a_running_descendant_and_resets_a_done_grandchild():
    graph = verify_graph()
    # node 1: attempt 1 wrong (2 ticks), attempt 2 right (2 ticks); node 4: 5 ticks
    duration = [[1, 1, 1], [2, 2, 2], [1, 1, 1], [1, 1, 1], [5, 5, 5]]
    outcome = [[OK] * 3, [WRONG, OK, OK], [OK] * 3, [OK] * 3, [OK] * 3]
    env, inst = make_env(
        graph, duration, outcome, max_subagents=2, verification=Verification(base_ticks=1, work_percent=50, ticks_per_parent=1)
    )
    obs, info = env.reset(seed=0, options={"instance": inst})
    sim = env.sim
    assert sim.budget == 20  # ceil(4 * lower bound 5)
    assert env.action_space.n == LAYOUT.n == 5 * N_MAX + 2
    step(env, DO + 0)  # t=1: plan done
    step(env, SPAWN + 1)  # hand-off 150 + 300; returns at t=3
    obs, *_ = step(env, WAIT)  # t=3: node 1 comes back, silently wrong
    assert sim.t == 3 and sim.status[1] == DONE and sim.result_wrong[1] and sim.done_by_subagent[1]
    assert row(obs, 1, "by_subagent") == 1.0 and row(obs, 1, "verified") == 0.0 and row(obs, 1, "attempt_tier") == pytest.approx(1 / 3)
    step(env, DO + 2)  # t=4: node 2 done by the orchestrator, node 3 ready
    step(env, SPAWN + 4)  # returns at t=9
    obs, _, _, info = step(env, DO + 3)  # t=5: node 3 (a grandchild of 1) done
    mask = info["action_mask"]
    assert LAYOUT.block(mask, "verify").tolist() == [
        False,
        True,
        False,
        False,
        False,
        False,
        False,
        False,
    ]  # only node 1 came from a sub-agent
    assert sim.n_done == 4 and sim.n_targets_done == 1
    # verify(1): 1 + 2 * 50 // 100 + 1 * 1 parent = 3 ticks, t=5 -> 8; the running sub-agent on node 4 (due at 9) is cancelled
    obs, _, _, info = step(env, VERIFY + 1)
    assert sim.t == 8 and sim.verify_ticks == 3
    assert (sim.n_verified, sim.n_caught, sim.n_invalidated, sim.n_cancelled) == (1, 1, 3, 1)
    assert sim.status.tolist() == [DONE, READY, BLOCKED, BLOCKED, BLOCKED]
    assert sim.running == [] and sim.running_tier == [0] and sim.n_done == 1 and sim.n_targets_done == 0
    assert sim.last_failed[1] and not sim.done_by_subagent[1] and not sim.result_wrong[1] and sim.work_left[1] == 2
    assert sim.unfinished_parents.tolist() == [0, 0, 1, 1, 1] and sim.attempts.tolist() == [0, 1, 0, 0, 1]
    assert sim.verified_tier == [1] and sim.caught_tier == [1]
    # the observation: node 1 looks like a failed attempt; its descendants are blocked again
    assert row(obs, 1, "status_ready") == 1.0 and row(obs, 1, "last_attempt_failed") == 1.0 and row(obs, 1, "by_subagent") == 0.0
    assert [row(obs, i, "status_blocked") for i in (2, 3, 4)] == [1.0, 1.0, 1.0]
    assert row(obs, 4, "subagent_elapsed") == 0.0 and row(obs, 4, "attempts") == pytest.approx(1 / 3)
    assert glob(obs, "tier0_caught_rate") == 1.0 and glob(obs, "results_read") == pytest.approx(1 / (1 + RESULTS_HALF))
    assert not LAYOUT.block(info["action_mask"], "verify").any()
    # redo: node 1 again by a sub-agent (attempt 2, right), then the rest by hand
    step(env, SPAWN + 1)  # returns at t=10
    step(env, WAIT)  # t=10
    for a in (DO + 2, DO + 3, DO + 4, DO + 4):  # t=11, 12, 13, 14
        step(env, a)
    _, reward, terminated, info = step(env, ANSWER)
    m = info["metrics"]
    assert terminated and reward == 1.0 and m["score"] == 1.0
    assert m["critical_steps"] == 14 and m["serial_steps"] == 7 and m["lower_bound"] == 5
    # 10 timed turns (8000 in, 1000 out), 3 hand-offs of 450, 8 sub-agent ticks (2 + 1 + 3 + 2),
    # 2 results, one verify re-read of 200 + 300
    assert m["input_tokens"] == 8000 + 3 * 450 + 8 * 400 + 2 * 200 + 500 == 13450
    assert m["output_tokens"] == 1000 + 3 * 450 + 8 * 150 + 2 * 200 == 3950
    assert m["cost_usd"] == pytest.approx(price(13450, 3950)) and m["cost_usd"] == pytest.approx(0.01992)
    # the tier's tokens: its hand-offs read and steps (in), its steps and results written (out)
    assert m["cost_usd_tier0"] == pytest.approx(price(3 * 450 + 8 * 400, 8 * 150 + 2 * 200))
    assert (m["spawned_tier0"], m["spawned_tier1"], m["spawned_tier2"], m["cost_usd_tier1"], m["cost_usd_tier2"]) == (3, 0, 0, 0.0, 0.0)
    assert (m["n_spawned"], m["n_subagent_ok"], m["n_subagent_wrong"], m["n_subagent_failed"]) == (3, 1, 1, 0)
    assert (m["n_subagent_cancelled"], m["n_subagent_unfinished"], m["n_subagent_isolated"]) == (1, 0, 1)
    assert m["spurious_spawn_rate"] == 1.0  # wrong + isolated + cancelled = 3 of 3
    assert (m["n_verified"], m["n_caught"], m["verify_ticks"], m["n_invalidated"], m["coordination_tokens"]) == (1, 1, 3, 3, 0)
    assert m["verification_rate"] == 0.5 and m["verification_yield"] == 1.0
    assert m["mean_concurrency"] == pytest.approx(8 / 14) and m["peak_concurrency"] == 1


def test_verify__a_right_result_is_marked_verified_and_not_offered_again():
    graph = TaskGraph([2, 1], ["search", "merge"], [(), (0,)], budget_factor=3.0)
    env, inst = make_env(
        graph, [[2], [1]], [[OK], [OK]], max_subagents=1, max_attempts=1, verification=Verification(base_ticks=2, work_percent=100)
    )
    env.reset(seed=0, options={"instance": inst})
    sim = env.sim
    step(env, SPAWN + 0)
    step(env, WAIT)  # t=2
    obs, _, _, info = step(env, VERIFY + 0)  # 2 + 2 * 100 // 100 + 0 = 4 ticks: t=6
    assert sim.t == 6 and sim.verified[0] and sim.status[0] == DONE and sim.n_caught == 0 and sim.n_verified == 1
    assert row(obs, 0, "verified") == 1.0 and row(obs, 0, "by_subagent") == 1.0
    assert not info["action_mask"][VERIFY + 0]
    assert glob(obs, "tier0_caught_rate") == 0.0 and glob(obs, "tier0_returns") == pytest.approx(1 / 9)
    # hand-off 150, wait turn 800, 2 ticks of 400, result 200; the verify turn 800 and its re-read 200
    assert sim.input_tokens == 150 + 800 + 2 * 400 + 200 + 800 + 200 and sim.output_tokens == 150 + 100 + 2 * 150 + 200 + 100
    # verify on a node the orchestrator did itself is an invalid action (waste_tick: one tick)
    step(env, DO + 1)
    obs, _, terminated, _, info = env.step(VERIFY + 1)
    assert info["invalid_action"] and info["invalid_actions"] == 1 and not terminated and sim.t == 8


def test_verify__cut_short_by_the_budget_counts_no_verification():
    graph = TaskGraph([4], ["search"], [()], budget_factor=1.0)  # budget 4
    env, inst = make_env(
        graph, [[1]], [[WRONG]], max_subagents=1, max_attempts=1, verification=Verification(base_ticks=1, work_percent=100)
    )
    env.reset(seed=0, options={"instance": inst})
    sim = env.sim
    step(env, SPAWN + 0)
    step(env, WAIT)  # t=1, wrong result
    _, reward, terminated, info = step(env, VERIFY + 0)  # 5 ticks wanted, 3 left
    assert terminated and sim.t == 4 and sim.verify_ticks == 3
    assert sim.n_verified == 0 and sim.n_caught == 0 and sim.status[0] == DONE and reward == 0.0
    assert info["metrics"]["budget_exhausted"] and info["metrics"]["targets_wrong"] == 1


# ---------------------------------------------------------------------------------------------
# progressive revelation


def diamond() -> TaskGraph:
    """plan 0 (1) -> search 1 (1), search 2 (2) -> merge 3 (1)."""
    return TaskGraph([1, 1, 2, 1], ["plan", "search", "search", "merge"], [(), (0,), (0,), (1, 2)], budget_factor=3.0)


def test_progressive__hides_nodes_until_their_parents_are_done():
    graph = diamond()
    env, inst = make_env(graph, [[1]] * 4, [[OK]] * 4, max_subagents=2, max_attempts=1, progressive=True)
    obs, info = env.reset(seed=0, options={"instance": inst})
    sim = env.sim
    assert sim.revealed.tolist() == [True, False, False, False]
    assert obs["nodes"][1:].sum() == 0 and obs["adjacency"].sum() == 0
    assert row(obs, 0, "present") == 1.0 and row(obs, 0, "kind_plan") == 1.0 and row(obs, 0, "work") == pytest.approx(1 / 16)
    assert row(obs, 0, "bottom_level") == 0.0 and row(obs, 0, "n_children") == 0.0  # they would tell what is hidden
    assert glob(obs, "n_nodes") == pytest.approx(1 / 8) and glob(obs, "nodes_done") == 0.0
    assert np.flatnonzero(info["action_mask"]).tolist() == [DO + 0, SPAWN + 0, ANSWER]
    obs, *_ = step(env, DO + 0)  # t=1: nodes 1 and 2 revealed, 3 still hidden
    assert sim.revealed.tolist() == [True, True, True, False]
    assert [row(obs, i, "present") for i in range(4)] == [1.0, 1.0, 1.0, 0.0] and obs["nodes"][3].sum() == 0
    assert obs["adjacency"][1, 0] == obs["adjacency"][2, 0] == 1.0 and obs["adjacency"].sum() == 2
    assert (
        row(obs, 2, "work") == pytest.approx(2 / 16)
        and row(obs, 2, "n_parents") == pytest.approx(1 / 8)
        and row(obs, 2, "status_ready") == 1.0
    )
    assert row(obs, 1, "bottom_level") == row(obs, 1, "n_children") == 0.0
    assert glob(obs, "n_nodes") == pytest.approx(3 / 8) and glob(obs, "nodes_done") == pytest.approx(1 / 3)
    assert glob(obs, "targets_done") == 0.0  # the true target count (node 3)
    step(env, DO + 1)  # t=2
    step(env, DO + 2)
    obs, *_ = step(env, DO + 2)  # t=4: node 3 revealed
    assert sim.revealed.all() and obs["adjacency"][3].tolist()[:4] == [0.0, 1.0, 1.0, 0.0] and obs["adjacency"].sum() == 4
    assert (
        row(obs, 3, "status_ready") == 1.0
        and glob(obs, "n_nodes") == pytest.approx(4 / 8)
        and glob(obs, "nodes_done") == pytest.approx(3 / 4)
    )
    # the same rows as without progressive revelation, but for the two structural columns
    plain = SwarmEnv(
        generator=Fixed(graph),
        config=SwarmConfig(max_subagents=2, max_attempts=1, reliability=PERFECT, verification=Verification()),
        n_max=N_MAX,
    )
    plain.reset(seed=0, options={"instance": inst})
    for a in (DO + 0, DO + 1, DO + 2, DO + 2):
        plain_obs, *_ = plain.step(a)
    keep = [c for c in range(len(node_features(True))) if c not in (NODE_COLUMN["bottom_level"], NODE_COLUMN["n_children"])]
    assert np.array_equal(obs["nodes"][:, keep], plain_obs["nodes"][:, keep])
    assert plain_obs["nodes"][0, NODE_COLUMN["bottom_level"]] == 1.0


def test_progressive__flat_observation_hides_the_same_rows():
    graph = diamond()
    env, inst = make_env(graph, [[1]] * 4, [[OK]] * 4, max_attempts=1, progressive=True)
    flat_env = SwarmEnv(generator=Fixed(graph), config=env.config, n_max=N_MAX, observation_mode="flat", with_adjacency=True)
    obs, info = env.reset(seed=0, options={"instance": inst})
    flat, _ = flat_env.reset(seed=0, options={"instance": inst})
    assert flat_env.flat_layout == FlatLayout(N_MAX, True, True) and flat.shape == (FlatLayout(N_MAX, True, True).size,)
    back, mask = flat_env.flat_layout.unflatten(flat)
    assert all(np.array_equal(back[k], obs[k]) for k in obs) and np.array_equal(mask, info["action_mask"])


# ---------------------------------------------------------------------------------------------
# the coordination tax


def two_to_one() -> TaskGraph:
    """search 0 (2), search 1 (2) -> merge 2 (1)."""
    return TaskGraph([2, 2, 1], ["search", "search", "merge"], [(), (), (0, 1)], budget_factor=4.0)


def test_coordination__merge_work_per_subagent_parent_and_the_turn_tax():
    env, inst = make_env(two_to_one(), [[2], [2], [1]], [[OK]] * 3, max_subagents=2, max_attempts=1, coordination=CoordinationTax(100, 3))
    env.reset(seed=0, options={"instance": inst})
    sim = env.sim
    step(env, SPAWN + 0)
    step(env, SPAWN + 1)
    obs, *_ = step(env, WAIT)  # t=2: both return; node 2 takes 3 more ticks per sub-agent parent
    assert sim.extra_work.tolist() == [0, 0, 6] and sim.work_left[2] == 7 and row(obs, 2, "work_left") == pytest.approx(7 / 16)
    assert sim.coordination_tokens == 0  # the wait turn read no earlier result (counters before the advance)
    for k in range(7):  # t=3..9, each turn re-reads the 2 results: 100 * 2 tokens
        obs, *_ = step(env, DO + 2)
        assert sim.coordination_tokens == 200 * (k + 1)
    _, reward, _, info = step(env, ANSWER)
    m = info["metrics"]
    assert reward == 1.0 and m["critical_steps"] == 9
    assert m["serial_steps"] == 2 + 2 + 1 + 6 and m["task_serial_steps"] == 5
    assert sim.path_len[2] == 1 + 6 + 2 and m["lower_bound"] == 9  # max(9, ceil(11 / 3))
    assert m["coordination_tokens"] == 1400
    # 8 turns (6400 + tax 1400 in, 800 out), 2 hand-offs of 150, 4 sub-agent ticks, 2 results
    assert m["input_tokens"] == 6400 + 1400 + 300 + 1600 + 400 and m["output_tokens"] == 800 + 300 + 600 + 400


def test_coordination__only_subagent_parents_of_a_merge_add_work_and_a_spawn_carries_it():
    env, inst = make_env(two_to_one(), [[2], [2], [1]], [[OK]] * 3, max_subagents=2, max_attempts=1, coordination=CoordinationTax(100, 3))
    env.reset(seed=0, options={"instance": inst})
    sim = env.sim
    step(env, SPAWN + 1)  # due at t=2
    step(env, DO + 0)  # t=1 (tax 0)
    step(env, DO + 0)  # t=2: node 1 returns (during the advance), then node 0 is done by hand
    assert sim.extra_work[2] == 3 and sim.work_left[2] == 4  # one sub-agent parent
    step(env, SPAWN + 2)  # 1 tick + 3 of coordination: due at t=6
    assert sim.finish_time[2] == 6
    _, _, _, info = step(env, WAIT)  # t=6 (tax 100: one result read)
    step(env, ANSWER)
    m = env.sim.metrics()
    assert m["critical_steps"] == 6 and m["coordination_tokens"] == 100 and sim.path_len[2] == 1 + 3 + 2
    assert m["serial_steps"] == 8 and m["score"] == 1.0
    # a node with one parent takes no coordination work
    chain = TaskGraph([1, 1], ["search", "reason"], [(), (0,)])
    env, inst = make_env(chain, [[1], [1]], [[OK]] * 2, max_attempts=1, coordination=CoordinationTax(0, 5))
    env.reset(seed=0, options={"instance": inst})
    step(env, SPAWN + 0)
    step(env, WAIT)
    assert env.sim.extra_work[1] == 0 and env.sim.work_left[1] == 1


# ---------------------------------------------------------------------------------------------
# sub-agent tiers

TIERS = (
    SubAgentTier("fast", slowdown_percent=50, error_scale=2.0, token_percent=50, price_scale=0.5),
    SubAgentTier("careful", slowdown_percent=200, error_scale=0.5, token_percent=200, price_scale=4.0),
)


def test_tiers__durations_token_rates_and_prices_by_hand():
    graph = TaskGraph([4, 3], ["search", "search"], [(), ()], budget_factor=3.0)
    # tier 0 (fast): ceil(4 / 2) = 2, ceil(3 / 2) = 2 ticks; tier 1 (careful): 8 and 6 ticks
    env, inst = make_env(graph, [[[2, 8]], [[2, 6]]], [[[OK, OK]], [[OK, OK]]], max_subagents=2, max_attempts=1, tiers=TIERS)
    obs, info = env.reset(seed=0, options={"instance": inst})
    sim = env.sim
    assert LAYOUT.block(info["action_mask"], "spawn_1")[:2].all() and not LAYOUT.block(info["action_mask"], "spawn_2").any()
    step(env, SPAWN + 0)  # tier 0
    obs, *_ = step(env, SPAWN_1 + 1)  # tier 1
    assert sim.attempt_tier.tolist() == [0, 1] and sim.finish_time.tolist() == [2, 6] and sim.running_tier == [1, 1]
    assert row(obs, 0, "attempt_tier") == pytest.approx(1 / 3) and row(obs, 1, "attempt_tier") == pytest.approx(2 / 3)
    step(env, WAIT)  # t=2: node 0 back
    obs, *_ = step(env, WAIT)  # t=6: node 1 back
    assert sim.t == 6 and sim.returns_tier == [1, 1] and sim.spawned_tier == [1, 1]
    assert glob(obs, "tier0_returns") == glob(obs, "tier1_returns") == pytest.approx(1 / 9) and glob(obs, "tier2_returns") == 0.0
    _, reward, _, info = step(env, ANSWER)
    m = info["metrics"]
    assert reward == 1.0 and m["critical_steps"] == 6
    # per tick: fast 400 * 50 // 100 = 200 in, 150 * 50 // 100 = 75 out; careful 800 in, 300 out
    assert sim.tier_input_tokens == [150 + 2 * 200, 150 + 6 * 800] == [550, 4950]
    assert sim.tier_output_tokens == [2 * 75 + 200, 6 * 300 + 200] == [350, 2000]
    # the orchestrator: 2 wait turns (1600 in, 200 out), 2 hand-offs written (300 out), 2 results read (400 in)
    assert m["input_tokens"] == 1600 + 400 + 550 + 4950 and m["output_tokens"] == 200 + 300 + 350 + 2000
    assert m["cost_usd_tier0"] == pytest.approx(0.5 * price(550, 350)) and m["cost_usd_tier1"] == pytest.approx(4.0 * price(4950, 2000))
    assert m["cost_usd"] == pytest.approx(price(2000, 500) + 0.5 * price(550, 350) + 4.0 * price(4950, 2000))
    assert m["cost_usd"] == pytest.approx(0.0027 + 0.00069 + 0.03588)
    assert (m["spawned_tier0"], m["spawned_tier1"], m["spawned_tier2"], m["cost_usd_tier2"]) == (1, 1, 0, 0.0)


def test_tiers__a_tier_faster_than_the_orchestrator_lowers_the_makespan_floors():
    """A fast tier (slowdown 50%) does a 4-work node in 2 ticks: lower_bound and task_lower_bound
    scale by the fastest agent's percent (ceil(4 * 50 / 100) = 2), so they stay floors; the
    budget keeps the work floor (ceil(3.0 * 4) = 12)."""
    graph = TaskGraph([4], ["search"], [()], budget_factor=3.0)
    env, inst = make_env(graph, [[[2, 8]]], [[[OK, OK]]], max_subagents=2, max_attempts=1, tiers=TIERS)
    env.reset(seed=0, options={"instance": inst})
    assert env.sim.config.fastest_percent == 50 and SwarmConfig().fastest_percent == 100
    step(env, SPAWN + 0)  # tier 0, the fast one
    step(env, WAIT)  # t=2: back
    m = step(env, ANSWER)[3]["metrics"]
    assert m["critical_steps"] == 2 and m["serial_steps"] == 4
    assert m["lower_bound"] == m["task_lower_bound"] == 2 and m["budget"] == 12
    assert m["speedup"] == m["ideal_speedup"] == 2.0 and m["serial_collapse_index"] == 0.0
    assert graph.lower_bound(2) == 4 and graph.lower_bound(2, 50) == 2 and graph.lower_bound(0, 50) == 2


def test_tiers__draw_fates_scales_errors_and_durations_per_tier():
    graph = TaskGraph([4, 3, 5], ["search", "reason", "merge"], [(), (), (0, 1)])
    config = SwarmConfig(max_attempts=2, tiers=TIERS, reliability=SubAgentReliability(max_jitter=2))
    fates = draw_fates(graph, config, np.random.default_rng(7))
    assert fates.duration.shape == fates.outcome.shape == (3, 2, 2) and fates.error_scale.tolist() == [1.0, 1.0]
    rng = np.random.default_rng(7)  # the same draws, by hand: no hidden scale, then u, then the jitter
    u = rng.random(6).reshape(3, 2)
    jitter = rng.integers(0, 3, size=6).reshape(3, 2)
    p_fail, p_wrong = subagent_probabilities(graph, config)
    for t, tier in enumerate(TIERS):
        ticks = (np.array([4, 3, 5]) * tier.slowdown_percent + 99) // 100
        assert fates.duration[:, :, t].tolist() == (ticks[:, None] + jitter).tolist()
        pf, pw = np.minimum(0.95, p_fail * tier.error_scale), np.minimum(0.95, p_wrong * tier.error_scale)
        want = np.where(u < pf[:, None], FAIL, np.where(u < (pf + (1 - pf) * pw)[:, None], WRONG, OK))
        assert fates.outcome[:, :, t].tolist() == want.tolist()
    assert fates.duration[:, :, 0].tolist() == (np.array([[2], [2], [3]]) + jitter).tolist()  # ceil(4/2), ceil(3/2), ceil(5/2)


def test_tiers__spawning_a_tier_the_config_lacks_is_invalid():
    graph = TaskGraph([1], ["search"], [()])
    env, inst = make_env(graph, [[[1, 1]]], [[[OK, OK]]], max_attempts=1, tiers=TIERS)
    env.reset(seed=0, options={"instance": inst})
    assert not env.sim.can_spawn(0, 2) and env.sim.can_spawn(0, 1)
    info = env.step(SPAWN_2 + 0)[4]
    assert info["invalid_action"] and env.sim.t == 1 and env.sim.n_spawned == 0


# ---------------------------------------------------------------------------------------------
# hidden reliability


def test_hidden_reliability__same_seed_same_scale_new_episode_new_scale():
    config = SwarmConfig(hidden_reliability=(0.5, 3.0), tiers=TIERS)
    env = SwarmEnv("LayeredDAG", config=config)
    env.reset(seed=11)
    first = env.instance.fates.error_scale.copy()
    env.reset(seed=11)
    assert np.array_equal(env.instance.fates.error_scale, first) and first.shape == (2,)
    assert ((first >= 0.5) & (first <= 3.0)).all()
    env.reset()
    assert not np.array_equal(env.instance.fates.error_scale, first)
    # the scale is drawn first: (s, s) gives exactly the scale s, and the outcomes of p * error_scale * s
    graph = env.instance.graph
    fixed = SwarmConfig(hidden_reliability=(2.0, 2.0), tiers=TIERS[:1], reliability={"fail_base": (0.1,) * 4, "wrong_base": (0.2,) * 4})
    fates = draw_fates(graph, fixed, np.random.default_rng(3))
    assert fates.error_scale.tolist() == [2.0]
    rng = np.random.default_rng(3)
    rng.random(1)  # the scale's draw
    u = rng.random(graph.n_nodes * 3).reshape(graph.n_nodes, 3)
    p_fail, p_wrong = subagent_probabilities(graph, fixed)
    pf, pw = np.minimum(0.95, p_fail * 2.0 * 2.0), np.minimum(0.95, p_wrong * 2.0 * 2.0)
    want = np.where(u < pf[:, None], FAIL, np.where(u < (pf + (1 - pf) * pw)[:, None], WRONG, OK))
    assert fates.outcome[:, :, 0].tolist() == want.tolist()


def test_hidden_reliability__the_scale_is_not_in_the_observation():
    graph = diamond()
    config = SwarmConfig(hidden_reliability=(0.0, 5.0), reliability=PERFECT)
    duration, outcome = np.ones((4, 3, 1), dtype=np.int64), np.zeros((4, 3, 1), dtype=np.int64)
    runs = []
    for scale in (0.1, 4.9):  # same fates, different hidden scales: the same episode, observation for observation
        env = SwarmEnv(generator=Fixed(graph), config=config, n_max=N_MAX, observation_mode="flat", with_adjacency=True)
        obs, _ = env.reset(seed=0, options={"instance": TaskInstance(graph, Fates(duration, outcome, np.array([scale])))})
        seen = [obs]
        for a in (SPAWN + 0, WAIT, SPAWN + 1, SPAWN + 2, WAIT, DO + 3):
            seen.append(env.step(a)[0])
        runs.append(np.stack(seen))
    assert np.array_equal(runs[0], runs[1])


# ---------------------------------------------------------------------------------------------
# defaults unchanged, config forms, the text interface


@pytest.mark.parametrize("env_id", [i for i in swarmgym.SUITE_IDS if not uses_mechanics(i)])
def test_default_config__every_suite_id_keeps_the_base_layout(env_id):
    # every id but the mechanics families (DeepResearch, VerifiedPipeline), whose specs turn them on
    env = gym.make(env_id)
    u = env.unwrapped
    assert not u.config.extended and u.layout == ActionLayout(u.n_max) and env.action_space.n == ActionLayout(u.n_max).n
    obs, info = env.reset(seed=0)
    if u.observation_mode == "dict":
        assert obs["nodes"].shape == (u.n_max, len(NODE_FEATURES)) and obs["globals"].shape == (len(GLOBAL_FEATURES),)
    else:
        assert obs.shape == (FlatLayout(u.n_max, u.with_adjacency).size,)
    assert u.instance.fates.duration.shape == (u.instance.graph.n_nodes, u.config.max_attempts) and u.instance.fates.error_scale is None
    _, _, _, _, info = env.step(ActionLayout(u.n_max).answer)
    m = info["metrics"]
    assert tuple(m) == METRIC_KEYS
    assert all(m[k] == 0 for k in ("n_subagent_cancelled", "n_verified", "n_caught", "verification_rate", "verification_yield"))
    assert all(m[k] == 0 for k in ("verify_ticks", "n_invalidated", "coordination_tokens", "spawned_tier1", "spawned_tier2"))
    assert m["cost_usd_tier1"] == m["cost_usd_tier2"] == 0.0


def test_default_config__tier_zero_metrics_count_every_sub_agent():
    graph = TaskGraph([2], ["search"], [()])
    config = SwarmConfig(reliability=PERFECT)
    inst = TaskInstance(graph, Fates(np.array([[2, 2, 2]]), np.zeros((1, 3), dtype=np.int64)))
    env = SwarmEnv(generator=Fixed(graph), config=config, n_max=N_MAX)
    base = ActionLayout(N_MAX)
    env.reset(seed=0, options={"instance": inst})
    env.step(base.spawn + 0)
    env.step(base.wait)
    m = env.step(base.answer)[4]["metrics"]
    assert m["spawned_tier0"] == m["n_spawned"] == 1
    assert m["cost_usd_tier0"] == pytest.approx(price(150 + 2 * 400, 2 * 150 + 200))
    assert m["cost_usd"] == pytest.approx(price(800 + 150 + 800 + 200, 100 + 150 + 300 + 200))


def test_draw_fates__accepts_a_dict_config():
    graph = diamond()
    as_dict = {"max_attempts": 2, "verification": {"base_ticks": 2}, "tiers": [{"name": "a"}, {"name": "b", "slowdown_percent": 300}]}
    fates = draw_fates(graph, as_dict, np.random.default_rng(0))
    same = draw_fates(graph, SwarmConfig.from_dict(as_dict), np.random.default_rng(0))
    assert (
        fates.duration.shape == (4, 2, 2) and np.array_equal(fates.duration, same.duration) and np.array_equal(fates.outcome, same.outcome)
    )
    base = draw_fates(graph, {"max_attempts": 2}, np.random.default_rng(0))
    assert base.duration.shape == (4, 2) and np.array_equal(base.duration, fates.duration[:, :, 0])  # tier 0 at 100%: the same draws
    with pytest.raises(TypeError, match="unknown field"):
        draw_fates(graph, {"max_atempts": 2}, np.random.default_rng(0))


def test_simulator__refuses_fates_without_the_tier_axis():
    graph = diamond()
    with pytest.raises(ValueError, match=r"n_tiers"):
        SwarmSimulator(TaskInstance(graph, Fates(np.ones((4, 3), np.int64), np.zeros((4, 3), np.int64))), SwarmConfig(progressive=True))


def test_text_interface__refuses_extended_configs():
    from swarmgym.llm import SwarmTextEnv

    with pytest.raises(ValueError, match="base layout only"):
        SwarmTextEnv(SwarmEnv("LayeredDAG", config=SwarmConfig(progressive=True)))


def test_extended_env__spaces_follow_the_extended_layout():
    env = SwarmEnv(Fixed(diamond()), config={"tiers": [{"name": "a"}]}, n_max=16)
    assert env.action_space.n == ActionLayout(16, True).n == 82
    assert env.observation_space["nodes"].shape == (16, len(node_features(True))) == (16, 23)
    assert env.observation_space["globals"].shape == (len(global_features(True)),) == (20,)
    assert env.describe_action(ActionLayout(16, True).verify + 3) == "verify(3)"


# ---------------------------------------------------------------------------------------------
# drawn mechanics: the incremental observation equals a fresh encoding of the state


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    graph=task_graphs(10, width=4, edge_density=0.4, work=(1, 3)),
    config=swarm_configs(max_subagents=3, mechanics=True),
    mode=st.sampled_from(["dict", "flat"]),
    seed=seeds(),
    data=st.data(),
)
def test_drawn_mechanics__incremental_observation_equals_a_fresh_encoding(graph, config, mode, seed, data):
    def make():
        return SwarmEnv(Fixed(graph), config=config, n_max=10, observation_mode=mode, with_adjacency=True)

    env = make()
    record = run_episode(env, seed, drawn_policy(data, 60, layout=env.layout), twin=make(), keep_observations=True)
    # replay the episode and compare every observation with one encoded from scratch
    replayed = make()
    obs, info = replayed.reset(seed=seed)
    for k, a in enumerate(record.actions):
        obs, _, _, _, info = replayed.step(a)
        fresh = copy.deepcopy(replayed)
        fresh._encode_static()
        again = fresh._observation(info["action_mask"])
        same = all(np.array_equal(obs[key], again[key]) for key in obs) if mode == "dict" else np.array_equal(obs, again)
        assert same, f"step {k} ({replayed.describe_action(a)}): the incremental observation differs from a fresh encoding"


def test_check_family__a_user_family_with_every_mechanic():
    """The README's check_family example, with a config that turns every mechanic on."""

    def tiny_family(rng: np.random.Generator) -> TaskGraph:
        width = int(rng.integers(2, 5))
        return TaskGraph(
            work=[1] * width + [2], kind=["search"] * width + ["merge"], parents=[()] * width + [tuple(range(width))], family="Tiny"
        )

    config = {
        "max_subagents": 2,
        "progressive": True,
        "verification": {"base_ticks": 1},
        "tiers": [
            {"name": "fast", "slowdown_percent": 50, "error_scale": 3.0},
            {"name": "careful", "slowdown_percent": 200, "error_scale": 0.2},
        ],
        "hidden_reliability": (0.5, 2.0),
        "coordination": {"turn_input_per_result": 50, "merge_work_per_subagent_input": 1},
        "reliability": {"wrong_base": (0.3,) * 4},
    }
    gym.register("mylab/TinyMechanics-v0", entry_point="swarmgym:SwarmEnv", kwargs={"generator": tiny_family, "config": config})
    try:
        swarmgym.testing.check_family("mylab/TinyMechanics-v0")
    finally:
        gym.registry.pop("mylab/TinyMechanics-v0")


def test_check_family__drawn_mechanics_configs_on_a_suite_id():
    swarmgym.testing.check_family("swarmgym/DependentChains-v0", drawn_configs=True, batched=False, max_examples=25)


def test_check_family__passes_drawn_configs_and_the_answer_rule_to_its_batched_check(monkeypatch):
    import swarmgym.testing.batched as batched

    seen = []
    monkeypatch.setattr(batched, "check_batched", lambda env_id, *args, **kwargs: seen.append((env_id, kwargs)))
    swarmgym.testing.check_family("swarmgym/WideSearch-v0", drawn_configs=True, batched=True, max_examples=2, invalid_action="answer")
    swarmgym.testing.check_family("swarmgym/WideSearch-v0", batched=True, max_examples=2, invalid_action="raise")
    assert [env_id for env_id, _ in seen] == ["swarmgym/WideSearch-v0"] * 2
    assert seen[0][1]["drawn_configs"] is True and seen[0][1]["invalid_action"] == "answer"
    assert seen[1][1]["drawn_configs"] is False and "invalid_action" not in seen[1][1]


def test_swarm_configs__mechanics_draws_each_mechanic_on_and_off():
    seen = {"progressive": set(), "verification": set(), "tiers": set(), "hidden": set(), "coordination": set()}

    @settings(max_examples=60, derandomize=True, deadline=None)
    @given(config=swarm_configs(mechanics=True))
    def collect(config):
        seen["progressive"].add(config.progressive)
        seen["verification"].add(config.verification is not None)
        seen["tiers"].add(len(config.tiers))
        seen["hidden"].add(config.hidden_reliability is not None)
        seen["coordination"].add(config.coordination is not None)
        assert len(config.tiers) <= MAX_TIERS

    collect()
    assert all(v == {False, True} for k, v in seen.items() if k != "tiers") and seen["tiers"] == {0, 1, 2, 3}


def test_docstring__the_mechanics_table_matches_the_extended_columns():
    block = SwarmEnv.__doc__.split("| Index | Mechanics feature |", 1)[1]
    rows = []
    for line in block.splitlines()[2:]:  # after the header's rule
        if not line.strip().startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    names = [r[1] for r in rows]
    tiers = [n for n in names if "{t}" in n]
    expanded = [n for n in names if "{t}" not in n][3:] + [
        f"tier{t}_{q}" for t in range(MAX_TIERS) for q in ("returns", "fail_rate", "caught_rate")
    ]
    assert names[:3] == list(node_features(True)[len(NODE_FEATURES) :])
    assert [r[0] for r in rows[:4]] == [f"nodes {len(NODE_FEATURES) + k}" for k in range(3)] + [f"globals {len(GLOBAL_FEATURES)}"]
    assert expanded == list(global_features(True)[len(GLOBAL_FEATURES) :]) and len(tiers) == 3
    assert "Discrete(5 n_max + 2)" in SwarmEnv.__doc__ and ActionLayout(7, True).n == 5 * 7 + 2


def test_docs__the_mechanics_example_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "mechanics.md").read_text()
    scope: dict = {}
    exec(compile(re.findall(r"```python\n(.*?)```", text, re.S)[0], "docs/mechanics.md example", "exec"), scope)
    env = scope["env"]
    assert env.config.extended and env.config.n_tiers == 2 and env.layout == ActionLayout(env.n_max, True)
    obs, info = env.reset(seed=0)
    assert obs["nodes"].shape[1] == len(node_features(True)) and info["action_mask"].shape == (ActionLayout(env.n_max, True).n,)
