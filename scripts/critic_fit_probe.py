"""What a critic fit in the warm start changes: the first PPO updates after a clone of critical_path.

Clones ``critical_path`` on Mixed-v0 (default model, 30 epochs), then runs ``UPDATES`` PPO updates of
the default trainer and prints, per update, the sampled policy's mean score on the rollout it was
updated from and the update's losses (approximate KL, value loss, explained variance, entropy)::

    python scripts/critic_fit_probe.py --value-coef 0     # no critic fit: the first update's KL is ~0.5
    python scripts/critic_fit_probe.py --value-coef 0.5   # with it: ~0.02
"""

from __future__ import annotations

import argparse

import torch

from swarmgym.moe.ppo import PPOConfig, PPOTrainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--value-coef", type=float, default=0.5, help="warm_start_value_coef, in [0, 100] (default 0.5)")
    p.add_argument("--updates", type=int, default=6, help="PPO updates to run, in [1, 1000] (default 6)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if not 1 <= args.updates <= 1000:
        p.error(f"--updates must be in [1, 1000], got {args.updates}")
    cfg = PPOConfig(
        warm_start="critical_path",
        warm_start_epochs=30,
        warm_start_value_coef=args.value_coef,
        total_steps=300_000,
        seed=args.seed,
        tensorboard=False,
        progress=False,
    )
    trainer = PPOTrainer(cfg)
    rep = trainer.warm_start_report
    print(f"warm start: accuracy {rep.accuracy:.3f}, value states {rep.value_states}, value rmse {rep.value_rmse}")
    for u in range(args.updates):
        buf = trainer.collect()
        scores = [e["score"] for e in trainer._episodes]
        score = float(torch.cat(scores).mean()) if scores else float("nan")
        losses = trainer.learn(buf)
        trainer.update += 1
        print(
            f"update {u}: sampled score before it {score:.3f}, approx KL {losses['losses/approx_kl']:.3f}, "
            f"value loss {losses['losses/v_loss']:.4f}, explained variance {losses['losses/explained_variance']:.2f}, "
            f"entropy {losses['losses/entropy']:.3f}"
        )


if __name__ == "__main__":
    main()
