"""The text round trip: an array orchestrator playing through text meets the same episodes as on arrays.

For each episode (seed) of an id, two copies of the env are reset with the same seed. One is
played by the orchestrator on the array observation; the other through
:class:`~swarmgym.llm.text_env.SwarmTextEnv` by the same orchestrator wrapped in
:class:`~swarmgym.llm.text_policy.TextOrchestrator`, which sees only the text.

* One call per message (``whole_turn=False``): played in lockstep; at every step the
  observation and mask rebuilt from the text must equal the array env's, value for value,
  and the two actions must be equal.
* A whole turn per message (``whole_turn=True``): the action sequences of the episode
  (``info["actions"]`` of the text env) must be equal.

Either way the episode metrics must be equal. Command line::

    python -m swarmgym.llm.roundtrip --ids suite -n 200 -o critical_path

prints one line per id and exits with status 1 at the first difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np

from swarmgym.evaluation import dict_observation, resolve_id
from swarmgym.llm.text_env import SwarmTextEnv
from swarmgym.llm.text_policy import TextOrchestrator, parse_state
from swarmgym.orchestrators import load_orchestrator


class RoundTripMismatch(AssertionError):
    """The text interface and the array env differ (the message says where)."""


def _equal_metrics(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    diff = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            same = np.array_equal(np.asarray(x), np.asarray(y))
        else:
            same = x == y
        if not same:
            diff.append(f"{key}: array {x!r} vs text {y!r}")
    return diff


def play_array(env: gym.Env, policy, seed: int) -> tuple[list[int], dict[str, Any]]:
    """Play one episode on the array env; ``(actions, metrics)``."""
    obs, info = env.reset(seed=seed)
    actions = []
    while True:
        o = dict_observation(env, obs)
        a = int(policy.act({k: v[None] for k, v in o.items()}, info["action_mask"][None])[0])
        actions.append(a)
        obs, _, terminated, truncated, info = env.step(a)
        if terminated or truncated:
            return actions, info.get("metrics", env.unwrapped.sim.metrics())


def play_text(env: SwarmTextEnv, agent: TextOrchestrator, seed: int) -> tuple[list[int], dict[str, Any], int]:
    """Play one episode through text; ``(actions, metrics, messages)``."""
    text, info = env.reset(seed=seed)
    actions, messages = [], 0
    while True:
        text, _, terminated, truncated, info = env.step(agent.act(text))
        actions += info["actions"]
        messages += 1
        if terminated or truncated:
            return actions, info["metrics"], messages


def lockstep_episode(array_env: gym.Env, text_env: SwarmTextEnv, array_policy, text_agent: TextOrchestrator, seed: int) -> int:
    """One episode, one call per message, compared at every step; returns the steps played."""
    obs, info = array_env.reset(seed=seed)
    text, _ = text_env.reset(seed=seed)
    n_max = array_env.unwrapped.n_max
    with_adj = bool(array_env.unwrapped.with_adjacency)
    steps = 0
    while True:
        state = parse_state(text)
        rebuilt, rebuilt_mask = state.observation(n_max, with_adj), state.mask(n_max)
        arrays = dict_observation(array_env, obs)
        for key in arrays:
            if not np.array_equal(arrays[key], rebuilt[key]):
                where = np.argwhere(arrays[key] != rebuilt[key])[:3].tolist()
                raise RoundTripMismatch(f"seed {seed} step {steps}: obs[{key!r}] rebuilt from the text differs at {where}")
        if not np.array_equal(info["action_mask"], rebuilt_mask):
            raise RoundTripMismatch(
                f"seed {seed} step {steps}: the mask rebuilt from the text differs at {np.flatnonzero(info['action_mask'] != rebuilt_mask).tolist()}"
            )
        a = int(array_policy.act({k: v[None] for k, v in arrays.items()}, info["action_mask"][None])[0])
        message = text_agent.act(text)
        obs, _, terminated, truncated, info = array_env.step(a)
        text, _, t_terminated, t_truncated, t_info = text_env.step(message)
        steps += 1
        if t_info["actions"] != [a]:
            raise RoundTripMismatch(f"seed {seed} step {steps}: array action {a}, text actions {t_info['actions']}")
        if (terminated, truncated) != (t_terminated, t_truncated):
            raise RoundTripMismatch(f"seed {seed} step {steps}: episode end differs")
        if terminated or truncated:
            diff = _equal_metrics(info.get("metrics", array_env.unwrapped.sim.metrics()), t_info["metrics"])
            if diff:
                raise RoundTripMismatch(f"seed {seed}: metrics differ: {'; '.join(diff[:4])}")
            return steps


def check_roundtrip(
    env_id: str, seeds: range | list[int], orchestrator: str = "critical_path", *, whole_turn: bool = False
) -> dict[str, Any]:
    """Compare the text interface with the array env on ``seeds``; raises :class:`RoundTripMismatch`.

    :returns: ``{"episodes", "steps", "messages", "seconds"}``.
    """
    env_id = resolve_id(env_id)
    array_env = gym.make(env_id, disable_env_checker=True)
    text_env = SwarmTextEnv(gym.make(env_id, disable_env_checker=True))
    array_policy = load_orchestrator(orchestrator)
    text_agent = TextOrchestrator(load_orchestrator(orchestrator), whole_turn=whole_turn, n_max=array_env.unwrapped.n_max)
    array_policy.reset(0)
    text_agent.reset(0)
    start = time.perf_counter()
    steps = messages = 0
    for seed in seeds:
        if whole_turn:
            a_actions, a_metrics = play_array(array_env, array_policy, seed)
            t_actions, t_metrics, n_messages = play_text(text_env, text_agent, seed)
            if a_actions != t_actions:
                k = next((i for i, (x, y) in enumerate(zip(a_actions, t_actions)) if x != y), min(len(a_actions), len(t_actions)))
                raise RoundTripMismatch(f"seed {seed}: the action sequences differ first at step {k}")
            diff = _equal_metrics(a_metrics, t_metrics)
            if diff:
                raise RoundTripMismatch(f"seed {seed}: metrics differ: {'; '.join(diff[:4])}")
            steps += len(a_actions)
            messages += n_messages
        else:
            n = lockstep_episode(array_env, text_env, array_policy, text_agent, seed)
            steps += n
            messages += n
    array_env.close()
    text_env.close()
    return {"episodes": len(seeds), "steps": steps, "messages": messages, "seconds": time.perf_counter() - start}


def cli_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m swarmgym.llm.roundtrip", description="Check that orchestrators playing through text meet the array env's episodes."
    )
    p.add_argument(
        "--ids", nargs="+", default=["suite"], help="env ids; 'suite' = every suite id, Dict and flat, without the mechanics (default)"
    )
    p.add_argument("-n", "--episodes", type=int, default=200, help="episodes (seeds 0..n-1) per id (default 200)")
    p.add_argument("-o", "--orchestrators", nargs="+", default=["critical_path"], help="orchestrator specs (default critical_path)")
    p.add_argument(
        "--mode", choices=["call", "turn", "both"], default="both", help="one call per message, a whole turn per message, or both (default)"
    )
    args = p.parse_args(argv)
    if args.episodes < 1:
        print("roundtrip: --episodes must be >= 1", file=sys.stderr)
        return 2
    import swarmgym

    from swarmgym.registration import uses_mechanics

    # 'suite': the ids the text interface plays (the base layout: no mechanics of docs/mechanics.md)
    suite = [i for i in swarmgym.SUITE_IDS if not uses_mechanics(i)]
    ids = [i for name in args.ids for i in (suite if name == "suite" else [name])]
    modes = {"call": [False], "turn": [True], "both": [False, True]}[args.mode]
    total = time.perf_counter()
    for env_id in ids:
        for spec in args.orchestrators:
            for whole in modes:
                try:
                    r = check_roundtrip(env_id, range(args.episodes), spec, whole_turn=whole)
                except RoundTripMismatch as exc:
                    print(f"{env_id} {spec} {'turn' if whole else 'call'}: MISMATCH {exc}")
                    return 1
                print(
                    f"{env_id:<32} {spec:<16} {'turn' if whole else 'call'}  {r['episodes']} episodes, {r['steps']} steps, "
                    f"{r['messages']} messages: equal  ({r['seconds']:.1f} s)"
                )
    print(f"all equal ({time.perf_counter() - total:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
