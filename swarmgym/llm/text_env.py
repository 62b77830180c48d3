"""SwarmTextEnv: any swarmgym id played through text -- the state as a chat message, actions as tool calls.

## Description

The wrapped :class:`~swarmgym.env.SwarmEnv` is unchanged; this env renders each orchestrator
turn as a user message (:func:`swarmgym.llm.render.render_state` plus the events since the
last turn) and reads one assistant message of tool calls (:mod:`swarmgym.llm.tools`) per step.

## One step = one assistant message

The calls of a message are played in the order given, each as one step of the wrapped env
(action index by ``ActionLayout.encode``):

1. ``spawn_subagent`` calls run one after the other; they do not end the turn. At most
   ``max_spawns_per_turn`` spawns fit in a turn and only while a sub-agent slot is free
   (the env's mask); a spawn beyond that is an invalid action.
2. The first call that ends the turn (``do_node``, ``wait``, ``answer``) is played and the
   turn is over; every later call of the message is **not executed** (its tool result says
   so; counted in ``ignored_calls``).
3. A call that is not valid now (the mask forbids it), that cannot be read (arguments not
   JSON, unknown tool, missing or bad ``node``) is one **invalid action** by the env's rule: it
   spends the turn (one tick, orchestrator tokens, ``invalid_actions`` + 1) and the later calls
   are not executed. A call the mask forbids is played as itself; one that names no valid
   action index is played as the first action the mask forbids (there always is one before
   the episode ends: ``do`` on a running node, or ``wait`` when none runs).
4. A message of spawns only leaves the turn open: the next message continues it.
5. A message without any tool call (or an action that is not a message at all) is one
   invalid action.

## Action Space

``Text`` (printable ASCII): the assistant message as JSON -- OpenAI's
``{"role": "assistant", "content": ..., "tool_calls": [{"id", "type": "function",
"function": {"name", "arguments"}}]}``, a list of calls, or one call (``{"name": "wait",
"arguments": {}}``). The decoded object (dict or list) is accepted too. Malformed input never
raises: it is answered with a tool error (rule 3/5).

## Observation Space

``Text`` (printable ASCII, up to :data:`MAX_OBSERVATION_CHARS` characters): the results of the
message's calls (``## Results of your calls``) followed by the new user message (notes, the
events since the last turn, the state, the options). ``info["messages"]`` holds the same as a
chat: the system prompt, the last ``history`` exchanges, and the new tool and user messages;
``info["tools"]`` the tool schemas. Send both to a chat-completions endpoint as they are.

## Rewards

Those of the wrapped env, summed over the message's steps (the task score when the episode ends).

## Starting State

``reset(seed=...)`` resets the wrapped env with the same seed: the same instance and fates as
the array env.

## Episode End

As the wrapped env: termination by ``answer`` or the budget, truncation by a TimeLimit.
``info["metrics"]`` then holds the episode metrics; ``info["text_stats"]`` the counts of
messages, calls, invalid calls and ignored calls.

## Arguments

| Parameter | Type | Default | Meaning |
|-----------|------|---------|---------|
| env | str or gymnasium.Env | -- | a registered id (``"WideSearch-v0"`` resolves to ``"swarmgym/WideSearch-v0"``) or a SwarmEnv (possibly wrapped) |
| history | int or None | 2 | earlier exchanges kept in ``info["messages"]`` (None: all) |
| env_kwargs | dict or None | None | keyword arguments of ``gymnasium.make`` when ``env`` is an id |

## Version History

* v0: initial release.
"""

from __future__ import annotations

import json
import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from swarmgym.layout import ACTIVE, BLOCKED, DONE, RUNNING, STATUS_NAMES, ActionLayout
from swarmgym.llm.render import SYSTEM_PROMPT, Snapshot, events_between, render_state
from swarmgym.llm.tools import ToolCall, parse_message, tool_schemas, tool_table

#: Characters of the observation and action texts.
CHARSET = string.printable
#: Upper bound of an observation's length (a bound for the Text space, not a limit in practice).
MAX_OBSERVATION_CHARS = 1_000_000
#: Upper bound of an action's length.
MAX_ACTION_CHARS = 100_000
#: What a wasted turn costs, as the tool results say it.
LOST_TURN = "the turn is lost (one tick, counted as an invalid action)"


#: Control characters outside :data:`CHARSET`, written as ``\xNN`` escapes.
_ESCAPE_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(32), 127] if chr(c) not in CHARSET or chr(c) in "\r\x0b\x0c"}


def _ascii(text: str) -> str:
    """``text`` in :data:`CHARSET` (tab and newline kept; other control and non-ASCII characters escaped)."""
    return text.encode("ascii", "backslashreplace").decode("ascii").translate(_ESCAPE_CONTROLS)


def _make(env: str | gym.Env, env_kwargs: dict | None) -> gym.Env:
    if isinstance(env, str):
        from swarmgym.evaluation import resolve_id

        return gym.make(resolve_id(env), disable_env_checker=True, **(env_kwargs or {}))
    if env_kwargs:
        raise ValueError("env_kwargs apply only when env is an id")
    return env


class SwarmTextEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A swarmgym env as text: observations are chat messages, actions are tool calls (see the module docstring)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, env: str | gym.Env, *, history: int | None = 2, env_kwargs: dict | None = None) -> None:
        from swarmgym.env import SwarmEnv

        if history is not None and (isinstance(history, bool) or not isinstance(history, int) or history < 0):
            raise ValueError(f"history must be None or an integer >= 0, got {history!r}")
        inner = _make(env, env_kwargs)
        base = inner.unwrapped
        if not isinstance(base, SwarmEnv):
            raise TypeError(f"env must be a SwarmEnv (possibly wrapped), got {type(base).__name__}")
        if base.strict:
            raise ValueError("the text interface plays invalid calls by the env's no-op rule; make the env with strict=False")
        if base.config.extended:
            raise ValueError(
                "env: the text interface supports the base layout only (do, spawn, wait, answer); this env's config turns on "
                "mechanics of docs/mechanics.md (progressive, verification, tiers, hidden_reliability, coordination): make it without them"
            )
        gym.utils.RecordConstructorArgs.__init__(self, history=history)
        gym.Wrapper.__init__(self, inner)
        self.history = history
        self.layout = ActionLayout(base.n_max)
        self.tools = tool_table(self.layout)
        self.tool_schemas = tool_schemas(self.layout)
        self.system_prompt = SYSTEM_PROMPT
        self.observation_space = spaces.Text(MAX_OBSERVATION_CHARS, min_length=1, charset=CHARSET)
        self.action_space = spaces.Text(MAX_ACTION_CHARS, min_length=0, charset=CHARSET)
        self._turn = 0
        # the chat in blocks: [user_k, assistant_k+1, tool messages_k+1]; the last block is the new user message alone
        self._blocks: list[list[dict[str, Any]]] = []
        #: the whole chat of the episode, never trimmed (what a transcript records)
        self.transcript: list[dict[str, Any]] = []
        self._over = True
        self.stats: dict[str, int] = {}

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        _, info = self.env.reset(seed=seed, options=options)
        self._turn = 0
        self._over = False
        self.stats = {"messages": 0, "tool_calls": 0, "invalid_calls": 0, "ignored_calls": 0, "messages_without_calls": 0}
        sim = self.env.unwrapped.sim
        intro = f"A new task: {sim.graph.n_nodes} nodes of the {sim.graph.family} family. Plan your turns.\n\n"
        user = intro + "## Events since your last turn\nnone (the episode starts)\n\n" + self._render()
        user = _ascii(user)
        self._blocks = [[{"role": "user", "content": user}]]
        self.transcript = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]
        return user, self._info(info, [], [])

    def step(self, action):
        if self._over:
            raise RuntimeError("the episode is over; call reset()")
        self._turn += 1
        self.stats["messages"] += 1
        calls, content, error = parse_message(action, self.layout, self._turn, self.tools)
        self.stats["tool_calls"] += len(calls)
        results: list[tuple[ToolCall, str]] = []
        notes: list[str] = []
        events: list[str] = []
        actions: list[int] = []
        total_reward = 0.0
        terminated = truncated = False
        info: dict[str, Any] = {}
        if error is not None or not calls:
            self.stats["messages_without_calls"] += 1
            self.stats["invalid_calls"] += 1
            why = error or "your message had no tool call; call " + ", ".join(t.name for t in self.tools)
            notes.append(f"error: {why}; {LOST_TURN}")
            a = self._forbidden_action()
            _, total_reward, terminated, truncated, info = self._play(a, events)
            actions.append(a)
        else:
            ended_by: str | None = None
            for call in calls:
                if ended_by is not None:
                    results.append((call, f"not executed: {ended_by}"))
                    self.stats["ignored_calls"] += 1
                    continue
                text, a, valid = self._prepare(call)
                _, r, terminated, truncated, info = self._play(a, events)
                actions.append(a)
                total_reward += float(r)
                if valid:
                    text = self._success(call)
                else:
                    self.stats["invalid_calls"] += 1
                results.append((call, text))
                if terminated or truncated:
                    ended_by = "the episode is over"
                elif not valid or call.tool.ends_turn:
                    ended_by = f"the turn already ended with {call.describe()}"
        self._over = bool(terminated or truncated)
        # the chat: the assistant message as sent, one tool message per call, then the new user message
        # servers reject an assistant message with neither content nor tool calls
        assistant: dict[str, Any] = {"role": "assistant", "content": content if content is not None or calls else ""}
        if calls:
            assistant["tool_calls"] = [c.to_openai() for c in calls]
        tool_messages = [{"role": "tool", "tool_call_id": c.id, "content": _ascii(text)} for c, text in results]
        user = self._user_message(notes, events)
        self._blocks[-1] += [assistant, *tool_messages]
        self._blocks.append([{"role": "user", "content": user}])
        self.transcript += [assistant, *tool_messages, {"role": "user", "content": user}]
        if self.history is not None:
            self._blocks = self._blocks[-(self.history + 1) :]
        observation = user
        if results:
            observation = _ascii("## Results of your calls\n" + "\n".join(f"{c.describe()}: {t}" for c, t in results)) + "\n\n" + user
        info = self._info(info, actions, results)
        if self._over and "metrics" not in info:
            info["metrics"] = self.env.unwrapped.sim.metrics()
        return observation, total_reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.env.unwrapped.sim is None:
            return "SwarmTextEnv (not reset)"
        return self._render()

    # ------------------------------------------------------------------ messages
    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat to send now: the system prompt, the kept exchanges and the latest user message."""
        return [{"role": "system", "content": self.system_prompt}] + [m for block in self._blocks for m in block]

    def _render(self) -> str:
        base = self.env.unwrapped
        return render_state(base.sim, base.config, self.layout, base.action_masks(), self.tools)

    def _user_message(self, notes: list[str], events: list[str]) -> str:
        parts = []
        if notes:
            parts.append("## Notes\n" + "\n".join(notes))
        parts.append("## Events since your last turn\n" + ("\n".join(events) if events else "none"))
        sim = self.env.unwrapped.sim
        body = "\n\n".join(parts) + "\n\n" + self._render()
        if sim.done:
            m = sim.metrics()
            body += (
                f"\n\n## Episode over\nscore {m['score']:.3f}; critical steps {m['critical_steps']} of budget {m['budget']}; "
                f"speedup {m['speedup']:.2f} (ideal {m['ideal_speedup']:.2f}); sub-agents spawned {m['n_spawned']}; "
                f"simulated tokens {m['tokens']} (${m['cost_usd']:.6f})"
            )
        return _ascii(body)

    def _info(self, info: dict, actions: list[int], results: list[tuple[ToolCall, str]]) -> dict[str, Any]:
        out = dict(info)
        out["messages"] = self.messages
        out["tools"] = self.tool_schemas
        out["actions"] = list(actions)
        out["tool_results"] = [
            {"tool_call_id": c.id, "call": c.describe(), "result": t, "ok": not t.startswith(("error", "not executed"))} for c, t in results
        ]
        out["text_stats"] = dict(self.stats)
        return out

    # ------------------------------------------------------------------ playing calls
    def _play(self, a: int, events: list[str]):
        base = self.env.unwrapped
        before = Snapshot.of(base.sim)
        out = self.env.step(a)
        events.extend(events_between(before, base.sim, base.config.max_attempts))
        return out

    def _forbidden_action(self) -> int:
        """The first action index the mask forbids (played for a call that names no valid action)."""
        forbidden = np.flatnonzero(~self.env.unwrapped.action_masks())
        if forbidden.size == 0:  # cannot happen before the episode ends; kept as a clear failure
            raise RuntimeError("no action is forbidden now; an unreadable call cannot be played as an invalid action")
        return int(forbidden[0])

    def _prepare(self, call: ToolCall) -> tuple[str, int, bool]:
        """``(result text so far, action index to play, whether it is valid)`` of one call."""
        if call.error is not None:
            return f"error: {call.error}; {LOST_TURN}", self._forbidden_action(), False
        base = self.env.unwrapped
        a = self.layout.encode(call.tool.action, call.node)
        if base.action_masks()[a]:
            return "", a, True
        return f"error: {call.describe()} is not valid now: {self._why_invalid(call)}; {LOST_TURN}", a, False

    def _why_invalid(self, call: ToolCall) -> str:
        base = self.env.unwrapped
        sim, cfg = base.sim, base.config
        action, i = call.tool.action, call.node
        if action == "wait":
            return "no sub-agent is running"
        if i is None:
            return "it is not allowed in this state"
        if i >= sim.graph.n_nodes:
            return f"node {i} does not exist (nodes are 0..{sim.graph.n_nodes - 1})"
        status = int(sim.status[i])
        if status == BLOCKED:
            waiting = [p for p in sim.graph.parents[i] if sim.status[p] != DONE]
            return f"node {i} is blocked (waiting on node{'s' if len(waiting) > 1 else ''} {', '.join(map(str, waiting))})"
        if status == RUNNING:
            return f"node {i} is running on a sub-agent"
        if status == DONE:
            return f"node {i} is already done"
        if action == "spawn":
            if status == ACTIVE:
                return f"you have started node {i}; only do_node continues it"
            if sim.attempts[i] >= cfg.max_attempts:
                return f"node {i} has used its {cfg.max_attempts} sub-agent attempts; only do_node works on it"
            if len(sim.running) >= cfg.max_subagents:
                return f"all {cfg.max_subagents} sub-agent slots are busy"
            if sim.spawns_this_turn >= cfg.max_spawns_per_turn:
                return f"the spawn cap of a turn ({cfg.max_spawns_per_turn}) is reached"
        return f"node {i} is {STATUS_NAMES[status]}"

    def _success(self, call: ToolCall) -> str:
        base = self.env.unwrapped
        sim, cfg = base.sim, base.config
        action, i = call.tool.action, call.node
        if action == "spawn":
            return (
                f"a sub-agent is working on node {i} (attempt {sim.attempts[i]} of {cfg.max_attempts}); "
                f"{len(sim.running)} of {cfg.max_subagents} sub-agents running; your turn goes on"
            )
        if action == "do":
            left = int(sim.work_left[i])
            return f"you worked one step on node {i}; now t={sim.t}; " + (
                f"node {i} is done" if sim.status[i] == DONE else f"{left} step{'s' if left != 1 else ''} left"
            )
        if action == "wait":
            return f"the clock ran to t={sim.t}"
        if action == "answer":
            return f"submitted at t={sim.t}; score {sim.score():.3f}"
        return "done"

    def __repr__(self) -> str:
        return f"SwarmTextEnv({self.env!r}, history={self.history})"


def assistant_message(calls: list[tuple[str, dict[str, Any]]], content: str | None = None) -> str:
    """An assistant message as the action JSON: ``assistant_message([("spawn_subagent", {"node": 1}), ("wait", {})])``."""
    return json.dumps(
        {
            "role": "assistant",
            "content": content,
            "tool_calls": [
                {"id": f"call_{k}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for k, (name, args) in enumerate(calls)
            ],
        }
    )


__all__ = ["CHARSET", "MAX_OBSERVATION_CHARS", "SwarmTextEnv", "assistant_message"]
