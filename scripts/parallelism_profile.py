"""Parallelism profile of the suite: quantiles of the ideal speedup over drawn instances, per Dict id.

The ideal speedup of a task is its total work over the makespan floor
``max(critical path, ceil(total work / (max_subagents + 1)))`` (``TaskGraph.ideal_speedup``),
with the id's own ``max_subagents``. Instance k is the graph of ``env.reset(seed=k)``.

Run: ``python scripts/parallelism_profile.py [--instances 1000]``
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import swarmgym

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1000)
    args = parser.parse_args()
    print(f"Ideal speedup over {args.instances} instances (seeds 0..{args.instances - 1}) per id\n")
    print("| id | nodes (median) | " + " | ".join(f"q{int(q * 100)}" for q in QUANTILES) + " | mean |")
    print("|---|---:|" + "---:|" * (len(QUANTILES) + 1))
    for env_id in (i for i in swarmgym.SUITE_IDS if "-flat-" not in i):
        env = gym.make(env_id).unwrapped
        m = env.config.max_subagents
        speedups, nodes = [], []
        for seed in range(args.instances):
            env.reset(seed=seed)
            graph = env.instance.graph
            speedups.append(graph.ideal_speedup(m))
            nodes.append(graph.n_nodes)
        q = np.quantile(speedups, QUANTILES)
        cells = " | ".join(f"{v:.2f}" for v in q)
        print(f"| {env_id.removeprefix('swarmgym/')} | {int(np.median(nodes))} | {cells} | {np.mean(speedups):.2f} |")


if __name__ == "__main__":
    main()
