"""Training throughput of the MoE orchestrator's PPO trainer: env-steps/s on CUDA (or CPU).

Runs a few PPO updates of the MoE model and of its dense control on the batched
engine, on the device, and prints env-steps/s of the whole update (collection +
learning) and of collection alone. On a machine without CUDA it runs on CPU (with a
smaller default batch) and says so.

    python benchmarks/bench_train_gpu.py                 # CUDA if available, else CPU
    python benchmarks/bench_train_gpu.py --device cpu --num-envs 64
    python benchmarks/bench_train_gpu.py --num-envs 4096 --updates 5 --d-model 64

No timing is asserted anywhere; the numbers are printed (and written as JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from swarmgym.moe.ppo import PPOConfig, PPOTrainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(ffn: str, args: argparse.Namespace, device: torch.device) -> dict:
    cfg = PPOConfig(
        env_id=args.env_id,
        engine=args.engine,
        num_envs=args.num_envs,
        num_steps=args.num_steps,
        total_steps=args.num_envs * args.num_steps * (args.updates + 1),
        num_minibatches=args.minibatches,
        update_epochs=args.epochs,
        device=str(device),
        model=dict(ffn=ffn, d_model=args.d_model, n_heads=4, expert_hidden=args.d_model, n_layers=args.layers),
        progress=False,
        tensorboard=False,
    )
    trainer = PPOTrainer(cfg)
    trainer.train(max_updates=1)  # warm-up (allocations, kernels)
    _sync(device)
    t0 = time.perf_counter()
    collect_s = 0.0
    for _ in range(args.updates):
        c0 = time.perf_counter()
        buf = trainer.collect()
        _sync(device)
        collect_s += time.perf_counter() - c0
        trainer.learn(buf)
        trainer.update += 1
    _sync(device)
    total_s = time.perf_counter() - t0
    steps = args.updates * cfg.batch_size
    return {
        "ffn": ffn,
        "engine": type(trainer.engine).__name__,
        "env_steps": steps,
        "train_env_steps_per_s": steps / total_s,
        "collect_env_steps_per_s": steps / collect_s,
        "parameters": trainer.model.parameter_counts(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--env-id", default="swarmgym/Mixed-v0")
    p.add_argument("--engine", default="auto", choices=["auto", "batched", "gym"])
    p.add_argument("--num-envs", type=int, default=None, help="default 2048 on CUDA, 64 on CPU")
    p.add_argument("--num-steps", type=int, default=32)
    p.add_argument("--updates", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--minibatches", type=int, default=4)
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's choice)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA was requested but is not available", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.num_envs is None:
        args.num_envs = 2048 if device.type == "cuda" else 64
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    if device.type != "cuda":
        print("note: no CUDA device here; measuring on CPU", file=sys.stderr)
    print(f"device: {name}; {args.env_id}; {args.num_envs} envs x {args.num_steps} steps per rollout; {args.updates} timed updates")
    results = []
    for ffn in ("moe", "dense"):
        r = bench(ffn, args, device)
        r["device"] = name
        results.append(r)
        print(
            f"  {ffn:<5} ({r['parameters']['active']:,} active params, {r['engine']}): "
            f"train {r['train_env_steps_per_s']:,.0f} env-steps/s, collection alone {r['collect_env_steps_per_s']:,.0f} env-steps/s"
        )
    print(f"  MoE / dense training throughput: {results[0]['train_env_steps_per_s'] / results[1]['train_env_steps_per_s']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
