"""Per-step time of the reference SwarmEnv next to CartPole-v1's, measured side by side.

Every env is made with ``gymnasium.make`` (so the default wrappers are included)
and stepped with a cheap fixed policy, so that the policy's cost does not blur the
figure: CartPole alternates its two actions; a swarm env takes a random valid
action drawn from ``info["action_mask"]`` with pre-drawn uniforms (the draw is
outside the timed region). Step and reset are timed separately; the ratio columns
are the env's time over CartPole's: per step, and per step with the resets amortised
over the episode (the figure a training loop sees). The load average is printed
before and after (other processes on the machine slow every env alike, but not
exactly alike).

Run: ``python benchmarks/bench_step.py [--steps 30000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np

import swarmgym  # noqa: F401  (registers the suite)


def measure(env_id: str, steps: int, seed: int = 0) -> dict:
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    uniforms = rng.random(steps)
    obs, info = env.reset(seed=seed)
    step_time = reset_time = 0.0
    episodes = 0
    swarm = "action_mask" in info
    answer = env.unwrapped.layout.answer if swarm else None
    for k in range(steps):
        if swarm:
            valid = np.flatnonzero(info["action_mask"])
            valid = valid[valid != answer]  # answer only when nothing else is valid
            action = int(valid[int(uniforms[k] * len(valid))]) if len(valid) else answer
        else:
            action = k % 2
        t0 = time.perf_counter()
        obs, reward, terminated, truncated, info = env.step(action)
        step_time += time.perf_counter() - t0
        if terminated or truncated:
            episodes += 1
            t0 = time.perf_counter()
            obs, info = env.reset()
            reset_time += time.perf_counter() - t0
    env.close()
    return {
        "step_us": step_time / steps * 1e6,
        "reset_us": reset_time / max(episodes, 1) * 1e6,
        "steps_per_episode": steps / max(episodes, 1),
        "amortised_us": (step_time + reset_time) / steps * 1e6,
    }


def _load(avg: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.2f}" for x in avg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median of each env is reported")
    args = parser.parse_args()
    ids = ["CartPole-v1", "swarmgym/WideSearch-v0", "swarmgym/Mixed-v0", "swarmgym/WideSearch-flat-v0", "swarmgym/Mixed-flat-v0"]
    rounds = {env_id: [] for env_id in ids}
    load_before = os.getloadavg()
    for _ in range(args.repeats):  # interleave, so that machine noise hits every env alike
        for env_id in ids:
            rounds[env_id].append(measure(env_id, args.steps))
    med = {env_id: {k: float(np.median([r[k] for r in rs])) for k in rs[0]} for env_id, rs in rounds.items()}
    base = med["CartPole-v1"]["step_us"]
    load_after = os.getloadavg()
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}"
    )
    print(f"# load average (1, 5, 15 min): before {_load(load_before)}, after {_load(load_after)}")
    print(f"steps per env per round: {args.steps}, rounds: {args.repeats} (medians)")
    print("| env | step (us) | step / CartPole | reset (us) | steps/episode | step+reset amortised (us) | amortised / CartPole |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for env_id, m in med.items():
        print(
            f"| {env_id} | {m['step_us']:.1f} | {m['step_us'] / base:.2f}x | {m['reset_us']:.1f} | "
            f"{m['steps_per_episode']:.1f} | {m['amortised_us']:.1f} | {m['amortised_us'] / med['CartPole-v1']['amortised_us']:.2f}x |"
        )


if __name__ == "__main__":
    main()
