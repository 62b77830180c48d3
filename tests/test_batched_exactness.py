"""The batched engine is exact: on the same task instances it produces the reference SwarmEnv's
observations (bitwise float32), rewards, terminations, masks, final observations and episode
metrics.

The side-by-side comparison is :mod:`swarmgym.testing`'s (``check_batched`` draws seeds and
mask-respecting action sequences, masked-out actions included, and compares every step;
``replay_batched`` replays given actions). ``tests/test_suite_properties.py`` runs it on every
suite id with the id's own config; here it runs under configs that take other code paths
(spawn latency, no sub-agents, perfect or unreliable sub-agents, one spawn per turn, other
budgets), both reset paths of the engine (index lists and sync-free ``torch.where``), TimeLimit
truncation, and graphs wider than one bit-set word. What the module does not cover is kept here:
long rollouts that follow the engine's own autoresets and bank refreshes.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import swarmgym
from swarmgym import SubAgentReliability, SwarmEnv
from swarmgym.batched import BatchedSwarmEngine
from swarmgym.testing import check_batched, replay_batched

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


def _overrides(env_id: str, variant: str | None, budget_factor: float | None = None) -> dict:
    """``gymnasium.make`` keyword overrides: the id's config updated by the variant, and its budget factor."""
    spec = gym.spec(env_id).kwargs
    out: dict = {}
    if variant is not None:
        out["config"] = {**(spec.get("config") or {}), **CONFIG_VARIANTS[variant]}
    if budget_factor is not None and spec["generator"] != "Mixed":
        out["generator_kwargs"] = {**(spec.get("generator_kwargs") or {}), "budget_factor": budget_factor}
    return out


def _engine_factory(env_id: str, overrides: dict, sync_free: bool):
    """The id's engine with ``overrides``, resetting finished envs by index lists or sync-free."""
    kwargs = {k: v for k, v in gym.spec(env_id).kwargs.items() if k != "observation_mode"}
    kwargs.update(overrides)

    def make_engine(num_envs: int) -> BatchedSwarmEngine:
        return BatchedSwarmEngine(**kwargs, num_envs=num_envs, bank_size=max(2, num_envs), sync_free=sync_free)

    return make_engine


@pytest.mark.parametrize("variant", sorted(CONFIG_VARIANTS))
@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_batched_engine__matches_reference_under_other_configs(env_id, variant):
    """Every family under every variant; the budget factor and the reset path rotate over the grid
    (each factor and each path meets every family and every variant)."""
    k = FAMILY_IDS.index(env_id) + sorted(CONFIG_VARIANTS).index(variant)
    overrides = _overrides(env_id, variant, BUDGET_FACTORS[k % len(BUDGET_FACTORS)])
    if k % 2:  # the sync-free reset path (the engine only; the make_vec side uses the default path)
        check_batched(env_id, num_envs=3, max_examples=6, engine_factory=_engine_factory(env_id, overrides, True), **overrides)
    else:  # the default engine, then the same episodes through gymnasium.make_vec
        check_batched(env_id, num_envs=3, max_examples=6, **overrides)


@pytest.mark.parametrize("env_id", ["swarmgym/WideSearch-v0", "swarmgym/LayeredDAG-flat-v0", "swarmgym/Mixed-v0"])
def test_batched_engine__time_limit_truncation_matches_reference(env_id):
    """``max_episode_steps``: the truncated step's final observation, mask and infos are the
    reference's (``gymnasium.make(id, max_episode_steps=k)``), through the engine and make_vec."""
    for k in (1, 4):
        check_batched(env_id, num_envs=3, max_examples=4, max_episode_steps=k)


@pytest.mark.parametrize("via", ["engine", "make_vec"])
def test_truncation__final_observation_keeps_can_spawn_and_the_live_mask(via):
    """Regression: the engine encoded a truncated episode's final observation as over
    (``can_spawn`` 0, an empty mask) where the reference's, cut off from outside, is live."""
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


@pytest.mark.parametrize("sync_free", [False, True])
def test_batched_engine__graphs_wider_than_one_bit_set_word_match_reference(sync_free):
    """n_max = 72 > 32 node slots per bit-set word: parent sets span three words; 16 sub-agents return together."""
    overrides = {
        "generator_kwargs": {"width": (55, 60), "lookup_work": (1, 2)},
        "config": {"max_subagents": 16, "reliability": {"fail_base": (0.3,) * 4, "wrong_base": (0.3,) * 4}},
        "n_max": 72,
    }
    env_kwargs = {k: v for k, v in gym.spec("swarmgym/WideSearch-v0").kwargs.items() if k != "observation_mode"}
    env_kwargs.update(overrides)
    actions = _spawn_heavy_actions(env_kwargs, seed=1, num_envs=3, steps=150)
    assert _engine_factory("swarmgym/WideSearch-v0", overrides, sync_free)(1)._W == 3
    factory = _engine_factory("swarmgym/WideSearch-v0", overrides, sync_free)
    assert replay_batched("swarmgym/WideSearch-v0", 1, actions, engine_factory=factory, **overrides) == actions


# ---------------------------------------------------------------------------------------------
# Long rollouts across the engine's own autoresets and bank refreshes (swarmgym.testing stops
# comparing an env when its first episode ends, so this comparison is kept here).


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
                assert not info["final_mask"][e].any(), where
                _assert_same_metrics(engine, info["metrics"], e, ref_info["metrics"], where)
                instances = instances or engine.instances()
                ref_obs, _ = refs[e].reset(options={"instance": instances[e]})
            _assert_same_obs(obs, e, ref_obs, where)
    return finished


@pytest.mark.parametrize("sync_free", [False, True])
@pytest.mark.parametrize("variant", [None, "spawn_ticks", "unreliable"])
@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_batched_engine__long_rollouts_with_autoresets_match_reference(env_id, variant, sync_free):
    """Long seeded rollouts (a random masked policy that rarely answers): many episodes per
    env, each autoreset drawn from the bank (refreshed every 50 steps) and followed by the reference."""
    kwargs = {k: v for k, v in gym.spec(env_id).kwargs.items() if k != "observation_mode"}
    kwargs.update(_overrides(env_id, variant))
    engine = BatchedSwarmEngine(**kwargs, num_envs=4, bank_size=6, seed=11, refresh_every=50, sync_free=sync_free)
    engine.reset(seed=5)
    refs = [SwarmEnv(**kwargs) for _ in range(4)]
    rng = np.random.default_rng(0)
    answer = 2 * engine.n_max + 1

    def choose(mask: np.ndarray) -> int:
        valid = np.flatnonzero(mask)
        if len(valid) > 1 and rng.random() < 0.97:
            valid = valid[valid != answer]
        return int(rng.choice(valid))

    finished = run_across_autoresets(engine, refs, choose, max_steps=120)
    assert finished >= 4  # the rollout crossed episode boundaries (budgets end every episode)


def test_float32_features__division_equals_reference_float64_reciprocal_product():
    """The engine divides in float32 where SwarmEnv multiplies by a float64 reciprocal and casts:
    for every integer pair the encodings can meet, both round to the same float32."""
    for w in range(1, 65):
        e = np.arange(0, 200)
        ref = np.minimum(e * (1.0 / w), 1.0).astype(np.float32)
        got = np.minimum(e.astype(np.float32) / np.float32(w), np.float32(1.0))
        assert np.array_equal(ref, got), w


@pytest.mark.parametrize("n", [8, 30, 32, 36, 72, 1020, 1024])
def test_bit_tricks__row_counts_and_bit_sets_equal_their_plain_definitions(n):
    """The engine counts and packs bools through integer views of their bytes: every word width,
    every row length the paths split on (multiples of 4 or not, several words, top byte lanes full)."""
    from swarmgym.batched.engine import SET_BITS, _count

    gen = torch.Generator().manual_seed(n)
    x = torch.rand(500, n, generator=gen) < torch.rand(500, 1, generator=gen)
    x[0], x[1] = True, False
    assert torch.equal(_count(x), x.sum(1))
    if n > 72:
        return
    engine = BatchedSwarmEngine("SerialReasoning", {"depth": (3, 5)}, n_max=n, num_envs=1, bank_size=1)
    words = -(-n // SET_BITS)
    want = [
        sum(1 << (j - SET_BITS * w) for j in range(SET_BITS * w, min(SET_BITS * (w + 1), n)) if row[j])
        for row in x.tolist()
        for w in range(words)
    ]
    assert torch.equal(engine._bits(x), torch.tensor(want, dtype=torch.int64).view(500, words).to(torch.int32))
