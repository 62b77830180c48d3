"""PARL reward: λ schedules, the reward terms, and the single and vector wrappers."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.orchestrators import load_orchestrator
from swarmgym.parl import (
    FINISH_FORMS,
    PARALLEL_FORMS,
    PARL_INFO_KEYS,
    LambdaSchedule,
    ParlReward,
    ParlRewardVector,
    finish_reward,
    parallel_reward,
)
from swarmgym import SwarmEnv
from tests.test_metrics import CONFIG, ISOLATED, N_MAX, PARALLEL, SEQUENTIAL, SPAWN, WAIT, toy_instance

# ---------------------------------------------------------------- schedules


def test_lambda_schedule__values_by_hand():
    lin = LambdaSchedule("linear", 0.4, 0.5, 1000)  # reaches 0 at step 500
    assert [lin(s) for s in (0, 250, 500, 900)] == pytest.approx([0.4, 0.2, 0.0, 0.0])
    cos = LambdaSchedule("cosine", 0.4, 0.5, 1000)
    assert [cos(s) for s in (0, 250, 500)] == pytest.approx([0.4, 0.2, 0.0])
    assert cos(125) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))
    step = LambdaSchedule("step", 0.4, 0.5, 1000)  # 4 stairs: 0.4, 0.3, 0.2, 0.1, then 0
    assert [step(s) for s in (0, 124, 125, 250, 375, 499, 500)] == pytest.approx([0.4, 0.4, 0.3, 0.2, 0.1, 0.1, 0.0])
    assert LambdaSchedule("step", 1.0, 1.0, 10, n_stairs=1)(9) == 1.0
    const = LambdaSchedule("constant", 0.4, 0.5, 1000)
    assert const(0) == const(10**9) == 0.4


@pytest.mark.parametrize("kind", ["linear", "cosine", "step"])
def test_lambda_schedule__anneals_monotonically_to_zero_by_the_fraction(kind):
    s = LambdaSchedule(kind, 1.0, 0.3, 10_000)
    values = [s(t) for t in range(0, 10_001, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert s(2999) > 0 and s(3000) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "exp"}, "kind must be one of"),
        ({"initial": -1.0}, "initial"),
        ({"initial": float("nan")}, "initial"),
        ({"anneal_fraction": 0.0}, "anneal_fraction"),
        ({"anneal_fraction": 1.5}, "anneal_fraction"),
        ({"total_steps": 0}, "total_steps"),
    ],
)
def test_lambda_schedule__rejects_bad_arguments(kwargs, match):
    args = {"kind": "linear", "initial": 0.1, "anneal_fraction": 0.5, "total_steps": 100} | kwargs
    with pytest.raises(ValueError, match=match):
        LambdaSchedule(**args)
    with pytest.raises(ValueError, match="global_step"):
        LambdaSchedule()(-1)


# ---------------------------------------------------------------- reward terms

METRICS = {
    "n_spawned": 12,
    "n_subagent_ok": 8,
    "n_subagent_wrong": 2,
    "n_subagent_isolated": 1,
    "mean_concurrency": 3.0,
    "concurrency_profile": np.zeros(9),
    "spurious_spawn_rate": 5 / 12,
}
EXPECTED_PARALLEL = {"instantiation": 1.0, "useful": 0.7, "concurrency": 3 / 8}
EXPECTED_FINISH = {"finish_rate": 8 / 12, "observed": 10 / 12, "non_spurious": 7 / 12}


@pytest.mark.parametrize("form", PARALLEL_FORMS)
def test_parallel_reward__scalar_numpy_torch_agree(form):
    expected = EXPECTED_PARALLEL[form]
    assert isinstance(parallel_reward(METRICS, form), float)
    assert parallel_reward(METRICS, form) == pytest.approx(expected)
    batch = {k: (np.stack([v, v]) if isinstance(v, np.ndarray) else np.array([v, 0 * v])) for k, v in METRICS.items()}
    out = parallel_reward(batch, form)
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    assert out == pytest.approx([expected, 0.0])
    tbatch = {k: torch.as_tensor(v) for k, v in batch.items()}
    tout = parallel_reward(tbatch, form)
    assert isinstance(tout, torch.Tensor) and tout.shape == (2,)
    assert tout.double().numpy() == pytest.approx([expected, 0.0], abs=1e-6)


@pytest.mark.parametrize("form", FINISH_FORMS)
def test_finish_reward__scalar_numpy_torch_agree_and_zero_without_spawns(form):
    expected = EXPECTED_FINISH[form]
    assert finish_reward(METRICS, form) == pytest.approx(expected)
    batch = {k: (np.stack([v, v]) if isinstance(v, np.ndarray) else np.array([v, 0 * v])) for k, v in METRICS.items()}
    assert finish_reward(batch, form) == pytest.approx([expected, 0.0])
    tout = finish_reward({k: torch.as_tensor(v) for k, v in batch.items()}, form)
    assert isinstance(tout, torch.Tensor)
    assert tout.double().numpy() == pytest.approx([expected, 0.0], abs=1e-6)


def test_parallel_reward__instantiation_caps_and_rejects_bad_input():
    assert parallel_reward({"n_spawned": 3}, cap=10) == pytest.approx(0.3)
    assert parallel_reward({"n_spawned": 30}, cap=10) == 1.0
    with pytest.raises(ValueError, match="form must be one of"):
        parallel_reward(METRICS, "many")
    with pytest.raises(ValueError, match="cap"):
        parallel_reward(METRICS, cap=0)
    with pytest.raises(ValueError, match="form must be one of"):
        finish_reward(METRICS, "done")
    with pytest.raises(KeyError, match="n_spawned"):
        finish_reward({})


# ---------------------------------------------------------------- single-env wrapper


def toy_parl_env(**kwargs) -> ParlReward:
    env = SwarmEnv(generator=lambda rng: toy_instance().graph, config=CONFIG, n_max=N_MAX, strict=True)
    return ParlReward(env, **kwargs)


def play_parl(env: ParlReward, actions: list[int]) -> list[dict]:
    env.reset(seed=0, options={"instance": toy_instance()})
    infos = []
    for a in actions:
        _, reward, terminated, _, info = env.step(a)
        assert set(info["parl"]) == set(PARL_INFO_KEYS)
        assert reward == info["parl"]["total"]
        infos.append(info)
    assert terminated
    return infos


def test_parl_reward__episode_end_on_a_hand_made_episode():
    # the parallel episode: score 1, 2 spawns (0.2 of cap 10), both completed (finish rate 1)
    env = toy_parl_env(lambda1=0.5, lambda2=0.25)
    infos = play_parl(env, PARALLEL)
    assert all(i["parl"]["total"] == 0.0 for i in infos[:-1])
    last = infos[-1]["parl"]
    assert (last["r_perf"], last["r_parallel"], last["r_finish"]) == pytest.approx((1.0, 0.2, 1.0))
    assert last["total"] == pytest.approx(1.0 + 0.5 * 0.2 + 0.25 * 1.0)
    # the isolated episode: one spawn, it completed; the "useful" form does not pay for it
    infos = play_parl(toy_parl_env(lambda1=1.0, lambda2=1.0, parallel_form="useful", finish_form="non_spurious"), ISOLATED)
    assert (infos[-1]["parl"]["r_parallel"], infos[-1]["parl"]["r_finish"]) == (0.0, 0.0)
    # the sequential episode: nothing spawned, no PARL terms
    infos = play_parl(toy_parl_env(lambda1=1.0, lambda2=1.0), SEQUENTIAL)
    assert infos[-1]["parl"]["total"] == 1.0


@pytest.mark.parametrize("parallel_form", PARALLEL_FORMS)
@pytest.mark.parametrize("finish_form", FINISH_FORMS)
def test_parl_reward__per_event_pays_on_events_and_sums_to_the_episode_end_value(parallel_form, finish_form):
    forms = {"parallel_form": parallel_form, "finish_form": finish_form, "lambda1": 0.5, "lambda2": 0.5}
    for actions in (PARALLEL, ISOLATED, SEQUENTIAL):
        end = play_parl(toy_parl_env(**forms), actions)[-1]["parl"]
        per = play_parl(toy_parl_env(payment="per_event", **forms), actions)
        assert sum(i["parl"]["r_parallel"] for i in per) == pytest.approx(end["r_parallel"])
        assert sum(i["parl"]["r_finish"] for i in per) == pytest.approx(end["r_finish"])
    if parallel_form == "instantiation" and finish_form == "finish_rate":
        per = play_parl(toy_parl_env(payment="per_event", **forms), PARALLEL)
        # each spawn pays 1/cap on its own step; the returns pay the finish rate on the wait
        assert [i["parl"]["r_parallel"] for i in per] == pytest.approx([0.0, 0.1, 0.1, 0.0, 0.0, 0.0])
        assert [i["parl"]["r_finish"] for i in per] == pytest.approx([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
        assert PARALLEL[1] == SPAWN + 1 and PARALLEL[3] == WAIT


def test_parl_reward__schedule_follows_own_steps_then_the_global_step():
    env = ParlReward(
        gym.make("swarmgym/WideSearch-v0"), lambda1={"kind": "linear", "initial": 1.0, "anneal_fraction": 1.0}, lambda2=0.3, total_steps=100
    )
    _, info = env.reset(seed=0)
    for _ in range(10):
        _, _, terminated, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
        if terminated:
            _, info = env.reset()
    assert env.global_step == 10 and info["parl"]["lambda1"] == pytest.approx(1.0 - 9 / 100)
    env.set_global_step(50)
    _, _, _, _, info = env.step(env.unwrapped.layout.answer)
    assert info["parl"]["lambda1"] == pytest.approx(0.5) and info["parl"]["lambda2"] == 0.3
    assert env.global_step == 50  # no longer counting its own steps
    assert env.lambdas() == pytest.approx((0.5, 0.3))


def test_parl_reward__rejects_bad_arguments():
    base = gym.make("swarmgym/WideSearch-v0")
    for kwargs, match in [
        ({"payment": "sometimes"}, "payment"),
        ({"parallel_form": "x"}, "parallel_form"),
        ({"finish_form": "x"}, "finish_form"),
        ({"cap": 0}, "cap"),
        ({"lambda1": "big"}, "λ"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            ParlReward(base, **kwargs)


# ---------------------------------------------------------------- vector wrapper


@pytest.mark.parametrize("payment", ["episode_end", "per_event"])
def test_parl_reward_vector__matches_the_single_env_wrapper(payment):
    """On make_vec(sync), env i's first episode earns the same rewards as a single env seeded i."""
    num_envs, kwargs = 4, {"lambda1": 0.5, "lambda2": 0.5, "payment": payment}
    venv = ParlRewardVector(gym.make_vec("swarmgym/Mixed-v0", num_envs=num_envs, vectorization_mode="sync"), **kwargs)
    policy = load_orchestrator("static_fanout")
    obs, info = venv.reset(seed=0)
    vec_rewards: list[list[float]] = [[] for _ in range(num_envs)]
    done = np.zeros(num_envs, dtype=bool)
    while not done.all():
        obs, rewards, terminated, truncated, info = venv.step(policy.act(obs, info["action_mask"]))
        assert set(info["parl"]) == set(PARL_INFO_KEYS) and info["_parl"].all()
        np.testing.assert_allclose(rewards, info["parl"]["total"])
        for i in np.flatnonzero(~done):
            vec_rewards[i].append(float(rewards[i]))
        done |= terminated | truncated
    for i in range(num_envs):
        env = ParlReward(gym.make("swarmgym/Mixed-v0"), **kwargs)
        o, inf = env.reset(seed=i)
        single = []
        while True:
            a = policy.act({k: v[None] for k, v in o.items()}, inf["action_mask"][None])[0]
            o, r, terminated, truncated, inf = env.step(a)
            single.append(r)
            if terminated or truncated:
                break
        assert single == pytest.approx(vec_rewards[i])
    assert venv.global_step > 0 and venv.global_step % num_envs == 0


def test_parl_reward_vector__per_event_needs_simulators():
    venv = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    with pytest.raises(TypeError, match="per-env simulators"):
        ParlRewardVector(venv, payment="per_event")
    ParlRewardVector(venv)  # episode-end payment needs only the infos


# ---------------------------------------------------------------- SB3 callback


def test_schedule_callback__advances_lambda_through_env_method_past_wrappers():
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from swarmgym.parl import ParlScheduleCallback

    total = 256
    schedule = {"kind": "linear", "initial": 1.0, "anneal_fraction": 0.5}

    def make():
        return Monitor(ParlReward(gym.make("swarmgym/WideSearch-v0"), lambda1=schedule, lambda2=schedule, total_steps=total))

    venv = DummyVecEnv([make, make])
    model = MaskablePPO(
        "MultiInputPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu", policy_kwargs={"net_arch": [16]}
    )
    callback = ParlScheduleCallback(update_every=1)
    model.learn(total_timesteps=total, callback=callback)
    steps = venv.env_method("get_wrapper_attr", "global_step")
    assert steps == [model.num_timesteps] * 2
    assert venv.env_method("lambdas")[0] == (0.0, 0.0)  # past anneal_fraction * total
    assert callback.last_lambdas[0] < 1.0
    with pytest.raises(ValueError, match="update_every"):
        ParlScheduleCallback(update_every=0)
    plain = MaskablePPO(
        "MultiInputPolicy", DummyVecEnv([lambda: Monitor(gym.make("swarmgym/WideSearch-v0"))]), n_steps=16, batch_size=16, device="cpu"
    )
    with pytest.raises(ValueError, match="wrapped in swarmgym.parl.ParlReward"):
        plain.learn(total_timesteps=16, callback=ParlScheduleCallback())


def test_parl_reward_vector__on_the_default_vector_entry_point():
    """``gymnasium.make_vec(id)`` builds the batched SwarmVectorEnv; PARL terms are paid from its infos."""
    venv = gym.make_vec("swarmgym/WideSearch-v0", num_envs=4)
    venv = ParlRewardVector(venv, lambda1=0.5, lambda2=0.25)
    policy = load_orchestrator("critical_path")
    obs, info = venv.reset(seed=0)
    paid = 0
    for _ in range(200):
        obs, rewards, terminated, truncated, info = venv.step(policy.act(obs, info["action_mask"]))
        parl = info["parl"]
        np.testing.assert_allclose(np.asarray(rewards, dtype=np.float64), parl["total"], rtol=1e-6)
        if "metrics" in info:
            done = np.asarray(info["_metrics"], dtype=bool)
            metrics = {k: np.asarray(v) for k, v in info["metrics"].items() if not k.startswith("_")}
            np.testing.assert_allclose(parl["r_parallel"][done], parallel_reward(metrics)[done])
            np.testing.assert_allclose(parl["r_finish"][done], finish_reward(metrics)[done])
            np.testing.assert_allclose(
                parl["total"][done], parl["r_perf"][done] + 0.5 * parl["r_parallel"][done] + 0.25 * parl["r_finish"][done]
            )
            paid += int(done.sum())
    assert paid > 0


@pytest.mark.parametrize("parallel_form", PARALLEL_FORMS)
@pytest.mark.parametrize("finish_form", FINISH_FORMS)
def test_parl_reward__per_event_sums_match_on_random_episodes(parallel_form, finish_form):
    """Random masked play on Mixed: per-event payments add up to the episode-end terms."""
    kwargs = {"parallel_form": parallel_form, "finish_form": finish_form, "lambda1": 1.0, "lambda2": 1.0, "cap": 4}
    per_event = ParlReward(gym.make("swarmgym/Mixed-v0"), payment="per_event", **kwargs)
    policy = load_orchestrator("random:seed=5")
    for seed in range(8):
        obs, info = per_event.reset(seed=seed)
        sums = np.zeros(2)
        while True:
            a = policy.act({k: v[None] for k, v in obs.items()}, info["action_mask"][None])[0]
            obs, _, terminated, truncated, info = per_event.step(a)
            sums += (info["parl"]["r_parallel"], info["parl"]["r_finish"])
            if terminated or truncated:
                break
        m = info["metrics"]
        assert sums == pytest.approx([parallel_reward(m, parallel_form, cap=4), finish_reward(m, finish_form)], abs=1e-9)


# ---------------------------------------------------------------- r_finish and per-event payment across episodes

DO_PLAN, ANSWER_NOW = 0, 2 * N_MAX + 1


def test_finish_reward__divides_by_every_spawn_including_those_still_running():
    """A sub-agent still running at the end was spawned and did not finish: it counts in the denominator."""
    m = {"n_spawned": 4, "n_subagent_ok": 2, "n_subagent_wrong": 1, "n_subagent_unfinished": 1, "spurious_spawn_rate": 0.5}
    assert finish_reward(m, "finish_rate") == pytest.approx(2 / 4)
    assert finish_reward(m, "observed") == pytest.approx(3 / 4)
    assert finish_reward(m, "non_spurious") == pytest.approx(0.5)
    # a hand-made episode: the plan, spawn(lookup 1), wait for it (t = 3), spawn(lookup 2), answer while it runs
    env = toy_parl_env(lambda1=0.0, lambda2=1.0)
    infos = play_parl(env, [DO_PLAN, SPAWN + 1, WAIT, SPAWN + 2, ANSWER_NOW])
    metrics = infos[-1]["metrics"]
    assert (metrics["n_spawned"], metrics["n_subagent_ok"], metrics["n_subagent_unfinished"]) == (2, 1, 1)
    assert infos[-1]["parl"]["r_finish"] == pytest.approx(0.5)


@pytest.mark.parametrize("finish_form", FINISH_FORMS)
def test_parl_reward_vector__per_event_sums_match_in_every_episode_not_only_the_first(finish_form):
    """Across autoresets each episode's per-event payments add up to its own episode-end terms
    (the payments made so far are forgotten when an episode ends)."""
    num_envs = 3
    kwargs = {"lambda1": 1.0, "lambda2": 1.0, "cap": 4, "finish_form": finish_form}
    venv = ParlRewardVector(
        gym.make_vec("swarmgym/WideSearch-v0", num_envs=num_envs, vectorization_mode="sync"), payment="per_event", **kwargs
    )
    policy = load_orchestrator("critical_path")
    obs, info = venv.reset(seed=0)
    sums = np.zeros((num_envs, 2))
    checked = np.zeros(num_envs, dtype=int)
    for _ in range(400):
        obs, _, terminated, truncated, info = venv.step(policy.act(obs, info["action_mask"]))
        sums += np.stack([info["parl"]["r_parallel"], info["parl"]["r_finish"]], axis=1)
        for e in np.flatnonzero(terminated | truncated):
            m = {k: np.asarray(v)[e] for k, v in info["metrics"].items()}
            want = [parallel_reward(m, cap=4), finish_reward(m, finish_form)]
            assert sums[e] == pytest.approx(want, abs=1e-9), f"env {e}, episode {checked[e] + 1}"
            assert want[0] > 0  # the critical-path scheduler spawns: a stale payment would show
            sums[e] = 0.0
            checked[e] += 1
    assert (checked >= 3).all()
