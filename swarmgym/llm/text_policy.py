"""The rendered text read back into the array observation: array orchestrators play through text.

:func:`parse_state` reads the ``## State`` and ``## Nodes`` sections that
:func:`swarmgym.llm.render.render_state` writes; :meth:`ParsedState.observation` rebuilds
the Dict observation (``nodes``, ``globals``, optionally ``adjacency``) and the action mask
exactly as :class:`swarmgym.env.SwarmEnv` computes them (same float32 values), from the text
alone. :class:`TextOrchestrator` wraps any array orchestrator (``act(obs, mask)``) into a
text agent: it reads an observation text and answers with the assistant message of tool
calls. That the round trip is exact is what shows the text carries everything a decision
needs (``python -m swarmgym.llm.roundtrip`` checks it over many episodes).

Two ways to emit a turn:

* ``whole_turn=False``: one call per message, as the array env takes one action per step
  (a spawn leaves the turn open; the next observation continues it). Exact for any policy.
* ``whole_turn=True``: the turn's spawns and its timed action in one message, as an LLM
  would. After each chosen spawn the parsed state is advanced as the simulator would
  (the node running, one slot and one spawn of the turn used) and the policy asked again.
  Exact for policies that do not read ``tokens_used`` (the hand-off tokens are not in the
  text) when spawns take no clock time (``spawn_ticks == 0``, every suite id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from swarmgym.graph import KINDS
from swarmgym.layout import (
    COUNT_SCALE,
    GLOBAL_FEATURES,
    KIND_COLUMN0,
    MAX_SUBAGENTS_SCALE,
    NODE_COLUMN,
    NODE_FEATURES,
    STATUS_COLUMN0,
    STATUS_NAMES,
    TIME_LEFT_HALF,
    TOKENS_HALF,
    UNFINISHED_SCALE,
    WORK_SCALE,
    ActionLayout,
)
from swarmgym.llm.render import NODE_TABLE_COLUMNS
from swarmgym.llm.tools import tool_table

_HEADER = {
    "family": re.compile(r"^family: (?P<family>\S+); nodes: (?P<n>\d+); node slots: (?P<n_max>\d+)$", re.M),
    "clock": re.compile(r"^clock: t=(?P<t>\d+), budget (?P<budget>\d+), (?P<left>-?\d+) ticks left$", re.M),
    "subagents": re.compile(
        r"^sub-agents: (?P<running>\d+) running of (?P<max_subagents>\d+); spawns this turn: (?P<spawns>\d+) of "
        r"(?P<max_spawns>\d+); attempts per node: (?P<max_attempts>\d+)$",
        re.M,
    ),
    "progress": re.compile(
        r"^progress: targets done (?P<targets_done>\d+) of (?P<n_targets>\d+); nodes done (?P<nodes_done>\d+) of \d+; "
        r"invalid actions: (?P<invalid>\d+)$",
        re.M,
    ),
    "tokens": re.compile(r"^simulated tokens: (?P<tokens>\d+) \(input (?P<input>\d+), output (?P<output>\d+);", re.M),
    "critical": re.compile(r"^critical path: (?P<critical_path>\d+) steps$", re.M),
}
_RUNNING_NOTE = re.compile(r"^sub-agent for (\d+) ticks(;|$)")


class StateParseError(ValueError):
    """The text is not a rendered state (a section or a field is missing or malformed)."""


@dataclass
class NodeRow:
    """One row of the node table."""

    id: int
    status: str
    kind: str
    work: int
    left: int
    prio: int
    parents: tuple[int, ...]
    tries: int
    target: bool
    note: str
    elapsed: int = 0
    last_failed: bool = False


@dataclass
class ParsedState:
    """What the text says about the state (integers, as rendered)."""

    family: str
    n_max: int
    t: int
    budget: int
    running: int
    max_subagents: int
    spawns_this_turn: int
    max_spawns_per_turn: int
    max_attempts: int
    targets_done: int
    n_targets: int
    nodes_done: int
    invalid_actions: int
    tokens: int
    critical_path: int
    nodes: list[NodeRow] = field(default_factory=list)
    over: bool = False

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def mask(self, n_max: int | None = None) -> np.ndarray:
        """The action mask the env computes for this state (once the episode is over: exactly
        ``answer``, the team's rule for a terminal observation, meaning nothing)."""
        lay = ActionLayout(n_max or self.n_max)
        mask = np.zeros(lay.n, dtype=bool)
        if self.over:
            mask[lay.answer] = True
            return mask
        for r in self.nodes:
            if r.status in ("ready", "active"):
                mask[lay.encode("do", r.id)] = True
        if self.running < self.max_subagents and self.spawns_this_turn < self.max_spawns_per_turn:
            for r in self.nodes:
                if r.status == "ready" and r.tries < self.max_attempts:
                    mask[lay.encode("spawn", r.id)] = True
        mask[lay.wait] = self.running > 0
        mask[lay.answer] = True
        return mask

    def observation(self, n_max: int | None = None, with_adjacency: bool = False) -> dict[str, np.ndarray]:
        """The Dict observation, value for value as :class:`swarmgym.env.SwarmEnv` encodes it."""
        n_max = n_max or self.n_max
        n = self.n_nodes
        if n > n_max:
            raise ValueError(f"the text has {n} nodes; n_max is {n_max}")
        col = NODE_COLUMN
        work = np.array([r.work for r in self.nodes])
        work_left = np.array([r.left for r in self.nodes])
        tries = np.array([r.tries for r in self.nodes])
        n_parents = np.array([len(r.parents) for r in self.nodes])
        n_children = np.zeros(n, dtype=np.int64)
        unfinished = np.zeros(n, dtype=np.int64)
        done = np.array([r.status == "done" for r in self.nodes])
        for r in self.nodes:
            for p in r.parents:
                n_children[p] += 1
                unfinished[r.id] += int(not done[p])
        nodes = np.zeros((n_max, len(NODE_FEATURES)), dtype=np.float32)
        view = nodes[:n]
        view[:, col["present"]] = 1.0
        view[np.arange(n), STATUS_COLUMN0 + np.array([STATUS_NAMES.index(r.status) for r in self.nodes])] = 1.0
        view[np.arange(n), KIND_COLUMN0 + np.array([KINDS.index(r.kind) for r in self.nodes])] = 1.0
        view[:, col["work"]] = np.minimum(work / WORK_SCALE, 1.0)
        view[:, col["work_left"]] = np.minimum(np.arange(65) * (1.0 / WORK_SCALE), 1.0).astype(np.float32)[work_left]
        view[:, col["attempts"]] = (np.arange(self.max_attempts + 1) * (1.0 / self.max_attempts)).astype(np.float32)[tries]
        view[:, col["unfinished_parents"]] = np.minimum(np.arange(n + 1) * (1.0 / UNFINISHED_SCALE), 1.0).astype(np.float32)[unfinished]
        view[:, col["bottom_level"]] = np.array([r.prio for r in self.nodes]) / self.critical_path
        view[:, col["is_target"]] = np.array([r.target for r in self.nodes])
        view[:, col["n_parents"]] = np.minimum(n_parents / COUNT_SCALE, 1.0)
        view[:, col["last_attempt_failed"]] = np.array([r.last_failed for r in self.nodes])
        inv_work = 1.0 / work
        for r in self.nodes:
            if r.status == "running":
                view[r.id, col["subagent_elapsed"]] = min(1.0, r.elapsed * inv_work[r.id])
        view[:, col["n_children"]] = np.minimum(n_children / COUNT_SCALE, 1.0)
        left = self.budget - self.t
        can_spawn = self.running < self.max_subagents and self.spawns_this_turn < self.max_spawns_per_turn and not self.over
        glob = np.array(
            [
                self.t / self.budget,
                left / (left + TIME_LEFT_HALF),
                self.running / self.max_subagents if self.max_subagents else 0.0,
                self.spawns_this_turn / self.max_spawns_per_turn,
                float(can_spawn),
                self.tokens / (self.tokens + TOKENS_HALF),
                self.nodes_done / n,
                self.targets_done / self.n_targets,
                n / n_max,
                self.max_subagents / MAX_SUBAGENTS_SCALE,
            ],
            dtype=np.float32,
        )
        assert glob.shape == (len(GLOBAL_FEATURES),)
        obs = {"nodes": nodes, "globals": glob}
        if with_adjacency:
            adj = np.zeros((n_max, n_max), dtype=np.float32)
            for r in self.nodes:
                adj[r.id, list(r.parents)] = 1.0
            obs["adjacency"] = adj
        return obs

    def after_spawn(self, node: int) -> "ParsedState":
        """The state after a valid ``spawn(node)`` that takes no clock time (hand-off tokens not counted)."""
        rows = [replace(r) for r in self.nodes]
        r = rows[node]
        r.status, r.tries, r.elapsed, r.last_failed, r.note = "running", r.tries + 1, 0, False, "sub-agent for 0 ticks"
        return replace(self, nodes=rows, running=self.running + 1, spawns_this_turn=self.spawns_this_turn + 1)


def _section(text: str, title: str) -> str:
    start = text.rfind(f"## {title}\n")
    if start < 0:
        raise StateParseError(f"the text has no '## {title}' section")
    body = text[start + len(title) + 4 :]
    end = body.find("\n## ")
    return body if end < 0 else body[:end]


def parse_state(text: str) -> ParsedState:
    """Read a rendered state (any text that contains the ``## State`` and ``## Nodes`` sections;
    the last occurrence counts)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    head = _section(text, "State")
    fields: dict[str, Any] = {}
    for name, pattern in _HEADER.items():
        m = pattern.search(head)
        if m is None:
            raise StateParseError(f"the '## State' section has no {name!r} line")
        fields.update(m.groupdict())
    table = [line for line in _section(text, "Nodes").splitlines() if line.strip()]
    if not table or table[0].split() != list(NODE_TABLE_COLUMNS):
        raise StateParseError(f"the node table must start with the header {' '.join(NODE_TABLE_COLUMNS)}")
    rows = []
    for line in table[1:]:
        cells = line.split(None, len(NODE_TABLE_COLUMNS) - 1)
        if len(cells) != len(NODE_TABLE_COLUMNS):
            raise StateParseError(f"a node row must have {len(NODE_TABLE_COLUMNS)} columns: {line!r}")
        nid, status, kind, work, left, prio, ctx, tries, target, parents, note = cells
        tried = tries.split("/")[0]
        row = NodeRow(
            id=int(nid),
            status=status,
            kind=kind,
            work=int(work),
            left=int(left),
            prio=int(prio),
            parents=() if parents == "-" else tuple(int(p) for p in parents.split(",")),
            tries=int(tried),
            target=target == "yes",
            note=note,
        )
        if status not in STATUS_NAMES or kind not in KINDS or len(row.parents) != int(ctx) or row.id != len(rows):
            raise StateParseError(f"malformed node row: {line!r}")
        m = _RUNNING_NOTE.match(note)
        row.elapsed = int(m.group(1)) if m else 0
        row.last_failed = "last sub-agent failed" in note.split("; ")
        rows.append(row)
    if len(rows) != int(fields["n"]):
        raise StateParseError(f"the node table has {len(rows)} rows; the state says {fields['n']} nodes")
    options = _section(text, "Options")
    return ParsedState(
        family=fields["family"],
        n_max=int(fields["n_max"]),
        t=int(fields["t"]),
        budget=int(fields["budget"]),
        running=int(fields["running"]),
        max_subagents=int(fields["max_subagents"]),
        spawns_this_turn=int(fields["spawns"]),
        max_spawns_per_turn=int(fields["max_spawns"]),
        max_attempts=int(fields["max_attempts"]),
        targets_done=int(fields["targets_done"]),
        n_targets=int(fields["n_targets"]),
        nodes_done=int(fields["nodes_done"]),
        invalid_actions=int(fields["invalid"]),
        tokens=int(fields["tokens"]),
        critical_path=int(fields["critical_path"]),
        nodes=rows,
        over=options.strip().startswith("none: the episode is over"),
    )


class TextOrchestrator:
    """An array orchestrator as a text agent: observation text in, assistant message (a dict) out.

    :param orchestrator: anything with ``act(obs, mask) -> int64[B]`` (a spec string is loaded
        with :func:`swarmgym.orchestrators.load_orchestrator`).
    :param whole_turn: emit a turn's spawns and its timed action in one message (see the module docstring).
    :param n_max: node slots of the observation it rebuilds (default: the text's ``node slots``).
    """

    def __init__(self, orchestrator: Any = "critical_path", *, whole_turn: bool = False, n_max: int | None = None) -> None:
        if isinstance(orchestrator, str):
            from swarmgym.orchestrators import load_orchestrator

            orchestrator = load_orchestrator(orchestrator)
        self.orchestrator = orchestrator
        self.whole_turn = whole_turn
        self.n_max = n_max
        self.name = f"text:{getattr(orchestrator, 'name', type(orchestrator).__name__)}"

    def reset(self, seed: int | None = None) -> None:
        if hasattr(self.orchestrator, "reset"):
            self.orchestrator.reset(seed)

    def actions(self, text: str) -> list[int]:
        """The action indices of the next message (one, or a whole turn)."""
        state = parse_state(text)
        n_max = self.n_max or state.n_max
        lay = ActionLayout(n_max)
        out = []
        while True:
            obs = state.observation(n_max)
            mask = state.mask(n_max)
            a = int(np.asarray(self.orchestrator.act({k: v[None] for k, v in obs.items()}, mask[None])).reshape(-1)[0])
            out.append(a)
            name, node = lay.decode(a)
            if not self.whole_turn or name != "spawn" or not mask[a]:
                return out
            state = state.after_spawn(node)

    def act(self, text: str) -> dict[str, Any]:
        """The assistant message (OpenAI format, arguments as JSON strings) for an observation text."""
        return calls_message(self.actions(text), ActionLayout(self.n_max or parse_state(text).n_max))


def calls_message(actions: list[int], layout: ActionLayout, content: str | None = None, id_prefix: str = "call") -> dict[str, Any]:
    """The assistant message whose tool calls are the given action indices."""
    import json

    by_action = {}
    for tool in tool_table(layout):
        by_action.setdefault(tool.action, tool)
    calls = []
    for k, a in enumerate(actions):
        name, node = layout.decode(a)
        tool = by_action[name]
        args = {"node": node} if tool.takes_node else {}
        calls.append({"id": f"{id_prefix}_{k}", "type": "function", "function": {"name": tool.name, "arguments": json.dumps(args)}})
    return {"role": "assistant", "content": content, "tool_calls": calls}


__all__ = ["NodeRow", "ParsedState", "StateParseError", "TextOrchestrator", "calls_message", "parse_state"]
