"""The orchestrator/sub-agent simulation, measured in critical steps.

This module is the readable specification of the dynamics (no Gymnasium here):

* The clock counts **ticks**; one tick is one agent step. An episode's critical
  steps are the ticks elapsed.
* The orchestrator acts in **turns**. A turn is any number of :meth:`spawn`
  calls (up to ``max_spawns_per_turn``) followed by one timed action:
  :meth:`do` (one tick of its own work on a ready node), :meth:`wait` (run the
  clock to the next sub-agent event) or an invalid action (a wasted tick).
  :meth:`answer` ends the episode at the current tick and costs nothing.
* ``spawn(i)`` hands ready node ``i`` to a new sub-agent. Its fate was drawn at
  reset (:class:`Fates`): it runs ``duration`` ticks, then succeeds (node done),
  fails (node ready again, the failure is visible) or succeeds wrongly (node
  done, but its output and everything downstream of it scores as wrong).
* When the clock reaches the budget the current state is submitted as the
  answer (termination, not truncation).

Within one clock advance of ``dt`` ticks the set of running sub-agents is fixed
(a wait stops at the first finish), so tokens, concurrency and overlap are
exact sums over advances; events that land on the same tick are resolved
together, in node order, after the advance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from swarmgym.config import SwarmConfig
from swarmgym.graph import TaskGraph
from swarmgym.layout import ACTIVE, BLOCKED, DONE, READY, RUNNING, STATUS_NAMES  # noqa: F401  (node status codes)

# Sub-agent outcomes.
OK, FAIL, WRONG = range(3)
OUTCOME_NAMES = ("ok", "fail", "wrong")  # a sub-agent's fate by its code (traces name it)


@dataclass(frozen=True, eq=False)
class Fates:
    """Pre-drawn fates of every sub-agent attempt an episode can make.

    :param duration: ``[n_nodes, max_attempts]`` ticks attempt ``a`` on node ``i`` takes (>= work).
    :param outcome: ``[n_nodes, max_attempts]`` one of ``OK``, ``FAIL``, ``WRONG``.
    """

    duration: np.ndarray
    outcome: np.ndarray


@dataclass(frozen=True, eq=False)
class TaskInstance:
    """Everything random about an episode: the graph and the fates of its sub-agents."""

    graph: TaskGraph
    fates: Fates


def subagent_probabilities(graph: TaskGraph, config: SwarmConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-node probabilities ``(p_fail, p_wrong)`` of one sub-agent attempt."""
    rel = config.reliability
    n_parents = np.fromiter(map(len, graph.parents), np.float64, graph.n_nodes)
    p_fail = np.minimum(0.95, np.asarray(rel.fail_base)[graph.kind] + rel.fail_per_parent * n_parents)
    p_wrong = np.minimum(0.95, np.asarray(rel.wrong_base)[graph.kind] + rel.wrong_per_parent * n_parents)
    return p_fail, p_wrong


def draw_fates(graph: TaskGraph, config: SwarmConfig, rng: np.random.Generator) -> Fates:
    """Draw the fates of every possible sub-agent attempt.

    An attempt fails with probability ``p_fail``, else returns a wrong result with
    probability ``p_wrong`` (of the remaining mass), else succeeds; it takes
    ``work + U{0..max_jitter}`` ticks.
    """
    n, attempts = graph.n_nodes, config.max_attempts
    p_fail, p_wrong = subagent_probabilities(graph, config)
    # drawn flat and reshaped: the same numbers as drawing the (n, attempts) shape, without its size bookkeeping
    u = rng.random(n * attempts).reshape(n, attempts)
    jitter = rng.integers(0, config.reliability.max_jitter + 1, size=n * attempts).reshape(n, attempts)
    outcome = np.full((n, attempts), OK, dtype=np.int64)
    p_wrong_total = p_fail + (1.0 - p_fail) * p_wrong
    outcome[u < p_wrong_total[:, None]] = WRONG
    outcome[u < p_fail[:, None]] = FAIL
    duration = graph.work[:, None] + jitter
    return Fates(duration=duration.astype(np.int64), outcome=outcome)


def _f1(true_positives: int, false_positives: int, false_negatives: int) -> float:
    return 2.0 * true_positives / (2 * true_positives + false_positives + false_negatives)


class SwarmSimulator:
    """One episode of orchestration on one task instance.

    :param instance: the graph and the fates of its sub-agent attempts.
    :param config: the dynamics; ``config.max_attempts`` must match the fates' width.
    """

    def __init__(self, instance: TaskInstance, config: SwarmConfig) -> None:
        graph, fates = instance.graph, instance.fates
        if fates.duration.shape != (graph.n_nodes, config.max_attempts):
            raise ValueError(
                f"fates have shape {fates.duration.shape}; expected (n_nodes, max_attempts) = ({graph.n_nodes}, {config.max_attempts})"
            )
        self.graph = graph
        self.fates = fates
        self.config = config
        self.budget = graph.budget(config.max_subagents)
        n = graph.n_nodes
        self._parents = graph.parents
        self._children = graph.children
        self._work = graph.work
        self._tok = config.tokens
        self._sub_tick_out = config.tokens.subagent_tick_output
        self._n_parents = np.fromiter(map(len, graph.parents), np.int64, n)

        self.t = 0
        self.status = np.full(n, BLOCKED, dtype=np.int64)
        self.work_left = graph.work.copy()
        self.attempts = np.zeros(n, dtype=np.int64)
        self.last_failed = np.zeros(n, dtype=bool)
        self.correct = np.zeros(n, dtype=bool)
        self.path_len = np.zeros(n, dtype=np.int64)
        self.unfinished_parents = self._n_parents.copy()
        self.start_time = np.zeros(n, dtype=np.int64)
        self.finish_time = np.zeros(n, dtype=np.int64)
        self.overlapped = np.zeros(n, dtype=bool)
        self.done_by_subagent = np.zeros(n, dtype=bool)
        self.running: list[int] = []
        self.status[self.unfinished_parents == 0] = READY
        self.spawns_this_turn = 0
        self.done = False
        self.ended_by_budget = False
        self.n_done = 0
        self.n_targets_done = 0
        # accounting
        self.input_tokens = 0
        self.output_tokens = 0
        self.n_spawned = 0
        self.n_ok = 0
        self.n_failed = 0
        self.n_wrong = 0
        self.n_isolated = 0  # succeeded, but ran with no other work alongside
        self.invalid_actions = 0
        self.running_ticks = 0
        self.peak_concurrency = 0
        self.concurrency_ticks = np.zeros(config.max_subagents + 1, dtype=np.int64)

    # ------------------------------------------------------------------ queries
    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def n_running(self) -> int:
        return len(self.running)

    def can_do(self, i: int) -> bool:
        return not self.done and 0 <= i < len(self.status) and self.status[i] in (READY, ACTIVE)

    def can_spawn(self, i: int) -> bool:
        return (
            not self.done
            and 0 <= i < len(self.status)
            and self.status[i] == READY
            and self.attempts[i] < self.config.max_attempts
            and len(self.running) < self.config.max_subagents
            and self.spawns_this_turn < self.config.max_spawns_per_turn
        )

    def can_wait(self) -> bool:
        return not self.done and len(self.running) > 0

    # ------------------------------------------------------------------ actions
    def do(self, i: int) -> None:
        """The orchestrator works one tick on ready node ``i``; ends the turn."""
        assert self.can_do(i), f"do({i}) is not valid now (status {self.status[i] if 0 <= i < len(self.status) else 'n/a'})"
        self.status[i] = ACTIVE
        self.work_left[i] -= 1
        self._advance(1, turn=True, orchestrator_worked=True)
        if self.work_left[i] == 0:
            self._complete(i, correct=True)
        self._end_turn()

    def spawn(self, i: int) -> None:
        """Hand ready node ``i`` to a new sub-agent; the turn goes on."""
        assert self.can_spawn(i), f"spawn({i}) is not valid now"
        tok = self._tok
        handoff = tok.handoff_base + tok.handoff_per_parent * int(self._n_parents[i])
        self.output_tokens += handoff  # the orchestrator writes the hand-off
        self.input_tokens += handoff  # the sub-agent reads it
        self.spawns_this_turn += 1
        if self.config.spawn_ticks:
            self._advance(min(self.config.spawn_ticks, self.budget - self.t), turn=False, orchestrator_worked=False)
            self._check_budget()
            if self.done:
                return
        attempt = int(self.attempts[i])
        self.attempts[i] += 1
        self.n_spawned += 1
        self.status[i] = RUNNING
        self.last_failed[i] = False
        self.start_time[i] = self.t
        self.finish_time[i] = self.t + int(self.fates.duration[i, attempt])
        self.overlapped[i] = False
        self.running.append(i)

    def wait(self) -> None:
        """Run the clock to the next sub-agent finish (or the budget); ends the turn."""
        assert self.can_wait(), "wait is only valid while a sub-agent runs"
        next_finish = min(int(self.finish_time[j]) for j in self.running)
        self._advance(min(next_finish, self.budget) - self.t, turn=True, orchestrator_worked=False)
        self._end_turn()

    def waste_tick(self) -> None:
        """An invalid action: the turn is spent and one tick passes (the documented no-op rule)."""
        assert not self.done, "the episode is over"
        self.invalid_actions += 1
        self._advance(1, turn=True, orchestrator_worked=False)
        self._end_turn()

    def answer(self) -> None:
        """Submit the current state; the episode ends at the current tick."""
        assert not self.done, "the episode is over"
        self.done = True

    # ------------------------------------------------------------------ internals
    def _advance(self, dt: int, *, turn: bool, orchestrator_worked: bool) -> None:
        """Run the clock ``dt`` ticks: charge tokens, count concurrency, resolve finishes."""
        tok = self._tok
        if turn:
            self.input_tokens += tok.orchestrator_turn_input
            self.output_tokens += tok.orchestrator_turn_output
        n_run = len(self.running)
        if dt > 0:
            self.input_tokens += n_run * dt * tok.subagent_step_input
            self.output_tokens += n_run * dt * self._sub_tick_out
            self.concurrency_ticks[n_run] += dt
            self.running_ticks += n_run * dt
            if n_run > self.peak_concurrency:
                self.peak_concurrency = n_run
            if orchestrator_worked or n_run >= 2:
                for j in self.running:
                    self.overlapped[j] = True
        self.t += dt
        if n_run:
            finished = sorted(j for j in self.running if self.finish_time[j] <= self.t)
            for j in finished:
                self._return(j)

    def _return(self, j: int) -> None:
        """A sub-agent on node ``j`` returns its result."""
        self.running.remove(j)
        self.output_tokens += self._tok.result_tokens  # the sub-agent writes its result
        self.input_tokens += self._tok.result_tokens  # the orchestrator reads it
        outcome = self.fates.outcome[j, self.attempts[j] - 1]
        if outcome == FAIL:
            self.n_failed += 1
            self.status[j] = READY
            self.last_failed[j] = True
            return
        if outcome == WRONG:
            self.n_wrong += 1
        else:
            self.n_ok += 1
            if not self.overlapped[j]:
                self.n_isolated += 1
        self.done_by_subagent[j] = True
        self._complete(j, correct=outcome == OK)

    def _complete(self, i: int, *, correct: bool) -> None:
        """Node ``i`` is done; its output is right iff it and all its parents' outputs are."""
        self.status[i] = DONE
        self.work_left[i] = 0
        self.n_done += 1
        self.n_targets_done += int(self.graph.targets[i])
        parents = self._parents[i]
        self.correct[i] = correct and all(self.correct[p] for p in parents)
        self.path_len[i] = self._work[i] + max((int(self.path_len[p]) for p in parents), default=0)
        for c in self._children[i]:
            self.unfinished_parents[c] -= 1
            if self.unfinished_parents[c] == 0:
                self.status[c] = READY

    def _end_turn(self) -> None:
        self.spawns_this_turn = 0
        self._check_budget()

    def _check_budget(self) -> None:
        if self.t >= self.budget and not self.done:
            self.done = True
            self.ended_by_budget = True

    # ------------------------------------------------------------------ scoring
    def target_outputs(self) -> tuple[int, int, int]:
        """``(right, wrong, missing)``: targets done and right, done and wrong, not done."""
        targets = self.graph.targets
        targets_done = targets & (self.status == DONE)
        n_done = int(np.count_nonzero(targets_done))
        right = int(np.count_nonzero(targets_done & self.correct))
        return right, n_done - right, int(np.count_nonzero(targets)) - n_done

    def score(self) -> float:
        """F1 over targets: a right output is a true positive, a wrong one a false
        positive, a missing one a false negative."""
        return _f1(*self.target_outputs())

    def metrics(self) -> dict:
        """Episode metrics (see the README's definitions); meaningful once ``done``."""
        g, m = self.graph, self.config.max_subagents
        done = self.status == DONE
        serial = int((g.work - self.work_left).sum())
        longest = int(self.path_len[done].max()) if done.any() else 0
        for i in np.flatnonzero(self.status == ACTIVE):
            progress = int(g.work[i] - self.work_left[i])
            longest = max(longest, progress + max((int(self.path_len[p]) for p in g.parents[i]), default=0))
        lower = max(longest, -(-serial // (m + 1)))
        t = self.t
        speedup = serial / t if t > 0 else 1.0
        ideal = serial / lower if lower > 0 else 1.0
        collapse = min(1.0, max(0.0, (ideal - speedup) / (ideal - 1.0))) if ideal > 1.0 + 1e-12 else 0.0
        unfinished = len(self.running)
        spurious = self.n_failed + self.n_wrong + self.n_isolated + unfinished
        right, wrong, missing = self.target_outputs()
        return {
            "family": g.family,
            "score": _f1(right, wrong, missing),
            "critical_steps": t,
            "serial_steps": serial,
            "lower_bound": lower,
            "speedup": speedup,
            "ideal_speedup": ideal,
            "serial_collapse_index": collapse,
            "spurious_spawn_rate": spurious / self.n_spawned if self.n_spawned else 0.0,
            "makespan_ratio": t / max(lower, 1),
            "task_serial_steps": g.total_work,
            "task_lower_bound": g.lower_bound(m),
            "budget": self.budget,
            "budget_exhausted": self.ended_by_budget,
            "n_spawned": self.n_spawned,
            "n_subagent_ok": self.n_ok,
            "n_subagent_failed": self.n_failed,
            "n_subagent_wrong": self.n_wrong,
            "n_subagent_isolated": self.n_isolated,
            "n_subagent_unfinished": unfinished,
            "mean_concurrency": self.running_ticks / t if t > 0 else 0.0,
            "peak_concurrency": self.peak_concurrency,
            "concurrency_profile": self.concurrency_ticks / t if t > 0 else np.zeros(m + 1),
            "targets_correct": right,
            "targets_wrong": wrong,
            "targets_missing": missing,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.tokens,
            "cost_usd": self.config.tokens.price(self.input_tokens, self.output_tokens),
            "invalid_actions": self.invalid_actions,
        }
