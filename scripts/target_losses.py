"""Where a hand-coded rule loses its score: targets right, wrong and missing per node kind, and what a
deadline reserve does to them (an analysis tool only; it registers nothing).

The score is F1 over the task's targets. On the mechanics families a rule can lose it to errors it
lets through (wrong targets) or to the deadline (missing ones), and which one decides what could be
won back. This plays ``verifying_scheduler`` with the given arguments on the same seeds and prints,
per kind of target node, how many per episode ended right, wrong and missing.

``--reserve R`` (any number of values) plays the same rule made to keep R ticks after every
non-merge node for the merges that follow it: a tier whose attempt would return later than
``R`` ticks before the deadline is not used for such a node (the rule's own time check, moved
earlier). ``R = 0`` is the rule itself.

Usage (a few seconds per row at -n 200 on one core)::

    python scripts/target_losses.py --id DeepResearchHard-v0 --rule verify=never,target_ticks=16 --reserve 0 3 6 9 -n 200
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np

import swarmgym  # noqa: F401  (registers the ids)
from swarmgym.evaluation import resolve_id
from swarmgym.graph import KINDS
from swarmgym.layout import KIND_COLUMN0
from swarmgym.orchestrators import VerifyingScheduler, _parse_value
from swarmgym.simulator import DONE

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from mechanics_headroom import play_to_end  # noqa: E402

_MERGE = KIND_COLUMN0 + KINDS.index("merge")


class MergeReserveScheduler(VerifyingScheduler):
    """verifying_scheduler that hands a non-merge node only to a tier returning ``reserve`` ticks
    before the deadline (the rest of its decisions unchanged)."""

    def __init__(self, reserve: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reserve = float(reserve)
        self._arguments = {**self._arguments, "reserve": self.reserve}

    def for_env(self, config):
        bound = super().for_env(config)
        if bound is not self:
            bound = type(self)(**{**self._arguments, "public": config})
        return bound

    def choose_tier(self, i, nodes, belief, spawn_ok, load=0.0, time_left=np.inf):
        if nodes[i, _MERGE] < 0.5:
            time_left = time_left - self.reserve
        return super().choose_tier(i, nodes, belief, spawn_ok, load, time_left)


def rule_kwargs(text: str) -> dict:
    """``key=value,...`` as verifying_scheduler's arguments."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        out[key] = _parse_value(value)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--id", default="DeepResearchHard-v0", help="a registered id with the mechanics")
    p.add_argument("--rule", default="verify=never,target_ticks=16", help="verifying_scheduler's arguments, key=value,...")
    p.add_argument("--reserve", type=float, nargs="+", default=[0.0], help="ticks kept after non-merge nodes (0: the rule itself)")
    p.add_argument("-n", type=int, default=200, help="episodes (seeds seed0 .. seed0 + n - 1)")
    p.add_argument("--seed0", type=int, default=0)
    args = p.parse_args()
    if args.n < 2:
        p.error(f"-n must be an integer >= 2, got {args.n}")
    env_id = resolve_id(args.id)
    env = gym.make(env_id, disable_env_checker=True)
    kinds = list(KINDS)
    print(
        f"{env_id}, verifying_scheduler:{args.rule}, seeds {args.seed0}..{args.seed0 + args.n - 1}; per episode: right / wrong / missing targets"
    )
    print("| reserve | score | " + " | ".join(kinds) + " |")
    print("|---:|---:|" + "---:|" * len(kinds))
    for reserve in args.reserve:
        policy = MergeReserveScheduler(reserve=reserve, **rule_kwargs(args.rule)).for_env(env.unwrapped.config)
        scores, counts = [], np.zeros((len(kinds), 3))
        for seed in range(args.seed0, args.seed0 + args.n):
            info = play_to_end(policy, env, *env.reset(seed=seed))
            scores.append(float(info["metrics"]["score"]))
            sim, graph = env.unwrapped.sim, env.unwrapped.instance.graph
            done = np.asarray(sim.status) == DONE
            correct = np.asarray(sim.correct, dtype=bool)
            for i in np.flatnonzero(np.asarray(graph.targets, dtype=bool)):
                counts[int(graph.kind[i]), 0 if done[i] and correct[i] else (1 if done[i] else 2)] += 1
        s = np.asarray(scores)
        cells = [" / ".join(f"{c / args.n:.2f}" for c in counts[k]) if counts[k].any() else "-" for k in range(len(kinds))]
        print(f"| {reserve:g} | {s.mean():.3f} ± {1.96 * s.std(ddof=1) / np.sqrt(s.size):.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
