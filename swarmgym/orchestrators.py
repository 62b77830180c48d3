"""Reference orchestrators: hand-coded policies over the observation and the action mask.

They are how code-level frameworks coordinate agents, made explicit, so learned
orchestration can be compared against them on the same table:

==========================  ==========================================================
``"sequential_crew"``       does every subtask itself, in node order (CrewAI's
                            sequential process): never spawns -- serial collapse by design.
``"delegating_manager"``    hands every ready subtask it can to a sub-agent, waits, and
                            does itself only what it cannot hand off (CrewAI's
                            hierarchical process, an AutoGen-style manager).
``"static_fanout"``         a fixed map-reduce plan (a LangGraph fan-out graph): when a
                            wide layer is ready (>= ``min_width`` nodes at once) it spawns
                            its low-context nodes; chains and merges it does itself.
``"critical_path"``         list scheduling with HLFET priorities (highest bottom level
                            first): the orchestrator keeps the highest-priority ready node
                            for itself and spawns the others while slots are free and
                            their hand-off context is small; answers when all targets are
                            done. On failure-free instances with the context filter off it
                            is a greedy list schedule, so Graham's bound holds:
                            makespan <= (2 - 1/(m+1)) x lower bound.
``"verifying_scheduler"``   critical_path plus the mechanics of ``docs/mechanics.md``: it
                            chooses each spawn's sub-agent tier and verifies returned results
                            from a belief about the episode's hidden reliability, updated by
                            the fail and caught rates it observes (:class:`VerifyingScheduler`;
                            ``verify=always|never``, ``tier=fast|careful`` are its fixed-rule
                            variants). On the base layout it is critical_path.
``"random"``                uniform over the valid actions (masked).
==========================  ==========================================================

Interface (shared with learned policies): an orchestrator has a ``name`` and
``act(obs, mask) -> int64[B]`` where ``obs`` is the Dict observation batched with a
leading env dimension (``obs["nodes"]: [B, n_max, 20]``, ``obs["globals"]: [B, 10]``)
and ``mask`` is ``bool[B, ActionLayout(n_max).n]``. The extended observation and mask of a
config with the mechanics of ``docs/mechanics.md`` on (more columns, ``ActionLayout(n_max,
extended=True)``) are accepted too; the base blocks keep their offsets. :func:`load_orchestrator` resolves a spec
string: a built-in name (optionally with keyword arguments, ``"critical_path:max_spawn_parents=8"``,
``"verifying_scheduler:verify=never,tier=fast"``)
``"moe:PATH"`` (a trained checkpoint, loaded by ``swarmgym.moe.policy.load_policy``) or
``"sb3:PATH"`` (a stable-baselines3 ``model.zip``, see :class:`SB3Policy`).

The policies read only the observation: node status, kind, ``n_parents``,
``bottom_level`` and ``work`` come from ``obs["nodes"]`` columns named in
:data:`swarmgym.layout.NODE_FEATURES` (``n_parents`` is stored ``/ COUNT_SCALE``, clipped);
actions are indices of :class:`swarmgym.layout.ActionLayout`.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from swarmgym.config import MAX_TIERS, SwarmConfig
from swarmgym.graph import KINDS
from swarmgym.layout import (
    COUNT_SCALE,
    GLOBAL_COLUMN,
    KIND_COLUMN0,
    NODE_COLUMN,
    RESULTS_HALF,
    TIME_LEFT_HALF,
    WORK_SCALE,
    ActionLayout,
    FlatLayout,
    global_features,
    node_features,
    spawn_block,
)

_STATUS_READY, _STATUS_ACTIVE = NODE_COLUMN["status_ready"], NODE_COLUMN["status_active"]
_N_PARENTS, _BOTTOM_LEVEL = NODE_COLUMN["n_parents"], NODE_COLUMN["bottom_level"]
_TARGETS_DONE = GLOBAL_COLUMN["targets_done"]
_PRESENT, _WORK, _IS_TARGET, _N_CHILDREN = NODE_COLUMN["present"], NODE_COLUMN["work"], NODE_COLUMN["is_target"], NODE_COLUMN["n_children"]
_VERIFIED, _ATTEMPT_TIER = NODE_COLUMN["verified"], NODE_COLUMN["attempt_tier"]
_TIME_LEFT = GLOBAL_COLUMN["time_left"]
_WORK_LEFT, _ATTEMPTS = NODE_COLUMN["work_left"], NODE_COLUMN["attempts"]


@lru_cache(maxsize=64)
def _layout(n_max: int, extended: bool = False) -> ActionLayout:
    """The action layout (the base blocks ``do``, ``spawn``, ``wait``, ``answer`` have the same
    offsets in the extended one)."""
    return ActionLayout(n_max, extended)


def _check_batch(obs: dict[str, np.ndarray], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Validate a batched observation and mask (base, or extended throughout); returns
    ``(nodes, globals, mask, n_max)``."""
    if not isinstance(obs, dict) or "nodes" not in obs or "globals" not in obs:
        raise TypeError("obs must be a dict with 'nodes' [B, n_max, 20] and 'globals' [B, 10] (the Dict observation, batched)")
    nodes = np.asarray(obs["nodes"])
    glob = np.asarray(obs["globals"])
    mask = np.asarray(mask, dtype=bool)
    columns = (len(node_features()), len(node_features(True)))
    if nodes.ndim != 3 or nodes.shape[2] not in columns:
        raise ValueError(f"obs['nodes'] must have shape [B, n_max, {columns[0]}] (or {columns[1]} columns, extended), got {nodes.shape}")
    b, n_max = nodes.shape[:2]
    extended = nodes.shape[2] == columns[1]
    if glob.shape != (b, len(global_features(extended))):
        what = "extended node columns" if extended else "base node columns"
        raise ValueError(f"obs['globals'] must have shape [{b}, {len(global_features(extended))}] with {what}, got {glob.shape}")
    if mask.shape != (b, _layout(n_max, extended).n):
        raise ValueError(
            f"mask must have shape [B, ActionLayout(n_max, extended={extended}).n] = [{b}, {_layout(n_max, extended).n}], got {mask.shape}"
        )
    return nodes, glob, mask, n_max


class Orchestrator:
    """Base class: a batched policy over the Dict observation and the action mask.

    Subclasses implement :meth:`act_one` (one env) or override :meth:`act`.
    """

    name: str = "orchestrator"

    def reset(self, seed: int | None = None) -> None:
        """Re-seed any randomness (the deterministic policies have none)."""

    def for_env(self, config: SwarmConfig) -> Orchestrator:
        """This orchestrator as it plays an env of ``config``: itself. A rule that is told the public
        part of the env's config (:class:`VerifyingScheduler`) returns a copy told ``config``'s.
        The evaluation, study, replay and warm-start loops call it (:func:`bind_to_env`)."""
        return self

    def act(self, obs: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """One action per env: ``int64[B]``, always valid under ``mask``."""
        nodes, glob, mask, n_max = _check_batch(obs, mask)
        out = np.empty(nodes.shape[0], dtype=np.int64)
        for b in range(nodes.shape[0]):
            out[b] = self.act_one(nodes[b], glob[b], mask[b], n_max)
        return out

    def act_one(self, nodes: np.ndarray, glob: np.ndarray, mask: np.ndarray, n_max: int) -> int:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _time_left(glob: np.ndarray) -> float:
    """Ticks left before the budget, decoded from ``time_left = left / (left + TIME_LEFT_HALF)``."""
    x = float(glob[_TIME_LEFT])
    return TIME_LEFT_HALF * x / (1.0 - x) if x < 1.0 else np.inf


def _all_targets_done(glob: np.ndarray) -> bool:
    return glob[_TARGETS_DONE] >= 1.0 - 1e-6


def _fallback(mask: np.ndarray, n_max: int) -> int:
    """Wait if a sub-agent runs, else answer."""
    lay = _layout(n_max)
    return lay.wait if mask[lay.wait] else lay.answer


def _doable(nodes: np.ndarray, mask: np.ndarray, n_max: int) -> np.ndarray:
    """Indices where ``do`` is valid, active nodes (already started) first, then by index."""
    idx = np.flatnonzero(_layout(n_max).block(mask, "do"))
    if idx.size == 0:
        return idx
    active = nodes[idx, _STATUS_ACTIVE] > 0.5
    return np.concatenate([idx[active], idx[~active]])


class SequentialCrew(Orchestrator):
    """Does every subtask itself, in node order; never spawns (CrewAI's sequential process)."""

    name = "sequential_crew"

    def act_one(self, nodes, glob, mask, n_max):
        lay = _layout(n_max)
        if _all_targets_done(glob):
            return lay.answer
        doable = _doable(nodes, mask, n_max)
        if doable.size:
            return int(lay.do + doable[0])
        return _fallback(mask, n_max)


class DelegatingManager(Orchestrator):
    """Hands every ready subtask it can to a sub-agent, waits, and does only what it
    cannot hand off (a node out of sub-agent attempts, or no sub-agent running to wait for)."""

    name = "delegating_manager"

    def act_one(self, nodes, glob, mask, n_max):
        lay = _layout(n_max)
        if _all_targets_done(glob):
            return lay.answer
        spawnable = np.flatnonzero(lay.block(mask, "spawn"))
        if spawnable.size:
            return int(lay.spawn + spawnable[0])
        if mask[lay.wait]:
            return lay.wait
        doable = _doable(nodes, mask, n_max)
        if doable.size:
            return int(lay.do + doable[0])
        return lay.answer


class StaticFanout(Orchestrator):
    """A fixed map-reduce plan: spawn the low-context nodes of a wide layer, do chains itself.

    :param min_width: a layer is "wide" when at least this many nodes are ready at once, >= 2.
    :param max_spawn_parents: spawn only nodes with at most this many parents (little
        upstream context to hand off), in [0, 8].
    """

    name = "static_fanout"

    def __init__(self, min_width: int = 2, max_spawn_parents: int = 1) -> None:
        if isinstance(min_width, bool) or not isinstance(min_width, int) or min_width < 2:
            raise ValueError(f"static_fanout: min_width must be an integer >= 2, got {min_width!r}")
        if isinstance(max_spawn_parents, bool) or not isinstance(max_spawn_parents, int) or not 0 <= max_spawn_parents <= 8:
            raise ValueError(f"static_fanout: max_spawn_parents must be an integer in [0, 8], got {max_spawn_parents!r}")
        self.min_width = min_width
        self.max_spawn_parents = max_spawn_parents

    def act_one(self, nodes, glob, mask, n_max):
        lay = _layout(n_max)
        if _all_targets_done(glob):
            return lay.answer
        ready = nodes[:, _STATUS_READY] > 0.5
        if ready.sum() >= self.min_width:
            low_context = nodes[:, _N_PARENTS] * COUNT_SCALE <= self.max_spawn_parents + 1e-6
            spawnable = np.flatnonzero(lay.block(mask, "spawn") & low_context)
            if spawnable.size:
                return int(lay.spawn + spawnable[0])
        doable = _doable(nodes, mask, n_max)
        if doable.size:
            return int(lay.do + doable[0])
        return _fallback(mask, n_max)

    def __repr__(self) -> str:
        return f"StaticFanout(min_width={self.min_width}, max_spawn_parents={self.max_spawn_parents})"


class CriticalPathScheduler(Orchestrator):
    """HLFET list scheduling: priority = bottom level (longest remaining path to a target).

    Each turn: the orchestrator's own node is the one it has started, else the
    highest-priority ready node; every other ready node, highest priority first, is
    spawned while a slot is free and its hand-off context is small (at most
    ``max_spawn_parents`` parents); then it works one tick on its own node. With
    nothing to do it waits for a sub-agent; it answers when every target is done.

    :param max_spawn_parents: spawn only nodes with at most this many parents, in [0, 8];
        ``None`` spawns any ready node (a pure greedy list schedule: Graham's bound).
    """

    name = "critical_path"

    def __init__(self, max_spawn_parents: int | None = 2) -> None:
        if max_spawn_parents is not None and (
            isinstance(max_spawn_parents, bool) or not isinstance(max_spawn_parents, int) or not 0 <= max_spawn_parents <= 8
        ):
            raise ValueError(f"{self.name}: max_spawn_parents must be None or an integer in [0, 8], got {max_spawn_parents!r}")
        self.max_spawn_parents = max_spawn_parents

    def act_one(self, nodes, glob, mask, n_max):
        lay = _layout(n_max)
        if _all_targets_done(glob):
            return lay.answer
        level = nodes[:, _BOTTOM_LEVEL]
        do_mask = lay.block(mask, "do")
        active = np.flatnonzero((nodes[:, _STATUS_ACTIVE] > 0.5) & do_mask)
        doable = np.flatnonzero(do_mask)
        # the orchestrator's own node: the one it started, else the highest-priority ready one
        if active.size:
            own = int(active[np.argmax(level[active])])
        elif doable.size:
            # ties: lower index first (argmax on -index within the best level)
            own = int(doable[np.lexsort((doable, -level[doable]))[0]])
        else:
            own = -1
        spawnable = lay.block(mask, "spawn").copy()
        if own >= 0:
            spawnable[own] = False
        if self.max_spawn_parents is not None:
            spawnable &= nodes[:, _N_PARENTS] * COUNT_SCALE <= self.max_spawn_parents + 1e-6
        cand = np.flatnonzero(spawnable)
        if cand.size:
            best = cand[np.lexsort((cand, -level[cand]))[0]]
            return int(lay.spawn + best)
        if own >= 0:
            return lay.do + own
        return _fallback(mask, n_max)

    def __repr__(self) -> str:
        return f"CriticalPathScheduler(max_spawn_parents={self.max_spawn_parents})"


#: The verify and tier modes of :class:`VerifyingScheduler`.
VERIFY_MODES: tuple[str, ...] = ("auto", "always", "never")
TIER_MODES: tuple[str, ...] = ("auto", "fast", "careful")
#: The env whose config is the public sub-agent table :class:`VerifyingScheduler` is told by default
#: (DeepResearch-v0 and VerifiedPipeline-v0 share it: ``docs/families_mechanics.md``).
PUBLIC_TABLE_ID = "swarmgym/DeepResearch-v0"
_GRID_POINTS = 41


class VerifyingScheduler(CriticalPathScheduler):
    """critical_path's list scheduling plus the mechanics' decisions: which sub-agent tier to
    hand a node to, and which returned result to verify, from a belief about the hidden
    reliability updated by what the episode shows.

    **What it is told** (``public``): the public part of the sub-agent table, a
    :class:`~swarmgym.config.SwarmConfig` (or the registered id whose config it is): per-kind
    failure and wrong-result probabilities, each tier's error scale and slowdown, the cost of
    ``verify``, and the range ``[lo, hi]`` of the hidden per-episode scale. It is never told the
    episode's scale.

    **Belief.** For each tier ``t``, a posterior over the hidden scale ``s_t`` on a grid of
    ``[lo, hi]`` (uniform prior), from the observation alone: the tier's returns and fail rate
    (``tier{t}_returns``, ``tier{t}_fail_rate``; a failure has probability
    ``min(0.95, fail * error_scale_t * s_t)`` with ``fail`` the table's mean per-kind failure
    probability, exact when failure does not depend on the node, as in the mechanics families), the
    results of tier ``t`` that passed verification (``verified``, ``attempt_tier``: each was right,
    probability ``1 - pw(node)``) and the wrong results caught (``tier{t}_caught_rate`` times the
    verifications it implies, each with the mean ``pw`` of the nodes tier ``t`` worked on), where
    ``pw(node) = min(0.95, (wrong[kind] + wrong_per_parent * n_parents) * error_scale_t * s_t)``.
    ``risk(i, t)`` is ``pw(i)`` averaged over the posterior: the probability that a result of tier
    ``t`` on node ``i`` is silently wrong.

    **Prices, in ticks.** A wrong result on node ``i`` costs ``stake(i) * target_ticks``, where
    ``stake(i)`` counts the targets it spoils: ``is_target`` plus 1 if it feeds anything (every
    non-target does; a target does when it has children, or, in a progressive task whose children
    are hidden, unless it is a merge), times ``1 + depth_stake * levels(i)`` where ``levels(i)`` is
    the work on ``i``'s longest path to a target after ``i`` itself, in units of ``i``'s own work
    (from the bottom levels; 0 when the task hides them): on a cross-linked pipeline an early error
    spoils more than the two targets the count sees. A tier-``t`` attempt takes ``once(i, t) = ceil(work *
    slowdown_t / 100) + max_jitter / 2`` ticks, ``attempt(i, t) = once(i, t) / (1 - pf_t)`` with
    retries after failures (``pf_t`` the posterior failure probability). A check takes
    ``ticks(i)`` (the table's verify cost) of the orchestrator's own time. Handing ``i`` to tier
    ``t`` is priced ``attempt(i, t) + min(unchecked, checked)``: accept the result unchecked,
    ``risk(i, t) * stake(i) * target_ticks``, or check it and redo it once if caught,
    ``ticks(i) * (1 + load) + risk(i, t) * (attempt(i, t) + ticks(i))``, where ``load`` is the
    checks already pending (of the results it may verify now and of the running nodes) per tick
    left (only ``unchecked`` under ``verify="never"``, only ``checked`` under ``"always"``); a tier
    whose attempt cannot return before the budget (``once > time left``) is priced infinite.

    **Each turn**, in order:

    1. every target done: verify the best candidate (below) if it passes the idle test, else answer;
    2. the ready nodes, in critical_path's priority order (bottom level, then index), each either
       handed off or kept: ``tier="auto"`` hands node ``i`` to its cheapest tier when that price
       plus the wait for a free slot (0 if one is free, else the soonest running sub-agent's
       expected remaining ticks) is at most what doing it costs the orchestrator, its queue (the
       work left of its active node and of the nodes kept before ``i``) plus ``i``'s work left;
       ``"fast"`` and ``"careful"`` hand off every node their tier can return before the budget,
       to that tier (the lowest allowed tier when its spawn is masked). The first node handed off
       is spawned now if a slot is free (else it waits for one); a node kept joins the queue if the
       queue still ends before the budget;
    3. verify the best candidate if it passes the test (busy: it has a queue; idle: none);
    4. work on its own node (the active one, else the first kept); with none, wait; with nothing to
       wait for, work on the first ready node, or answer.

    **Verify** (``verify``): a candidate is a result ``verify`` may check now (the mask) whose check
    fits the time left with room to redo it and what depends on it (``ticks + redo <= time left``,
    ``redo`` its remaining path to a target from the bottom level, or its own work when the task
    hides its structure, at the quicker of the fast tier's pace and the orchestrator's) and does not
    push the orchestrator's queue past the budget (``ticks + queue <= time left``). ``"never"``
    verifies nothing; ``"always"`` verifies the first candidate as soon as there is one, before any
    other timed action; ``"auto"`` verifies the candidate with the largest ``gain / ticks``,
    ``gain = risk(i, tier of its result) * (stake(i) * target_ticks - redo)`` (a wrong result caught
    is redone instead of spoiling its targets), when ``gain >= ticks`` (busy) or
    ``gain >= idle_share * ticks`` (idle: the check only delays its reaction to returns).

    On the base layout (no verify, one tier) it is critical_path (``max_spawn_parents`` 2 unless
    given). With progressive revelation (bottom levels hidden: all 0) priorities tie and node order
    decides.

    :param verify: ``"auto"``, ``"always"`` or ``"never"``.
    :param tier: ``"auto"``, ``"fast"`` or ``"careful"``.
    :param fast_tier: the tier index of the fast tier, in [0, 2].
    :param careful_tier: the tier index of the careful tier, in [0, 2].
    :param target_ticks: ticks one target output is worth, in [0, 1000].
    :param depth_stake: in [0, 10]; how much a wrong result's stake grows per level of work below
        its node (0: the count of targets alone).
    :param idle_share: in [0, 1]; the price of a check's tick when the orchestrator is idle.
    :param max_spawn_parents: ``"auto"``, None or in [0, 8]: hand off only nodes with at most this
        many parents (None: any). ``"auto"``: critical_path's default 2 on the base layout; no limit
        on the extended one, where the prices decide.
    :param public: the public table: a SwarmConfig, or a registered env id whose config is it; None
        (the default): the table of the env it plays, when it is played through :meth:`for_env` (as
        ``swarmgym evaluate``, ``study``, ``replay`` and the warm start do), else
        :data:`PUBLIC_TABLE_ID`'s. A table given explicitly is kept on every env.
    """

    name = "verifying_scheduler"

    def __init__(
        self,
        verify: str = "auto",
        tier: str = "auto",
        fast_tier: int = 0,
        careful_tier: int = 1,
        target_ticks: float = 8.0,
        idle_share: float = 0.25,
        max_spawn_parents: int | None | str = "auto",
        depth_stake: float = 0.0,
        public: str | SwarmConfig | None = None,
    ) -> None:
        # every argument but the table, for the copy :meth:`for_env` makes (the first statement: locals() is the arguments)
        self._arguments = {k: v for k, v in locals().items() if k not in ("self", "public", "__class__")}
        self._public_given = public is not None
        public = PUBLIC_TABLE_ID if public is None else public
        allowed = (
            max_spawn_parents is None
            or max_spawn_parents == "auto"
            or (not isinstance(max_spawn_parents, bool) and isinstance(max_spawn_parents, int) and 0 <= max_spawn_parents <= 8)
        )
        if not allowed:
            raise ValueError(f"{self.name}: max_spawn_parents must be 'auto', None or an integer in [0, 8], got {max_spawn_parents!r}")
        self._parents_by_price = isinstance(max_spawn_parents, str)
        super().__init__(2 if self._parents_by_price else max_spawn_parents)
        where = self.name
        if not isinstance(verify, str) or verify not in VERIFY_MODES:
            raise ValueError(f"{where}: verify must be one of {VERIFY_MODES}, got {verify!r}")
        if not isinstance(tier, str) or tier not in TIER_MODES:
            raise ValueError(f"{where}: tier must be one of {TIER_MODES}, got {tier!r}")
        for key, value in (("fast_tier", fast_tier), ("careful_tier", careful_tier)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < MAX_TIERS:
                raise ValueError(f"{where}: {key} must be an integer in [0, {MAX_TIERS - 1}], got {value!r}")
        for key, value, hi in (("target_ticks", target_ticks, 1000.0), ("idle_share", idle_share, 1.0), ("depth_stake", depth_stake, 10.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0.0 <= value <= hi:
                raise ValueError(f"{where}: {key} must be a number in [0, {hi:g}], got {value!r}")
        if isinstance(public, str):
            import gymnasium as gym

            try:
                config = gym.spec(public).kwargs.get("config")
            except gym.error.Error:
                raise ValueError(f"{where}: public must be a SwarmConfig or a registered env id, got {public!r}") from None
            public_config = SwarmConfig.from_dict(config) if isinstance(config, dict) else (config or SwarmConfig())
        elif isinstance(public, SwarmConfig):
            public_config = public
        else:
            raise ValueError(f"{where}: public must be a SwarmConfig or a registered env id, got {public!r}")
        self.verify, self.tier = verify, tier
        self.fast_tier, self.careful_tier = int(fast_tier), int(careful_tier)
        self.target_ticks, self.idle_share = float(target_ticks), float(idle_share)
        self.depth_stake = float(depth_stake)
        self.public = public
        self._table(public_config)

    def _table(self, config: SwarmConfig) -> None:
        """Read the public table: per-kind probabilities, tiers, verify cost, the prior grid."""
        rel = config.reliability
        self._fail = float(np.mean(rel.fail_base))
        self._wrong_base = np.asarray(rel.wrong_base, dtype=np.float64)
        self._wrong_per_parent = float(rel.wrong_per_parent)
        self._jitter = rel.max_jitter / 2.0
        self._error_scale = np.ones(MAX_TIERS)
        self._slowdown = np.full(MAX_TIERS, 100)
        self._n_tiers = config.n_tiers
        for t, tier in enumerate(config.tier_list):
            self._error_scale[t] = tier.error_scale
            self._slowdown[t] = tier.slowdown_percent
        check = config.verification
        self._check = (check.base_ticks, check.work_percent, check.ticks_per_parent) if check is not None else (1, 50, 0)
        lo, hi = config.hidden_reliability or (1.0, 1.0)
        self._grid = np.linspace(lo, hi, _GRID_POINTS) if hi > lo else np.array([lo])

    # ------------------------------------------------------------------ belief
    def scale_belief(self, nodes: np.ndarray, glob: np.ndarray) -> np.ndarray:
        """``[MAX_TIERS, G]``: per tier, the posterior weights over the hidden scale's grid
        (``self._grid``) given the observation (see the class docstring)."""
        grid = self._grid
        belief = np.empty((MAX_TIERS, grid.size))
        present = nodes[:, _PRESENT] > 0.5
        tier_of = np.rint(nodes[:, _ATTEMPT_TIER] * MAX_TIERS).astype(np.int64) - 1
        base_wrong = self._node_wrong(nodes)
        for t in range(MAX_TIERS):
            log_l = np.zeros(grid.size)
            r = float(glob[GLOBAL_COLUMN[f"tier{t}_returns"]])
            returns = round(RESULTS_HALF * r / (1.0 - r)) if r < 1.0 else 10**6
            if returns:
                fails = round(float(glob[GLOBAL_COLUMN[f"tier{t}_fail_rate"]]) * returns)
                pf = np.clip(self._fail * self._error_scale[t] * grid, 1e-9, 0.95)
                log_l += fails * np.log(pf) + (returns - fails) * np.log1p(-pf)
            worked = present & (tier_of == t)
            passed = worked & (nodes[:, _VERIFIED] > 0.5)
            scaled = np.clip(np.outer(base_wrong, self._error_scale[t] * grid), 1e-9, 0.95)  # [n_max, G]
            log_l += np.log1p(-scaled[passed]).sum(axis=0)
            caught_rate = float(glob[GLOBAL_COLUMN[f"tier{t}_caught_rate"]])
            if caught_rate > 0.0 and worked.any():
                n_passed = int(passed.sum())
                caught = max(1, round(caught_rate * n_passed / (1.0 - caught_rate))) if caught_rate < 1.0 else max(1, n_passed)
                log_l += caught * np.log(scaled[worked].mean(axis=0))
            w = np.exp(log_l - log_l.max())
            belief[t] = w / w.sum()
        return belief

    def _node_wrong(self, nodes: np.ndarray) -> np.ndarray:
        """Per node, the table's wrong-result probability before the tier and hidden scales."""
        kind = np.argmax(nodes[:, KIND_COLUMN0 : KIND_COLUMN0 + len(KINDS)], axis=1)
        n_parents = np.rint(nodes[:, _N_PARENTS] * COUNT_SCALE)
        return self._wrong_base[kind] + self._wrong_per_parent * n_parents

    def risk(self, nodes: np.ndarray, belief: np.ndarray, tier: int | np.ndarray) -> np.ndarray:
        """Per node, the posterior probability that a result of ``tier`` (one tier, or one per
        node) on it is silently wrong."""
        tier = np.broadcast_to(np.asarray(tier), (nodes.shape[0],))
        scaled = np.minimum(0.95, np.outer(self._node_wrong(nodes), self._grid) * self._error_scale[tier][:, None])
        return (scaled * belief[tier]).sum(axis=1)

    def fail_risk(self, belief: np.ndarray, tier: int) -> float:
        """The posterior probability that a tier-``tier`` attempt fails."""
        return float((np.minimum(0.95, self._fail * self._error_scale[tier] * self._grid) * belief[tier]).sum())

    def stake(self, nodes: np.ndarray) -> np.ndarray:
        """Per node, the targets a wrong result on it spoils, grown by the work below it when
        ``depth_stake`` > 0 (see the class docstring). ``nodes``: the whole observation."""
        present = nodes[:, _PRESENT] > 0.5
        target = nodes[:, _IS_TARGET] > 0.5
        progressive = not (nodes[present, _BOTTOM_LEVEL] > 0).any()  # a visible task has bottom level >= work > 0
        if progressive:
            feeds = ~target | (nodes[:, KIND_COLUMN0 + KINDS.index("merge")] < 0.5)
        else:
            feeds = ~target | (nodes[:, _N_CHILDREN] > 0)
        counted = (target.astype(np.float64) + feeds) * present
        if self.depth_stake == 0.0:
            return counted
        return counted * (1.0 + self.depth_stake * self.levels_below(nodes))

    @staticmethod
    def levels_below(nodes: np.ndarray) -> np.ndarray:
        """Per node, the work on its longest path to a target after the node itself, in units of
        its own work: ``bottom level / work - 1`` in ticks, at least 0; 0 everywhere when the task
        hides its structure (every bottom level 0). ``nodes``: the whole observation (a sink's
        bottom level is its own work, which gives the bottom levels' scale)."""
        work = nodes[:, _WORK]
        level = nodes[:, _BOTTOM_LEVEL]
        sinks = (nodes[:, _PRESENT] > 0.5) & (nodes[:, _N_CHILDREN] == 0) & (level > 0) & (work > 0)
        if not sinks.any():
            return np.zeros(nodes.shape[0])
        path = level * float(np.max(work[sinks] / level[sinks]))  # in the units of work
        return np.maximum(0.0, path / np.maximum(work, 1e-9) - 1.0) * (nodes[:, _PRESENT] > 0.5)

    def check_ticks(self, nodes: np.ndarray) -> np.ndarray:
        """Per node, the ticks ``verify`` takes (the public table's cost)."""
        base, percent, per_parent = self._check
        work = np.rint(nodes[:, _WORK] * WORK_SCALE).astype(np.int64)
        return base + work * percent // 100 + per_parent * np.rint(nodes[:, _N_PARENTS] * COUNT_SCALE).astype(np.int64)

    def attempt_ticks(self, nodes: np.ndarray, tier: int) -> np.ndarray:
        """Per node, the ticks a tier-``tier`` attempt takes (before retries)."""
        work = np.rint(nodes[:, _WORK] * WORK_SCALE)
        return np.ceil(work * self._slowdown[tier] / 100) + self._jitter

    def redo_ticks(self, nodes: np.ndarray) -> np.ndarray:
        """Per node, the ticks to redo it and what depends on it after a caught error: its
        remaining path to a target (bottom level, in ticks; just its own work when the task hides
        its structure), at the quicker of the fast tier's pace and the orchestrator's own."""
        work = np.rint(nodes[:, _WORK] * WORK_SCALE)
        level = nodes[:, _BOTTOM_LEVEL]
        sinks = (nodes[:, _PRESENT] > 0.5) & (nodes[:, _N_CHILDREN] == 0) & (level > 0)
        if sinks.any():  # a sink's bottom level is its own work: that gives the critical path in ticks
            path = np.maximum(work, level * float(np.max(work[sinks] / level[sinks])))
        else:
            path = work
        return np.ceil(path * min(self._slowdown[self.fast_tier], 100) / 100) + self._jitter

    # ------------------------------------------------------------------ decisions
    def check_load(self, nodes: np.ndarray, glob: np.ndarray, verify_ok: np.ndarray) -> float:
        """The orchestrator's pending checks: ticks of checking the results it may verify now and
        the nodes running, per tick left (what one more check tick costs beyond itself)."""
        running = nodes[:, NODE_COLUMN["status_running"]] > 0.5
        return float(self.check_ticks(nodes)[verify_ok | running].sum()) / max(_time_left(glob), 1.0)

    def choose_tier(
        self, i: int, nodes: np.ndarray, belief: np.ndarray, spawn_ok: np.ndarray, load: float = 0.0, time_left: float = np.inf
    ) -> tuple[int, float]:
        """``(tier, price)``: the tier to hand node ``i`` to (``spawn_ok[t]``: tier t's spawn of i is
        allowed; -1 if none is) and its expected price in ticks (the class docstring; a check tick
        costs ``1 + load``; a tier whose attempt cannot return within ``time_left`` is priced inf)."""
        allowed = np.flatnonzero(spawn_ok)
        if allowed.size == 0:
            return -1, np.inf
        row = nodes[i : i + 1]
        stake, ticks = float(self.stake(nodes)[i]), float(self.check_ticks(row)[0])
        prices = {}
        for t in allowed:
            once = float(self.attempt_ticks(row, t)[0])
            attempt = once / (1.0 - self.fail_risk(belief, t))
            risk = float(self.risk(row, belief, t)[0])
            unchecked = risk * stake * self.target_ticks
            checked = ticks * (1.0 + load) + risk * (attempt + ticks)
            price = attempt + {"never": unchecked, "always": checked}.get(self.verify, min(unchecked, checked))
            prices[int(t)] = price if once <= time_left + 1e-6 else np.inf
        if self.tier != "auto":
            wanted = self.fast_tier if self.tier == "fast" else self.careful_tier
            t = wanted if wanted in prices else min(prices)
            return t, prices[t]
        t = min(prices, key=lambda k: (prices[k], k))
        return t, prices[t]

    def verify_choice(self, nodes: np.ndarray, glob: np.ndarray, verify_ok: np.ndarray, belief: np.ndarray, backlog: float = 0.0) -> int:
        """The node to verify now, or -1 (see the class docstring); ``backlog``: ticks of the
        orchestrator's own work queued (busy when > 0)."""
        if self.verify == "never" or not verify_ok.any():
            return -1
        time_left = _time_left(glob)
        ticks = self.check_ticks(nodes).astype(np.float64)
        redo = self.redo_ticks(nodes)
        cand = np.flatnonzero(verify_ok & (ticks + redo <= time_left + 1e-6) & (ticks + backlog <= time_left + 1e-6))
        if cand.size == 0:
            return -1
        if self.verify == "always":
            return int(cand[0])
        tier_of = np.clip(np.rint(nodes[cand, _ATTEMPT_TIER] * MAX_TIERS).astype(np.int64) - 1, 0, MAX_TIERS - 1)
        gain = self.risk(nodes[cand], belief, tier_of) * (self.stake(nodes)[cand] * self.target_ticks - redo[cand])
        ratio = gain / ticks[cand]
        best = int(np.argmax(ratio))  # ties: the lowest index
        return int(cand[best]) if ratio[best] >= (1.0 if backlog > 0 else self.idle_share) - 1e-12 else -1

    def act_one(self, nodes, glob, mask, n_max):
        extended = mask.shape[-1] != _layout(n_max).n  # _check_batch accepted it: the extended layout
        if not extended:
            return super().act_one(nodes, glob, mask, n_max)
        lay = _layout(n_max, True)
        belief = self.scale_belief(nodes, glob)
        verify_ok = lay.block(mask, "verify")
        if _all_targets_done(glob):
            v = self.verify_choice(nodes, glob, verify_ok, belief)
            return lay.verify + v if v >= 0 else lay.answer
        time_left = _time_left(glob)
        level = nodes[:, _BOTTOM_LEVEL]
        work_left = np.rint(nodes[:, _WORK_LEFT] * WORK_SCALE)
        spawn_blocks = np.stack([lay.block(mask, spawn_block(t)) for t in range(MAX_TIERS)])  # [MAX_TIERS, n_max]
        do_mask = lay.block(mask, "do")
        active = np.flatnonzero((nodes[:, _STATUS_ACTIVE] > 0.5) & do_mask)
        ready = np.flatnonzero((nodes[:, _STATUS_READY] > 0.5) & do_mask)
        ready = ready[np.lexsort((ready, -level[ready]))]  # priority order: bottom level, then index
        if self.max_spawn_parents is not None and not self._parents_by_price:
            handable = nodes[:, _N_PARENTS] * COUNT_SCALE <= self.max_spawn_parents + 1e-6
        else:
            handable = np.ones(n_max, dtype=bool)
        handable &= nodes[:, _ATTEMPTS] < 1.0 - 1e-6  # attempts left
        # a slot frees when the soonest running sub-agent returns (estimated from the table)
        slot_free = bool(glob[GLOBAL_COLUMN["can_spawn"]] > 0.5)
        slot_wait = 0.0 if slot_free else self._slot_wait(nodes)
        load = self.check_load(nodes, glob, verify_ok)
        tiers_ok = np.zeros(MAX_TIERS, dtype=bool)
        tiers_ok[: self._n_tiers] = True
        backlog = float(work_left[active].sum())  # the orchestrator's own queue, in ticks
        kept = []
        for i in ready:
            self_price = backlog + work_left[i] if backlog + work_left[i] <= time_left + 1e-6 else np.inf
            if handable[i]:
                t, price = self.choose_tier(int(i), nodes, belief, tiers_ok, load, time_left - slot_wait)
                if price < np.inf and (self.tier != "auto" or price + slot_wait <= self_price):
                    if spawn_blocks[:, i].any():
                        t, _ = self.choose_tier(int(i), nodes, belief, spawn_blocks[:, i], load, time_left)
                        return int(lay.spawn_tier(t) + i)
                    continue  # waits for a slot
            if self_price < np.inf:
                kept.append(int(i))  # cheaper done by the orchestrator itself, after its queue
                backlog += work_left[i]
        own = int(active[0]) if active.size else (kept[0] if kept else -1)
        v = self.verify_choice(nodes, glob, verify_ok, belief, backlog)
        if v >= 0:
            return lay.verify + v
        if own >= 0:
            return lay.do + own
        if mask[lay.wait]:
            return lay.wait
        return lay.do + int(ready[0]) if ready.size else lay.answer

    def _slot_wait(self, nodes: np.ndarray) -> float:
        """Ticks until the soonest running sub-agent returns, estimated from its tier's duration."""
        running = np.flatnonzero(nodes[:, NODE_COLUMN["status_running"]] > 0.5)
        if running.size == 0:
            return 0.0
        tier = np.clip(np.rint(nodes[running, _ATTEMPT_TIER] * MAX_TIERS).astype(np.int64) - 1, 0, MAX_TIERS - 1)
        work = np.rint(nodes[running, _WORK] * WORK_SCALE)
        expected = np.ceil(work * self._slowdown[tier] / 100) + self._jitter
        elapsed = nodes[running, NODE_COLUMN["subagent_elapsed"]] * work
        return float(np.maximum(1.0, expected - elapsed).min())

    def _public_label(self) -> str:
        if not self._public_given:
            return f"None (the env's table; {PUBLIC_TABLE_ID!r} until bound)"
        return repr(self.public) if isinstance(self.public, str) else "a SwarmConfig"

    def for_env(self, config: SwarmConfig) -> Orchestrator:
        """A copy told ``config``'s public table, unless a table was given explicitly or ``config``
        has none (the base layout, where this rule is critical_path)."""
        if self._public_given or not config.extended:
            return self
        bound = type(self)(**self._arguments, public=config)
        bound.name = self.name
        return bound

    def __repr__(self) -> str:
        return (
            f"VerifyingScheduler(verify={self.verify!r}, tier={self.tier!r}, fast_tier={self.fast_tier}, careful_tier={self.careful_tier}, "
            f"target_ticks={self.target_ticks}, idle_share={self.idle_share}, "
            f"max_spawn_parents={'auto' if self._parents_by_price else self.max_spawn_parents}, depth_stake={self.depth_stake}, "
            f"public={self._public_label()})"
        )


class RandomOrchestrator(Orchestrator):
    """Uniform over the valid actions (masked), from a seeded generator.

    :param seed: seed of its ``numpy`` generator.
    """

    name = "random"

    def __init__(self, seed: int | None = 0) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63):
            raise ValueError(f"random: seed must be None or an integer in [0, 2**63 - 1], got {seed!r}")
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63):
            raise ValueError(f"random: seed must be None or an integer in [0, 2**63 - 1], got {seed!r}")
        self.rng = np.random.default_rng(self.seed if seed is None else seed)

    def act(self, obs, mask):
        _, _, mask, n_max = _check_batch(obs, mask)
        out = np.empty(mask.shape[0], dtype=np.int64)
        for b in range(mask.shape[0]):
            valid = np.flatnonzero(mask[b])
            out[b] = valid[self.rng.integers(valid.size)] if valid.size else _layout(n_max).answer
        return out


class SB3Policy(Orchestrator):
    """A stable-baselines3 model as an orchestrator: ``predict`` with the mask
    (sb3-contrib's MaskablePPO) or on the flat observation rebuilt from the Dict one
    (a model trained on a ``-flat`` id: nodes, globals, adjacency if present, mask as 0/1).

    :param model: a trained SB3 model (``MaskablePPO``, ``PPO``, ...).
    :param name: the table name.
    :param deterministic: greedy actions (default) or sampled ones.
    :param seed: seed of the sampled actions: :meth:`reset` seeds torch's global generator
        with it (SB3 samples from that generator).
    :param threads: torch threads while acting (default 1, the fastest for these small
        models on a few cores; None keeps torch's setting), restored after each call.
    """

    def __init__(self, model: Any, name: str = "sb3", deterministic: bool = True, seed: int = 0, threads: int | None = 1) -> None:
        import gymnasium as gym

        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an integer >= 1, got {threads!r}")
        self.model = model
        self.name = name
        self.deterministic = bool(deterministic)
        self.seed = int(seed)
        self.threads = threads
        self.flat = not isinstance(model.observation_space, gym.spaces.Dict)
        self.masked = type(model).__name__ == "MaskablePPO"

    def reset(self, seed: int | None = None) -> None:
        """Seed the sampled actions (torch's global generator), from ``seed`` or the policy's ``seed``."""
        if not self.deterministic:
            import torch

            torch.manual_seed(self.seed if seed is None else int(seed))

    def act(self, obs, mask):
        import torch

        before = torch.get_num_threads()
        switch = self.threads is not None and before != self.threads
        if switch:
            torch.set_num_threads(self.threads)
        try:
            return self._act(obs, mask)
        finally:
            if switch:
                torch.set_num_threads(before)

    def _act(self, obs, mask):
        mask = np.asarray(mask, dtype=bool)
        if self.flat:
            n_max = np.shape(obs["nodes"])[1]
            extended = mask.shape[-1] == ActionLayout(n_max, True).n
            model_obs: Any = FlatLayout(n_max, with_adjacency="adjacency" in obs, extended=extended).flatten(obs, mask)
        else:
            model_obs = {k: np.asarray(v) for k, v in obs.items()}
        if self.masked:
            actions, _ = self.model.predict(model_obs, action_masks=mask, deterministic=self.deterministic)
        else:
            actions, _ = self.model.predict(model_obs, deterministic=self.deterministic)
        return np.asarray(actions, dtype=np.int64).reshape(-1)

    def __repr__(self) -> str:
        return f"SB3Policy({type(self.model).__name__}, name={self.name!r})"


def load_sb3(path: str, name: str | None = None) -> SB3Policy:
    """Load a saved SB3 model (``model.zip`` or a run folder holding one; MaskablePPO tried
    first, then PPO) as an orchestrator. Needs ``stable-baselines3`` and ``sb3-contrib``."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        p = p / "model.zip"
    if not p.is_file():
        raise FileNotFoundError(f"no SB3 model at {str(path)!r} (expected a model.zip or a run folder holding one)")
    try:
        from sb3_contrib import MaskablePPO
        from stable_baselines3 import PPO
    except ImportError as exc:
        raise ImportError("loading SB3 checkpoints needs stable-baselines3 and sb3-contrib: pip install 'swarmgym[sb3]'") from exc
    errors = []
    for algo in (MaskablePPO, PPO):
        try:
            model = algo.load(p, device="cpu")
        except Exception as exc:  # noqa: BLE001 - try the next algorithm
            errors.append(f"{algo.__name__}: {exc}")
            continue
        return SB3Policy(model, name or f"sb3:{path}")
    raise ValueError(f"{str(p)!r} is neither a MaskablePPO nor a PPO model ({'; '.join(errors)})")


#: Built-in orchestrators by name (the reference set, in table order).
BUILTIN: dict[str, Callable[..., Orchestrator]] = {
    "sequential_crew": SequentialCrew,
    "delegating_manager": DelegatingManager,
    "static_fanout": StaticFanout,
    "critical_path": CriticalPathScheduler,
    "verifying_scheduler": VerifyingScheduler,
    "random": RandomOrchestrator,
}
#: The reference orchestrators' names.
REFERENCE_NAMES: tuple[str, ...] = tuple(BUILTIN)


def bind_to_env(policy: Any, env: Any) -> Any:
    """``policy`` as it plays ``env`` (a SwarmEnv, a wrapper of one, or an engine with a ``config``):
    ``policy.for_env(config)`` where the policy has it (:meth:`Orchestrator.for_env`), else ``policy``."""
    config = getattr(getattr(env, "unwrapped", env), "config", None)
    if config is None or not hasattr(policy, "for_env"):
        return policy
    return policy.for_env(config)


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def load_orchestrator(spec: str) -> Orchestrator:
    """Resolve an orchestrator spec.

    * a built-in name (:data:`REFERENCE_NAMES`), optionally with keyword arguments:
      ``"critical_path:max_spawn_parents=8"``, ``"random:seed=3"``;
    * ``"moe:PATH"``: a trained checkpoint, loaded lazily with
      ``swarmgym.moe.policy.load_policy(PATH)``;
    * ``"sb3:PATH"``: a stable-baselines3 model (:func:`load_sb3`).

    :raises ValueError: for an unknown name, a malformed argument list, an unknown argument or a
        value out of its range (one line naming the parameter and its allowed values).
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"an orchestrator spec must be a non-empty string, got {spec!r}")
    head, sep, rest = spec.partition(":")
    if head == "moe":
        if not rest:
            raise ValueError("spec 'moe:PATH' needs a checkpoint path after 'moe:'")
        from swarmgym.moe.policy import load_policy

        policy = load_policy(rest)
        if not getattr(policy, "name", None):
            try:
                policy.name = f"moe:{rest}"
            except AttributeError:
                pass
        return policy
    if head == "sb3":
        if not rest:
            raise ValueError("spec 'sb3:PATH' needs a model path after 'sb3:'")
        return load_sb3(rest)
    if head not in BUILTIN:
        raise ValueError(f"unknown orchestrator {head!r}; choose from {', '.join(REFERENCE_NAMES)}, 'moe:PATH' or 'sb3:PATH'")
    kwargs: dict[str, Any] = {}
    if sep:
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise ValueError(f"orchestrator arguments must be key=value pairs separated by commas, got {item!r} in {spec!r}")
            kwargs[key.strip()] = _parse_value(value.strip())

    known = [p for p in inspect.signature(BUILTIN[head]).parameters]
    unknown = [k for k in kwargs if k not in known]
    if unknown:
        raise ValueError(f"{head}: unknown argument(s) {unknown}; it takes {known}")
    policy = BUILTIN[head](**kwargs)  # each class validates its values: one line naming the parameter and its range
    if kwargs:
        policy.name = spec
    return policy


__all__ = [
    "BUILTIN",
    "REFERENCE_NAMES",
    "CriticalPathScheduler",
    "DelegatingManager",
    "Orchestrator",
    "RandomOrchestrator",
    "SB3Policy",
    "SequentialCrew",
    "StaticFanout",
    "VerifyingScheduler",
    "load_orchestrator",
    "load_sb3",
]
