"""swarmgym.testing.batched: the batched engine held to the reference env; a broken engine is
caught, shrunk and replayable; check_family runs the comparison where the engine exists."""

from __future__ import annotations

import pytest

import gymnasium as gym

import torch

import swarmgym.testing.batched as tb
from swarmgym.batched import BatchedSwarmEngine, SwarmVectorEnv
from swarmgym.testing import InvariantViolation, check_batched, check_family, replay_batched
from swarmgym.testing.batched import engine_for

ENV_ID = "swarmgym/SerialReasoning-v0"


class LateClockEngine(BatchedSwarmEngine):
    """Reports time_used halved once half the budget is gone (a bug in one global feature)."""

    def step(self, actions, final_obs=False):
        obs, reward, terminated, info = super().step(actions, final_obs=final_obs)
        late = obs["globals"][:, 0] > 0.5
        obs["globals"][late, 0] *= 0.5
        return obs, reward, terminated, info


class SecondEpisodeEngine(BatchedSwarmEngine):
    """Reports time_used halved in every episode after an env's first (a bug only autoresets show)."""

    def step(self, actions, final_obs=False):
        obs, reward, terminated, info = super().step(actions, final_obs=final_obs)
        self.later = getattr(self, "later", torch.zeros(self.num_envs, dtype=torch.bool)) | info["done_mask"]
        obs["globals"][self.later, 0] *= 0.5
        return obs, reward, terminated, info


def make_late_clock_engine(num_envs):
    kwargs = {k: v for k, v in gym.spec(ENV_ID).kwargs.items() if k != "observation_mode"}
    return LateClockEngine(**kwargs, num_envs=num_envs, bank_size=4)


class HalfRewardVectorEnv(SwarmVectorEnv):
    """A vector env that pays half the score (a bug in the vector layer, not the engine)."""

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        return obs, reward * 0.5, terminated, truncated, info


def test_check_batched__catches_and_shrinks_a_broken_engine():
    with pytest.raises(InvariantViolation) as caught:
        check_batched(ENV_ID, engine_factory=make_late_clock_engine, num_envs=2)
    v = caught.value
    assert v.invariant == "batched_matches_reference" and v.replay_with == "replay_batched"
    assert "['globals'][0]" in v.detail  # time_used
    # shrunk: one env answers at once in each of its two episodes, the other stops on the first
    # step past half its budget
    assert min(len(row) for row in v.actions) <= 2, str(v)
    long_env = max(range(2), key=lambda e: len(v.actions[e]))
    budget = gym.make(ENV_ID).unwrapped
    budget.reset(seed=v.seed + long_env)
    assert len(v.actions[long_env]) <= budget.sim.budget, str(v)
    shorter = [row[:-1] if e == long_env else row for e, row in enumerate(v.actions)]
    replay_batched(ENV_ID, v.seed, shorter, engine_factory=make_late_clock_engine)  # one step less: no difference yet
    code = v.replay_code()
    assert "engine_factory=make_engine" in code
    with pytest.raises(InvariantViolation) as again:
        exec(code, {"make_engine": make_late_clock_engine})
    assert (again.value.detail, again.value.actions) == (v.detail, v.actions)


def test_replay_batched__of_a_matching_episode_returns_the_actions():
    answer = 2 * gym.make(ENV_ID).unwrapped.n_max + 1
    assert replay_batched(ENV_ID, seed=5, actions=[[0, 0, answer], [answer]]) == [[0, 0, answer], [answer]]


def test_engine_for__builds_the_ids_engine():
    engine = engine_for("swarmgym/Mixed-flat-v0", 2)
    assert engine.num_envs == 2 and engine.n_max == 32 and engine.config.max_subagents == 8


def test_check_family__runs_the_batched_comparison_for_ids_only(monkeypatch):
    calls = []
    monkeypatch.setattr(tb, "check_batched", lambda env, *args, **kwargs: calls.append(env))
    check_family(ENV_ID, max_examples=2)
    check_family(lambda: gym.make(ENV_ID), max_examples=2)
    check_family(ENV_ID, max_examples=2, batched=False)
    assert calls == [ENV_ID]


def test_check_batched__bad_arguments():
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        check_batched(ENV_ID, num_envs=0)
    with pytest.raises(ValueError, match="profile must be one of"):
        check_batched(ENV_ID, profile="fast")


def test_check_batched__make_vec_side_catches_a_broken_vector_env(request):
    env_id = "testinglab/HalfReward-flat-v0"
    spec = gym.spec("swarmgym/WideSearch-flat-v0")
    gym.register(env_id, entry_point=spec.entry_point, kwargs=spec.kwargs, vector_entry_point=HalfRewardVectorEnv)
    request.addfinalizer(lambda: gym.registry.pop(env_id, None))
    with pytest.raises(InvariantViolation) as caught:
        check_batched(env_id, via="make_vec", num_envs=2)
    v = caught.value
    assert "make_vec" in v.detail and "reward" in v.detail
    assert sum(len(row) for row in v.actions) <= 8, str(v)  # plan, one lookup, answer (+ the other env's answer)
    assert f"replay_batched({env_id!r}, seed={v.seed}, actions={v.actions}, via='make_vec')" in v.replay_code()
    with pytest.raises(InvariantViolation):
        replay_batched(env_id, v.seed, v.actions, via="make_vec")
    check_batched(env_id, via="engine", num_envs=2, max_examples=5)  # the engine itself is fine


def test_check_batched__follows_autoresets_into_later_episodes():
    """A bug only in the episodes an engine starts itself: one episode per env passes, two catch it."""
    kwargs = {k: v for k, v in gym.spec(ENV_ID).kwargs.items() if k != "observation_mode"}

    def factory(num_envs):
        return SecondEpisodeEngine(**kwargs, num_envs=num_envs, bank_size=4)

    check_batched(ENV_ID, engine_factory=factory, num_envs=2, max_examples=5, episodes=1)
    with pytest.raises(InvariantViolation) as caught:
        check_batched(ENV_ID, engine_factory=factory, num_envs=2, max_examples=10, episodes=2)
    assert "observation" in caught.value.detail


def test_check_batched__profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SWARMGYM_TEST_PROFILE", "deep")
    assert tb.default_profile() == "deep"
    monkeypatch.setenv("SWARMGYM_TEST_PROFILE", "fast")
    with pytest.raises(ValueError, match="SWARMGYM_TEST_PROFILE"):
        check_batched(ENV_ID, num_envs=1)
    monkeypatch.delenv("SWARMGYM_TEST_PROFILE")
    assert tb.default_profile() == "ci"
