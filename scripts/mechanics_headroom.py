"""Headroom on the mechanics families: how far the hand-coded orchestrators are from rules that know
the episode's hidden reliability (an analysis tool only: the oracles read
``env.unwrapped.instance.fates.error_scale``, which no policy can see, and are never registered).

Every orchestrator plays the same seeds. Two oracles bound what inferring the hidden scale is worth:

* ``oracle_rule``: ``verifying_scheduler`` told the true scale of every tier (its belief a point mass
  there) instead of inferring it from the fail and caught rates it observes;
* ``oracle_pick``: per episode, the fixed rule (one of the ``--fixed`` specs) that scored best on
  average over the *other half* of the seeds among episodes whose hidden scales fall in the same
  cell of a grid over the scale range (cross-fitted: a choice that knows the scale only, not the
  fates).

It also prints each row's mean score by thirds of the fast tier's hidden scale, and the paired
difference between ``oracle_rule`` and the best hand-coded row.

Usage (about ten minutes per id on one core)::

    python scripts/mechanics_headroom.py --ids DeepResearch-v0 VerifiedPipeline-v0 -n 200
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import swarmgym  # noqa: F401  (registers the ids)
from swarmgym.evaluation import resolve_id
from swarmgym.orchestrators import VerifyingScheduler, load_orchestrator

DEFAULT_SPECS = ("critical_path", "verifying_scheduler", "verifying_scheduler:verify=never", "verifying_scheduler:verify=always")
DEFAULT_FIXED = (
    "verifying_scheduler:verify=never,tier=fast",
    "verifying_scheduler:verify=never,tier=careful",
    "verifying_scheduler:verify=always,tier=fast",
    "verifying_scheduler:verify=always,tier=careful",
)
COLUMNS = ("score", "critical_steps", "cost_usd", "n_verified", "n_caught", "targets_wrong", "targets_missing", "budget_exhausted")


class ScaleOracle(VerifyingScheduler):
    """verifying_scheduler whose belief is the true hidden scale (set per episode by :meth:`know`)."""

    name = "oracle_rule"

    def know(self, scale: np.ndarray) -> None:
        self._known = np.asarray(scale, dtype=np.float64)

    def scale_belief(self, nodes, glob):
        # a grid of the true scales, one point per tier, and a belief that puts all weight on its own
        t_count = len(self._error_scale)
        self._grid = np.ones(t_count)
        self._grid[: self._known.size] = self._known
        belief = np.eye(t_count)
        return belief


def play_to_end(policy, env: gym.Env, obs: dict, info: dict) -> dict:
    """Play the episode ``env`` was just reset to (``obs``, ``info``) with ``policy`` (reset first);
    returns the last step's info."""
    policy.reset()
    while True:
        action = int(policy.act({k: v[None] for k, v in obs.items()}, info["action_mask"][None])[0])
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return info


def play(policy, env_id: str, seeds: range, env_kwargs: dict | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Metrics per episode (``COLUMNS``) and the hidden scale ``[n, T]`` of each."""
    env = gym.make(env_id, disable_env_checker=True, **(env_kwargs or {}))
    rows, scales = {k: [] for k in COLUMNS}, []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        scale = env.unwrapped.instance.fates.error_scale
        if isinstance(policy, ScaleOracle):
            policy.know(scale)
        info = play_to_end(policy, env, obs, info)
        for k in COLUMNS:
            rows[k].append(float(info["metrics"][k]))
        scales.append(np.asarray(scale, dtype=np.float64))
    return {k: np.asarray(v) for k, v in rows.items()}, np.asarray(scales)


def mean_ci(x: np.ndarray) -> str:
    return f"{x.mean():.3f} ± {1.96 * x.std(ddof=1) / np.sqrt(x.size):.3f}"


def oracle_pick(scores: dict[str, np.ndarray], scales: np.ndarray, lo: float, hi: float, cells: int) -> np.ndarray:
    """Per episode, the score of the fixed rule best in its scale cell on the other half of the seeds."""
    edges = np.linspace(lo, hi, cells + 1)[1:-1]
    cell = np.zeros(len(scales), dtype=np.int64)
    for t in range(scales.shape[1]):
        cell = cell * cells + np.searchsorted(edges, scales[:, t])
    half = np.arange(len(scales)) % 2
    names = list(scores)
    table = np.stack([scores[n] for n in names])  # [rules, episodes]
    out = np.empty(len(scales))
    for h in (0, 1):
        fit = half != h
        for c in np.unique(cell):
            here = (cell == c) & (half == h)
            train = (cell == c) & fit
            best = int(np.argmax(table[:, train].mean(axis=1))) if train.any() else int(np.argmax(table[:, fit].mean(axis=1)))
            out[here] = table[best, here]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ids", nargs="+", default=["DeepResearch-v0", "VerifiedPipeline-v0"])
    ap.add_argument("-n", type=int, default=200, help="episodes (seeds 0..n-1) per orchestrator and id")
    ap.add_argument("-o", nargs="+", default=list(DEFAULT_SPECS), help="orchestrator specs for the table")
    ap.add_argument("--fixed", nargs="+", default=list(DEFAULT_FIXED), help="fixed rules oracle_pick chooses among")
    ap.add_argument("--cells", type=int, default=3, help="cells per tier of the scale grid of oracle_pick")
    args = ap.parse_args()
    for name in args.ids:
        env_id = resolve_id(name)
        config = gym.make(env_id).unwrapped.config
        lo, hi = config.hidden_reliability or (1.0, 1.0)
        seeds = range(args.n)
        print(f"\n## {env_id} ({args.n} episodes; hidden scale per tier uniform in [{lo}, {hi}])\n")
        print("| orchestrator | score (95% CI) | critical steps | cost (m$) | verified | caught | targets wrong | missing | budget hit |")
        print("|---|---|---|---|---|---|---|---|---|")
        fixed_scores: dict[str, np.ndarray] = {}
        all_scores: dict[str, np.ndarray] = {}
        scales = None
        policies = [(spec, load_orchestrator(spec)) for spec in dict.fromkeys([*args.o, *args.fixed])]
        policies.append(("oracle_rule (knows the hidden scale)", ScaleOracle()))
        for spec, policy in policies:
            rows, scales = play(policy, env_id, seeds)
            all_scores[spec] = rows["score"]
            if spec in args.fixed:
                fixed_scores[spec] = rows["score"]
            print(
                f"| {spec} | {mean_ci(rows['score'])} | {rows['critical_steps'].mean():.1f} | {1e3 * rows['cost_usd'].mean():.2f} | "
                f"{rows['n_verified'].mean():.2f} | {rows['n_caught'].mean():.2f} | {rows['targets_wrong'].mean():.2f} | "
                f"{rows['targets_missing'].mean():.2f} | {rows['budget_exhausted'].mean():.2f} |",
                flush=True,
            )
        if fixed_scores and scales is not None:
            picked = oracle_pick(fixed_scores, scales, lo, hi, args.cells)
            print(f"| oracle_pick (best fixed rule per scale cell, cross-fitted) | {mean_ci(picked)} | | | | | | | |")
        if scales is not None:
            edges = np.linspace(lo, hi, 4)
            third = np.searchsorted(edges[1:-1], scales[:, 0])
            heads = [f"{edges[k]:.2f}-{edges[k + 1]:.2f}" for k in range(3)]
            print(f"\nMean score by the fast tier's (tier 0) hidden scale: | orchestrator | {' | '.join(heads)} |")
            for spec, score in all_scores.items():
                print(f"| {spec} | " + " | ".join(f"{score[third == k].mean():.2f}" for k in range(3)) + " |")
        oracle = all_scores.pop("oracle_rule (knows the hidden scale)")
        best = max(all_scores, key=lambda k: all_scores[k].mean())
        print(f"\noracle_rule - {best} (the best hand-coded here), paired over the same seeds: {mean_ci(oracle - all_scores[best])}")


if __name__ == "__main__":
    main()
