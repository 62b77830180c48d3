"""Episode traces: the event log of one episode, recorded without touching the dynamics.

An :class:`EpisodeTracer` watches a :class:`~swarmgym.env.SwarmEnv`'s simulator from
outside. After every step it compares the simulator's public state with what it saw
after the previous step (clock, running sub-agents, attempts, counters) and writes
the events that happened in between. The simulator is never called or changed, so
an env without a tracer steps exactly as fast as before.

Events, in time order (every event has ``type`` and ``t``, the tick it happened at,
and ``tokens``, the episode's token count once the step that produced it was over):

=============  ==============================================================
type           meaning and extra fields
=============  ==============================================================
``spawn``      the orchestrator hands ``node`` to a sub-agent (``attempt``,
               ``slot``, ``handoff_tokens``; ``started`` False when the budget
               ran out during the hand-off latency)
``start``      the sub-agent on ``node`` starts running (``attempt``, ``slot``,
               ``returns_at``); the same tick as its spawn unless
               ``spawn_ticks`` > 0
``finish``     the sub-agent on ``node`` returns: ``fate`` is ``ok``, ``fail``
               or ``wrong`` (``attempt``, ``slot``, ``started``)
``unfinished`` the episode ended while the sub-agent on ``node`` still ran
``cancelled``  the sub-agent on ``node`` was cancelled at ``t``: a caught wrong
               result upstream invalidated its node (``attempt``, ``slot``,
               ``started``)
``verify``     the orchestrator verifies ``node`` from ``t`` to ``until``
               (``caught``: its result was wrong and is invalidated)
``do``         the orchestrator works on ``node`` from ``t`` to ``until``
               (``completed``: the node is done after this tick)
``wait``       the orchestrator waits from ``t`` to ``until``
``invalid``    a masked-out action wasted the turn (``action``, ``until``)
``answer``     the orchestrator submits at ``t``
``budget``     the budget ran out at ``t``; the state is submitted
``truncated``  a TimeLimit wrapper truncated the episode at ``t``
=============  ==============================================================

In an env with the mechanics of ``docs/mechanics.md`` (``config.extended``) the
``spawn`` and ``start`` events also have ``tier``, the sub-agent tier spawned.

Sub-agent *slots* (the Gantt chart's lanes) are numbered ``0 .. max_subagents - 1``;
a new sub-agent takes the lowest free slot, after the sub-agents that returned in
the same step have freed theirs.

:class:`TraceRecorder` is the wrapper form: it traces every episode of an env and
writes each as JSON (:func:`write_trace`). ``render_mode="rgb_array"`` envs keep a
tracer of their own, which the Gantt chart (:mod:`swarmgym.viewer`) is drawn from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from swarmgym.graph import KINDS
from swarmgym.simulator import DONE, OUTCOME_NAMES

#: Version tag of the JSON format written by :func:`write_trace`.
TRACE_FORMAT = "swarmgym.trace/1"


class EpisodeTracer:
    """Records the events of one episode of a :class:`~swarmgym.env.SwarmEnv`.

    Make it right after ``env.reset`` and call :meth:`observe` after every ``env.step``.

    :param env: the (unwrapped) SwarmEnv, already reset.
    :param meta: free-form fields stored with the trace (env id, seed, orchestrator).
    """

    def __init__(self, env: Any, meta: dict[str, Any] | None = None) -> None:
        sim = env.sim
        if sim is None:
            raise RuntimeError("EpisodeTracer needs an env that has been reset")
        self.sim = sim
        self.layout = env.layout
        self.extended = bool(getattr(env, "extended", False))
        self.max_subagents = int(env.config.max_subagents)
        self.meta = dict(meta or {})
        self.events: list[dict[str, Any]] = []
        self.steps = 0
        self.over = False
        self._free = list(range(self.max_subagents))
        self._slot: dict[int, int] = {}
        self._spawn_t: dict[int, int] = {}
        self._snapshot()

    def _snapshot(self) -> None:
        sim = self.sim
        self._t = sim.t
        self._running = list(sim.running)
        self._attempts = sim.attempts.copy()
        self._invalid = sim.invalid_actions
        self._caught = getattr(sim, "n_caught", 0)

    # ------------------------------------------------------------------ recording
    def observe(self, action: int, *, truncated: bool = False) -> None:
        """Record what the step that just took ``action`` did (call after every step)."""
        if self.over:
            raise RuntimeError("the traced episode is over; make a new EpisodeTracer after reset")
        sim = self.sim
        t0, t1 = self._t, sim.t
        tokens = sim.tokens
        name, node = self.layout.decode(int(action))
        events = self.events
        spawned = None
        # 1. the action itself
        if sim.invalid_actions > self._invalid:
            events.append({"type": "invalid", "t": t0, "until": t1, "action": self.layout.describe(int(action)), "tokens": tokens})
        elif name == "do":
            events.append({"type": "do", "t": t0, "until": t1, "node": node, "completed": bool(sim.status[node] == DONE), "tokens": tokens})
        elif name == "spawn" or name.startswith("spawn_"):
            started = bool(sim.attempts[node] > self._attempts[node])
            tok = sim.config.tokens
            handoff = tok.handoff_base + tok.handoff_per_parent * len(sim.graph.parents[node])
            spawn = {"type": "spawn", "t": t0, "node": node, "attempt": int(self._attempts[node]) + 1, "slot": None}
            if self.extended:
                spawn["tier"] = 0 if name == "spawn" else int(name.split("_")[1])
            spawn.update({"handoff_tokens": int(handoff), "started": started, "tokens": tokens})
            events.append(spawn)
            if started:
                spawned = spawn
        elif name == "wait":
            events.append({"type": "wait", "t": t0, "until": t1, "tokens": tokens})
        elif name == "verify":
            caught = sim.n_caught > self._caught
            events.append({"type": "verify", "t": t0, "until": t1, "node": node, "caught": caught, "tokens": tokens})
        # 2. sub-agents that returned during the step, in the order the simulator resolved them;
        # one that left without reaching its finish tick was cancelled (an invalidation)
        still = set(sim.running)
        gone = [j for j in self._running if j not in still]
        returned = sorted((int(sim.finish_time[j]), j) for j in gone if sim.finish_time[j] <= t1)
        cancelled = sorted(j for j in gone if sim.finish_time[j] > t1)
        for finish, j in returned:
            slot = self._slot.pop(j)
            attempt = int(sim.attempts[j])
            fate = OUTCOME_NAMES[sim.attempt_outcome(j, attempt)]
            events.append(
                {
                    "type": "finish",
                    "t": finish,
                    "node": j,
                    "attempt": attempt,
                    "slot": slot,
                    "fate": fate,
                    "started": int(sim.start_time[j]),
                    "tokens": tokens,
                }
            )
            self._free.append(slot)
        for j in cancelled:
            slot = self._slot.pop(j)
            events.append(
                {
                    "type": "cancelled",
                    "t": t1,
                    "node": j,
                    "attempt": int(sim.attempts[j]),
                    "slot": slot,
                    "started": int(sim.start_time[j]),
                    "tokens": tokens,
                }
            )
            self._free.append(slot)
        # 3. the new sub-agent takes the lowest free slot
        if spawned is not None:
            self._free.sort()
            slot = self._free.pop(0)
            self._slot[node] = slot
            spawned["slot"] = slot
            start = {"type": "start", "t": int(sim.start_time[node]), "node": node, "attempt": int(sim.attempts[node]), "slot": slot}
            if self.extended:
                start["tier"] = spawned["tier"]
            start.update({"returns_at": int(sim.finish_time[node]), "tokens": tokens})
            events.append(start)
        # 4. the end of the episode
        if name == "answer" and sim.done and not sim.ended_by_budget:
            events.append({"type": "answer", "t": t1, "tokens": tokens})
        elif sim.done and sim.ended_by_budget:
            events.append({"type": "budget", "t": t1, "tokens": tokens})
        elif truncated:
            events.append({"type": "truncated", "t": t1, "tokens": tokens})
        if sim.done or truncated:
            for j in sorted(self._slot):
                events.append(
                    {
                        "type": "unfinished",
                        "t": t1,
                        "node": j,
                        "attempt": int(sim.attempts[j]),
                        "slot": self._slot[j],
                        "started": int(sim.start_time[j]),
                        "tokens": tokens,
                    }
                )
            self.over = True
        self.steps += 1
        self._snapshot()

    # ------------------------------------------------------------------ output
    def running(self) -> list[dict[str, int]]:
        """Sub-agents running now: ``node``, ``slot``, ``started``, ``returns_at``."""
        sim = self.sim
        return [
            {"node": j, "slot": s, "started": int(sim.start_time[j]), "returns_at": int(sim.finish_time[j])}
            for j, s in sorted(self._slot.items())
        ]

    def to_dict(self) -> dict[str, Any]:
        """The trace so far as plain, JSON-ready data."""
        sim = self.sim
        g = sim.graph
        out: dict[str, Any] = {"format": TRACE_FORMAT, **self.meta}
        out["family"] = g.family
        out["graph"] = {
            "work": g.work.tolist(),
            "kind": [KINDS[k] for k in g.kind],
            "parents": [list(p) for p in g.parents],
            "targets": np.flatnonzero(g.targets).tolist(),
        }
        out["budget"] = int(sim.budget)
        out["max_subagents"] = self.max_subagents
        out["t"] = int(sim.t)
        out["tokens"] = int(sim.tokens)
        out["steps"] = self.steps
        out["over"] = self.over
        out["running"] = [] if self.over else self.running()
        out["events"] = list(self.events)
        if sim.done or self.over:
            out["metrics"] = _plain(sim.metrics())
        return out


def _plain(value: Any) -> Any:
    """numpy scalars and arrays -> Python numbers and lists (for JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_trace(trace: dict[str, Any], path: str | Path) -> Path:
    """Write a trace (``EpisodeTracer.to_dict()``) as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(trace, indent=1) + "\n")
    return path


def read_trace(path: str | Path) -> dict[str, Any]:
    """Read a trace written by :func:`write_trace`; refuses other files by name."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != TRACE_FORMAT:
        raise ValueError(f"{path}: not a swarmgym trace (expected format {TRACE_FORMAT!r})")
    return data


class TraceRecorder(gym.Wrapper):
    """Traces every episode of a swarmgym env; optionally writes each as JSON.

    The last finished episode's trace is ``recorder.last_trace``; the running one is
    ``recorder.tracer``. Stepping costs one state comparison per step on top of the env.

    :param env: a swarmgym env (its ``unwrapped`` is a :class:`~swarmgym.env.SwarmEnv`), wrapped or not.
    :param folder: write ``{name_prefix}-episode-{k}.json`` here for each traced episode (None: keep in memory only).
    :param episode_trigger: ``episode_trigger(k) -> bool`` chooses the episodes traced (default: all).
    :param name_prefix: file name prefix.
    :param meta: extra fields stored in every trace (e.g. ``{"orchestrator": "critical_path"}``).
    """

    def __init__(
        self,
        env: gym.Env,
        folder: str | Path | None = None,
        *,
        episode_trigger: Callable[[int], bool] | None = None,
        name_prefix: str = "trace",
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(env)
        if not hasattr(env.unwrapped, "sim"):
            raise TypeError(f"TraceRecorder needs a swarmgym env, got {type(env.unwrapped).__name__}")
        self.folder = Path(folder) if folder is not None else None
        self.episode_trigger = episode_trigger
        self.name_prefix = name_prefix
        self.meta = dict(meta or {})
        self.episode = -1
        self.tracer: EpisodeTracer | None = None
        self.last_trace: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode += 1
        self.tracer = None
        if self.episode_trigger is None or self.episode_trigger(self.episode):
            spec = getattr(self.env, "spec", None)
            meta = {"env_id": spec.id if spec is not None else None, "seed": seed, "episode": self.episode, **self.meta}
            self.tracer = EpisodeTracer(self.env.unwrapped, meta)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        tracer = self.tracer
        if tracer is not None:
            tracer.observe(int(action), truncated=truncated and not terminated)
            if terminated or truncated:
                self.last_trace = tracer.to_dict()
                if self.folder is not None:
                    write_trace(self.last_trace, self.folder / f"{self.name_prefix}-episode-{self.episode}.json")
                self.tracer = None
        return obs, reward, terminated, truncated, info


__all__ = ["TRACE_FORMAT", "EpisodeTracer", "TraceRecorder", "read_trace", "write_trace"]
