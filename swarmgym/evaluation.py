"""``swarmgym evaluate``: orchestrators x env ids x seeds -> a table with confidence intervals.

Each (orchestrator, env id) pair plays the same episodes: episode ``k`` is
``env.reset(seed=seed_offset + k)``, so every orchestrator meets the same task
instances and sub-agent fates. Episodes run in batches of envs so that a policy's
``act`` sees a leading env dimension (as :class:`swarmgym.orchestrators.Orchestrator` expects). The results are aggregated by
:class:`swarmgym.metrics.MetricsRecorder` (per family; an id that draws several
families, such as Mixed, gets a row per family and an ``all`` row), printed, and
written as Markdown and CSV.

Learned policies (``moe:``/``sb3:``, any policy with a boolean ``deterministic``
attribute) are evaluated greedily (the most probable valid action), by sampling from
their action distribution (seeded: the same ``sample_seed`` gives the same numbers), or
both (the default), each labelled in its row: ``moe:runs/x (greedy)``, ``moe:runs/x
(sampled)``. A policy trained by PPO acts by sampling; its greedy form can be much
worse (a masked action it learned to use as a one-tick pause, repeated until the budget
ends). Hand-coded orchestrators are deterministic and evaluated once.

``--invalid-action RULE`` (``env_kwargs={"invalid_action": RULE}`` here) evaluates
under another invalid-action rule than the ids' own (``waste_tick`` for the whole
suite): a policy trained without masks under ``answer`` is evaluated under ``answer``.

With no arguments it evaluates every reference orchestrator on every Dict id of the
suite (:data:`DEFAULT_SEEDS` seeds each), prints a compact table (:func:`to_terminal`)
and writes the full one to ``runs/evaluate/table.{md,csv}``.
"""

from __future__ import annotations

import argparse
import re
import copy
import csv
import io
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from swarmgym.env import INVALID_ACTION_RULES
from swarmgym.layout import FlatLayout
from swarmgym.metrics import ALL, MECHANICS_RECORDED, RECORDED, MetricsRecorder
from swarmgym.orchestrators import REFERENCE_NAMES, Orchestrator, bind_to_env, load_orchestrator

#: Seeds per (orchestrator, id) when none are given: the whole default table takes
#: about a minute on 2 CPU cores.
DEFAULT_SEEDS = 1000
#: Envs stepped together (the batch a policy's ``act`` sees).
DEFAULT_BATCH = 64
#: How learned policies act in evaluation: ``greedy``, ``sampled`` or ``both`` (a row each).
POLICY_MODES: tuple[str, ...] = ("greedy", "sampled", "both")

#: Columns of the Markdown table: (recorded quantity, header, scale, digits).
MARKDOWN_COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    ("score", "score", 1.0, 3),
    ("critical_steps", "critical steps", 1.0, 1),
    ("speedup", "speedup", 1.0, 2),
    ("ideal_speedup", "ideal speedup", 1.0, 2),
    ("serial_collapse_index", "serial collapse", 1.0, 2),
    ("spurious_spawn_rate", "spurious spawns", 1.0, 2),
    ("task_makespan_ratio", "makespan / LB", 1.0, 2),
    ("mean_concurrency", "mean conc.", 1.0, 2),
    ("idle_share", "no sub-agent", 1.0, 2),
    ("n_spawned", "spawned", 1.0, 1),
    ("tokens", "tokens (k)", 1e-3, 1),
    ("cost_usd", "cost (m$)", 1e3, 2),
    ("budget_exhausted", "budget hit", 1.0, 2),
)
#: Columns of the Markdown table added when an id uses the mechanics (docs/mechanics.md), after
#: :data:`MARKDOWN_COLUMNS`; then spawns and spend of each tier the ids have (``spawned_tier<t>``,
#: ``cost_usd_tier<t>``). A row of an id without the mechanics shows "-" in them.
MECHANICS_MARKDOWN_COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    ("targets_wrong", "targets wrong", 1.0, 2),
    ("targets_missing", "targets missing", 1.0, 2),
    ("verification_rate", "verified share", 1.0, 2),
    ("verification_yield", "caught / verify", 1.0, 2),
    ("coordination_tokens", "coordination tokens (k)", 1e-3, 1),
)


def suite_ids(flat: bool = False) -> list[str]:
    """The suite's Dict ids (or their flat twins)."""
    import swarmgym

    return [i for i in swarmgym.SUITE_IDS if ("-flat-" in i) == flat]


def resolve_id(name: str) -> str:
    """``"WideSearch-v0"`` -> ``"swarmgym/WideSearch-v0"`` when only the namespaced id exists."""
    import swarmgym  # noqa: F401 - registers the suite

    if name in gym.registry:
        return name
    if f"swarmgym/{name}" in gym.registry:
        return f"swarmgym/{name}"
    raise ValueError(f"unknown env id {name!r}; the suite has: {', '.join(suite_ids())} (and their -flat twins)")


def dict_observation(env: gym.Env, obs: Any) -> dict[str, np.ndarray]:
    """The Dict observation of a SwarmEnv whatever its ``observation_mode`` (a flat
    observation is split back into ``nodes``, ``globals`` and ``adjacency``)."""
    if isinstance(obs, dict):
        return obs
    base = env.unwrapped
    layout = getattr(base, "flat_layout", None)  # a SwarmEnv's own (extended when its config has the mechanics)
    if layout is None:
        layout = FlatLayout(base.n_max, with_adjacency=getattr(base, "with_adjacency", False))
    out, _ = layout.unflatten(obs)
    return out


def run_episodes(
    policy: Orchestrator,
    env_id: str,
    n_episodes: int,
    *,
    seed_offset: int = 0,
    env_kwargs: dict | None = None,
    batch: int = DEFAULT_BATCH,
    recorder: MetricsRecorder | None = None,
    traces: int = 0,
    trace_sink: Callable[[dict], None] | None = None,
) -> MetricsRecorder:
    """Play ``n_episodes`` episodes (seeds ``seed_offset .. seed_offset + n - 1``) and record them.

    :param policy: anything with ``act(obs, mask) -> int64[B]`` (an :class:`~swarmgym.orchestrators.Orchestrator`).
    :param env_id: a registered id (Dict or flat form).
    :param env_kwargs: extra keyword arguments of ``gymnasium.make`` (e.g. a ``config``).
    :param batch: envs stepped together, >= 1.
    :param traces: trace the first ``traces`` episodes (:mod:`swarmgym.trace`) and pass each
        finished trace to ``trace_sink``.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ValueError(f"n_episodes must be an integer >= 1, got {n_episodes!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    recorder = recorder if recorder is not None else MetricsRecorder()
    n_envs = min(batch, n_episodes)
    envs = [gym.make(env_id, disable_env_checker=True, **(env_kwargs or {})) for _ in range(n_envs)]
    policy = bind_to_env(policy, envs[0])  # a rule told the env's public table is told this env's
    next_seed = seed_offset
    last_seed = seed_offset + n_episodes
    obs: list[Any] = [None] * n_envs
    masks: list[Any] = [None] * n_envs
    live: list[int] = []
    tracers: dict[int, Any] = {}

    def trace_from(k: int, seed: int) -> None:
        if seed - seed_offset < traces and trace_sink is not None:
            from swarmgym.trace import EpisodeTracer

            tracers[k] = EpisodeTracer(
                envs[k].unwrapped, {"env_id": env_id, "seed": seed, "orchestrator": str(getattr(policy, "name", type(policy).__name__))}
            )

    for k, env in enumerate(envs):
        o, info = env.reset(seed=next_seed)
        trace_from(k, next_seed)
        next_seed += 1
        obs[k], masks[k] = dict_observation(env, o), info["action_mask"]
        live.append(k)
    while live:
        batch_obs = {key: np.stack([obs[k][key] for k in live]) for key in obs[live[0]]}
        actions = np.asarray(policy.act(batch_obs, np.stack([masks[k] for k in live])), dtype=np.int64).reshape(-1)
        if actions.shape[0] != len(live):
            raise ValueError(f"{getattr(policy, 'name', policy)!r}.act returned {actions.shape[0]} actions for a batch of {len(live)}")
        still = []
        for k, a in zip(live, actions):
            o, _, terminated, truncated, info = envs[k].step(int(a))
            if k in tracers:
                tracers[k].observe(int(a), truncated=truncated and not terminated)
                if terminated or truncated:
                    trace_sink(tracers.pop(k).to_dict())
            if terminated or truncated:
                if "metrics" in info:
                    recorder.add(info["metrics"])
                else:  # a TimeLimit truncation: record the running state
                    recorder.add(envs[k].unwrapped.sim.metrics())
                if next_seed >= last_seed:
                    continue
                o, info = envs[k].reset(seed=next_seed)
                trace_from(k, next_seed)
                next_seed += 1
            obs[k], masks[k] = dict_observation(envs[k], o), info["action_mask"]
            still.append(k)
        live = still
    for env in envs:
        env.close()
    return recorder


def is_learned(policy: Any) -> bool:
    """A policy that can act greedily or by sampling (it has a boolean ``deterministic`` attribute)."""
    return isinstance(getattr(policy, "deterministic", None), bool)


def policy_variants(policy: Any, policy_mode: str = "both", sample_seed: int = 0) -> list[Any]:
    """The forms of ``policy`` to evaluate: a learned policy (:func:`is_learned`) as a greedy
    copy named ``"<name> (greedy)"`` and/or a sampling copy named ``"<name> (sampled)"`` whose
    sampler is seeded with ``sample_seed``; any other policy as itself.

    :param policy_mode: ``"greedy"``, ``"sampled"`` or ``"both"``.
    """
    if policy_mode not in POLICY_MODES:
        raise ValueError(f"policy_mode must be one of {POLICY_MODES}, got {policy_mode!r}")
    if not is_learned(policy):
        return [policy]
    name = str(getattr(policy, "name", type(policy).__name__))
    out = []
    for mode in ("greedy", "sampled"):
        if policy_mode not in (mode, "both"):
            continue
        variant = copy.copy(policy)
        variant.deterministic = mode == "greedy"
        variant.name = f"{name} ({mode})"
        if hasattr(variant, "seed"):
            variant.seed = sample_seed
        out.append(variant)
    return out


@dataclass
class EvalResult:
    """Episodes of one orchestrator on one env id.

    ``tiers``: the sub-agent tiers of the id's config when it uses the mechanics (docs/mechanics.md),
    0 when it does not; the tables show the mechanics' columns (:data:`MECHANICS_MARKDOWN_COLUMNS`)
    for such ids only.
    """

    env_id: str
    orchestrator: str
    recorder: MetricsRecorder
    seconds: float
    tiers: int = 0


def mechanics_tiers(env_id: str, env_kwargs: dict | None = None) -> int:
    """The sub-agent tiers of ``env_id``'s config (with ``env_kwargs``) when it uses the mechanics, else 0."""
    env = gym.make(env_id, disable_env_checker=True, **(env_kwargs or {}))
    try:
        config = env.unwrapped.config
        return config.n_tiers if config.extended else 0
    finally:
        env.close()


def evaluate(
    orchestrators: Sequence[str | Orchestrator],
    env_ids: Sequence[str],
    n_seeds: int,
    *,
    seed_offset: int = 0,
    env_kwargs: dict | None = None,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[EvalResult], None] | None = None,
    policy_mode: str = "both",
    sample_seed: int = 0,
    traces: int = 0,
    trace_dir: str | Path | None = None,
) -> list[EvalResult]:
    """Evaluate every orchestrator on every id over the same ``n_seeds`` episodes.

    :param orchestrators: specs for :func:`~swarmgym.orchestrators.load_orchestrator` or policy objects.
    :param env_ids: registered ids (``"WideSearch-v0"`` is resolved to ``"swarmgym/WideSearch-v0"``).
    :param progress: called with each result as it completes.
    :param policy_mode: how learned policies act: ``"greedy"``, ``"sampled"`` or ``"both"``
        (a result each, see :func:`policy_variants`); hand-coded ones are evaluated once.
    :param sample_seed: seed of a sampling policy's draws, reset before every (policy, id) run.
    :param traces: save the first ``traces`` episodes of every (id, orchestrator) as JSON traces in
        ``trace_dir/<id>/<orchestrator>/seed<S>.json``.
    """
    if not orchestrators:
        raise ValueError("orchestrators must name at least one orchestrator")
    if not env_ids:
        raise ValueError("env_ids must name at least one env id")
    loaded = [load_orchestrator(o) if isinstance(o, str) else o for o in orchestrators]
    policies = [v for p in loaded for v in policy_variants(p, policy_mode, sample_seed)]
    ids = [resolve_id(i) for i in env_ids]
    results = []
    for env_id in ids:
        tiers = mechanics_tiers(env_id, env_kwargs)
        for policy in policies:
            if hasattr(policy, "reset"):
                policy.reset(None)  # every run starts from the policy's own seed
            start = time.perf_counter()
            sink = None
            if traces and trace_dir is not None:
                from swarmgym.trace import write_trace

                label = re.sub(r"[^A-Za-z0-9._()-]+", "_", str(getattr(policy, "name", type(policy).__name__)))  # one folder name
                folder = Path(trace_dir) / env_id.removeprefix("swarmgym/") / label
                sink = lambda trace, folder=folder: write_trace(trace, folder / f"seed{trace['seed']}.json")  # noqa: E731
            rec = run_episodes(
                policy, env_id, n_seeds, seed_offset=seed_offset, env_kwargs=env_kwargs, batch=batch, traces=traces, trace_sink=sink
            )
            result = EvalResult(env_id, str(getattr(policy, "name", type(policy).__name__)), rec, time.perf_counter() - start, tiers)
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def table_rows(results: Sequence[EvalResult]) -> list[dict[str, Any]]:
    """One row per (id, family, orchestrator), orchestrators side by side within a family.

    An id whose episodes span several families gets a row per family and an ``all`` row.
    Each row: ``env_id``, ``family``, ``orchestrator``, ``episodes``, ``stats`` (name ->
    :class:`~swarmgym.metrics.Stat`), ``profile`` (mean concurrency profile) and ``tiers``
    (:attr:`EvalResult.tiers`: 0 for an id without the mechanics).
    """
    rows = []
    by_id: dict[str, list[EvalResult]] = {}
    for r in results:
        by_id.setdefault(r.env_id, []).append(r)
    for env_id, group in by_id.items():
        families = sorted({f for r in group for f in r.recorder.families})
        keys = families + ([ALL] if len(families) > 1 else [])
        for fam in keys:
            for r in group:
                if fam != ALL and fam not in r.recorder.families:
                    continue
                rows.append(
                    {
                        "env_id": env_id,
                        "family": fam,
                        "orchestrator": r.orchestrator,
                        "episodes": r.recorder.n_episodes(fam),
                        "stats": r.recorder.summary(fam),
                        "profile": r.recorder.concurrency_profile(fam),
                        "tiers": r.tiers,
                    }
                )
    return rows


def _cell(stat, scale: float, digits: int) -> str:
    if math.isnan(stat.mean):
        return "-"
    if math.isnan(stat.half_width):
        return f"{stat.mean * scale:.{digits}f}"
    return f"{stat.mean * scale:.{digits}f} ± {stat.half_width * scale:.{digits}f}"


def to_markdown(rows: Sequence[dict[str, Any]], *, title: str | None = None, command: str | None = None) -> str:
    """The Markdown table (means ± 95% CI half-widths)."""
    out = io.StringIO()
    if title:
        out.write(f"# {title}\n\n")
    if command:
        out.write(f"Made by:\n\n```\n{command}\n```\n\n")
    out.write("Means over episodes ± the half-width of their 95% confidence interval (Student t).\n\n")
    tiers = max((row.get("tiers", 0) for row in rows), default=0)
    mechanics = list(MECHANICS_MARKDOWN_COLUMNS) if tiers else []
    for t in range(tiers):
        mechanics += [(f"spawned_tier{t}", f"spawned tier {t}", 1.0, 1), (f"cost_usd_tier{t}", f"cost tier {t} (m$)", 1e3, 2)]
    headers = ["env", "family", "orchestrator", "episodes"] + [h for _, h, _, _ in MARKDOWN_COLUMNS + tuple(mechanics)]
    out.write("| " + " | ".join(headers) + " |\n")
    out.write("|" + "|".join(["---"] * 3 + ["---:"] * (len(headers) - 3)) + "|\n")
    for row in rows:
        cells = [row["env_id"].removeprefix("swarmgym/"), row["family"], row["orchestrator"], str(row["episodes"])]
        cells += [_cell(row["stats"][name], scale, digits) for name, _, scale, digits in MARKDOWN_COLUMNS]
        if row.get("tiers", 0):
            cells += [_cell(row["stats"][name], scale, digits) for name, _, scale, digits in mechanics]
        else:
            cells += ["-"] * len(mechanics)
        out.write("| " + " | ".join(cells) + " |\n")
    return out.getvalue()


#: Columns of the terminal table: (recorded quantity, header, scale, digits, with the CI half-width).
TERMINAL_COLUMNS: tuple[tuple[str, str, float, int, bool], ...] = (
    ("score", "score", 1.0, 3, True),
    ("critical_steps", "crit.", 1.0, 1, False),
    ("speedup", "speedup", 1.0, 2, False),
    ("serial_collapse_index", "collapse", 1.0, 2, False),
    ("spurious_spawn_rate", "spurious", 1.0, 2, False),
    ("tokens", "tok(k)", 1e-3, 1, False),
    ("cost_usd", "m$", 1e3, 2, False),
)
#: Width of the terminal table, in characters.
TERMINAL_WIDTH = 100


def _elide(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle (the end names the mode: keep it)."""
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep // 2] + "…" + text[len(text) - (keep - keep // 2) :]


def to_terminal(rows: Sequence[dict[str, Any]], *, width: int = TERMINAL_WIDTH) -> str:
    """A compact table for the terminal (at most ``width`` characters a line): one block per
    (env id, family), one line per orchestrator with score (± 95% CI half-width), critical steps,
    speedup, serial-collapse index, spurious-spawn rate, tokens (thousands) and cost (milli-dollars).
    The Markdown and CSV tables hold every column."""
    cells = []
    for row in rows:
        line = []
        for name, _, scale, digits, with_ci in TERMINAL_COLUMNS:
            stat = row["stats"][name]
            if math.isnan(stat.mean):
                line.append("-")
            elif with_ci and not math.isnan(stat.half_width):
                line.append(f"{stat.mean * scale:.{digits}f}±{stat.half_width * scale:.{digits}f}")
            else:
                line.append(f"{stat.mean * scale:.{digits}f}")
        cells.append(line)
    widths = [max([len(h)] + [len(c[k]) for c in cells]) for k, (_, h, _, _, _) in enumerate(TERMINAL_COLUMNS)]
    numbers = sum(w + 1 for w in widths)
    name_width = max(12, min(max((len(r["orchestrator"]) for r in rows), default=12), width - 2 - numbers))
    out = io.StringIO()
    header = "  " + "orchestrator".ljust(name_width) + "".join(" " + h.rjust(w) for (_, h, _, _, _), w in zip(TERMINAL_COLUMNS, widths))
    out.write(header.rstrip() + "\n")
    group = None
    for row, line in zip(rows, cells):
        key = (row["env_id"], row["family"])
        if key != group:
            group = key
            title = f"{row['env_id'].removeprefix('swarmgym/')} / {row['family']} ({row['episodes']} episodes)"
            out.write(_elide(title, width) + "\n")
        text = "  " + _elide(row["orchestrator"], name_width).ljust(name_width) + "".join(" " + c.rjust(w) for c, w in zip(line, widths))
        out.write(text.rstrip() + "\n")
    return out.getvalue()


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV with, per recorded quantity, ``_mean``, ``_ci_low`` and ``_ci_high`` columns,
    then the mean concurrency profile (``profile_k``: share of ticks with k sub-agents). The
    mechanics' quantities (:data:`~swarmgym.metrics.MECHANICS_RECORDED`) are columns only when
    an id of the table uses the mechanics, and empty in the rows of ids that do not."""
    width = max((len(r["profile"]) for r in rows), default=0)
    mechanics = any(row.get("tiers", 0) for row in rows)
    names = [n for n in RECORDED if mechanics or n not in MECHANICS_RECORDED]
    header = ["env_id", "family", "orchestrator", "episodes"]
    for name in names:
        header += [f"{name}_mean", f"{name}_ci_low", f"{name}_ci_high"]
    header += [f"profile_{k}" for k in range(width)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        line = [row["env_id"], row["family"], row["orchestrator"], row["episodes"]]
        for name in names:
            if name in MECHANICS_RECORDED and not row.get("tiers", 0):
                line += ["", "", ""]
                continue
            s = row["stats"][name]
            line += [f"{s.mean:.6g}", f"{s.low:.6g}", f"{s.high:.6g}"]
        prof = np.pad(row["profile"], (0, width - len(row["profile"])))
        line += [f"{p:.6g}" for p in prof]
        writer.writerow(line)
    return buf.getvalue()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarmgym evaluate",
        description="Evaluate orchestrators on env ids over seeds; print a compact table and write the full one as Markdown and CSV.",
    )
    p.add_argument(
        "-o",
        "--orchestrators",
        nargs="+",
        default=list(REFERENCE_NAMES),
        metavar="SPEC",
        help=f"orchestrator specs: {', '.join(REFERENCE_NAMES)}, NAME:key=value,..., moe:PATH or sb3:PATH (default: all reference ones)",
    )
    p.add_argument(
        "--ids",
        nargs="+",
        default=["suite"],
        metavar="ID",
        help="env ids ('WideSearch-v0' or 'swarmgym/WideSearch-v0'); 'suite' = every Dict id, 'suite-flat' = every flat id (default: suite)",
    )
    p.add_argument(
        "-n", "--seeds", type=int, default=DEFAULT_SEEDS, help=f"episodes (seeds) per orchestrator and id (default {DEFAULT_SEEDS})"
    )
    p.add_argument("--seed-offset", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"envs stepped together, in [1, 4096] (default {DEFAULT_BATCH})")
    p.add_argument(
        "--policy-mode",
        choices=POLICY_MODES,
        default="both",
        help="learned policies (moe:, sb3:) act greedily, by sampling, or both, a row each (default both)",
    )
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the sampled actions of learned policies (default 0)")
    p.add_argument(
        "--invalid-action",
        choices=INVALID_ACTION_RULES,
        default=None,
        help="what a masked-out action does in every env (default: each id's own rule, 'waste_tick' for the suite); "
        "'answer' ends the episode, so a policy without masks cannot stall on a no-op",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads for learned policies (default 1; 0 = torch's choice)")
    p.add_argument("--out", default="runs/evaluate", help="folder for the Markdown and CSV files (default runs/evaluate)")
    p.add_argument("--name", default="table", help="file stem: writes NAME.md and NAME.csv (default table)")
    p.add_argument("--title", default=None, help="title line of the Markdown file")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--full", action="store_true", help="print the full Markdown table instead of the compact one")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--traces",
        type=int,
        default=0,
        metavar="K",
        help="save the first K episodes per orchestrator and id as JSON traces in OUT/traces/ (default 0)",
    )
    return p


def _check_args(args: argparse.Namespace) -> tuple[list[str], list[Any]]:
    """Every option checked before any episode runs; returns the resolved ids and the loaded
    orchestrators. Raises :class:`swarmgym.cli.UsageError` naming the option."""
    from swarmgym.cli import UsageError, check_int, check_output_dir

    check_int("--seeds", args.seeds, 1, 10**7)
    check_int("--seed-offset", args.seed_offset, 0, 2**63 - 1)
    check_int("--batch", args.batch, 1, 4096)
    check_int("--sample-seed", args.sample_seed, 0, 2**63 - 1)
    check_int("--threads", args.threads, 0, 1024)
    check_int("--traces", args.traces, 0, 10**6)
    if not args.name or Path(args.name).name != args.name or args.name in (".", ".."):
        raise UsageError("--name", f"must be a plain file stem (no folder), got {args.name!r}")
    ids: list[str] = []
    for name in args.ids:
        if name == "suite":
            ids += suite_ids()
        elif name == "suite-flat":
            ids += suite_ids(flat=True)
        else:
            try:
                ids.append(resolve_id(name))
            except ValueError as exc:
                raise UsageError("--ids", str(exc)) from None
    if args.threads:
        _set_threads_if_torch(args.threads, args.orchestrators)
    policies = []
    for spec in args.orchestrators:
        try:
            policies.append(load_orchestrator(spec))
        except (ValueError, TypeError, ImportError, OSError) as exc:
            raise UsageError("--orchestrators", f"{spec}: {exc}") from None
    for policy in policies:
        if hasattr(policy, "threads"):  # a policy that sets its own thread count while acting
            policy.threads = args.threads or None
    if not args.no_write:
        check_output_dir("--out", args.out)
    return ids, policies


def _set_threads_if_torch(threads: int, specs: Sequence[str]) -> None:
    """Learned policies run on CPU with ``threads`` torch threads (one is fastest for the small models here)."""
    if any(s.startswith(("moe:", "sb3:")) for s in specs):
        import torch

        torch.set_num_threads(threads)


def cli_main(argv: list[str]) -> int:
    """Entry point of ``swarmgym evaluate``."""
    from swarmgym.cli import UsageError, usage_failure

    args = _parser().parse_args(argv)
    try:
        ids, policies = _check_args(args)
    except UsageError as exc:
        return usage_failure("swarmgym evaluate", exc)

    def progress(r: EvalResult) -> None:
        if not args.quiet:
            print(f"  {r.env_id:<32} {r.orchestrator:<22} {r.recorder.n_episodes():>5} episodes  {r.seconds:6.1f} s", file=sys.stderr)

    start = time.perf_counter()
    results = evaluate(
        policies,
        ids,
        args.seeds,
        seed_offset=args.seed_offset,
        batch=args.batch,
        progress=progress,
        policy_mode=args.policy_mode,
        sample_seed=args.sample_seed,
        env_kwargs=None if args.invalid_action is None else {"invalid_action": args.invalid_action},
        traces=args.traces,
        trace_dir=None if args.no_write else Path(args.out) / "traces",
    )
    rows = table_rows(results)
    command = "swarmgym evaluate " + shlex.join(argv) if argv else "swarmgym evaluate"
    markdown = to_markdown(rows, title=args.title, command=command)
    print(markdown if args.full else to_terminal(rows))
    if not args.no_write:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{args.name}.md").write_text(markdown)
        (out / f"{args.name}.csv").write_text(to_csv(rows))
        if not args.quiet:
            print(
                f"wrote {out / (args.name + '.md')} and {out / (args.name + '.csv')} ({time.perf_counter() - start:.1f} s)", file=sys.stderr
            )
    return 0


__all__ = [
    "DEFAULT_SEEDS",
    "POLICY_MODES",
    "EvalResult",
    "cli_main",
    "dict_observation",
    "evaluate",
    "is_learned",
    "policy_variants",
    "run_episodes",
    "suite_ids",
    "table_rows",
    "to_csv",
    "to_markdown",
    "to_terminal",
]
