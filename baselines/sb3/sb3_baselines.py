"""stable-baselines3 baselines on swarmgym: MaskablePPO on the Dict envs, PPO on the flat envs,
each with or without the PARL reward (:class:`swarmgym.parl.ParlReward`).

Used by ``train.py`` and ``evaluate.py`` beside this file (and by the tests). A run is
described by a TOML config (``configs/*.toml``):

========================  ==================================================================
``algo``                  ``"MaskablePPO"`` (Dict ids, masks from ``action_masks()``) or ``"PPO"``
``env_id``                a registered id (flat ids for PPO)
``seeds``                 training seeds (one run each)
``total_timesteps``       env steps per run
``n_envs``                envs in the DummyVecEnv
``eval_episodes``         held-out evaluation episodes after training
``eval_seed_offset``      first evaluation seed (disjoint from the training seeds)
``env_kwargs``            optional keyword arguments of ``gymnasium.make`` for training and
                          evaluation, e.g. ``{invalid_action = "answer"}`` (checked by building
                          one env when the config is loaded)
``[ppo]``                 keyword arguments of the SB3 algorithm (``policy_kwargs`` a sub-table)
``[parl]``                ``enabled`` and the keyword arguments of ``ParlReward`` (``lambda1`` /
                          ``lambda2``: a number or a table of ``LambdaSchedule`` arguments;
                          ``total_steps`` defaults to ``total_timesteps``)
========================  ==================================================================

Training seeds env ``k`` of run ``s`` with ``1000 * s + k`` and the model with ``s``;
TensorBoard logs go to ``<out>/tb`` (``runs/`` is git-ignored).
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import gymnasium as gym

import swarmgym  # noqa: F401 - registers the suite
from swarmgym.evaluation import resolve_id, run_episodes
from swarmgym.metrics import MetricsRecorder
from swarmgym.orchestrators import Orchestrator, SB3Policy, load_sb3
from swarmgym.parl import ParlReward

ALGOS = ("MaskablePPO", "PPO")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_TOP_KEYS = {"algo", "env_id", "seeds", "total_timesteps", "n_envs", "eval_episodes", "eval_seed_offset", "env_kwargs", "ppo", "parl"}


def load_config(source: str | Path | dict, **overrides: Any) -> dict[str, Any]:
    """Read and check a baseline config (a TOML path or a dict); ``overrides`` replace top-level keys.

    :raises ValueError: naming the key, for an unknown key or a bad value.
    """
    cfg = copy.deepcopy(source) if isinstance(source, dict) else tomllib.loads(Path(source).read_text())
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    if cfg.get("algo") not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {cfg.get('algo')!r}")
    cfg["env_id"] = resolve_id(cfg.get("env_id", ""))
    flat = "-flat-" in cfg["env_id"]
    if cfg["algo"] == "MaskablePPO" and flat:
        raise ValueError("MaskablePPO runs on the Dict ids (the flat form carries the mask in the observation); use PPO for flat ids")
    for key, lo in (("total_timesteps", 1), ("n_envs", 1), ("eval_episodes", 0), ("eval_seed_offset", 0)):
        value = cfg.setdefault(key, {"n_envs": 8, "eval_episodes": 200, "eval_seed_offset": 100_000}.get(key, 1))
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{key} must be an integer >= {lo}, got {value!r}")
    seeds = cfg.setdefault("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    env_kwargs = cfg.setdefault("env_kwargs", {})
    if not isinstance(env_kwargs, dict):
        raise ValueError(f"env_kwargs must be a table of gymnasium.make keyword arguments, got {env_kwargs!r}")
    try:
        gym.make(cfg["env_id"], **env_kwargs).close()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"env_kwargs {env_kwargs!r} do not build {cfg['env_id']}: {exc}") from None
    cfg.setdefault("ppo", {})
    parl = cfg.setdefault("parl", {"enabled": False})
    if not isinstance(parl.get("enabled", False), bool):
        raise ValueError(f"parl.enabled must be true or false, got {parl.get('enabled')!r}")
    return cfg


def make_env(env_id: str, parl: dict | None, total_timesteps: int, seed: int | None = None, env_kwargs: dict | None = None):
    """One training env: ``gymnasium.make(env_id, **env_kwargs)``, the PARL wrapper if enabled, and SB3's Monitor."""
    from stable_baselines3.common.monitor import Monitor

    env = gym.make(env_id, **(env_kwargs or {}))
    if parl and parl.get("enabled"):
        kwargs = {k: v for k, v in parl.items() if k != "enabled"}
        kwargs.setdefault("total_steps", total_timesteps)
        env = ParlReward(env, **kwargs)
    env = Monitor(env)
    env.reset(seed=seed)
    return env


def make_vec_env(cfg: dict[str, Any], seed: int):
    """The DummyVecEnv of a run: ``n_envs`` envs seeded ``1000 * seed + k``."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    fns = [
        (lambda k=k: make_env(cfg["env_id"], cfg["parl"], cfg["total_timesteps"], seed=1000 * seed + k, env_kwargs=cfg["env_kwargs"]))
        for k in range(cfg["n_envs"])
    ]
    venv = DummyVecEnv(fns)
    venv.seed(1000 * seed)
    return venv


def _algo_class(name: str):
    if name == "MaskablePPO":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    from stable_baselines3 import PPO

    return PPO


def train(cfg: dict[str, Any], seed: int, out_dir: str | Path | None = None, *, tensorboard: bool = True, verbose: int = 0):
    """Train one run; returns the model (saved to ``out_dir/model.zip`` when ``out_dir`` is given).

    :param cfg: a config from :func:`load_config`.
    :param seed: the run's seed.
    :param out_dir: where the model and the TensorBoard logs go (None: nothing is written).
    """
    import torch

    algo = _algo_class(cfg["algo"])
    venv = make_vec_env(cfg, seed)
    policy = "MultiInputPolicy" if isinstance(venv.observation_space, gym.spaces.Dict) else "MlpPolicy"
    kwargs = copy.deepcopy(cfg["ppo"])
    out = Path(out_dir) if out_dir is not None else None
    tb = str(out / "tb") if (out is not None and tensorboard) else None
    if tb is not None:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            tb = None
    model = algo(policy, venv, seed=seed, tensorboard_log=tb, verbose=verbose, device="cpu", **kwargs)
    callbacks = []
    if cfg["parl"].get("enabled"):
        from swarmgym.parl import ParlScheduleCallback

        callbacks.append(ParlScheduleCallback())
    torch.manual_seed(seed)
    model.learn(total_timesteps=cfg["total_timesteps"], callback=callbacks or None, tb_log_name=f"seed{seed}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "model.zip")
    venv.close()
    return model


#: An SB3 model as an orchestrator (the package's adapter; kept under this name here).
SB3Orchestrator = SB3Policy


def load_checkpoint(path: str | Path, name: str | None = None) -> SB3Policy:
    """Load a saved model (``model.zip`` or a run folder; MaskablePPO tried first, then PPO)."""
    p = Path(path)
    return load_sb3(str(path), name or (p.name if p.is_dir() else p.parent.name))


def evaluate_policy(
    policy: Orchestrator, env_id: str, n_episodes: int, seed_offset: int = 100_000, env_kwargs: dict | None = None
) -> MetricsRecorder:
    """Held-out evaluation with the metrics recorder (seeds ``seed_offset ..``; ``env_kwargs`` as for ``gymnasium.make``)."""
    return run_episodes(policy, resolve_id(env_id), n_episodes, seed_offset=seed_offset, env_kwargs=env_kwargs)
