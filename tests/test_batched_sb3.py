"""The stable-baselines3 VecEnv adapter: SB3's step contract, masks for MaskablePPO, and a short
MaskablePPO run on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
sb3_contrib = pytest.importorskip("sb3_contrib")

from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported  # noqa: E402

from swarmgym import SwarmEnv  # noqa: E402
from swarmgym.batched import BatchedSwarmEngine, SwarmSB3VecEnv  # noqa: E402


def test_adapter__steps_with_terminal_observation_truncation_flag_and_metrics():
    env = SwarmSB3VecEnv(generator="WideSearch", num_envs=3, bank_size=4, max_episode_steps=5)
    obs = env.reset()
    assert set(obs) == {"nodes", "globals"} and obs["nodes"].shape == (3, env.engine.n_max, 20)
    assert is_masking_supported(env)
    masks = get_action_masks(env)
    assert masks.shape == (3, env.action_space.n) and masks.dtype == bool
    ref = SwarmEnv("WideSearch")
    n = env.engine.n_max
    seen_truncated = seen_terminated = False
    for _ in range(12):
        masks = get_action_masks(env)
        # env 0 answers at once; the others never answer (they are truncated at 5 steps)
        actions = np.array([2 * n + 1] + [np.flatnonzero(m[: 2 * n + 1])[0] for m in masks[1:]])
        instances = env.engine.instances()
        obs, rewards, dones, infos = env.step(actions)
        assert rewards.dtype == np.float32 and dones.dtype == bool and len(infos) == 3
        for i in np.flatnonzero(dones):
            info = infos[i]
            assert set(info["terminal_observation"]) == {"nodes", "globals"}
            assert info["metrics"]["family"] == "WideSearch"
            assert info["episode"]["l"] >= 1
            if info["TimeLimit.truncated"]:
                seen_truncated = True
                assert info["episode"]["l"] == 5
            else:
                seen_terminated = True
                ref_obs, ref_info = ref.reset(options={"instance": instances[i]})
                ref_obs, reward, terminated, _, ref_info = ref.step(2 * n + 1)
                np.testing.assert_array_equal(info["terminal_observation"]["nodes"], ref_obs["nodes"])
                assert rewards[i] == np.float32(reward) and info["metrics"]["score"] == ref_info["metrics"]["score"]
        for i in np.flatnonzero(~dones):
            assert infos[i] == {}
    assert seen_truncated and seen_terminated
    assert env.env_method("action_masks", indices=[0, 2])[1].shape == (env.action_space.n,)
    with pytest.raises(AttributeError):
        env.env_method("render")


def test_adapter__flat_mode_observations_end_with_the_mask():
    env = SwarmSB3VecEnv(generator="SerialReasoning", num_envs=2, bank_size=2, observation_mode="flat")
    obs = env.reset()
    assert obs.shape == (2, env.observation_space.shape[0])
    np.testing.assert_array_equal(obs[:, -env.action_space.n :], env.action_masks().astype(np.float32))


def test_adapter__flat_mode_of_an_extended_config_ends_with_the_extended_mask():
    config = {"verification": {"base_ticks": 1}, "tiers": [{}, {"name": "careful", "slowdown_percent": 200}]}
    env = SwarmSB3VecEnv(generator="LayeredDAG", config=config, num_envs=2, bank_size=2, observation_mode="flat")
    single = SwarmEnv("LayeredDAG", config=config, observation_mode="flat")
    assert env.observation_space == single.observation_space and env.action_space == single.action_space
    obs = env.reset()
    assert env.action_space.n == 5 * env.engine.n_max + 2
    np.testing.assert_array_equal(obs[:, -env.action_space.n :], env.action_masks().astype(np.float32))


def test_adapter__bad_arguments():
    with pytest.raises(ValueError, match="observation_mode"):
        SwarmSB3VecEnv(num_envs=2, observation_mode="graph", bank_size=2)
    with pytest.raises(TypeError, match="either an engine"):
        SwarmSB3VecEnv(BatchedSwarmEngine(num_envs=2, bank_size=2), num_envs=2)


def test_maskable_ppo__trains_on_the_adapter():
    """A few thousand steps of MaskablePPO with MultiInputPolicy: it runs, never picks a masked
    action (no invalid actions in any finished episode), and logs episodes."""
    torch.set_num_threads(1)
    env = SwarmSB3VecEnv(generator="WideSearch", num_envs=16, bank_size=32, seed=0)
    model = sb3_contrib.MaskablePPO("MultiInputPolicy", env, n_steps=64, batch_size=256, n_epochs=2, seed=0, device="cpu")
    invalid = []

    from stable_baselines3.common.callbacks import BaseCallback

    class Watch(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "metrics" in info:
                    invalid.append(info["metrics"]["invalid_actions"])
            return True

    model.learn(3072, callback=Watch())
    assert model.num_timesteps >= 3072
    assert len(model.ep_info_buffer) > 0 and invalid and max(invalid) == 0
