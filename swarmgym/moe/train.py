"""``swarmgym train``: train the MoE orchestrator with annealed PARL, then evaluate it.

With no arguments: a warm start that imitates ``critical_path`` and fits the critic to its
returns (:data:`DEFAULT_WARM_START`; ``--warm-start none`` starts from the random network),
then PPO on ``swarmgym/Mixed-v0`` with linearly annealed λ1, λ2
(:data:`DEFAULT_TOTAL_STEPS` env steps), then the trained policy (greedy and sampled)
and every reference orchestrator play the same evaluation episodes; a compact table
(per family: score, critical steps, speedup, serial-collapse index, spurious-spawn
rate, tokens, price) is printed and the full one written. The run folder (default
``runs/train-<time>``) receives::

    checkpoint.pt          model, optimiser, schedules, RNG and engine state (resumable; "moe:<folder>")
    config.json            the PPOConfig of the run
    command.txt            the command of each part of the run (its start, then each resume)
    system_info.json       Python, package versions and CPU of each part (same seed, same run only under the same ones)
    progress.csv, tb/      training logs (CSV, TensorBoard)
    table.md, table.csv    the evaluation table
    training_curves.png    score, critical steps, speedup, spawns, λ, expert load over training
    concurrency.png        each family's concurrency profile per orchestrator
    expert_load.png        expert load per task family (MoE only)

``--quick`` trains and evaluates for a few seconds (smoke test); ``--total-steps``
sets the length; ``--set FIELD=VALUE`` changes any :class:`~swarmgym.moe.ppo.PPOConfig`
field (``model.FIELD`` for the architecture, ``env_overrides.config.FIELD`` for the dynamics).

Every option is checked before any work starts (:func:`plan_run`): a bad one ends the
command with one line naming it and exit status 2. Ctrl-C (SIGINT) or SIGTERM finishes
the current update, writes ``checkpoint.pt`` and exits with 130 (SIGINT) or 143
(SIGTERM); ``--resume RUN_FOLDER`` continues the run exactly (under the versions the checkpoint
was written with; under others it prints a note naming them and goes on). Checkpoints are also
written every ``--checkpoint-seconds`` (default 60).

Adding an option: declare it in :func:`build_parser`, check it in :func:`plan_run` (or
:func:`make_config` for PPOConfig fields) raising :class:`swarmgym.cli.UsageError`, and
list it in :data:`RUN_SHAPING_OPTIONS` if a resumed run must keep the checkpoint's value.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swarmgym.cli import UsageError, check_device, check_int, check_number, check_output_dir, usage_failure

PROG = "swarmgym train"
#: Env id trained on when ``--env-id`` is not given.
DEFAULT_ENV_ID = "swarmgym/Mixed-v0"
#: Env steps of the default run.
DEFAULT_TOTAL_STEPS = 450_000
#: Orchestrator the default run imitates before RL (``--warm-start none``: the random network).
DEFAULT_WARM_START = "critical_path"
#: Behaviour-cloning passes of the default warm start.
DEFAULT_WARM_START_EPOCHS = 30
#: Weight of the default warm start's critic fit (:attr:`PPOConfig.warm_start_value_coef`).
DEFAULT_WARM_START_VALUE_COEF = 0.5
#: Evaluation episodes per orchestrator of the default run.
DEFAULT_EVAL_SEEDS = 400
#: Seed offset of evaluation episodes (training draws its own instances from the engine's seed).
EVAL_SEED_OFFSET = 10_000
#: Seed offset of validation episodes, on which ``swarmgym study --select`` chooses among checkpoints; the
#: evaluation episodes (up to 10,000 of them) never reach it, so a choice made here is scored on unseen episodes.
VALIDATION_SEED_OFFSET = 20_000
#: Options that shape a run (``argparse`` dest -> option): a resumed run keeps its checkpoint's values.
RUN_SHAPING_OPTIONS: dict[str, str] = {
    "env_id": "--env-id",
    "total_steps": "--total-steps",
    "quick": "--quick",
    "seed": "--seed",
    "num_envs": "--num-envs",
    "ffn": "--ffn",
    "schedule": "--schedule",
    "no_parl": "--no-parl",
    "token_cost": "--token-cost",
    "set": "--set",
    "engine": "--engine",
    "model": "--model",
    "warm_start": "--warm-start",
    "warm_start_spawn_prob": "--warm-start-spawn-prob",
    "init_from": "--init-from",
    "perf_form": "--perf-form",
}
#: PPOConfig fields set by a dedicated option (an error in them names the option).
FIELD_OPTIONS: dict[str, str] = {
    "env_id": "--env-id",
    "total_steps": "--total-steps",
    "seed": "--seed",
    "num_envs": "--num-envs",
    "token_cost": "--token-cost",
    "torch_threads": "--threads",
    "device": "--device",
    "checkpoint_seconds": "--checkpoint-seconds",
    "warm_start": "--warm-start",
    "warm_start_spawn_prob": "--warm-start-spawn-prob",
    "warm_start_epochs": "--set",
    "init_from": "--init-from",
    "perf_form": "--perf-form",
    "latency_weight": "--set",
}


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("none", "null"):
            return None
        if low in ("true", "false"):
            return low == "true"
        return text


def apply_settings(base: dict, settings: list[str]) -> dict:
    """Apply ``FIELD=VALUE`` strings (``model.FIELD`` for the architecture; VALUE is JSON or a word)."""
    out = json.loads(json.dumps(base))
    for item in settings:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        parts = key.strip().split(".")
        free_form = parts[0] == "env_overrides"  # SwarmEnv kwargs: groups are created as needed, checked by the env
        target = out
        for p in parts[:-1]:
            if free_form and p not in target:
                target[p] = {}
            if not isinstance(target.get(p), dict):
                raise ValueError(f"--set {key}: {p!r} is not a group of settings")
            target = target[p]
        if parts[-1] not in target and not free_form:
            raise ValueError(f"--set {key}: unknown field {parts[-1]!r}; known: {sorted(target)}")
        target[parts[-1]] = _parse_value(value.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train the MoE orchestrator with PARL (PPO), then evaluate it beside the hand-coded orchestrators.",
    )
    # options that shape the run (default None: a resumed run refuses them)
    p.add_argument("--env-id", default=None, help=f"env id to train and evaluate on (default {DEFAULT_ENV_ID})")
    p.add_argument(
        "--total-steps", type=int, default=None, help=f"training env steps, at least one rollout (default {DEFAULT_TOTAL_STEPS:,})"
    )
    p.add_argument("--quick", action="store_true", help="a few seconds: tiny run and evaluation (smoke test)")
    p.add_argument("--seed", type=int, default=None, help="training seed, in [0, 2**31 - 1] (default 0)")
    p.add_argument("--num-envs", type=int, default=None, help="envs stepped together, in [1, 65536] (default 64)")
    p.add_argument("--ffn", choices=["moe", "dense"], default=None, help="MoE orchestrator or the dense control (default moe)")
    p.add_argument("--schedule", choices=["linear", "cosine", "step", "constant"], default=None, help="λ schedule (default linear)")
    p.add_argument("--no-parl", action="store_true", help="train on r_perf alone")
    p.add_argument("--token-cost", type=float, default=None, help="reward penalty per 100k tokens, >= 0 (default 0)")
    p.add_argument(
        "--model", choices=["default", "small"], default=None, help="model size preset (small: the sweep model; default: default)"
    )
    p.add_argument(
        "--warm-start",
        default=None,
        metavar="ORCH",
        help=f"imitate this orchestrator before RL (e.g. sequential_crew: a serial start; 'none': the random network; default "
        f"{DEFAULT_WARM_START} with {DEFAULT_WARM_START_EPOCHS} cloning passes and a critic fit, none with --quick)",
    )
    p.add_argument(
        "--warm-start-spawn-prob",
        type=float,
        default=None,
        metavar="P",
        help="per-step spawn probability of the warm-started policy, in (0, 1) (default: the clone's own)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="RUN",
        help="start from the network of a trained run (its folder or checkpoint.pt) instead of a fresh one; the model is the "
        "checkpoint's, the optimiser and schedules start fresh; not with --warm-start, --model or --ffn",
    )
    p.add_argument(
        "--perf-form", choices=["score", "latency"], default=None, help="r_perf: the score, or the score x budget left (default score)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any PPOConfig field, e.g. --set ent_coef=0.02 --set model.d_model=64 --set env_overrides.config.spawn_ticks=1",
    )
    p.add_argument("--engine", choices=["auto", "batched", "gym"], default=None, help="env engine (default auto)")
    # options a resumed run may change
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 1; 0 = torch's choice)")
    p.add_argument(
        "--checkpoint-seconds", type=float, default=None, help="write checkpoint.pt every this many seconds (default 60; 0 = off)"
    )
    p.add_argument("--run-dir", default=None, help="output folder (default runs/train-<time>; with --resume, the checkpoint's folder)")
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN",
        help="continue a run exactly: its folder or its checkpoint.pt (the run keeps its own config)",
    )
    p.add_argument(
        "--eval-seeds", type=int, default=None, help=f"evaluation episodes per orchestrator, >= 1 (default {DEFAULT_EVAL_SEEDS})"
    )
    p.add_argument("--eval-ids", nargs="+", default=None, metavar="ID", help="ids to evaluate on (default: the training id)")
    p.add_argument(
        "--policy-mode",
        choices=["greedy", "sampled", "both"],
        default="both",
        help="evaluate the trained policy greedy, sampled or both, a row each (default both)",
    )
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _config_error(exc: Exception) -> UsageError:
    """A PPOConfig error as a usage error naming the option that set the field."""
    text = str(exc)
    head = text.split(" ", 1)[0].split("[", 1)[0]
    return UsageError(FIELD_OPTIONS.get(head, "--set"), text)


def make_config(args: argparse.Namespace) -> "Any":
    """The :class:`PPOConfig` of a command line (a new run); :class:`UsageError` names a bad option."""
    from swarmgym.evaluation import resolve_id

    try:
        env_id = resolve_id(args.env_id or DEFAULT_ENV_ID)
    except ValueError as exc:
        raise UsageError("--env-id", str(exc)) from None
    if args.seed is not None:
        check_int("--seed", args.seed, 0, 2**31 - 1)
    if args.num_envs is not None:
        check_int("--num-envs", args.num_envs, 1, 65536)
    if args.total_steps is not None:
        check_int("--total-steps", args.total_steps, 1, 10**12)
    if args.token_cost is not None:
        check_number("--token-cost", args.token_cost, 0.0, 1e6)
    from swarmgym.moe.ppo import PPOConfig  # imports torch: after the checks that need nothing

    d = PPOConfig(env_id=env_id).to_dict()
    d["seed"] = args.seed if args.seed is not None else 0
    d["engine"] = args.engine or "auto"
    d["device"] = args.device or "cpu"
    if args.threads is not None:
        d["torch_threads"] = args.threads
    if args.checkpoint_seconds is not None:
        d["checkpoint_seconds"] = args.checkpoint_seconds
    from swarmgym.moe.model import ModelConfig

    init_model = None  # the checkpoint's architecture when the run starts from a trained network
    if args.init_from is not None:
        for given, option in ((args.warm_start, "--warm-start"), (args.model, "--model"), (args.ffn, "--ffn")):
            if given is not None:
                raise UsageError(option, "cannot be combined with --init-from: the run starts from the checkpoint's network")
        from swarmgym.moe.ppo import POLICY_FORMATS, CheckpointError, read_checkpoint

        try:
            saved = read_checkpoint(args.init_from, formats=POLICY_FORMATS)["model_config"]
        except (FileNotFoundError, CheckpointError) as exc:
            raise UsageError("--init-from", str(exc)) from None
        init_model = ModelConfig.from_dict(saved).to_dict()
        d.update(model=dict(init_model), init_from=args.init_from, warm_start=None)
    else:
        if args.model not in (None, "default"):
            d["model"] = ModelConfig.preset(args.model, ffn=args.ffn or "moe").to_dict()
        d["model"]["ffn"] = args.ffn or "moe"
        if args.warm_start is None and not args.quick:  # the main job's start: a clone of critical_path with a fitted critic
            d.update(
                warm_start=DEFAULT_WARM_START,
                warm_start_epochs=DEFAULT_WARM_START_EPOCHS,
                warm_start_value_coef=DEFAULT_WARM_START_VALUE_COEF,
            )
        else:
            d["warm_start"] = None if args.warm_start in (None, "none") else args.warm_start
    d["warm_start_spawn_prob"] = args.warm_start_spawn_prob
    d["perf_form"] = args.perf_form or "score"
    d["lambda_schedule"] = args.schedule or "linear"
    d["parl"] = not args.no_parl
    d["progress"] = not args.no_progress
    if args.quick:
        d.update(num_envs=8, num_steps=32, total_steps=8 * 32 * 2, tensorboard=True)
        if init_model is None:
            d["model"].update(d_model=16, n_heads=2, expert_hidden=16, n_layers=1, n_experts=4)
    else:
        d["total_steps"] = DEFAULT_TOTAL_STEPS
    if args.num_envs is not None:
        d["num_envs"] = args.num_envs
    if args.total_steps is not None:
        d["total_steps"] = args.total_steps
    if args.token_cost is not None:
        d["token_cost"] = args.token_cost
    try:
        d = apply_settings(d, args.set)
    except ValueError as exc:
        raise UsageError("--set", str(exc).removeprefix("--set ")) from None
    if init_model is not None and d["model"] != init_model:
        raise UsageError("--set", "model.* cannot be changed with --init-from: the run starts from the checkpoint's network")
    rollout = d["num_envs"] * d["num_steps"] if isinstance(d["num_envs"], int) and isinstance(d["num_steps"], int) else None
    if args.total_steps is not None and rollout is not None and d["total_steps"] < rollout:
        raise UsageError("--total-steps", f"must be at least one rollout (num_envs x num_steps = {rollout:,}), got {d['total_steps']:,}")
    if args.total_steps is None and rollout is not None and d["total_steps"] < rollout:
        d["total_steps"] = rollout  # a larger rollout set by --num-envs or --set: the default length grows to one rollout
    try:
        return PPOConfig.from_dict(d)
    except (ValueError, TypeError) as exc:
        raise _config_error(exc) from None


@dataclass
class RunPlan:
    """A checked command line: what :func:`cli_main` will do."""

    config: Any
    run_dir: Path
    resume: Path | None = None
    #: PPOConfig fields a resumed run changes (progress bar, device, threads, checkpoint interval)
    resume_overrides: dict = field(default_factory=dict)
    eval_ids: list[str] = field(default_factory=list)
    eval_seeds: int = DEFAULT_EVAL_SEEDS
    policy_mode: str = "both"


def plan_run(args: argparse.Namespace) -> RunPlan:
    """Check every option before any work starts; :class:`UsageError` names the first bad one.
    (The checks that need nothing come first: they answer before torch is imported.)"""
    from swarmgym.evaluation import resolve_id

    if args.threads is not None:
        check_int("--threads", args.threads, 0, 1024)
    if args.checkpoint_seconds is not None:
        check_number("--checkpoint-seconds", args.checkpoint_seconds, 0.0, 1e9)
    if args.eval_seeds is not None:
        check_int("--eval-seeds", args.eval_seeds, 1, 10**7)
    if args.device is not None:
        check_device("--device", args.device)
    overrides: dict[str, Any] = {}
    if args.resume:
        from swarmgym.moe.ppo import CheckpointError, PPOConfig, checkpoint_path, read_checkpoint

        given = [opt for dest, opt in RUN_SHAPING_OPTIONS.items() if getattr(args, dest) not in (None, False, [])]
        if given:
            raise UsageError(given[0], "cannot be combined with --resume: a resumed run keeps the config saved in its checkpoint")
        try:
            state = read_checkpoint(args.resume)
        except (OSError, CheckpointError) as exc:
            raise UsageError("--resume", str(exc)) from None
        resume = checkpoint_path(args.resume)
        overrides["progress"] = not args.no_progress
        for dest, name in (("device", "device"), ("threads", "torch_threads"), ("checkpoint_seconds", "checkpoint_seconds")):
            if getattr(args, dest) is not None:
                overrides[name] = getattr(args, dest)
        try:
            config = PPOConfig.from_dict({**state["ppo_config"], **overrides})
        except (ValueError, TypeError) as exc:
            raise UsageError("--resume", f"{resume}: {exc}") from None
        if args.device is None:
            try:
                check_device("--device", config.device)
            except UsageError as exc:
                raise UsageError(
                    "--device", f"the run was trained on {config.device!r}, which this machine lacks ({exc}); pass --device cpu"
                ) from None
        run_dir = Path(args.run_dir) if args.run_dir else resume.parent
    else:
        config = make_config(args)
        resume = None
        run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / time.strftime("train-%Y%m%d-%H%M%S")
        if (run_dir / "checkpoint.pt").exists():
            raise UsageError(
                "--run-dir", f"{str(run_dir)!r} already holds a run: continue it with --resume {run_dir}, or choose another folder"
            )
    from swarmgym.moe.engines import check_env_kwargs, kwargs_extended
    from swarmgym.moe.model import layout_name

    overridden = bool(config.env_overrides)
    try:
        extended = kwargs_extended(check_env_kwargs(config.env_id, config.env_overrides))
    except ValueError as exc:
        raise UsageError("--set env_overrides" if overridden else "--env-id", str(exc)) from None
    if resume is None and config.init_from is not None:
        from swarmgym.moe.ppo import POLICY_FORMATS, read_checkpoint

        saved_extended = bool(read_checkpoint(config.init_from, formats=POLICY_FORMATS).get("extended", False))
        if saved_extended != extended:
            raise UsageError(
                "--init-from",
                f"{config.init_from} holds a policy of the {layout_name(saved_extended)} layout, but {config.env_id} is an env of "
                f"the {layout_name(extended)} layout",
            )
    eval_ids = [config.env_id]
    if args.eval_ids:
        eval_ids = []
        for name in args.eval_ids:
            try:
                env_id = resolve_id(name)
                eval_extended = kwargs_extended(check_env_kwargs(env_id, config.env_overrides))
            except ValueError as exc:
                raise UsageError("--eval-ids", str(exc)) from None
            if eval_extended != extended:
                raise UsageError(
                    "--eval-ids",
                    f"{env_id} is an env of the {layout_name(eval_extended)} layout; a policy trained on {config.env_id} "
                    f"(the {layout_name(extended)} layout) acts only on envs of its own layout",
                )
            eval_ids.append(env_id)
    eval_seeds = args.eval_seeds if args.eval_seeds is not None else (16 if args.quick else DEFAULT_EVAL_SEEDS)
    check_output_dir("--run-dir", run_dir)
    return RunPlan(config, run_dir, resume, overrides, eval_ids, eval_seeds, args.policy_mode)


def evaluate_policy(
    policy: Any,
    env_ids: list[str],
    n_seeds: int,
    *,
    env_overrides: dict | None = None,
    reference: bool = True,
    policy_mode: str = "both",
    extra: list | None = None,
) -> list[dict]:
    """The trained policy (greedy and/or sampled, see :func:`swarmgym.evaluation.policy_variants`),
    ``extra`` policies (e.g. the warm-started one) and (``reference``) the hand-coded orchestrators on the same episodes; returns
    :func:`swarmgym.evaluation.table_rows`."""
    from swarmgym.evaluation import evaluate, table_rows
    from swarmgym.moe.engines import resolve_env_kwargs
    from swarmgym.orchestrators import REFERENCE_NAMES

    names = [n for n in REFERENCE_NAMES if n != "random"] if reference else []
    results = []
    for env_id in env_ids:
        # the same knob changes as in training, merged into each id's own kwargs
        kwargs = resolve_env_kwargs(env_id, env_overrides) if env_overrides else None
        results += evaluate(
            [policy, *(extra or []), *names], [env_id], n_seeds, seed_offset=EVAL_SEED_OFFSET, env_kwargs=kwargs, policy_mode=policy_mode
        )
    return table_rows(results)


# ---------------------------------------------------------------------- plots
def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the install
        print("swarmgym train: matplotlib is not installed (pip install 'swarmgym[train]'); no plots", file=sys.stderr)
        return None
    return plt


def plot_training_curves(history: list[dict], path: Path, title: str = "") -> Path | None:
    """Score, critical steps, speedup, spawns, λ and expert-load spread over training."""
    plt = _plt()
    if plt is None or not history:
        return None
    steps = np.array([r["global_step"] for r in history], dtype=float)
    panels = [
        ("charts/score", "score (r_perf)"),
        ("charts/critical_steps", "critical steps"),
        ("charts/speedup", "speedup"),
        ("charts/n_spawned", "sub-agents spawned / episode"),
        ("charts/spurious_spawn_rate", "spurious-spawn rate"),
        ("charts/serial_collapse_index", "serial-collapse index"),
        ("charts/tokens", "tokens / episode"),
        ("parl/lambda1", "λ1 (r_parallel), λ2 (r_finish)"),
        ("moe/load_cv/l0", "expert load CV (per layer)"),
    ]
    fig, axes = plt.subplots(3, 3, figsize=(13, 9))
    for ax, (key, label) in zip(axes.ravel(), panels):
        if key == "moe/load_cv/l0":
            keys = sorted(k for k in history[0] if k.startswith("moe/load_cv/"))
            for k in keys:
                ax.plot(steps, [r.get(k, np.nan) for r in history], label=k.rsplit("/", 1)[-1])
            if keys:
                ax.legend(fontsize=7)
        elif key == "parl/lambda1":
            ax.plot(steps, [r.get("parl/lambda1", np.nan) for r in history], label="λ1")
            ax.plot(steps, [r.get("parl/lambda2", np.nan) for r in history], label="λ2", linestyle="--")
            ax.legend(fontsize=7)
        else:
            ax.plot(steps, [r.get(key, np.nan) for r in history])
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("env steps", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or "training", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_concurrency(rows: list[dict], path: Path) -> Path | None:
    """One panel per family: share of ticks with k sub-agents running, per orchestrator."""
    plt = _plt()
    if plt is None or not rows:
        return None
    families = list(dict.fromkeys(r["family"] for r in rows))
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.4), squeeze=False)
    for ax, fam in zip(axes[0], families):
        group = [r for r in rows if r["family"] == fam]
        width = 0.8 / max(len(group), 1)
        for j, r in enumerate(group):
            prof = np.asarray(r["profile"], dtype=float)
            ax.bar(np.arange(len(prof)) + j * width, prof, width=width, label=r["orchestrator"])
        ax.set_title(f"{fam}", fontsize=9)
        ax.set_xlabel("sub-agents running", fontsize=8)
        ax.set_ylabel("share of ticks", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def family_expert_load(history: list[dict]) -> dict[str, np.ndarray]:
    """``family -> [layers, experts]`` expert-load shares averaged over the last quarter of training."""
    if not history:
        return {}
    tail = history[-max(1, len(history) // 4) :]
    out: dict[str, list] = {}
    for key in history[-1]:
        if not key.startswith("moe/family_load/"):
            continue
        _, _, fam, layer, expert = key.split("/")
        vals = [r.get(key, np.nan) for r in tail]
        out.setdefault(fam, {}).setdefault(int(layer[1:]), {})[int(expert[1:])] = float(np.nanmean(vals)) if vals else np.nan
    result = {}
    for fam, layers in out.items():
        n_l, n_e = max(layers) + 1, max(max(v) for v in layers.values()) + 1
        arr = np.full((n_l, n_e), np.nan)
        for layer, experts in layers.items():
            for e, v in experts.items():
                arr[layer, e] = v
        result[fam] = arr
    return result


def plot_expert_load(history: list[dict], path: Path, title: str = "") -> Path | None:
    """Heat maps: share of each family's tokens routed to each expert, per layer."""
    plt = _plt()
    loads = family_expert_load(history)
    if plt is None or not loads:
        return None
    fams = list(loads)
    n_layers = next(iter(loads.values())).shape[0]
    fig, axes = plt.subplots(1, n_layers, figsize=(4.5 * n_layers, 0.5 * len(fams) + 1.6), squeeze=False)
    for layer, ax in enumerate(axes[0]):
        mat = np.stack([loads[f][layer] for f in fams])
        im = ax.imshow(mat, aspect="auto", cmap="viridis", vmin=0.0)
        ax.set_yticks(range(len(fams)), fams, fontsize=7)
        ax.set_xticks(range(mat.shape[1]), [str(e) for e in range(mat.shape[1])], fontsize=7)
        ax.set_xlabel("expert", fontsize=8)
        ax.set_title(f"layer {layer}: share of a family's tokens", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- entry point
def cli_main(argv: list[str]) -> int:
    """Entry point of ``swarmgym train``: 0 on success, 2 for a bad option, 130/143 when stopped by SIGINT/SIGTERM."""
    args = build_parser().parse_args(argv)
    try:
        plan = plan_run(args)
    except UsageError as exc:
        return usage_failure(PROG, exc)
    from swarmgym.moe.checkpointing import StopRequested, atomic_write_text, system_info, system_info_differences
    from swarmgym.moe.policy import load_policy
    from swarmgym.moe.ppo import PPOTrainer

    run_dir = plan.run_dir
    try:
        if plan.resume is not None:
            trainer = PPOTrainer.resume(plan.resume, run_dir=run_dir, **plan.resume_overrides)
        else:
            trainer = PPOTrainer(plan.config, run_dir=run_dir)
    except (ValueError, TypeError, OSError) as exc:
        return usage_failure(PROG, exc)
    config = trainer.config
    command = "swarmgym train" + (" " + shlex.join(argv) if argv else "")
    atomic_write_text(run_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    previous = (run_dir / "command.txt").read_text() if plan.resume is not None and (run_dir / "command.txt").is_file() else ""
    atomic_write_text(run_dir / "command.txt", previous + command + "\n")
    # system_info.json: one record per part of the run (its start, then each resume), like command.txt
    info_path = run_dir / "system_info.json"
    parts = json.loads(info_path.read_text()) if plan.resume is not None and info_path.is_file() else []
    parts.append({"command": command, "from_update": trainer.update, **system_info()})
    atomic_write_text(info_path, json.dumps(parts, indent=2) + "\n")
    if trainer.resumed_system_info is not None:
        changed = system_info_differences(trainer.resumed_system_info)
        if changed:
            print(
                f"{PROG}: note: resuming under other versions than the checkpoint was written with: {', '.join(changed)}; "
                "the run goes on, but need not be bit-identical to an uninterrupted one",
                file=sys.stderr,
            )

    warm_policy = None
    if plan.resume is None and trainer.warm_start_report is not None:
        import copy

        from swarmgym.moe.policy import MoEOrchestrator

        report = trainer.warm_start_report.to_dict()
        atomic_write_text(run_dir / "warm_start.json", json.dumps(report, indent=2) + "\n")
        warm_policy = MoEOrchestrator(copy.deepcopy(trainer.model), name=f"warm start ({config.warm_start})")
        print(
            f"{PROG}: warm start from {config.warm_start}: {report['states']:,} states, {report['seconds']:.0f} s, "
            f"action-kind accuracy {report['kind_accuracy']:.3f}, spawn probability per step {report['spawn_prob_cloned']:.2e} "
            f"cloned -> {report['spawn_prob']:.2e} (logit offset {report['spawn_logit_offset']:+.3f}), entropy {report['entropy']:.3f}",
            file=sys.stderr,
        )
    counts = trainer.model.parameter_counts()
    verb = f"resuming at update {trainer.update}/{config.num_updates}:" if plan.resume is not None else "training"
    if plan.resume is None and config.init_from:
        verb += f" (from the network of {config.init_from})"
    print(
        f"{PROG}: {verb} {config.model.ffn} orchestrator ({counts['total']:,} parameters, {counts['active']:,} active) on {config.env_id}, "
        f"{config.total_steps:,} env steps, PARL {'off' if not config.parl else config.lambda_schedule + ' λ'}; engine {type(trainer.engine).__name__}; "
        f"run folder {run_dir}",
        file=sys.stderr,
    )
    resume_hint = f"resume with: swarmgym train --resume {shlex.quote(str(run_dir))}"
    start = time.perf_counter()
    steps_before = trainer.global_step
    try:
        trainer.train()
    except StopRequested as exc:
        print(f"{PROG}: {exc.message}; {resume_hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if trainer.last_checkpoint is not None:
            print(f"{PROG}: stopped at once; the updates since the last checkpoint are lost; {resume_hint}", file=sys.stderr)
        else:
            print(f"{PROG}: stopped at once, before the first checkpoint; nothing to resume", file=sys.stderr)
        return 130
    # Totals cover every part of a resumed run, in seconds of training updates (progress.csv's time_s);
    # a resumed part's own steps and wall-clock seconds are printed beside them.
    part_s = time.perf_counter() - start
    train_s = trainer.wall_time
    sps = trainer.global_step / max(train_s, 1e-9)
    part = (
        f"; this part, from the resume: {trainer.global_step - steps_before:,} env steps in {part_s:.0f} s"
        if plan.resume is not None
        else ""
    )
    print(f"{PROG}: trained {trainer.global_step:,} env steps in {train_s:.0f} s ({sps:,.0f} env-steps/s){part}", file=sys.stderr)
    summary: dict[str, Any] = {"env_steps": trainer.global_step, "train_seconds": train_s, "env_steps_per_s": sps, "parameters": counts}

    try:
        if not args.no_plots:
            plot_training_curves(trainer.history, run_dir / "training_curves.png", f"{config.model.ffn} on {config.env_id}")
            plot_expert_load(trainer.history, run_dir / "expert_load.png", "expert load per task family (last quarter of training)")
        if not args.no_eval:
            from swarmgym.evaluation import to_csv, to_markdown, to_terminal

            policy = load_policy(run_dir / "checkpoint.pt", name=f"{config.model.ffn}:{run_dir.name}", threads=config.torch_threads or None)
            t0 = time.perf_counter()
            rows = evaluate_policy(
                policy,
                plan.eval_ids,
                plan.eval_seeds,
                env_overrides=config.env_overrides or None,
                policy_mode=plan.policy_mode,
                extra=[warm_policy] if warm_policy is not None else None,
            )
            summary["eval_seconds"] = time.perf_counter() - t0
            markdown = to_markdown(rows, title=f"Trained {config.model.ffn} orchestrator vs the hand-coded ones", command=command)
            atomic_write_text(run_dir / "table.md", markdown)
            atomic_write_text(run_dir / "table.csv", to_csv(rows))
            print(to_terminal(rows))
            if not args.no_plots:
                plot_concurrency(rows, run_dir / "concurrency.png")
    except KeyboardInterrupt:
        print(
            f"{PROG}: interrupted after training; the checkpoint is complete: evaluate it with "
            f"swarmgym evaluate -o moe:{shlex.quote(str(run_dir))}",
            file=sys.stderr,
        )
        return 130
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"{PROG}: wrote {run_dir}" + ("" if args.no_eval else f" (full table: {run_dir / 'table.md'})"), file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_main(sys.argv[1:]))
