"""What each orchestrator does on LayeredDAGHard-v0: actions per episode by block, and episode metrics.

Plays 300 episodes (seeds 100000..100299) with the best hand-coded rule and the learned policies
(greedy) of leg 6 and of leg 7 with and without the discount, and prints a markdown table. Run from
the repository root, after the runs exist:

    python baselines/study/learned_hard_layered_dag_gamma1/behaviour.py > baselines/study/learned_hard_layered_dag_gamma1/behaviour.md
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np

from swarmgym.evaluation import run_episodes
from swarmgym.layout import ActionLayout, spawn_block
from swarmgym.moe.policy import load_policy
from swarmgym.orchestrators import bind_to_env, load_orchestrator

ENV_ID = "swarmgym/LayeredDAGHard-v0"
EPISODES = 300
SEED_OFFSET = 100_000
METRICS = ("score", "critical_steps", "budget_exhausted", "targets_wrong", "verification_rate", "cost_usd")


def block_names(env: gym.Env) -> dict[str, str]:
    """Action block -> table column: each spawn block named by its tier's name in the env's config."""
    return {spawn_block(t): f"spawn {tier.name}" for t, tier in enumerate(env.unwrapped.config.tiers)}


class CountingPolicy:
    """Plays as ``policy`` and counts its actions by block (:meth:`ActionLayout.decode`)."""

    def __init__(self, policy, names: dict[str, str]) -> None:
        self.policy, self.names, self.counts = policy, names, Counter()

    def act(self, obs, mask):
        actions = np.asarray(self.policy.act(obs, mask)).reshape(-1)
        layout = ActionLayout.for_actions(mask.shape[1], obs["nodes"].shape[1])
        self.counts.update(self.names.get(block, block) for block, _ in map(layout.decode, actions))
        return actions


def play(name: str, policy, names: dict[str, str]) -> dict[str, float]:
    """One table row: ``policy`` (already bound to the env) over the episodes."""
    counting = CountingPolicy(policy, names)
    summary = run_episodes(counting, ENV_ID, EPISODES, seed_offset=SEED_OFFSET).summary()
    row = {"policy": name, "decisions": sum(counting.counts.values()) / EPISODES}
    for block in ("do", *names.values(), "verify", "wait", "answer"):
        row[block] = counting.counts[block] / EPISODES
    for key in METRICS:
        row[key] = float(summary[key].mean)
    return row


def main() -> int:
    runs = Path("runs")
    policies = {"verifying_scheduler (defaults)": load_orchestrator(f"verifying_scheduler:public={ENV_ID}")}
    for label, run in (("leg 6", "ldh-polish2-seed0"), ("leg 7, γ 0.995", "ldh-g995-seed{}"), ("leg 7, γ 1", "ldh-gamma1-seed{}")):
        for seed in (0,) if "{}" not in run else (0, 1, 2):
            policies[f"MoE {label}, seed {seed}"] = load_policy(runs / run.format(seed))
    env = gym.make(ENV_ID)
    names = block_names(env)
    rows = [play(name, bind_to_env(p, env), names) for name, p in policies.items()]
    env.close()
    cols = list(rows[0])
    print(
        f"Actions per episode and episode means, {EPISODES} episodes of {ENV_ID} (seeds {SEED_OFFSET}..{SEED_OFFSET + EPISODES - 1}), learned policies greedy:\n"
    )
    print("| " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * (len(cols) - 1))
    for r in rows:
        print(
            "| "
            + " | ".join(
                [r["policy"]]
                + [
                    f"{r[c]:.3f}" if c in ("score", "cost_usd", "verification_rate", "budget_exhausted") else f"{r[c]:.2f}"
                    for c in cols[1:]
                ]
            )
            + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
