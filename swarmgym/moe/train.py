"""``swarmgym train``: train the MoE orchestrator with annealed PARL, then evaluate it.

With no arguments: PPO on ``swarmgym/Mixed-v0`` with linearly annealed λ1, λ2
(:data:`DEFAULT_TOTAL_STEPS` env steps, about ten minutes on a 2-core CPU), then the
trained policy and every reference orchestrator play the same evaluation episodes
and the table (per family: score, critical steps, speedup, serial-collapse index,
spurious-spawn rate, tokens, price) is printed. The run folder (default
``runs/train-<time>``) receives::

    checkpoint.pt          model, optimiser, schedules, RNG and engine state (resumable; "moe:<folder>")
    config.json            the PPOConfig of the run
    progress.csv, tb/      training logs (CSV, TensorBoard)
    table.md, table.csv    the evaluation table
    training_curves.png    score, critical steps, speedup, spawns, λ, expert load over training
    concurrency.png        each family's concurrency profile per orchestrator
    expert_load.png        expert load per task family (MoE only)

``--quick`` trains and evaluates for a few seconds (smoke test); ``--total-steps``
sets the length; ``--set FIELD=VALUE`` changes any :class:`~swarmgym.moe.ppo.PPOConfig`
field (``model.FIELD`` for the architecture).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Env steps of the default run (about ten minutes on a 2-core CPU, evaluation included).
DEFAULT_TOTAL_STEPS = 300_000
#: Evaluation episodes per orchestrator of the default run.
DEFAULT_EVAL_SEEDS = 400
#: Seed offset of evaluation episodes (training draws its own instances from the engine's seed).
EVAL_SEED_OFFSET = 10_000


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
        free_form = parts[0] == "env_overrides"  # SwarmEnv kwargs: groups are created as needed
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
        prog="swarmgym train",
        description="Train the MoE orchestrator with PARL (PPO), then evaluate it beside the hand-coded orchestrators.",
    )
    p.add_argument("--env-id", default="swarmgym/Mixed-v0", help="env id to train and evaluate on (default swarmgym/Mixed-v0)")
    p.add_argument("--total-steps", type=int, default=None, help=f"training env steps (default {DEFAULT_TOTAL_STEPS})")
    p.add_argument("--quick", action="store_true", help="a few seconds: tiny run and evaluation (smoke test)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--num-envs", type=int, default=None, help="envs stepped together (default 64)")
    p.add_argument("--ffn", choices=["moe", "dense"], default="moe", help="MoE orchestrator or the dense control (default moe)")
    p.add_argument("--schedule", choices=["linear", "cosine", "step", "constant"], default="linear", help="λ schedule (default linear)")
    p.add_argument("--no-parl", action="store_true", help="train on r_perf alone")
    p.add_argument("--token-cost", type=float, default=None, help="reward penalty per 100k tokens (default 0)")
    p.add_argument("--model", choices=["default", "small"], default="default", help="model size preset (small: the sweep model)")
    p.add_argument(
        "--warm-start", default=None, metavar="ORCH", help="imitate this orchestrator before RL (e.g. sequential_crew: a serial start)"
    )
    p.add_argument(
        "--warm-start-spawn-prob",
        type=float,
        default=None,
        metavar="P",
        help="per-step spawn probability of the warm-started policy, in (0, 1) (default: the clone's own)",
    )
    p.add_argument("--perf-form", choices=["score", "latency"], default="score", help="r_perf: the score, or the score x budget left")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any PPOConfig field, e.g. --set ent_coef=0.02 --set model.d_model=64",
    )
    p.add_argument("--engine", choices=["auto", "batched", "gym"], default="auto", help="env engine (default auto)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 = torch's choice)")
    p.add_argument("--run-dir", default=None, help="output folder (default runs/train-<time>)")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue a run from its checkpoint.pt (same config)")
    p.add_argument("--eval-seeds", type=int, default=None, help=f"evaluation episodes per orchestrator (default {DEFAULT_EVAL_SEEDS})")
    p.add_argument("--eval-ids", nargs="+", default=None, metavar="ID", help="ids to evaluate on (default: the training id)")
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def make_config(args: argparse.Namespace) -> "Any":
    """The :class:`PPOConfig` of a command line."""
    from swarmgym.moe.ppo import PPOConfig

    base = PPOConfig(env_id=args.env_id)
    d = base.to_dict()
    d["seed"] = args.seed
    d["engine"] = args.engine
    d["device"] = args.device
    d["torch_threads"] = args.threads
    if args.model != "default":
        from swarmgym.moe.model import ModelConfig

        d["model"] = ModelConfig.preset(args.model, ffn=args.ffn).to_dict()
    d["model"]["ffn"] = args.ffn
    d["warm_start"] = args.warm_start
    d["warm_start_spawn_prob"] = args.warm_start_spawn_prob
    d["perf_form"] = args.perf_form
    d["lambda_schedule"] = args.schedule
    d["parl"] = not args.no_parl
    d["progress"] = not args.no_progress
    if args.quick:
        d.update(num_envs=8, num_steps=32, total_steps=8 * 32 * 2, tensorboard=True)
        d["model"].update(d_model=16, n_heads=2, expert_hidden=16, n_layers=1, n_experts=4)
    else:
        d["total_steps"] = DEFAULT_TOTAL_STEPS
    if args.num_envs is not None:
        d["num_envs"] = args.num_envs
    if args.total_steps is not None:
        d["total_steps"] = args.total_steps
    if args.token_cost is not None:
        d["token_cost"] = args.token_cost
    d = apply_settings(d, args.set)
    if d["total_steps"] < d["num_envs"] * d["num_steps"]:
        d["total_steps"] = d["num_envs"] * d["num_steps"]  # at least one rollout
    return PPOConfig.from_dict(d)


def evaluate_policy(
    policy: Any, env_ids: list[str], n_seeds: int, *, env_overrides: dict | None = None, reference: bool = True, extra: list | None = None
) -> list[dict]:
    """The trained policy, ``extra`` policies (e.g. the warm-started one) and (``reference``) the
    hand-coded orchestrators on the same episodes; returns :func:`swarmgym.evaluation.table_rows`."""
    from swarmgym.evaluation import evaluate, table_rows
    from swarmgym.orchestrators import REFERENCE_NAMES

    from swarmgym.moe.engines import resolve_env_kwargs

    names = [n for n in REFERENCE_NAMES if n != "random"] if reference else []
    results = []
    for env_id in env_ids:
        # the same knob changes as in training, merged into each id's own kwargs
        kwargs = resolve_env_kwargs(env_id, env_overrides) if env_overrides else None
        results += evaluate([policy, *(extra or []), *names], [env_id], n_seeds, seed_offset=EVAL_SEED_OFFSET, env_kwargs=kwargs)
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
    """Entry point of ``swarmgym train`` (contract 5)."""
    args = build_parser().parse_args(argv)
    try:
        import torch

        from swarmgym.moe.policy import load_policy
        from swarmgym.moe.ppo import PPOTrainer

        if args.resume:
            trainer = PPOTrainer.resume(args.resume, run_dir=args.run_dir or Path(args.resume).parent, progress=not args.no_progress)
            config = trainer.config
        else:
            config = make_config(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"swarmgym train: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir or (Path(args.resume).parent if args.resume else Path("runs") / time.strftime("train-%Y%m%d-%H%M%S")))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    command = "swarmgym train" + (" " + shlex.join(argv) if argv else "")
    (run_dir / "command.txt").write_text(command + "\n")

    warm_policy = None
    if not args.resume:
        trainer = PPOTrainer(config, run_dir=run_dir)
        if trainer.warm_start_report is not None:
            import copy

            from swarmgym.moe.policy import MoEOrchestrator

            report = trainer.warm_start_report.to_dict()
            (run_dir / "warm_start.json").write_text(json.dumps(report, indent=2) + "\n")
            warm_policy = MoEOrchestrator(copy.deepcopy(trainer.model), name=f"warm start ({config.warm_start})")
            print(
                f"swarmgym train: warm start from {config.warm_start}: {report['states']:,} states, {report['seconds']:.0f} s, "
                f"action-kind accuracy {report['kind_accuracy']:.3f}, spawn probability per step {report['spawn_prob_cloned']:.2e} "
                f"cloned -> {report['spawn_prob']:.2e} (logit offset {report['spawn_logit_offset']:+.3f}), entropy {report['entropy']:.3f}",
                file=sys.stderr,
            )
    counts = trainer.model.parameter_counts()
    print(
        f"swarmgym train: {config.model.ffn} orchestrator ({counts['total']:,} parameters, {counts['active']:,} active) on {config.env_id}, "
        f"{config.total_steps:,} env steps, PARL {'off' if not config.parl else config.lambda_schedule + ' λ'}; engine {type(trainer.engine).__name__}; "
        f"run folder {run_dir}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    sps = trainer.global_step / max(trainer.wall_time, 1e-9)
    print(f"swarmgym train: trained {trainer.global_step:,} env steps in {train_s:.0f} s ({sps:,.0f} env-steps/s)", file=sys.stderr)
    summary = {"env_steps": trainer.global_step, "train_seconds": train_s, "env_steps_per_s": sps, "parameters": counts}

    if not args.no_plots:
        plot_training_curves(trainer.history, run_dir / "training_curves.png", f"{config.model.ffn} on {config.env_id}")
        plot_expert_load(trainer.history, run_dir / "expert_load.png", "expert load per task family (last quarter of training)")
    if not args.no_eval:
        from swarmgym.evaluation import to_csv, to_markdown

        policy = load_policy(run_dir / "checkpoint.pt", name=f"moe ({config.model.ffn})")
        n_seeds = args.eval_seeds if args.eval_seeds is not None else (16 if args.quick else DEFAULT_EVAL_SEEDS)
        ids = args.eval_ids or [config.env_id]
        t0 = time.perf_counter()
        rows = evaluate_policy(
            policy, ids, n_seeds, env_overrides=config.env_overrides or None, extra=[warm_policy] if warm_policy is not None else None
        )
        summary["eval_seconds"] = time.perf_counter() - t0
        markdown = to_markdown(rows, title=f"Trained {config.model.ffn} orchestrator vs the hand-coded ones", command=command)
        (run_dir / "table.md").write_text(markdown)
        (run_dir / "table.csv").write_text(to_csv(rows))
        print(markdown)
        if not args.no_plots:
            plot_concurrency(rows, run_dir / "concurrency.png")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"swarmgym train: wrote {run_dir}", file=sys.stderr)
    del torch
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_main(sys.argv[1:]))
