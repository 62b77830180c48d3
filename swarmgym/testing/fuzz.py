"""Deep fuzzing of the suite: many episodes per family through every invariant (not part of CI).

Run it from a shell::

    python -m swarmgym.testing.fuzz --episodes 10000 --batched-examples 1000 --max-seconds 3600

The families are those of the registered suite (each Dict id whose generator is a
family name: WideSearch, SerialReasoning, DependentChains, LayeredDAG, Mixed,
Workflows, and any family a spec file adds). For each family it runs, in chunks of
random (not derandomized) hypothesis examples, until the goals are met or the
family's time is up:

* ``--episodes`` episodes, half of them at the family's registered id (its spec's
  settings) and half at drawn settings: family parameters from
  :func:`generator_params`, dynamics from :func:`swarm_configs` (the orchestration
  mechanics of docs/mechanics.md included), both observation
  modes, the adjacency input and every invalid-action rule. Every episode goes
  through :func:`run_episode` with every invariant, a twin env for determinism and a
  probe of the whole mask at one drawn step (as :func:`check_family` does);
* ``--batched-examples`` examples of :func:`check_batched` (the batched engine held
  to the reference on the same instances and actions, then the same actions through
  ``gymnasium.make_vec``), each :data:`BATCHED_ENVS` envs x :data:`BATCHED_EPISODES`
  episodes (the first, then the engine's own autoresets); half of the examples at the
  id's dynamics, half with drawn dynamics (``drawn_configs=True``).

The parts take turns in chunks, sized from each part's measured rate so that every
part gets its share of the time left (``--max-seconds`` is overrun by one chunk at
most). A broken invariant is recorded (part, invariant, first line, replay snippet) and
the run goes on with the next chunk. Episodes are counted as played: a chunk that
breaks counts the episodes up to the one that broke (batched: none of that chunk's),
not the shrinker's replays. The summary gives, per family, the episodes, the breaks
and the time; ``--out`` also writes it as JSON. The exit status is 1 if anything
broke, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmgym.testing.check import PROFILES, PROBE_STEPS, as_factory, drawn_policy
from swarmgym.testing.invariants import InvariantViolation, run_episode
from swarmgym.testing.strategies import generator_params, seeds, swarm_configs

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

#: Examples of a part's first chunk (it measures the part's rate, which sizes the later chunks to the time left).
FIRST_CHUNK = 8
#: Envs per batched example.
BATCHED_ENVS = 4
#: Episodes per env of a batched example (the first, then the engine's own autoresets).
BATCHED_EPISODES = 4


def family_ids() -> dict[str, str]:
    """Each family of the registered suite and its Dict id, in the suite's order."""
    import gymnasium as gym

    from swarmgym.evaluation import suite_ids
    from swarmgym.families import FAMILIES

    out: dict[str, str] = {}
    for env_id in suite_ids():
        generator = gym.spec(env_id).kwargs.get("generator")
        if isinstance(generator, str) and generator in FAMILIES:
            out.setdefault(generator, env_id)
    return out


def _chunk_settings(examples: int) -> settings:
    """The deep profile, ``examples`` random examples, no example database (a found bug is not replayed by every later chunk)."""
    return settings(PROFILES["deep"], max_examples=examples, database=None, derandomize=False)


#: What an episode is played on: ``(factory, replay target, invalid-action rule)``.
_Setting = tuple[Callable[[], Any], str, str]


def _episodes_chunk(setting: st.SearchStrategy[_Setting], examples: int, max_steps: int) -> tuple[int, InvariantViolation | None]:
    """Up to ``examples`` episodes, each on a drawn setting; returns (episodes played, the shrunk break or None).

    Episodes played are those that ran to their end (not one hypothesis cut short for
    running out of data); with a break, those up to and including the first that broke.
    """
    played, first_break = [0], [0]

    @_chunk_settings(examples)
    @given(made=setting, seed=seeds(), data=st.data())
    def episode(made: _Setting, seed: int, data) -> None:
        make, target, rule = made
        first, twin = make(), make()
        try:
            policy = drawn_policy(data, max_steps, masked_out=rule != "raise", layout=first.unwrapped.layout)
            probe_step = data.draw(st.integers(0, PROBE_STEPS), label="probe_the_whole_mask_at_step")
            run_episode(first, seed, policy, twin=twin, target=target, probe_step=probe_step)
            played[0] += 1
        except InvariantViolation:
            first_break[0] = first_break[0] or played[0] + 1
            raise
        finally:
            first.close()
            twin.close()

    try:
        episode()
    except InvariantViolation as v:
        return first_break[0], v
    return played[0], None


def _suite_setting(env_id: str) -> st.SearchStrategy[_Setting]:
    """The registered id as it is (its own invalid-action rule)."""
    import gymnasium as gym

    factory, target = as_factory(env_id)
    return st.just((factory, target, gym.spec(env_id).kwargs.get("invalid_action", "waste_tick")))


@st.composite
def _drawn_setting(draw, family: str) -> _Setting:
    """A :class:`~swarmgym.env.SwarmEnv` of ``family`` at drawn parameters, dynamics, observation mode, adjacency and rule."""
    from swarmgym.env import INVALID_ACTION_RULES, SwarmEnv

    kwargs = draw(generator_params(family, _DRAWN_N_MAX, limits=_SMALL), label="generator_kwargs")
    config = draw(swarm_configs(mechanics=True), label="config")
    mode = draw(st.sampled_from(["dict", "flat"]), label="observation_mode")
    adjacency = draw(st.booleans(), label="with_adjacency")
    rule = draw(st.sampled_from(INVALID_ACTION_RULES), label="invalid_action")

    def make():
        return SwarmEnv(
            family, kwargs, config=config, n_max=_DRAWN_N_MAX, observation_mode=mode, with_adjacency=adjacency, invalid_action=rule
        )

    target = (
        f"<factory>SwarmEnv({family!r}, {kwargs!r}, config={config!r}, n_max={_DRAWN_N_MAX}, "
        f"observation_mode={mode!r}, with_adjacency={adjacency}, invalid_action={rule!r})"
    )
    return make, target, rule


def _batched_chunk(env_id: str, examples: int, max_steps: int, drawn_configs: bool) -> tuple[int, InvariantViolation | None]:
    """``examples`` examples of :func:`check_batched`; returns (episodes compared, the shrunk break or None)."""
    from swarmgym.testing import check_batched

    try:
        check_batched(
            env_id,
            _chunk_settings(examples),
            max_steps=max_steps,
            num_envs=BATCHED_ENVS,
            episodes=BATCHED_EPISODES,
            drawn_configs=drawn_configs,
        )
    except InvariantViolation as v:
        return 0, v
    return examples * BATCHED_ENVS * BATCHED_EPISODES, None


def fuzz_family(
    family: str,
    episodes: int,
    max_seconds: float,
    *,
    chunk: int = 250,
    max_steps: int = 400,
    batched_examples: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fuzz one family until ``episodes`` episodes (half at the suite id, half at drawn settings)
    and ``batched_examples`` batched examples (half at the id's dynamics, half drawn) are done, or ``max_seconds``.

    :returns: ``{"family", "env_id", "episodes", "suite_episodes", "drawn_episodes", "batched_examples",
        "batched_episodes", "breaks", "seconds", "complete"}``.
    """
    env_id = family_ids()[family]
    start = time.monotonic()
    counts = {"suite": 0, "drawn": 0, "batched id config": 0, "batched drawn config": 0}  # episodes / batched examples run
    played = dict(counts)  # episodes played (batched: compared)
    breaks: list[dict[str, str]] = []
    half = batched_examples // 2
    goal = {
        "suite": episodes - episodes // 2,
        "drawn": episodes // 2,
        "batched id config": batched_examples - half,
        "batched drawn config": half,
    }
    batched_chunk = max(1, chunk // (BATCHED_ENVS * BATCHED_EPISODES))
    parts: dict[str, tuple[int, Callable[[int], tuple[int, InvariantViolation | None]]]] = {
        "suite": (chunk, lambda n: _episodes_chunk(_suite_setting(env_id), n, max_steps)),
        "drawn": (chunk, lambda n: _episodes_chunk(_drawn_setting(family), n, max_steps)),
        "batched id config": (batched_chunk, lambda n: _batched_chunk(env_id, n, max_steps, drawn_configs=False)),
        "batched drawn config": (batched_chunk, lambda n: _batched_chunk(env_id, n, max_steps, drawn_configs=True)),
    }
    rate: dict[str, float] = {}  # examples per second of each part, as measured
    while any(counts[k] < goal[k] for k in goal) and time.monotonic() - start < max_seconds:
        for name, (size, run) in parts.items():
            left = max_seconds - (time.monotonic() - start)
            if counts[name] >= goal[name] or left <= 0:
                continue
            # a first small chunk measures the part's rate; later ones share the time left between the parts still running
            running = sum(counts[k] < goal[k] for k in goal)
            n = min(size, goal[name] - counts[name], FIRST_CHUNK if name not in rate else max(1, int(rate[name] * left / running)))
            chunk_start = time.monotonic()
            done, violation = run(n)
            rate[name] = n / max(time.monotonic() - chunk_start, 1e-9)
            counts[name] += n
            played[name] += done
            if violation is not None:
                breaks.append(
                    {"part": name, "invariant": violation.invariant, "detail": violation.detail, "replay": violation.replay_code()}
                )
                log(f"  {family} [{name}] BROKE {violation.invariant}: {violation.detail}")
    seconds = time.monotonic() - start
    batched = counts["batched id config"] + counts["batched drawn config"]
    return {
        "family": family,
        "env_id": env_id,
        "episodes": played["suite"] + played["drawn"],
        "suite_episodes": played["suite"],
        "drawn_episodes": played["drawn"],
        "batched_examples": batched,
        "batched_episodes": played["batched id config"] + played["batched drawn config"],
        "breaks": breaks,
        "seconds": round(seconds, 1),
        "complete": all(counts[k] >= goal[k] for k in goal),
    }


def main(argv: list[str] | None = None) -> int:
    import swarmgym  # noqa: F401  (registers the suite)

    families = list(family_ids())
    parser = argparse.ArgumentParser(prog="python -m swarmgym.testing.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000, help="episodes per family (half at the suite id, half at drawn settings)")
    parser.add_argument("--families", nargs="+", default=families, choices=families, help="families to fuzz (default all)")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="time limit per family, in seconds")
    parser.add_argument("--chunk", type=int, default=250, help="hypothesis examples per run (a break ends only its chunk)")
    parser.add_argument("--max-steps", type=int, default=400, help="a drawn episode answers after at most this many steps")
    parser.add_argument(
        "--batched-examples",
        type=int,
        default=0,
        help=f"check_batched examples per family ({BATCHED_ENVS} envs x {BATCHED_EPISODES} episodes each; half with drawn dynamics)",
    )
    parser.add_argument("--out", help="write the summary as JSON here")
    args = parser.parse_args(argv)
    for name in ("episodes", "chunk", "max_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.max_seconds <= 0:
        parser.error(f"--max-seconds must be > 0, got {args.max_seconds}")
    if args.batched_examples < 0:
        parser.error(f"--batched-examples must be >= 0, got {args.batched_examples}")

    results = []
    for family in args.families:
        print(
            f"{family}: fuzzing up to {args.episodes} episodes and {args.batched_examples} batched examples ({args.max_seconds:.0f} s at most)",
            flush=True,
        )
        result = fuzz_family(
            family, args.episodes, args.max_seconds, chunk=args.chunk, max_steps=args.max_steps, batched_examples=args.batched_examples,
            log=lambda line: print(line, flush=True),
        )  # fmt: skip
        results.append(result)
        print(
            f"{family}: {result['episodes']} episodes ({result['suite_episodes']} at the suite id, {result['drawn_episodes']} drawn), "
            f"{result['batched_episodes']} batched episodes ({result['batched_examples']} examples), "
            f"{len(result['breaks'])} breaks, {result['seconds']} s" + ("" if result["complete"] else "  (time limit reached)"),
            flush=True,
        )
    total = sum(r["episodes"] for r in results), sum(r["batched_episodes"] for r in results), sum(len(r["breaks"]) for r in results)
    print(
        f"all: {total[0]} episodes, {total[1]} batched episodes, {total[2]} breaks, {sum(r['seconds'] for r in results):.0f} s", flush=True
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if any(r["breaks"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
