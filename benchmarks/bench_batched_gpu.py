"""The batched engine on CUDA at a large batch (default 65,536), printed as the same table as
``bench_batched.py``; without a GPU it runs on CPU at a smaller batch (default 4,096) so the
script always works.

Timings synchronise the device around each window (``torch.cuda.synchronize``); the step itself
never waits on the device (``sync_free`` resets, no host<->device copies), so the figure is the
device's throughput including the in-batch action draw.

Usage::

    python benchmarks/bench_batched_gpu.py                         # WideSearch-v0 and Mixed-v0
    python benchmarks/bench_batched_gpu.py --batch-sizes 16384 65536 131072 --seconds 5
    python benchmarks/bench_batched_gpu.py --device cpu --batch-sizes 4096
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_batched import bench_cartpole, bench_engine, bench_reference, print_table  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env-ids", nargs="+", default=["swarmgym/WideSearch-v0", "swarmgym/Mixed-v0"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default 65536 on CUDA, 4096 on CPU")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--bank-size", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU runs)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = args.batch_sizes or ([65536] if args.device.startswith("cuda") else [4096])
    if args.device.startswith("cuda"):
        print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    else:
        print(f"# no CUDA device: running on CPU ({os.cpu_count()} CPUs, {args.threads} threads), torch {torch.__version__}")
    rows = []
    for env_id in args.env_ids:
        rows.append(bench_reference(env_id, min(args.seconds, 1.0)))
        for batch in batches:
            total, only = bench_engine(env_id, batch, args.seconds, device=args.device, bank_size=args.bank_size)
            rows.append(total)
            if args.device == "cpu":
                rows.append(only)
    for batch in batches:
        rows.append(bench_cartpole(batch, min(args.seconds, 1.0)))
    print_table(rows)
    engine_rows = [r for r in rows if r.impl.startswith("engine") and "only" not in r.impl]
    for r in engine_rows:
        goal = 50e6 if args.device.startswith("cuda") else 1e6
        print(f"{r.env_id} batch {r.batch} on {args.device}: {r.steps_per_s:,.0f} env-steps/s (aim {goal:,.0f})")


if __name__ == "__main__":
    main()
