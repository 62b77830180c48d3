"""Episodes worked out by hand: critical steps, tokens, score and metrics (Jumanji's toy-instance habit).

Token arithmetic uses the default TokenModel: a timed turn costs 800 in + 100 out; a
hand-off 150 + 300 per parent, counted as output (written) and input (read); a
running sub-agent 400 in + 150 out per tick (100 x verbosity 1.5); a returned result
200 out + 200 in. Prices: $0.60 / M input, $3.00 / M output.
"""

from __future__ import annotations

import numpy as np
import pytest

from swarmgym import Fates, Fixed, SubAgentReliability, SwarmConfig, SwarmEnv, TaskGraph, TaskInstance
from swarmgym.simulator import FAIL, OK, WRONG

N_MAX = 8
DO, SPAWN, WAIT, ANSWER = 0, N_MAX, 2 * N_MAX, 2 * N_MAX + 1


def wide_graph(budget_factor: float = 2.0) -> TaskGraph:
    """plan(1) -> three lookups (2 each) -> merge(2); targets: the lookups and the merge."""
    return TaskGraph(
        [1, 2, 2, 2, 2],
        ["plan", "search", "search", "search", "merge"],
        [(), (0,), (0,), (0,), (1, 2, 3)],
        targets=[1, 2, 3, 4],
        budget_factor=budget_factor,
    )


def make_env(graph: TaskGraph, duration, outcome, max_subagents: int = 3, **kwargs) -> tuple[SwarmEnv, TaskInstance]:
    config = SwarmConfig(max_subagents=max_subagents, reliability=SubAgentReliability.perfect(), **kwargs)
    env = SwarmEnv(generator=Fixed(graph), config=config, n_max=N_MAX)
    inst = TaskInstance(graph, Fates(np.array(duration, dtype=np.int64), np.array(outcome, dtype=np.int64)))
    return env, inst


def play(env: SwarmEnv, inst: TaskInstance, actions: list[int]):
    env.reset(seed=0, options={"instance": inst})
    reward, info = 0.0, {}
    for k, a in enumerate(actions):
        assert env.action_masks()[a], f"step {k}: action {env.describe_action(a)} should be valid"
        _, reward, terminated, truncated, info = env.step(a)
        assert not truncated
        assert terminated == (k == len(actions) - 1), f"step {k}: terminated={terminated}"
    return reward, info["metrics"]


def test_wide_search__fan_out_then_merge_by_hand():
    graph = wide_graph()
    env, inst = make_env(graph, [[1] * 3, [2] * 3, [2] * 3, [2] * 3, [2] * 3], [[OK] * 3] * 5)
    # t=0 do(plan) -> t=1; spawn the three lookups; wait -> t=3 (all return); merge twice -> t=5
    reward, m = play(env, inst, [DO + 0, SPAWN + 1, SPAWN + 2, SPAWN + 3, WAIT, DO + 4, DO + 4, ANSWER])
    assert reward == 1.0 and m["score"] == 1.0
    assert m["critical_steps"] == 5
    assert m["serial_steps"] == 9 and m["lower_bound"] == 5  # max(1 + 2 + 2, ceil(9 / 4))
    assert m["speedup"] == pytest.approx(1.8) and m["ideal_speedup"] == pytest.approx(1.8)
    assert m["serial_collapse_index"] == 0.0 and m["spurious_spawn_rate"] == 0.0
    assert m["n_spawned"] == 3 and m["n_subagent_ok"] == 3
    assert m["mean_concurrency"] == pytest.approx(6 / 5) and m["peak_concurrency"] == 3
    assert m["concurrency_profile"].tolist() == pytest.approx([3 / 5, 0, 0, 2 / 5])
    # 4 turns: 3200 in + 400 out; 3 hand-offs of 450: +1350 / +1350; 6 sub-agent ticks: +2400 / +900;
    # 3 results: +600 / +600
    assert (m["input_tokens"], m["output_tokens"]) == (7550, 3250)
    assert m["tokens"] == 10800 and m["cost_usd"] == pytest.approx(7550 * 0.6e-6 + 3250 * 3e-6)
    assert m["budget"] == 10 and not m["budget_exhausted"]


def test_wide_search__failure_and_hallucination_by_hand():
    graph = wide_graph()
    duration = [[1] * 3, [2] * 3, [3] * 3, [2] * 3, [2] * 3]
    outcome = [[OK] * 3, [FAIL, OK, OK], [WRONG, OK, OK], [OK] * 3, [OK] * 3]
    env, inst = make_env(graph, duration, outcome)
    # t=1 plan done; three spawns; wait -> t=3: lookup 1 failed (ready again), lookup 3 ok;
    # do(1) -> t=4 (lookup 2 returns, wrong); do(1) -> t=5; merge -> t=7.
    reward, m = play(env, inst, [DO + 0, SPAWN + 1, SPAWN + 2, SPAWN + 3, WAIT, DO + 1, DO + 1, DO + 4, DO + 4, ANSWER])
    # targets 1, 3 right; 2 wrong, and the merge inherits it: F1 = 2*2 / (2*2 + 2 + 0)
    assert reward == pytest.approx(2 / 3) and m["targets_correct"] == 2 and m["targets_wrong"] == 2
    assert m["critical_steps"] == 7 and m["serial_steps"] == 9 and m["lower_bound"] == 5
    assert m["speedup"] == pytest.approx(9 / 7)
    assert m["serial_collapse_index"] == pytest.approx((1.8 - 9 / 7) / 0.8)
    assert (m["n_subagent_failed"], m["n_subagent_wrong"], m["n_subagent_ok"]) == (1, 1, 1)
    assert m["spurious_spawn_rate"] == pytest.approx(2 / 3)
    assert m["mean_concurrency"] == pytest.approx(1.0) and m["peak_concurrency"] == 3
    assert m["concurrency_profile"].tolist() == pytest.approx([4 / 7, 1 / 7, 0, 2 / 7])
    # 6 turns: 4800 / 600; hand-offs 1350 / 1350; 7 sub-agent ticks 2800 / 1050; 3 results 600 / 600
    assert (m["input_tokens"], m["output_tokens"]) == (9550, 3600)


def chain_graph(budget_factor: float = 2.0) -> TaskGraph:
    """reason(2) -> reason(1) -> reason(2); only the last step is scored."""
    return TaskGraph([2, 1, 2], ["reason"] * 3, [(), (0,), (1,)], budget_factor=budget_factor)


def test_chain__serial_play_by_hand():
    env, inst = make_env(chain_graph(), [[2] * 3, [1] * 3, [2] * 3], [[OK] * 3] * 3, max_subagents=2)
    reward, m = play(env, inst, [DO + 0, DO + 0, DO + 1, DO + 2, DO + 2, ANSWER])
    assert reward == 1.0 and m["critical_steps"] == 5 and m["serial_steps"] == 5
    assert m["speedup"] == 1.0 and m["ideal_speedup"] == 1.0 and m["serial_collapse_index"] == 0.0
    assert m["n_spawned"] == 0 and m["spurious_spawn_rate"] == 0.0
    assert (m["input_tokens"], m["output_tokens"]) == (4000, 500)


def test_chain__a_wrong_step_spoils_the_answer():
    env, inst = make_env(chain_graph(), [[2] * 3, [1] * 3, [2] * 3], [[WRONG, OK, OK], [OK] * 3, [OK] * 3], max_subagents=2)
    reward, m = play(env, inst, [SPAWN + 0, WAIT, DO + 1, DO + 2, DO + 2, ANSWER])
    assert reward == 0.0 and m["targets_wrong"] == 1 and m["critical_steps"] == 5
    assert m["spurious_spawn_rate"] == 1.0 and m["n_subagent_wrong"] == 1
    # 4 turns 3200 / 400; hand-off (no parents) 150 / 150; 2 sub-agent ticks 800 / 300; result 200 / 200
    assert (m["input_tokens"], m["output_tokens"]) == (4350, 1050)


def test_chain__a_sub_agent_that_runs_alone_is_spurious():
    env, inst = make_env(chain_graph(), [[2] * 3, [1] * 3, [2] * 3], [[OK] * 3] * 3, max_subagents=2)
    reward, m = play(env, inst, [SPAWN + 0, WAIT, DO + 1, DO + 2, DO + 2, ANSWER])
    assert reward == 1.0 and m["n_subagent_isolated"] == 1 and m["spurious_spawn_rate"] == 1.0
    assert m["speedup"] == 1.0  # the orchestrator waited: nothing was gained


def test_budget__runs_out_and_submits_what_is_done():
    graph = wide_graph(budget_factor=1.0)  # budget = lower bound = 5
    env, inst = make_env(graph, [[1] * 3, [2] * 3, [2] * 3, [2] * 3, [2] * 3], [[OK] * 3] * 5)
    reward, m = play(env, inst, [DO + 0, DO + 1, DO + 1, DO + 2, DO + 2])  # the 5th tick ends it
    assert m["budget"] == 5 and m["budget_exhausted"] and m["critical_steps"] == 5
    assert reward == pytest.approx(2 * 2 / (2 * 2 + 0 + 2))  # lookups 1, 2 done; 3 and merge missing
    assert m["speedup"] == 1.0 and m["serial_collapse_index"] == 1.0  # ideal: 5 work / max(3, ceil(5/4))


def test_wait__past_the_budget_is_clamped_to_it():
    graph = wide_graph(budget_factor=1.0)
    env, inst = make_env(graph, [[1] * 3, [9] * 3, [2] * 3, [2] * 3, [2] * 3], [[OK] * 3] * 5)
    reward, m = play(env, inst, [DO + 0, SPAWN + 1, WAIT])
    assert m["critical_steps"] == 5 and m["n_subagent_unfinished"] == 1 and m["spurious_spawn_rate"] == 1.0


def test_invalid_action__is_a_wasted_tick_and_counted():
    env, inst = make_env(wide_graph(), [[1] * 3] + [[2] * 3] * 4, [[OK] * 3] * 5)
    env.reset(seed=0, options={"instance": inst})
    _, reward, terminated, _, info = env.step(DO + 3)  # node 3 is blocked
    assert info["invalid_action"] and info["invalid_actions"] == 1 and info["critical_steps"] == 1
    assert info["tokens"] == 900 and not terminated and reward == 0.0
    _, _, _, _, info = env.step(WAIT)  # no sub-agent runs
    assert info["invalid_actions"] == 2 and info["critical_steps"] == 2
    _, _, _, _, info = env.step(SPAWN + 7)  # padding slot
    assert info["invalid_actions"] == 3


def test_invalid_action__strict_mode_raises_and_out_of_space_raises():
    env, inst = make_env(wide_graph(), [[1] * 3] + [[2] * 3] * 4, [[OK] * 3] * 5)
    strict = SwarmEnv(generator=env.generator, config=env.config, n_max=N_MAX, strict=True)
    strict.reset(seed=0, options={"instance": inst})
    with pytest.raises(ValueError, match=r"action 3 \(do\(3\)\) is not valid now"):
        strict.step(DO + 3)
    env.reset(seed=0, options={"instance": inst})
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 17\]"):
        env.step(18)
    with pytest.raises(ValueError, match=r"action must be an integer"):
        env.step(1.5)


def test_spawn_ticks__each_spawn_costs_clock_time():
    env, inst = make_env(wide_graph(), [[1] * 3] + [[2] * 3] * 4, [[OK] * 3] * 5, spawn_ticks=1)
    env.reset(seed=0, options={"instance": inst})
    env.step(DO + 0)  # t = 1
    _, _, _, _, info = env.step(SPAWN + 1)  # hand-off takes a tick: t = 2, the sub-agent starts then
    assert info["critical_steps"] == 2 and env.sim.finish_time[1] == 4
    _, _, _, _, info = env.step(SPAWN + 2)  # t = 3, returns at 5
    _, _, _, _, info = env.step(WAIT)  # node 1 returns at t = 4
    assert info["critical_steps"] == 4 and env.sim.status[1] == 4


def test_spawn_cap_per_turn__masks_spawns_until_the_turn_ends():
    env, inst = make_env(wide_graph(), [[1] * 3] + [[2] * 3] * 4, [[OK] * 3] * 5, max_spawns_per_turn=2)
    env.reset(seed=0, options={"instance": inst})
    env.step(DO + 0)
    env.step(SPAWN + 1)
    _, _, _, _, info = env.step(SPAWN + 2)
    assert not info["action_mask"][SPAWN : SPAWN + N_MAX].any() and info["action_mask"][DO + 3]
    _, _, _, _, info = env.step(DO + 3)  # ends the turn
    assert not info["action_mask"][SPAWN + 3]  # node 3 is now active (orchestrator's), not ready
    assert info["action_mask"][WAIT]


def test_max_attempts__after_the_last_attempt_only_do_remains():
    env, inst = make_env(wide_graph(), [[1] * 3] + [[2] * 3] * 4, [[OK] * 3, [FAIL] * 3, [OK] * 3, [OK] * 3, [OK] * 3])
    env.reset(seed=0, options={"instance": inst})
    env.step(DO + 0)
    for _ in range(3):
        assert env.action_masks()[SPAWN + 1]
        env.step(SPAWN + 1)
        env.step(WAIT)
        assert env.sim.last_failed[1]
    assert not env.action_masks()[SPAWN + 1] and env.action_masks()[DO + 1]
