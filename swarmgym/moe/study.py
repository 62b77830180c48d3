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
import os
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


#: A finished run of part 1 writes its summary here, in its run folder (with the config it ran).
RESULT_FILE = "result.json"
# PPOConfig fields a resumed run may change without changing the run
_RUN_NEUTRAL = ("progress", "tensorboard", "torch_threads", "checkpoint_seconds")


def _run_settings(config: dict) -> dict:
    """A PPOConfig dict as JSON gives it back, without the fields that do not shape the run."""
    return {k: v for k, v in json.loads(json.dumps(config, default=float)).items() if k not in _RUN_NEUTRAL}


def run_one(base: dict, condition: dict, env_overrides: dict, seed: int, run_dir: Path, eval_episodes: int, resume: bool = False) -> dict:
    """Train one run and evaluate it greedily; returns its summary (history, evaluation per family)
    and writes it, with the run's config, to ``run_dir/result.json`` (atomically).

    :param resume: a run whose ``result.json`` is there is not redone (its summary is returned),
        and a run stopped with a ``checkpoint.pt`` continues from it, exactly; either must have
        been made with the same settings (else ``ValueError`` naming the file).
    """
    from swarmgym.evaluation import run_episodes
    from swarmgym.moe.engines import resolve_env_kwargs
    from swarmgym.moe.policy import MoEOrchestrator
    from swarmgym.moe.ppo import PPOConfig, PPOTrainer, read_checkpoint
    from swarmgym.moe.train import EVAL_SEED_OFFSET

    d = _merge(base, condition)
    d["env_overrides"] = _merge(d.get("env_overrides", {}), env_overrides)
    d["seed"] = seed
    cfg = PPOConfig.from_dict(d)
    settings = _run_settings(cfg.to_dict())
    result_path, checkpoint = run_dir / RESULT_FILE, run_dir / "checkpoint.pt"
    if resume and result_path.is_file():
        saved = json.loads(result_path.read_text())
        if _run_settings(saved.get("config", {})) != settings:
            raise ValueError(f"{result_path} holds a run with other settings; choose another --out/--runs-dir")
        return saved["result"]
    start, trained_before = time.perf_counter(), 0.0
    if resume and checkpoint.is_file():
        if _run_settings(read_checkpoint(checkpoint)["ppo_config"]) != settings:
            raise ValueError(f"{checkpoint} holds a run with other settings; choose another --out/--runs-dir")
        trainer = PPOTrainer.resume(checkpoint, run_dir=run_dir, **{k: d[k] for k in _RUN_NEUTRAL if k in d})
        trained_before = trainer.wall_time
    else:
        trainer = PPOTrainer(cfg, run_dir=run_dir)
    trainer.train()
    train_s = trained_before + time.perf_counter() - start
    policy = MoEOrchestrator(trainer.model, name=run_dir.name)
    env_kwargs = resolve_env_kwargs(cfg.env_id, cfg.env_overrides)
    rec = run_episodes(policy, cfg.env_id, eval_episodes, seed_offset=EVAL_SEED_OFFSET, env_kwargs=env_kwargs)
    evaluation = {}
    for fam in ["all", *rec.families]:  # "all" is swarmgym.metrics.ALL
        summary = rec.summary(fam)
        evaluation[fam] = {name: float(summary[name].mean) for name, _, _ in COLUMNS if name in summary}
    result = {
        "seed": seed,
        "train_seconds": train_s,
        "env_steps": trainer.global_step,
        "history": trainer.history,
        "evaluation": evaluation,
        "parameters": trainer.model.parameter_counts(),
    }
    write_json_atomic(result_path, {"config": cfg.to_dict(), "result": result})
    return json.loads(json.dumps(result, default=float))  # as a resumed study reads it back


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


# ====================================================================== phase diagram
# From a serial warm start, a grid over dials x reward conditions x seeds. Each run is one job
# (a plain dict in, a plain dict out), so it can run in this process, a process pool or as a Ray
# task; the driver writes each result atomically to RUNS/<job id>.json, retries a failed job once,
# and --resume skips jobs whose result is already there.

#: Reward conditions of the phase diagram: name -> (PPOConfig changes, meaning).
PHASE_CONDITIONS: dict[str, tuple[dict[str, Any], str]] = {
    "r_perf": ({"parl": False}, "r_perf only"),
    "parl_annealed": (
        {"parl": True, "lambda_schedule": "linear", "parallel_form": "instantiation", "finish_form": "finish_rate"},
        "PARL, published forms (instantiation / finish_rate), λ1 and λ2 annealed linearly to 0",
    ),
    "parl_constant": (
        {"parl": True, "lambda_schedule": "constant", "parallel_form": "instantiation", "finish_form": "finish_rate"},
        "PARL, published forms, λ1 and λ2 held constant",
    ),
    "parallel_only": (
        {"parl": True, "lambda_schedule": "constant", "lambda2": 0.0, "parallel_form": "instantiation"},
        "r_parallel (instantiation) without r_finish, λ1 constant (no annealing)",
    ),
}


def _generator_name(env_id: str) -> str:
    from swarmgym.moe.engines import resolve_env_kwargs

    gen = resolve_env_kwargs(env_id).get("generator", "")
    return gen if isinstance(gen, str) else type(gen).__name__


def _budget_overrides(env_id: str, factor: float) -> dict:
    if _generator_name(env_id) == "Mixed":
        return _mixed_budget(float(factor))
    return {"generator_kwargs": {"budget_factor": float(factor)}}


def _reliability_overrides(scale: float) -> dict:
    from swarmgym.config import SubAgentReliability

    base = SubAgentReliability()
    clip = lambda xs: [min(0.95, float(scale) * x) for x in xs]  # noqa: E731
    return {"config": {"reliability": {"fail_base": clip(base.fail_base), "wrong_base": clip(base.wrong_base)}}}


#: Dials: name -> (meaning, value type, value -> (env overrides, PPOConfig changes) for an env id).
DIALS: dict[str, tuple[str, type, Any]] = {
    "spawn_prob": (
        "serial-habit strength: per-step spawn probability of the warm-started policy",
        float,
        lambda v, env_id: ({}, {"warm_start_spawn_prob": float(v)}),
    ),
    "budget_factor": ("budget tightness: budget = factor x makespan floor", float, lambda v, env_id: (_budget_overrides(env_id, v), {})),
    "spawn_ticks": (
        "hand-off latency: ticks each spawn costs the orchestrator",
        int,
        lambda v, env_id: ({"config": {"spawn_ticks": int(v)}}, {}),
    ),
    "reliability": (
        "sub-agent unreliability: failure and error rates x this (clipped at 0.95)",
        float,
        lambda v, env_id: (_reliability_overrides(v), {}),
    ),
    "token_cost": ("token cost: reward - this per 100k tokens", float, lambda v, env_id: ({}, {"token_cost": float(v)})),
    "total_steps": ("training length in env steps", int, lambda v, env_id: ({}, {"total_steps": int(v)})),
    "latency_weight": (
        "a reward that values latency: r_perf = score x ((1 - w) + w x budget share left); 0 = the score",
        float,
        lambda v, env_id: ({}, {"perf_form": "latency" if float(v) > 0 else "score", "latency_weight": float(v)}),
    ),
}


def parse_dial(text: str) -> tuple[str, list]:
    """``"spawn_ticks=0,1,2"`` -> ``("spawn_ticks", [0, 1, 2])``; a clear error for an unknown dial or value."""
    name, eq, values = text.partition("=")
    name = name.strip()
    if not eq or name not in DIALS:
        raise ValueError(f"--dial expects NAME=V1,V2,... with NAME one of {', '.join(DIALS)}; got {text!r}")
    kind = DIALS[name][1]
    try:
        out = [kind(v) if kind is float else int(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--dial {name}: values must be {kind.__name__}s separated by commas, got {values!r}") from None
    if not out:
        raise ValueError(f"--dial {name}: give at least one value")
    return name, out


def job_id(cell: dict, condition: str, seed: int) -> str:
    """A file-safe, stable id of one run: ``<dial>=<value>_..._<condition>_s<seed>``."""
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in cell.items()]
    return "_".join([*parts, condition, f"s{seed}"]) if parts else f"{condition}_s{seed}"


def make_jobs(
    base: dict,
    env_id: str,
    dials: dict[str, list],
    conditions: list[str],
    seeds: int,
    *,
    eval_episodes: int,
    check_every: int,
    check_episodes: int,
) -> list[dict]:
    """Every (cell, condition, seed) of the grid as a job dict (what :func:`run_phase_job` takes)."""
    import itertools

    names = list(dials)
    jobs = []
    for values in itertools.product(*(dials[n] for n in names)):
        cell = dict(zip(names, values))
        env_over: dict = {}
        ppo_over: dict = {}
        for n, v in cell.items():
            e, p = DIALS[n][2](v, env_id)
            env_over, ppo_over = _merge(env_over, e), _merge(ppo_over, p)
        for cond in conditions:
            for seed in range(seeds):
                d = _merge(base, PHASE_CONDITIONS[cond][0])
                d = _merge(d, ppo_over)
                d["env_id"] = env_id
                d["env_overrides"] = _merge(d.get("env_overrides", {}), env_over)
                d["seed"] = seed
                jobs.append(
                    {
                        "id": job_id(cell, cond, seed),
                        "cell": cell,
                        "condition": cond,
                        "seed": seed,
                        "config": d,
                        "eval_episodes": eval_episodes,
                        "check_every": check_every,
                        "check_episodes": check_episodes,
                    }
                )
    return jobs


def _condition_return(config: dict):
    """The return of an episode row under a run's task reward (its r_perf form minus the token cost;
    the PARL terms are shaping, not the task)."""
    from swarmgym.parl import perf_reward

    form, w, cost = config.get("perf_form", "score"), float(config.get("latency_weight", 0.5)), float(config.get("token_cost", 0.0))
    return lambda row: float(perf_reward(row, form, w)) - cost * row["tokens"] / 1e5


def _family_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    fams = sorted({r["family"] for r in rows})
    for fam in [*fams, "all"]:
        sel = [r for r in rows if fam == "all" or r["family"] == fam]
        out[fam] = {
            k: float(np.mean([r[k] for r in sel]))
            for k in ("score", "speedup", "serial_collapse_index", "spurious_spawn_rate", "n_spawned", "tokens")
        }
        out[fam]["episodes"] = len(sel)
    return out


def _escape_check(model, env_id: str, env_kwargs: dict, n: int, reference: list[dict], seed: int) -> dict:
    """Greedy and sampled play of the current network on ``n`` held-out episodes; escape verdict on
    their WideSearch episodes against ``reference`` (critical_path on the same episodes)."""
    from swarmgym.collapse import escape_verdict, play_paired
    from swarmgym.moe.policy import MoEOrchestrator
    from swarmgym.moe.train import EVAL_SEED_OFFSET

    saved = [m.load_since_update.clone() for m in model.moe_layers()]  # evaluation must not feed the balance update
    greedy = play_paired(MoEOrchestrator(model), env_id, n, seed_offset=EVAL_SEED_OFFSET, env_kwargs=env_kwargs)
    sampled = play_paired(
        MoEOrchestrator(model, deterministic=False, seed=seed), env_id, n, seed_offset=EVAL_SEED_OFFSET, env_kwargs=env_kwargs
    )
    for m, s in zip(model.moe_layers(), saved):
        m.load_since_update.copy_(s)
    wide = lambda rows: [r for r in rows if r["family"] == "WideSearch"]  # noqa: E731
    out: dict[str, Any] = {}
    if wide(reference):
        v = escape_verdict(wide(greedy), wide(sampled), wide(reference))
        out.update(v.to_dict())
        out["greedy_collapse_index"] = float(np.mean([r["serial_collapse_index"] for r in wide(greedy)]))
        out["sampled_collapse_index"] = float(np.mean([r["serial_collapse_index"] for r in wide(sampled)]))
    return out, greedy, sampled


def _warm_start_cached(trainer, cache_dir: str | None) -> dict:
    """Warm-start ``trainer.model`` as ``trainer.config`` asks. The clone depends only on the warm-start
    settings, env, model and seed (and, with a critic fit, on the reward the critic learns, not otherwise
    on the condition), so with ``cache_dir`` it is computed once per key and loaded by the other runs
    (same weights as computing it: cloning is deterministic)."""
    import hashlib

    import torch

    from swarmgym.moe.checkpointing import atomic_torch_save
    from swarmgym.moe.warm_start import warm_start_from_config

    cfg = trainer.config
    spec = {
        "warm_start": cfg.warm_start,
        "spawn_prob": cfg.warm_start_spawn_prob,
        "epochs": cfg.warm_start_epochs,
        "env_id": cfg.env_id,
        "env_overrides": cfg.env_overrides,
        "model": cfg.model.to_dict(),
        "seed": cfg.seed,
        "engine": cfg.engine,
        "value_coef": cfg.warm_start_value_coef,
    }
    fit_value = cfg.warm_start_value_coef > 0
    if fit_value:  # the critic learns the run's own reward
        reward_fields = ("gamma", "parl", "lambda_schedule", "lambda1", "lambda2", "anneal_fraction", "parallel_form", "parallel_cap")
        reward_fields += ("finish_form", "token_cost", "perf_form", "latency_weight")
        spec["reward"] = {name: getattr(cfg, name) for name in reward_fields}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"warm-{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=False)
        trainer.model.load_state_dict(state["model"])
        return {**state["report"], "cached": True}
    report = warm_start_from_config(trainer.model, cfg, reward_fn=trainer.episode_reward if fit_value else None).to_dict()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"model": trainer.model.state_dict(), "report": report, "spec": spec}, path)
    return {**report, "cached": False}


def run_phase_job(job: dict) -> dict:
    """Train one run of the grid from its job dict and evaluate it; returns a JSON-able result.

    Every ``check_every`` updates the greedy and the sampled policy play ``check_episodes``
    held-out episodes (escape check, learning curve of the collapse index). At the end the
    greedy policy plays ``eval_episodes`` episodes, critical_path plays the same ones, and the
    result holds per-family figures, the escape and collapse verdicts and the paired score
    difference to critical_path.
    """
    import torch

    from swarmgym.collapse import collapse_verdicts, paired_difference, play_paired
    from swarmgym.moe.engines import resolve_env_kwargs
    from swarmgym.moe.ppo import PPOConfig, PPOTrainer
    from swarmgym.moe.train import EVAL_SEED_OFFSET
    from swarmgym.orchestrators import load_orchestrator

    cfg = PPOConfig.from_dict(job["config"])
    start = time.perf_counter()
    trainer = PPOTrainer(cfg, warm_start=False)
    warm = _warm_start_cached(trainer, job.get("warm_cache")) if cfg.warm_start else None
    if cfg.warm_start and cfg.warm_start_kl_coef > 0:
        trainer.set_anchor()
    env_kwargs = resolve_env_kwargs(cfg.env_id, cfg.env_overrides)
    n_check, every = int(job["check_episodes"]), int(job["check_every"])
    cp = load_orchestrator("critical_path")
    ref_check = play_paired(cp, cfg.env_id, n_check, seed_offset=EVAL_SEED_OFFSET, env_kwargs=env_kwargs) if every else []
    checks = []

    def check():
        with torch.no_grad():
            verdict, _, _ = _escape_check(trainer.model, cfg.env_id, env_kwargs, n_check, ref_check, cfg.seed)
        checks.append({"env_steps": trainer.global_step, **verdict})

    if every:
        check()  # the warm-started (or fresh) policy before RL
    while trainer.update < cfg.num_updates:
        trainer.train(max_updates=every or None)
        if every and (trainer.update % every == 0 or trainer.update == cfg.num_updates):
            check()
    train_s = time.perf_counter() - start
    # ---- final evaluation on eval_episodes held-out episodes (same seeds for every run of the grid)
    n_eval = int(job["eval_episodes"])
    from swarmgym.moe.policy import MoEOrchestrator

    greedy = play_paired(MoEOrchestrator(trainer.model), cfg.env_id, n_eval, seed_offset=EVAL_SEED_OFFSET, env_kwargs=env_kwargs)
    sampled = play_paired(
        MoEOrchestrator(trainer.model, deterministic=False, seed=cfg.seed),
        cfg.env_id,
        n_eval,
        seed_offset=EVAL_SEED_OFFSET,
        env_kwargs=env_kwargs,
    )
    reference = play_paired(cp, cfg.env_id, n_eval, seed_offset=EVAL_SEED_OFFSET, env_kwargs=env_kwargs)
    wide = lambda rows: [r for r in rows if r["family"] == "WideSearch"]  # noqa: E731
    escape = None
    if wide(reference):
        from swarmgym.collapse import escape_verdict

        escape = escape_verdict(wide(greedy), wide(sampled), wide(reference)).to_dict()
    ret = _condition_return(job["config"])
    verdicts = {f: v.to_dict() for f, v in collapse_verdicts(greedy, reference, ret).items()}
    paired = {}
    for fam in sorted({r["family"] for r in greedy}) + ["all"]:
        st = paired_difference(greedy, reference, "score", family=None if fam == "all" else fam)
        paired[fam] = {"mean": st.mean, "half_width": st.half_width, "n": st.n}
    first = next((c["env_steps"] for c in checks if c.get("escaped")), None)
    curve_keys = (
        "global_step",
        "charts/score",
        "charts/n_spawned",
        "charts/serial_collapse_index",
        "charts/spurious_spawn_rate",
        "charts/sps",
    )
    return {
        "id": job["id"],
        "cell": job["cell"],
        "condition": job["condition"],
        "seed": job["seed"],
        "status": "ok",
        "env_steps": trainer.global_step,
        "train_seconds": train_s,
        "env_steps_per_s": trainer.global_step / max(trainer.wall_time, 1e-9),
        "warm_start": warm,
        "checks": checks,
        "steps_to_escape": first,
        "escape": escape,
        "collapse": verdicts,
        "paired_score_vs_critical_path": paired,
        "final": _family_summary(greedy),
        "final_sampled": _family_summary(sampled),
        "critical_path": _family_summary(reference),
        "curve": [{k: r.get(k) for k in curve_keys} for r in trainer.history],
        "parameters": trainer.model.parameter_counts(),
    }


def run_phase_job_safely(job: dict) -> dict:
    """:func:`run_phase_job`, with an exception returned as ``{"status": "error", "error": ...}``."""
    import traceback

    try:
        return run_phase_job(job)
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded with its error, not fatal to the study
        return {"id": job["id"], "cell": job["cell"], "condition": job["condition"], "seed": job["seed"], "status": "error",
                "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}  # fmt: skip


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n")
    os.replace(tmp, path)


def finished_results(runs_dir: Path) -> dict[str, dict]:
    """Results already written under ``runs_dir`` (job id -> result), skipping unreadable files."""
    out = {}
    if runs_dir.is_dir():
        for p in sorted(runs_dir.glob("*.json")):
            try:
                r = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(r, dict) and "id" in r:
                out[r["id"]] = r
    return out


RAY_MISSING = "swarmgym study: --backend ray needs Ray: pip install 'swarmgym[sweep]'"


def run_jobs(
    jobs: list[dict], runs_dir: Path, *, backend: str = "pool", workers: int = 1, ray_address: str | None = None, fn=None, log=None
) -> dict[str, dict]:
    """Run ``jobs`` and write each result to ``runs_dir/<id>.json`` as it arrives.

    A job that fails (an exception in the run, a worker that dies) is recorded with its error
    and retried once; its second failure is written as its result (``status: "error"``,
    ``attempts: 2``). Backends: ``"serial"`` (this process), ``"pool"`` (``workers`` spawned
    processes; a pool broken by a dead worker is replaced for the retries) and ``"ray"``
    (``ray.remote`` tasks; ``ray.init(address=ray_address)``, or a local Ray with ``workers`` CPUs).

    :param fn: the job function (default :func:`run_phase_job_safely`); must be importable by workers.
    """
    fn = fn or run_phase_job_safely
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    results: dict[str, dict] = {}
    errors: dict[str, list[str]] = {}

    def settle(job: dict, res: dict, attempt: int, pending: list) -> None:
        if res.get("status") != "ok":
            errors.setdefault(job["id"], []).append(res.get("error", "unknown error"))
            if attempt < 2:
                log(f"swarmgym study: {job['id']} failed ({res.get('error')}); retrying once")
                pending.append((job, attempt + 1))
                return
        res = {**res, "attempts": attempt, "errors": errors.get(job["id"], [])}
        write_json_atomic(runs_dir / f"{job['id']}.json", res)
        results[job["id"]] = res
        log(f"swarmgym study: {job['id']}: {res.get('status')} ({len(results)}/{len(jobs)})")

    def crashed(job: dict, exc: BaseException) -> dict:
        return {"id": job["id"], "cell": job["cell"], "condition": job["condition"], "seed": job["seed"], "status": "error",
                "error": f"worker died: {type(exc).__name__}: {exc}"}  # fmt: skip

    pending = [(j, 1) for j in jobs]
    if backend == "serial" or (backend == "pool" and workers <= 1):
        while pending:
            job, attempt = pending.pop(0)
            settle(job, fn(job), attempt, pending)
        return results
    if backend == "pool":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        while pending:
            batch, pending = pending, []
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(fn, job): (job, attempt) for job, attempt in batch}
                for fut in as_completed(futures):
                    job, attempt = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a dead worker breaks the pool: retried in a fresh one
                        res = crashed(job, exc)
                    settle(job, res, attempt, pending)
        return results
    if backend != "ray":
        raise ValueError(f"backend must be 'serial', 'pool' or 'ray', got {backend!r}")
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    if not ray.is_initialized():
        if ray_address:
            ray.init(address=ray_address)
        else:
            ray.init(num_cpus=max(1, workers), include_dashboard=False)
    remote = ray.remote(num_cpus=1, max_retries=0)(fn)
    while pending:
        refs = {remote.remote(job): (job, attempt) for job, attempt in pending}
        pending = []
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            job, attempt = refs[ready[0]]
            try:
                res = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a task whose worker died
                res = crashed(job, exc)
            settle(job, res, attempt, pending)
    return results


# ---------------------------------------------------------------------- phase diagram: report
def _cell_key(cell: dict) -> tuple:
    return tuple(cell.items())


def aggregate(results: list[dict]) -> dict[tuple, dict[str, dict]]:
    """``{cell key: {condition: figures}}`` over seeds: runs, failed runs, escape probability, median
    env steps to escape, collapse probability (WideSearch verdict), final score per family, SerialReasoning
    spurious-spawn rate, tokens, and the paired score difference to critical_path."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in results:
        groups.setdefault(_cell_key(r["cell"]), {}).setdefault(r["condition"], []).append(r)
    out: dict[tuple, dict[str, dict]] = {}
    for key, by_cond in groups.items():
        for cond, runs in by_cond.items():
            ok = [r for r in runs if r.get("status") == "ok"]
            esc = [r for r in ok if r.get("escape")]
            steps = [r["steps_to_escape"] for r in ok if r.get("steps_to_escape") is not None]
            fams = sorted({f for r in ok for f in r["final"] if f != "all"})
            coll = [r for r in ok if "WideSearch" in r["collapse"]]
            wide = [r for r in ok if "WideSearch" in r["final"] and "WideSearch" in r.get("critical_path", {})]
            above = [
                r for r in ok if (p := r["paired_score_vs_critical_path"].get("all")) and p["n"] > 1 and p["mean"] - p["half_width"] > 0
            ]
            fig = {
                "runs": len(runs),
                "failed": len(runs) - len(ok),
                "escape_prob": float(np.mean([bool(r["escape"]["escaped"]) for r in esc])) if esc else float("nan"),
                "median_steps_to_escape": float(np.median(steps)) if steps else float("nan"),
                "escaped_during": len(steps),
                "collapse_prob": float(np.mean([bool(r["collapse"]["WideSearch"]["collapsed"]) for r in coll])) if coll else float("nan"),
                "speedup_wide": float(np.mean([r["final"]["WideSearch"]["speedup"] for r in wide])) if wide else float("nan"),
                "cp_speedup_wide": float(np.mean([r["critical_path"]["WideSearch"]["speedup"] for r in wide])) if wide else float("nan"),
                "cp_score_wide": float(np.mean([r["critical_path"]["WideSearch"]["score"] for r in wide])) if wide else float("nan"),
                "score": {f: float(np.mean([r["final"][f]["score"] for r in ok if f in r["final"]])) for f in [*fams, "all"]} if ok else {},
                "serial_spurious": float(
                    np.mean([r["final"]["SerialReasoning"]["spurious_spawn_rate"] for r in ok if "SerialReasoning" in r["final"]])
                )
                if any("SerialReasoning" in r["final"] for r in ok)
                else float("nan"),
                "serial_spurious_sampled": float(
                    np.mean(
                        [
                            r["final_sampled"]["SerialReasoning"]["spurious_spawn_rate"]
                            for r in ok
                            if "SerialReasoning" in r.get("final_sampled", {})
                        ]
                    )
                )
                if any("SerialReasoning" in r.get("final_sampled", {}) for r in ok)
                else float("nan"),
                "tokens": float(np.mean([r["final"]["all"]["tokens"] for r in ok])) if ok else float("nan"),
                "paired_all": float(np.mean([r["paired_score_vs_critical_path"]["all"]["mean"] for r in ok])) if ok else float("nan"),
                "above_cp": len(above),
                "warm_spawn_prob": float(np.mean([r["warm_start"]["spawn_prob"] for r in ok if r.get("warm_start")]))
                if any(r.get("warm_start") for r in ok)
                else float("nan"),
            }
            out.setdefault(key, {})[cond] = fig
    return out


def _num(x: float, digits: int = 2) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def phase_table(agg: dict[tuple, dict[str, dict]], conditions: list[str]) -> str:
    """The Markdown table: one row per cell and condition."""
    if not agg:
        return "(no finished runs)\n"
    dials = [k for k, _ in next(iter(agg))]
    fams = sorted({f for by in agg.values() for fig in by.values() for f in fig["score"] if f != "all"})
    head = [*dials, "condition", "runs (failed)", "escape prob", "median steps to escape", "collapse prob (WideSearch)"]
    head += ["speedup WideSearch (critical_path)", "critical_path score WideSearch"]
    head += [f"score {f}" for f in fams] + [
        "score all",
        "SerialReasoning spurious, greedy / sampled",
        "tokens (k)",
        "score − critical_path (paired)",
        "above cp",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in sorted(agg):
        for cond in conditions:
            fig = agg[key].get(cond)
            if fig is None:
                continue
            cells = [f"{v:g}" if isinstance(v, float) else str(v) for _, v in key]
            cells += [
                cond,
                f"{fig['runs']} ({fig['failed']})",
                _num(fig["escape_prob"]),
                _num(fig["median_steps_to_escape"], 0),
                _num(fig["collapse_prob"]),
                f"{_num(fig['speedup_wide'])} ({_num(fig['cp_speedup_wide'])})",
                _num(fig["cp_score_wide"], 3),
            ]
            cells += [_num(fig["score"].get(f, float("nan")), 3) for f in fams] + [_num(fig["score"].get("all", float("nan")), 3)]
            cells += [
                f"{_num(fig['serial_spurious'])} / {_num(fig['serial_spurious_sampled'])}",
                _num(fig["tokens"] / 1e3, 1),
                f"{fig['paired_all']:+.3f}" if fig["paired_all"] == fig["paired_all"] else "-",
            ]
            cells += [f"{fig['above_cp']}/{fig['runs'] - fig['failed']}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_heatmaps(
    agg: dict[tuple, dict[str, dict]], conditions: list[str], path: Path, metric: str = "escape_prob", title: str = ""
) -> Path | None:
    """One heat map per condition over the first two dials (``metric`` per cell); further dials are
    averaged over."""
    from swarmgym.moe.train import _plt

    plt = _plt()
    if plt is None or not agg:
        return None
    dials = [k for k, _ in next(iter(agg))]
    xs = sorted({dict(k)[dials[0]] for k in agg})
    ys = sorted({dict(k)[dials[1]] for k in agg}) if len(dials) > 1 else [None]
    fig, axes = plt.subplots(1, len(conditions), figsize=(3.6 * len(conditions) + 0.8, 0.45 * len(ys) + 2.4), squeeze=False)
    for ax, cond in zip(axes[0], conditions):
        mat = np.full((len(ys), len(xs)), np.nan)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                vals = [
                    by[cond][metric]
                    for k, by in agg.items()
                    if cond in by and dict(k)[dials[0]] == x and (y is None or dict(k)[dials[1]] == y)
                ]
                vals = [v for v in vals if v == v]
                if vals:
                    mat[i, j] = float(np.mean(vals))
        im = ax.imshow(mat, origin="lower", aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0 if metric.endswith("prob") else None)
        for i in range(len(ys)):
            for j in range(len(xs)):
                if mat[i, j] == mat[i, j]:
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w" if mat[i, j] < 0.6 else "k")
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs], fontsize=7, rotation=45)
        ax.set_yticks(range(len(ys)), [f"{y:g}" if y is not None else "" for y in ys], fontsize=7)
        ax.set_xlabel(dials[0], fontsize=8)
        if len(dials) > 1:
            ax.set_ylabel(dials[1], fontsize=8)
        ax.set_title(cond, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title or metric, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_collapse_curves(results: list[dict], conditions: list[str], path: Path) -> Path | None:
    """Learning curves of the WideSearch collapse index (held-out checks; greedy solid, sampled dashed),
    one panel per condition, one line per run coloured by cell."""
    from swarmgym.moe.train import _plt

    plt = _plt()
    ok = [r for r in results if r.get("status") == "ok" and r.get("checks")]
    if plt is None or not ok:
        return None
    cells = sorted({_cell_key(r["cell"]) for r in ok})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(conditions), figsize=(3.8 * len(conditions), 3.2), squeeze=False, sharey=True)
    for ax, cond in zip(axes[0], conditions):
        seen = set()
        for r in ok:
            if r["condition"] != cond:
                continue
            ci = cells.index(_cell_key(r["cell"]))
            xs = [c["env_steps"] for c in r["checks"] if "greedy_collapse_index" in c]
            ys = [c["greedy_collapse_index"] for c in r["checks"] if "greedy_collapse_index" in c]
            label = ", ".join(f"{k}={v:g}" for k, v in cells[ci]) if ci not in seen else None
            seen.add(ci)
            ax.plot(xs, ys, color=colors[ci % len(colors)], alpha=0.8, lw=1, label=label)
            ys_s = [c.get("sampled_collapse_index", np.nan) for c in r["checks"] if "greedy_collapse_index" in c]
            ax.plot(xs, ys_s, color=colors[ci % len(colors)], alpha=0.6, lw=1, ls="--")
        ax.set_title(cond, fontsize=9)
        ax.set_xlabel("env steps", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("collapse index, WideSearch (greedy —, sampled - -)", fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def phase_report(results: list[dict], meta: dict, out: Path) -> str:
    """Write ``report.md``, ``table.md``, heat maps and the collapse-index curves for ``results`` into ``out``."""
    from swarmgym.collapse import COLLAPSE_INDEX_AT, ESCAPE_SCORE_GAP, ESCAPE_SPEEDUP_SHARE, IDEAL_SPEEDUP_AT

    out.mkdir(parents=True, exist_ok=True)
    conditions = [c for c in meta.get("conditions", PHASE_CONDITIONS) if any(r["condition"] == c for r in results)]
    agg = aggregate(results)
    table = phase_table(agg, conditions)
    (out / "table.md").write_text(table)
    pngs = []
    for metric, name, title in (
        ("escape_prob", "heatmap_escape.png", "escape probability (greedy and sampled, WideSearch)"),
        ("collapse_prob", "heatmap_collapse.png", "collapse probability (WideSearch: trap, not choice)"),
        ("serial_spurious", "heatmap_serial_spurious.png", "SerialReasoning spurious-spawn rate"),
    ):
        if len(next(iter(agg), ())) >= 1 and plot_heatmaps(agg, conditions, out / name, metric, title):
            pngs.append(name)
    if plot_collapse_curves(results, conditions, out / "collapse_curves.png"):
        pngs.append("collapse_curves.png")
    failed = [r for r in results if r.get("status") != "ok"]
    ok = [r for r in results if r.get("status") == "ok"]
    sps = [r["env_steps_per_s"] for r in ok]
    warm = [r["warm_start"] for r in ok if r.get("warm_start")]
    lines = [f"# {meta.get('title', 'Phase diagram: escape from a serial warm start')}", ""]
    if meta.get("note"):
        lines += [meta["note"], ""]
    lines += ["Made by:", "", f"```\n{meta.get('command', '')}\n```", ""]
    lines += [
        f"Training id `{meta.get('env_id')}`; dials: "
        + "; ".join(f"`{n}` ∈ {{{', '.join(f'{v:g}' for v in vals)}}} ({DIALS[n][0]})" for n, vals in meta.get("dials", {}).items())
        + ". Conditions: "
        + "; ".join(f"`{c}`: {PHASE_CONDITIONS[c][1]}" for c in conditions)
        + "."
        + (
            f" PARL coefficients: λ1 = {parl['lambda1']:g}, λ2 = {parl['lambda2']:g} (λ2 = 0 in `parallel_only`), annealed ones reaching 0 "
            f"at {parl['anneal_fraction']:g} of the run; `r_parallel` cap {parl['cap']} spawns."
            if (parl := meta.get("parl"))
            else ""
        ),
        "",
        f"Runs: {len(results)} ({len(failed)} failed after one retry); {meta.get('seeds')} seed(s) per cell and condition; "
        f"warm start `{meta.get('warm_start')}`; model `{meta.get('model')}`; wall-clock of the invocation that ran them {meta.get('wall_seconds', 0) / 60:.1f} min"
        + (f"; training {np.median(sps):,.0f} env-steps/s per run (median)" if sps else "")
        + f"; load average at start {meta.get('load', '?')}.",
        "",
    ]
    if warm:
        lines += [
            f"Warm start (mean over runs): spawn probability per step {np.mean([w['spawn_prob_cloned'] for w in warm]):.2e} as cloned, "
            f"set to {np.mean([w['spawn_prob'] for w in warm]):.2e} on average over cells (logit offsets "
            f"{min(w['spawn_logit_offset'] for w in warm):+.2f} .. {max(w['spawn_logit_offset'] for w in warm):+.2f}); action-kind accuracy "
            f"{np.mean([w['kind_accuracy'] for w in warm]):.3f}; entropy {np.mean([w['entropy'] for w in warm]):.2f} nats; "
            f"{np.mean([w['seconds'] for w in warm]):.0f} s each.",
            "",
        ]
    lines += [
        "Definitions (`swarmgym.collapse`): **escape** = the greedy and the sampled policy both reach, on the WideSearch "
        f"episodes, >= {ESCAPE_SPEEDUP_SHARE:.3g} of critical_path's mean speedup with a score no more than {ESCAPE_SCORE_GAP} below its score "
        f"(same episodes). **Collapse** on a family = collapse index >= {COLLAPSE_INDEX_AT} on a family with task ideal speedup >= {IDEAL_SPEEDUP_AT} "
        "*and* critical_path earns a strictly higher return under the run's own task reward (paired 95 % CI of the difference above 0). "
        "'median steps to escape' is over the runs that escaped at a check; 'above cp' counts runs whose paired score difference "
        "to critical_path (all families) has a 95 % CI above 0.",
        "",
        "## Table",
        "",
        table,
    ]
    for p in pngs:
        lines += [f"![{p}]({p})", ""]
    if failed:
        lines += ["## Failed runs", ""] + [f"* `{r['id']}`: {r.get('error')}" for r in failed] + [""]
    if meta.get("notes_text"):
        lines += ["## Discussion", "", meta["notes_text"].strip(), ""]
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    slim = [{k: v for k, v in r.items() if k not in ("curve", "traceback")} for r in results]
    write_json_atomic(out / "results.json", {"meta": {k: v for k, v in meta.items() if k != "notes_text"}, "runs": slim})
    return text


def phase_cli(args: argparse.Namespace, argv: list[str]) -> int:
    """``swarmgym study --phase-diagram``: the grid, run with resume and retries, then the report."""
    import os

    from swarmgym.moe.engines import check_env_kwargs
    from swarmgym.moe.model import ModelConfig
    from swarmgym.moe.ppo import PPOConfig
    from swarmgym.moe.train import apply_settings

    err = lambda msg: (print(f"swarmgym study: {msg}", file=sys.stderr), 2)[1]  # noqa: E731
    try:
        dials = dict(parse_dial(d) for d in args.dial)
    except ValueError as exc:
        return err(exc)
    if not dials:
        return err("--phase-diagram needs at least one --dial NAME=V1,V2,... (dials: " + ", ".join(DIALS) + ")")
    for name, lo in (("seeds", 1), ("total_steps", 1), ("eval_episodes", 1), ("check_episodes", 1), ("check_every", 0)):
        if getattr(args, name) < lo:
            return err(f"--{name.replace('_', '-')} must be >= {lo}, got {getattr(args, name)}")
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        return err(f"--workers must be >= 1, got {workers}")
    if args.backend == "ray" and not args.report_only:
        try:
            import ray  # noqa: F401
        except ImportError:
            print(RAY_MISSING, file=sys.stderr)
            return 2
    base = PPOConfig(env_id=args.env_id).to_dict()
    base.update(progress=False, tensorboard=False, torch_threads=args.threads, total_steps=args.total_steps)
    base["model"] = ModelConfig.preset(args.model).to_dict()
    base["warm_start"] = None if args.warm_start in (None, "none") else args.warm_start
    base["warm_start_spawn_prob"] = args.warm_start_spawn_prob
    eval_episodes, check_episodes, check_every = args.eval_episodes, args.check_episodes, args.check_every
    if args.quick:
        base.update(num_envs=8, num_steps=16, total_steps=min(args.total_steps, 256), warm_start_epochs=1)
        base["model"] = ModelConfig.preset("small").to_dict()
        eval_episodes, check_episodes = min(eval_episodes, 8), min(check_episodes, 8)
    try:
        base = apply_settings(base, args.set)
        jobs = make_jobs(
            base,
            args.env_id,
            dials,
            args.phase_conditions,
            args.seeds,
            eval_episodes=eval_episodes,
            check_every=check_every,
            check_episodes=check_episodes,
        )
        for job in jobs:
            d = dict(job["config"])
            d["total_steps"] = max(d["total_steps"], d["num_envs"] * d["num_steps"])
            job["config"] = PPOConfig.from_dict(d).to_dict()  # fail fast, before any run starts
            try:  # values range-checked as gym.make checks them
                check_env_kwargs(job["config"]["env_id"], job["config"]["env_overrides"])
            except ValueError as exc:
                raise ValueError(f"--set env_overrides / --dial: {exc}") from None
            job["warm_cache"] = str((Path(args.runs_dir) if args.runs_dir else Path(args.out) / "runs") / "warm_start")
    except (ValueError, TypeError) as exc:
        return err(exc)
    out = Path(args.out)
    runs_dir = Path(args.runs_dir) if args.runs_dir else out / "runs"
    done = finished_results(runs_dir)
    ids = {j["id"] for j in jobs}
    ours = {k: v for k, v in done.items() if k in ids}
    if ours and not (args.resume or args.report_only):
        return err(
            f"{runs_dir} already holds {len(ours)} result(s) of this grid; pass --resume to continue it (finished runs are kept) or choose another --out/--runs-dir"
        )
    todo = [j for j in jobs if ours.get(j["id"], {}).get("status") != "ok"] if not args.report_only else []
    command = "swarmgym study" + (" " + shlex.join(argv) if argv else "")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"swarmgym study: {len(jobs)} runs in the grid, {len(jobs) - len(todo)} already finished, {len(todo)} to run ({args.backend}, {workers} worker(s))",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    if todo:
        try:
            run_jobs(todo, runs_dir, backend=args.backend, workers=workers, ray_address=args.ray_address)
        except ImportError as exc:
            return err(exc)
    results = [r for k, r in finished_results(runs_dir).items() if k in ids]
    prior: dict = {}
    if args.report_only and (out / "results.json").is_file():  # keep the command, wall-clock and load of the run
        try:
            prior = json.loads((out / "results.json").read_text())["meta"]
            command = f"{prior['command'].split(chr(10) + '# report rewritten by:')[0]}\n# report rewritten by:\n{command}"
        except (OSError, KeyError, TypeError, AttributeError, json.JSONDecodeError):
            prior = {}
    meta = {
        "command": command,
        "env_id": args.env_id,
        "dials": dials,
        "conditions": args.phase_conditions,
        "seeds": args.seeds,
        "warm_start": base["warm_start"],
        "parl": {
            "lambda1": base["lambda1"],
            "lambda2": base["lambda2"],
            "anneal_fraction": base["anneal_fraction"],
            "cap": base["parallel_cap"],
        },
        "model": args.model if not args.quick else "small (quick)",
        "wall_seconds": prior.get("wall_seconds", time.perf_counter() - t0),
        "load": prior.get("load", load),
        "title": args.title or "Phase diagram: escape from a serial warm start",
        "note": args.note,
        "notes_text": Path(args.notes).read_text() if args.notes else None,
    }
    text = phase_report(results, meta, out)
    print(text)
    print(f"swarmgym study: wrote {out}", file=sys.stderr)
    return 0


def paired_report(
    policies: list[str],
    env_id: str,
    n: int,
    reference: str = "critical_path",
    env_kwargs: dict | None = None,
    policy_mode: str = "greedy",
    sample_seed: int = 0,
    seed_offset: int | None = None,
) -> tuple[str, dict]:
    """Each policy (an orchestrator spec, e.g. ``moe:runs/x/checkpoint.pt``) and ``reference`` play the same
    ``n`` held-out episodes (seeds ``seed_offset ..``; default the evaluation episodes,
    :data:`~swarmgym.moe.train.EVAL_SEED_OFFSET`); per family, the paired per-episode score difference (policy − reference) with its
    95 % CI; over all episodes, each policy's mean score, critical steps and cost (each ± its 95 % CI) and its
    mean critical steps as a multiple of the reference's. Returns the Markdown table and the figures.

    :param policy_mode: learned policies (``moe:``, ``sb3:``) play ``"greedy"``, ``"sampled"`` or ``"both"``
        (a row each; :func:`swarmgym.evaluation.policy_variants`), sampling from ``sample_seed``.
    """
    from swarmgym.collapse import paired_difference, play_paired
    from swarmgym.evaluation import is_learned, policy_variants, resolve_id
    from swarmgym.metrics import Stat
    from swarmgym.moe.train import EVAL_SEED_OFFSET
    from swarmgym.orchestrators import load_orchestrator

    env_id = resolve_id(env_id)
    offset = EVAL_SEED_OFFSET if seed_offset is None else seed_offset
    ref_rows = play_paired(load_orchestrator(reference), env_id, n, seed_offset=offset, env_kwargs=env_kwargs)
    fams = sorted({r["family"] for r in ref_rows})
    keys = [*fams, "all"] if len(fams) > 1 else fams

    def summary(rows: list[dict]) -> dict[str, Stat]:
        return {k: Stat.of(r[k] for r in rows) for k in ("score", "critical_steps", "cost_usd")}

    ref = summary(ref_rows)
    lines = [
        f"| policy | {' | '.join(f'{f}: score − {reference}' for f in keys)} | above {reference} (all) | score | critical steps (× {reference}) | cost USD |",
        "|---|" + "---:|" * len(keys) + "---|---:|---:|---:|",
        f"| {reference} (reference) | " + " | ".join("0" for _ in keys) + f" | - | {ref['score'].format(4)} | "
        f"{ref['critical_steps'].format(2)} (1.00) | {ref['cost_usd'].format(4)} |",
    ]
    figures: dict = {"reference": {"spec": reference, **{k: vars(st) for k, st in ref.items()}}, "policies": {}}
    for spec in policies:
        for policy in policy_variants(load_orchestrator(spec), policy_mode, sample_seed):
            if hasattr(policy, "reset"):
                policy.reset()  # a sampled copy starts its sampler from sample_seed
            label = f"{spec} ({'greedy' if policy.deterministic else 'sampled'})" if is_learned(policy) else spec
            rows = play_paired(policy, env_id, n, seed_offset=offset, env_kwargs=env_kwargs)
            stats = {f: paired_difference(rows, ref_rows, "score", family=None if f == "all" else f) for f in keys}
            own = summary(rows)
            ratio = own["critical_steps"].mean / ref["critical_steps"].mean
            figures["policies"][label] = {
                "spec": spec,
                "score_minus_reference": {f: {"mean": st.mean, "half_width": st.half_width, "n": st.n} for f, st in stats.items()},
                **{k: vars(st) for k, st in own.items()},
                "critical_steps_ratio": ratio,
            }
            last = stats[keys[-1]]
            verdict = "yes" if last.low > 0 else ("no" if last.high < 0 else "tied (CI spans 0)")
            lines.append(
                f"| {label} | "
                + " | ".join(f"{st.mean:+.4f} ± {st.half_width:.4f}" for st in stats.values())
                + f" | {verdict} | {own['score'].format(4)} | {own['critical_steps'].format(2)} ({ratio:.2f}) | {own['cost_usd'].format(4)} |"
            )
    return "\n".join(lines) + "\n", figures


def checkpoint_candidates(pattern: str) -> list[str]:
    """The orchestrator specs one ``--select`` value names: a checkpoint path or glob, ``moe:`` (the default) or
    ``sb3:`` in front, in natural order (``leg2`` before ``leg10``).

    :raises ValueError: when nothing matches.
    """
    import glob
    import re

    kind, sep, path = pattern.partition(":")
    if not sep or kind not in ("moe", "sb3"):
        kind, path = "moe", pattern
    matches = sorted(
        (m for m in glob.glob(path) if Path(m).is_file()),
        key=lambda m: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", m)],
    )
    if not matches:
        raise ValueError(f"no checkpoint matches {path!r}")
    return [f"{kind}:{m}" for m in matches]


def selection_report(
    groups: list[list[str]],
    env_id: str,
    n_validation: int,
    n_test: int,
    reference: str = "critical_path",
    policy_mode: str = "greedy",
    sample_seed: int = 0,
) -> tuple[str, dict]:
    """Checkpoint selection on validation episodes, then the paired comparison on the evaluation episodes.

    Each group is one training run's candidates (e.g. the checkpoints at the ends of its legs). Every candidate
    plays ``n_validation`` validation episodes greedily (seeds from
    :data:`~swarmgym.moe.train.VALIDATION_SEED_OFFSET`) beside ``reference``; in each group the candidate with the
    highest mean score is chosen (the first in the group's order on a tie). The chosen ones then play the
    ``n_test`` evaluation episodes (seeds from :data:`~swarmgym.moe.train.EVAL_SEED_OFFSET`) as in
    :func:`paired_report`. The two seed ranges are disjoint, so the choice is never scored on the episodes it
    was made on. Returns the Markdown (validation table, choices, evaluation table) and the figures.

    :raises ValueError: when ``n_test`` would reach the validation seeds.
    """
    from swarmgym.moe.train import EVAL_SEED_OFFSET, VALIDATION_SEED_OFFSET

    if n_test > VALIDATION_SEED_OFFSET - EVAL_SEED_OFFSET:
        raise ValueError(
            f"--eval-episodes must be at most {VALIDATION_SEED_OFFSET - EVAL_SEED_OFFSET} with --select "
            f"(evaluation seeds {EVAL_SEED_OFFSET}.. would reach the validation seeds {VALIDATION_SEED_OFFSET}..), got {n_test}"
        )
    specs = list(dict.fromkeys(c for group in groups for c in group))
    val_text, val_fig = paired_report(
        specs, env_id, n_validation, reference=reference, policy_mode="greedy", seed_offset=VALIDATION_SEED_OFFSET
    )
    val_score = {row["spec"]: row["score"]["mean"] for row in val_fig["policies"].values()}
    chosen = [max(group, key=lambda c: val_score[c]) for group in groups]
    test_text, test_fig = paired_report(
        list(dict.fromkeys(chosen)), env_id, n_test, reference=reference, policy_mode=policy_mode, sample_seed=sample_seed
    )
    lines = [
        f"## Validation: {n_validation} episodes (seeds {VALIDATION_SEED_OFFSET}..{VALIDATION_SEED_OFFSET + n_validation - 1}), greedy",
        "",
        val_text,
        "Chosen (the highest validation score of each training run's candidates):",
        "",
        *(f"* {', '.join(f'`{c}`' for c in group)} → **`{pick}`** ({val_score[pick]:.4f})" for group, pick in zip(groups, chosen)),
        "",
        f"## Evaluation of the chosen: {n_test} held-out episodes (seeds {EVAL_SEED_OFFSET}..{EVAL_SEED_OFFSET + n_test - 1})",
        "",
        test_text,
    ]
    figures = {
        "validation": val_fig,
        "choices": [{"candidates": group, "chosen": pick, "validation_score": val_score[pick]} for group, pick in zip(groups, chosen)],
        "evaluation": test_fig,
    }
    return "\n".join(lines), figures


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
    p.add_argument("--workers", type=int, default=None, help="runs trained in parallel (default 1; with --phase-diagram: as many as cores)")
    p.add_argument("--out", default="runs/study", help="report folder (default runs/study)")
    p.add_argument("--runs-dir", default=None, help="folder for the runs' checkpoints and logs (default OUT/runs)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the finished runs under the runs folder, continue stopped ones from their checkpoints, run the rest",
    )
    p.add_argument("--notes", default=None, help="a Markdown file whose text is added to the report as its discussion")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (tiny model, few steps)")
    p.add_argument(
        "--time-to-target",
        action="store_true",
        help="instead of the study: training wall-clock to the WideSearch-v0 target, this trainer vs sb3-contrib MaskablePPO",
    )
    p.add_argument("--max-seconds", type=float, default=600.0, help="time-to-target: training cap per trainer in seconds (default 600)")
    p.add_argument("--skip-sb3", action="store_true", help="time-to-target: measure this trainer only")
    p.add_argument(
        "--paired",
        nargs="+",
        default=None,
        metavar="ORCH",
        help="instead of the study: these orchestrators (e.g. moe:runs/x/checkpoint.pt) vs --reference on the same "
        "--eval-episodes episodes of --env-id, paired per-episode score differences with 95%% CIs",
    )
    p.add_argument(
        "--select",
        action="append",
        default=None,
        metavar="CHECKPOINTS",
        help="instead of the study: one training run's candidate checkpoints, a path or glob (e.g. "
        "'runs/x-leg*-seed0/checkpoint.pt'; repeat the option per run); each candidate plays --validation-episodes "
        "validation episodes greedily beside --reference, the highest score is chosen, and the chosen are compared "
        "with --reference on the --eval-episodes evaluation episodes as with --paired",
    )
    p.add_argument("--validation-episodes", type=int, default=1000, help="--select: validation episodes per candidate (default 1000)")
    p.add_argument(
        "--reference",
        default="critical_path",
        metavar="ORCH",
        help="--paired, --select: the reference orchestrator (default critical_path)",
    )
    p.add_argument(
        "--policy-mode",
        choices=["greedy", "sampled", "both"],
        default="greedy",
        help="--paired, --select: learned policies act greedily, by sampling, or both, a row each on the evaluation "
        "episodes (default greedy)",
    )
    g = p.add_argument_group("phase diagram (--phase-diagram): dials x reward conditions x seeds from a serial warm start")
    g.add_argument("--phase-diagram", action="store_true", help="run the phase-diagram grid instead of the condition study")
    g.add_argument("--dial", action="append", default=[], metavar="NAME=V1,V2,...", help=f"a dial of the grid: {', '.join(DIALS)}")
    g.add_argument(
        "--phase-conditions",
        nargs="+",
        default=list(PHASE_CONDITIONS),
        choices=list(PHASE_CONDITIONS),
        help="reward conditions (default all)",
    )
    g.add_argument("--warm-start", default="sequential_crew", metavar="ORCH", help="orchestrator imitated before RL ('none': random start)")
    g.add_argument("--warm-start-spawn-prob", type=float, default=None, metavar="P", help="spawn probability per step of the warm start")
    g.add_argument("--model", choices=["default", "small"], default="small", help="model preset (default small: the sweep model)")
    g.add_argument("--backend", choices=["pool", "ray", "serial"], default="pool", help="pool (local processes, default), ray or serial")
    g.add_argument("--ray-address", default=None, help="a Ray cluster's address (default: a local Ray with --workers CPUs)")
    g.add_argument("--report-only", action="store_true", help="write the report from the finished runs, run nothing")
    g.add_argument("--check-every", type=int, default=4, help="escape check every this many updates (0: none; default 4)")
    g.add_argument("--check-episodes", type=int, default=48, help="held-out episodes of each escape check (default 48)")
    g.add_argument("--title", default=None, help="report title")
    g.add_argument("--note", default=None, help="a paragraph printed under the title (e.g. 'a calibration, not the phase diagram')")
    return p


def check_args(args: argparse.Namespace) -> None:
    """The options every mode shares, checked before any work starts.

    :raises swarmgym.cli.UsageError: naming the first bad option.
    """
    from swarmgym.cli import UsageError, check_int, check_number, check_output_dir
    from swarmgym.evaluation import resolve_id

    try:
        args.env_id = resolve_id(args.env_id)
    except ValueError as exc:
        raise UsageError("--env-id", str(exc)) from None
    for option, value in (("--seeds", args.seeds), ("--total-steps", args.total_steps), ("--scan-steps", args.scan_steps)):
        check_int(option, value, 1)
    check_int("--eval-episodes", args.eval_episodes, 1, 10**7)
    check_int("--threads", args.threads, 0, 1024)
    if args.workers is not None:
        check_int("--workers", args.workers, 1, 4096)
    check_number("--max-seconds", args.max_seconds, 0.001)
    for knob in args.scan or []:
        if knob not in KNOBS:
            raise UsageError("--scan", f"unknown knob {knob!r}; choose from {', '.join(KNOBS)}")
    if args.notes is not None and not Path(args.notes).is_file():
        raise UsageError("--notes", f"no such file: {args.notes!r}")
    check_int("--validation-episodes", args.validation_episodes, 1, 10**7)
    if args.select:
        from swarmgym.moe.train import EVAL_SEED_OFFSET, VALIDATION_SEED_OFFSET

        if args.paired:
            raise UsageError("--select", "choose --select or --paired, not both")
        check_int("--eval-episodes", args.eval_episodes, 1, VALIDATION_SEED_OFFSET - EVAL_SEED_OFFSET)
        args.select_groups = []
        for pattern in args.select:
            try:
                args.select_groups.append(checkpoint_candidates(pattern))
            except ValueError as exc:
                raise UsageError("--select", str(exc)) from None
    check_output_dir("--out", args.out)
    if args.runs_dir is not None:
        check_output_dir("--runs-dir", args.runs_dir)


def cli_main(argv: list[str]) -> int:
    """Entry point of ``swarmgym study``."""
    from swarmgym.cli import UsageError, usage_failure

    args = build_parser().parse_args(argv)
    try:
        check_args(args)
    except UsageError as exc:
        return usage_failure("swarmgym study", exc)
    if args.phase_diagram:
        return phase_cli(args, argv)
    if args.select or args.paired:
        command = "swarmgym study" + (" " + shlex.join(argv) if argv else "")
        try:
            if args.select:
                name = "selection"
                text, figures = selection_report(
                    args.select_groups,
                    args.env_id,
                    args.validation_episodes,
                    args.eval_episodes,
                    reference=args.reference,
                    policy_mode=args.policy_mode,
                )
                intro = (
                    "Checkpoint selection: each training run's candidates play the validation episodes, the best is chosen, "
                    "and the chosen play the held-out evaluation episodes (paired per-episode score differences, mean ± 95 % "
                    "CI half-width; score, critical steps and cost of each over the same episodes)."
                )
                saved = {"command": command, **figures}
            else:
                name = "paired"
                text, figures = paired_report(
                    args.paired, args.env_id, args.eval_episodes, reference=args.reference, policy_mode=args.policy_mode
                )
                intro = (
                    f"Paired per-episode score differences on {args.eval_episodes} held-out episodes "
                    "(mean ± 95 % CI half-width); score, critical steps and cost of each over the same episodes:"
                )
                saved = {"command": command, "figures": figures}
        except (ValueError, TypeError, FileNotFoundError) as exc:
            print(f"swarmgym study: {exc}", file=sys.stderr)
            return 2
        text = f"Made by:\n\n```\n{command}\n```\n\n{intro}\n\n{text}"
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.md").write_text(text)
        write_json_atomic(out / f"{name}.json", saved)
        print(text)
        return 0
    if args.workers is None:
        args.workers = 1
    from swarmgym.moe.engines import check_env_kwargs
    from swarmgym.moe.ppo import PPOConfig
    from swarmgym.moe.train import apply_settings, plot_expert_load

    base = PPOConfig(env_id=args.env_id).to_dict()
    base.update(progress=False, tensorboard=False, torch_threads=args.threads, engine="auto")
    if args.quick:
        base.update(num_envs=8, num_steps=16)
        base["model"].update(d_model=16, n_heads=2, n_layers=1, n_experts=4, expert_hidden=16)
        args.total_steps = min(args.total_steps, 256)
        args.scan_steps = min(args.scan_steps, 128)
        args.eval_episodes = min(args.eval_episodes, 8)
    scan_knobs = [] if args.scan is None else (args.scan or list(KNOBS))
    try:
        base = apply_settings(base, args.set)
        PPOConfig.from_dict({**base, "total_steps": max(args.total_steps, base["num_envs"] * base["num_steps"])})
    except (ValueError, TypeError) as exc:
        return usage_failure("swarmgym study", UsageError("--set", str(exc)))
    for option, knob in [("--knob", args.knob)] + [("--scan", k) for k in scan_knobs]:
        try:  # every run's env settings, with the values range-checked as gym.make checks them
            check_env_kwargs(args.env_id, _merge(base.get("env_overrides", {}), KNOBS[knob][0]))
        except ValueError as exc:
            where = "--set env_overrides" if base.get("env_overrides") else f"{option} {knob}"
            return usage_failure("swarmgym study", UsageError(where, str(exc) if args.env_id in str(exc) else f"{args.env_id}: {exc}"))
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
            jobs.append(
                (("part1", name, seed), (base, cond, env_over, seed, runs_dir / f"{name}-s{seed}", args.eval_episodes, args.resume))
            )
    for knob in scan_knobs:
        e_over, c_over, _ = KNOBS[knob]
        for cname in ("r_perf", "parl_annealed"):
            cond = _merge(CONDITIONS[cname], c_over)
            cond["total_steps"] = max(args.scan_steps, rollout)
            jobs.append(
                (("scan", knob, cname), (base, cond, e_over, 0, runs_dir / f"scan-{knob}-{cname}", args.eval_episodes, args.resume))
            )
    started = [a[4] for _, a in jobs if (a[4] / RESULT_FILE).is_file() or (a[4] / "checkpoint.pt").is_file()]
    if started and not args.resume:
        return usage_failure(
            "swarmgym study",
            UsageError("--out", f"{runs_dir} already holds {len(started)} run(s) of a study (e.g. {started[0]}); pass --resume to keep "
                       "the finished ones, continue the stopped ones and run the rest, or choose another --out/--runs-dir"),
        )  # fmt: skip
    done: dict[tuple, dict] = {}

    def report(key, run):
        ev = run["evaluation"].get("all", {})
        print(
            f"swarmgym study: {'/'.join(map(str, key[1:]))}: score {ev.get('score', float('nan')):.3f}  "
            f"spawned {ev.get('n_spawned', float('nan')):.1f}  ({run['train_seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    resume_hint = "resume with: " + command + ("" if args.resume else " --resume")
    try:
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
    except KeyboardInterrupt as exc:  # StopRequested (a run saved its checkpoint) or a second Ctrl-C
        from swarmgym.moe.checkpointing import StopRequested

        code = exc.exit_code if isinstance(exc, StopRequested) else 130
        print(f"swarmgym study: stopped after {len(done)} of {len(jobs)} runs (finished runs are kept, a stopped run continues "
              f"from its last checkpoint); {resume_hint}", file=sys.stderr)  # fmt: skip
        return code
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
