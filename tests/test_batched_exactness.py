"""The batched kernel is exact: on the same task instances it produces the reference SwarmEnv's
observations (bitwise float32), rewards, terminations, masks, final observations and episode
metrics, across its own autoresets.

The side-by-side comparison is :mod:`swarmgym.testing`'s (``check_batched`` draws seeds and
mask-respecting action sequences, masked-out actions included, compares every step and follows
the engine's autoresets; ``replay_batched`` replays given actions). ``tests/test_suite_properties.py``
runs it on every suite id with the id's own config; here it runs under configs that take other
code paths (spawn latency, no sub-agents, perfect or unreliable sub-agents, one spawn per turn,
other budgets), under the orchestration mechanics of docs/mechanics.md (each alone, all
together, drawn), drawn configs, drawn graphs, TimeLimit truncation, and graphs wider than one
bit-set word, plus long rollouts that follow the engine's autoresets and bank refreshes.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import swarmgym
from swarmgym import Fates, Fixed, SubAgentReliability, SwarmEnv, TaskGraph
from swarmgym.batched import BatchedSwarmEngine
from swarmgym.batched import kernel as K
from swarmgym.layout import NODE_COLUMN, ActionLayout
from swarmgym.simulator import OK, WRONG, TaskInstance, draw_fates
from swarmgym.testing import check_batched, replay_batched
from swarmgym.testing.strategies import swarm_configs, task_graphs

FAMILY_IDS = [i for i in swarmgym.SUITE_IDS if "-flat-" not in i]

#: Configs whose dynamics take other code paths than the suite's defaults.
CONFIG_VARIANTS = {
    "spawn_ticks": {"spawn_ticks": 2},
    "orchestrator_alone": {"max_subagents": 0},
    "perfect_subagents": {"reliability": SubAgentReliability.perfect().__dict__},
    "one_spawn_per_turn": {"max_subagents": 3, "max_spawns_per_turn": 1, "max_attempts": 1},
    "unreliable": {"reliability": {"fail_base": (0.5,) * 4, "wrong_base": (0.4,) * 4, "max_jitter": 3}, "spawn_ticks": 1},
}
BUDGET_FACTORS = (None, 0.5, 1.0, 3.0)

_UNRELIABLE = {"fail_base": (0.2,) * 4, "wrong_base": (0.4,) * 4, "max_jitter": 2}
_TIERS = (
    {"name": "fast", "slowdown_percent": 50, "error_scale": 2.5, "token_percent": 40, "price_scale": 0.3},
    {"name": "careful", "slowdown_percent": 180, "error_scale": 0.3, "token_percent": 250, "price_scale": 4.0},
    {"name": "odd", "slowdown_percent": 333, "error_scale": 1.0, "token_percent": 77, "price_scale": 1.5},
)
#: The orchestration mechanics of docs/mechanics.md, each alone, then all together (with spawn latency).
MECHANICS = {
    "progressive": {"progressive": True},
    "verification": {"verification": {"base_ticks": 1, "work_percent": 50, "ticks_per_parent": 1}, "reliability": _UNRELIABLE},
    "tiers": {"tiers": _TIERS[:2], "reliability": _UNRELIABLE},
    "hidden_reliability": {"hidden_reliability": (0.2, 3.0), "reliability": _UNRELIABLE},
    "coordination": {"coordination": {"turn_input_per_result": 150, "merge_work_per_subagent_input": 2}},
    "all": {
        "progressive": True,
        "verification": {"base_ticks": 2, "work_percent": 100, "ticks_per_parent": 0},
        "tiers": _TIERS,
        "hidden_reliability": (0.5, 2.0),
        "coordination": {"turn_input_per_result": 40, "merge_work_per_subagent_input": 1},
        "reliability": _UNRELIABLE,
        "spawn_ticks": 1,
    },
}


def _overrides(env_id: str, variant: str | None, budget_factor: float | None = None) -> dict:
    """``gymnasium.make`` keyword overrides: the id's config updated by the variant, and its budget factor."""
    spec = gym.spec(env_id).kwargs
    out: dict = {}
    if variant is not None:
        out["config"] = {**(spec.get("config") or {}), **CONFIG_VARIANTS[variant]}
    if budget_factor is not None and spec["generator"] != "Mixed":
        out["generator_kwargs"] = {**(spec.get("generator_kwargs") or {}), "budget_factor": budget_factor}
    return out


def _engine_kwargs(env_id: str, overrides: dict | None = None) -> dict:
    kwargs = {k: v for k, v in gym.spec(env_id).kwargs.items() if k != "observation_mode"}
    kwargs.update(overrides or {})
    return kwargs


@pytest.mark.parametrize("variant", sorted(CONFIG_VARIANTS))
@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_batched_engine__matches_reference_under_other_configs(env_id, variant):
    """Every family under every variant, two episodes per env (the second an autoreset); the
    budget factor rotates over the grid; the engine, then the same episodes through make_vec."""
    k = FAMILY_IDS.index(env_id) + sorted(CONFIG_VARIANTS).index(variant)
    overrides = _overrides(env_id, variant, BUDGET_FACTORS[k % len(BUDGET_FACTORS)])
    check_batched(env_id, num_envs=3, max_examples=4, episodes=2, **overrides)


@pytest.mark.parametrize("mechanic", sorted(MECHANICS))
@pytest.mark.parametrize("env_id", ["swarmgym/WideSearch-v0", "swarmgym/LayeredDAG-flat-v0", "swarmgym/Mixed-v0"])
def test_batched_engine__matches_reference_under_each_mechanic(env_id, mechanic):
    """Each mechanic alone and all together (the extended layout and observation), two episodes
    per env (the second an autoreset); the engine, then the same episodes through make_vec
    (a flat id: the extended flat encoding)."""
    config = {**(gym.spec(env_id).kwargs.get("config") or {}), **MECHANICS[mechanic]}
    check_batched(env_id, num_envs=3, max_examples=4, episodes=2, config=config)


@pytest.mark.parametrize("env_id", ["swarmgym/WideSearch-v0", "swarmgym/Mixed-flat-v0", "swarmgym/LayeredDAG-v0"])
def test_check_batched__drawn_configs_match_reference(env_id):
    """Drawn dynamics (caps, attempts, spawn latency, reliability, and each mechanic on or off),
    across autoresets."""
    check_batched(env_id, num_envs=2, max_examples=10, episodes=2, drawn_configs=True)


@pytest.mark.parametrize("env_id", ["swarmgym/WideSearch-flat-v0", "swarmgym/DeepResearch-v0"])
def test_check_batched__the_answer_rule_matches_reference(env_id):
    """invalid_action="answer" (a masked-out action is counted, then answers): the drawn play takes
    masked-out actions, the engine and make_vec end those episodes as the reference does."""
    check_batched(env_id, num_envs=3, max_examples=8, episodes=2, invalid_action="answer")


def test_batched_engine__a_masked_out_action_under_the_answer_rule_ends_the_episode_as_the_reference():
    """At reset no node is running, so wait is masked out. Taking it ends the episode at tick 0
    with one invalid action and the score of an empty answer, in the engine as in SwarmEnv; the
    other env of the batch, doing a node, plays on."""
    ref = SwarmEnv("WideSearch", invalid_action="answer")
    ref.reset(seed=0)
    engine = BatchedSwarmEngine("WideSearch", num_envs=2, seed=0, bank_size=2, invalid_action="answer")
    engine.load_instances([ref.instance, ref.instance])
    wait, do_first = engine.layout.wait, engine.layout.do
    assert not bool(engine.action_mask[0, wait]) and bool(engine.action_mask[1, do_first])
    _, reward, terminated, info = engine.step(torch.tensor([wait, do_first]), final_obs=True)
    _, ref_reward, ref_terminated, _, ref_info = ref.step(wait)
    assert ref_terminated and ref_info["metrics"]["invalid_actions"] == 1 and ref_info["metrics"]["critical_steps"] == 0
    assert terminated.tolist() == [True, False]
    assert int(info["metrics"]["invalid_actions"][0]) == 1 and int(info["metrics"]["critical_steps"][0]) == 0
    assert float(reward[0]) == ref_reward


@settings(max_examples=16, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(
    graph=task_graphs(32, nodes=(1, 24)),
    config=swarm_configs(mechanics=True),
    seed=st.integers(0, 2**31),
    steps=st.integers(1, 80),
    with_adjacency=st.booleans(),
)
def test_batched_engine__drawn_graphs_under_drawn_configs_match_reference(graph, config, seed, steps, with_adjacency):
    """A drawn graph (any shape, shuffled ids, extra targets) under drawn dynamics (the mechanics
    included), played with random masked actions (an invalid one now and then) until it ends,
    then across autoresets."""
    kwargs = {"generator": "WideSearch", "config": config.to_dict(), "n_max": 32, "with_adjacency": with_adjacency}
    engine = BatchedSwarmEngine(**kwargs, num_envs=1, bank_size=3, seed=seed % 1000)
    engine.reset()
    instance = TaskInstance(graph, draw_fates(graph, config, np.random.default_rng(seed)))
    engine.load_instances([instance])
    ref = SwarmEnv(**kwargs)
    rng = np.random.default_rng(seed)

    def choose(mask: np.ndarray) -> int:
        if rng.random() < 0.1:
            return int(rng.integers(0, mask.size))
        return int(rng.choice(np.flatnonzero(mask)))

    run_across_autoresets(engine, [ref], choose, max_steps=steps)


@pytest.mark.parametrize("env_id", ["swarmgym/WideSearch-v0", "swarmgym/LayeredDAG-flat-v0", "swarmgym/Mixed-v0"])
def test_batched_engine__time_limit_truncation_matches_reference(env_id):
    """``max_episode_steps``: the truncated step's final observation, mask and infos are the
    reference's (``gymnasium.make(id, max_episode_steps=k)``), through the engine and make_vec."""
    for k in (1, 4):
        check_batched(env_id, num_envs=3, max_examples=4, max_episode_steps=k)


@pytest.mark.parametrize("via", ["engine", "make_vec"])
def test_truncation__final_observation_keeps_can_spawn_and_the_live_mask(via):
    """A truncated episode's final observation is a live state's (``can_spawn`` kept, the live
    mask), as the reference's, cut off from outside."""
    replay_batched("swarmgym/WideSearch-v0", seed=0, actions=[[0]], max_episode_steps=1, via=via)
    spawn_0 = gym.make("swarmgym/WideSearch-v0").unwrapped.layout["spawn"]
    replay_batched("swarmgym/WideSearch-v0", seed=3, actions=[[spawn_0, spawn_0 + 1], [0, 0]], max_episode_steps=2, via=via)


def _spawn_heavy_actions(env_kwargs: dict, seed: int, num_envs: int, steps: int) -> list[list[int]]:
    """Action lists played on reference envs (reset with ``seed + e``): spawn where possible, never answer."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(num_envs):
        env = SwarmEnv(**env_kwargs)
        _, info = env.reset(seed=seed + e)
        n, actions = env.n_max, []
        for _ in range(steps):
            valid = np.flatnonzero(info["action_mask"][: 2 * n + 1])
            if valid.size == 0:
                break
            spawns = valid[(valid >= n) & (valid < 2 * n)]
            a = int(rng.choice(spawns if spawns.size and rng.random() < 0.7 else valid))
            actions.append(a)
            _, _, terminated, _, info = env.step(a)
            if terminated:
                break
        out.append(actions)
    return out


def test_batched_engine__graphs_wider_than_one_bit_set_word_match_reference():
    """n_max = 72 > 32 node slots per bit-set word: parent sets span three words; 16 sub-agents return together."""
    overrides = {
        "generator_kwargs": {"width": (55, 60), "lookup_work": (1, 2)},
        "config": {"max_subagents": 16, "reliability": {"fail_base": (0.3,) * 4, "wrong_base": (0.3,) * 4}},
        "n_max": 72,
    }
    env_kwargs = _engine_kwargs("swarmgym/WideSearch-v0", overrides)
    actions = _spawn_heavy_actions(env_kwargs, seed=1, num_envs=3, steps=150)
    assert BatchedSwarmEngine(**env_kwargs, num_envs=1, bank_size=1).instance["bits"].shape[-1] == 3
    assert replay_batched("swarmgym/WideSearch-v0", 1, actions, **overrides) == actions


# ---------------------------------------------------------------------------------------------
# Long rollouts across the engine's own autoresets and bank refreshes.


def _assert_same_obs(batched: dict, e: int, ref: dict, where: str) -> None:
    for key, value in ref.items():
        got = batched[key][e].numpy()
        assert got.dtype == value.dtype and np.array_equal(got, value), (
            f"{where}: obs[{key!r}] of env {e} differs at {np.argwhere(got != value)[:5].tolist()}"
        )


def _assert_same_metrics(engine: BatchedSwarmEngine, metrics: dict, e: int, ref: dict, where: str) -> None:
    assert set(ref) == {"family"} | (set(metrics) - {"family_id"}), where
    for key, value in ref.items():
        if key == "family":
            assert engine.family_names[int(metrics["family_id"][e])] == value, where
            continue
        got = metrics[key][e].numpy()
        assert np.array_equal(got, np.asarray(value)), f"{where}: metric {key}: batched {got!r} != reference {value!r}"


def run_across_autoresets(engine: BatchedSwarmEngine, refs: list[SwarmEnv], choose, max_steps: int) -> int:
    """Step the engine and one reference env per batch row, the reference following each of the
    engine's autoresets onto the instance it drew; returns the episodes finished."""
    N = engine.num_envs
    obs = engine.observation()
    for e, inst in enumerate(engine.instances()):
        ref_obs, _ = refs[e].reset(options={"instance": inst})
        _assert_same_obs(obs, e, ref_obs, "reset")
    finished = 0
    answer = engine.layout.answer
    for step in range(max_steps):
        mask = engine.action_mask.numpy().copy()
        for e in range(N):
            assert np.array_equal(mask[e], refs[e].action_masks()), f"step {step}: mask of env {e}"
        actions = np.array([choose(mask[e]) for e in range(N)], dtype=np.int64)
        obs, reward, terminated, info = engine.step(torch.from_numpy(actions), final_obs=True)
        instances = None
        for e in range(N):
            ref_obs, ref_reward, ref_terminated, _, ref_info = refs[e].step(int(actions[e]))
            where = f"step {step}, env {e}, action {refs[e].describe_action(int(actions[e]))}"
            assert bool(terminated[e]) == ref_terminated == bool(info["done_mask"][e]), where
            assert float(reward[e]) == ref_reward, f"{where}: reward {float(reward[e])} != {ref_reward}"
            if ref_terminated:
                finished += 1
                _assert_same_obs(info["final_obs"], e, ref_obs, where + " (final obs)")
                final_mask = info["final_mask"][e].numpy()
                assert final_mask[answer] and final_mask.sum() == 1, f"{where}: a terminal mask allows exactly answer"
                assert np.array_equal(final_mask, ref_info["action_mask"]), where
                _assert_same_metrics(engine, info["metrics"], e, ref_info["metrics"], where)
                instances = instances or engine.instances()
                ref_obs, _ = refs[e].reset(options={"instance": instances[e]})
            _assert_same_obs(obs, e, ref_obs, where)
    return finished


@pytest.mark.parametrize("variant", [None, "spawn_ticks", "unreliable"])
@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_batched_engine__long_rollouts_with_autoresets_match_reference(env_id, variant):
    """Long seeded rollouts (a random masked policy that rarely answers): many episodes per
    env, each autoreset drawn from the bank (refreshed every 50 steps) and followed by the reference."""
    kwargs = _engine_kwargs(env_id, _overrides(env_id, variant))
    engine = BatchedSwarmEngine(**kwargs, num_envs=4, bank_size=6, seed=11, refresh_every=50)
    engine.reset(seed=5)
    refs = [SwarmEnv(**kwargs) for _ in range(4)]
    rng = np.random.default_rng(0)
    answer = engine.layout.answer

    def choose(mask: np.ndarray) -> int:
        valid = np.flatnonzero(mask)
        if len(valid) > 1 and rng.random() < 0.97:
            valid = valid[valid != answer]
        return int(rng.choice(valid))

    finished = run_across_autoresets(engine, refs, choose, max_steps=120)
    assert finished >= 4  # the rollout crossed episode boundaries (budgets end every episode)


def test_random_stream__python_and_compiled_draws_agree():
    """The bank-row stream is plain integer arithmetic: the Python functions and the compiled
    kernel draw the same rows (the CUDA simulator runs the Python ones)."""
    engine = BatchedSwarmEngine("WideSearch", num_envs=5, bank_size=7, seed=123)
    engine.reset(seed=99)
    key = K.stream_key(99)
    want = [(K.mix32(key, e, 0) * 7) >> 32 for e in range(5)]
    assert engine.state["env"][:, K.INSTANCE_REF].tolist() == want
    assert all(0 <= K.hash32(x) < 2**32 for x in (0, 1, 2**32 - 1))
    rows = [(K.mix32(key, 0, k) * 7) >> 32 for k in range(2000)]
    assert set(rows) == set(range(7))  # every row is drawn


# ---------------------------------------------------------------------------------------------
# The mechanics across many episodes, and the invalidation of a hand-made episode.

#: Per mechanic, episode metrics whose total over a long rollout shows the mechanic was exercised.
EXERCISED = {
    "progressive": (),
    "verification": ("n_verified", "n_caught", "n_invalidated"),
    "tiers": ("spawned_tier0", "spawned_tier1"),
    "hidden_reliability": ("n_subagent_wrong",),
    "coordination": ("coordination_tokens",),
    "all": ("n_verified", "n_caught", "n_invalidated", "spawned_tier1", "spawned_tier2", "coordination_tokens"),
}


@pytest.mark.parametrize("mechanic", sorted(MECHANICS))
def test_batched_engine__long_rollouts_with_each_mechanic_match_reference(mechanic):
    """Long seeded rollouts of the Mixed family with adjacency (progressive: rows and columns
    appear as nodes are revealed) under each mechanic, a policy that favours spawning any tier
    and verifying; every episode's metrics are the reference's, and the mechanic was exercised."""
    kwargs = {"generator": "Mixed", "config": {"max_subagents": 4, **MECHANICS[mechanic]}, "with_adjacency": True}
    engine = BatchedSwarmEngine(**kwargs, num_envs=4, bank_size=6, seed=3, refresh_every=60)
    engine.reset(seed=7)
    refs = [SwarmEnv(**kwargs) for _ in range(4)]
    layout = engine.layout
    assert layout.extended and engine.action_mask.shape == (4, ActionLayout(engine.n_max, True).n)
    rng = np.random.default_rng(1)
    totals = dict.fromkeys(EXERCISED[mechanic], 0)

    def choose(mask: np.ndarray) -> int:
        if rng.random() < 0.03:
            return int(rng.integers(0, mask.size))  # a masked-out action now and then
        valid = np.flatnonzero(mask)
        extended = valid[valid > layout.answer]  # verify and the further tiers' spawns
        if extended.size and rng.random() < 0.5:
            return int(rng.choice(extended))
        if len(valid) > 1:
            valid = valid[valid != layout.answer]
        return int(rng.choice(valid))

    step = engine.step

    def counting_step(actions, final_obs=False):
        out = step(actions, final_obs=final_obs)
        done = out[3]["done_mask"]
        for key in totals:
            totals[key] += int(out[3]["metrics"][key][done].sum())
        return out

    engine.step = counting_step
    finished = run_across_autoresets(engine, refs, choose, max_steps=150)
    assert finished >= 4
    assert all(totals.values()), totals
    if mechanic == "progressive":
        hidden = [e for e, inst in enumerate(engine.instances()) if any(inst.graph.parents)]
        assert hidden  # a first observation hides the nodes that have parents
        nodes = engine.observation()["nodes"][hidden[0]].numpy()
        assert nodes[:, NODE_COLUMN["present"]].sum() < engine.instances()[hidden[0]].graph.n_nodes


def test_batched_engine__a_caught_wrong_result_cancels_and_resets_its_descendants_as_the_reference():
    """docs/mechanics.md's verification example, played on the engine beside the reference:
    verify catches node 1's wrong result, cancels the sub-agent on its child 4 and resets its
    done grandchild 3; then the episode is redone. Every step's observation, mask and the
    metrics are the reference's."""
    graph = TaskGraph(
        [1, 2, 1, 1, 2], ["plan", "search", "reason", "reason", "search"], [(), (0,), (1,), (2,), (1,)], targets=[3, 4], budget_factor=4.0
    )
    duration = np.array([[1, 1, 1], [2, 2, 2], [1, 1, 1], [1, 1, 1], [5, 5, 5]], dtype=np.int64)[:, :, None]
    outcome = np.array([[OK] * 3, [WRONG, OK, OK], [OK] * 3, [OK] * 3, [OK] * 3], dtype=np.int64)[:, :, None]
    config = {
        "max_subagents": 2,
        "reliability": SubAgentReliability.perfect().__dict__,
        "verification": {"base_ticks": 1, "ticks_per_parent": 1},
    }
    kwargs = {"generator": Fixed(graph), "config": config, "n_max": 8, "with_adjacency": True}
    engine = BatchedSwarmEngine(**kwargs, num_envs=1, bank_size=1)
    engine.load_instances([TaskInstance(graph, Fates(duration, outcome, np.ones(1)))])
    lay = engine.layout
    script = iter([lay.do, lay.spawn + 1, lay.wait, lay.do + 2, lay.spawn + 4, lay.do + 3, lay.verify + 1])
    script = iter([*script, lay.spawn + 1, lay.wait, lay.do + 2, lay.do + 3, lay.do + 4, lay.do + 4, lay.answer])
    seen = {}
    step = engine.step

    def recording_step(actions, final_obs=False):
        out = step(actions, final_obs=final_obs)
        if out[3]["done_mask"][0]:
            seen.update({key: value[0].item() for key, value in out[3]["metrics"].items() if value.dim() == 1})
        return out

    engine.step = recording_step
    assert run_across_autoresets(engine, [SwarmEnv(**kwargs)], lambda mask: next(script), max_steps=14) == 1
    assert (seen["n_verified"], seen["n_caught"], seen["n_invalidated"], seen["n_subagent_cancelled"]) == (1, 1, 3, 1)
    assert seen["score"] == 1.0 and seen["critical_steps"] == 14 and seen["input_tokens"] == 13450
