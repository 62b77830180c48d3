"""``swarmgym replay``: play one episode with one orchestrator; write its trace (JSON) and Gantt chart (PNG).

    swarmgym replay --id WideSearch-v0 --seed 0 -o critical_path --out runs/replay

writes ``runs/replay/WideSearch-v0_seed0_critical_path.json`` (the event trace, see
:mod:`swarmgym.trace`) and ``.png`` beside it (the Gantt chart, see :mod:`swarmgym.viewer`).
The episode is ``env.reset(seed=S)``, the same one ``swarmgym evaluate`` plays as its
episode ``S`` (with the default ``--seed-offset 0``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym

from swarmgym.orchestrators import REFERENCE_NAMES, Orchestrator, bind_to_env, load_orchestrator
from swarmgym.trace import TraceRecorder, write_trace


def play_traced(
    policy: Orchestrator, env_id: str, seed: int, *, env_kwargs: dict | None = None, meta: dict | None = None
) -> dict[str, Any]:
    """Play episode ``seed`` of ``env_id`` with ``policy``; return its trace (:meth:`EpisodeTracer.to_dict`)."""
    from swarmgym.evaluation import dict_observation, resolve_id

    env_id = resolve_id(env_id)
    env = TraceRecorder(gym.make(env_id, disable_env_checker=True, **(env_kwargs or {})), meta=meta)
    policy = bind_to_env(policy, env)  # a rule told the env's public table is told this env's
    if hasattr(policy, "reset"):
        policy.reset(None)
    obs, info = env.reset(seed=seed)
    while True:
        batch = {k: v[None] for k, v in dict_observation(env, obs).items()}
        action = int(policy.act(batch, info["action_mask"][None])[0])
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            env.close()
            return env.last_trace


def file_stem(env_id: str, seed: int, orchestrator: str) -> str:
    """``WideSearch-v0_seed3_critical_path`` (characters outside [A-Za-z0-9._-] become '_')."""
    name = f"{env_id.removeprefix('swarmgym/')}_seed{seed}_{orchestrator}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="swarmgym replay", description="Play one episode; write its event trace (JSON) and Gantt chart (PNG).")
    p.add_argument("--id", required=True, help="env id ('WideSearch-v0' or 'swarmgym/WideSearch-v0')")
    p.add_argument("--seed", type=int, default=0, help="the episode: env.reset(seed=SEED) (default 0)")
    p.add_argument(
        "-o",
        "--orchestrator",
        default="critical_path",
        metavar="SPEC",
        help=f"orchestrator spec: {', '.join(REFERENCE_NAMES)}, NAME:key=value,..., moe:PATH or sb3:PATH (default critical_path)",
    )
    p.add_argument("--out", default="runs/replay", help="folder for the JSON and PNG files (default runs/replay)")
    p.add_argument("--no-png", action="store_true", help="write the trace only")
    return p


def cli_main(argv: list[str]) -> int:
    """Entry point of ``swarmgym replay``."""
    args = _parser().parse_args(argv)
    if args.seed < 0:
        print(f"swarmgym replay: --seed must be an integer >= 0, got {args.seed}", file=sys.stderr)
        return 2
    try:
        from swarmgym.evaluation import resolve_id

        env_id = resolve_id(args.id)
        policy = load_orchestrator(args.orchestrator)
    except (ValueError, TypeError, ImportError, OSError) as exc:
        print(f"swarmgym replay: {exc}", file=sys.stderr)
        return 2
    name = str(getattr(policy, "name", args.orchestrator))
    trace = play_traced(policy, env_id, args.seed, meta={"orchestrator": name})
    out = Path(args.out)
    stem = file_stem(env_id, args.seed, name)
    written = [write_trace(trace, out / f"{stem}.json")]
    if not args.no_png:
        from swarmgym.viewer import save_gantt

        written.append(save_gantt(trace, out / f"{stem}.png"))
    m = trace["metrics"]
    print(
        f"{env_id} seed {args.seed} {name}: score {m['score']:.3f}, critical steps {m['critical_steps']}/{m['budget']}, spawned {m['n_spawned']}, tokens {m['tokens']:,}"
    )
    for path in written:
        print(f"wrote {path}")
    return 0


__all__ = ["cli_main", "file_stem", "play_traced"]
