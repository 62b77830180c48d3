"""Where a hand-coded rule loses its score, and whether a variant of it wins that back: targets right,
wrong and missing per node kind (an analysis tool only; it registers nothing).

The score is F1 over the task's targets. On the mechanics families a rule can lose it to errors it
lets through (wrong targets) or to the deadline (missing ones), and which one decides what could be
won back. This plays ``verifying_scheduler`` with the given arguments, and variants of it, on the
same seeds; it prints each one's score, its paired difference from the rule, and per kind of target
node how many per episode ended right, wrong and missing. The variants:

* ``--reserve R`` (any number of values): keep ``R`` ticks after every non-merge node for the
  merges that follow it: a tier whose attempt would return later than ``R`` ticks before the
  deadline is not used for such a node (the rule's own time check, moved earlier);
* ``--depth-stake A`` (any number of values): verifying_scheduler's own ``depth_stake=A``: a wrong
  result spoils more the more work lies below its node (the rule's stake times ``1 + A * levels``,
  ``levels`` the work on the node's longest path to a target after itself in units of its own
  work). The rule's stake counts at most two targets; on a cross-linked pipeline an early error
  spoils more. It needs the bottom levels, which a progressive task hides (there every level is 0
  and the variant is the rule).

Usage (a few seconds per row at -n 200 on one core)::

    python scripts/target_losses.py --id DeepResearchHard-v0 --rule verify=never,target_ticks=16 --reserve 3 6 -n 200
    python scripts/target_losses.py --id VerifiedPipelineHard-v0 --rule verify=never,target_ticks=16 --depth-stake 0.25 0.5 1 -n 200
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


class RuleVariant(VerifyingScheduler):
    """verifying_scheduler with a deadline reserve for non-merge nodes (``reserve`` ticks); 0 is
    the rule itself."""

    def __init__(self, reserve: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reserve = float(reserve)

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


def play_variant(policy: RuleVariant, env: gym.Env, seeds: range) -> tuple[np.ndarray, np.ndarray]:
    """Per episode the score, and ``[kinds, 3]`` the targets right, wrong and missing per episode."""
    scores, counts = [], np.zeros((len(KINDS), 3))
    for seed in seeds:
        info = play_to_end(policy, env, *env.reset(seed=seed))
        scores.append(float(info["metrics"]["score"]))
        sim, graph = env.unwrapped.sim, env.unwrapped.instance.graph
        done = np.asarray(sim.status) == DONE
        correct = np.asarray(sim.correct, dtype=bool)
        for i in np.flatnonzero(np.asarray(graph.targets, dtype=bool)):
            counts[int(graph.kind[i]), 0 if done[i] and correct[i] else (1 if done[i] else 2)] += 1
    return np.asarray(scores), counts / len(seeds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--id", default="DeepResearchHard-v0", help="a registered id with the mechanics")
    p.add_argument("--rule", default="verify=never,target_ticks=16", help="verifying_scheduler's arguments, key=value,...")
    p.add_argument("--reserve", type=float, nargs="*", default=[], help="variants: ticks kept after non-merge nodes")
    p.add_argument("--depth-stake", type=float, nargs="*", default=[], help="variants: stake times 1 + A * levels below")
    p.add_argument("-n", type=int, default=200, help="episodes (seeds seed0 .. seed0 + n - 1)")
    p.add_argument("--seed0", type=int, default=0)
    args = p.parse_args()
    if args.n < 2:
        p.error(f"-n must be an integer >= 2, got {args.n}")
    env_id = resolve_id(args.id)
    env = gym.make(env_id, disable_env_checker=True)
    seeds = range(args.seed0, args.seed0 + args.n)
    variants = [("the rule", {})]
    variants += [(f"reserve {r:g}", {"reserve": r}) for r in args.reserve]
    variants += [(f"depth stake {a:g}", {"depth_stake": a}) for a in args.depth_stake]
    print(f"{env_id}, verifying_scheduler:{args.rule}, seeds {seeds.start}..{seeds.stop - 1}; per episode: right / wrong / missing targets")
    print("| variant | score | − the rule, paired | " + " | ".join(KINDS) + " |")
    print("|---|---:|---:|" + "---:|" * len(KINDS))
    reference = None
    for label, extra in variants:
        policy = RuleVariant(**extra, **rule_kwargs(args.rule), public=env.unwrapped.config)
        scores, counts = play_variant(policy, env, seeds)
        reference = scores if reference is None else reference
        d = scores - reference
        cells = [" / ".join(f"{c:.2f}" for c in counts[k]) if counts[k].any() else "-" for k in range(len(KINDS))]
        ci = lambda x: 1.96 * x.std(ddof=1) / np.sqrt(x.size)  # noqa: E731
        print(f"| {label} | {scores.mean():.3f} ± {ci(scores):.3f} | {d.mean():+.3f} ± {ci(d):.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
