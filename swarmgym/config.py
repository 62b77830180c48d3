"""The one configuration object shared by the reference simulator and the batched engine.

Every constant of the dynamics lives in :class:`SwarmConfig`; both engines read it,
so they cannot drift apart. All fields are validated at construction: a bad value
raises ``ValueError`` (or ``TypeError``) naming the field and its allowed range.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import numpy as np

from swarmgym.graph import KINDS


def _check_int(name: str, value, lo: int, hi: int | None = None) -> None:
    """Raise TypeError / ValueError naming ``name`` unless ``value`` is an integer in [lo, hi]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer in [{lo}, {hi if hi is not None else 'inf'}], got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi if hi is not None else 'inf'}], got {value}")


def _check_float(name: str, value, lo: float, hi: float | None = None) -> None:
    """Raise TypeError / ValueError naming ``name`` unless ``value`` is a finite real number in [lo, hi]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [{lo}, {hi if hi is not None else 'inf'}], got {value!r}")
    if not math.isfinite(value) or value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi if hi is not None else 'inf'}], got {value}")


@dataclass(frozen=True)
class SubAgentReliability:
    """How sub-agents fail. A sub-agent attempt on node ``i`` fails (returns an error;
    the node is ready again) with probability
    ``min(0.95, fail_base[kind_i] + fail_per_parent * n_parents_i)`` and, otherwise,
    returns a silently wrong result with probability
    ``min(0.95, wrong_base[kind_i] + wrong_per_parent * n_parents_i)``.
    Nodes that need upstream context (many parents) are less reliable in a
    sub-agent's hands; the orchestrator itself never errs.

    :param fail_base: per kind (plan, search, reason, merge), each in [0, 0.95].
    :param wrong_base: per kind, each in [0, 0.95].
    :param fail_per_parent: added per parent, in [0, 0.5].
    :param wrong_per_parent: added per parent, in [0, 0.5].
    :param max_jitter: a sub-agent takes ``work + U{0..max_jitter}`` ticks; in [0, 16].
    """

    fail_base: tuple[float, float, float, float] = (0.05, 0.05, 0.10, 0.05)
    wrong_base: tuple[float, float, float, float] = (0.02, 0.01, 0.12, 0.03)
    fail_per_parent: float = 0.02
    wrong_per_parent: float = 0.02
    max_jitter: int = 1

    def __post_init__(self) -> None:
        for name in ("fail_base", "wrong_base"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and value.ndim == 1:
                value = value.tolist()
            if not isinstance(value, (tuple, list)):
                raise TypeError(f"{name} must be a sequence of {len(KINDS)} probabilities, one per kind {KINDS}, got {value!r}")
            if len(value) != len(KINDS):
                raise ValueError(f"{name} must be {len(KINDS)} probabilities, one per kind {KINDS}; got {len(value)}: {value!r}")
            for k, p in zip(KINDS, value):
                _check_float(f"{name}[{k}]", p, 0.0, 0.95)
            object.__setattr__(self, name, tuple(float(p) for p in value))
        _check_float("fail_per_parent", self.fail_per_parent, 0.0, 0.5)
        _check_float("wrong_per_parent", self.wrong_per_parent, 0.0, 0.5)
        _check_int("max_jitter", self.max_jitter, 0, 16)

    @classmethod
    def perfect(cls) -> "SubAgentReliability":
        """Sub-agents that never fail, never err and take exactly ``work`` ticks."""
        return cls((0.0,) * 4, (0.0,) * 4, 0.0, 0.0, 0)


@dataclass(frozen=True)
class TokenModel:
    """Token accounting and its price (defaults: Kimi K2.5's public API rates).

    :param orchestrator_turn_input: tokens the orchestrator reads per timed turn (do, wait, or an invalid action).
    :param orchestrator_turn_output: tokens it writes per timed turn.
    :param handoff_base: tokens of a hand-off message (written by the orchestrator, read by the sub-agent).
    :param handoff_per_parent: extra hand-off tokens per parent of the node (upstream context).
    :param subagent_step_input: tokens a running sub-agent reads per tick.
    :param subagent_step_output: tokens a running sub-agent writes per tick, before verbosity.
    :param subagent_verbosity: multiplier on sub-agent output, in [0, 100].
    :param result_tokens: tokens of a returned result (sub-agent output, orchestrator input).
    :param price_input_per_million: US dollars per million input tokens.
    :param price_output_per_million: US dollars per million output tokens.
    """

    orchestrator_turn_input: int = 800
    orchestrator_turn_output: int = 100
    handoff_base: int = 150
    handoff_per_parent: int = 300
    subagent_step_input: int = 400
    subagent_step_output: int = 100
    subagent_verbosity: float = 1.5
    result_tokens: int = 200
    price_input_per_million: float = 0.60
    price_output_per_million: float = 3.00

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                _check_int(f.name, value, 0, 10**7)
            else:
                _check_float(f.name, value, 0.0, 1e4)

    @property
    def subagent_tick_output(self) -> int:
        """Output tokens per running sub-agent per tick (verbosity applied, rounded)."""
        return int(round(self.subagent_step_output * self.subagent_verbosity))

    def price(self, input_tokens: int, output_tokens: int) -> float:
        """Dollar price of the given token counts."""
        return (input_tokens * self.price_input_per_million + output_tokens * self.price_output_per_million) / 1e6


#: Most sub-agent tiers a config may define (the extended action layout has a spawn block per tier).
MAX_TIERS = 3


@dataclass(frozen=True)
class SubAgentTier:
    """One kind of sub-agent the orchestrator can spawn (e.g. a small fast model or a large careful one).

    A tier-``t`` attempt on node ``i`` takes ``ceil(work_i * slowdown_percent / 100) + jitter`` ticks
    (plus the node's coordination work, see :class:`CoordinationTax`), fails with probability
    ``min(0.95, p_fail_i * error_scale * s_t)`` and otherwise returns a silently wrong result with
    probability ``min(0.95, p_wrong_i * error_scale * s_t)``, where ``p_fail_i``/``p_wrong_i`` come from
    :class:`SubAgentReliability` and ``s_t`` is the episode's hidden scale (1 unless
    ``SwarmConfig.hidden_reliability`` is set).

    :param name: a label (metrics and docs), 1 to 32 characters.
    :param slowdown_percent: duration in percent of the node's work, in [10, 1000].
    :param error_scale: multiplies both error probabilities, in [0, 20].
    :param token_percent: tokens a running sub-agent of this tier reads and writes per tick, in
        percent of the :class:`TokenModel`'s (rounded down), in [0, 10000].
    :param price_scale: multiplies the dollar price of this tier's tokens, in [0, 1000].
    """

    name: str = "standard"
    slowdown_percent: int = 100
    error_scale: float = 1.0
    token_percent: int = 100
    price_scale: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 32:
            raise ValueError(f"tier name must be a string of 1 to 32 characters, got {self.name!r}")
        _check_int("slowdown_percent", self.slowdown_percent, 10, 1000)
        _check_float("error_scale", self.error_scale, 0.0, 20.0)
        _check_int("token_percent", self.token_percent, 0, 10000)
        _check_float("price_scale", self.price_scale, 0.0, 1000.0)


#: The one tier of a config without ``tiers`` (``SwarmConfig.tier_list``).
_DEFAULT_TIERS = (SubAgentTier(),)


@dataclass(frozen=True)
class Verification:
    """The orchestrator's ``verify(i)``: it re-checks a result a sub-agent returned.

    It takes ``base_ticks + work_i * work_percent // 100 + ticks_per_parent * n_parents_i`` ticks of
    the orchestrator's own time (one timed turn), and it reads the result again with its context:
    ``result_tokens + handoff_per_parent * n_parents_i`` input tokens beside the turn's. A wrong
    result is caught: the node is ready again and everything built on it is invalidated.

    :param base_ticks: in [1, 64].
    :param work_percent: percent of the node's work, in [0, 400].
    :param ticks_per_parent: in [0, 16].
    """

    base_ticks: int = 1
    work_percent: int = 50
    ticks_per_parent: int = 0

    def __post_init__(self) -> None:
        _check_int("base_ticks", self.base_ticks, 1, 64)
        _check_int("work_percent", self.work_percent, 0, 400)
        _check_int("ticks_per_parent", self.ticks_per_parent, 0, 16)


@dataclass(frozen=True)
class CoordinationTax:
    """What reading sub-agents' results costs the orchestrator (Brooks's law).

    :param turn_input_per_result: every timed turn, the orchestrator reads this many more input
        tokens per sub-agent result returned so far (its context grows), in [0, 100000].
    :param merge_work_per_subagent_input: a node with at least two parents needs this many more
        ticks of work per parent whose result came from a sub-agent, fixed when it becomes ready,
        in [0, 16].
    """

    turn_input_per_result: int = 0
    merge_work_per_subagent_input: int = 0

    def __post_init__(self) -> None:
        _check_int("turn_input_per_result", self.turn_input_per_result, 0, 100000)
        _check_int("merge_work_per_subagent_input", self.merge_work_per_subagent_input, 0, 16)


@dataclass(frozen=True)
class SwarmConfig:
    """Dynamics of the orchestrator and its sub-agents.

    :param max_subagents: sub-agents that may run at once, in [0, 64] (0 = orchestrator alone).
    :param max_spawns_per_turn: spawn calls allowed in one turn, in [1, 64]; default: ``max_subagents``.
    :param max_attempts: sub-agent attempts allowed per node, in [1, 16]; after that only ``do`` works on it.
    :param spawn_ticks: clock ticks each spawn costs the orchestrator, in [0, 16] (default 0).
    :param reliability: how sub-agents fail (:class:`SubAgentReliability`).
    :param tokens: token accounting and prices (:class:`TokenModel`).

    The mechanics below are off by default; any of them switches the env to the *extended*
    layout (:class:`swarmgym.layout.ActionLayout` with ``extended=True`` and the extended
    observation columns), see ``docs/mechanics.md``:

    :param progressive: a node is revealed only when its parents are done (its row, its
        adjacency and its structural features are zero until then).
    :param verification: the ``verify(i)`` action (:class:`Verification`), or None.
    :param tiers: up to :data:`MAX_TIERS` sub-agent tiers (:class:`SubAgentTier`); spawning
        chooses one. Empty: one tier with the defaults.
    :param hidden_reliability: ``(lo, hi)`` with ``0 <= lo <= hi <= 20``: each episode draws a
        hidden error scale per tier, uniform in ``[lo, hi]``; or None.
    :param coordination: the coordination tax (:class:`CoordinationTax`), or None.
    """

    max_subagents: int = 8
    max_spawns_per_turn: int | None = None
    max_attempts: int = 3
    spawn_ticks: int = 0
    reliability: SubAgentReliability = field(default_factory=SubAgentReliability)
    tokens: TokenModel = field(default_factory=TokenModel)
    progressive: bool = False
    verification: Verification | None = None
    tiers: tuple[SubAgentTier, ...] = ()
    hidden_reliability: tuple[float, float] | None = None
    coordination: CoordinationTax | None = None

    def __post_init__(self) -> None:
        _check_int("max_subagents", self.max_subagents, 0, 64)
        if self.max_spawns_per_turn is None:
            object.__setattr__(self, "max_spawns_per_turn", max(1, self.max_subagents))
        _check_int("max_spawns_per_turn", self.max_spawns_per_turn, 1, 64)
        _check_int("max_attempts", self.max_attempts, 1, 16)
        _check_int("spawn_ticks", self.spawn_ticks, 0, 16)
        if isinstance(self.reliability, Mapping):
            object.__setattr__(self, "reliability", _from_fields(SubAgentReliability, self.reliability, "reliability"))
        if isinstance(self.tokens, Mapping):
            object.__setattr__(self, "tokens", _from_fields(TokenModel, self.tokens, "tokens"))
        if not isinstance(self.reliability, SubAgentReliability):
            raise TypeError(f"reliability must be a SubAgentReliability or a dict of its fields, got {type(self.reliability).__name__}")
        if not isinstance(self.tokens, TokenModel):
            raise TypeError(f"tokens must be a TokenModel or a dict of its fields, got {type(self.tokens).__name__}")
        if not isinstance(self.progressive, (bool, np.bool_)):
            raise TypeError(f"progressive must be a bool, got {self.progressive!r}")
        object.__setattr__(self, "progressive", bool(self.progressive))
        for name, cls in (("verification", Verification), ("coordination", CoordinationTax)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                value = _from_fields(cls, value, name)
                object.__setattr__(self, name, value)
            if value is not None and not isinstance(value, cls):
                raise TypeError(f"{name} must be None, a {cls.__name__} or a dict of its fields, got {type(value).__name__}")
        tiers = self.tiers
        if isinstance(tiers, (SubAgentTier, Mapping)) or not isinstance(tiers, (tuple, list)):
            raise TypeError(f"tiers must be a sequence of 0 to {MAX_TIERS} SubAgentTier (or dicts of their fields), got {tiers!r}")
        if len(tiers) > MAX_TIERS:
            raise ValueError(f"tiers must have at most {MAX_TIERS} entries, got {len(tiers)}")
        tiers = tuple(_from_fields(SubAgentTier, t, f"tiers[{k}]") if isinstance(t, Mapping) else t for k, t in enumerate(tiers))
        for k, t in enumerate(tiers):
            if not isinstance(t, SubAgentTier):
                raise TypeError(f"tiers[{k}] must be a SubAgentTier or a dict of its fields, got {type(t).__name__}")
        object.__setattr__(self, "tiers", tiers)
        hidden = self.hidden_reliability
        if hidden is not None:
            if isinstance(hidden, np.ndarray):
                hidden = hidden.tolist()
            if not isinstance(hidden, (tuple, list)) or len(hidden) != 2:
                raise TypeError(f"hidden_reliability must be None or a pair (lo, hi) with 0 <= lo <= hi <= 20, got {hidden!r}")
            _check_float("hidden_reliability[0]", hidden[0], 0.0, 20.0)
            _check_float("hidden_reliability[1]", hidden[1], 0.0, 20.0)
            if hidden[0] > hidden[1]:
                raise ValueError(f"hidden_reliability must be a pair (lo, hi) with lo <= hi, got {tuple(hidden)!r}")
            object.__setattr__(self, "hidden_reliability", (float(hidden[0]), float(hidden[1])))

    @property
    def extended(self) -> bool:
        """Whether any of the mechanics (progressive revelation, verification, tiers, hidden
        reliability, coordination tax) is on: the env then uses the extended layout."""
        return (
            self.progressive
            or self.verification is not None
            or bool(self.tiers)
            or self.hidden_reliability is not None
            or self.coordination is not None
        )

    @property
    def n_tiers(self) -> int:
        """Sub-agent tiers the orchestrator can choose from (1 when ``tiers`` is empty)."""
        return max(1, len(self.tiers))

    @property
    def tier_list(self) -> tuple[SubAgentTier, ...]:
        """The tiers, with the single default tier when ``tiers`` is empty."""
        return self.tiers or _DEFAULT_TIERS

    @property
    def fastest_percent(self) -> int:
        """The fastest agent's time on a node, in percent of its work: 100 (the orchestrator's
        speed) unless a tier is faster (``slowdown_percent < 100``). The makespan floors
        (``lower_bound``, ``task_lower_bound``) scale by it, so they stay floors."""
        return min(100, *(tier.slowdown_percent for tier in self.tier_list))

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serialisable), accepted back by ``SwarmConfig(**d)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config") -> "SwarmConfig":
        """``SwarmConfig(**values)``, with an unknown field named (and the known ones listed)."""
        return _from_fields(cls, values, where)


def _from_fields(cls: type, values: Mapping[str, Any], where: str):
    """``cls(**values)`` for a config dataclass; an unknown key raises TypeError naming it and the known ones."""
    if not isinstance(values, Mapping):
        raise TypeError(f"{where} must be a {cls.__name__} or a dict of its fields, got {type(values).__name__}")
    known = [f.name for f in fields(cls) if f.init]
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        raise TypeError(f"{where}: unknown field(s) {unknown}; {cls.__name__} has {known}")
    return cls(**values)


#: Largest batch any engine accepts, whatever the memory (a documented hard cap).
MAX_NUM_ENVS = 1 << 22


def available_memory_bytes() -> int | None:
    """Memory the OS reports as available to new allocations (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_num_envs(num_envs: Any, bytes_per_env: int, *, available: int | None = None, name: str = "num_envs") -> None:
    """Refuse a batch size before any memory is allocated for it.

    ``num_envs`` must be an integer in ``[1, MAX_NUM_ENVS]`` whose estimated footprint
    ``num_envs * bytes_per_env`` fits in the available memory; otherwise the
    ``ValueError`` says how much it needs, how much there is, and the largest batch
    that fits.

    :param num_envs: the requested batch size.
    :param bytes_per_env: the engine's estimate of its memory per env (buffers, bank share).
    :param available: bytes available (default: :func:`available_memory_bytes`; no
        memory check when that is unknown).
    :param name: the parameter's name in the message.
    """
    _check_int(name, num_envs, 1, MAX_NUM_ENVS)
    if isinstance(bytes_per_env, bool) or not isinstance(bytes_per_env, (int, np.integer)) or bytes_per_env < 1:
        raise ValueError(f"bytes_per_env must be an integer >= 1, got {bytes_per_env!r}")
    if available is None:
        available = available_memory_bytes()
    if available is None:
        return
    need = int(num_envs) * int(bytes_per_env)
    if need > available:
        fits = max(0, available // int(bytes_per_env))
        raise ValueError(
            f"{name}={num_envs} needs about {need / 2**30:.2f} GiB ({bytes_per_env:,} bytes per env), but only "
            f"{available / 2**30:.2f} GiB of memory is available; use {name} <= {fits:,}"
        )
