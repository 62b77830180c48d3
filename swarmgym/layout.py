"""The one layout of swarmgym's arrays: actions, observations, the flat form and episode metrics.

Every part of the package (the reference env, the batched kernel, the orchestrators,
evaluation, the MoE policy, the text interface) reads offsets and columns from here;
no module writes ``2 * n_max + 1`` by hand.

Actions (``Discrete(ActionLayout(n_max).n)``), in blocks:

=============  ===================  ==============================================
block          indices              meaning
=============  ===================  ==============================================
``do``         ``[0, n_max)``       ``do(i)``: the orchestrator works one tick on i
``spawn``      ``[n_max, 2 n_max)`` ``spawn(i)``: hand node i to a new sub-agent
``wait``       ``2 n_max``          run the clock to the next sub-agent event
``answer``     ``2 n_max + 1``      submit now; the episode ends
=============  ===================  ==============================================

Observations: ``nodes`` ``[n_max, len(NODE_FEATURES)]`` (padding rows all zero),
``globals`` ``[len(GLOBAL_FEATURES)]``, optionally ``adjacency`` ``[n_max, n_max]``
(``adjacency[i, p] = 1`` when p is a parent of i). The flat form concatenates
nodes (row-major), globals, adjacency (if any) and the action mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from swarmgym.config import MAX_TIERS
from swarmgym.graph import KINDS

#: Node status codes, in the order of the observation's one-hot status columns.
STATUS_NAMES: tuple[str, ...] = ("blocked", "ready", "active", "running", "done")
BLOCKED, READY, ACTIVE, RUNNING, DONE = range(len(STATUS_NAMES))

# ---------------------------------------------------------------------------- actions
#: Names of the action blocks, in index order; a block of ``per_node`` actions has one per node slot.
ACTION_BLOCKS: tuple[tuple[str, bool], ...] = (("do", True), ("spawn", True), ("wait", False), ("answer", False))
#: The extended layout (a config with any mechanic of ``docs/mechanics.md`` on) appends
#: ``verify(i)`` and a spawn block per further sub-agent tier; ``spawn`` is tier 0. The base
#: blocks keep their indices, so a policy written for the base layout acts on it unchanged.
EXTENDED_BLOCKS: tuple[tuple[str, bool], ...] = (("verify", True), *((f"spawn_{t}", True) for t in range(1, MAX_TIERS)))


def spawn_block(tier: int) -> str:
    """The name of the action block that spawns a sub-agent of tier ``tier`` (``"spawn"`` for tier 0)."""
    if isinstance(tier, bool) or not isinstance(tier, (int, np.integer)) or not 0 <= tier < MAX_TIERS:
        raise ValueError(f"tier must be an integer in [0, {MAX_TIERS - 1}], got {tier!r}")
    return "spawn" if tier == 0 else f"spawn_{int(tier)}"


@dataclass(frozen=True)
class ActionLayout:
    """Offsets of the Discrete action space for ``n_max`` node slots.

    ``layout.do``, ``layout.spawn`` are the first index of their per-node block;
    ``layout.wait``, ``layout.answer`` are single indices; ``layout.n`` is the action count.
    With ``extended=True`` the blocks of :data:`EXTENDED_BLOCKS` follow ``answer``
    (``layout.verify``, ``layout["spawn_1"]``, ...; ``layout.spawn_tier(t)``).
    """

    n_max: int
    extended: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.n_max, bool) or not isinstance(self.n_max, (int, np.integer)) or self.n_max < 1:
            raise ValueError(f"n_max must be a positive integer, got {self.n_max!r}")
        if not isinstance(self.extended, (bool, np.bool_)):
            raise TypeError(f"extended must be a bool, got {self.extended!r}")
        object.__setattr__(self, "extended", bool(self.extended))
        start = 0
        offsets = {}
        for name, per_node in self.blocks:
            offsets[name] = start
            start += self.n_max if per_node else 1
        object.__setattr__(self, "_offsets", offsets)
        object.__setattr__(self, "_n", start)

    @property
    def blocks(self) -> tuple[tuple[str, bool], ...]:
        """``(name, per_node)`` of every block, in index order."""
        return ACTION_BLOCKS + EXTENDED_BLOCKS if self.extended else ACTION_BLOCKS

    @property
    def verify(self) -> int:
        """First index of the ``verify(i)`` block (extended layout only)."""
        if not self.extended:
            raise AttributeError("verify exists only in the extended layout (ActionLayout(n_max, extended=True))")
        return self._offsets["verify"]

    def spawn_tier(self, tier: int) -> int:
        """First index of the block that spawns tier ``tier`` (0: ``spawn``; > 0: extended layout only)."""
        name = spawn_block(tier)
        if name not in self._offsets:
            raise ValueError(f"spawning tier {tier} needs the extended layout (ActionLayout(n_max, extended=True))")
        return self._offsets[name]

    @property
    def do(self) -> int:
        return self._offsets["do"]

    @property
    def spawn(self) -> int:
        return self._offsets["spawn"]

    @property
    def wait(self) -> int:
        return self._offsets["wait"]

    @property
    def answer(self) -> int:
        return self._offsets["answer"]

    @property
    def n(self) -> int:
        """Number of actions."""
        return self._n

    @classmethod
    def for_actions(cls, n_actions: int, n_max: int | None = None) -> "ActionLayout":
        """The layout whose action count is ``n_actions`` (e.g. the size of a mask).

        Without ``n_max`` only the base layout is recognised; with it (e.g. the node
        rows of the observation) the extended one too."""
        singles = sum(1 for _, p in ACTION_BLOCKS if not p)
        if n_max is not None:
            for extended in (False, True):
                lay = cls(int(n_max), extended)
                if lay.n == int(n_actions):
                    return lay
            raise ValueError(
                f"n_actions must be {cls(int(n_max)).n} (base layout) or {cls(int(n_max), True).n} (extended) for n_max={n_max}, got {n_actions!r}"
            )
        per_node = sum(1 for _, p in ACTION_BLOCKS if p)
        n_max_, rest = divmod(int(n_actions) - singles, per_node)
        if rest or n_max_ < 1:
            raise ValueError(f"n_actions must be {per_node} * n_max + {singles} for some n_max >= 1, got {n_actions!r}")
        return cls(n_max_)

    def __getitem__(self, name: str) -> int:
        """``layout["spawn"]`` is ``layout.spawn`` and ``layout["n"]`` is ``layout.n`` (the dict form of v0.1's ``env.layout``)."""
        if name == "n":
            return self._n
        return self._offsets[name]

    def encode(self, name: str, node: int | None = None) -> int:
        """The action index of ``name`` (``"do"``, ``"spawn"``, ``"wait"``, ``"answer"``; extended:
        ``"verify"``, ``"spawn_1"``, ...) on ``node``."""
        per_node = dict(self.blocks).get(name)
        if per_node is None:
            raise ValueError(f"action name must be one of {[b for b, _ in self.blocks]}, got {name!r}")
        if per_node:
            if node is None or isinstance(node, bool) or not isinstance(node, (int, np.integer)) or not 0 <= node < self.n_max:
                raise ValueError(f"{name}(node): node must be an integer in [0, {self.n_max - 1}], got {node!r}")
            return self._offsets[name] + int(node)
        if node is not None:
            raise ValueError(f"{name} takes no node, got {node!r}")
        return self._offsets[name]

    def decode(self, action: int) -> tuple[str, int | None]:
        """``(name, node)`` of an action index (``node`` is None for ``wait``/``answer``)."""
        a = int(action)
        if not 0 <= a < self._n:
            raise ValueError(f"action must be an integer in [0, {self._n - 1}], got {action!r}")
        for name, per_node in reversed(self.blocks):
            start = self._offsets[name]
            if a >= start:
                return (name, a - start) if per_node else (name, None)
        raise AssertionError("unreachable")

    def describe(self, action: int) -> str:
        """``"do(3)"``, ``"spawn(0)"``, ``"wait"``, ``"answer"``, ``"verify(2)"``, ``"spawn_1(4)"``."""
        name, node = self.decode(action)
        return name if node is None else f"{name}({node})"

    def block(self, mask: np.ndarray, name: str) -> np.ndarray:
        """The ``[..., n_max]`` (or ``[...]`` for single actions) part of a ``[..., n]`` mask or logits array."""
        start = self._offsets[name]
        return mask[..., start : start + self.n_max] if dict(self.blocks)[name] else mask[..., start]


# ---------------------------------------------------------------------------- observations
#: Columns of ``obs["nodes"]``.
NODE_FEATURES: tuple[str, ...] = (
    "present",
    *(f"status_{s}" for s in STATUS_NAMES),
    *(f"kind_{k}" for k in KINDS),
    "work",
    "work_left",
    "attempts",
    "unfinished_parents",
    "bottom_level",
    "is_target",
    "n_parents",
    "last_attempt_failed",
    "subagent_elapsed",
    "n_children",
)
#: Entries of ``obs["globals"]``.
GLOBAL_FEATURES: tuple[str, ...] = (
    "time_used",
    "time_left",
    "running_subagents",
    "spawns_this_turn",
    "can_spawn",
    "tokens_used",
    "nodes_done",
    "targets_done",
    "n_nodes",
    "max_subagents",
)
#: Columns appended to ``obs["nodes"]`` in the extended observation (``docs/mechanics.md``):
#: ``by_subagent`` 1 while the node is done by a sub-agent's result; ``verified`` 1 once that result
#: passed ``verify``; ``attempt_tier`` ``(t + 1) / MAX_TIERS`` for the tier ``t`` of the node's latest
#: sub-agent attempt, 0 before any.
EXTENDED_NODE_FEATURES: tuple[str, ...] = ("by_subagent", "verified", "attempt_tier")
#: Entries appended to ``obs["globals"]`` in the extended observation: ``results_read``
#: ``r / (r + RESULTS_HALF)`` for the r sub-agent results returned so far; per tier ``t`` (zero for
#: tiers the config lacks): ``tier{t}_returns`` ``r_t / (r_t + RESULTS_HALF)``, ``tier{t}_fail_rate``
#: failures seen / returns (0 before any), ``tier{t}_caught_rate`` wrong results caught / verifications
#: of that tier's results (0 before any). What the orchestrator can know of the hidden reliability.
EXTENDED_GLOBAL_FEATURES: tuple[str, ...] = (
    "results_read",
    *(f"tier{t}_{q}" for t in range(MAX_TIERS) for q in ("returns", "fail_rate", "caught_rate")),
)
RESULTS_HALF = 8.0


def node_features(extended: bool = False) -> tuple[str, ...]:
    """Columns of ``obs["nodes"]`` (base, or base + :data:`EXTENDED_NODE_FEATURES`)."""
    return NODE_FEATURES + EXTENDED_NODE_FEATURES if extended else NODE_FEATURES


def global_features(extended: bool = False) -> tuple[str, ...]:
    """Entries of ``obs["globals"]`` (base, or base + :data:`EXTENDED_GLOBAL_FEATURES`)."""
    return GLOBAL_FEATURES + EXTENDED_GLOBAL_FEATURES if extended else GLOBAL_FEATURES


#: Column index of each node feature, and of each global feature (extended ones after the base ones).
NODE_COLUMN: Mapping[str, int] = {name: i for i, name in enumerate(NODE_FEATURES + EXTENDED_NODE_FEATURES)}
GLOBAL_COLUMN: Mapping[str, int] = {name: i for i, name in enumerate(GLOBAL_FEATURES + EXTENDED_GLOBAL_FEATURES)}
#: First column of the one-hot status block and of the one-hot kind block.
STATUS_COLUMN0 = NODE_COLUMN["status_blocked"]
KIND_COLUMN0 = NODE_COLUMN[f"kind_{KINDS[0]}"]

# Scales of the encoded features (every feature lies in [0, 1]).
WORK_SCALE = 16.0  # work, work_left: divided by this, clipped to 1
COUNT_SCALE = 8.0  # n_parents, n_children: divided by this, clipped to 1
UNFINISHED_SCALE = 4.0  # unfinished_parents: divided by this, clipped to 1
TIME_LEFT_HALF = 16.0  # time_left = left / (left + 16)
TOKENS_HALF = 1e5  # tokens_used = tokens / (tokens + 1e5)
MAX_SUBAGENTS_SCALE = 64.0  # max_subagents: divided by this


@dataclass(frozen=True)
class FlatLayout:
    """Where each part of the dict observation lies in the flat vector, and the inverse.

    :param n_max: node slots.
    :param with_adjacency: whether the adjacency matrix is part of the observation.
    :param extended: the extended observation and action layout (``SwarmConfig.extended``).
    """

    n_max: int
    with_adjacency: bool = False
    extended: bool = False

    @property
    def n_actions(self) -> int:
        return ActionLayout(self.n_max, self.extended).n

    @property
    def n_node_features(self) -> int:
        return len(node_features(self.extended))

    @property
    def n_global_features(self) -> int:
        return len(global_features(self.extended))

    @property
    def slices(self) -> dict[str, slice]:
        """``{"nodes", "globals", ["adjacency",] "action_mask"}`` -> slice of the flat vector."""
        out, start = {}, 0
        sizes = [("nodes", self.n_max * self.n_node_features), ("globals", self.n_global_features)]
        if self.with_adjacency:
            sizes.append(("adjacency", self.n_max * self.n_max))
        sizes.append(("action_mask", self.n_actions))
        for name, size in sizes:
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def size(self) -> int:
        return self.slices["action_mask"].stop

    def flatten(self, obs: Mapping[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """The flat ``float32`` vector (``[..., size]``) of a dict observation and its action mask."""
        lead = np.shape(obs["globals"])[:-1]
        parts = [np.reshape(obs["nodes"], (*lead, -1)), obs["globals"]]
        if self.with_adjacency:
            parts.append(np.reshape(obs["adjacency"], (*lead, -1)))
        parts.append(mask)
        return np.concatenate(parts, axis=-1, dtype=np.float32)

    def unflatten(self, flat: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``(dict observation, bool action mask)`` of a flat vector ``[..., size]``."""
        flat = np.asarray(flat)
        if flat.shape[-1] != self.size:
            raise ValueError(f"a flat observation for n_max={self.n_max} has {self.size} entries, got {flat.shape[-1]}")
        lead = flat.shape[:-1]
        s = self.slices
        obs = {
            "nodes": flat[..., s["nodes"]].reshape(*lead, self.n_max, self.n_node_features),
            "globals": flat[..., s["globals"]],
        }
        if self.with_adjacency:
            obs["adjacency"] = flat[..., s["adjacency"]].reshape(*lead, self.n_max, self.n_max)
        return obs, flat[..., s["action_mask"]] > 0.5


# ---------------------------------------------------------------------------- metrics
#: Episode metrics (``info["metrics"]`` when an episode ends), each with its definition.
METRICS: Mapping[str, str] = {
    "family": "the task family's name (the batched engine reports family_id, an index into its family_names)",
    "score": "F1 over target outputs: a right output a true positive, a wrong one a false positive, a missing one a false negative",
    "critical_steps": "ticks elapsed (wall clock of the episode)",
    "serial_steps": "agent-steps of work accomplished (what one agent alone would take)",
    "lower_bound": "max(longest dependency path accomplished, ceil(serial_steps / (max_subagents + 1))), "
    "each times fastest_percent / 100 (below 100 only when a tier is faster than the orchestrator), rounded up",
    "speedup": "serial_steps / critical_steps (1 for serial play)",
    "ideal_speedup": "serial_steps / lower_bound",
    "serial_collapse_index": "(ideal - speedup) / (ideal - 1), clipped to [0, 1]; 0 when ideal_speedup is 1",
    "spurious_spawn_rate": "(failed + wrong + isolated + unfinished + cancelled sub-agents) / spawned; 0 without spawns",
    "makespan_ratio": "critical_steps / lower_bound",
    "task_serial_steps": "total work of the task",
    "task_lower_bound": "the task's makespan floor with max_subagents + 1 workers (scaled as lower_bound)",
    "budget": "the critical-step budget",
    "budget_exhausted": "whether the budget ended the episode",
    "n_spawned": "sub-agents spawned",
    "n_subagent_ok": "sub-agents that returned a right result",
    "n_subagent_failed": "sub-agents that failed",
    "n_subagent_wrong": "sub-agents that returned a silently wrong result",
    "n_subagent_isolated": "right results from a sub-agent that never overlapped other work",
    "n_subagent_unfinished": "sub-agents still running at the end",
    "mean_concurrency": "sub-agent ticks / critical_steps",
    "peak_concurrency": "most sub-agents running at once",
    "concurrency_profile": "fraction of ticks with k sub-agents running, k = 0..max_subagents",
    "targets_correct": "targets done and right",
    "targets_wrong": "targets done and wrong",
    "targets_missing": "targets not done",
    "input_tokens": "tokens read (orchestrator turns, hand-offs, sub-agent steps, results)",
    "output_tokens": "tokens written",
    "tokens": "input_tokens + output_tokens",
    "cost_usd": "the tokens' price at the config's per-token rates",
    "invalid_actions": "masked-out actions taken (each a wasted tick)",
    # the mechanics of docs/mechanics.md (0 when they are off)
    "n_subagent_cancelled": "sub-agents cancelled because a caught wrong result invalidated their node",
    "n_verified": "verify actions completed",
    "n_caught": "wrong results caught by verify",
    "verification_rate": "n_verified / (n_subagent_ok + n_subagent_wrong); 0 without sub-agent results",
    "verification_yield": "n_caught / n_verified: wrong results caught per verify; 0 without verifications",
    "verify_ticks": "ticks the orchestrator spent verifying",
    "n_invalidated": "nodes reset because a caught wrong result lay upstream of them (the caught node not counted)",
    "coordination_tokens": "orchestrator input tokens of the coordination tax (earlier results re-read each turn)",
    **{f"spawned_tier{t}": f"sub-agents of tier {t} spawned" for t in range(MAX_TIERS)},
    **{
        f"cost_usd_tier{t}": f"price of tier {t}'s sub-agent tokens (hand-offs read, steps, results written), its price_scale applied"
        for t in range(MAX_TIERS)
    },
}
#: Metric keys in order.
METRIC_KEYS: tuple[str, ...] = tuple(METRICS)
#: Metric keys that are not one number per episode.
NON_SCALAR_METRICS: tuple[str, ...] = ("family", "concurrency_profile")
#: One number per episode (the batched engine adds ``family_id``).
SCALAR_METRIC_KEYS: tuple[str, ...] = tuple(k for k in METRIC_KEYS if k not in NON_SCALAR_METRICS)
