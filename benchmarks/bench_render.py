"""Cost of rendering: per-frame time of the Gantt chart, and step time with rendering off, before/after.

Step time is measured on the reference ``SwarmEnv`` of the same id built from two
versions of ``swarmgym/env.py``: this checkout's ("after") and an older one given by
``--before`` (e.g. ``git show a330f87:swarmgym/env.py > env_before.py``), loaded
side by side in one process. Both play the same episodes (same seeds, random valid
actions from pre-drawn uniforms), in interleaved rounds, so that machine noise hits
both alike; medians over rounds are reported. Also shown: the same env with
``render_mode="rgb_array"`` but no ``render()`` calls (the tracer's cost per step), and
under a :class:`~swarmgym.trace.TraceRecorder`.

Run: ``python benchmarks/bench_render.py --before env_before.py [--steps 20000] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time

import gymnasium as gym
import numpy as np

import swarmgym  # noqa: F401  (registers the suite)
from swarmgym.env import SwarmEnv
from swarmgym.trace import TraceRecorder


def load_env_class(path: str) -> type:
    spec = importlib.util.spec_from_file_location("swarmgym_env_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SwarmEnv


def step_time(env, steps: int, seed: int = 0) -> float:
    """Mean seconds per ``env.step`` (resets excluded) over ``steps`` random valid actions."""
    uniforms = np.random.default_rng(seed).random(steps)
    obs, info = env.reset(seed=seed)
    total = 0.0
    episode = 0
    for k in range(steps):
        valid = np.flatnonzero(info["action_mask"][:-1])
        action = int(valid[int(uniforms[k] * len(valid))]) if len(valid) else len(info["action_mask"]) - 1
        t0 = time.perf_counter()
        obs, _, terminated, truncated, info = env.step(action)
        total += time.perf_counter() - t0
        if terminated or truncated:
            episode += 1
            obs, info = env.reset(seed=seed + episode)
    return total / steps


def frame_time(env_id: str, frames: int) -> tuple[float, tuple[int, ...]]:
    """Mean seconds per ``render()`` of an rgb_array env over a critical_path episode (repeated)."""
    from swarmgym.evaluation import dict_observation
    from swarmgym.orchestrators import load_orchestrator

    env = gym.make(env_id, render_mode="rgb_array")
    policy = load_orchestrator("critical_path")
    obs, info = env.reset(seed=0)
    env.render()  # the first frame draws the static part
    total, count, shape = 0.0, 0, ()
    seed = 0
    while count < frames:
        action = int(policy.act({k: v[None] for k, v in dict_observation(env, obs).items()}, info["action_mask"][None])[0])
        obs, _, terminated, truncated, info = env.step(action)
        t0 = time.perf_counter()
        shape = env.render().shape
        total += time.perf_counter() - t0
        count += 1
        if terminated or truncated:
            seed += 1
            obs, info = env.reset(seed=seed)
    return total / count, shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="path of the older swarmgym/env.py to compare against")
    parser.add_argument("--ids", nargs="+", default=["swarmgym/WideSearch-v0", "swarmgym/Workflows-v0"])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    Before = load_env_class(args.before)
    print(f"load before: {os.getloadavg()}")
    for env_id in args.ids:
        kwargs = gym.spec(env_id).kwargs
        makers = {
            "before": lambda kwargs=kwargs: Before(**kwargs),
            "after": lambda kwargs=kwargs: SwarmEnv(**kwargs),
            "after, rgb_array (no render calls)": lambda kwargs=kwargs: SwarmEnv(**kwargs, render_mode="rgb_array"),
            "after, TraceRecorder": lambda kwargs=kwargs: TraceRecorder(SwarmEnv(**kwargs)),
        }
        rounds = {name: [] for name in makers}
        for _ in range(args.repeats):  # interleaved
            for name, make in makers.items():
                rounds[name].append(step_time(make(), args.steps))
        med = {name: float(np.median(r)) for name, r in rounds.items()}
        print(f"\n{env_id}: {args.steps} steps per round, {args.repeats} interleaved rounds (median; min..max in us)")
        print("| env | step (us) | / before | rounds (us) |")
        print("|---|---:|---:|---|")
        for name, r in rounds.items():
            spread = ", ".join(f"{x * 1e6:.1f}" for x in r)
            print(f"| {name} | {med[name] * 1e6:.1f} | {med[name] / med['before']:.3f}x | {spread} |")
    for env_id in args.ids:
        seconds, shape = frame_time(env_id, args.frames)
        print(f"\n{env_id}: render() rgb_array {seconds * 1e3:.1f} ms per frame ({args.frames} frames, {shape[1]}x{shape[0]} px)")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
