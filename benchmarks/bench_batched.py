"""Env-steps per second of the batched engine against the reference env, side by side in one run.

Measured (autoreset included, random masked actions drawn in batch):

* ``reference``: one SwarmEnv from ``gymnasium.make`` (an action drawn from ``info["action_mask"]``);
* ``SyncVectorEnv``: Gymnasium's ``SyncVectorEnv`` of that env at each batch size (short: it is slow);
* ``engine``: :class:`BatchedSwarmEngine` in torch (actions: a uniform draw among the valid ones,
  :func:`masked_uniform_draw`), at each batch size; ``engine only`` excludes the action draw;
* ``SwarmVectorEnv``: the same through ``gymnasium.make_vec`` (numpy in and out, copies);
* ``CartPoleVectorEnv``: Gymnasium's own vectorised CartPole, as a yardstick.

It prints a table of absolute figures and ratios, and the bytes of observation written per
env-step (the whole observation; for the engine also what a step actually rewrites: the dynamic
node features, the globals and the mask), so the figure can be held against memory bandwidth.

Usage::

    python benchmarks/bench_batched.py                      # WideSearch-v0 and Mixed-v0, batch 64/1024/4096
    python benchmarks/bench_batched.py --env-ids swarmgym/WideSearch-v0 --batch-sizes 4096 --seconds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

import swarmgym  # noqa: F401  (registers the suite)
from swarmgym.batched import BatchedSwarmEngine
from swarmgym.batched.engine import DYNAMIC_COLUMNS


@dataclass
class Row:
    impl: str
    env_id: str
    batch: int
    steps_per_s: float
    obs_bytes: int  # observation bytes per env-step (whole observation)
    written_bytes: int | None = None  # what one step rewrites per env (engine only)
    note: str = ""


def engine_kwargs(env_id: str) -> dict:
    return {k: v for k, v in gym.spec(env_id).kwargs.items() if k != "observation_mode"}


def obs_bytes_of(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Dict):
        return sum(obs_bytes_of(s) for s in space.values())
    return int(np.prod(space.shape)) * np.dtype(space.dtype).itemsize


def bench_reference(env_id: str, seconds: float) -> Row:
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
            break
    dt = time.perf_counter() - t0
    return Row("reference (gym.make)", env_id, 1, steps / dt, obs_bytes_of(env.observation_space))


def _masked_draw_np(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(mask.shape) * mask).argmax(1)


def bench_sync(env_id: str, batch: int, seconds: float, min_steps: int = 3) -> Row:
    env = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(batch)])
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - t0 < seconds:
        obs, reward, terminated, truncated, info = env.step(_masked_draw_np(info["action_mask"], rng))
        steps += 1
    dt = time.perf_counter() - t0
    env.close()
    return Row("SyncVectorEnv", env_id, batch, steps * batch / dt, obs_bytes_of(env.single_observation_space))


def engine_written_bytes(engine: BatchedSwarmEngine) -> int:
    """Bytes one engine step rewrites per env: dynamic node features, globals, the mask."""
    return len(DYNAMIC_COLUMNS) * engine.n_max * 4 + 10 * 4 + engine.n_actions


def masked_uniform_draw(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One action per row, uniform among the row's valid ones (rows with none get action 0).

    The ``k``-th valid action (``k`` uniform below the row's count) is the number of positions whose
    running count of valid actions is at most ``k``: one random number per row and a cumulative
    sum, not a random key per action and an arg-max (``(rand * mask).max(1)``, three times the cost
    at batch 4096 on CPU).
    """
    cum = mask.cumsum(1, dtype=torch.int16)
    count = cum[:, -1]
    u = torch.rand(mask.shape[0], generator=gen, device=mask.device)
    k = torch.minimum((u * count).to(torch.int16), (count - 1).clamp_(min=0))
    return (cum <= k[:, None]).sum(1).remainder_(mask.shape[1])  # a row with none: A -> 0


def bench_engine(env_id: str, batch: int, seconds: float, device: str = "cpu", bank_size: int = 4096, warmup: int = 20) -> tuple[Row, Row]:
    engine = BatchedSwarmEngine(**engine_kwargs(env_id), num_envs=batch, device=device, bank_size=bank_size)
    engine.reset(seed=0)
    gen = torch.Generator(device=engine.device).manual_seed(0)
    cuda = engine.device.type == "cuda"

    def draw() -> torch.Tensor:
        return masked_uniform_draw(engine.action_mask, gen)

    with torch.inference_mode():
        for _ in range(warmup):
            engine.step(draw())
        if cuda:
            torch.cuda.synchronize()
        steps, step_time, t0 = 0, 0.0, time.perf_counter()
        while True:
            for _ in range(10):
                a = draw()
                if not cuda:
                    s0 = time.perf_counter()
                engine.step(a)
                if not cuda:
                    step_time += time.perf_counter() - s0
            steps += 10
            if cuda:
                torch.cuda.synchronize()
            if time.perf_counter() - t0 >= seconds:
                break
        dt = time.perf_counter() - t0
    full = engine.n_max * 20 * 4 + 10 * 4
    tag = f"engine ({engine.device.type})"
    total = Row(tag, env_id, batch, steps * batch / dt, full, engine_written_bytes(engine), "incl. action draw")
    only = Row(
        tag + " only",
        env_id,
        batch,
        steps * batch / step_time if step_time else float("nan"),
        full,
        engine_written_bytes(engine),
        "excl. action draw",
    )
    return total, only


def bench_vector_env(env_id: str, batch: int, seconds: float, bank_size: int = 4096) -> Row:
    env = gym.make_vec(env_id, num_envs=batch, bank_size=bank_size)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - t0 < seconds:
        obs, reward, terminated, truncated, info = env.step(_masked_draw_np(info["action_mask"], rng))
        steps += 1
    dt = time.perf_counter() - t0
    return Row("SwarmVectorEnv (numpy)", env_id, batch, steps * batch / dt, obs_bytes_of(env.single_observation_space))


def bench_cartpole(batch: int, seconds: float) -> Row:
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    env = CartPoleVectorEnv(num_envs=batch)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, t0 = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - t0 < seconds:
        env.step(rng.integers(0, 2, size=batch))
        steps += 1
    dt = time.perf_counter() - t0
    return Row("CartPoleVectorEnv", "CartPole-v1", batch, steps * batch / dt, 4 * 4)


def print_table(rows: list[Row]) -> None:
    ref = {r.env_id: r.steps_per_s for r in rows if r.impl.startswith("reference")}
    sync = {(r.env_id, r.batch): r.steps_per_s for r in rows if r.impl == "SyncVectorEnv"}
    header = f"| {'implementation':<24} | {'env id':<24} | {'batch':>6} | {'env-steps/s':>13} | {'x reference':>11} | {'x SyncVectorEnv':>15} | {'obs B/env-step':>14} | {'written B/env-step':>18} | {'obs GB/s':>8} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        x_ref = f"{r.steps_per_s / ref[r.env_id]:.1f}" if r.env_id in ref else "-"
        s = sync.get((r.env_id, r.batch))
        x_sync = f"{r.steps_per_s / s:.1f}" if s and r.impl != "SyncVectorEnv" else "-"
        written = r.written_bytes if r.written_bytes is not None else r.obs_bytes
        gbs = r.steps_per_s * written / 1e9
        print(
            f"| {r.impl:<24} | {r.env_id.replace('swarmgym/', ''):<24} | {r.batch:>6} | {r.steps_per_s:>13,.0f} | {x_ref:>11} | {x_sync:>15} | "
            f"{r.obs_bytes:>14,} | {(r.written_bytes if r.written_bytes is not None else r.obs_bytes):>18,} | {gbs:>8.2f} |"
        )


def pass_cost_us(batch: int, n_max: int = 32, reps: int = 200) -> float:
    """Microseconds of one elementwise pass over a ``[batch, n_max]`` int32 tensor on this
    machine now (``torch.add(x, y, out=z)``): the unit a step of the engine is made of."""
    x = torch.ones(batch, n_max, dtype=torch.int32)
    y, z = x.clone(), torch.empty_like(x)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.add(x, y, out=z)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e6


def print_targets(rows: list[Row], batch: int = 4096) -> None:
    get = {(r.impl, r.env_id, r.batch): r.steps_per_s for r in rows}
    ws = get.get(("engine (cpu)", "swarmgym/WideSearch-v0", batch))
    mixed = get.get(("engine (cpu)", "swarmgym/Mixed-v0", batch))
    sync = get.get(("SyncVectorEnv", "swarmgym/WideSearch-v0", batch))
    if ws is None:
        return
    print(f"\nTargets at batch {batch} (engine incl. action draw):")
    print(f"  WideSearch-v0 >= 1,000,000 env-steps/s: {ws:,.0f} -> {'met' if ws >= 1e6 else 'missed'}")
    if sync:
        print(f"  WideSearch-v0 >= 50x SyncVectorEnv: {ws / sync:.0f}x -> {'met' if ws >= 50 * sync else 'missed'}")
    if mixed:
        print(f"  Mixed-v0 within 2x of WideSearch-v0: {ws / mixed:.2f}x slower -> {'met' if ws <= 2 * mixed else 'missed'}")
    only = get.get(("engine (cpu) only", "swarmgym/WideSearch-v0", batch))
    if only:
        unit = pass_cost_us(batch)
        step_us = batch / only * 1e6
        print(
            f"\nYardstick: one int32 elementwise pass over [{batch}, 32] takes {unit:.1f} us here now; an engine step "
            f"(WideSearch-v0, {step_us / 1e3:.2f} ms) costs as much as {step_us / unit:.0f} such passes. "
            f"1,000,000 env-steps/s at batch {batch} allows {batch / 1e6 * 1e6 / unit:.0f}."
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env-ids", nargs="+", default=["swarmgym/WideSearch-v0", "swarmgym/Mixed-v0"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 1024, 4096])
    p.add_argument("--seconds", type=float, default=2.0, help="time per engine / CartPole measurement")
    p.add_argument("--sync-seconds", type=float, default=1.0, help="time per SyncVectorEnv measurement (at least 3 steps)")
    p.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1: on a shared 2-core machine more threads spin and lose)"
    )
    p.add_argument("--bank-size", type=int, default=4096)
    p.add_argument("--skip-sync", action="store_true", help="skip SyncVectorEnv (slow to build at large batches)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({args.threads} threads), gymnasium {gym.__version__}"
    )
    rows: list[Row] = []
    for env_id in args.env_ids:
        rows.append(bench_reference(env_id, args.seconds))
        for batch in args.batch_sizes:
            if not args.skip_sync:
                rows.append(bench_sync(env_id, batch, args.sync_seconds))
            rows.extend(bench_engine(env_id, batch, args.seconds, bank_size=args.bank_size))
            rows.append(bench_vector_env(env_id, batch, args.seconds / 2, bank_size=args.bank_size))
    for batch in args.batch_sizes:
        rows.append(bench_cartpole(batch, args.seconds / 2))
    print_table(rows)
    print_targets(rows, max(args.batch_sizes))


if __name__ == "__main__":
    main()
