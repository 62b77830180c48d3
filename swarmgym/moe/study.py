"""``swarmgym study``: when does r_perf alone collapse to serial, and does PARL escape it?

Two parts, both written into one Markdown report with its plots:

1. **Conditions over seeds** on one configuration (an env id plus knob settings):

   ====================  ======================================================
   ``r_perf``            MoE, reward = task score only (minus the token cost, if any)
   ``parl_annealed``     MoE, PARL with λ1, λ2 annealed linearly to 0 (Kimi K2.5)
   ``parl_constant``     MoE, PARL with λ1, λ2 held constant
   ``dense_parl``        the dense control of equal active size, annealed PARL
   ====================  ======================================================

   Each run is evaluated greedily on held-out episodes; the report gives per-condition
   means ± standard deviations over seeds (score, critical steps, speedup, collapse
   index, spurious-spawn rate, spawns, tokens), learning curves, and the MoE runs'
   expert load per task family.

2. **A knob scan** (``--scan``): r_perf alone vs annealed PARL, one seed each, under
   each of a few knob settings (:data:`KNOBS`: hand-off latency ``spawn_ticks``,
   sub-agent reliability, the budget, a token cost in the objective), to locate the
   settings under which r_perf alone collapses to serial.

Size is configurable (``--seeds``, ``--total-steps``, ``--scan-steps``,
``--eval-episodes``); the report states it, with the command and the wall-clock.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Conditions of part 1: name -> PPOConfig changes.
CONDITIONS: dict[str, dict[str, Any]] = {
    "r_perf": {"parl": False},
    "parl_annealed": {"parl": True, "lambda_schedule": "linear"},
    "parl_constant": {"parl": True, "lambda_schedule": "constant"},
    "dense_parl": {"parl": True, "lambda_schedule": "linear", "model": {"ffn": "dense"}},
}

_MIXED_FAMILIES = ("WideSearch", "SerialReasoning", "DependentChains", "LayeredDAG")


def _merge(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in change.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _mixed_budget(factor: float) -> dict:
    return {"generator_kwargs": {"families": {f: {"budget_factor": factor} for f in _MIXED_FAMILIES}}}


#: Knob settings of the scan: name -> (env overrides, PPOConfig changes, meaning).
KNOBS: dict[str, tuple[dict, dict, str]] = {
    "default": ({}, {}, "the id as registered"),
    "handoff_latency": ({"config": {"spawn_ticks": 1}}, {}, "spawn_ticks = 1: every spawn costs the orchestrator a tick"),
    "unreliable": (
        {"config": {"reliability": {"fail_base": [0.15, 0.15, 0.25, 0.15], "wrong_base": [0.06, 0.05, 0.2, 0.08]}}},
        {},
        "sub-agents fail ~3x and err ~2-3x as often as by default",
    ),
    "loose_budget": (_mixed_budget(3.0), {}, "budget 3x the makespan floor for every family (serial work fits)"),
    "token_cost": ({}, {"token_cost": 0.5}, "reward - 0.5 per 100k tokens (a delegating episode costs ~0.3)"),
    "serial_trap": (
        _merge(
            _mixed_budget(3.0),
            {"config": {"reliability": {"fail_base": [0.15, 0.15, 0.25, 0.15], "wrong_base": [0.06, 0.05, 0.2, 0.08]}}},
        ),
        {"token_cost": 0.5},
        "loose_budget + unreliable + token_cost together: serial work fits the budget, hand-offs are risky and cost reward",
    ),
}

#: A run "collapsed to serial" when its serial-collapse index is at least this.
COLLAPSED_AT = 0.5

#: Metrics of the tables: (metric, header, digits).
COLUMNS = (
    ("score", "score", 3),
    ("critical_steps", "critical steps", 1),
    ("speedup", "speedup", 2),
    ("serial_collapse_index", "collapse idx", 2),
    ("spurious_spawn_rate", "spurious", 2),
    ("n_spawned", "spawned", 1),
    ("tokens", "tokens (k)", 1),
)


def run_one(base: dict, condition: dict, env_overrides: dict, seed: int, run_dir: Path, eval_episodes: int) -> dict:
    """Train one run and evaluate it greedily; returns its summary (history, evaluation per family)."""
    from swarmgym.evaluation import run_episodes
    from swarmgym.moe.engines import resolve_env_kwargs
    from swarmgym.moe.policy import MoEOrchestrator
    from swarmgym.moe.ppo import PPOConfig, PPOTrainer
    from swarmgym.moe.train import EVAL_SEED_OFFSET

    d = _merge(base, condition)
    d["env_overrides"] = _merge(d.get("env_overrides", {}), env_overrides)
    d["seed"] = seed
    cfg = PPOConfig.from_dict(d)
    start = time.perf_counter()
    trainer = PPOTrainer(cfg, run_dir=run_dir)
    trainer.train()
    train_s = time.perf_counter() - start
    policy = MoEOrchestrator(trainer.model, name=run_dir.name)
    env_kwargs = resolve_env_kwargs(cfg.env_id, cfg.env_overrides)
    rec = run_episodes(policy, cfg.env_id, eval_episodes, seed_offset=EVAL_SEED_OFFSET, env_kwargs=env_kwargs)
    evaluation = {}
    for fam in ["all", *rec.families]:  # "all" is swarmgym.metrics.ALL
        summary = rec.summary(fam)
        evaluation[fam] = {name: float(summary[name].mean) for name, _, _ in COLUMNS if name in summary}
    return {
        "seed": seed,
        "train_seconds": train_s,
        "env_steps": trainer.global_step,
        "history": trainer.history,
        "evaluation": evaluation,
        "parameters": trainer.model.parameter_counts(),
    }


def _agg(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v == v], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _fmt(mean: float, sd: float, digits: int, scale: float = 1.0) -> str:
    if mean != mean:
        return "-"
    return f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}"


def condition_table(results: dict[str, list[dict]], family: str = "all") -> str:
    lines = ["| condition | seeds | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|---|---:|" + "---:|" * len(COLUMNS)]
    for name, runs in results.items():
        cells = []
        for metric, _, digits in COLUMNS:
            vals = [r["evaluation"].get(family, {}).get(metric, float("nan")) for r in runs]
            mean, sd = _agg(vals)
            cells.append(_fmt(mean, sd, digits, 1e-3 if metric == "tokens" else 1.0))
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scan_table(scan: dict[str, dict[str, dict]]) -> str:
    lines = [
        "| knob setting | condition | " + " | ".join(h for _, h, _ in COLUMNS) + " | collapsed? |",
        "|---|---|" + "---:|" * len(COLUMNS) + "---|",
    ]
    for knob, by_cond in scan.items():
        for cond, run in by_cond.items():
            ev = run["evaluation"].get("all", {})
            cells = [_fmt(ev.get(m, float("nan")), 0.0, d, 1e-3 if m == "tokens" else 1.0).split(" ±")[0] for m, _, d in COLUMNS]
            collapsed = "yes" if ev.get("serial_collapse_index", 0.0) >= COLLAPSED_AT else "no"
            lines.append(f"| {knob} | {cond} | " + " | ".join(cells) + f" | {collapsed} |")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict[str, list[dict]], path: Path) -> Path | None:
    from swarmgym.moe.train import _plt

    plt = _plt()
    if plt is None:
        return None
    panels = [
        ("charts/score", "score"),
        ("charts/n_spawned", "spawns / episode"),
        ("charts/speedup", "speedup"),
        ("charts/spurious_spawn_rate", "spurious-spawn rate"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label) in zip(axes, panels):
        for c, (name, runs) in enumerate(results.items()):
            for j, run in enumerate(runs):
                h = run["history"]
                ax.plot(
                    [r["global_step"] for r in h],
                    [r.get(key, np.nan) for r in h],
                    color=colors[c % len(colors)],
                    alpha=0.8,
                    label=name if j == 0 else None,
                )
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("env steps", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- time to target
WIDESEARCH = "swarmgym/WideSearch-v0"


def _widesearch_target(eval_episodes: int) -> dict[str, float]:
    """The sequential crew on the held-out WideSearch episodes: the target is speedup >= 3x
    its speedup with a score no lower than its score."""
    from swarmgym.evaluation import run_episodes
    from swarmgym.orchestrators import load_orchestrator
    from swarmgym.moe.train import EVAL_SEED_OFFSET

    rec = run_episodes(load_orchestrator("sequential_crew"), WIDESEARCH, eval_episodes, seed_offset=EVAL_SEED_OFFSET)
    s = rec.summary()
    return {"score": float(s["score"].mean), "speedup": 3.0 * float(s["speedup"].mean)}


def _meets(policy, target: dict[str, float], eval_episodes: int) -> dict[str, float]:
    from swarmgym.evaluation import run_episodes
    from swarmgym.moe.train import EVAL_SEED_OFFSET

    s = run_episodes(policy, WIDESEARCH, eval_episodes, seed_offset=EVAL_SEED_OFFSET).summary()
    out = {"score": float(s["score"].mean), "speedup": float(s["speedup"].mean)}
    out["met"] = float(out["score"] >= target["score"] and out["speedup"] >= target["speedup"])
    return out


def time_to_target_moe(base: dict, target: dict, max_seconds: float, eval_every: int, eval_episodes: int, seed: int = 0) -> dict:
    """Train the MoE orchestrator on WideSearch-v0, evaluating every ``eval_every`` updates;
    training wall-clock (evaluation excluded) until the target is met."""
    from swarmgym.moe.policy import MoEOrchestrator
    from swarmgym.moe.ppo import PPOConfig, PPOTrainer

    d = _merge(base, {"env_id": WIDESEARCH, "seed": seed, "total_steps": 10_000_000})
    trainer = PPOTrainer(PPOConfig.from_dict(d))
    checks = []
    while trainer.wall_time < max_seconds:
        trainer.train(max_updates=eval_every)
        ev = _meets(MoEOrchestrator(trainer.model), target, eval_episodes)
        checks.append({"seconds": trainer.wall_time, "env_steps": trainer.global_step, **ev})
        print(
            f"  moe: {trainer.global_step:>8,} steps {trainer.wall_time:6.0f} s  score {ev['score']:.3f} speedup {ev['speedup']:.2f}",
            file=sys.stderr,
            flush=True,
        )
        if ev["met"]:
            break
    return {"checks": checks, "env_steps_per_s": trainer.global_step / max(trainer.wall_time, 1e-9)}


def time_to_target_sb3(target: dict, max_seconds: float, eval_every_steps: int, eval_episodes: int, seed: int = 0) -> dict:
    """MaskablePPO (sb3-contrib) with the PARL reward on WideSearch-v0, configured as the
    repository's SB3 baseline (``baselines/sb3/configs/maskable_ppo_parl.toml`` when present);
    training wall-clock (evaluation excluded) until the target is met."""
    import tomllib

    import gymnasium as gym
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    from swarmgym.orchestrators import SB3Policy
    from swarmgym.parl import ParlReward, ParlScheduleCallback

    cfg_path = Path("baselines/sb3/configs/maskable_ppo_parl.toml")
    if cfg_path.is_file():
        cfg = tomllib.loads(cfg_path.read_text())
    else:  # the same values, for installs without the repository's baselines folder
        cfg = {
            "n_envs": 8,
            "ppo": {
                "learning_rate": 3e-4,
                "n_steps": 256,
                "batch_size": 256,
                "n_epochs": 4,
                "gamma": 1.0,
                "gae_lambda": 0.95,
                "clip_range": 0.2,
                "ent_coef": 0.01,
                "vf_coef": 0.5,
                "max_grad_norm": 0.5,
                "policy_kwargs": {"net_arch": [128, 128]},
            },
            "parl": {
                "enabled": True,
                "parallel_form": "instantiation",
                "finish_form": "finish_rate",
                "cap": 10,
                "payment": "episode_end",
                "lambda1": {"kind": "linear", "initial": 0.3, "anneal_fraction": 0.5},
                "lambda2": {"kind": "linear", "initial": 0.3, "anneal_fraction": 0.5},
            },
        }
    horizon = 300_000  # the λ schedules' training length
    parl = {k: v for k, v in cfg["parl"].items() if k != "enabled"}

    def make(k):
        def thunk():
            env = ParlReward(gym.make(WIDESEARCH), total_steps=horizon, **parl)
            env.reset(seed=1000 * seed + k)
            return env

        return thunk

    venv = DummyVecEnv([make(k) for k in range(cfg["n_envs"])])
    model = MaskablePPO("MultiInputPolicy", venv, seed=seed, device="cpu", verbose=0, **cfg["ppo"])
    checks: list[dict] = []
    state = {"train_s": 0.0, "t0": time.perf_counter(), "next": eval_every_steps}

    class Check(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps < state["next"]:
                return True
            state["train_s"] += time.perf_counter() - state["t0"]
            state["next"] += eval_every_steps
            ev = _meets(SB3Policy(self.model, "maskable_ppo"), target, eval_episodes)
            checks.append({"seconds": state["train_s"], "env_steps": self.num_timesteps, **ev})
            print(
                f"  sb3: {self.num_timesteps:>8,} steps {state['train_s']:6.0f} s  score {ev['score']:.3f} speedup {ev['speedup']:.2f}",
                file=sys.stderr,
                flush=True,
            )
            state["t0"] = time.perf_counter()
            return not ev["met"] and state["train_s"] < max_seconds

    model.learn(total_timesteps=horizon, callback=[ParlScheduleCallback(), Check()])
    venv.close()
    steps = checks[-1]["env_steps"] if checks else 0
    return {"checks": checks, "env_steps_per_s": steps / max(state["train_s"], 1e-9)}


def time_to_target_report(runs: list[tuple[int, dict, dict]], target: dict, command: str, max_seconds: float) -> str:
    """Markdown report of time-to-target runs: ``(seed, moe result, sb3 result)`` per seed."""
    lines = [
        "# Time to the WideSearch-v0 target: MoE PPO vs sb3-contrib MaskablePPO",
        "",
        f"Made by:\n\n```\n{command}\n```\n",
        f"Target (from the sequential crew on the same held-out episodes): speedup >= {target['speedup']:.2f} "
        f"(3x the crew's) and score >= {target['score']:.3f}. Both trained with annealed PARL on the same machine, "
        f"one after the other, seed by seed; evaluation time is excluded from the training wall-clock. "
        f"Cap: {max_seconds:.0f} s of training each.",
        "",
        "| trainer | seed | reached | training wall-clock (s) | env steps | env-steps/s | last score | last speedup |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    names = (("MoE orchestrator (this package, PPO)", 1), ("MaskablePPO (sb3-contrib, MLP 128x128)", 2))
    reached: dict[str, list[float]] = {name: [] for name, _ in names}
    for name, slot in names:
        for run in runs:
            seed, res = run[0], run[slot]
            checks = res["checks"]
            hit = next((c for c in checks if c["met"]), None)
            last = checks[-1] if checks else {"seconds": float("nan"), "env_steps": 0, "score": float("nan"), "speedup": float("nan")}
            row = hit or last
            reached[name].append(row["seconds"] if hit else float("inf"))
            lines.append(
                f"| {name} | {seed} | {'yes' if hit else 'no'} | {row['seconds']:.1f} | {row['env_steps']:,} | "
                f"{res['env_steps_per_s']:,.0f} | {row['score']:.3f} | {row['speedup']:.2f} |"
            )
    lines.append("")
    for name, _ in names:
        times = sorted(reached[name])
        median = times[len(times) // 2] if times else float("nan")
        lines.append(f"* {name}: median time to target {median:.1f} s over {len(times)} seed(s)")
    lines += ["", "Checks (greedy evaluation after each update or rollout: env steps, training seconds, score, speedup):", ""]
    for run in runs:
        for label, res in (("MoE", run[1]), ("MaskablePPO", run[2])):
            trail = ", ".join(f"{c['env_steps']:,}: {c['seconds']:.1f} s {c['score']:.3f}/{c['speedup']:.2f}" for c in res["checks"])
            lines.append(f"* {label}, seed {run[0]}: {trail or '(not run)'}")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarmgym study",
        description="The PARL study: r_perf only vs annealed/constant PARL, dense vs MoE, over seeds; plus a knob scan.",
    )
    p.add_argument("--env-id", default="swarmgym/Mixed-v0", help="configuration: env id (default swarmgym/Mixed-v0)")
    p.add_argument("--knob", default="default", choices=sorted(KNOBS), help="knob setting of part 1 (default: the id as registered)")
    p.add_argument("--conditions", nargs="*", default=list(CONDITIONS), choices=list(CONDITIONS), help="conditions of part 1 (default all)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per condition (default 2)")
    p.add_argument("--total-steps", type=int, default=150_000, help="env steps per run of part 1 (default 150000)")
    p.add_argument(
        "--scan",
        nargs="*",
        default=None,
        metavar="KNOB",
        help=f"run the knob scan over these settings (no names: all of {', '.join(KNOBS)})",
    )
    p.add_argument("--scan-steps", type=int, default=60_000, help="env steps per scan run (default 60000)")
    p.add_argument("--eval-episodes", type=int, default=200, help="greedy evaluation episodes per run (default 200)")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="PPOConfig changes for every run (as in swarmgym train)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--workers", type=int, default=1, help="runs trained in parallel processes (default 1)")
    p.add_argument("--out", default="runs/study", help="report folder (default runs/study)")
    p.add_argument("--runs-dir", default=None, help="folder for the runs' checkpoints and logs (default OUT/runs)")
    p.add_argument("--notes", default=None, help="a Markdown file whose text is added to the report as its discussion")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (tiny model, few steps)")
    p.add_argument(
        "--time-to-target",
        action="store_true",
        help="instead of the study: training wall-clock to the WideSearch-v0 target, this trainer vs sb3-contrib MaskablePPO",
    )
    p.add_argument("--max-seconds", type=float, default=600.0, help="time-to-target: training cap per trainer in seconds (default 600)")
    p.add_argument("--skip-sb3", action="store_true", help="time-to-target: measure this trainer only")
    return p


def cli_main(argv: list[str]) -> int:
    """Entry point of ``swarmgym study``."""
    args = build_parser().parse_args(argv)
    from swarmgym.moe.ppo import PPOConfig
    from swarmgym.moe.train import apply_settings, plot_expert_load

    if args.seeds < 1 or args.total_steps < 1 or args.eval_episodes < 1:
        print("swarmgym study: --seeds, --total-steps and --eval-episodes must be >= 1", file=sys.stderr)
        return 2
    base = PPOConfig(env_id=args.env_id).to_dict()
    base.update(progress=False, tensorboard=False, torch_threads=args.threads, engine="auto")
    if args.quick:
        base.update(num_envs=8, num_steps=16)
        base["model"].update(d_model=16, n_heads=2, n_layers=1, n_experts=4, expert_hidden=16)
        args.total_steps = min(args.total_steps, 256)
        args.scan_steps = min(args.scan_steps, 128)
        args.eval_episodes = min(args.eval_episodes, 8)
    try:
        base = apply_settings(base, args.set)
        PPOConfig.from_dict({**base, "total_steps": max(args.total_steps, base["num_envs"] * base["num_steps"])})
    except (ValueError, TypeError) as exc:
        print(f"swarmgym study: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "swarmgym study" + (" " + shlex.join(argv) if argv else "")
    if args.time_to_target:
        episodes = 8 if args.quick else min(args.eval_episodes, 200)
        max_s = 5.0 if args.quick else args.max_seconds
        target = _widesearch_target(episodes)
        runs = []
        for seed in range(args.seeds):
            moe = time_to_target_moe(base, target, max_s, 1, episodes, seed=seed)  # a check after every update
            sb3 = {"checks": [], "env_steps_per_s": float("nan")}
            if not args.skip_sb3:
                sb3 = time_to_target_sb3(target, max_s, 512 if args.quick else 2048, episodes, seed=seed)  # every rollout (8 x 256)
            runs.append((seed, moe, sb3))
        text = time_to_target_report(runs, target, command, max_s)
        (out / "time_to_target.md").write_text(text)
        (out / "time_to_target.json").write_text(
            json.dumps({"target": target, "runs": [{"seed": s, "moe": m, "sb3": b} for s, m, b in runs]}, indent=2) + "\n"
        )
        print(text)
        return 0
    t_start = time.perf_counter()
    rollout = base["num_envs"] * base["num_steps"]
    runs_dir = Path(args.runs_dir) if args.runs_dir else out / "runs"

    # ---- the runs: part 1 (conditions x seeds) and part 2 (knob scan), in --workers processes
    env_over, cfg_over, knob_doc = KNOBS[args.knob]
    jobs: list[tuple[tuple, tuple]] = []  # (key, run_one arguments)
    for name in args.conditions:
        for seed in range(args.seeds):
            cond = _merge(CONDITIONS[name], cfg_over)
            cond["total_steps"] = max(args.total_steps, rollout)
            jobs.append((("part1", name, seed), (base, cond, env_over, seed, runs_dir / f"{name}-s{seed}", args.eval_episodes)))
    scan_knobs = [] if args.scan is None else (args.scan or list(KNOBS))
    for knob in scan_knobs:
        if knob not in KNOBS:
            print(f"swarmgym study: unknown knob {knob!r}; choose from {', '.join(KNOBS)}", file=sys.stderr)
            return 2
        e_over, c_over, _ = KNOBS[knob]
        for cname in ("r_perf", "parl_annealed"):
            cond = _merge(CONDITIONS[cname], c_over)
            cond["total_steps"] = max(args.scan_steps, rollout)
            jobs.append((("scan", knob, cname), (base, cond, e_over, 0, runs_dir / f"scan-{knob}-{cname}", args.eval_episodes)))
    done: dict[tuple, dict] = {}

    def report(key, run):
        ev = run["evaluation"].get("all", {})
        print(
            f"swarmgym study: {'/'.join(map(str, key[1:]))}: score {ev.get('score', float('nan')):.3f}  "
            f"spawned {ev.get('n_spawned', float('nan')):.1f}  ({run['train_seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    if args.workers > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_one, *a): key for key, a in jobs}
            for fut in futures:
                done[futures[fut]] = fut.result()
                report(futures[fut], done[futures[fut]])
    else:
        for key, a in jobs:
            done[key] = run_one(*a)
            report(key, done[key])
    results: dict[str, list[dict]] = {name: [done[("part1", name, s)] for s in range(args.seeds)] for name in args.conditions}
    scan: dict[str, dict[str, dict]] = {k: {c: done[("scan", k, c)] for c in ("r_perf", "parl_annealed")} for k in scan_knobs}
    wall = time.perf_counter() - t_start

    # ---- report
    if results:
        plot_curves(results, out / "curves.png")
    moe_runs = [(n, r) for n, runs in results.items() if CONDITIONS[n].get("model", {}).get("ffn", "moe") == "moe" for r in runs]
    load_plots = []
    for name, run in moe_runs[:4]:
        path = out / f"expert_load_{name}_s{run['seed']}.png"
        if plot_expert_load(run["history"], path, f"{name}, seed {run['seed']}: expert load per task family"):
            load_plots.append(path.name)
    any_run = next(iter(results.values()))[0] if results else None
    families = [f for f in (any_run["evaluation"] if any_run else {}) if f != "all"]
    lines = [
        "# PARL study: serial collapse, PARL and dense vs MoE",
        "",
        "Made by:",
        "",
        f"```\n{command}\n```",
        "",
        f"Configuration: `{args.env_id}` with knob setting `{args.knob}` ({knob_doc}). "
        f"Size: {args.seeds} seed(s) x {len(args.conditions)} condition(s) x {max(args.total_steps, rollout):,} env steps"
        + (f"; knob scan: {len(scan)} setting(s) x 2 conditions x {max(args.scan_steps, rollout):,} env steps, seed 0" if scan else "")
        + f"; greedy evaluation on {args.eval_episodes} held-out episodes per run. Wall-clock {wall / 60:.1f} min.",
        "",
        f"Model: `d_model={base['model']['d_model']}`, {base['model']['n_layers']} layers, {base['model']['n_experts']} routed experts "
        f"(top-{base['model']['top_k']}) + {base['model']['n_shared']} shared; "
        + (f"MoE {any_run['parameters']['total']:,} parameters, {any_run['parameters']['active']:,} active. " if any_run else "")
        + f"PPO: {base['num_envs']} envs x {base['num_steps']} steps per rollout, λ1 = {base['lambda1']}, λ2 = {base['lambda2']} "
        f"(`{base['parallel_form']}` / `{base['finish_form']}`), annealed over the first {base['anneal_fraction']:.0%} of training.",
        "",
        "Means ± standard deviations over seeds of each run's greedy evaluation.",
        "",
        "## All families",
        "",
        condition_table(results, "all") if results else "(no runs)\n",
    ]
    for fam in families:
        lines += [f"## {fam}", "", condition_table(results, fam)]
    if results:
        lines += ["## Learning curves", "", "![learning curves](curves.png)", ""]
    if load_plots:
        lines += ["## Expert load per task family", "", "Share of each family's tokens routed to each expert (last quarter of training)."]
        lines += [f"![{p}]({p})" for p in load_plots] + [""]
    if scan:
        lines += ["## Knob scan: where does r_perf alone collapse to serial?", ""]
        lines += [f"* `{k}`: {KNOBS[k][2]}" for k in scan] + ["", scan_table(scan)]
        lines += [
            f"'collapsed' = serial-collapse index >= {COLLAPSED_AT} under the greedy policy (at least half of the available speedup left unused).",
            "",
        ]
    if args.notes:
        lines += ["## Discussion", "", Path(args.notes).read_text().strip(), ""]
    (out / "report.md").write_text("\n".join(lines))
    slim = {
        "command": command,
        "wall_seconds": wall,
        "conditions": {n: [{k: v for k, v in r.items() if k != "history"} for r in runs] for n, runs in results.items()},
        "scan": {k: {c: {kk: vv for kk, vv in r.items() if kk != "history"} for c, r in v.items()} for k, v in scan.items()},
    }
    (out / "results.json").write_text(json.dumps(slim, indent=2) + "\n")
    print((out / "report.md").read_text())
    print(f"swarmgym study: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_main(sys.argv[1:]))
