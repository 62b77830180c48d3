"""PPO for the orchestrator, with PARL reward schedules (read top to bottom).

The shape follows CleanRL's ``ppo.py``: one config dataclass (a docstring under
every field), derived sizes computed right after construction, one seeding block,
then the loop -- collect a rollout from the engine, compute GAE advantages, run
the clipped PPO update in minibatches, log. Differences from CleanRL:

* the env is an *engine* (:mod:`swarmgym.moe.engines`): torch tensors in and out,
  finished envs reset in place, episode metrics as tensors;
* the reward of a finished episode is
  ``r = r_perf + λ1(t)·r_parallel + λ2(t)·r_finish - token_cost·tokens/1e5``
  (PARL, Kimi K2.5) with λ schedules from :mod:`swarmgym.parl`; 0 on other steps;
* the MoE balance term: the Switch auxiliary loss (``balance="aux"``) and/or the
  DeepSeek-V3 bias update after every optimiser step (``balance="bias"``);
* actions are sampled with a dedicated ``torch.Generator`` (Gumbel-max), and a
  checkpoint stores model, optimiser, step counters, every RNG state and the engine's
  compact state (``engine.state_dict()``), so a resumed run is bit-identical to an
  uninterrupted one;
* the run survives interruption: checkpoints are written atomically at the end, every
  ``checkpoint_every`` updates and every ``checkpoint_seconds`` seconds, and on SIGINT or
  SIGTERM the current update is finished, a checkpoint written and
  :class:`~swarmgym.moe.checkpointing.StopRequested` raised.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import pickle
import random
import sys
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from swarmgym.config import _check_int
from swarmgym.moe.checkpointing import GracefulStop, atomic_torch_save, atomic_write_text, system_info
from swarmgym.moe.engines import make_engine
from swarmgym.layout import ActionLayout
from swarmgym.moe.model import ModelConfig, OrchestratorNet, layout_name

#: Format tag of the checkpoints this version writes (and resumes from).
CHECKPOINT_FORMAT = "swarmgym-moe-ppo-2"
#: Format tag of a policy export (:func:`swarmgym.moe.policy.export_policy`): the network and
#: where it came from, no optimiser, history or engine state; it cannot be resumed.
POLICY_EXPORT_FORMAT = "swarmgym-moe-policy-1"
#: Formats whose model :func:`swarmgym.moe.policy.load_policy` and ``--init-from`` can read
#: (format 1 stored the whole engine, instance bank included; its model part is the same).
POLICY_FORMATS = ("swarmgym-moe-ppo-1", CHECKPOINT_FORMAT, POLICY_EXPORT_FORMAT)
#: Episode metrics averaged into each log row (``charts/<key>``).
EPISODE_KEYS = (
    "score",
    "critical_steps",
    "speedup",
    "ideal_speedup",
    "mean_concurrency",
    "serial_collapse_index",
    "spurious_spawn_rate",
    "n_spawned",
    "tokens",
    "cost_usd",
    "budget_exhausted",
)


@dataclass
class PPOConfig:
    """Every hyperparameter of a training run."""

    # ---- environment
    env_id: str = "swarmgym/Mixed-v0"
    """Registered env id whose generator and dynamics are trained on."""
    env_overrides: dict = field(default_factory=dict)
    """Changes to the id's SwarmEnv kwargs, e.g. ``{"config": {"spawn_ticks": 1}, "generator_kwargs": {"budget_factor": 1.2}}``."""
    engine: str = "auto"
    """``"auto"`` (the batched engine when available, else gymnasium sync), ``"batched"`` or ``"gym"``."""
    num_envs: int = 64
    """Envs stepped together, in [1, 65536]."""
    num_steps: int = 64
    """Steps per env per rollout, in [1, 100000]; a rollout is ``num_envs * num_steps`` env steps."""
    total_steps: int = 400_000
    """Env steps of the whole run, >= one rollout."""
    seed: int = 0
    """Seeds the engine, torch, numpy, python and the action sampler."""
    device: str = "cpu"
    """Torch device of model and rollout (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...)."""
    torch_threads: int = 1
    """``torch.set_num_threads`` for the run (0 = leave torch's setting). One thread suits the small
    default model on CPU: on a busy 2-core machine, two OpenMP threads made the expert scatter
    (``index_add_``) up to 200x slower."""
    # ---- model
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture (MoE or the dense control), see :class:`swarmgym.moe.model.ModelConfig`."""
    # ---- PPO
    learning_rate: float = 5e-4
    """Adam step size, in (0, 1)."""
    anneal_lr: bool = True
    """Linearly anneal the step size to 0 over the run."""
    gamma: float = 0.995
    """Discount per env step, in [0, 1]. An env step is one decision of the orchestrator, not a
    clock tick, and the score is paid once at the end: below 1 the score is worth less the more
    decisions precede it, so the trainer favours answering early and skipping checks that the
    score itself would pay for. 1 makes the objective the score (on LayeredDAGHard-v0, polishing
    at 1 instead of 0.995 added +0.002 to +0.010 per seed:
    ``baselines/study/learned_hard_layered_dag_gamma1``)."""
    gae_lambda: float = 0.95
    """GAE λ, in [0, 1]."""
    num_minibatches: int = 8
    """Minibatches per epoch, in [1, batch size]."""
    update_epochs: int = 3
    """Passes over each rollout, in [1, 100]."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    clip_coef: float = 0.2
    """PPO ratio clip, in (0, 1]."""
    clip_vloss: bool = True
    """Clip the value loss as in the PPO paper's code."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient, >= 0."""
    anneal_ent: bool = False
    """Linearly anneal the entropy bonus to 0 over the run, on the step size's schedule (``anneal_lr``), so the
    late updates sharpen the policy without a pull toward uniform. Measured on SerialReasoning-v0, it did not
    lower the sampled policy's leftover spawns (``baselines/study/spurious_random_start_295k_anneal_ent``)."""
    vf_coef: float = 0.5
    """Value loss coefficient, >= 0."""
    max_grad_norm: float = 0.5
    """Gradient clipping norm, > 0."""
    target_kl: float | None = None
    """Stop the epochs early when the approximate KL exceeds this (None = never)."""
    aux_loss_coef: float = 0.01
    """Weight of the Switch auxiliary balance loss (used when ``model.balance`` is ``"aux"`` or ``"both"``), >= 0."""
    # ---- reward (PARL)
    parl: bool = True
    """Add the PARL terms; False trains on ``r_perf`` (minus the token cost) alone."""
    lambda_schedule: str = "linear"
    """Schedule of λ1 and λ2: ``"constant"``, ``"linear"``, ``"cosine"`` or ``"step"`` (:class:`swarmgym.parl.LambdaSchedule`)."""
    lambda1: float = 0.1
    """Initial λ1 (weight of ``r_parallel``), >= 0."""
    lambda2: float = 0.1
    """Initial λ2 (weight of ``r_finish``), >= 0."""
    anneal_fraction: float = 0.4
    """Fraction of the run by which annealed λs reach 0, in (0, 1]."""
    parallel_form: str = "instantiation"
    """Form of ``r_parallel`` (:data:`swarmgym.parl.PARALLEL_FORMS`); the published one is ``"instantiation"``."""
    parallel_cap: int = 10
    """Spawns that earn the full ``r_parallel`` (count-based forms), >= 1."""
    finish_form: str = "finish_rate"
    """Form of ``r_finish`` (:data:`swarmgym.parl.FINISH_FORMS`)."""
    token_cost: float = 0.0
    """Penalty per 100k tokens subtracted from every episode's reward (a compute cost in the objective), >= 0."""
    perf_form: str = "score"
    """Form of ``r_perf`` (:data:`swarmgym.parl.PERF_FORMS`): ``"score"`` (the task score) or ``"latency"``
    (the score scaled by the share of the critical-step budget left, :func:`swarmgym.parl.perf_reward`)."""
    latency_weight: float = 0.5
    """Weight of the budget share left in the ``"latency"`` form, in [0, 1]."""
    # ---- serial warm start
    warm_start: str | None = None
    """Orchestrator imitated by behaviour cloning before RL (e.g. ``"sequential_crew"``, a single-agent
    start), :func:`swarmgym.moe.warm_start.warm_start`; None starts from the random network."""
    warm_start_spawn_prob: float | None = None
    """Per-step probability of any spawn of the warm-started policy, in (0, 1), set by one exact offset of
    the spawn logits after cloning; None keeps the clone's own."""
    warm_start_epochs: int = 6
    """Behaviour-cloning passes over the demonstrations (64 envs x ``warm_start_steps`` steps), in [0, 1000]."""
    warm_start_steps: int = 64
    """Demonstration steps per env (64 envs), in [1, 100000]: 64 gives 4,096 demonstrated states; the runs on
    the Hard ids (``baselines/study/learned_hard_*``) used 512 (32,768 states)."""
    warm_start_value_coef: float = 0.0
    """Weight of the critic fit during the warm start (the value head learns the demonstration's returns under
    this run's reward beside the cloning loss), in [0, 100]; 0 leaves the critic untrained."""
    warm_start_kl_coef: float = 0.0
    """Weight of a penalty ``KL(π ‖ π_warm)`` in every PPO update, in [0, 100]; 0 = off. ``π_warm`` is a frozen
    copy of the warm-started policy (:attr:`PPOTrainer.anchor`), so RL departs from the imitated orchestrator
    where the advantages pay for it and stays with it elsewhere. Needs ``warm_start``."""
    # ---- start from a trained policy
    init_from: str | None = None
    """A trained run's ``checkpoint.pt`` (or its folder) whose network (policy, critic and MoE routing state)
    this run starts from instead of a fresh one; the optimiser, schedules, step count and engine start fresh
    (fine-tuning, or a second leg of training under a new schedule). The architecture (``model``) and the
    layout must be the checkpoint's. Not with ``warm_start``: both choose the starting policy. Only load
    files you trust."""
    # ---- logging
    log_every: int = 1
    """Write a log row every this many updates, >= 1."""
    checkpoint_every: int = 0
    """Save ``checkpoint.pt`` every this many updates (0 = off), >= 0; it is also saved at the end and on SIGINT/SIGTERM."""
    checkpoint_seconds: float = 60.0
    """Save ``checkpoint.pt`` after an update when this many seconds have passed since the last save (0 = off), >= 0."""
    tensorboard: bool = True
    """Write TensorBoard event files (needs the ``tensorboard`` package)."""
    progress: bool = True
    """Show a tqdm progress bar with live figures (needs ``tqdm``)."""

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        if not isinstance(self.model, ModelConfig):
            raise TypeError(f"model must be a ModelConfig or a dict of its fields, got {type(self.model).__name__}")
        if self.engine not in ("auto", "batched", "gym"):
            raise ValueError(f"engine must be 'auto', 'batched' or 'gym', got {self.engine!r}")
        if self.lambda_schedule not in ("constant", "linear", "cosine", "step"):
            raise ValueError(f"lambda_schedule must be 'constant', 'linear', 'cosine' or 'step', got {self.lambda_schedule!r}")
        for name, lo, hi in (("num_envs", 1, 65536), ("num_steps", 1, 100_000), ("update_epochs", 1, 100), ("parallel_cap", 1, 10**6)):
            _check_int(name, getattr(self, name), lo, hi)
        _check_int("total_steps", self.total_steps, self.num_envs * self.num_steps, 10**12)
        _check_int("num_minibatches", self.num_minibatches, 1, self.batch_size)
        _check_int("log_every", self.log_every, 1, 10**9)
        _check_int("warm_start_steps", self.warm_start_steps, 1, 100_000)
        _check_int("checkpoint_every", self.checkpoint_every, 0, 10**9)
        _check_int("torch_threads", self.torch_threads, 0, 1024)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        for name in ("anneal_lr", "anneal_ent", "norm_adv", "clip_vloss", "parl", "tensorboard", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, lo, hi, open_lo in (
            ("learning_rate", 0.0, 1.0, True),
            ("gamma", 0.0, 1.0, False),
            ("gae_lambda", 0.0, 1.0, False),
            ("clip_coef", 0.0, 1.0, True),
            ("ent_coef", 0.0, 10.0, False),
            ("vf_coef", 0.0, 100.0, False),
            ("max_grad_norm", 0.0, 1e6, True),
            ("aux_loss_coef", 0.0, 100.0, False),
            ("lambda1", 0.0, 100.0, False),
            ("lambda2", 0.0, 100.0, False),
            ("anneal_fraction", 0.0, 1.0, True),
            ("token_cost", 0.0, 1e6, False),
            ("checkpoint_seconds", 0.0, 1e9, False),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TypeError(f"{name} must be a number in {'(' if open_lo else '['}{lo}, {hi}], got {value!r}")
            if value > hi or value < lo or (open_lo and value == lo):
                raise ValueError(f"{name} must be in {'(' if open_lo else '['}{lo}, {hi}], got {value}")
        if self.target_kl is not None and not (isinstance(self.target_kl, (int, float)) and self.target_kl > 0):
            raise ValueError(f"target_kl must be None or a number > 0, got {self.target_kl!r}")
        from swarmgym.parl import PERF_FORMS

        if self.perf_form not in PERF_FORMS:
            raise ValueError(f"perf_form must be one of {PERF_FORMS}, got {self.perf_form!r}")
        if isinstance(self.latency_weight, bool) or not isinstance(self.latency_weight, (int, float)) or not 0 <= self.latency_weight <= 1:
            raise ValueError(f"latency_weight must be a number in [0, 1], got {self.latency_weight!r}")
        if self.warm_start is not None and not (isinstance(self.warm_start, str) and self.warm_start):
            raise TypeError(f"warm_start must be None or an orchestrator spec such as 'sequential_crew', got {self.warm_start!r}")
        p = self.warm_start_spawn_prob
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1):
            raise ValueError(f"warm_start_spawn_prob must be None or a number in (0, 1), got {p!r}")
        _check_int("warm_start_epochs", self.warm_start_epochs, 0, 1000)
        v = self.warm_start_value_coef
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 100.0:
            raise ValueError(f"warm_start_value_coef must be a number in [0, 100], got {v!r}")
        kl = self.warm_start_kl_coef
        if isinstance(kl, bool) or not isinstance(kl, (int, float)) or not 0.0 <= kl <= 100.0:
            raise ValueError(f"warm_start_kl_coef must be a number in [0, 100], got {kl!r}")
        if kl > 0 and self.warm_start is None:
            raise ValueError("warm_start_kl_coef > 0 needs warm_start (the policy the penalty holds the run near)")
        if self.init_from is not None:
            if not isinstance(self.init_from, str) or not self.init_from:
                raise TypeError(f"init_from must be None or the path of a checkpoint.pt or run folder, got {self.init_from!r}")
            if self.warm_start is not None:
                raise ValueError("init_from and warm_start both choose the starting policy: set one of them")
        if not isinstance(self.env_overrides, dict):
            raise TypeError(f"env_overrides must be a dict, got {type(self.env_overrides).__name__}")
        if not isinstance(self.env_id, str) or not self.env_id:
            raise TypeError(f"env_id must be a registered env id (a string), got {self.env_id!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {self.device!r}") from exc

    # derived sizes (CleanRL computes these right after parsing)
    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PPOConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown PPOConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)


class CheckpointError(ValueError):
    """A file that is not a checkpoint this version can use (truncated, foreign, another format)."""


def checkpoint_path(path: str | Path) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` when ``path`` is a run folder."""
    p = Path(path)
    return p / "checkpoint.pt" if p.is_dir() else p


def read_checkpoint(path: str | Path, formats: tuple[str, ...] = (CHECKPOINT_FORMAT,)) -> dict:
    """Load a trainer checkpoint (a ``checkpoint.pt`` or a run folder holding one).

    Only load files you trust: checkpoints are read with ``torch.load(weights_only=False)``.

    :param formats: the format tags accepted.
    :raises FileNotFoundError: nothing at ``path``.
    :raises CheckpointError: a truncated or foreign file, or a format not in ``formats``;
        the message names the file.
    """
    p = checkpoint_path(path)
    if not p.is_file():
        where = f"{str(path)!r} holds no checkpoint.pt" if Path(path).is_dir() else f"no checkpoint at {str(path)!r}"
        raise FileNotFoundError(f"{where} (expected a checkpoint.pt or a run folder holding one)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, TypeError, AttributeError, ImportError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{str(p)!r} is not a readable swarmgym checkpoint (truncated or another kind of file: {reason})") from None
    tag = state.get("format") if isinstance(state, dict) else None
    if not isinstance(tag, str) or not tag.startswith(("swarmgym-moe-ppo-", "swarmgym-moe-policy-")):
        raise CheckpointError(f"{str(p)!r} is not a swarmgym MoE checkpoint (format {tag!r})")
    if tag == POLICY_EXPORT_FORMAT and tag not in formats:
        raise CheckpointError(
            f"{str(p)!r} is a policy export (format {tag!r}): it holds the network only, no optimiser or training state, "
            "so it can be evaluated or passed to --init-from, not resumed"
        )
    if tag not in formats:
        raise CheckpointError(
            f"{str(p)!r} has checkpoint format {tag!r}; this swarmgym reads {', '.join(repr(f) for f in formats)} "
            "(train again, or use the swarmgym version that wrote it)"
        )
    return state


def sample_actions(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sample from ``softmax(logits)`` by the Gumbel-max trick with an explicit generator."""
    u = torch.rand(logits.shape, generator=generator, device=generator.device).to(logits.device)
    gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
    return torch.argmax(logits + gumbel, dim=-1)


def logprob_entropy(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``actions`` and the entropy under masked ``logits``."""
    logp = F.log_softmax(logits, dim=-1)
    p = logp.exp()
    entropy = -(p * logp).sum(-1)
    return logp.gather(1, actions.unsqueeze(1)).squeeze(1), entropy


class PPOTrainer:
    """Trains an :class:`OrchestratorNet` with PPO on an engine.

    :param config: the run's :class:`PPOConfig`.
    :param run_dir: folder for ``checkpoint.pt``, ``progress.csv`` and TensorBoard events (None = no files).
    :param warm_start: run ``config.warm_start`` (if set) on the fresh network; :meth:`resume` passes False.
    """

    def __init__(self, config: PPOConfig, run_dir: str | Path | None = None, *, warm_start: bool = True) -> None:
        if not isinstance(config, PPOConfig):
            raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
        cfg = self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {cfg.device!r}: CUDA is not available (torch {torch.__version__}, built without CUDA or no GPU)")
        # ---- seeding (one block)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.sampler = torch.Generator(device="cpu").manual_seed(cfg.seed)
        # ---- engine, model, optimiser
        self.engine = make_engine(
            cfg.env_id, cfg.num_envs, device=self.device, seed=cfg.seed, engine=cfg.engine, overrides=cfg.env_overrides
        )
        self.max_subagents = int(self.engine.config.max_subagents)  # the resolved dynamics, as the engine runs them
        self.n_max = int(self.engine.n_max)
        #: the env's layout (SwarmConfig.extended): the network's input widths and action heads follow it
        self.extended = bool(self.engine.config.extended)
        if self.engine.layout != ActionLayout(self.n_max, self.extended):
            raise ValueError(
                f"the {type(self.engine).__name__} of {cfg.env_id!r} has the action layout {self.engine.layout}, but its config's "
                f"extended={self.extended} asks for {ActionLayout(self.n_max, self.extended)}"
            )
        self.model = OrchestratorNet(cfg.model, extended=self.extended).to(self.device)
        # ---- PARL schedules
        self.lambda1, self.lambda2 = self._schedules()
        self.global_step = 0
        if warm_start and cfg.init_from:
            self.load_initial_policy(cfg.init_from)
        self.warm_start_report = None
        if warm_start and cfg.warm_start:
            from swarmgym.moe.warm_start import warm_start_from_config

            self.warm_start_report = warm_start_from_config(self.model, cfg, reward_fn=self.episode_reward)
        #: frozen copy of the warm-started policy, the reference of ``warm_start_kl_coef`` (None when off)
        self.anchor: OrchestratorNet | None = None
        if warm_start and cfg.warm_start and cfg.warm_start_kl_coef > 0:
            self.set_anchor()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate, eps=1e-5)
        # ---- state
        self.update = 0
        self.wall_time = 0.0
        self.history: list[dict] = []
        self.next_obs = self.engine.reset()
        self.next_mask = self.engine.action_mask.clone()
        self._episode_start = torch.zeros(cfg.num_envs, dtype=torch.long)
        self._writer = None
        self._csv_keys: list[str] | None = None
        self._tb_purge_step: int | None = None
        self.last_checkpoint: Path | None = None
        #: the ``system_info`` of the checkpoint this trainer was resumed from (None: not resumed, or
        #: a checkpoint written before it was recorded)
        self.resumed_system_info: dict | None = None

    def _schedules(self):
        cfg = self.config
        if not cfg.parl:
            return (lambda step: 0.0), (lambda step: 0.0)
        from swarmgym.parl import LambdaSchedule

        make = lambda initial: LambdaSchedule(cfg.lambda_schedule, initial, cfg.anneal_fraction, cfg.total_steps)  # noqa: E731
        return make(cfg.lambda1), make(cfg.lambda2)

    @property
    def family_names(self) -> list[str]:
        return list(self.engine.family_names)

    # ------------------------------------------------------------------ reward
    def episode_reward(self, r_perf: torch.Tensor, metrics: dict[str, torch.Tensor], done: torch.Tensor) -> dict[str, torch.Tensor]:
        """PARL reward of the finished episodes (rows of ``done``): ``r_perf + λ1 r_parallel + λ2 r_finish - token cost``."""
        cfg = self.config
        m = {k: v[done] for k, v in metrics.items() if torch.is_tensor(v) and v.shape[:1] == done.shape}
        lam1, lam2 = float(self.lambda1(self.global_step)), float(self.lambda2(self.global_step))
        zeros = torch.zeros_like(r_perf[done], dtype=torch.float32)
        if cfg.parl:
            from swarmgym.parl import finish_reward, parallel_reward

            r_par = torch.as_tensor(
                parallel_reward(m, form=cfg.parallel_form, cap=cfg.parallel_cap, max_subagents=self.max_subagents), dtype=torch.float32
            ).to(zeros.device)
            r_fin = torch.as_tensor(finish_reward(m, form=cfg.finish_form), dtype=torch.float32).to(zeros.device)
        else:
            r_par, r_fin = zeros, zeros
        r_tok = m["tokens"].float() / 1e5 if "tokens" in m else zeros
        if cfg.perf_form != "score":
            from swarmgym.parl import perf_reward

            r_perf = r_perf.clone()
            r_perf[done] = torch.as_tensor(perf_reward(m, cfg.perf_form, cfg.latency_weight), dtype=r_perf.dtype).to(r_perf.device)
        total = r_perf[done].float() + lam1 * r_par + lam2 * r_fin - cfg.token_cost * r_tok
        return {"reward": total, "r_parallel": r_par, "r_finish": r_fin}

    # ------------------------------------------------------------------ rollout
    @torch.no_grad()
    def collect(self) -> dict[str, torch.Tensor]:
        """One rollout of ``num_steps`` steps in every env; finished episodes' metrics go to ``self._episodes``."""
        cfg, dev = self.config, self.device
        T, N, A = cfg.num_steps, cfg.num_envs, self.engine.layout.n
        buf = {
            "nodes": torch.zeros(T, N, self.n_max, self.next_obs["nodes"].shape[-1], device=dev),
            "globals": torch.zeros(T, N, self.next_obs["globals"].shape[-1], device=dev),
            "mask": torch.zeros(T, N, A, dtype=torch.bool, device=dev),
            "actions": torch.zeros(T, N, dtype=torch.long, device=dev),
            "logprobs": torch.zeros(T, N, device=dev),
            "rewards": torch.zeros(T, N, device=dev),
            "dones": torch.zeros(T, N, device=dev),
            "values": torch.zeros(T, N, device=dev),
            "family": torch.full((T, N), -1, dtype=torch.long),
        }
        episodes: list[dict[str, torch.Tensor]] = []
        self._episode_start.zero_()  # step index (within this rollout) where each env's episode began
        self.model.eval()
        for t in range(T):
            obs, mask = self.next_obs, self.next_mask
            buf["nodes"][t], buf["globals"][t], buf["mask"][t] = obs["nodes"], obs["globals"], mask
            logits, value = self.model(obs["nodes"], obs["globals"], mask)
            action = sample_actions(logits, self.sampler)
            logp, _ = logprob_entropy(logits, action)
            buf["actions"][t], buf["logprobs"][t], buf["values"][t] = action, logp, value
            self.next_obs, r_perf, terminated, info = self.engine.step(action)
            self.next_mask = self.engine.action_mask.clone()
            done = info.get("done_mask", terminated).to(torch.bool)
            rewards = torch.zeros(N, device=dev)
            if done.any():
                metrics = _metrics_rows(info.get("metrics", {}), done)
                terms = self.episode_reward(r_perf.to(dev), metrics, done)
                rewards[done] = terms["reward"].to(dev)
                ep = {k: v[done].double().cpu() for k, v in metrics.items() if torch.is_tensor(v) and v.dim() == 1}
                ep["r_parallel"], ep["r_finish"], ep["reward"] = (
                    terms["r_parallel"].cpu().double(),
                    terms["r_finish"].cpu().double(),
                    terms["reward"].cpu().double(),
                )
                if "concurrency_profile" in metrics:
                    ep["concurrency_profile"] = metrics["concurrency_profile"][done].double().cpu()
                episodes.append(ep)
                fam = metrics.get("family_id")
                for i in done.nonzero(as_tuple=True)[0].tolist():
                    if fam is not None:
                        buf["family"][self._episode_start[i] : t + 1, i] = int(fam[i])
                    self._episode_start[i] = t + 1
            buf["rewards"][t] = rewards
            buf["dones"][t] = done.float()
            self.global_step += N
        # bootstrap value of the state after the rollout
        _, buf["next_value"] = self.model(self.next_obs["nodes"], self.next_obs["globals"], self.next_mask)
        self._episodes = episodes
        return buf

    def advantages(self, buf: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE(λ); ``dones[t]`` marks that the step at ``t`` ended its episode (no bootstrap across it)."""
        cfg = self.config
        T = cfg.num_steps
        adv = torch.zeros_like(buf["rewards"])
        last = torch.zeros_like(buf["rewards"][0])
        for t in reversed(range(T)):
            next_value = buf["next_value"] if t == T - 1 else buf["values"][t + 1]
            nonterminal = 1.0 - buf["dones"][t]
            delta = buf["rewards"][t] + cfg.gamma * next_value * nonterminal - buf["values"][t]
            last = delta + cfg.gamma * cfg.gae_lambda * nonterminal * last
            adv[t] = last
        return adv, adv + buf["values"]

    # ------------------------------------------------------------------ update
    def learn(self, buf: dict[str, torch.Tensor]) -> dict[str, float]:
        """The clipped PPO update over minibatches; returns the losses/* figures."""
        cfg, model = self.config, self.model
        adv, returns = self.advantages(buf)
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        b_nodes, b_glob, b_mask = flat(buf["nodes"]), flat(buf["globals"]), flat(buf["mask"])
        b_act, b_logp, b_val = flat(buf["actions"]), flat(buf["logprobs"]), flat(buf["values"])
        b_adv, b_ret = flat(adv), flat(returns)
        n_fam = len(self.family_names)
        b_fam = flat(buf["family"]).clone()
        b_fam[b_fam < 0] = n_fam  # unknown family (episode unfinished in this rollout): last bucket
        b_fam = b_fam.to(self.device)
        use_aux = cfg.model.balance in ("aux", "both") and cfg.model.ffn == "moe"
        use_bias = cfg.model.balance in ("bias", "both") and cfg.model.ffn == "moe"
        family_load = None
        stats = {"pg_loss": [], "v_loss": [], "entropy": [], "approx_kl": [], "clipfrac": [], "aux_loss": [], "anchor_kl": []}
        if cfg.warm_start_kl_coef > 0 and self.anchor is None:
            raise RuntimeError("warm_start_kl_coef > 0 but the trainer has no anchor: call set_anchor() after warm-starting the model")
        frac = 1.0 - self.update / max(cfg.num_updates, 1)
        if cfg.anneal_lr:
            self.optimizer.param_groups[0]["lr"] = frac * cfg.learning_rate
        ent_coef = frac * cfg.ent_coef if cfg.anneal_ent else cfg.ent_coef
        model.train()
        for epoch in range(cfg.update_epochs):
            order = torch.randperm(cfg.batch_size, generator=self.sampler).to(self.device)
            stop = False
            for start in range(0, cfg.batch_size - cfg.minibatch_size + 1, cfg.minibatch_size):
                mb = order[start : start + cfg.minibatch_size]
                logits, value = model(b_nodes[mb], b_glob[mb], b_mask[mb], family=b_fam[mb] if epoch == 0 else None)
                if epoch == 0:
                    rs = model.routing_stats().get("family_load")
                    if rs is not None:
                        padded = torch.zeros(rs.shape[0], n_fam + 1, rs.shape[2], device=rs.device)
                        padded[:, : rs.shape[1]] = rs
                        family_load = padded if family_load is None else family_load + padded
                new_logp, entropy = logprob_entropy(logits, b_act[mb])
                log_ratio = new_logp - b_logp[mb]
                ratio = log_ratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - log_ratio).mean()
                    clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()
                mb_adv = b_adv[mb]
                if cfg.norm_adv and mb_adv.numel() > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                # policy loss (clipped surrogate)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                # value loss
                if cfg.clip_vloss:
                    v_clipped = b_val[mb] + (value - b_val[mb]).clamp(-cfg.clip_coef, cfg.clip_coef)
                    v_loss = 0.5 * torch.max((value - b_ret[mb]) ** 2, (v_clipped - b_ret[mb]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((value - b_ret[mb]) ** 2).mean()
                ent = entropy.mean()
                aux = model.aux_loss() if use_aux else torch.zeros((), device=self.device)
                loss = pg_loss - ent_coef * ent + cfg.vf_coef * v_loss + cfg.aux_loss_coef * aux
                anchor_kl = torch.zeros((), device=self.device)
                if cfg.warm_start_kl_coef > 0:
                    with torch.no_grad():
                        anchor_logits, _ = self.anchor(b_nodes[mb], b_glob[mb], b_mask[mb])
                    logp_all = F.log_softmax(logits, dim=-1)
                    anchor_kl = (logp_all.exp() * (logp_all - F.log_softmax(anchor_logits, dim=-1))).sum(-1).mean()
                    loss = loss + cfg.warm_start_kl_coef * anchor_kl
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                if use_bias:
                    model.update_router_bias()
                for k, v in (
                    ("pg_loss", pg_loss),
                    ("v_loss", v_loss),
                    ("entropy", ent),
                    ("approx_kl", approx_kl),
                    ("clipfrac", clipfrac),
                    ("aux_loss", aux),
                    ("anchor_kl", anchor_kl),
                ):
                    stats[k].append(float(v.detach()) if torch.is_tensor(v) else float(v))
                if cfg.target_kl is not None and approx_kl > cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        for m in model.moe_layers() + (self.anchor.moe_layers() if self.anchor is not None else []):
            m.load_since_update.zero_()  # rollout-time loads are not part of the next update's balance; the anchor's count nothing
        y, var_y = b_ret.cpu().numpy(), b_ret.var().item()
        out = {f"losses/{k}": float(np.mean(v)) if v else 0.0 for k, v in stats.items()}
        out["losses/explained_variance"] = float("nan") if var_y == 0 else 1.0 - float(np.var(y - b_val.cpu().numpy())) / var_y
        out["losses/learning_rate"] = self.optimizer.param_groups[0]["lr"]
        out["losses/ent_coef"] = ent_coef
        self._family_load = family_load.cpu() if family_load is not None else None
        return out

    # ------------------------------------------------------------------ logging
    def _row(self, losses: dict[str, float], sps: float) -> dict[str, float]:
        """One log row: charts/* (finished episodes of the last rollout), parl/*, losses/*, moe/*."""
        row: dict[str, float] = {
            "global_step": self.global_step,
            "update": self.update,
            "time_s": round(self.wall_time, 3),
            "charts/sps": sps,
        }
        eps = self._episodes
        cat = {k: torch.cat([e[k] for e in eps]) for k in (eps[0].keys() if eps else [])}
        row["charts/episodes"] = float(len(cat["score"])) if "score" in cat else 0.0
        for k in EPISODE_KEYS + ("r_parallel", "r_finish", "reward"):
            row[f"charts/{k}"] = float(cat[k].mean()) if k in cat and len(cat[k]) else float("nan")
        row["parl/lambda1"] = float(self.lambda1(self.global_step))
        row["parl/lambda2"] = float(self.lambda2(self.global_step))
        fams = self.family_names
        for f, name in enumerate(fams):
            sel = cat["family_id"] == f if "family_id" in cat else None
            for k in ("score", "critical_steps", "speedup", "spurious_spawn_rate", "n_spawned"):
                ok = sel is not None and bool(sel.any()) and k in cat
                row[f"family/{name}/{k}"] = float(cat[k][sel].mean()) if ok else float("nan")
        row.update(losses)
        fl = getattr(self, "_family_load", None)
        if fl is not None:
            n_layers, _, n_exp = fl.shape
            total = fl.sum(1)  # [layers, E]
            for layer in range(n_layers):
                share = total[layer] / total[layer].sum().clamp_min(1.0)
                for e in range(n_exp):
                    row[f"moe/load/l{layer}/e{e}"] = float(share[e])
                row[f"moe/load_cv/l{layer}"] = float(share.std() / share.mean().clamp_min(1e-9))
                for f, name in enumerate(fams):
                    fs = fl[layer, f] / fl[layer, f].sum().clamp_min(1.0)
                    for e in range(n_exp):
                        row[f"moe/family_load/{name}/l{layer}/e{e}"] = float(fs[e])
        return row

    def _log(self, row: dict[str, float]) -> None:
        self.history.append(row)
        if self.run_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "progress.csv"
        if self._csv_keys is None:
            self._csv_keys = list(row.keys())
            with open(path, "w", newline="") as fh:
                csv.DictWriter(fh, self._csv_keys).writeheader()
        with open(path, "a", newline="") as fh:
            csv.DictWriter(fh, self._csv_keys, extrasaction="ignore", restval="").writerow(row)
        if self.config.tensorboard:
            if self._writer is None:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    warnings.warn("tensorboard is not installed (pip install 'swarmgym[train]'); TensorBoard logging is off", stacklevel=2)
                    self.config.tensorboard = False
                    return
                # on resume, events logged after the checkpoint's step (by the interrupted run) are dropped
                self._writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self._tb_purge_step)
            for k, v in row.items():
                if k not in ("global_step", "update") and isinstance(v, float) and math.isfinite(v):
                    self._writer.add_scalar(k, v, self.global_step)

    def _rewrite_progress(self) -> None:
        """``progress.csv`` as the history holds it: rows logged after the checkpoint (by a run
        that went on and was interrupted before its next checkpoint) are dropped."""
        if self.run_dir is None:
            return
        if not self.history:
            (self.run_dir / "progress.csv").unlink(missing_ok=True)
            return
        self._csv_keys = list(self.history[0].keys())
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, self._csv_keys, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(self.run_dir / "progress.csv", buf.getvalue())

    # ------------------------------------------------------------------ main loop
    def train(self, max_updates: int | None = None, *, handle_signals: bool = True) -> list[dict]:
        """Run updates until ``total_steps`` (or ``max_updates`` more updates); returns the history.

        With a ``run_dir``, ``checkpoint.pt`` is written (atomically) at the end, every
        ``checkpoint_every`` updates and every ``checkpoint_seconds`` seconds.

        :param handle_signals: on SIGINT or SIGTERM (main thread only), finish the current update,
            write the checkpoint and raise :class:`~swarmgym.moe.checkpointing.StopRequested`
            (a second signal stops at once, losing the updates since the last checkpoint).
        """
        cfg = self.config
        bar = None
        if cfg.progress:
            try:
                from tqdm.auto import tqdm

                bar = tqdm(total=cfg.num_updates * cfg.batch_size, initial=self.global_step, unit="step", dynamic_ncols=True, desc="train")
            except ImportError:
                warnings.warn("tqdm is not installed (pip install 'swarmgym[train]'); no progress bar", stacklevel=2)

        def on_signal(signum: int) -> None:
            where = "write a checkpoint and stop" if self.run_dir is not None else "stop (no run folder: nothing is saved)"
            print(
                f"\nswarmgym: finishing training update {self.update + 1}, then I {where}; interrupt again to stop at once",
                file=sys.stderr,
                flush=True,
            )

        stop = GracefulStop(on_signal) if handle_signals else None
        done_here = 0
        last_save = time.monotonic()
        try:
            if stop is not None:
                stop.__enter__()
            while self.update < cfg.num_updates and (max_updates is None or done_here < max_updates):
                t0 = time.perf_counter()
                buf = self.collect()
                losses = self.learn(buf)
                self.update += 1
                done_here += 1
                dt = time.perf_counter() - t0
                self.wall_time += dt
                if self.update % cfg.log_every == 0 or self.update == cfg.num_updates:
                    row = self._row(losses, cfg.batch_size / dt)
                    self._log(row)
                    if bar is not None:
                        bar.set_postfix(
                            score=f"{row['charts/score']:.3f}",
                            crit=f"{row['charts/critical_steps']:.1f}",
                            speedup=f"{row['charts/speedup']:.2f}",
                            spawn=f"{row['charts/n_spawned']:.1f}",
                            lam1=f"{row['parl/lambda1']:.3f}",
                            sps=f"{row['charts/sps']:.0f}",
                            refresh=False,
                        )
                if bar is not None:
                    bar.update(cfg.batch_size)
                if stop is not None and stop.requested:
                    if self.run_dir is not None:
                        self.save(self.run_dir / "checkpoint.pt")
                        stop.raise_stop(
                            f"stopped at update {self.update}/{cfg.num_updates} ({self.global_step:,} env steps); "
                            f"checkpoint {self.run_dir / 'checkpoint.pt'}"
                        )
                    stop.raise_stop(
                        f"stopped at update {self.update}/{cfg.num_updates} ({self.global_step:,} env steps); no run folder, nothing saved"
                    )
                if self.run_dir is not None and (
                    (cfg.checkpoint_every and self.update % cfg.checkpoint_every == 0)
                    or (cfg.checkpoint_seconds and time.monotonic() - last_save >= cfg.checkpoint_seconds)
                ):
                    self.save(self.run_dir / "checkpoint.pt")
                    last_save = time.monotonic()
        finally:
            if stop is not None:
                stop.__exit__(None, None, None)
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.flush()
        if self.run_dir is not None:
            self.save(self.run_dir / "checkpoint.pt")
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def load_initial_policy(self, path: str | Path) -> None:
        """Copy the network of a trained run's checkpoint into :attr:`model` (``PPOConfig.init_from``).

        :raises FileNotFoundError, CheckpointError: see :func:`read_checkpoint`.
        :raises ValueError: the checkpoint's architecture or layout is not this run's (the message names both).
        """
        state = read_checkpoint(path, formats=POLICY_FORMATS)
        saved_model = ModelConfig.from_dict(state["model_config"]).to_dict()
        own_model = self.config.model.to_dict()
        if saved_model != own_model:
            shown = ", ".join(f"{k}: {saved_model[k]!r} there, {own_model[k]!r} here" for k in own_model if saved_model[k] != own_model[k])
            raise ValueError(f"init_from {str(path)!r}: its network is not this run's model ({shown})")
        saved_extended = bool(state.get("extended", False))
        if saved_extended != self.extended:
            raise ValueError(
                f"init_from {str(path)!r}: it holds a policy of the {layout_name(saved_extended)} layout, but {self.config.env_id!r} "
                f"has the {layout_name(self.extended)} layout"
            )
        self.model.load_state_dict(state["model"])

    def set_anchor(self) -> None:
        """Freeze a copy of the current policy as :attr:`anchor`, the reference of ``warm_start_kl_coef``
        (the trainer calls it after its warm start; a caller that warm-starts the model itself calls it then)."""
        self.anchor = copy.deepcopy(self.model).eval().requires_grad_(False)

    def state_dict(self) -> dict:
        """Everything needed to resume exactly, plus what :func:`swarmgym.moe.policy.load_policy` reads,
        plus the versions it was written under (``system_info``: resuming under others runs, but
        need not be bit-identical).

        The engine is stored as ``engine.spec`` and ``engine.state_dict()`` (per-env state and
        random-number state, not its instance bank), so the size is the model's and optimiser's
        plus a few bytes per env and node."""
        return {
            "format": CHECKPOINT_FORMAT,
            "ppo_config": self.config.to_dict(),
            "model_config": self.config.model.to_dict(),
            "extended": self.extended,
            "n_max": self.n_max,
            "family_names": self.family_names,
            "env_id": self.config.env_id,
            "model": self.model.state_dict(),
            "anchor": self.anchor.state_dict() if self.anchor is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "global_step": self.global_step,
            "update": self.update,
            "wall_time": self.wall_time,
            "history": self.history,
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "sampler": self.sampler.get_state(),
            },
            "engine": {"type": type(self.engine).__name__, "spec": self.engine.spec, "state": self.engine.state_dict()},
            "next_obs": {k: v.cpu() for k, v in self.next_obs.items()},
            "next_mask": self.next_mask.cpu(),
            "system_info": system_info(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint atomically (a temporary file, then ``os.replace``)."""
        path = atomic_torch_save(self.state_dict(), path)
        self.last_checkpoint = path
        return path

    @classmethod
    def resume(cls, path: str | Path, run_dir: str | Path | None = None, **overrides: Any) -> "PPOTrainer":
        """A trainer restored from a checkpoint written by :meth:`save` (only load files you trust).

        :param path: a ``checkpoint.pt`` or the run folder holding one.
        :param run_dir: where the resumed run writes; its ``progress.csv`` is rewritten from the
            checkpoint's history (no duplicated rows) and TensorBoard events after the checkpoint's
            step are dropped.
        :param overrides: PPOConfig fields to change (e.g. ``progress=False``); changing
            anything that shapes the run breaks exact resumption.
        :raises FileNotFoundError, CheckpointError: see :func:`read_checkpoint`.
        """
        path = checkpoint_path(path)
        state = read_checkpoint(path)
        cfg_dict = copy.deepcopy(state["ppo_config"])
        cfg_dict.update(overrides)
        trainer = cls(PPOConfig.from_dict(cfg_dict), run_dir=run_dir, warm_start=False)
        saved_extended = bool(state.get("extended", False))  # absent in checkpoints written before the extended layout
        if saved_extended != trainer.extended:
            raise CheckpointError(
                f"{str(path)!r} holds a policy of the {layout_name(saved_extended)} layout, but {trainer.config.env_id!r} now builds an env "
                f"of the {layout_name(trainer.extended)} layout (SwarmConfig.extended={trainer.extended}; its registration changed)"
            )
        saved = state["engine"]
        if saved["type"] != type(trainer.engine).__name__:
            raise CheckpointError(
                f"{str(path)!r} was written with the {saved['type']} engine; this install builds {type(trainer.engine).__name__} "
                f"for engine={trainer.config.engine!r} (set the engine the run used)"
            )
        own_spec = {k: v for k, v in trainer.engine.spec.items() if k != "device"}
        if {k: v for k, v in saved["spec"].items() if k != "device"} != own_spec:
            raise CheckpointError(
                f"{str(path)!r}: the engine of {trainer.config.env_id!r} is not the one the run used (its registration changed)"
            )
        trainer.engine.load_state_dict(saved["state"])
        trainer.next_obs = {k: v.to(trainer.device) for k, v in state["next_obs"].items()}
        trainer.next_mask = state["next_mask"].to(trainer.device)
        trainer.model.load_state_dict(state["model"])
        if trainer.config.warm_start_kl_coef > 0:
            if state.get("anchor") is None:
                raise CheckpointError(
                    f"{str(path)!r} holds no anchor policy, but the run's warm_start_kl_coef is {trainer.config.warm_start_kl_coef}"
                )
            trainer.set_anchor()
            trainer.anchor.load_state_dict(state["anchor"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.global_step, trainer.update = int(state["global_step"]), int(state["update"])
        trainer.wall_time = float(state.get("wall_time", 0.0))
        trainer.history = list(state.get("history", []))
        trainer._tb_purge_step = trainer.global_step + 1
        trainer._rewrite_progress()
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        trainer.sampler.set_state(rng["sampler"])
        trainer.last_checkpoint = path
        trainer.resumed_system_info = state.get("system_info")
        return trainer


def _metrics_rows(metrics: dict, done: torch.Tensor) -> dict[str, torch.Tensor]:
    """Metrics as ``[num_envs]`` tensors (an engine may give only the finished rows; they are scattered back)."""
    n, out = done.shape[0], {}
    n_done = int(done.sum())
    for k, v in metrics.items():
        if not torch.is_tensor(v):
            if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
                v = torch.as_tensor(v)
            else:
                continue
        v = v.to(done.device)
        if v.shape[:1] == (n,):
            out[k] = v
        elif v.shape[:1] == (n_done,) and n_done != n:
            full = torch.zeros((n, *v.shape[1:]), dtype=v.dtype, device=v.device)
            full[done] = v
            out[k] = full
    return out


def train(config: PPOConfig, run_dir: str | Path | None = None) -> PPOTrainer:
    """Train a fresh orchestrator; returns the trainer (``.model``, ``.history``)."""
    trainer = PPOTrainer(config, run_dir)
    trainer.train()
    return trainer


def checkpoint_bytes(trainer: PPOTrainer) -> bytes:
    """The checkpoint as bytes (for tests)."""
    buf = io.BytesIO()
    torch.save(trainer.state_dict(), buf)
    return buf.getvalue()
