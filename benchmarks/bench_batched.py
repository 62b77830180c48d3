"""Env-steps per second of the batched kernel against the reference env, side by side in one run.

Measured (autoreset included, random masked actions):

* ``reference``: one SwarmEnv from ``gymnasium.make`` (an action drawn from ``info["action_mask"]``);
* ``SyncVectorEnv``: Gymnasium's ``SyncVectorEnv`` of that env (short: it is slow);
* ``kernel (cpu)``: :class:`BatchedSwarmEngine`, actions drawn uniformly among the valid ones
  in the kernel (:meth:`~swarmgym.batched.BatchedSwarmEngine.random_actions`); ``kernel only``
  excludes the draw; ``kernel + torch draw`` draws in torch instead (a cumulative-sum draw);
* ``SwarmVectorEnv``: the same through ``gymnasium.make_vec`` (numpy in and out, copies).

The machine may be shared: every measurement is repeated ``--repeats`` times, the
implementations interleaved, and the load average (``os.getloadavg``) printed beside each
figure; the table gives the median and the spread. ``--scaling`` adds a table of batch
sizes 64 .. 65,536 with the engine's memory per env.

Usage::

    python benchmarks/bench_batched.py                       # WideSearch-v0 and Mixed-v0, batch 256 and 4096
    python benchmarks/bench_batched.py --scaling --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

import swarmgym  # noqa: F401  (registers the suite)
from swarmgym.batched import BatchedSwarmEngine


@dataclass
class Result:
    impl: str
    env_id: str
    batch: int
    figures: list[float] = field(default_factory=list)  # env-steps/s, one per repeat
    loads: list[float] = field(default_factory=list)  # 1-minute load average before each repeat

    @property
    def median(self) -> float:
        return statistics.median(self.figures)


def engine_kwargs(env_id: str) -> dict:
    return {k: v for k, v in gym.spec(env_id).kwargs.items() if k != "observation_mode"}


def load() -> float:
    return os.getloadavg()[0]


def bench_reference(env_id: str, seconds: float) -> float:
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while True:
        for _ in range(200):
            action = rng.choice(np.flatnonzero(info["action_mask"]))
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                obs, info = env.reset()
        steps += 200
        if time.perf_counter() - t0 >= seconds:
            return steps / (time.perf_counter() - t0)


def _masked_draw_np(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(mask.shape) * mask).argmax(1)


def bench_sync(env_id: str, batch: int, seconds: float, warmup: int = 3) -> float:
    """SyncVectorEnv of the reference env, warmed up (its first steps build observations lazily)."""
    env = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(batch)])
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    for _ in range(warmup):
        obs, reward, terminated, truncated, info = env.step(_masked_draw_np(info["action_mask"], rng))
    steps, t0 = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - t0 < seconds:
        obs, reward, terminated, truncated, info = env.step(_masked_draw_np(info["action_mask"], rng))
        steps += 1
    dt = time.perf_counter() - t0
    env.close()
    return steps * batch / dt


def masked_uniform_draw(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One action per row, uniform among the row's valid ones, in torch (a cumulative sum and one
    random number per row)."""
    cum = mask.cumsum(1, dtype=torch.int16)
    count = cum[:, -1]
    u = torch.rand(mask.shape[0], generator=gen, device=mask.device)
    k = torch.minimum((u * count).to(torch.int16), (count - 1).clamp_(min=0))
    return (cum <= k[:, None]).sum(1).remainder_(mask.shape[1])


def make_engine(env_id: str, batch: int, device: str = "cpu", bank_size: int = 4096) -> BatchedSwarmEngine:
    engine = BatchedSwarmEngine(**engine_kwargs(env_id), num_envs=batch, device=device, bank_size=bank_size)
    engine.reset(seed=0)
    return engine


def bench_engine(engine: BatchedSwarmEngine, seconds: float, draw: str = "kernel", warmup: int = 10) -> tuple[float, float]:
    """``(env-steps/s including the action draw, env-steps/s of the steps alone)``; ``draw`` is
    ``"kernel"`` (:meth:`random_actions`) or ``"torch"`` (:func:`masked_uniform_draw`)."""
    cuda = engine.device.type == "cuda"
    actions = torch.empty(engine.num_envs, dtype=torch.int64, device=engine.device)
    gen = torch.Generator(device=engine.device).manual_seed(0)
    k = 0

    def next_actions() -> torch.Tensor:
        nonlocal k
        k += 1
        if draw == "kernel":
            return engine.random_actions(k, out=actions)
        return masked_uniform_draw(engine.action_mask, gen)

    with torch.inference_mode():
        for _ in range(warmup):
            engine.step(next_actions())
        if cuda:
            torch.cuda.synchronize()
        steps, step_time, t0 = 0, 0.0, time.perf_counter()
        while True:
            for _ in range(10):
                a = next_actions()
                s0 = time.perf_counter()
                engine.step(a)
                step_time += time.perf_counter() - s0
            steps += 10
            if cuda:
                torch.cuda.synchronize()
            if time.perf_counter() - t0 >= seconds:
                break
        dt = time.perf_counter() - t0
    only = steps * engine.num_envs / step_time if not cuda else float("nan")
    return steps * engine.num_envs / dt, only


def bench_vector_env(env_id: str, batch: int, seconds: float, bank_size: int = 4096) -> float:
    env = gym.make_vec(env_id, num_envs=batch, bank_size=bank_size)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - t0 < seconds:
        obs, reward, terminated, truncated, info = env.step(_masked_draw_np(info["action_mask"], rng))
        steps += 1
    return steps * batch / (time.perf_counter() - t0)


def engine_bytes(engine: BatchedSwarmEngine) -> int:
    """Bytes of the engine's per-env tensors (state, instance copies, observation and output buffers)."""
    blocks = [*engine.state.values(), *engine.instance.values(), *engine.output.values()]
    return sum(t.numel() * t.element_size() for t in blocks)


def print_results(results: list[Result]) -> None:
    def find(impl: str, env_id: str, batch: int) -> float | None:
        for r in results:
            if r.impl == impl and r.env_id == env_id and r.batch == batch:
                return r.median
        return None

    print(
        f"| {'implementation':<26} | {'env id':<14} | {'batch':>6} | {'env-steps/s (median)':>20} | {'min .. max':>23} | {'x SyncVectorEnv@256':>19} | load avg (1 min) |"
    )
    print("|" + "|".join(["-" * 28, "-" * 16, "-" * 8, "-" * 22, "-" * 25, "-" * 21, "-" * 18]) + "|")
    for r in results:
        sync = find("SyncVectorEnv", r.env_id, 256)
        x = f"{r.median / sync:.0f}" if sync and r.impl != "SyncVectorEnv" else "-"
        spread = f"{min(r.figures):,.0f} .. {max(r.figures):,.0f}"
        loads = " ".join(f"{x:.1f}" for x in r.loads)
        print(
            f"| {r.impl:<26} | {r.env_id.replace('swarmgym/', ''):<14} | {r.batch:>6} | {r.median:>20,.0f} | {spread:>23} | {x:>19} | {loads} |"
        )


def print_targets(results: list[Result], batch: int = 4096) -> None:
    def find(impl: str, env_id: str, b: int) -> float | None:
        return next((r.median for r in results if (r.impl, r.env_id, r.batch) == (impl, env_id, b)), None)

    ws = find("kernel (cpu)", "swarmgym/WideSearch-v0", batch)
    mixed = find("kernel (cpu)", "swarmgym/Mixed-v0", batch)
    sync = find("SyncVectorEnv", "swarmgym/WideSearch-v0", 256)
    if ws is None:
        return
    print(f"\nTargets (kernel incl. the masked random action draw, batch {batch}; medians of this run):")
    print(f"  WideSearch-v0 >= 1,000,000 env-steps/s: {ws:,.0f} -> {'met' if ws >= 1e6 else 'missed'}")
    if sync:
        print(f"  WideSearch-v0 >= 50x SyncVectorEnv at batch 256: {ws / sync:.0f}x -> {'met' if ws >= 50 * sync else 'missed'}")
    if mixed:
        print(f"  Mixed-v0 within 2x of WideSearch-v0: {ws / mixed:.2f}x -> {'met' if ws <= 2 * mixed else 'missed'}")


def scaling_table(env_id: str, batches: list[int], seconds: float, repeats: int) -> None:
    print(f"\nScaling, {env_id} (kernel incl. the action draw; memory: the engine's per-env tensors)")
    print("| batch | env-steps/s (median) | min .. max | bytes/env | MiB total | load avg |")
    print("|---:|---:|---:|---:|---:|---|")
    for batch in batches:
        engine = make_engine(env_id, batch)
        figures, loads = [], []
        for _ in range(repeats):
            loads.append(load())
            figures.append(bench_engine(engine, seconds)[0])
        size = engine_bytes(engine)
        print(
            f"| {batch:,} | {statistics.median(figures):,.0f} | {min(figures):,.0f} .. {max(figures):,.0f} | "
            f"{size / batch:,.0f} | {size / 2**20:,.1f} | {' '.join(f'{x:.1f}' for x in loads)} |"
        )
        del engine


def compile_times() -> None:
    """First call of each compiled kernel in a fresh process (cache hit or compile)."""
    t0 = time.perf_counter()
    engine = BatchedSwarmEngine("WideSearch", num_envs=4, bank_size=4)
    t1 = time.perf_counter()
    engine.reset(seed=0)
    t2 = time.perf_counter()
    engine.step(engine.random_actions(0))
    t3 = time.perf_counter()
    print(f"# first calls: build {t1 - t0:.1f} s, reset (start kernel) {t2 - t1:.1f} s, random_actions + step {t3 - t2:.1f} s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env-ids", nargs="+", default=["swarmgym/WideSearch-v0", "swarmgym/Mixed-v0"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 4096])
    p.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    p.add_argument("--sync-seconds", type=float, default=1.0, help="time per SyncVectorEnv measurement")
    p.add_argument("--repeats", type=int, default=3, help="repeats of every measurement, interleaved")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the kernel's threads: NUMBA_NUM_THREADS)")
    p.add_argument("--bank-size", type=int, default=4096)
    p.add_argument("--skip-sync", action="store_true")
    p.add_argument("--scaling", action="store_true", help="also the scaling table 64 .. 65,536 (WideSearch-v0)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import numba

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({args.threads} threads), "
        f"numba {numba.__version__} ({numba.get_num_threads()} threads), gymnasium {gym.__version__}"
    )
    compile_times()
    engines = {(env_id, b): make_engine(env_id, b, bank_size=args.bank_size) for env_id in args.env_ids for b in args.batch_sizes}
    results: dict[tuple[str, str, int], Result] = {}

    def record(impl: str, env_id: str, batch: int, value: float, load_before: float) -> None:
        r = results.setdefault((impl, env_id, batch), Result(impl, env_id, batch))
        r.figures.append(value)
        r.loads.append(load_before)

    for _ in range(args.repeats):
        for env_id in args.env_ids:
            record("reference (gym.make)", env_id, 1, *reversed((load(), bench_reference(env_id, min(args.seconds, 1.0)))))
            if not args.skip_sync:
                record("SyncVectorEnv", env_id, 256, *reversed((load(), bench_sync(env_id, 256, args.sync_seconds))))
            for batch in args.batch_sizes:
                engine = engines[(env_id, batch)]
                before = load()
                total, only = bench_engine(engine, args.seconds)
                record("kernel (cpu)", env_id, batch, total, before)
                record("kernel (cpu) only", env_id, batch, only, before)
                before = load()
                record("kernel + torch draw", env_id, batch, bench_engine(engine, args.seconds / 2, draw="torch")[0], before)
                before = load()
                record("SwarmVectorEnv (numpy)", env_id, batch, bench_vector_env(env_id, batch, args.seconds / 2, args.bank_size), before)
    print_results(list(results.values()))
    print_targets(list(results.values()), max(args.batch_sizes))
    if args.scaling:
        scaling_table("swarmgym/WideSearch-v0", [64, 256, 1024, 4096, 16384, 65536], args.seconds, args.repeats)


if __name__ == "__main__":
    main()
