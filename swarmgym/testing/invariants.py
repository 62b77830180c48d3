"""Invariant checks of a swarmgym environment, run along one episode.

:func:`run_episode` plays one episode on an env (a :class:`~swarmgym.env.SwarmEnv`,
possibly wrapped, e.g. what ``gymnasium.make`` returns) and checks the
invariants of :data:`INVARIANTS` after every step. A broken invariant raises
:class:`InvariantViolation`, whose message is a ready-to-paste replay:
``replay(env, seed=..., actions=[...])`` re-runs the same episode and raises the
same error. The actions come from a ``policy(mask, step) -> action``; under
hypothesis that policy draws from the live mask (see :mod:`.check`), and
shrinking then minimises the seed and the action sequence.

The simulator-level checks (parents, tokens, bounds) read ``env.unwrapped.sim``
and ``env.unwrapped.instance``; an env without them gets the observation, mask,
determinism and info checks only. The checks of the orchestration mechanics
(``hidden_nodes``, ``verification``, ``tier_accounts``; ``docs/mechanics.md``) read the
simulator's mechanics state and hold trivially when the mechanics are off.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from swarmgym.graph import MAX_WORK, TaskGraph
from swarmgym.config import MAX_TIERS
from swarmgym.layout import (
    ACTIVE,
    DONE,
    METRIC_KEYS,
    READY,
    RUNNING,
    STATUS_NAMES,
    ActionLayout,
    FlatLayout,
    global_features,
    node_features,
)

__all__ = [
    "INVARIANTS",
    "METRIC_KEYS",
    "Broken",
    "EpisodeRecord",
    "InvariantViolation",
    "check_graph",
    "check_metrics",
    "run_episode",
]

#: Every invariant checked, by name, with what it asserts.
INVARIANTS: dict[str, str] = {
    "no_exception": "reset and step never raise on actions the mask allows",
    "graph_valid": "the instance's graph re-validates (acyclic, parents exist, work in [1, MAX_WORK], kinds known, "
    "every node leads to a target, at most n_max nodes) and its derived fields match its parents",
    "obs_in_space": "every observation lies in the observation space (shape, dtype, bounds, no NaN)",
    "mask_valid": "the mask is bool of the action space's size, equals env.action_masks() (and the flat "
    "observation's mask tail), is never empty, and allows exactly answer on a terminal observation",
    "mask_accepts": "an action the mask allows is never rejected (info['invalid_action'], a growing invalid-action "
    "count, or a strict-mode error): the action taken, and every allowed one at a probed step",
    "deterministic": "two envs reset with the same seed and given the same actions draw the same task instance and return "
    "the same observations, rewards, flags and infos",
    "parents_first": "no node is ready, active, running or done while one of its parents is not done",
    "monotone": "critical steps and tokens (input, output, total) never decrease",
    "budget": "the clock never passes the budget, the episode ends when it reaches it, and within budget * (max_spawns_per_turn + 1) steps",
    "metrics_consistent": "the final info's metrics have every key and agree with each other and the episode",
    "score_range": "the score is in [0, 1] and (for an unwrapped reward) the final reward equals it, earlier rewards 0",
    "bounds": "critical_steps >= lower_bound, speedup <= ideal_speedup, and task_lower_bound <= critical_steps when every node is done",
    "serial_play": "an episode of do actions only has speedup 1 and no spawns",
    "hidden_nodes": "every node with a non-zero observation row (or adjacency entry) is a revealed node of the graph; the mask "
    "never offers an action on a node not yet revealed (progressive revelation)",
    "verification": "a verified node is done by a sub-agent; a wrong result caught by verify leaves its node ready and none "
    "of its descendants done, active or running; 0 <= n_caught <= n_verified",
    "tier_accounts": "the sub-agents spawned per tier sum to n_spawned and those running per tier to the running ones; the "
    "tiers' tokens are within the totals (each tier read its hand-offs, wrote its results) and cost_usd prices them",
    "batched_matches_reference": "the batched engine returns the reference env's observations, masks, rewards, "
    "terminations and metrics on the same instances and actions",
}

# wrappers that leave rewards alone (what gymnasium.make adds)
_PLAIN_WRAPPERS = frozenset({"OrderEnforcing", "PassiveEnvChecker", "TimeLimit", "RecordEpisodeStatistics"})
_TOL = 1e-9


class Broken(AssertionError):
    """An invariant does not hold (raised by the standalone checks; :func:`run_episode`
    turns it into an :class:`InvariantViolation` carrying the replay).

    :param invariant: a key of :data:`INVARIANTS`.
    :param detail: what was seen, in words.
    """

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


class InvariantViolation(AssertionError):
    """An invariant broken along one episode; ``str()`` is a ready-to-paste replay.

    :ivar invariant: the broken invariant (a key of :data:`INVARIANTS`).
    :ivar detail: what was seen.
    :ivar seed: the reset seed.
    :ivar actions: every action taken, up to and including the one after which it broke
        (for the batched engine: one such list per env).
    :ivar step: number of steps taken when it broke (0 = at reset).
    :ivar target: Python source naming the env (an id string or a factory's import path).
    :ivar replay_with: the :mod:`swarmgym.testing` function the replay snippet calls.
    :ivar custom_engine: the batched check ran a caller's engine factory (the replay needs it too).
    :ivar replay_kwargs: further keyword arguments of the replay call.
    """

    def __init__(
        self,
        invariant: str,
        detail: str,
        *,
        seed: int | None,
        actions: Sequence[int],
        step: int,
        target: str,
        checks: Sequence[str] | None = None,
        action_names: Sequence[str] | None = None,
        replay_with: str = "replay",
        custom_engine: bool = False,
        replay_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.invariant = invariant
        self.detail = detail
        self.seed = seed
        self.actions = [[int(a) for a in row] if isinstance(row, (list, tuple)) else int(row) for row in actions]
        self.step = step
        self.target = target
        self.checks = None if checks is None else tuple(checks)
        self.action_names = None if action_names is None else tuple(action_names)
        self.replay_with = replay_with
        self.custom_engine = custom_engine
        self.replay_kwargs = dict(replay_kwargs or {})
        super().__init__(self._message())

    def replay_code(self) -> str:
        """Python source that replays the episode and raises this violation again."""
        target, setup = self.target, ""
        if target.startswith("<factory>"):
            setup = f"# make_env: the env factory that was checked ({target[len('<factory>') :]})\n"
            target = "make_env"
        elif ":" in target and not target.startswith(("'", '"')):
            module, _, attr = target.partition(":")
            setup = f"from {module} import {attr.split('.')[0]}\n"
            target = attr
        else:
            import swarmgym

            setup = "import swarmgym  # registers the suite's ids\n"
            if ":" not in target and target.strip("'\"") not in swarmgym.SUITE_IDS:
                setup += f"# ...and register {target} first, as your test does\n"
        checks = "" if self.checks is None else f", checks={list(self.checks)!r}"
        if self.custom_engine:
            setup += "# make_engine: the engine factory that was checked\n"
            checks += ", engine_factory=make_engine"
        checks += "".join(f", {k}={v!r}" for k, v in self.replay_kwargs.items())
        fn = self.replay_with
        return f"{setup}from swarmgym.testing import {fn}\n{fn}({target}, seed={self.seed!r}, actions={self.actions!r}{checks})"

    def _message(self) -> str:
        if self.step == 0:
            where = "at reset"
        elif self.replay_with != "replay":
            where = f"after batched step {self.step}"
        else:
            where = f"after step {self.step} (action {self.actions[self.step - 1]})"
        code = "\n".join("    " + line for line in self.replay_code().splitlines())
        names = f": {', '.join(self.action_names)}" if self.action_names and self.actions else ""
        count = sum(len(a) if isinstance(a, list) else 1 for a in self.actions)
        if self.replay_with != "replay":
            names = f" in {len(self.actions)} envs"
        return (
            f"invariant '{self.invariant}' broken {where}: {self.detail}\n"
            f"  ({INVARIANTS.get(self.invariant, '')})\n"
            f"Episode: seed={self.seed!r}, {count} action(s){names}. Replay it (raises this error again):\n\n{code}\n"
        )

    def __reduce__(self):  # picklable, for multiprocess test runners
        kwargs = {
            k: getattr(self, k)
            for k in ("seed", "actions", "step", "target", "checks", "action_names", "replay_with", "custom_engine", "replay_kwargs")
        }
        return (_rebuild_violation, (self.invariant, self.detail, kwargs))


def _rebuild_violation(invariant: str, detail: str, kwargs: dict) -> InvariantViolation:
    return InvariantViolation(invariant, detail, **kwargs)


@dataclass
class EpisodeRecord:
    """What :func:`run_episode` saw.

    :ivar seed: the reset seed.
    :ivar actions: the actions taken.
    :ivar rewards: the rewards returned.
    :ivar terminated: whether the episode terminated (else it was truncated or cut by the policy).
    :ivar truncated: whether a wrapper truncated it.
    :ivar metrics: ``info["metrics"]`` of the last step, if present.
    :ivar observations: every observation (reset's first), only with ``keep_observations=True``.
    :ivar infos: every info (reset's first), only with ``keep_observations=True``.
    """

    seed: int | None
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminated: bool = False
    truncated: bool = False
    metrics: dict | None = None
    observations: list = field(default_factory=list)
    infos: list = field(default_factory=list)


# ---------------------------------------------------------------------- standalone checks
def check_graph(graph: TaskGraph, n_max: int | None = None) -> None:
    """Re-validate a graph from its parents, and compare the derived fields it carries.

    Catches graphs mutated after validation (e.g. a cycle smuggled in with
    ``object.__setattr__``) and derived fields out of step with the structure.

    :param graph: the graph to check.
    :param n_max: the env's padding size (the graph may have at most this many nodes).
    :raises Broken: ``graph_valid``, naming what is wrong.
    """
    if not isinstance(graph, TaskGraph):
        raise Broken("graph_valid", f"the instance's graph is a {type(graph).__name__}, not a TaskGraph")
    try:
        work = [int(w) for w in np.asarray(graph.work).tolist()]
        fresh = TaskGraph(
            work, np.asarray(graph.kind).tolist(), graph.parents, np.flatnonzero(np.asarray(graph.targets)).tolist(),
            family=graph.family, budget_factor=graph.budget_factor, n_max=n_max,
        )  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise Broken("graph_valid", f"the graph does not re-validate: {exc}") from None
    if not all(1 <= w <= MAX_WORK for w in work):  # pragma: no cover - TaskGraph already checks
        raise Broken("graph_valid", "work outside [1, MAX_WORK]")
    for name in ("children", "critical_path", "total_work"):
        if getattr(fresh, name) != getattr(graph, name):
            raise Broken(
                "graph_valid", f"graph.{name} = {getattr(graph, name)!r} does not match its parents (expected {getattr(fresh, name)!r})"
            )
    for name in ("bottom_level", "topo_order", "kind", "targets"):
        if not np.array_equal(getattr(fresh, name), getattr(graph, name)):
            raise Broken("graph_valid", f"graph.{name} does not match its parents")


def _close(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def check_metrics(metrics: dict, graph: TaskGraph | None = None, config: Any = None, *, all_done: bool | None = None) -> None:
    """Check the final metrics for completeness and internal consistency, plus the bounds.

    :param metrics: ``info["metrics"]`` at the end of an episode.
    :param graph: the episode's graph (enables the checks against the task).
    :param config: the env's :class:`~swarmgym.config.SwarmConfig` (enables the cap and price checks).
    :param all_done: whether every node finished (enables ``task_lower_bound <= critical_steps``).
    :raises Broken: ``metrics_consistent``, ``score_range`` or ``bounds``.
    """

    def need(ok: bool, what: str, invariant: str = "metrics_consistent") -> None:
        if not ok:
            raise Broken(invariant, what)

    missing = [k for k in METRIC_KEYS if k not in metrics]
    need(not missing, f"info['metrics'] lacks {missing}")
    m = metrics
    for key in METRIC_KEYS:
        if key in ("family", "concurrency_profile", "budget_exhausted"):
            continue
        v = m[key]
        need(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v)),
             f"{key} = {v!r} is not a finite number")  # fmt: skip
        if key not in ("score",):
            need(float(v) >= 0, f"{key} = {v!r} is negative")
    need(isinstance(m["family"], str), f"family = {m['family']!r} is not a string")
    need(0.0 <= m["score"] <= 1.0, f"score = {m['score']!r} is outside [0, 1]", "score_range")
    t, serial, lower = m["critical_steps"], m["serial_steps"], m["lower_bound"]
    need(
        _close(m["speedup"], serial / t if t > 0 else 1.0), f"speedup = {m['speedup']!r} but serial_steps / critical_steps = {serial} / {t}"
    )
    need(
        _close(m["ideal_speedup"], serial / lower if lower > 0 else 1.0),
        f"ideal_speedup = {m['ideal_speedup']!r} but serial_steps / lower_bound = {serial} / {lower}",
    )
    need(
        _close(m["makespan_ratio"], t / max(lower, 1)),
        f"makespan_ratio = {m['makespan_ratio']!r} but critical_steps / lower_bound = {t} / {lower}",
    )
    for key in ("serial_collapse_index", "spurious_spawn_rate"):
        need(0.0 <= m[key] <= 1.0, f"{key} = {m[key]!r} is outside [0, 1]")
    need(
        m["tokens"] == m["input_tokens"] + m["output_tokens"],
        f"tokens = {m['tokens']} but input + output = {m['input_tokens']} + {m['output_tokens']}",
    )
    n_out = m["n_subagent_ok"] + m["n_subagent_failed"] + m["n_subagent_wrong"] + m["n_subagent_unfinished"] + m["n_subagent_cancelled"]
    need(m["n_spawned"] == n_out, f"n_spawned = {m['n_spawned']} but ok + failed + wrong + unfinished + cancelled = {n_out}")
    need(0 <= m["n_caught"] <= m["n_verified"], f"n_caught = {m['n_caught']} is not in [0, n_verified = {m['n_verified']}]", "verification")
    results = m["n_subagent_ok"] + m["n_subagent_wrong"]
    need(
        _close(m["verification_rate"], m["n_verified"] / results if results else 0.0),
        f"verification_rate = {m['verification_rate']!r} but n_verified / (ok + wrong) = {m['n_verified']} / {results}",
    )
    need(
        _close(m["verification_yield"], m["n_caught"] / m["n_verified"] if m["n_verified"] else 0.0),
        f"verification_yield = {m['verification_yield']!r} but n_caught / n_verified = {m['n_caught']} / {m['n_verified']}",
    )
    spawned = sum(m[f"spawned_tier{t}"] for t in range(MAX_TIERS))
    need(spawned == m["n_spawned"], f"spawned_tier0..{MAX_TIERS - 1} sum to {spawned} but n_spawned = {m['n_spawned']}", "tier_accounts")
    need(
        m["n_subagent_isolated"] <= m["n_subagent_ok"],
        f"n_subagent_isolated = {m['n_subagent_isolated']} > n_subagent_ok = {m['n_subagent_ok']}",
    )
    tp, fp, fn = m["targets_correct"], m["targets_wrong"], m["targets_missing"]
    need(
        _close(m["score"], 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0),
        f"score = {m['score']!r} but F1 of (correct, wrong, missing) = ({tp}, {fp}, {fn})",
    )
    # coordination work (CoordinationTax.merge_work_per_subagent_input) adds to a node's work: the task's
    # own totals then bound the episode's only from below
    merge_work = getattr(getattr(config, "coordination", None), "merge_work_per_subagent_input", 0) if config is not None else 0
    if not merge_work:
        need(serial <= m["task_serial_steps"], f"serial_steps = {serial} > task_serial_steps = {m['task_serial_steps']}")
        need(lower <= m["task_lower_bound"], f"lower_bound = {lower} > task_lower_bound = {m['task_lower_bound']}")
    elif graph is not None:
        most = m["task_serial_steps"] + merge_work * sum(len(p) for p in graph.parents if len(p) >= 2)
        need(serial <= most, f"serial_steps = {serial} > the task's work plus the most coordination work it can take = {most}")
    need(t <= m["budget"], f"critical_steps = {t} passed the budget {m['budget']}", "budget")
    need(
        bool(m["budget_exhausted"]) == (t >= m["budget"]),
        f"budget_exhausted = {m['budget_exhausted']} with critical_steps = {t}, budget = {m['budget']}",
    )
    profile = np.asarray(m["concurrency_profile"], dtype=np.float64)
    need(profile.ndim == 1 and profile.size >= 1 and (profile >= 0).all(), f"concurrency_profile = {profile} is not a non-negative vector")
    if t > 0:
        need(abs(profile.sum() - 1.0) < 1e-6, f"concurrency_profile sums to {profile.sum()!r}, not 1")
        level = np.arange(profile.size)
        need(
            _close(m["mean_concurrency"], float((level * profile).sum())),
            f"mean_concurrency = {m['mean_concurrency']!r} but the profile's mean is {(level * profile).sum()!r}",
        )
        need(
            m["peak_concurrency"] == int(level[profile > 0].max()),
            f"peak_concurrency = {m['peak_concurrency']} but the profile's highest level is {int(level[profile > 0].max())}",
        )
    else:
        need(not profile.any() and m["mean_concurrency"] == 0, "critical_steps = 0 but the concurrency profile is not empty")
    if config is not None:
        cap = config.max_subagents
        need(profile.size == cap + 1, f"concurrency_profile has {profile.size} entries; max_subagents + 1 = {cap + 1}")
        need(m["peak_concurrency"] <= cap, f"peak_concurrency = {m['peak_concurrency']} > max_subagents = {cap}")
        tiers = tuple(getattr(config, "tiers", ()))
        n_tiers = max(1, len(tiers))
        for tier in range(n_tiers, MAX_TIERS):
            spawned_key, cost_key = f"spawned_tier{tier}", f"cost_usd_tier{tier}"
            need(m[spawned_key] == 0, f"{spawned_key} = {m[spawned_key]} but the config has {n_tiers} tier(s)", "tier_accounts")
            need(m[cost_key] == 0, f"{cost_key} = {m[cost_key]!r} but the config has {n_tiers} tier(s)", "tier_accounts")
        if not tiers:
            need(
                _close(m["cost_usd"], config.tokens.price(m["input_tokens"], m["output_tokens"])),
                f"cost_usd = {m['cost_usd']!r} does not price the tokens",
            )
        else:  # the orchestrator's share (tokens outside the tiers' accounts) is at most all tokens at the base rates
            own = m["cost_usd"] - sum(m[f"cost_usd_tier{tier}"] for tier in range(n_tiers))
            need(
                -_TOL <= own <= config.tokens.price(m["input_tokens"], m["output_tokens"]) + _TOL,
                f"cost_usd = {m['cost_usd']!r} minus the tiers' costs leaves {own!r} for the orchestrator's tokens, outside "
                f"[0, {config.tokens.price(m['input_tokens'], m['output_tokens'])!r}]",
                "tier_accounts",
            )
        if graph is not None:
            need(
                m["task_lower_bound"] == graph.lower_bound(cap, config.fastest_percent),
                f"task_lower_bound = {m['task_lower_bound']} but the graph's is {graph.lower_bound(cap, config.fastest_percent)}",
            )
            need(m["budget"] == graph.budget(cap), f"budget = {m['budget']} but the graph's is {graph.budget(cap)}")
    if graph is not None:
        need(
            m["task_serial_steps"] == graph.total_work,
            f"task_serial_steps = {m['task_serial_steps']} but the graph's total work is {graph.total_work}",
        )

        n_targets = int(np.asarray(graph.targets).sum())
        need(tp + fp + fn == n_targets, f"targets correct + wrong + missing = {tp + fp + fn} but the graph has {n_targets} targets")
    # the bounds
    need(t >= lower, f"critical_steps = {t} < lower_bound = {lower}", "bounds")
    need(m["speedup"] <= m["ideal_speedup"] + _TOL, f"speedup = {m['speedup']!r} > ideal_speedup = {m['ideal_speedup']!r}", "bounds")
    if all_done:
        need(
            serial == m["task_serial_steps"] if not merge_work else serial >= m["task_serial_steps"],
            f"every node is done but serial_steps = {serial} {'!=' if not merge_work else '<'} task_serial_steps = {m['task_serial_steps']}",
        )
        need(
            m["task_lower_bound"] <= t, f"every node is done in critical_steps = {t} < task_lower_bound = {m['task_lower_bound']}", "bounds"
        )


# ---------------------------------------------------------------------- the episode runner
def _same(a: Any, b: Any) -> bool:
    """Exact equality of observations and infos (dicts, arrays, numbers, strings)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path or 'keys'}: {sorted(a)} vs {sorted(b)}"
        for k in a:
            if not _same(a[k], b[k]):
                return _first_difference(a[k], b[k], f"{path}[{k!r}]")
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape:
        idx = np.argwhere(a != b)
        if idx.size:
            i = tuple(int(x) for x in idx[0])
            return f"{path}{list(i)}: {a[i]!r} vs {b[i]!r}{_feature_name(path, i)}"
    return f"{path}: {a!r} vs {b!r}"


def _instance_difference(a: Any, b: Any) -> str | None:
    """How two envs' task instances differ (None if they are the same or unknown)."""
    ia, ib = getattr(a.unwrapped, "instance", None), getattr(b.unwrapped, "instance", None)
    if ia is None or ib is None:
        return None
    ga, gb = ia.graph, ib.graph
    same_graph = (
        ga.n_nodes == gb.n_nodes and ga.parents == gb.parents and np.array_equal(ga.work, gb.work)
        and np.array_equal(ga.kind, gb.kind) and np.array_equal(ga.targets, gb.targets)
    )  # fmt: skip
    if not same_graph:
        return f"the two envs drew different graphs from the same seed ({ga!r} vs {gb!r}); is all randomness drawn from the rng passed in?"
    fa, fb = getattr(ia, "fates", None), getattr(ib, "fates", None)
    if fa is not None and fb is not None and not (_same(fa.duration, fb.duration) and _same(fa.outcome, fb.outcome)):
        return "the two envs drew the same graph but different sub-agent fates from the same seed"
    return None


def _space_problem(space: spaces.Space, obs: Any, path: str = "obs") -> str | None:
    """Why ``obs`` is not in ``space`` (None if it is), naming the entry."""
    if isinstance(space, spaces.Dict):
        if not isinstance(obs, dict) or set(obs) != set(space.spaces):
            return f"{path} keys {sorted(obs) if isinstance(obs, dict) else type(obs).__name__} != {sorted(space.spaces)}"
        for k, sub in space.spaces.items():
            problem = _space_problem(sub, obs[k], f"{path}[{k!r}]")
            if problem:
                return problem
        return None
    if isinstance(space, spaces.Box):
        if not isinstance(obs, np.ndarray):
            return f"{path} is a {type(obs).__name__}, not a numpy array"
        if obs.shape != space.shape or obs.dtype != space.dtype:
            return f"{path} has shape {obs.shape} dtype {obs.dtype}; the space has {space.shape} {space.dtype}"
        bad = ~((obs >= space.low) & (obs <= space.high))  # NaN is bad too
        if bad.any():
            i = tuple(int(x) for x in np.argwhere(bad)[0])
            return f"{path}{list(i)} = {obs[i]!r} is outside [{space.low[i]}, {space.high[i]}]" + _feature_name(path, i)
        return None
    return None if space.contains(obs) else f"{path} = {obs!r} is not in {space}"


def _feature_name(path: str, index: tuple[int, ...]) -> str:
    columns, entries = node_features(True), global_features(True)  # the base ones first, then the extended ones
    if path.endswith("['nodes']") and len(index) == 2 and index[1] < len(columns):
        return f" (node {index[0]}, feature {columns[index[1]]!r})"
    if path.endswith("['globals']") and len(index) == 1 and index[0] < len(entries):
        return f" (global feature {entries[index[0]]!r})"
    return ""


def _action_layout(n_actions: int | None, env: Any = None) -> ActionLayout | None:
    """The swarm action layout with ``n_actions`` actions: the env's own ``layout`` when it has one
    of that size, else the base layout of that size (None for another action space)."""
    if n_actions is None:
        return None
    own = getattr(env, "layout", None)
    if isinstance(own, ActionLayout) and own.n == n_actions:
        return own
    try:
        return ActionLayout.for_actions(n_actions)
    except ValueError:
        return None


def _descendants(children: Sequence[Sequence[int]], i: int) -> set[int]:
    """Every node reachable from ``i`` along child edges (``i`` itself excluded)."""
    seen: set[int] = set()
    frontier = list(children[i])
    while frontier:
        d = frontier.pop()
        if d not in seen:
            seen.add(d)
            frontier.extend(children[d])
    return seen


def _rewards_plain(env: gym.Env) -> bool:
    """Whether only wrappers that leave the reward alone sit above the base env."""
    while isinstance(env, gym.Wrapper):
        if type(env).__name__ not in _PLAIN_WRAPPERS:
            return False
        env = env.env
    return True


#: ``policy(mask, step) -> action`` (None: stop the episode here, without an action).
Policy = Callable[[np.ndarray, int], "int | None"]


_READ_ONLY_ATTRIBUTES = ("generator", "spec", "observation_space", "action_space", "dict_observation_space")


def _read_only_parts(env: gym.Env) -> dict[int, Any]:
    """A deepcopy memo that shares what a step never changes (the generator, spaces, spec) between an env and its copies.

    A probe copies the env once per allowed action; the generator of a recipe family
    holds its whole graph library, so copying it dominated the probe's time.
    """
    memo: dict[int, Any] = {}
    layer: Any = env
    while layer is not None:
        for name in _READ_ONLY_ATTRIBUTES:
            value = vars(layer).get(name, vars(layer).get("_" + name))
            if value is not None:
                memo[id(value)] = value
        layer = vars(layer).get("env")
    return memo


class _Run:
    """The state of one checked episode (internal to :func:`run_episode`)."""

    def __init__(self, env: gym.Env, twin: gym.Env | None, seed: int | None, checks: frozenset[str], target: str, checks_arg) -> None:
        self.env, self.twin, self.seed, self.checks = env, twin, seed, checks
        self.target, self.checks_arg = target, checks_arg
        self.actions: list[int] = []
        self.u = env.unwrapped
        self.replay_kwargs: dict[str, Any] = {}

    def fail(self, invariant: str, detail: str, cause: BaseException | None = None):
        __tracebackhide__ = True  # pytest shows the user's test and the violation, not these frames
        names = [self._describe(a).removeprefix(" = ") or str(a) for a in self.actions]
        exc = InvariantViolation(
            invariant, detail, seed=self.seed, actions=self.actions, step=len(self.actions), target=self.target,
            checks=self.checks_arg, action_names=names, replay_kwargs=self.replay_kwargs,
        )  # fmt: skip
        raise exc from cause

    def probe(self, mask: np.ndarray) -> None:
        """Every action the mask allows, each tried on a deep copy of the env: none may be rejected."""
        __tracebackhide__ = True
        self.replay_kwargs["probe_step"] = len(self.actions)  # a replay of a probe's finding probes there too
        shared = _read_only_parts(self.env)
        for a in np.flatnonzero(mask).tolist():
            trial = copy.deepcopy(self.env, dict(shared))
            try:
                info = trial.step(a)[4]
            except Exception as exc:  # noqa: BLE001 - a rejected (strict) or crashing action
                self.fail(
                    "mask_accepts",
                    f"the mask allows action {a}{self._describe(a)}, but on a copy of the env it raised {type(exc).__name__}: {exc}",
                    exc,
                )
            if info.get("invalid_action", False) or info.get("invalid_actions", self.invalid_count) > self.invalid_count:
                self.fail(
                    "mask_accepts",
                    f"the mask allows action {a}{self._describe(a)}, but a copy of the env rejected it (probed before this step's action)",
                )
            trial.close()
        del self.replay_kwargs["probe_step"]

    def on(self, name: str) -> bool:
        return name in self.checks

    # -- per-episode setup
    def start(self, info: dict) -> None:
        __tracebackhide__ = True
        u = self.u
        self.sim = getattr(u, "sim", None)
        instance = getattr(u, "instance", None)
        self.graph = getattr(instance, "graph", None) or getattr(self.sim, "graph", None)
        self.config = getattr(u, "config", None)
        self.n_actions = int(self.env.action_space.n) if isinstance(self.env.action_space, spaces.Discrete) else None
        self.layout = _action_layout(self.n_actions, u)
        self.caught = getattr(self.sim, "n_caught", 0)
        if self.graph is not None and self.on("graph_valid"):
            try:
                check_graph(self.graph, getattr(u, "n_max", None))
            except Broken as b:
                self.fail(b.invariant, b.detail)
        if self.graph is not None:
            edges = [(c, p) for c, ps in enumerate(self.graph.parents) for p in ps]
            self.edge_child = np.array([c for c, _ in edges], dtype=np.int64)
            self.edge_parent = np.array([p for _, p in edges], dtype=np.int64)
        self.budget = info.get("budget", getattr(self.sim, "budget", None))
        spawns = getattr(self.config, "max_spawns_per_turn", None)
        self.step_bound = self.budget * (spawns + 1) if self.budget is not None and spawns is not None else None
        self.prev = {"critical_steps": 0, "tokens": 0, "input_tokens": 0, "output_tokens": 0}
        self.policy_invalid = False
        self.invalid_count = info.get("invalid_actions", 0)
        self.reward_plain = _rewards_plain(self.env)

    # -- per-step checks
    def check_observation(self, obs: Any, info: dict, done: bool, terminated: bool = False) -> np.ndarray | None:
        __tracebackhide__ = True
        if self.on("obs_in_space"):
            problem = _space_problem(self.env.observation_space, obs)
            if problem:
                self.fail("obs_in_space", problem)
        mask = info.get("action_mask")
        if mask is None:
            if self.on("mask_valid"):
                self.fail("mask_valid", "info has no 'action_mask'")
            return None
        if self.on("mask_valid"):
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or (self.n_actions is not None and mask.shape != (self.n_actions,)):
                self.fail("mask_valid", f"info['action_mask'] has dtype {mask.dtype} shape {mask.shape}; expected bool ({self.n_actions},)")
            if hasattr(self.u, "action_masks") and not np.array_equal(mask, self.u.action_masks()):
                self.fail("mask_valid", "info['action_mask'] differs from env.action_masks()")
            if getattr(self.u, "observation_mode", None) == "flat" and not np.array_equal(np.asarray(obs)[-mask.size :] > 0.5, mask):
                self.fail("mask_valid", "the flat observation's mask tail differs from info['action_mask']")
            if not mask.any():
                self.fail("mask_valid", f"the mask allows no action{' on the terminal observation' if done else ''}; it is never empty")
            answer = self.layout.answer if self.layout is not None else (self.n_actions or 0) - 1
            if terminated and self.n_actions is not None and np.flatnonzero(mask).tolist() != [answer]:
                self.fail(
                    "mask_valid",
                    f"the terminal observation's mask allows {np.flatnonzero(mask).tolist()}; it must allow exactly answer ({answer})",
                )
        return np.asarray(mask, dtype=bool)

    def check_state(self, info: dict) -> None:
        __tracebackhide__ = True
        sim = self.sim
        if sim is not None and self.graph is not None and self.on("parents_first") and self.edge_child.size:
            status = np.asarray(sim.status)
            started = np.isin(status[self.edge_child], (READY, ACTIVE, RUNNING, DONE))
            bad = np.flatnonzero(started & (status[self.edge_parent] != DONE))
            if bad.size:
                c, p = int(self.edge_child[bad[0]]), int(self.edge_parent[bad[0]])
                self.fail("parents_first", f"node {c} is {STATUS_NAMES[status[c]]} while its parent {p} is {STATUS_NAMES[status[p]]}")
        if self.on("monotone"):
            now = {"critical_steps": info.get("critical_steps"), "tokens": info.get("tokens")}
            if sim is not None:
                now.update(critical_steps=sim.t, input_tokens=sim.input_tokens, output_tokens=sim.output_tokens)
            for key, value in now.items():
                if value is None:
                    continue
                if value < self.prev[key]:
                    self.fail("monotone", f"{key} went down from {self.prev[key]} to {value}")
                self.prev[key] = value
        if self.on("budget") and self.budget is not None:
            t = sim.t if sim is not None else info.get("critical_steps")
            if t is not None and t > self.budget:
                self.fail("budget", f"the clock is at {t}, past the budget {self.budget}")

    def check_mechanics(self, obs: Any, mask: np.ndarray | None) -> None:
        """``hidden_nodes``, ``verification`` and ``tier_accounts`` on the simulator's state (after a step)."""
        __tracebackhide__ = True
        sim = self.sim
        if sim is None or self.graph is None:
            return
        n = self.graph.n_nodes
        revealed = np.asarray(getattr(sim, "revealed", np.ones(n, dtype=bool)), dtype=bool)
        if self.on("hidden_nodes"):
            self._check_hidden(obs, mask, revealed, n)
        if self.on("verification") and hasattr(sim, "verified"):
            status, verified = np.asarray(sim.status), np.asarray(sim.verified, dtype=bool)
            bad = np.flatnonzero(verified & ~((status == DONE) & np.asarray(sim.done_by_subagent, dtype=bool)))
            if bad.size:
                i = int(bad[0])
                self.fail(
                    "verification",
                    f"node {i} is verified but is {STATUS_NAMES[status[i]]}, done_by_subagent = {bool(sim.done_by_subagent[i])}",
                )
            if not 0 <= sim.n_caught <= sim.n_verified:
                self.fail("verification", f"n_caught = {sim.n_caught} is not in [0, n_verified = {sim.n_verified}]")
            if sim.n_caught > self.caught and self.actions and self.layout is not None:
                name, i = self.layout.decode(self.actions[-1])
                if name == "verify":
                    if status[i] != READY:
                        self.fail(
                            "verification", f"verify({i}) caught a wrong result, yet node {i} is {STATUS_NAMES[status[i]]}, not ready"
                        )
                    for d in sorted(_descendants(self.graph.children, i)):
                        if status[d] in (DONE, ACTIVE, RUNNING):
                            self.fail(
                                "verification", f"verify({i}) caught a wrong result, yet its descendant {d} is {STATUS_NAMES[status[d]]}"
                            )
            self.caught = sim.n_caught
        if self.on("tier_accounts") and hasattr(sim, "spawned_tier"):
            self._check_tiers(sim)

    def _check_hidden(self, obs: Any, mask: np.ndarray | None, revealed: np.ndarray, n: int) -> None:
        __tracebackhide__ = True
        u = self.u
        if getattr(u, "observation_mode", "dict") == "flat":
            flat_layout = getattr(u, "flat_layout", None)
            if not isinstance(flat_layout, FlatLayout):
                return
            obs, _ = flat_layout.unflatten(np.asarray(obs))
        if not isinstance(obs, dict) or "nodes" not in obs:
            return
        nodes = np.asarray(obs["nodes"])
        shown = np.flatnonzero(nodes.any(axis=1))
        adjacency = obs.get("adjacency")
        if adjacency is not None:
            adjacency = np.asarray(adjacency)
            shown = np.union1d(shown, np.union1d(np.flatnonzero(adjacency.any(axis=1)), np.flatnonzero(adjacency.any(axis=0))))
        for i in shown.tolist():
            if i >= n:
                self.fail("hidden_nodes", f"observation row {i} is not zero, but the graph has only {n} nodes (padding)")
            if not revealed[i]:
                self.fail("hidden_nodes", f"node {i} is not revealed, yet its observation row or adjacency is not zero")
        if mask is not None and self.layout is not None and not revealed.all():
            hidden = np.flatnonzero(~revealed)
            for name, per_node in self.layout.blocks:
                if per_node and self.layout.block(mask, name)[hidden].any():
                    i = int(hidden[self.layout.block(mask, name)[hidden]][0])
                    self.fail("hidden_nodes", f"the mask offers {name}({i}) on node {i}, which is not revealed")

    def _check_tiers(self, sim: Any) -> None:
        __tracebackhide__ = True
        if sum(sim.spawned_tier) != sim.n_spawned:
            self.fail(
                "tier_accounts",
                f"sub-agents spawned per tier {list(sim.spawned_tier)} sum to {sum(sim.spawned_tier)}, not n_spawned = {sim.n_spawned}",
            )
        per_tier = [sum(1 for j in sim.running if sim.attempt_tier[j] == t) for t in range(len(sim.running_tier))]
        if list(sim.running_tier) != per_tier:
            self.fail(
                "tier_accounts", f"running sub-agents per tier {list(sim.running_tier)}, but the running nodes' tiers count {per_tier}"
            )
        tier_in, tier_out = sum(sim.tier_input_tokens), sum(sim.tier_output_tokens)
        if not (0 <= tier_in <= sim.input_tokens and 0 <= tier_out <= sim.output_tokens):
            self.fail(
                "tier_accounts",
                f"the tiers' tokens ({tier_in} in, {tier_out} out) are not within the totals ({sim.input_tokens} in, {sim.output_tokens} out)",
            )
        tok = sim.config.tokens
        for t in range(len(sim.spawned_tier)):
            if (
                sim.tier_output_tokens[t] < tok.result_tokens * sim.returns_tier[t]
                or sim.tier_input_tokens[t] < tok.handoff_base * sim.spawned_tier[t]
            ):
                self.fail(
                    "tier_accounts",
                    f"tier {t} read {sim.tier_input_tokens[t]} and wrote {sim.tier_output_tokens[t]} tokens: less than its "
                    f"{sim.spawned_tier[t]} hand-offs and {sim.returns_tier[t]} results",
                )
        if not 0 <= sim.coordination_tokens <= sim.input_tokens - tier_in:
            self.fail(
                "tier_accounts",
                f"coordination_tokens = {sim.coordination_tokens} exceed the orchestrator's input tokens {sim.input_tokens - tier_in}",
            )

    def check_step(self, action: int, mask: np.ndarray, reward: float, terminated: bool, truncated: bool, info: dict) -> None:
        __tracebackhide__ = True
        count = info.get("invalid_actions", self.invalid_count)
        allowed = 0 <= action < mask.size and bool(mask[action])
        if not allowed:
            self.policy_invalid = True  # the policy chose a masked-out action: the env may reject it
        elif self.on("mask_accepts") and (info.get("invalid_action", False) or count > self.invalid_count):
            self.fail("mask_accepts", f"the mask allowed action {action}{self._describe(action)} but the env rejected it")
        self.invalid_count = count
        if self.on("score_range"):
            if not (isinstance(reward, (int, float, np.integer, np.floating)) and math.isfinite(float(reward))):
                self.fail("score_range", f"reward {reward!r} is not a finite number")
            if self.reward_plain and not terminated and reward != 0:
                self.fail("score_range", f"reward {reward!r} before the episode ended (the score is paid once, at the end)")
        if self.on("budget") and self.budget is not None and not terminated:
            t = self.sim.t if self.sim is not None else info.get("critical_steps")
            if t is not None and t >= self.budget:
                self.fail("budget", f"the clock reached the budget {self.budget} but the episode did not terminate")
        if self.on("budget") and self.step_bound is not None and len(self.actions) >= self.step_bound and not (terminated or truncated):
            self.fail(
                "budget", f"{len(self.actions)} steps without the episode ending; budget * (max_spawns_per_turn + 1) = {self.step_bound}"
            )

    def check_end(self, reward: float, info: dict) -> dict | None:
        __tracebackhide__ = True
        metrics = info.get("metrics")
        if metrics is None:
            if self.on("metrics_consistent"):
                self.fail("metrics_consistent", "the episode terminated without info['metrics']")
            return None
        sim = self.sim
        all_done = bool((np.asarray(sim.status) == DONE).all()) if sim is not None else None
        try:
            check_metrics(metrics, self.graph, self.config, all_done=all_done)
            m = metrics
            need = [
                ("metrics_consistent", m["critical_steps"] == info.get("critical_steps", m["critical_steps"]), f"critical_steps = {m['critical_steps']} but info['critical_steps'] = {info.get('critical_steps')}"),
                ("metrics_consistent", m["tokens"] == info.get("tokens", m["tokens"]), f"tokens = {m['tokens']} but info['tokens'] = {info.get('tokens')}"),
                ("metrics_consistent", m["invalid_actions"] == info.get("invalid_actions", m["invalid_actions"]), "invalid_actions differs from info['invalid_actions']"),
                ("score_range", not self.reward_plain or _close(reward, m["score"]), f"final reward {reward!r} != score {m['score']!r}"),
            ]  # fmt: skip
            sim = self.sim
            if sim is not None and hasattr(sim, "tier_input_tokens"):
                tok = sim.config.tokens
                for t in range(len(sim.tier_input_tokens)):
                    price = (
                        sim.tier_input_tokens[t] * tok.price_input_per_million + sim.tier_output_tokens[t] * tok.price_output_per_million
                    ) / 1e6
                    want = sim.config.tier_list[t].price_scale * price
                    need.append(
                        (
                            "tier_accounts",
                            _close(m[f"cost_usd_tier{t}"], want),
                            f"cost_usd_tier{t} = {m[f'cost_usd_tier{t}']!r} but its tokens cost {want!r}",
                        )
                    )
                    need.append(
                        (
                            "tier_accounts",
                            m[f"spawned_tier{t}"] == sim.spawned_tier[t],
                            f"spawned_tier{t} = {m[f'spawned_tier{t}']} but the simulator counted {sim.spawned_tier[t]}",
                        )
                    )
            for invariant, ok, what in need:
                if not ok:
                    raise Broken(invariant, what)
            lay = self.layout
            body = self.actions[:-1] if lay is not None and self.actions and self.actions[-1] == lay.answer else self.actions
            do_block = range(lay.do, lay.do + lay.n_max) if lay is not None else None
            if self.on("serial_play") and do_block is not None and not self.policy_invalid and all(a in do_block for a in body):
                if m["n_spawned"] != 0 or (m["critical_steps"] > 0 and not _close(m["speedup"], 1.0)):
                    raise Broken("serial_play", f"only do actions, yet n_spawned = {m['n_spawned']}, speedup = {m['speedup']!r}")
        except Broken as b:
            if self.on(b.invariant):
                self.fail(b.invariant, b.detail)
        return metrics

    def check_twin(self, what: str, mine: Any, theirs: Any) -> None:
        __tracebackhide__ = True
        if not _same(mine, theirs):
            self.fail(
                "deterministic",
                f"a second env with the same seed and actions returned a different {what}: {_first_difference(mine, theirs)}",
            )

    def _describe(self, action: int) -> str:
        describe = getattr(self.u, "describe_action", None)
        try:
            return f" = {describe(action)}" if describe else ""
        except Exception:  # noqa: BLE001 - naming the action is best effort
            return ""


def run_episode(
    env: gym.Env,
    seed: int | None,
    policy: Policy,
    *,
    twin: gym.Env | None = None,
    checks: Iterable[str] | None = None,
    target: str = "<factory>env",
    keep_observations: bool = False,
    probe_step: int | None = None,
    replay_kwargs: dict[str, Any] | None = None,
) -> EpisodeRecord:
    """Play one episode from ``env.reset(seed=seed)`` with ``policy``, checking invariants at every step.

    :param env: the env to check (reset here).
    :param seed: the reset seed.
    :param policy: ``policy(mask, step) -> action``; may return ``None`` to stop the
        episode early without an action (used by replays whose action list ran out).
        A masked-out action is stepped too (the env's invalid-action rule applies and
        ``mask_accepts`` and ``serial_play`` do not judge it); a strict env's error on
        one is re-raised as is.
    :param twin: a second env from the same factory, stepped in lockstep for the
        ``deterministic`` check (skipped when None).
    :param checks: names from :data:`INVARIANTS` to check; default all.
    :param target: Python source naming the env, for the replay snippet: a quoted
        env id (``"'swarmgym/WideSearch-v0'"``), ``"module:factory"``, or
        ``"<factory>description"`` for a factory that cannot be imported.
    :param keep_observations: keep every observation and info in the record.
    :param probe_step: before the policy chooses its action at this step (0 = right
        after reset), try every action the mask allows, each on a deep copy of the env
        (``mask_accepts`` for the whole mask there, not only for the action taken).
    :param replay_kwargs: keyword arguments the replay snippet passes on (e.g. the
        ``gymnasium.make`` arguments the env was made with).
    :returns: the :class:`EpisodeRecord`.
    :raises InvariantViolation: the first broken invariant, with the replay.
    """
    __tracebackhide__ = True
    if isinstance(checks, str):
        raise TypeError(f"checks must be a list of invariant names, not one string ({checks!r}); pass [{checks!r}]")
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
    names = frozenset(INVARIANTS) if checks is None else frozenset(checks)
    unknown = names - set(INVARIANTS)
    if unknown:
        raise ValueError(f"checks must be names from INVARIANTS {sorted(INVARIANTS)}, got unknown {sorted(unknown)}")
    run = _Run(env, twin if "deterministic" in names else None, seed, names, target, None if checks is None else sorted(names))
    run.replay_kwargs.update(replay_kwargs or {})
    record = EpisodeRecord(seed=seed, actions=run.actions)

    def call(fn, *args, action: int | None = None, mask: np.ndarray | None = None, **kwargs):
        __tracebackhide__ = True
        try:
            return fn(*args, **kwargs)
        except InvariantViolation:
            raise
        except Exception as exc:  # noqa: BLE001 - every env error becomes a replayable report
            if action is not None and mask is not None and isinstance(exc, ValueError) and getattr(run.u, "strict", False):
                if not (0 <= action < mask.size and mask[action]):
                    raise  # a strict env refusing a masked-out action the policy chose: the policy's error
                run.fail("mask_accepts", f"the mask allowed action {action}{run._describe(action)} but the strict env raised: {exc}", exc)
            run.fail("no_exception", f"{type(exc).__name__}: {exc}", exc)

    obs, info = call(env.reset, seed=seed)
    if run.twin is not None:
        obs2, info2 = call(run.twin.reset, seed=seed)
        problem = _instance_difference(env, run.twin)
        if problem:
            run.fail("deterministic", problem)
        run.check_twin("reset observation", obs, obs2)
        run.check_twin("reset info", info, info2)
    run.start(info)
    if keep_observations:
        record.observations.append(obs)
        record.infos.append(info)
    run.check_state(info)  # the state first: observations and masks derive from it
    mask = run.check_observation(obs, info, done=False)
    run.check_mechanics(obs, mask)
    while True:
        if mask is None:
            mask = np.ones(run.n_actions or 1, dtype=bool)
        if probe_step is not None and len(run.actions) == probe_step and "mask_accepts" in names:
            run.probe(mask)
        action = policy(mask, len(run.actions))
        if action is None:
            return record
        action = int(action)
        run.actions.append(action)
        obs, reward, terminated, truncated, info = call(env.step, action, action=action, mask=mask)
        if run.twin is not None:
            out2 = call(run.twin.step, action)
            for what, mine, theirs in zip(
                ("observation", "reward", "terminated", "truncated", "info"), (obs, reward, terminated, truncated, info), out2
            ):
                run.check_twin(what, mine, theirs)
        record.rewards.append(float(reward))
        if keep_observations:
            record.observations.append(obs)
            record.infos.append(info)
        done = bool(terminated or truncated)
        run.check_state(info)
        run.check_step(action, mask, reward, terminated, truncated, info)  # judged against the mask it was chosen from
        mask = run.check_observation(obs, info, done=done, terminated=bool(terminated))
        run.check_mechanics(obs, mask)
        if terminated:
            record.metrics = run.check_end(reward, info)
        if done:
            record.terminated, record.truncated = bool(terminated), bool(truncated)
            return record
