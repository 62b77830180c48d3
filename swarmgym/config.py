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


@dataclass(frozen=True)
class SwarmConfig:
    """Dynamics of the orchestrator and its sub-agents.

    :param max_subagents: sub-agents that may run at once, in [0, 64] (0 = orchestrator alone).
    :param max_spawns_per_turn: spawn calls allowed in one turn, in [1, 64]; default: ``max_subagents``.
    :param max_attempts: sub-agent attempts allowed per node, in [1, 16]; after that only ``do`` works on it.
    :param spawn_ticks: clock ticks each spawn costs the orchestrator, in [0, 16] (default 0).
    :param reliability: how sub-agents fail (:class:`SubAgentReliability`).
    :param tokens: token accounting and prices (:class:`TokenModel`).
    """

    max_subagents: int = 8
    max_spawns_per_turn: int | None = None
    max_attempts: int = 3
    spawn_ticks: int = 0
    reliability: SubAgentReliability = field(default_factory=SubAgentReliability)
    tokens: TokenModel = field(default_factory=TokenModel)

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
