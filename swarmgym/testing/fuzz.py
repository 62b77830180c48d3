"""Deep fuzzing of the suite: many episodes per family through every invariant (not part of CI).

Run it from a shell::

    python -m swarmgym.testing.fuzz --episodes 10000 --max-seconds 3600

For each family it runs, in chunks of random (not derandomized) hypothesis examples,
until ``--episodes`` episodes have been played or the family's time is up:

* the family's registered id at its spec's settings, through :func:`check_family`
  with the ``deep`` profile (every invariant, a twin env for determinism, a probe of
  the whole mask at one drawn step);
* drawn settings where the strategies allow them: family parameters from
  :func:`generator_params`, dynamics from :func:`swarm_configs` (the orchestration
  mechanics of docs/mechanics.md included), both observation
  modes, the adjacency input and every invalid-action rule, each episode through
  :func:`run_episode` with a twin;
* with ``--batched-examples N``, N examples of :func:`check_batched` (the batched
  engine held to the reference on the same instances and actions).

A broken invariant is recorded (invariant, first line, replay snippet) and the run
goes on with the next chunk. The summary gives, per family, the episodes played,
the breaks and the time; ``--out`` also writes it as JSON. The exit status is 1 if
anything broke, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmgym.testing.check import PROFILES, check_family, drawn_policy
from swarmgym.testing.invariants import InvariantViolation, run_episode
from swarmgym.testing.strategies import generator_params, seeds, swarm_configs

#: The families fuzzed, with the id each is registered under.
FAMILY_IDS: dict[str, str] = {
    "WideSearch": "swarmgym/WideSearch-v0",
    "SerialReasoning": "swarmgym/SerialReasoning-v0",
    "DependentChains": "swarmgym/DependentChains-v0",
    "LayeredDAG": "swarmgym/LayeredDAG-v0",
    "Mixed": "swarmgym/Mixed-v0",
}

# small work keeps drawn episodes short; every other parameter range is the declared one
_SMALL = {
    "budget_factor": (0.3, 3.0),
    "lookup_work": (1, 6),
    "step_work": (1, 6),
    "work": (1, 6),
    "plan_work": (1, 6),
    "merge_work": (1, 6),
}
_DRAWN_N_MAX = 16


def _chunk_settings(examples: int) -> settings:
    """The deep profile, ``examples`` random examples, no example database (a found bug is not replayed by every later chunk)."""
    return settings(PROFILES["deep"], max_examples=examples, database=None, derandomize=False)


class _Counter:
    """Counts envs made by a factory: each checked episode makes two (the env and its twin)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make, self.made = make, 0

    def __call__(self):
        self.made += 1
        return self.make()


def _suite_chunk(env_id: str, examples: int, max_steps: int) -> int:
    import gymnasium as gym

    counter = _Counter(lambda: gym.make(env_id))
    counter.__qualname__ = f"gym.make({env_id!r})"
    try:
        check_family(counter, _chunk_settings(examples), max_steps=max_steps)
    finally:
        played = counter.made // 2
    return played


def _drawn_chunk(family: str, examples: int, max_steps: int) -> int:
    from swarmgym.env import INVALID_ACTION_RULES, SwarmEnv

    played = [0]

    @_chunk_settings(examples)
    @given(
        kwargs=generator_params(family, _DRAWN_N_MAX, limits=_SMALL),
        config=swarm_configs(mechanics=True),
        mode=st.sampled_from(["dict", "flat"]),
        adjacency=st.booleans(),
        rule=st.sampled_from(INVALID_ACTION_RULES),
        seed=seeds(),
        data=st.data(),
    )
    def episode(kwargs, config, mode, adjacency, rule, seed, data) -> None:
        def make():
            return SwarmEnv(
                family, kwargs, config=config, n_max=_DRAWN_N_MAX, observation_mode=mode, with_adjacency=adjacency, invalid_action=rule
            )

        target = (
            f"<factory>SwarmEnv({family!r}, {kwargs!r}, config={config!r}, n_max={_DRAWN_N_MAX}, "
            f"observation_mode={mode!r}, with_adjacency={adjacency}, invalid_action={rule!r})"
        )
        first = make()
        policy = drawn_policy(data, max_steps, masked_out=rule != "raise", layout=first.layout)
        played[0] += 1
        run_episode(first, seed, policy, twin=make(), target=target)

    episode()
    return played[0]


def _batched_chunk(env_id: str, examples: int, max_steps: int) -> int:
    from swarmgym.testing import check_batched

    check_batched(env_id, _chunk_settings(examples), max_steps=max_steps, num_envs=4)
    return examples * 4


def fuzz_family(
    family: str, episodes: int, max_seconds: float, *, chunk: int = 250, max_steps: int = 400, batched_examples: int = 0, log=print
) -> dict[str, Any]:
    """Fuzz one family until ``episodes`` episodes (half at the suite id, half at drawn settings) or ``max_seconds``.

    :returns: ``{"family", "episodes", "suite_episodes", "drawn_episodes", "batched_episodes", "breaks", "seconds", "complete"}``.
    """
    env_id = FAMILY_IDS[family]
    start = time.monotonic()
    counts = {"suite": 0, "drawn": 0, "batched": 0}
    breaks: list[dict[str, str]] = []
    goal = {"suite": episodes - episodes // 2, "drawn": episodes // 2}
    parts: list[tuple[str, Callable[[int], int]]] = [
        ("suite", lambda n: _suite_chunk(env_id, n, max_steps)),
        ("drawn", lambda n: _drawn_chunk(family, n, max_steps)),
    ]
    while any(counts[k] < goal[k] for k in goal) and time.monotonic() - start < max_seconds:
        for name, run in parts:
            if counts[name] >= goal[name] or time.monotonic() - start >= max_seconds:
                continue
            n = min(chunk, goal[name] - counts[name])
            try:
                counts[name] += run(n)
            except InvariantViolation as v:
                counts[name] += n  # the chunk's examples ran up to the failure (shrinking replays, not new episodes)
                breaks.append({"part": name, "invariant": v.invariant, "detail": v.detail, "replay": v.replay_code()})
                log(f"  {family} [{name}] BROKE {v.invariant}: {v.detail}")
    if batched_examples and time.monotonic() - start < max_seconds:
        try:
            counts["batched"] += _batched_chunk(env_id, batched_examples, max_steps)
        except InvariantViolation as v:
            breaks.append({"part": "batched", "invariant": v.invariant, "detail": v.detail, "replay": v.replay_code()})
            log(f"  {family} [batched] BROKE {v.invariant}: {v.detail}")
    seconds = time.monotonic() - start
    total = counts["suite"] + counts["drawn"]
    return {
        "family": family,
        "episodes": total,
        "suite_episodes": counts["suite"],
        "drawn_episodes": counts["drawn"],
        "batched_episodes": counts["batched"],
        "breaks": breaks,
        "seconds": round(seconds, 1),
        "complete": total >= episodes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarmgym.testing.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000, help="episodes per family (half at the suite id, half at drawn settings)")
    parser.add_argument("--families", nargs="+", default=list(FAMILY_IDS), choices=list(FAMILY_IDS), help="families to fuzz")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="time limit per family, in seconds")
    parser.add_argument("--chunk", type=int, default=250, help="hypothesis examples per run (a break ends only its chunk)")
    parser.add_argument("--max-steps", type=int, default=400, help="a drawn episode answers after at most this many steps")
    parser.add_argument("--batched-examples", type=int, default=0, help="check_batched examples per family (4 envs each)")
    parser.add_argument("--out", help="write the summary as JSON here")
    args = parser.parse_args(argv)
    for name in ("episodes", "chunk", "max_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.max_seconds <= 0 or args.batched_examples < 0:
        parser.error("--max-seconds must be > 0 and --batched-examples >= 0")
    import swarmgym  # noqa: F401  (registers the suite)

    results = []
    for family in args.families:
        print(f"{family}: fuzzing up to {args.episodes} episodes ({args.max_seconds:.0f} s at most)", flush=True)
        result = fuzz_family(
            family, args.episodes, args.max_seconds, chunk=args.chunk, max_steps=args.max_steps, batched_examples=args.batched_examples,
            log=lambda line: print(line, flush=True),
        )  # fmt: skip
        results.append(result)
        print(
            f"{family}: {result['episodes']} episodes ({result['suite_episodes']} at the suite id, {result['drawn_episodes']} drawn, "
            f"{result['batched_episodes']} batched), {len(result['breaks'])} breaks, {result['seconds']} s"
            + ("" if result["complete"] else "  (time limit reached)"),
            flush=True,
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if any(r["breaks"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
