"""The batched engine is exact: on the same task instances it produces the reference SwarmEnv's
observations (bitwise float32), rewards, terminations, masks, final observations and episode
metrics, for every family, across configs that take other code paths, along action sequences
drawn step by step from the live mask (with some masked-out actions: the wasted-tick rule)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import swarmgym
from swarmgym import SubAgentReliability, SwarmEnv
from swarmgym.batched import BatchedSwarmEngine

FAMILY_IDS = [i for i in swarmgym.SUITE_IDS if "-flat-" not in i]

#: Configs whose dynamics take other code paths than the suite's defaults.
CONFIG_VARIANTS = {
    "suite": {},
    "spawn_ticks": {"spawn_ticks": 2},
    "orchestrator_alone": {"max_subagents": 0},
    "perfect_subagents": {"reliability": SubAgentReliability.perfect().__dict__},
    "one_spawn_per_turn": {"max_subagents": 3, "max_spawns_per_turn": 1, "max_attempts": 1},
    "unreliable": {"reliability": {"fail_base": (0.5,) * 4, "wrong_base": (0.4,) * 4, "max_jitter": 3}, "spawn_ticks": 1},
}


def _spec_kwargs(env_id: str, config_variant: str, budget_factor: float | None) -> dict:
    kwargs = {k: v for k, v in gym.spec(env_id).kwargs.items() if k != "observation_mode"}
    config = dict(kwargs.get("config") or {})
    config.update(CONFIG_VARIANTS[config_variant])
    kwargs["config"] = config
    if budget_factor is not None and kwargs["generator"] != "Mixed":
        kwargs["generator_kwargs"] = {**(kwargs.get("generator_kwargs") or {}), "budget_factor": budget_factor}
    return kwargs


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
        if isinstance(value, float):
            assert got.dtype == np.float64, key


def run_side_by_side(engine: BatchedSwarmEngine, refs: list[SwarmEnv], choose, max_steps: int) -> int:
    """Step the engine and one reference env per batch row on the same instances (following the
    engine's autoresets), asserting equality at every step; returns the episodes finished."""
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
            ref_obs, ref_reward, ref_terminated, ref_truncated, ref_info = refs[e].step(int(actions[e]))
            where = f"step {step}, env {e}, action {refs[e].describe_action(int(actions[e]))}"
            assert bool(terminated[e]) == ref_terminated and not ref_truncated, where
            assert float(reward[e]) == ref_reward, f"{where}: reward {float(reward[e])} != {ref_reward}"
            assert bool(info["done_mask"][e]) == ref_terminated, where
            if ref_terminated:
                finished += 1
                _assert_same_obs(info["final_obs"], e, ref_obs, where + " (final obs)")
                assert not info["final_mask"][e].any(), where
                _assert_same_metrics(engine, info["metrics"], e, ref_info["metrics"], where)
                instances = instances or engine.instances()
                ref_obs, _ = refs[e].reset(options={"instance": instances[e]})
            _assert_same_obs(obs, e, ref_obs, where)
    return finished


@st.composite
def scenarios(draw):
    env_id = draw(st.sampled_from(FAMILY_IDS))
    variant = draw(st.sampled_from(sorted(CONFIG_VARIANTS)))
    budget_factor = draw(st.sampled_from([None, 0.5, 1.0, 3.0]))
    return env_id, variant, budget_factor


@settings(max_examples=150)  # bounded (about 10 s on 2 cores); the profile's other settings hold
@given(
    scenario=scenarios(),
    seed=st.integers(0, 2**16),
    num_envs=st.integers(1, 3),
    sync_free=st.booleans(),
    data=st.data(),
)
def test_batched_engine__matches_reference_env_step_for_step(scenario, seed, num_envs, sync_free, data):
    env_id, variant, budget_factor = scenario
    kwargs = _spec_kwargs(env_id, variant, budget_factor)
    engine = BatchedSwarmEngine(**kwargs, num_envs=num_envs, bank_size=3, seed=seed, sync_free=sync_free)
    engine.reset(seed=seed)
    refs = [SwarmEnv(**kwargs) for _ in range(num_envs)]
    n = engine.n_max

    def choose(mask: np.ndarray) -> int:
        kind = data.draw(st.sampled_from(["spawn", "spawn", "do", "do", "wait", "wait", "answer", "invalid"]))
        groups = {
            "do": np.flatnonzero(mask[:n]),
            "spawn": n + np.flatnonzero(mask[n : 2 * n]),
            "wait": np.flatnonzero(mask[2 * n : 2 * n + 1]) + 2 * n,
        }
        if kind == "answer":
            return 2 * n + 1
        if kind == "invalid":
            bad = np.flatnonzero(~mask)
            return int(bad[data.draw(st.integers(0, len(bad) - 1))]) if len(bad) else 2 * n + 1
        options = groups[kind] if len(groups[kind]) else np.flatnonzero(mask)
        return int(options[data.draw(st.integers(0, len(options) - 1))])

    run_side_by_side(engine, refs, choose, max_steps=data.draw(st.integers(1, 60)))


@pytest.mark.parametrize("variant", ["suite", "spawn_ticks", "unreliable"])
@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_batched_engine__long_rollouts_with_autoresets_match_reference(env_id, variant):
    """Long seeded rollouts (a random masked policy that rarely answers): many episodes per
    env, each autoreset drawn from the bank and followed by the reference."""
    kwargs = _spec_kwargs(env_id, variant, None)
    engine = BatchedSwarmEngine(**kwargs, num_envs=4, bank_size=6, seed=11, refresh_every=50)
    engine.reset(seed=5)
    refs = [SwarmEnv(**kwargs) for _ in range(4)]
    rng = np.random.default_rng(0)
    answer = 2 * engine.n_max + 1

    def choose(mask: np.ndarray) -> int:
        valid = np.flatnonzero(mask)
        if len(valid) > 1 and rng.random() < 0.97:
            valid = valid[valid != answer]
        return int(rng.choice(valid))

    finished = run_side_by_side(engine, refs, choose, max_steps=120)
    assert finished >= 4  # the rollout crossed episode boundaries (budgets end every episode)


def test_float32_features__division_equals_reference_float64_reciprocal_product():
    """The engine divides in float32 where SwarmEnv multiplies by a float64 reciprocal and casts:
    for every integer pair the encodings can meet, both round to the same float32."""
    for w in range(1, 65):
        e = np.arange(0, 200)
        ref = np.minimum(e * (1.0 / w), 1.0).astype(np.float32)
        got = np.minimum(e.astype(np.float32) / np.float32(w), np.float32(1.0))
        assert np.array_equal(ref, got), w


@pytest.mark.parametrize("sync_free", [False, True])
def test_batched_engine__graphs_wider_than_one_bit_set_word_match_reference(sync_free):
    """n_max = 72 > 52 node slots per word: completions span two words; 16 sub-agents return together."""
    generator_kwargs = {"width": (55, 60), "lookup_work": (1, 2)}
    config = {"max_subagents": 16, "reliability": {"fail_base": (0.3,) * 4, "wrong_base": (0.3,) * 4}}
    engine = BatchedSwarmEngine("WideSearch", generator_kwargs, config, n_max=72, num_envs=3, bank_size=3, seed=1, sync_free=sync_free)
    engine.reset(seed=0)
    assert engine._W == 2
    refs = [SwarmEnv("WideSearch", generator_kwargs, config, n_max=72) for _ in range(3)]
    rng = np.random.default_rng(0)
    n = engine.n_max

    def choose(mask: np.ndarray) -> int:
        valid = np.flatnonzero(mask)
        valid = valid[valid != 2 * n + 1] if len(valid) > 1 else valid
        spawns = valid[(valid >= n) & (valid < 2 * n)]
        return int(rng.choice(spawns if len(spawns) and rng.random() < 0.7 else valid))

    assert run_side_by_side(engine, refs, choose, max_steps=150) >= 3
