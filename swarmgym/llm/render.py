"""The text an orchestrator language model reads: the rules, the state, and what happened.

:func:`render_state` writes the simulator's state as a compact, deterministic text (ASCII
only; the same state always gives the same text). It shows what the array observation
holds and nothing more -- in particular not the drawn fates (when a sub-agent will return,
whether it will fail) nor whether a done node's output is right. Its layout::

    ## State
    family: WideSearch; nodes: 12; node slots: 32
    clock: t=3, budget 24, 21 ticks left
    sub-agents: 2 running of 8; spawns this turn: 0 of 8; attempts per node: 3
    progress: targets done 3 of 10; nodes done 4 of 12; invalid actions: 0
    simulated tokens: 12345 (input 10000, output 2345; $0.013035)
    critical path: 9 steps

    ## Nodes
    id status  kind   work left prio ctx tries target parents note
     0 done    plan      1    0    9   0   0/3 no     -       by you
     1 running search    3    3    5   1   1/3 yes    0       sub-agent for 2 ticks
    ...

    ## Options
    do_node: 2, 3 | spawn_subagent: 2, 3 | wait | answer

``prio`` is the node's bottom level (the longest remaining path to a target, in steps,
the node included), ``ctx`` its number of parents (the upstream outputs a hand-off must
carry), ``tries`` the sub-agent attempts made of those allowed. The ``note`` column says
who did a done node, how long a sub-agent has been running, and whether the node's last
sub-agent failed. :func:`events_between` lists what changed between two snapshots
(sub-agents that returned or failed, nodes that became ready, the budget running out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from swarmgym.graph import KINDS
from swarmgym.layout import ACTIVE, BLOCKED, DONE, READY, RUNNING, STATUS_NAMES, ActionLayout
from swarmgym.llm.tools import ToolSpec

#: Column headers of the node table, in order (the parser reads them back).
NODE_TABLE_COLUMNS: tuple[str, ...] = ("id", "status", "kind", "work", "left", "prio", "ctx", "tries", "target", "parents", "note")

SYSTEM_PROMPT = """\
You are the orchestrator of a team of AI agents. A task is a graph of subtasks (nodes); a node can
start once all its parents are done. Some nodes are targets: your answer is scored on them (F1: a
right output counts, a wrong or missing one does not).

Time runs in ticks. Each turn you may hand ready nodes to parallel sub-agents (spawn_subagent, several
per turn, up to the slots and the per-turn cap), then end the turn with exactly one of:
- do_node: work one step on a ready or active node yourself (reliable; one tick);
- wait: let the clock run until the next sub-agent reports back;
- answer: submit now; the episode ends.
Every turn costs one tick. A node of work w takes you w turns; a sub-agent takes about w ticks, in
parallel with you and the other sub-agents, but it may fail (the node is ready again) or silently
return a wrong result, more often for nodes with more context (parents) and for reasoning steps.
Hand-offs, sub-agent steps and results cost tokens. When the clock reaches the budget, what is done
is submitted for you. Aim for a high score within the budget, in few ticks, at a moderate token cost.

Call the tools; each reply should spawn any sub-agents you want and then call one of do_node, wait or
answer. Calls after the one that ends the turn are not executed. A call that is not valid now (see
Options) or cannot be read wastes the turn (one tick) and counts as an invalid action.
Every message you receive shows the full current state, so earlier messages are only context."""


@dataclass(frozen=True)
class Snapshot:
    """What :func:`events_between` compares: the simulator's node state at one moment."""

    t: int
    status: np.ndarray
    attempts: np.ndarray
    last_failed: np.ndarray
    done: bool
    ended_by_budget: bool

    @classmethod
    def of(cls, sim) -> "Snapshot":
        return cls(int(sim.t), sim.status.copy(), sim.attempts.copy(), sim.last_failed.copy(), bool(sim.done), bool(sim.ended_by_budget))


def events_between(before: Snapshot, sim, max_attempts: int) -> list[str]:
    """Lines for what changed from ``before`` to the simulator's state now, in node order
    (all at the current tick: finishes within one clock advance are resolved together)."""
    t = int(sim.t)
    out = []
    for i in range(len(before.status)):
        old, new = int(before.status[i]), int(sim.status[i])
        if old == RUNNING and new == DONE:
            out.append(f"t={t}: node {i}: its sub-agent returned a result; node {i} is done")
        elif old == RUNNING and new == READY:
            out.append(f"t={t}: node {i}: its sub-agent failed (attempt {sim.attempts[i]} of {max_attempts}); node {i} is ready again")
        elif old == BLOCKED and new == READY:
            out.append(f"t={t}: node {i} is ready (its parents are done)")
    if sim.done and sim.ended_by_budget and not before.ended_by_budget:
        out.append(f"t={t}: the budget is used up; what is done was submitted as the answer")
    return out


def _note(sim, i: int, status: int) -> str:
    notes = []
    if status == DONE:
        notes.append("by a sub-agent" if sim.done_by_subagent[i] else "by you")
    elif status == RUNNING:
        notes.append(f"sub-agent for {int(sim.t - sim.start_time[i])} ticks")
    elif status == ACTIVE:
        notes.append("started by you")
    if sim.last_failed[i]:
        notes.append("last sub-agent failed")
    return "; ".join(notes) or "-"


def render_state(sim, config, layout: ActionLayout, mask: np.ndarray, tools: list[ToolSpec]) -> str:
    """The ``## State``, ``## Nodes`` and ``## Options`` sections for the simulator ``sim``.

    :param config: the env's :class:`~swarmgym.config.SwarmConfig`.
    :param layout: the env's action layout (node slots).
    :param mask: the action mask now (the Options line lists its valid actions).
    :param tools: the tools offered (their names label the options).
    """
    g = sim.graph
    n = g.n_nodes
    tok = config.tokens
    price = tok.price(sim.input_tokens, sim.output_tokens)
    n_targets = int(g.targets.sum())
    lines = [
        "## State",
        f"family: {g.family}; nodes: {n}; node slots: {layout.n_max}",
        f"clock: t={sim.t}, budget {sim.budget}, {sim.budget - sim.t} ticks left",
        f"sub-agents: {len(sim.running)} running of {config.max_subagents}; spawns this turn: {sim.spawns_this_turn} of "
        f"{config.max_spawns_per_turn}; attempts per node: {config.max_attempts}",
        f"progress: targets done {sim.n_targets_done} of {n_targets}; nodes done {sim.n_done} of {n}; invalid actions: {sim.invalid_actions}",
        f"simulated tokens: {sim.input_tokens + sim.output_tokens} (input {sim.input_tokens}, output {sim.output_tokens}; ${price:.6f})",
        f"critical path: {g.critical_path} steps",
        "",
        "## Nodes",
    ]
    rows = [list(NODE_TABLE_COLUMNS)]
    for i in range(n):
        s = int(sim.status[i])
        parents = ",".join(map(str, g.parents[i])) or "-"
        rows.append(
            [
                str(i),
                STATUS_NAMES[s],
                KINDS[g.kind[i]],
                str(int(g.work[i])),
                str(int(sim.work_left[i])),
                str(int(g.bottom_level[i])),
                str(len(g.parents[i])),
                f"{int(sim.attempts[i])}/{config.max_attempts}",
                "yes" if g.targets[i] else "no",
                parents,
                _note(sim, i, s),
            ]
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(NODE_TABLE_COLUMNS) - 1)]
    numeric = {0, 3, 4, 5, 6}
    for r in rows:
        cells = [r[c].rjust(widths[c]) if c in numeric else r[c].ljust(widths[c]) for c in range(len(widths))]
        lines.append(" ".join(cells + [r[-1]]).rstrip())
    lines += ["", "## Options"]
    if sim.done:
        lines.append("none: the episode is over")
    else:
        lines.append(render_options(mask, layout, tools))
        if sim.spawns_this_turn:
            lines.append("your turn is still open: spawn more sub-agents, or end it with do_node, wait or answer")
    return "\n".join(lines)


def render_options(mask: np.ndarray, layout: ActionLayout, tools: list[ToolSpec]) -> str:
    """``do_node: 2, 3 | spawn_subagent: 2 | wait | answer``: the valid calls now, from the mask."""
    parts = []
    for tool in tools:
        if tool.takes_node:
            nodes = np.flatnonzero(layout.block(mask, tool.action))
            if nodes.size:
                parts.append(f"{tool.name}: {', '.join(map(str, nodes.tolist()))}")
        elif bool(layout.block(mask, tool.action)):
            parts.append(tool.name)
    return " | ".join(parts) if parts else "none"


__all__ = ["NODE_TABLE_COLUMNS", "SYSTEM_PROMPT", "Snapshot", "events_between", "render_options", "render_state"]
