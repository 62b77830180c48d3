"""Registry-driven tests: every registered swarmgym id (Minigrid's tests/test_envs.py habit)."""

from __future__ import annotations

import copy

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import swarmgym

SUITE = list(swarmgym.SUITE_IDS)
DICT_IDS = [i for i in SUITE if "-flat-" not in i]

# Warnings we know about and accept, each with its reason:
EXPLAINED_WARNINGS = (
    # SB3 recommends flattening 2-D Box entries of a Dict observation. `nodes` is a
    # [n_max, features] token matrix on purpose (set/graph models read it row-wise);
    # SB3's MultiInputPolicy flattens it itself, and the -flat ids exist for 1-D users.
    "has an unconventional shape (neither an image, nor a 1D vector)",
)


def _unexplained(caught) -> list[str]:
    return [str(w.message) for w in caught if not any(e in str(w.message) for e in EXPLAINED_WARNINGS)]


def _rollout(env, seed: int, steps: int = 200):
    """Random masked actions from a seeded rng; returns the trajectory."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    traj = [(obs, info["action_mask"])]
    for _ in range(steps):
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, truncated, info = env.step(action)
        traj.append((obs, reward, terminated, truncated, info["action_mask"], info.get("metrics", {}).get("score")))
        if terminated or truncated:
            obs, info = env.reset()
            traj.append((obs, info["action_mask"]))
    return traj


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def test_suite__registers_every_family_in_both_forms():
    names = ["WideSearch", "SerialReasoning", "DependentChains", "LayeredDAG", "Mixed", "Workflows", "DeepResearch", "VerifiedPipeline"]
    names += ["DeepResearchHard", "VerifiedPipelineHard", "LayeredDAGHard"]
    families = [n.removesuffix("Hard") for n in names]  # a Hard id is a setting of its family's generator
    expected = [x for n in names for x in (f"swarmgym/{n}-v0", f"swarmgym/{n}-flat-v0")]
    assert SUITE == expected
    for i, family in zip(SUITE, [f for f in families for _ in range(2)]):  # what each id builds, not only that it exists
        spec = gym.spec(i)
        assert spec.kwargs["generator"] == family and spec.kwargs["observation_mode"] == ("flat" if "-flat-" in i else "dict")
        assert (spec.entry_point, spec.vector_entry_point) == ("swarmgym.env:SwarmEnv", "swarmgym.batched:SwarmVectorEnv")


def test_registration__is_idempotent():
    before = {i: gym.spec(i).kwargs for i in SUITE}
    again = swarmgym.register_suite()
    assert again == SUITE
    assert {i: gym.spec(i).kwargs for i in SUITE} == before


@pytest.mark.parametrize("env_id", SUITE, ids=SUITE)
def test_env__passes_gymnasium_check_env(env_id):
    env = gym.make(env_id, render_mode="ansi").unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env, skip_render_check=False)
    assert _unexplained(caught) == []


@pytest.mark.parametrize("env_id", SUITE, ids=SUITE)
def test_env__passes_sb3_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True)
    assert _unexplained(caught) == []


@pytest.mark.parametrize("env_id", SUITE, ids=SUITE)
def test_env__same_seed_same_episode(env_id):
    a, b = _rollout(gym.make(env_id), seed=3), _rollout(gym.make(env_id), seed=3)
    assert _equal(a, b)


@pytest.mark.parametrize("env_id", DICT_IDS, ids=DICT_IDS)
def test_env__different_seeds_differ(env_id):
    a, b = _rollout(gym.make(env_id), seed=1, steps=30), _rollout(gym.make(env_id), seed=2, steps=30)
    assert not _equal(a, b)


@pytest.mark.parametrize("clone_of", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy], ids=["pickle", "deepcopy"])
@pytest.mark.parametrize("env_id", SUITE, ids=SUITE)
def test_env__pickles_mid_episode_and_continues_identically(env_id, clone_of):
    """A pickled or deep-copied env continues as the original: observations, rewards, flags and masks."""
    env = gym.make(env_id)
    obs, info = env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(4):
        valid = np.flatnonzero(info["action_mask"][:-1])
        obs, _, terminated, _, info = env.step(int(rng.choice(valid)) if len(valid) else env.action_space.n - 1)
        if terminated:
            obs, info = env.reset()
    clone = clone_of(env)
    for _ in range(10):
        valid = np.flatnonzero(info["action_mask"][:-1])
        action = int(rng.choice(valid)) if len(valid) else env.action_space.n - 1
        out_a, out_b = env.step(action), clone.step(action)
        assert _equal(out_a[:4], out_b[:4])
        np.testing.assert_array_equal(out_a[4]["action_mask"], out_b[4]["action_mask"])
        info = out_a[4]
        if out_a[2]:
            assert _equal(env.reset(seed=9), clone.reset(seed=9))
            obs, info = env.reset(seed=9)
            clone.reset(seed=9)


@pytest.mark.parametrize("env_id", DICT_IDS, ids=DICT_IDS)
def test_reset__with_and_without_options(env_id):
    env = gym.make(env_id)
    obs0, info0 = env.reset(seed=11)
    instance = env.unwrapped.instance
    obs1, info1 = env.reset()  # no seed, no options: a new instance
    assert env.observation_space.contains(obs1)
    obs2, info2 = env.reset(options={"instance": instance})  # replay the first instance
    assert _equal(obs0, obs2) and np.array_equal(info0["action_mask"], info2["action_mask"])
    obs3, _ = env.reset(options={"graph": instance.graph})  # same graph, fresh fates
    assert np.array_equal(obs3["nodes"], obs0["nodes"])
    with pytest.raises(ValueError, match="reset options"):
        env.reset(options={"nope": 1})
    with pytest.raises(TypeError, match="TaskInstance"):
        env.reset(options={"instance": "not an instance"})


@pytest.mark.parametrize("env_id", DICT_IDS, ids=DICT_IDS)
def test_render__ansi_shows_every_node_and_the_clock(env_id):
    env = gym.make(env_id, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    n = env.unwrapped.instance.graph.n_nodes
    assert isinstance(text, str) and "t=0/" in text
    assert len([line for line in text.splitlines() if line[:3].strip().isdigit()]) == n


@pytest.mark.parametrize("env_id", SUITE, ids=SUITE)
def test_spec__round_trips_through_json(env_id):
    spec = gym.spec(env_id)
    again = gym.envs.registration.EnvSpec.from_json(spec.to_json())
    assert again.kwargs == spec.kwargs and again.entry_point == spec.entry_point
    assert again.vector_entry_point == "swarmgym.batched:SwarmVectorEnv"


def test_make__with_module_prefix_imports_and_registers():
    env = gym.make("swarmgym:swarmgym/WideSearch-flat-v0")
    obs, _ = env.reset(seed=0)
    assert obs.ndim == 1 and env.observation_space.contains(obs)


@pytest.mark.parametrize("env_id", ["swarmgym/WideSearch-flat-v0", "swarmgym/Mixed-flat-v0"])
def test_flat__observation_ends_with_the_action_mask(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=2)
    mask = info["action_mask"]
    assert np.array_equal(obs[-len(mask) :], mask.astype(np.float32))
    dict_env = gym.make(env_id.replace("-flat", ""))
    dobs, _ = dict_env.reset(seed=2)
    assert np.array_equal(obs[: dobs["nodes"].size], dobs["nodes"].ravel())
