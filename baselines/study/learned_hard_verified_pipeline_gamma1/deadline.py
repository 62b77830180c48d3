"""Do the gamma-1 VerifiedPipelineHard-v0 policies run to the deadline, and do they check?

Plays 200 episodes (seeds 100000..100199) with the best hand-coded rule and leg 3's three learned
policies (greedy) and prints the episode means that say so. Run from the repository root, after
``train.sh`` has made the runs:

    python baselines/study/learned_hard_verified_pipeline_gamma1/deadline.py
"""

from __future__ import annotations

import gymnasium as gym

from swarmgym.evaluation import run_episodes
from swarmgym.moe.policy import load_policy
from swarmgym.orchestrators import bind_to_env, load_orchestrator

ENV_ID = "swarmgym/VerifiedPipelineHard-v0"
EPISODES = 200
SEED_OFFSET = 100_000
METRICS = ("score", "critical_steps", "budget_exhausted", "verification_rate", "cost_usd")


def main() -> None:
    env = gym.make(ENV_ID)
    policies = {
        "verifying_scheduler:verify=never,target_ticks=16": load_orchestrator(
            f"verifying_scheduler:verify=never,target_ticks=16,public={ENV_ID}"
        )
    }
    for seed in (0, 1, 2):
        policies[f"γ = 1, leg 3, seed {seed} (greedy)"] = load_policy(f"runs/vph-g1-leg3-seed{seed}")
    print("| policy | " + " | ".join(METRICS) + " |")
    print("|---|" + "---:|" * len(METRICS))
    for name, policy in policies.items():
        summary = run_episodes(bind_to_env(policy, env), ENV_ID, EPISODES, seed_offset=SEED_OFFSET).summary()
        print(f"| {name} | " + " | ".join(f"{float(summary[k].mean):.3f}" for k in METRICS) + " |")
    env.close()


if __name__ == "__main__":
    main()
