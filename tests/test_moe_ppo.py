"""The PPO trainer: config validation, reward, GAE, engine adapter, exact resumption."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.moe.engines import GymVectorEngine, make_engine, resolve_env_kwargs
from swarmgym.moe.ppo import PPOConfig, PPOTrainer, logprob_entropy, sample_actions

TINY_MODEL = dict(d_model=16, n_heads=2, n_layers=1, n_experts=4, top_k=2, expert_hidden=16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**kw) -> PPOConfig:
    base = dict(
        env_id="swarmgym/Mixed-v0",
        engine="gym",
        num_envs=4,
        num_steps=16,
        total_steps=4 * 16 * 4,
        num_minibatches=2,
        update_epochs=2,
        model=TINY_MODEL,
        progress=False,
        tensorboard=False,
    )
    base.update(kw)
    return PPOConfig(**base)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_envs=0), "num_envs"),
        (dict(total_steps=10), "total_steps"),
        (dict(gamma=1.5), "gamma"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(lambda_schedule="exp"), "lambda_schedule"),
        (dict(engine="jax"), "engine"),
        (dict(num_minibatches=10**6), "num_minibatches"),
        (dict(token_cost=-1.0), "token_cost"),
    ],
)
def test_config__rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**kwargs)


def test_config__derived_sizes_and_round_trip():
    cfg = tiny_config()
    assert cfg.batch_size == 64 and cfg.minibatch_size == 32 and cfg.num_updates == 4
    assert PPOConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown PPOConfig fields"):
        PPOConfig.from_dict({"num_env": 3})


def test_gae__hand_computed():
    """Two envs, three steps; env 0 ends at t=1 (reward 1), env 1 never ends."""
    trainer = PPOTrainer.__new__(PPOTrainer)
    trainer.config = tiny_config(num_envs=2, num_steps=3, total_steps=6, num_minibatches=1, gamma=0.5, gae_lambda=0.5)
    buf = {
        "rewards": torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]),
        "dones": torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]),
        "values": torch.tensor([[0.2, 0.4], [0.6, 0.4], [0.1, 0.4]]),
        "next_value": torch.tensor([0.3, 0.4]),
    }
    adv, ret = trainer.advantages(buf)
    # env 0: t=2: 0 + .5*.3 - .1 = .05; t=1 (terminal): 1 - .6 = .4; t=0: 0 + .5*.6 - .2 + .25*.4 = .2
    # env 1: delta = .5*.4 - .4 = -.2 each step; A2 = -.2, A1 = -.2 - .05 = -.25, A0 = -.2 - .0625 = -.2625
    assert torch.allclose(adv[:, 0], torch.tensor([0.2, 0.4, 0.05]))
    assert torch.allclose(adv[:, 1], torch.tensor([-0.2625, -0.25, -0.2]))
    assert torch.allclose(ret, adv + buf["values"])


def test_sampling__only_valid_actions_and_logprob():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 10)
    mask = torch.rand(64, 10) < 0.3
    mask[:, 0] = True
    logits = logits.masked_fill(~mask, -1e9)
    a = sample_actions(logits, g)
    assert mask.gather(1, a[:, None]).all()
    logp, ent = logprob_entropy(logits, a)
    ref = torch.distributions.Categorical(logits=logits)
    assert torch.allclose(logp, ref.log_prob(a), atol=1e-5)
    assert torch.allclose(ent, ref.entropy(), atol=1e-5)


def test_episode_reward__parl_terms():
    from swarmgym.parl import LambdaSchedule, finish_reward, parallel_reward

    trainer = PPOTrainer(tiny_config(lambda1=0.5, lambda2=0.25, lambda_schedule="constant", token_cost=0.1))
    assert isinstance(trainer.lambda1, LambdaSchedule)
    metrics = {
        "score": torch.tensor([0.8, 0.0, 1.0], dtype=torch.float64),
        "n_spawned": torch.tensor([4.0, 0.0, 20.0], dtype=torch.float64),
        "n_subagent_ok": torch.tensor([3.0, 0.0, 10.0], dtype=torch.float64),
        "n_subagent_wrong": torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64),
        "n_subagent_failed": torch.tensor([0.0, 0.0, 8.0], dtype=torch.float64),
        "n_subagent_isolated": torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
        "n_subagent_unfinished": torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64),
        "mean_concurrency": torch.tensor([1.0, 0.0, 4.0], dtype=torch.float64),
        "spurious_spawn_rate": torch.tensor([0.25, 0.0, 0.55], dtype=torch.float64),
        "tokens": torch.tensor([50_000.0, 10_000.0, 200_000.0], dtype=torch.float64),
    }
    done = torch.tensor([True, False, True])
    terms = trainer.episode_reward(metrics["score"].float(), metrics, done)
    sel = {k: v[done] for k, v in metrics.items()}
    expected = (
        sel["score"]
        + 0.5 * torch.as_tensor(parallel_reward(sel, form="instantiation", cap=10, max_subagents=8))
        + 0.25 * torch.as_tensor(finish_reward(sel, form="finish_rate"))
        - 0.1 * sel["tokens"] / 1e5
    )
    assert torch.allclose(terms["reward"].double(), expected.double(), atol=1e-6)
    no_parl = PPOTrainer(tiny_config(parl=False))
    assert torch.allclose(no_parl.episode_reward(metrics["score"].float(), metrics, done)["reward"].double(), sel["score"])


def test_gym_engine__matches_single_envs():
    """The adapter's observations, masks and episode metrics equal SwarmEnv's under the same seeds and actions."""
    kwargs = resolve_env_kwargs("swarmgym/WideSearch-v0")
    engine = GymVectorEngine(kwargs, num_envs=3, seed=7)
    obs = engine.reset()
    envs = [gym.make("swarmgym/WideSearch-v0", disable_env_checker=True) for _ in range(3)]
    ref = [env.reset(seed=7 + i) for i, env in enumerate(envs)]
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(120):
        mask = engine.action_mask.numpy()
        for i in range(3):
            assert np.array_equal(obs["nodes"][i].numpy(), ref[i][0]["nodes"])
            assert np.array_equal(mask[i], ref[i][1]["action_mask"])
        acts = np.array([rng.choice(np.flatnonzero(m[:-1])) if m[:-1].any() else len(m) - 1 for m in mask])
        obs, reward, done, info = engine.step(torch.as_tensor(acts))
        for i, env in enumerate(envs):
            o, r, term, trunc, inf = env.step(int(acts[i]))
            assert bool(done[i]) == term
            if term:
                finished += 1
                assert reward[i].item() == pytest.approx(r)
                assert info["metrics"]["score"][i].item() == pytest.approx(inf["metrics"]["score"])
                assert info["metrics"]["critical_steps"][i].item() == inf["metrics"]["critical_steps"]
                assert engine.family_names[int(info["metrics"]["family_id"][i])] == inf["metrics"]["family"]
                o, inf = env.reset()
            ref[i] = (o, inf)
    assert finished > 0


def test_make_engine__validates_and_falls_back():
    with pytest.raises(ValueError, match="engine"):
        make_engine("swarmgym/Mixed-v0", 2, engine="jax")
    with pytest.raises(ValueError, match="not registered"):
        make_engine("swarmgym/Nope-v0", 2, engine="gym")
    engine = make_engine("swarmgym/Mixed-v0", 2, engine="gym", overrides={"config": {"spawn_ticks": 1}})
    assert engine.env_kwargs["config"]["spawn_ticks"] == 1 and engine.env_kwargs["config"]["max_subagents"] == 8
    assert engine.family_names == ["WideSearch", "SerialReasoning", "DependentChains", "LayeredDAG"]


def _has_batched() -> bool:
    try:
        from swarmgym.batched import BatchedSwarmEngine  # noqa: F401
    except ImportError:
        return False
    return True


ENGINES = ["gym"] + (["batched"] if _has_batched() else [])


@pytest.mark.parametrize("engine", ENGINES)
def test_checkpoint__resume_is_exact(tmp_path, engine):
    """Train 2 updates, save, resume for 2 more == 4 uninterrupted updates, parameter for parameter."""
    cfg = tiny_config(engine=engine, env_id="swarmgym/WideSearch-v0", seed=3)
    straight = PPOTrainer(cfg)
    straight.train()
    first = PPOTrainer(cfg, run_dir=tmp_path / "a")
    first.train(max_updates=2)
    assert first.update == 2
    path = first.save(tmp_path / "a" / "checkpoint.pt")
    resumed = PPOTrainer.resume(path)
    assert resumed.update == 2 and resumed.global_step == first.global_step
    resumed.train()
    assert resumed.update == straight.update == 4
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert [r["charts/score"] for r in resumed.history[2:]] == pytest.approx([r["charts/score"] for r in straight.history[2:]], nan_ok=True)


def test_trainer__logs_and_routing_stats(tmp_path):
    cfg = tiny_config(total_steps=4 * 16 * 2, tensorboard=True, model={**TINY_MODEL, "balance": "both"})
    trainer = PPOTrainer(cfg, run_dir=tmp_path)
    history = trainer.train()
    assert len(history) == 2
    row = history[-1]
    for key in (
        "charts/score",
        "charts/critical_steps",
        "charts/speedup",
        "charts/mean_concurrency",
        "charts/serial_collapse_index",
        "charts/spurious_spawn_rate",
        "charts/tokens",
        "parl/lambda1",
        "parl/lambda2",
        "losses/aux_loss",
        "moe/load/l0/e0",
    ):
        assert key in row, key
    loads = [row[f"moe/load/l0/e{e}"] for e in range(4)]
    assert sum(loads) == pytest.approx(1.0, abs=1e-5)
    assert row["losses/aux_loss"] > 0
    assert (tmp_path / "progress.csv").read_text().count("\n") == 3
    assert list((tmp_path / "tb").iterdir())
    assert (tmp_path / "checkpoint.pt").is_file()
    assert trainer.model.moe_layers()[0].expert_bias.abs().sum() > 0  # bias updates ran


@pytest.mark.parametrize("schedule", ["linear", "cosine", "step"])
def test_trainer_lambdas__reach_exactly_zero_at_anneal_fraction_and_stay(schedule):
    """λ1 and λ2 are > 0 before ``anneal_fraction * total_steps`` env steps and exactly 0 from there on,
    in the schedule the trainer holds, in every logged row and in the reward it pays."""
    cfg = tiny_config(
        num_envs=4, num_steps=16, total_steps=64 * 10, anneal_fraction=0.4, lambda_schedule=schedule, lambda1=0.3, lambda2=0.2
    )
    trainer = PPOTrainer(cfg)
    anneal_step = int(0.4 * cfg.total_steps)  # 256 env steps: after update 4 of 10
    for lam, initial in ((trainer.lambda1, 0.3), (trainer.lambda2, 0.2)):
        assert lam(0) == pytest.approx(initial)
        assert lam(anneal_step - 1) > 0.0
        assert [lam(s) for s in (anneal_step, anneal_step + 1, cfg.total_steps, 10 * cfg.total_steps)] == [0.0] * 4
    history = trainer.train()
    assert [row["global_step"] for row in history] == [64 * k for k in range(1, 11)]
    for row in history:
        annealed = row["global_step"] >= anneal_step
        for key in ("parl/lambda1", "parl/lambda2"):
            assert (row[key] == 0.0) if annealed else (row[key] > 0.0), (row["global_step"], key, row[key])
    # the reward paid once annealed is r_perf alone (token_cost is 0): λ really is 0 in the reward
    late = [r for r in history if r["global_step"] - 64 >= anneal_step and r["charts/episodes"] > 0]
    assert late, "no episode finished after the anneal point"
    for row in late:
        assert row["charts/reward"] == pytest.approx(row["charts/score"], abs=1e-6)  # float32 rewards


def test_trainer__anneal_ent_scales_the_entropy_bonus_in_the_loss_on_the_step_size_schedule():
    """With ``anneal_ent`` update k (of N) weighs the entropy by ``ent_coef * (1 - k / N)``: the same
    parameters as a run whose constant ``ent_coef`` is set to that value before each update."""
    cfg = tiny_config(env_id="swarmgym/WideSearch-v0", seed=5, ent_coef=0.5, anneal_ent=True)
    annealed = PPOTrainer(cfg)
    history = annealed.train()
    n = cfg.num_updates
    assert [row["losses/ent_coef"] for row in history] == pytest.approx([0.5 * (1 - k / n) for k in range(n)])
    by_hand = PPOTrainer(tiny_config(env_id="swarmgym/WideSearch-v0", seed=5, ent_coef=0.5))
    for k in range(n):
        by_hand.config.ent_coef = 0.5 * (1 - k / n)
        by_hand.train(max_updates=1)
    for (name, a), (_, b) in zip(annealed.model.state_dict().items(), by_hand.model.state_dict().items()):
        assert torch.equal(a, b), name
    constant = PPOTrainer(tiny_config(env_id="swarmgym/WideSearch-v0", seed=5, ent_coef=0.5))
    assert [row["losses/ent_coef"] for row in constant.train()] == [0.5] * n
    assert any(not torch.equal(a, b) for a, b in zip(constant.model.parameters(), annealed.model.parameters()))


@pytest.mark.parametrize("name", ["anneal_ent", "anneal_lr", "parl"])
def test_config__rejects_a_switch_that_is_not_a_bool(name):
    with pytest.raises(TypeError, match=f"{name} must be true or false"):
        tiny_config(**{name: "yes"})


@pytest.fixture
def max4_id():
    """An id registered with a SwarmConfig object (not a dict) that changes max_subagents."""
    from swarmgym.config import SwarmConfig

    env_id = "swarmgym-test/TrainMax4-v0"
    gym.register(id=env_id, entry_point="swarmgym.env:SwarmEnv", kwargs={"generator": "WideSearch", "config": SwarmConfig(max_subagents=4)})
    yield env_id
    del gym.registry[env_id]


@pytest.mark.parametrize("overrides", [{}, {"config": {"spawn_ticks": 1}}])
def test_trainer__takes_the_resolved_config_of_a_registered_config_object(max4_id, overrides):
    trainer = PPOTrainer(tiny_config(env_id=max4_id, env_overrides=overrides, total_steps=64))
    assert trainer.max_subagents == 4 == trainer.engine.config.max_subagents
    assert trainer.engine.config.spawn_ticks == overrides.get("config", {}).get("spawn_ticks", 0)
    trainer.train()
    assert trainer.update == 1


def test_trainer__rejects_bad_env_overrides_before_training():
    with pytest.raises(ValueError, match="max_subagents"):
        PPOTrainer(tiny_config(env_overrides={"config": {"max_subagents": 999}}))
    with pytest.raises(ValueError, match="bogus"):
        PPOTrainer(tiny_config(env_overrides={"bogus": 1}))
    with pytest.raises(ValueError, match="bogus"):
        PPOTrainer(tiny_config(env_overrides={"config": {"bogus": 1}}))


def test_trainer__rejects_an_unavailable_device():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        PPOTrainer(tiny_config(device="cuda"))
