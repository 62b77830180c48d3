"""The metrics recorder on hand-made episodes whose metrics are computed by hand.

The toy task: plan (work 1) -> two lookups (work 2 each) -> merge (work 1), with
``max_subagents = 2`` and perfect sub-agents. Serial work 6, critical path 4,
lower bound max(4, ceil(6 / 3)) = 4, ideal speedup 6 / 4 = 1.5.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import swarmgym  # noqa: F401
from swarmgym import SubAgentReliability, SwarmConfig, SwarmEnv, TaskGraph, TaskInstance, draw_fates
from swarmgym.metrics import ALL, RECORDED, MetricsRecorder, RecordSwarmMetrics, RecordSwarmMetricsVector, Stat, t_quantile_975

CONFIG = SwarmConfig(max_subagents=2, reliability=SubAgentReliability.perfect())
N_MAX = 4
DO, SPAWN, WAIT, ANSWER = 0, N_MAX, 2 * N_MAX, 2 * N_MAX + 1


def toy_instance(family: str = "Toy") -> TaskInstance:
    graph = TaskGraph([1, 2, 2, 1], ["plan", "search", "search", "merge"], [[], [0], [0], [1, 2]], family=family, budget_factor=3.0)
    return TaskInstance(graph, draw_fates(graph, CONFIG, np.random.default_rng(0)))


def play(actions: list[int], family: str = "Toy") -> dict:
    env = SwarmEnv(generator=lambda rng: toy_instance(family).graph, config=CONFIG, n_max=N_MAX, strict=True)
    env.reset(seed=0, options={"instance": toy_instance(family)})
    for a in actions:
        _, _, terminated, _, info = env.step(a)
    assert terminated
    return info["metrics"]


# A: the orchestrator does everything: 6 turns of 900 tokens (800 in, 100 out).
SEQUENTIAL = [DO + 0, DO + 1, DO + 1, DO + 2, DO + 2, DO + 3, ANSWER]
# B: do the plan, spawn both lookups (together), wait 2 ticks, do the merge.
PARALLEL = [DO + 0, SPAWN + 1, SPAWN + 2, WAIT, DO + 3, ANSWER]
# C: do the plan, spawn one lookup and wait for it alone (isolated), do the other lookup and the merge.
ISOLATED = [DO + 0, SPAWN + 1, WAIT, DO + 2, DO + 2, DO + 3, ANSWER]


def test_hand_made_episodes__metrics_match_hand_computation():
    a, b, c = play(SEQUENTIAL), play(PARALLEL), play(ISOLATED)
    # A: t = 6, speedup 1, all of the available 1.5x left unused
    assert (a["critical_steps"], a["serial_steps"], a["lower_bound"]) == (6, 6, 4)
    assert a["speedup"] == 1.0 and a["ideal_speedup"] == 1.5 and a["serial_collapse_index"] == 1.0
    assert a["n_spawned"] == 0 and a["spurious_spawn_rate"] == 0.0 and a["mean_concurrency"] == 0.0
    assert (a["input_tokens"], a["output_tokens"]) == (4800, 600)
    assert a["cost_usd"] == pytest.approx(4800 * 0.6e-6 + 600 * 3e-6)
    # B: t = 4 = the lower bound; 2 spawns, both overlapped (2 running) -> nothing spurious
    assert b["critical_steps"] == 4 and b["speedup"] == 1.5 and b["serial_collapse_index"] == 0.0
    assert b["n_spawned"] == 2 and b["n_subagent_ok"] == 2 and b["n_subagent_isolated"] == 0
    assert b["spurious_spawn_rate"] == 0.0
    assert b["mean_concurrency"] == 1.0  # 2 sub-agents x 2 ticks / 4 ticks
    np.testing.assert_allclose(b["concurrency_profile"], [0.5, 0.0, 0.5])
    # tokens: 3 turns x (800, 100); 2 hand-offs of 150 + 300 x 1 parent (both ways);
    # 2 sub-agents x 2 ticks x (400 in, 100 x 1.5 out); 2 results of 200 (both ways)
    assert b["input_tokens"] == 3 * 800 + 2 * 450 + 2 * 2 * 400 + 2 * 200 == 5300
    assert b["output_tokens"] == 3 * 100 + 2 * 450 + 2 * 2 * 150 + 2 * 200 == 2200
    # C: t = 6 (plan 1 + wait 2 + lookup 2 + merge 1), the one spawn ran alone -> spurious
    assert c["critical_steps"] == 6 and c["speedup"] == 1.0 and c["serial_collapse_index"] == 1.0
    assert c["n_subagent_isolated"] == 1 and c["spurious_spawn_rate"] == 1.0
    assert c["mean_concurrency"] == pytest.approx(2 / 6)
    np.testing.assert_allclose(c["concurrency_profile"], [4 / 6, 2 / 6, 0.0])


def test_recorder__means_and_confidence_intervals_by_hand():
    rec = MetricsRecorder()
    for actions in (SEQUENTIAL, PARALLEL, ISOLATED):
        rec.add(play(actions))
    s = rec.summary("Toy")
    # speedups 1, 1.5, 1: mean 7/6, sample sd sqrt(1/12), half-width t_{.975,2} sd / sqrt(3) = 4.303 / 6
    assert s["speedup"].mean == pytest.approx(7 / 6)
    assert s["speedup"].std == pytest.approx(math.sqrt(1 / 12))
    assert s["speedup"].half_width == pytest.approx(4.303 / 6)
    assert (s["speedup"].low, s["speedup"].high) == pytest.approx((7 / 6 - 4.303 / 6, 7 / 6 + 4.303 / 6))
    assert s["critical_steps"].mean == pytest.approx(16 / 3)
    assert s["serial_collapse_index"].mean == pytest.approx(2 / 3)
    assert s["spurious_spawn_rate"].mean == pytest.approx(1 / 3)
    assert s["makespan_ratio"].mean == pytest.approx((6 / 4 + 4 / 4 + 6 / 4) / 3)
    assert s["task_makespan_ratio"].mean == pytest.approx((6 / 4 + 4 / 4 + 6 / 4) / 3)
    assert s["n_spawned"].mean == pytest.approx(1.0)
    assert s["tokens"].mean == pytest.approx((5400 + 7500 + play(ISOLATED)["tokens"]) / 3)
    assert s["idle_share"].mean == pytest.approx((1.0 + 0.5 + 4 / 6) / 3)
    assert s["score"].mean == 1.0 and s["score"].half_width == 0.0
    assert s["budget_exhausted"].mean == 0.0
    np.testing.assert_allclose(rec.concurrency_profile("Toy"), np.mean([[1, 0, 0], [0.5, 0, 0.5], [4 / 6, 2 / 6, 0]], axis=0))
    assert set(s) == set(RECORDED) and s["speedup"].n == 3


def test_recorder__groups_by_family_and_pools_all():
    rec = MetricsRecorder()
    rec.add(play(SEQUENTIAL, "Toy"))
    rec.add(play(PARALLEL, "Toy"))
    rec.add(play(ISOLATED, "Other"))
    assert rec.families == ["Other", "Toy"]
    assert rec.n_episodes("Toy") == 2 and rec.n_episodes() == 3 and len(rec) == 3
    assert rec.summary("Toy")["critical_steps"].mean == 5.0
    assert rec.summary(ALL)["critical_steps"].mean == pytest.approx(16 / 3)
    one = rec.summary("Other")["critical_steps"]
    assert one.mean == 6.0 and math.isnan(one.half_width) and one.n == 1
    with pytest.raises(KeyError, match="no episodes of family"):
        rec.summary("Missing")
    with pytest.raises(KeyError, match="not recorded"):
        rec.values("nonsense")
    other = MetricsRecorder()
    other.extend(rec)
    assert other.n_episodes() == 3
    np.testing.assert_array_equal(other.values("critical_steps", "Toy"), [6, 4])


def test_t_quantile__table_and_interpolation():
    assert t_quantile_975(1) == 12.706 and t_quantile_975(30) == 2.042
    assert t_quantile_975(45) == pytest.approx(2.014, abs=1e-3)
    assert t_quantile_975(100) == pytest.approx(1.984, abs=1e-3)
    assert t_quantile_975(1000) == pytest.approx(1.962, abs=1e-3)
    with pytest.raises(ValueError):
        t_quantile_975(0)
    assert math.isnan(Stat.of([]).mean)
    assert Stat.of([1.0, 3.0]).format(1) == "2.0 ± 12.7"


def test_record_wrappers__single_and_vector_record_every_finished_episode():
    env = RecordSwarmMetrics(gym.make("swarmgym/Mixed-v0"))
    rng = np.random.default_rng(0)
    finished = 0
    _, info = env.reset(seed=0)
    for _ in range(300):
        a = rng.choice(np.flatnonzero(info["action_mask"]))
        _, _, terminated, truncated, info = env.step(a)
        if terminated or truncated:
            finished += 1
            _, info = env.reset()
    assert finished > 3 and env.recorder.n_episodes() == finished

    venv = RecordSwarmMetricsVector(gym.make_vec("swarmgym/Mixed-v0", num_envs=4, vectorization_mode="sync"))
    _, info = venv.reset(seed=0)
    ended = 0
    for _ in range(200):
        masks = info["action_mask"]
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])  # a terminal mask allows answer: never empty
        _, _, terminated, truncated, info = venv.step(actions)
        ended += int(np.sum(terminated | truncated))
    assert ended > 3 and venv.recorder.n_episodes() == ended
    assert set(venv.recorder.families) <= {"WideSearch", "SerialReasoning", "DependentChains", "LayeredDAG"}
    assert venv.recorder.concurrency_profile().shape == (9,)


def test_record_vector__on_the_default_vector_entry_point():
    """The batched SwarmVectorEnv (``make_vec`` default) emits the same episode infos."""
    venv = gym.make_vec("swarmgym/Mixed-v0", num_envs=8)
    from swarmgym.orchestrators import load_orchestrator

    venv = RecordSwarmMetricsVector(venv)
    policy = load_orchestrator("critical_path")
    obs, info = venv.reset(seed=0)
    ended = 0
    for _ in range(150):
        obs, _, terminated, truncated, info = venv.step(policy.act(obs, info["action_mask"]))
        ended += int(np.sum(np.asarray(terminated) | np.asarray(truncated)))
    rec = venv.recorder
    assert ended > 8 and rec.n_episodes() == ended
    assert set(rec.families) <= {"WideSearch", "SerialReasoning", "DependentChains", "LayeredDAG"}
    s = rec.summary()
    assert 0.0 <= s["score"].mean <= 1.0 and s["makespan_ratio"].mean >= 1.0
    np.testing.assert_allclose(rec.concurrency_profile().sum(), 1.0, atol=1e-6)


# ------------------------------------------------------------------ one definition of the metric keys
def test_simulator_metrics__keys_are_exactly_the_layout_metric_keys_in_order():
    from swarmgym.layout import METRIC_KEYS

    env = SwarmEnv("Mixed")
    for seed in range(20):
        env.reset(seed=seed)
        _, _, terminated, _, info = env.step(env.layout.answer)
        assert terminated and tuple(info["metrics"]) == METRIC_KEYS


def test_readme__metrics_table_is_the_layout_metrics_table():
    from pathlib import Path

    from swarmgym.layout import METRICS

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Metrics") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {row.split("|")[1].strip().strip("`"): row.split("|", 2)[2].rsplit("|", 1)[0].strip() for row in rows}
    assert list(table) == list(METRICS)
    assert table == dict(METRICS)


def test_recorder__records_only_metric_keys_or_declared_derived_quantities():
    from swarmgym.layout import SCALAR_METRIC_KEYS
    from swarmgym.metrics import DERIVED

    assert set(RECORDED) <= set(SCALAR_METRIC_KEYS) | set(DERIVED)
    assert set(DERIVED) <= set(RECORDED)
