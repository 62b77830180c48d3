"""Masks at episode ends (never empty; a terminal observation allows exactly answer) and the
invalid-action rules (waste_tick, answer, raise)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import swarmgym
from swarmgym import SwarmEnv
from swarmgym.testing import InvariantViolation, check_family, run_episode
from tests.test_metrics import CONFIG, N_MAX, PARALLEL, SPAWN, toy_instance

ANSWER_ONLY = [2 * N_MAX + 1]


def toy_env(**kwargs) -> SwarmEnv:
    env = SwarmEnv(generator=lambda rng: toy_instance().graph, config=CONFIG, n_max=N_MAX, **kwargs)
    env.reset(seed=0, options={"instance": toy_instance()})
    return env


def terminal_mask_views(env: SwarmEnv, obs, info) -> list[list[int]]:
    return [np.flatnonzero(m).tolist() for m in (info["action_mask"], env.action_masks(), np.asarray(obs)[-env.action_space.n :] > 0.5)]


@pytest.mark.parametrize("how", ["answer", "budget", "invalid_answer"])
def test_terminal_mask__allows_exactly_answer_in_info_action_masks_and_flat_observation(how):
    env = toy_env(observation_mode="flat", invalid_action="answer" if how == "invalid_answer" else "waste_tick")
    if how == "answer":
        for a in PARALLEL:
            obs, _, terminated, _, info = env.step(a)
    elif how == "budget":  # the budget (12 ticks) ends it: do nothing but wait the clock out with wasted turns
        terminated = False
        while not terminated:
            obs, _, terminated, _, info = env.step(2 * N_MAX)  # wait with nothing running: invalid, a wasted tick
        assert info["metrics"]["budget_exhausted"] and info["invalid_actions"] == env.sim.budget
    else:
        obs, _, terminated, _, info = env.step(2 * N_MAX)
    assert terminated
    assert terminal_mask_views(env, obs, info) == [ANSWER_ONLY] * 3
    with pytest.raises(RuntimeError, match="the episode is over"):  # the mask is documented as ignored
        env.step(ANSWER_ONLY[0])


def test_terminal_mask__a_live_mask_is_unchanged_and_no_mask_is_before_reset():
    env = SwarmEnv(generator=lambda rng: toy_instance().graph, config=CONFIG, n_max=N_MAX)
    assert not env.action_masks().any()  # before reset there is no observation to mask
    env.reset(seed=0, options={"instance": toy_instance()})
    assert np.flatnonzero(env.action_masks()).tolist() == [0, SPAWN, ANSWER_ONLY[0]]  # do(plan), spawn(plan), answer


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_env_next_step_autoreset__a_masked_sampler_never_sees_an_empty_mask(mode):
    """Gymnasium's vector envs return the terminal observation (NEXT_STEP autoreset): its mask is {answer}."""
    num_envs = 3 if mode == "sync" else 2
    venv = gym.make_vec("swarmgym/SerialReasoning-v0", num_envs=num_envs, vectorization_mode=mode)
    rng = np.random.default_rng(0)
    try:
        _, info = venv.reset(seed=0)
        ended = 0
        for _ in range(60 if mode == "sync" else 25):
            masks = info["action_mask"]
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])  # raises on an empty mask
            _, _, terminated, truncated, info = venv.step(actions)
            for e in np.flatnonzero(terminated):
                assert np.flatnonzero(info["action_mask"][e]).tolist() == [venv.single_action_space.n - 1]
            ended += int(terminated.sum())
        assert ended >= 2
    finally:
        venv.close()


def test_invariant__an_empty_terminal_mask_is_caught():
    class EmptyAtTheEnd(SwarmEnv):
        def action_masks(self):
            mask = super().action_masks()
            return mask & (not self.sim.done) if self.sim is not None else mask

    env = EmptyAtTheEnd(generator=lambda rng: toy_instance().graph, config=CONFIG, n_max=N_MAX)
    with pytest.raises(InvariantViolation, match="mask allows no action on the terminal observation"):
        run_episode(env, 0, lambda mask, step: int(np.flatnonzero(mask)[-1]))  # answers at once


def test_invariant__a_terminal_mask_allowing_more_than_answer_is_caught():
    class Wide(SwarmEnv):
        def action_masks(self):
            mask = super().action_masks()
            if self.sim is not None and self.sim.done:
                mask[0] = True
            return mask

    env = Wide(generator=lambda rng: toy_instance().graph, config=CONFIG, n_max=N_MAX)
    with pytest.raises(InvariantViolation, match=r"terminal observation's mask allows \[0, 9\]; it must allow exactly answer \(9\)"):
        run_episode(env, 0, lambda mask, step: int(np.flatnonzero(mask)[-1]))


# ---------------------------------------------------------------- invalid-action rules


def test_invalid_action__waste_tick_is_the_default_and_every_registered_id_keeps_it():
    for env_id in swarmgym.SUITE_IDS:
        assert "invalid_action" not in gym.spec(env_id).kwargs and "strict" not in gym.spec(env_id).kwargs
        assert gym.make(env_id).unwrapped.invalid_action == "waste_tick"
    env = toy_env()
    _, reward, terminated, _, info = env.step(SPAWN + 3)  # spawn(merge): blocked, so masked out
    assert not terminated and reward == 0.0 and info["invalid_action"] and info["invalid_actions"] == 1 and info["critical_steps"] == 1


def test_invalid_action__answer_ends_the_episode_at_once_and_counts_it():
    env = toy_env(invalid_action="answer")
    env.step(0)  # do(plan): 1 tick
    _, reward, terminated, truncated, info = env.step(SPAWN + 3)
    assert terminated and not truncated
    assert info["invalid_action"] and info["invalid_actions"] == 1 and info["critical_steps"] == 1
    m = info["metrics"]
    assert m["invalid_actions"] == 1 and not m["budget_exhausted"] and reward == m["score"] == 0.0
    assert env.sim.tokens == 900  # one timed turn; the submission itself costs nothing


def test_invalid_action__raise_is_strict():
    for env in (toy_env(invalid_action="raise"), toy_env(strict=True), toy_env(strict=True, invalid_action="raise")):
        assert env.strict and env.invalid_action == "raise"
        with pytest.raises(ValueError, match=r"action 7 \(spawn\(3\)\) is not valid now; valid: \[0, 4, 9\]"):
            env.step(SPAWN + 3)


@pytest.mark.parametrize("rule, steps", [("waste_tick", None), ("answer", 1)])
def test_invalid_action__a_greedy_policy_stuck_on_a_masked_out_action(rule, steps):
    """A policy that always picks a masked-out action stalls until the budget under waste_tick; under answer it cannot."""
    env = gym.make("swarmgym/WideSearch-flat-v0", invalid_action=rule)
    _, info = env.reset(seed=3)
    blocked_merge_spawn = env.unwrapped.n_max + env.unwrapped.instance.graph.n_nodes - 1
    n = 0
    while True:
        _, _, terminated, truncated, info = env.step(blocked_merge_spawn)
        n += 1
        if terminated or truncated:
            break
    budget = env.unwrapped.sim.budget
    assert n == (budget if steps is None else steps)
    assert info["invalid_actions"] == n and info["critical_steps"] == (budget if steps is None else 0)


@pytest.mark.parametrize("rule", ["answer", "raise"])
def test_invalid_action__every_invariant_holds_under_each_rule(rule):
    check_family("swarmgym/LayeredDAG-v0", max_examples=15, batched=False, invalid_action=rule)
