"""The batched kernel on one GPU at a large batch (default 65,536): env-steps per second with the
masked random action draw in a kernel of its own, two kernel launches per step, no host<->device copy.

Each window synchronises the device at its ends (``torch.cuda.synchronize``), so the figure is
the device's throughput. The aim on one GPU is >= 50,000,000 env-steps/s at batch 65,536.
Without a GPU the script says so and exits (use ``bench_batched.py`` on CPU).

Usage::

    python benchmarks/bench_batched_gpu.py                                # WideSearch-v0 and Mixed-v0, 65,536
    python benchmarks/bench_batched_gpu.py --batch-sizes 16384 65536 262144 --seconds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_batched import bench_engine, engine_bytes, make_engine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env-ids", nargs="+", default=["swarmgym/WideSearch-v0", "swarmgym/Mixed-v0"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[65536])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bank-size", type=int, default=4096)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: not measured (run benchmarks/bench_batched.py for the CPU kernel)")
        return 1
    print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    t0 = time.perf_counter()
    warm = make_engine(args.env_ids[0], 64, device="cuda", bank_size=16)
    warm.step(warm.random_actions(0))
    torch.cuda.synchronize()
    print(f"# first launch (CUDA compile, not cached on disk): {time.perf_counter() - t0:.1f} s")
    print("| env id | batch | env-steps/s (median) | min .. max | bytes/env | aim |")
    print("|---|---:|---:|---:|---:|---|")
    for env_id in args.env_ids:
        for batch in args.batch_sizes:
            engine = make_engine(env_id, batch, device="cuda", bank_size=args.bank_size)
            figures = [bench_engine(engine, args.seconds)[0] for _ in range(args.repeats)]
            med = statistics.median(figures)
            aim = "met" if med >= 50e6 else "missed"
            print(
                f"| {env_id.replace('swarmgym/', '')} | {batch:,} | {med:,.0f} | {min(figures):,.0f} .. {max(figures):,.0f} | "
                f"{engine_bytes(engine) / batch:,.0f} | >= 50,000,000: {aim} |"
            )
            del engine
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
