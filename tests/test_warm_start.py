"""The serial warm start: behaviour cloning of an orchestrator and the exact spawn-logit offset."""

from __future__ import annotations

import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.layout import ActionLayout
from swarmgym.moe.model import ModelConfig, OrchestratorNet
from swarmgym.moe.ppo import PPOConfig, PPOTrainer
from swarmgym.moe.warm_start import collect_demonstrations, solve_spawn_offset, spawn_probability, warm_start
from swarmgym.orchestrators import load_orchestrator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDE = "swarmgym/WideSearch-v0"
SMALL = dict(num_envs=16, num_steps=24)


def _net(seed: int = 0) -> OrchestratorNet:
    torch.manual_seed(seed)
    return OrchestratorNet(ModelConfig.preset("small"))


@pytest.fixture(scope="module")
def demo():
    return collect_demonstrations(load_orchestrator("sequential_crew"), WIDE, seed=0, **SMALL)


def test_collect_demonstrations__records_the_crews_actions_which_never_spawn(demo):
    n_max = demo["nodes"].shape[1]
    lay = ActionLayout(n_max)
    acts = demo["actions"]
    assert acts.shape == (SMALL["num_envs"] * SMALL["num_steps"],)
    assert not ((acts >= lay.spawn) & (acts < lay.spawn + n_max)).any()
    assert demo["mask"].gather(1, acts[:, None]).all()  # every demonstrated action was valid
    # spawning was possible in many of these states: the crew chose not to
    assert demo["mask"][:, lay.spawn : lay.spawn + n_max].any(1).float().mean() > 0.5


def test_warm_start__clone_of_the_crew_spawns_less_than_the_fresh_network_and_picks_its_action_kinds(demo):
    fresh = _net()
    from swarmgym.moe.warm_start import _logits

    p_fresh, _ = spawn_probability(_logits(fresh, demo))
    model = _net()
    report = warm_start(model, "sequential_crew", WIDE, epochs=10, minibatch=64, seed=0, **SMALL)
    assert report.spawn_prob_cloned < p_fresh / 5
    assert report.kind_accuracy > 0.95
    assert report.spawn_logit_offset == 0.0 and report.spawn_prob == pytest.approx(report.spawn_prob_cloned)


def test_warm_start__spawn_prob_is_reached_by_an_offset_of_the_spawn_bias_alone():
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = warm_start(model, "sequential_crew", WIDE, epochs=0, spawn_prob=1e-3, seed=0, **SMALL)  # no cloning: offset only
    assert report.spawn_prob == pytest.approx(1e-3, rel=2e-3)  # measured by a forward pass after the offset
    after = model.state_dict()
    for k, v in before.items():
        if k == "node_head.bias":
            assert after[k][0] == v[0]
            assert float(after[k][1] - v[1]) == pytest.approx(report.spawn_logit_offset, abs=1e-5)
        else:
            assert torch.equal(after[k], v), k


def test_spawn_probability__rises_with_the_offset_and_leaves_masked_spawns_masked(demo):
    logits = torch.randn(demo["mask"].shape).masked_fill(~demo["mask"], -1e9)
    probs = [spawn_probability(logits, c)[0] for c in (-10.0, -1.0, 0.0, 1.0, 10.0)]
    assert probs == sorted(probs) and probs[0] < 1e-3 < probs[-1]
    n_max = demo["nodes"].shape[1]
    lay = ActionLayout(n_max)
    masked = logits.clone()
    masked[:, lay.spawn : lay.spawn + n_max] = -1e9  # states where no spawn is valid
    assert spawn_probability(masked, 50.0)[0] == 0.0


def test_solve_spawn_offset__unreachable_target_names_the_parameter_and_range():
    logits = torch.zeros(4, 2 * 3 + 2)
    logits[:, 3:6] = -1e9  # every spawn masked
    with pytest.raises(ValueError, match="warm_start_spawn_prob"):
        solve_spawn_offset(logits, 1e-3)


def test_warm_start__bad_spawn_prob_is_rejected_before_work():
    with pytest.raises(ValueError, match="warm_start_spawn_prob"):
        warm_start(_net(), "sequential_crew", WIDE, spawn_prob=1.5)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("warm_start_spawn_prob", 0.0, "warm_start_spawn_prob"),
        ("warm_start", 3, "warm_start"),
        ("perf_form", "speed", "perf_form"),
        ("latency_weight", 2.0, "latency_weight"),
        ("warm_start_steps", 0, r"warm_start_steps must be .*\[1, 100000\]"),
    ],
)
def test_ppo_config__warm_start_and_perf_fields_are_validated(field, value, match):
    with pytest.raises((ValueError, TypeError), match=match):
        PPOConfig(**{field: value})


def _tiny_warm_started_run(**changes) -> PPOConfig:
    """One rollout of 8 x 16 steps on WideSearch after a warm start from the sequential crew."""
    fields = dict(env_id=WIDE, num_envs=8, num_steps=16, total_steps=128, model=ModelConfig.preset("small"))
    fields.update(warm_start="sequential_crew", progress=False, tensorboard=False)
    return PPOConfig(**{**fields, **changes})


def test_ppo_trainer__warm_start_field_clones_before_rl_and_resume_does_not_redo_it(tmp_path):
    cfg = _tiny_warm_started_run(warm_start_spawn_prob=5e-4, warm_start_epochs=2)
    trainer = PPOTrainer(cfg, run_dir=tmp_path)
    rep = trainer.warm_start_report
    assert rep is not None and rep.spawn_prob == pytest.approx(5e-4, rel=2e-3)
    assert rep.states == 64 * 64  # the default demonstration: 64 envs x warm_start_steps=64
    trainer.train()
    resumed = PPOTrainer.resume(tmp_path / "checkpoint.pt", progress=False)
    assert resumed.warm_start_report is None  # the checkpoint's weights are loaded instead
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_ppo_trainer__warm_start_steps_sets_the_demonstration_size():
    cfg = _tiny_warm_started_run(warm_start_steps=3, warm_start_epochs=1)
    assert PPOTrainer(cfg).warm_start_report.states == 64 * 3


def _score_reward(r_perf, metrics, done):
    return {"reward": r_perf[done].float()}


def test_collect_demonstrations__returns_are_the_discounted_episode_reward_and_unfinished_episodes_have_none():
    gamma, T, N = 0.9, 40, 4
    d = collect_demonstrations(
        load_orchestrator("critical_path"), WIDE, seed=0, reward_fn=_score_reward, gamma=gamma, num_envs=N, num_steps=T
    )
    ret, known = d["returns"].view(T, N), d["has_return"].view(T, N)
    reward, end = d["rewards"].view(T, N), d["episode_end"].view(T, N)
    assert end.any(0).all()  # WideSearch episodes are shorter than 40 steps: every env finished one
    assert (reward[end] > 0).all() and (reward[~end] == 0).all()  # the score arrives at the episode's last step only
    for env in range(N):
        last_end = int(end[:, env].nonzero().max())
        assert known[: last_end + 1, env].all() and not known[last_end + 1 :, env].any()
        for t in range(last_end + 1):  # the return recursion, with no bootstrap across an episode's end
            after = 0.0 if end[t, env] else gamma * float(ret[t + 1, env])
            assert float(ret[t, env]) == pytest.approx(float(reward[t, env]) + after, rel=1e-6)


def test_warm_start__critic_fit_learns_the_returns_and_leaves_the_policy_fit_alone():
    model = _net()
    report = warm_start(
        model, "critical_path", WIDE, epochs=20, minibatch=64, seed=0, reward_fn=_score_reward, gamma=0.995, value_coef=0.5, **SMALL
    )
    assert report.value_states > SMALL["num_envs"] * SMALL["num_steps"] // 2
    assert report.kind_accuracy > 0.95
    # WideSearch's returns are ~0.97 discounted by the steps left: the untrained critic (~0) misses them by ~0.9
    assert report.value_rmse < 0.1
    untrained = _net()
    untrained_report = warm_start(untrained, "critical_path", WIDE, epochs=20, minibatch=64, seed=0, **SMALL)
    assert untrained_report.value_states == 0 and untrained_report.value_rmse is None
    from swarmgym.moe.warm_start import _values

    d = collect_demonstrations(load_orchestrator("critical_path"), WIDE, seed=0, reward_fn=_score_reward, gamma=0.995, **SMALL)
    k = d["has_return"]
    assert float((_values(untrained, d)[k] - d["returns"][k]).pow(2).mean().sqrt()) > 5 * report.value_rmse


def test_warm_start__critic_fit_needs_a_reward_and_a_valid_coefficient():
    with pytest.raises(ValueError, match="reward_fn"):
        warm_start(_net(), "critical_path", WIDE, value_coef=0.5, **SMALL)
    with pytest.raises(ValueError, match="value_coef"):
        warm_start(_net(), "critical_path", WIDE, value_coef=-1.0, reward_fn=_score_reward, **SMALL)
    with pytest.raises(ValueError, match="warm_start_value_coef"):
        PPOConfig(warm_start_value_coef=-0.1)


def _anchored_config(**kw) -> PPOConfig:
    base = dict(
        env_id=WIDE,
        num_envs=8,
        num_steps=16,
        total_steps=8 * 16 * 4,
        model=ModelConfig.preset("small"),
        learning_rate=5e-3,
        anneal_lr=False,
        warm_start="sequential_crew",
        warm_start_epochs=2,
        progress=False,
        tensorboard=False,
    )
    base.update(kw)
    return PPOConfig(**base)


def _kl_to(trainer: PPOTrainer, anchor: OrchestratorNet) -> float:
    obs, mask = trainer.next_obs, trainer.next_mask
    with torch.no_grad():
        logp = torch.log_softmax(trainer.model(obs["nodes"], obs["globals"], mask)[0], -1)
        ref = torch.log_softmax(anchor(obs["nodes"], obs["globals"], mask)[0], -1)
    return float((logp.exp() * (logp - ref)).sum(-1).mean())


def test_warm_start_kl__holds_the_policy_near_the_frozen_warm_start_and_resumes_exactly(tmp_path):
    free = PPOTrainer(_anchored_config())
    anchored = PPOTrainer(_anchored_config(warm_start_kl_coef=10.0), run_dir=tmp_path)
    assert free.anchor is None and anchored.anchor is not None
    warm = {k: v.clone() for k, v in anchored.model.state_dict().items()}
    for k, v in free.model.state_dict().items():  # same seed, same clone: the two runs differ only in the penalty
        assert torch.equal(warm[k], v), k
    anchored.train(max_updates=2)
    anchored.save(tmp_path / "checkpoint.pt")
    anchored.train()
    free.train()
    for k, v in anchored.anchor.state_dict().items():  # the anchor stays the warm-started policy
        assert torch.equal(warm[k], v), k
    assert all(row["losses/anchor_kl"] == 0.0 for row in free.history)
    assert all(row["losses/anchor_kl"] > 0.0 for row in anchored.history[1:])
    resumed = PPOTrainer.resume(tmp_path / "checkpoint.pt")
    resumed.train()
    for (k, a), b in zip(anchored.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert _kl_to(anchored, anchored.anchor) < 0.5 * _kl_to(free, anchored.anchor)


def test_warm_start_kl__needs_a_warm_start_and_an_anchor():
    with pytest.raises(ValueError, match="warm_start_kl_coef > 0 needs warm_start"):
        _anchored_config(warm_start=None, warm_start_kl_coef=1.0)
    with pytest.raises(ValueError, match=r"warm_start_kl_coef must be a number in \[0, 100\]"):
        _anchored_config(warm_start_kl_coef=-1.0)
    trainer = PPOTrainer(_anchored_config(warm_start_kl_coef=1.0), warm_start=False)  # warm-started elsewhere
    with pytest.raises(RuntimeError, match="call set_anchor"):
        trainer.train(max_updates=1)


def test_study_warm_start_cache__a_critic_fit_is_keyed_by_the_reward_it_learns(tmp_path):
    from swarmgym.moe.study import _warm_start_cached

    def cached(**kw):
        trainer = PPOTrainer(_anchored_config(num_envs=4, **kw), warm_start=False)
        return _warm_start_cached(trainer, str(tmp_path / "cache"))

    first = cached(warm_start_value_coef=0.5, lambda1=0.1)
    assert first["cached"] is False and first["value_states"] > 0
    assert cached(warm_start_value_coef=0.5, lambda1=0.1)["cached"] is True
    assert cached(warm_start_value_coef=0.5, lambda1=1.0)["cached"] is False  # another reward, another critic
    assert cached(lambda1=0.1)["cached"] is False and cached(lambda1=1.0)["cached"] is True  # no fit: the clone alone
    assert len(list((tmp_path / "cache").iterdir())) == 3


# ---- init_from: a run that starts from a trained run's network


def _perturbed_checkpoint(tmp_path, seed: int = 7):
    """A one-rollout run whose network is shifted away from any fresh initialisation, saved as a checkpoint."""
    cfg = _tiny_warm_started_run(warm_start=None, seed=seed)
    trainer = PPOTrainer(cfg, run_dir=tmp_path)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.25)
    trainer.save(tmp_path / "checkpoint.pt")
    return trainer


def test_init_from__the_run_starts_from_the_checkpoints_network_with_a_fresh_optimiser_and_step_count(tmp_path):
    source = _perturbed_checkpoint(tmp_path / "source")
    fresh = PPOTrainer(_tiny_warm_started_run(warm_start=None, seed=3))
    started = PPOTrainer(_tiny_warm_started_run(warm_start=None, seed=3, init_from=str(tmp_path / "source")))
    saved = source.model.state_dict()
    assert all(torch.equal(started.model.state_dict()[k], v) for k, v in saved.items())  # policy, critic and routing state
    assert not all(torch.equal(fresh.model.state_dict()[k], v) for k, v in saved.items())
    assert started.global_step == 0 and started.update == 0 and not started.optimizer.state


def test_init_from__resume_keeps_the_trained_weights_instead_of_loading_the_start_again(tmp_path):
    _perturbed_checkpoint(tmp_path / "source")
    cfg = _tiny_warm_started_run(warm_start=None, init_from=str(tmp_path / "source" / "checkpoint.pt"))
    trainer = PPOTrainer(cfg, run_dir=tmp_path / "run")
    trainer.train()
    resumed = PPOTrainer.resume(tmp_path / "run", progress=False)
    assert resumed.config.init_from == cfg.init_from
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_init_from__another_architecture_or_layout_is_refused_naming_both(tmp_path):
    _perturbed_checkpoint(tmp_path / "source")
    wider = ModelConfig.preset("small").to_dict() | {"d_model": 32}
    with pytest.raises(ValueError, match=r"init_from .*d_model: 16 there, 32 here"):
        PPOTrainer(_tiny_warm_started_run(warm_start=None, model=wider, init_from=str(tmp_path / "source")))
    with pytest.raises(ValueError, match="init_from .*layout"):
        PPOTrainer(_tiny_warm_started_run(warm_start=None, env_id="swarmgym/DeepResearch-v0", init_from=str(tmp_path / "source")))


@pytest.mark.parametrize(
    "changes,error,match",
    [
        ({"init_from": ""}, TypeError, "init_from must be None or the path"),
        ({"init_from": 3}, TypeError, "init_from must be None or the path"),
        ({"init_from": "runs/x"}, ValueError, "init_from and warm_start both choose the starting policy"),
    ],
)
def test_ppo_config__init_from_is_validated(changes, error, match):
    with pytest.raises(error, match=match):
        _tiny_warm_started_run(**changes)
