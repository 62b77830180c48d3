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

import numpy as np

from swarmgym.evaluation import run_episodes
from swarmgym.layout import ActionLayout
from swarmgym.moe.policy import load_policy
from swarmgym.orchestrators import load_orchestrator

ENV_ID = "swarmgym/LayeredDAGHard-v0"
EPISODES = 300
SEED_OFFSET = 100_000
METRICS = ("score", "critical_steps", "budget_exhausted", "targets_wrong", "verification_rate", "cost_usd")


def block_of(action: int, layout: ActionLayout) -> str:
    """The action block of ``action`` (tier 0 is the fast tier, tier 1 the careful one, as in the env)."""
    for name, _ in reversed(layout.blocks):
        start = layout[name] if name.startswith("spawn_") else getattr(layout, name)
        if action >= start:
            return {"spawn": "spawn fast", "spawn_1": "spawn careful"}.get(name, name)
    raise ValueError(action)


def play(name: str, policy, layout_of) -> dict[str, float]:
    counts: Counter[str] = Counter()
    act = policy.act

    def counting_act(obs, mask):
        actions = np.asarray(act(obs, mask)).reshape(-1)
        layout = layout_of(obs)
        counts.update(block_of(int(a), layout) for a in actions)
        return actions

    policy.act = counting_act
    summary = run_episodes(policy, ENV_ID, EPISODES, seed_offset=SEED_OFFSET).summary()
    row = {"policy": name, "decisions": sum(counts.values()) / EPISODES}
    for block in ("do", "spawn fast", "spawn careful", "verify", "wait", "answer"):
        row[block] = counts[block] / EPISODES
    for key in METRICS:
        row[key] = float(summary[key].mean)
    return row


def main() -> int:
    runs = Path("runs")
    policies = {"verifying_scheduler (defaults)": load_orchestrator(f"verifying_scheduler:public={ENV_ID}")}
    for label, run in (("leg 6", "ldh-polish2-seed0"), ("leg 7, γ 0.995", "ldh-g995-seed{}"), ("leg 7, γ 1", "ldh-gamma1-seed{}")):
        for seed in (0,) if "{}" not in run else (0, 1, 2):
            policies[f"MoE {label}, seed {seed}"] = load_policy(runs / run.format(seed))
    rows = [play(name, p, lambda obs: ActionLayout(obs["nodes"].shape[1], extended=True)) for name, p in policies.items()]
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
