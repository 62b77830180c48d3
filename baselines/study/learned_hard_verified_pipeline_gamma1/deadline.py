"""Do the gamma-1 VerifiedPipelineHard-v0 policies run to the deadline, and do they check?

Plays 200 episodes (seeds 100000..100199) with the best hand-coded rule and one leg's three learned
policies (greedy; leg 3 unless a leg is given) and prints the episode means that say so. Run from the
repository root, after ``train.sh`` (legs 1-4) or ``polish.sh`` (leg 5) has made the runs:

    python baselines/study/learned_hard_verified_pipeline_gamma1/deadline.py [LEG]
"""

from __future__ import annotations

import sys

import gymnasium as gym

from swarmgym.evaluation import run_episodes
from swarmgym.moe.policy import load_policy
from swarmgym.orchestrators import bind_to_env, load_orchestrator

ENV_ID = "swarmgym/VerifiedPipelineHard-v0"
EPISODES = 200
SEED_OFFSET = 100_000
METRICS = ("score", "critical_steps", "budget_exhausted", "verification_rate", "cost_usd")


def main(leg: int = 3) -> None:
    env = gym.make(ENV_ID)
    policies = {
        "verifying_scheduler:verify=never,target_ticks=16": load_orchestrator(
            f"verifying_scheduler:verify=never,target_ticks=16,public={ENV_ID}"
        )
    }
    for seed in (0, 1, 2):
        policies[f"γ = 1, leg {leg}, seed {seed} (greedy)"] = load_policy(f"runs/vph-g1-leg{leg}-seed{seed}")
    print("| policy | " + " | ".join(METRICS) + " |")
    print("|---|" + "---:|" * len(METRICS))
    for name, policy in policies.items():
        summary = run_episodes(bind_to_env(policy, env), ENV_ID, EPISODES, seed_offset=SEED_OFFSET).summary()
        print(f"| {name} | " + " | ".join(f"{float(summary[k].mean):.3f}" for k in METRICS) + " |")
    env.close()


if __name__ == "__main__":
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1] not in ("1", "2", "3", "4", "5")):
        sys.exit("usage: deadline.py [LEG]   (LEG: 1 to 5, default 3)")
    main(int(sys.argv[1]) if len(sys.argv) == 2 else 3)
