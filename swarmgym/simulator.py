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

The orchestration mechanics of ``docs/mechanics.md`` (progressive revelation,
verification, sub-agent tiers, hidden reliability, the coordination tax) are off
by default; ``SwarmConfig.extended`` says whether any is on. With all of them off
every number and random draw is the one of the base dynamics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from swarmgym.config import MAX_TIERS, SwarmConfig
from swarmgym.graph import TaskGraph
from swarmgym.layout import ACTIVE, BLOCKED, DONE, READY, RUNNING, STATUS_NAMES  # noqa: F401  (node status codes)

# Sub-agent outcomes.
OK, FAIL, WRONG = range(3)
OUTCOME_NAMES = ("ok", "fail", "wrong")  # a sub-agent's fate by its code (traces name it)
# the per-tier metrics' names, by tier
_SPAWNED_TIER_KEYS = tuple(f"spawned_tier{t}" for t in range(MAX_TIERS))
_COST_TIER_KEYS = tuple(f"cost_usd_tier{t}" for t in range(MAX_TIERS))


@dataclass(frozen=True, eq=False)
class Fates:
    """Pre-drawn fates of every sub-agent attempt an episode can make.

    :param duration: ``[n_nodes, max_attempts]`` ticks attempt ``a`` on node ``i`` takes (>= work);
        ``[n_nodes, max_attempts, n_tiers]`` for an extended config (one per sub-agent tier).
    :param outcome: same shape, one of ``OK``, ``FAIL``, ``WRONG``.
    :param error_scale: ``[n_tiers]`` the episode's hidden error scale per tier (ones without
        ``hidden_reliability``) for an extended config, None otherwise. For analysis only: the
        orchestrator never observes it.
    """

    duration: np.ndarray
    outcome: np.ndarray
    error_scale: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class TaskInstance:
    """Everything random about an episode: the graph and the fates of its sub-agents."""

    graph: TaskGraph
    fates: Fates


def subagent_probabilities(graph: TaskGraph, config: SwarmConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-node probabilities ``(p_fail, p_wrong)`` of one sub-agent attempt (float64 arrays)."""
    p_fail, p_wrong = _probability_lists(graph, config)
    return np.array(p_fail), np.array(p_wrong)


def _probability_lists(graph: TaskGraph, config: SwarmConfig) -> tuple[list[float], list[float]]:
    """:func:`subagent_probabilities` as Python lists: the base of the node's kind plus a term
    per parent, at most 0.95 (:class:`swarmgym.config.SubAgentReliability`)."""
    rel = config.reliability
    p_fail, p_wrong = [], []
    for kind, parents in zip(graph.kind.tolist(), graph.parents):
        fail = rel.fail_base[kind] + rel.fail_per_parent * len(parents)
        wrong = rel.wrong_base[kind] + rel.wrong_per_parent * len(parents)
        p_fail.append(fail if fail < 0.95 else 0.95)
        p_wrong.append(wrong if wrong < 0.95 else 0.95)
    return p_fail, p_wrong


def _as_config(config) -> SwarmConfig:
    """A SwarmConfig, or a dict of its fields made into one."""
    if isinstance(config, SwarmConfig):
        return config
    if isinstance(config, Mapping):
        return SwarmConfig.from_dict(config)
    raise TypeError(f"config must be a SwarmConfig or a dict of its fields, got {type(config).__name__}")


def draw_fates(graph: TaskGraph, config: SwarmConfig | Mapping, rng: np.random.Generator) -> Fates:
    """Draw the fates of every possible sub-agent attempt.

    An attempt fails with probability ``p_fail``, else returns a wrong result with
    probability ``p_wrong`` (of the remaining mass), else succeeds; it takes
    ``work + U{0..max_jitter}`` ticks.

    For an extended config (``config.extended``) the fates have a tier axis: first the
    hidden scale ``s`` (``n_tiers`` uniforms in ``hidden_reliability``, ones and no draw
    without it), then the same uniforms and jitters as above, shared by every tier; tier
    ``t`` fails with ``min(0.95, p_fail * error_scale_t * s_t)``, errs with
    ``min(0.95, p_wrong * error_scale_t * s_t)`` and takes
    ``ceil(work * slowdown_percent_t / 100) + jitter`` ticks.
    """
    config = _as_config(config)
    n, attempts = graph.n_nodes, config.max_attempts
    if not config.extended:
        # drawn flat (attempt a of node i is entry i * attempts + a): the same numbers as drawing
        # the (n, attempts) shape, without its size bookkeeping
        u = rng.random(n * attempts).tolist()
        jitter = rng.integers(0, config.reliability.max_jitter + 1, size=n * attempts).reshape(n, attempts)
        # a few dozen attempts: classified as Python floats, cheaper than numpy's calls on arrays this small
        outcome: list[int] = []
        start = 0  # node i's attempts are u[start : start + attempts]
        for p_fail, p_wrong in zip(*_probability_lists(graph, config)):
            p_wrong_total = p_fail + (1.0 - p_fail) * p_wrong
            for x in u[start : start + attempts]:
                outcome.append(FAIL if x < p_fail else WRONG if x < p_wrong_total else OK)
            start += attempts
        duration = graph.work[:, None] + jitter
        return Fates(duration=duration.astype(np.int64, copy=False), outcome=np.array(outcome, dtype=np.int64).reshape(n, attempts))
    p_fail, p_wrong = subagent_probabilities(graph, config)
    tiers = config.tier_list
    n_tiers = len(tiers)
    if config.hidden_reliability is not None:
        lo, hi = config.hidden_reliability
        scale = lo + (hi - lo) * rng.random(n_tiers)
    else:
        scale = np.ones(n_tiers)
    u = rng.random(n * attempts).reshape(n, attempts)
    jitter = rng.integers(0, config.reliability.max_jitter + 1, size=n * attempts).reshape(n, attempts)
    outcome = np.full((n, attempts, n_tiers), OK, dtype=np.int64)
    duration = np.empty((n, attempts, n_tiers), dtype=np.int64)
    work = graph.work.astype(np.int64)
    for t, tier in enumerate(tiers):
        pf = np.minimum(0.95, p_fail * tier.error_scale * scale[t])
        pw = np.minimum(0.95, p_wrong * tier.error_scale * scale[t])
        out_t = outcome[:, :, t]
        out_t[u < (pf + (1.0 - pf) * pw)[:, None]] = WRONG
        out_t[u < pf[:, None]] = FAIL
        duration[:, :, t] = ((work * tier.slowdown_percent + 99) // 100)[:, None] + jitter
    return Fates(duration=duration, outcome=outcome, error_scale=np.asarray(scale, dtype=np.float64))


def _f1(true_positives: int, false_positives: int, false_negatives: int) -> float:
    return 2.0 * true_positives / (2 * true_positives + false_positives + false_negatives)


class SwarmSimulator:
    """One episode of orchestration on one task instance.

    :param instance: the graph and the fates of its sub-agent attempts.
    :param config: the dynamics (a SwarmConfig or a dict of its fields); the fates' shape
        must be ``(n_nodes, max_attempts)``, or ``(n_nodes, max_attempts, n_tiers)`` when
        ``config.extended``.
    """

    def __init__(self, instance: TaskInstance, config: SwarmConfig | Mapping) -> None:
        config = _as_config(config)
        graph, fates = instance.graph, instance.fates
        n = graph.n_nodes
        n_tiers = config.n_tiers
        extended = config.extended
        expected = (n, config.max_attempts, n_tiers) if extended else (n, config.max_attempts)
        if fates.duration.shape != expected or fates.outcome.shape != expected:
            what = "(n_nodes, max_attempts, n_tiers)" if extended else "(n_nodes, max_attempts)"
            raise ValueError(f"fates have shape {fates.duration.shape}; expected {what} = {expected} for this config")
        self.graph = graph
        self.fates = fates
        self.config = config
        self.extended = extended
        self.n_tiers = n_tiers
        self.budget = graph.budget(config.max_subagents)
        self._parents = graph.parents
        self._children = graph.children
        self._tok = config.tokens
        # the graph's per-node constants as Python lists (read one node at a time)
        self._work = graph.work.tolist()
        self._n_parents = list(map(len, graph.parents))
        self._is_target = graph.targets.tolist()
        # the fates with a tier axis in both cases (one tier when not extended)
        self._duration = fates.duration if extended else fates.duration[:, :, None]
        self._outcome = fates.outcome if extended else fates.outcome[:, :, None]
        # per-tick tokens of one running sub-agent of each tier
        tok = config.tokens
        if config.tiers:
            self._step_input = [tok.subagent_step_input * tier.token_percent // 100 for tier in config.tiers]
            self._step_output = [tok.subagent_tick_output * tier.token_percent // 100 for tier in config.tiers]
        else:
            self._step_input = [tok.subagent_step_input]
            self._step_output = [tok.subagent_tick_output]
        coordination = config.coordination
        self._tax_per_result = coordination.turn_input_per_result if coordination is not None else 0
        self._merge_work = coordination.merge_work_per_subagent_input if coordination is not None else 0

        self.t = 0
        # the per-node state: one array per quantity, allocated as the rows of one integer
        # and one boolean block; the last three of each are the mechanics' state
        # (docs/mechanics.md), inert when they are off
        (
            self.status,
            self.work_left,
            self.attempts,
            self.path_len,
            self.unfinished_parents,
            self.start_time,
            self.finish_time,
            self.extra_work,  # coordination work, fixed when the node became ready
            self.attempt_tier,  # tier of the latest sub-agent attempt (-1: none yet)
        ) = np.zeros((9, n), dtype=np.int64)
        (
            self.last_failed,
            self.correct,
            self.overlapped,
            self.done_by_subagent,  # done, and by a sub-agent's result
            self.revealed,  # seen by the orchestrator (every node unless config.progressive)
            self.result_wrong,  # its current done result is a wrong sub-agent result
            self.verified,
        ) = np.zeros((7, n), dtype=bool)
        self.work_left[:] = graph.work
        self.unfinished_parents[:] = self._n_parents
        self.attempt_tier.fill(-1)
        self.status[:] = [BLOCKED if n_parents else READY for n_parents in self._n_parents]  # the roots are ready
        self.revealed[:] = (self.unfinished_parents == 0) if config.progressive else True
        self.running: list[int] = []
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
        self.n_cancelled = 0
        self.n_verified = 0
        self.n_caught = 0
        self.verify_ticks = 0
        self.n_invalidated = 0
        self.coordination_tokens = 0
        # per tier
        self.running_tier = [0] * n_tiers  # sub-agents of the tier running now
        self.spawned_tier = [0] * n_tiers
        self.returns_tier = [0] * n_tiers
        self.fails_tier = [0] * n_tiers
        self.verified_tier = [0] * n_tiers  # verifications of a result of the tier
        self.caught_tier = [0] * n_tiers
        self.tier_input_tokens = [0] * n_tiers  # tokens the tier's sub-agents read (hand-offs, steps)
        self.tier_output_tokens = [0] * n_tiers  # tokens they write (steps, results)

    # ------------------------------------------------------------------ queries
    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def n_running(self) -> int:
        return len(self.running)

    @property
    def n_revealed(self) -> int:
        """Nodes the orchestrator can see (all of them unless ``config.progressive``)."""
        return int(np.count_nonzero(self.revealed))

    def can_do(self, i: int) -> bool:
        return not self.done and 0 <= i < len(self.status) and self.status.item(i) in (READY, ACTIVE)

    def can_spawn(self, i: int, tier: int = 0) -> bool:
        return (
            not self.done
            and 0 <= i < len(self.status)
            and 0 <= tier < self.n_tiers
            and self.status.item(i) == READY
            and self.attempts.item(i) < self.config.max_attempts
            and len(self.running) < self.config.max_subagents
            and self.spawns_this_turn < self.config.max_spawns_per_turn
        )

    def can_verify(self, i: int) -> bool:
        return (
            self.config.verification is not None
            and not self.done
            and 0 <= i < len(self.status)
            and self.status[i] == DONE
            and bool(self.done_by_subagent[i])
            and not self.verified[i]
        )

    def can_wait(self) -> bool:
        return not self.done and len(self.running) > 0

    def attempt_outcome(self, i: int, attempt: int) -> int:
        """The fate (``OK``, ``FAIL``, ``WRONG``) of node ``i``'s ``attempt``-th sub-agent (1-based),
        in the tier of its latest attempt."""
        return int(self._outcome[i, attempt - 1, max(0, int(self.attempt_tier[i]))])

    def verify_ticks_of(self, i: int) -> int:
        """Ticks ``verify(i)`` takes (before the budget cuts it short)."""
        v = self.config.verification
        return v.base_ticks + self._work[i] * v.work_percent // 100 + v.ticks_per_parent * self._n_parents[i]

    # ------------------------------------------------------------------ actions
    def do(self, i: int) -> None:
        """The orchestrator works one tick on ready node ``i``; ends the turn."""
        assert self.can_do(i), f"do({i}) is not valid now (status {self.status[i] if 0 <= i < len(self.status) else 'n/a'})"
        self.status[i] = ACTIVE
        self.work_left[i] = self.work_left.item(i) - 1
        self._advance(1, turn=True, orchestrator_worked=True)
        if self.work_left.item(i) == 0:
            self.done_by_subagent[i] = False
            self.result_wrong[i] = False
            self._complete(i, correct=True)
        self._end_turn()

    def spawn(self, i: int, tier: int = 0) -> None:
        """Hand ready node ``i`` to a new sub-agent of tier ``tier``; the turn goes on."""
        assert self.can_spawn(i, tier), f"spawn({i}, tier={tier}) is not valid now"
        tok = self._tok
        handoff = tok.handoff_base + tok.handoff_per_parent * self._n_parents[i]
        self.output_tokens += handoff  # the orchestrator writes the hand-off
        self.input_tokens += handoff  # the sub-agent reads it
        self.tier_input_tokens[tier] += handoff
        self.spawns_this_turn += 1
        if self.config.spawn_ticks:
            self._advance(min(self.config.spawn_ticks, self.budget - self.t), turn=False, orchestrator_worked=False)
            self._check_budget()
            if self.done:
                return
        attempt = self.attempts.item(i)
        self.attempts[i] = attempt + 1
        self.n_spawned += 1
        self.status[i] = RUNNING
        self.last_failed[i] = False
        self.start_time[i] = self.t
        self.finish_time[i] = self.t + self._duration.item(i, attempt, tier) + self.extra_work.item(i)
        self.overlapped[i] = False
        self.attempt_tier[i] = tier
        self.running_tier[tier] += 1
        self.spawned_tier[tier] += 1
        self.running.append(i)

    def wait(self) -> None:
        """Run the clock to the next sub-agent finish (or the budget); ends the turn."""
        assert self.can_wait(), "wait is only valid while a sub-agent runs"
        next_finish = min(map(self.finish_time.item, self.running))
        self._advance(min(next_finish, self.budget) - self.t, turn=True, orchestrator_worked=False)
        self._end_turn()

    def verify(self, i: int) -> None:
        """The orchestrator re-checks the sub-agent result of done node ``i`` (one timed turn of
        :meth:`verify_ticks_of` ticks); a wrong result is caught and invalidated. Ends the turn."""
        assert self.can_verify(i), f"verify({i}) is not valid now"
        ticks = self.verify_ticks_of(i)
        dt = min(ticks, self.budget - self.t)
        tok = self._tok
        self.input_tokens += tok.result_tokens + tok.handoff_per_parent * self._n_parents[i]  # it re-reads the result
        self._advance(dt, turn=True, orchestrator_worked=True)
        self.verify_ticks += dt
        if dt == ticks and self.status[i] == DONE and self.done_by_subagent[i]:
            tier = int(self.attempt_tier[i])
            self.n_verified += 1
            self.verified_tier[tier] += 1
            if self.result_wrong[i]:
                self.n_caught += 1
                self.caught_tier[tier] += 1
                self._invalidate(i)
            else:
                self.verified[i] = True
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
            # the coordination tax: the orchestrator re-reads every result returned so far
            tax = self._tax_per_result * (self.n_ok + self.n_wrong + self.n_failed)
            self.input_tokens += tok.orchestrator_turn_input + tax
            self.output_tokens += tok.orchestrator_turn_output
            self.coordination_tokens += tax
        n_run = len(self.running)
        if dt > 0:
            for tier, running in enumerate(self.running_tier):
                if running:
                    step_input = running * dt * self._step_input[tier]
                    step_output = running * dt * self._step_output[tier]
                    self.input_tokens += step_input
                    self.output_tokens += step_output
                    self.tier_input_tokens[tier] += step_input
                    self.tier_output_tokens[tier] += step_output
            self.concurrency_ticks[n_run] += dt
            self.running_ticks += n_run * dt
            if n_run > self.peak_concurrency:
                self.peak_concurrency = n_run
            if orchestrator_worked or n_run >= 2:
                for j in self.running:
                    self.overlapped[j] = True
        self.t += dt
        if n_run:
            t = self.t
            finished = []
            for j in self.running:
                if self.finish_time.item(j) <= t:
                    finished.append(j)
            for j in sorted(finished):  # the same tick's returns in node order
                self._return(j)

    def _return(self, j: int) -> None:
        """A sub-agent on node ``j`` returns its result."""
        self.running.remove(j)
        tier = self.attempt_tier.item(j)
        self.running_tier[tier] -= 1
        self.returns_tier[tier] += 1
        self.output_tokens += self._tok.result_tokens  # the sub-agent writes its result
        self.input_tokens += self._tok.result_tokens  # the orchestrator reads it
        self.tier_output_tokens[tier] += self._tok.result_tokens
        outcome = self._outcome.item(j, self.attempts.item(j) - 1, tier)
        if outcome == FAIL:
            self.n_failed += 1
            self.fails_tier[tier] += 1
            self.status[j] = READY
            self.last_failed[j] = True
            return
        if outcome == WRONG:
            self.n_wrong += 1
        else:
            self.n_ok += 1
            if not self.overlapped.item(j):
                self.n_isolated += 1
        self.done_by_subagent[j] = True
        self.result_wrong[j] = outcome == WRONG
        self.verified[j] = False
        self._complete(j, correct=outcome == OK)

    def _complete(self, i: int, *, correct: bool) -> None:
        """Node ``i`` is done; its output is right iff it and all its parents' outputs are.
        A child whose last parent this was becomes ready (and revealed) with its coordination work."""
        self.status[i] = DONE
        self.work_left[i] = 0
        self.n_done += 1
        self.n_targets_done += int(self._is_target[i])
        parents_correct, parent_path = True, 0  # every parent's output right; the longest path into a parent
        for p in self._parents[i]:
            parents_correct = parents_correct and self.correct.item(p)
            if self.path_len.item(p) > parent_path:
                parent_path = self.path_len.item(p)
        self.correct[i] = correct and parents_correct
        self.path_len[i] = self._work[i] + self.extra_work.item(i) + parent_path
        for c in self._children[i]:
            unfinished = self.unfinished_parents.item(c) - 1
            self.unfinished_parents[c] = unfinished
            if unfinished == 0:
                self.status[c] = READY
                c_parents = self._parents[c]
                if self._merge_work and len(c_parents) >= 2:
                    extra = self._merge_work * sum(self.done_by_subagent.item(p) for p in c_parents)
                else:
                    extra = 0
                self.extra_work[c] = extra
                self.work_left[c] = self._work[c] + extra
                self.revealed[c] = True

    def _invalidate(self, i: int) -> None:
        """A wrong result on node ``i`` was caught: ``i`` is ready again (seen as a failed attempt)
        and everything built on it is reset; sub-agents on its descendants are cancelled."""
        descendants: set[int] = set()
        frontier = list(self._children[i])
        while frontier:
            d = frontier.pop()
            if d not in descendants:
                descendants.add(d)
                frontier.extend(self._children[d])
        targets = self._is_target
        for d in descendants:
            status = self.status[d]
            if status == BLOCKED:
                continue
            if status == RUNNING:
                self.running.remove(d)
                self.running_tier[int(self.attempt_tier[d])] -= 1
                self.n_cancelled += 1
            elif status == DONE:
                self.n_done -= 1
                self.n_targets_done -= int(targets[d])
            self.n_invalidated += 1
            self.status[d] = BLOCKED
            self.work_left[d] = self._work[d]
            self.extra_work[d] = 0
            self.correct[d] = False
            self.path_len[d] = 0
            self.done_by_subagent[d] = False
            self.result_wrong[d] = False
            self.verified[d] = False
            self.last_failed[d] = False
            self.overlapped[d] = False
        self.status[i] = READY
        self.work_left[i] = self._work[i] + self.extra_work[i]
        self.correct[i] = False
        self.path_len[i] = 0
        self.done_by_subagent[i] = False
        self.result_wrong[i] = False
        self.verified[i] = False
        self.last_failed[i] = True  # the orchestrator sees the caught error like a failure
        self.n_done -= 1
        self.n_targets_done -= int(targets[i])
        for d in descendants:
            self.unfinished_parents[d] = sum(1 for p in self._parents[d] if self.status[p] != DONE)

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
        right = wrong = missing = 0
        for is_target, status, correct in zip(self._is_target, self.status.tolist(), self.correct.tolist()):
            if not is_target:
                continue
            if status != DONE:
                missing += 1
            elif correct:
                right += 1
            else:
                wrong += 1
        return right, wrong, missing

    def score(self) -> float:
        """F1 over targets: a right output is a true positive, a wrong one a false
        positive, a missing one a false negative."""
        return _f1(*self.target_outputs())

    def tier_cost_usd(self, tier: int) -> float:
        """Dollar price of the tokens of ``tier``'s sub-agents (hand-offs read, steps, results written), its price_scale applied."""
        tok = self.config.tokens
        price = (
            self.tier_input_tokens[tier] * tok.price_input_per_million + self.tier_output_tokens[tier] * tok.price_output_per_million
        ) / 1e6
        return self.config.tier_list[tier].price_scale * price

    def cost_usd(self) -> float:
        """Dollar price of all tokens: the config's rates, each tier's tokens at its price_scale."""
        tok = self.config.tokens
        if not self.config.tiers:
            return tok.price(self.input_tokens, self.output_tokens)
        own_input = self.input_tokens - sum(self.tier_input_tokens)
        own_output = self.output_tokens - sum(self.tier_output_tokens)
        cost = (own_input * tok.price_input_per_million + own_output * tok.price_output_per_million) / 1e6
        for tier in range(self.n_tiers):
            cost += self.tier_cost_usd(tier)
        return cost

    def metrics(self) -> dict:
        """Episode metrics (:data:`swarmgym.layout.METRICS` defines each); meaningful once ``done``."""
        g, m = self.graph, self.config.max_subagents
        status, path_len = self.status.tolist(), self.path_len.tolist()
        # ticks of work done on each node
        progress = [work + extra - left for work, extra, left in zip(self._work, self.extra_work.tolist(), self.work_left.tolist())]
        serial = sum(progress)
        longest = 0  # the longest dependency path accomplished: through a done node, or into an active one
        for i, s in enumerate(status):
            if s == DONE:
                chain = path_len[i]
            elif s == ACTIVE:  # the work done on it extends the chain of its parents
                chain = progress[i] + max((path_len[p] for p in g.parents[i]), default=0)
            else:
                continue
            if chain > longest:
                longest = chain
        fastest = self.config.fastest_percent  # a tier faster than the orchestrator lowers the floor
        lower = max(-(-longest * fastest // 100), -(-serial * fastest // (100 * (m + 1))))
        t = self.t
        speedup = serial / t if t > 0 else 1.0
        ideal = serial / lower if lower > 0 else 1.0
        collapse = min(1.0, max(0.0, (ideal - speedup) / (ideal - 1.0))) if ideal > 1.0 + 1e-12 else 0.0
        unfinished = len(self.running)
        spurious = self.n_failed + self.n_wrong + self.n_isolated + unfinished + self.n_cancelled
        right, wrong, missing = self.target_outputs()
        results = self.n_ok + self.n_wrong
        n_tiers = self.n_tiers
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
            "task_lower_bound": g.lower_bound(m, fastest),
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
            "cost_usd": self.cost_usd(),
            "invalid_actions": self.invalid_actions,
            "n_subagent_cancelled": self.n_cancelled,
            "n_verified": self.n_verified,
            "n_caught": self.n_caught,
            "verification_rate": self.n_verified / results if results else 0.0,
            "verification_yield": self.n_caught / self.n_verified if self.n_verified else 0.0,
            "verify_ticks": self.verify_ticks,
            "n_invalidated": self.n_invalidated,
            "coordination_tokens": self.coordination_tokens,
            **{key: self.spawned_tier[t_] if t_ < n_tiers else 0 for t_, key in enumerate(_SPAWNED_TIER_KEYS)},
            **{key: self.tier_cost_usd(t_) if t_ < n_tiers else 0.0 for t_, key in enumerate(_COST_TIER_KEYS)},
        }
