"""stable-baselines3 baselines: configs, checkpoints, and a short MaskablePPO+PARL run that beats random."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sb3_contrib")

import torch  # noqa: E402

from swarmgym.evaluation import cli_main  # noqa: E402
from swarmgym.orchestrators import load_orchestrator  # noqa: E402

SB3_DIR = Path(__file__).resolve().parents[1] / "baselines" / "sb3"


def _load_module():
    spec = importlib.util.spec_from_file_location("sb3_baselines", SB3_DIR / "sb3_baselines.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sb3_baselines", module)
    spec.loader.exec_module(module)
    return module


B = _load_module()
HELD_OUT = 100_000  # evaluation seeds 100000.., disjoint from the training seeds


@pytest.mark.parametrize("path", sorted((SB3_DIR / "configs").glob("*.toml")), ids=lambda p: p.stem)
def test_configs__parse_and_build_their_envs(path):
    cfg = B.load_config(path)
    assert cfg["algo"] in B.ALGOS and cfg["total_timesteps"] > 0
    assert ("-flat-" in cfg["env_id"]) == (cfg["algo"] == "PPO")
    assert cfg["parl"]["enabled"] == path.stem.endswith("_parl")
    venv = B.make_vec_env(B.load_config(path, n_envs=2), seed=0)
    obs = venv.reset()
    assert len(venv.env_method("action_masks")) == 2 and obs is not None
    if cfg["parl"]["enabled"]:
        assert venv.env_method("lambdas")[0][0] > 0
    venv.close()


def test_load_config__rejects_bad_values():
    base = B.load_config(SB3_DIR / "configs" / "maskable_ppo.toml")
    with pytest.raises(ValueError, match="algo"):
        B.load_config(base | {"algo": "DQN"})
    with pytest.raises(ValueError, match="Dict ids"):
        B.load_config(base | {"env_id": "swarmgym/WideSearch-flat-v0"})
    with pytest.raises(ValueError, match="unknown config keys"):
        B.load_config(base | {"learning_rate": 1.0})
    with pytest.raises(ValueError, match="seeds"):
        B.load_config(base | {"seeds": []})
    with pytest.raises(ValueError, match="env_kwargs .* do not build swarmgym/WideSearch-v0: invalid_action must be one of"):
        B.load_config(base | {"env_kwargs": {"invalid_action": "skip"}})


def test_env_kwargs__reach_the_training_envs():
    cfg = B.load_config(SB3_DIR / "configs" / "ppo_flat_answer.toml", n_envs=2)
    assert cfg["env_kwargs"] == {"invalid_action": "answer"}
    venv = B.make_vec_env(cfg, seed=0)
    assert venv.get_attr("invalid_action") == ["answer", "answer"]
    venv.close()
    plain = B.make_vec_env(B.load_config(SB3_DIR / "configs" / "ppo_flat.toml", n_envs=1), seed=0)
    assert plain.get_attr("invalid_action") == ["waste_tick"]
    plain.close()


def test_maskable_ppo_with_parl__beats_random_on_widesearch(tmp_path):
    """16k steps of MaskablePPO with annealed PARL, then a held-out evaluation on fixed seeds."""
    torch.set_num_threads(1)
    cfg = B.load_config(SB3_DIR / "configs" / "maskable_ppo_parl.toml", total_timesteps=16_384, n_envs=4)
    cfg["ppo"].update(n_steps=256, batch_size=256, n_epochs=4, learning_rate=1e-3, policy_kwargs={"net_arch": [64, 64]})
    model = B.train(cfg, seed=0, out_dir=tmp_path, tensorboard=False)
    assert (tmp_path / "model.zip").is_file()
    learned = B.evaluate_policy(B.SB3Orchestrator(model, "maskable_ppo_parl"), "swarmgym/WideSearch-v0", 100, HELD_OUT)
    rand = B.evaluate_policy(load_orchestrator("random"), "swarmgym/WideSearch-v0", 100, HELD_OUT)
    ppo, rnd = learned.summary()["score"], rand.summary()["score"]
    print(f"held-out score: MaskablePPO+PARL {ppo.format(3)}, random {rnd.format(3)}")
    assert ppo.low > rnd.high and ppo.mean > rnd.mean + 0.3, (ppo, rnd)
    # the checkpoint reloads into the same policy: identical held-out episodes
    again = B.evaluate_policy(B.load_checkpoint(tmp_path), "swarmgym/WideSearch-v0", 20, HELD_OUT)
    before = B.evaluate_policy(B.SB3Orchestrator(model), "swarmgym/WideSearch-v0", 20, HELD_OUT)
    for name in ("score", "critical_steps", "n_spawned"):
        np.testing.assert_array_equal(again.values(name), before.values(name))


def test_ppo_flat__trains_and_evaluates_through_the_dict_adapter(tmp_path):
    cfg = B.load_config(SB3_DIR / "configs" / "ppo_flat_parl.toml", total_timesteps=256, n_envs=2)
    cfg["ppo"].update(n_steps=128, batch_size=128, n_epochs=1)
    model = B.train(cfg, seed=1, out_dir=tmp_path, tensorboard=True)
    assert any((tmp_path / "tb").rglob("events.out.tfevents*"))
    policy = B.load_checkpoint(tmp_path / "model.zip")
    assert policy.flat and not policy.masked and model is not None
    rec = B.evaluate_policy(policy, "swarmgym/WideSearch-flat-v0", 4)
    assert rec.n_episodes() == 4
    # the evaluate command takes the checkpoint as an orchestrator spec
    out = tmp_path / "eval"
    assert cli_main(["-o", f"sb3:{tmp_path}", "random", "--ids", "WideSearch-flat-v0", "-n", "4", "--out", str(out), "--quiet"]) == 0
    rows = (out / "table.csv").read_text().splitlines()[1:]
    assert [r.split(",")[2] for r in rows] == [f"sb3:{tmp_path} (greedy)", f"sb3:{tmp_path} (sampled)", "random"]
