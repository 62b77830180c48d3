"""The metrics recorder: episode metrics aggregated over many episodes, per family.

Every episode of a SwarmEnv ends with ``info["metrics"]`` (``SwarmSimulator.metrics()``);
:class:`MetricsRecorder` accumulates those dicts and reports, per family (the
``family`` key: a Mixed episode counts under the family it drew) and over all
episodes, the mean of each recorded quantity with a 95% confidence interval.

Recorded quantities (:data:`RECORDED`): the episode metrics ``score``,
``critical_steps``, ``speedup``, ``ideal_speedup``, ``serial_collapse_index``,
``spurious_spawn_rate``, ``makespan_ratio``, ``mean_concurrency``, ``peak_concurrency``,
``n_spawned``, ``tokens``, ``cost_usd`` and ``budget_exhausted`` (1 or 0), each as defined
in :data:`swarmgym.layout.METRICS`, plus two derived from them (:data:`DERIVED`):

=========================  ==================================================================
``task_makespan_ratio``    ``critical_steps / task_lower_bound``: wall clock over the whole
                           task's floor ``max(critical path, ceil(total work / (m + 1)))``
``idle_share``             ``concurrency_profile[0]``: share of ticks with no sub-agent running
=========================  ==================================================================

and the quantities of the mechanics (:data:`MECHANICS_RECORDED`: ``targets_wrong``,
``targets_missing``, ``verification_rate``, ``verification_yield``, ``verify_ticks``,
``coordination_tokens``, ``spawned_tier<t>`` and ``cost_usd_tier<t>``), recorded for every
episode (0 where a mechanic is off) and shown in the tables of :mod:`swarmgym.evaluation` only for
ids that use the mechanics.

Plus the mean concurrency profile (:meth:`MetricsRecorder.concurrency_profile`):
entry ``k`` is the mean over episodes of the share of ticks during which exactly
``k`` sub-agents ran.

Means are over episodes (each episode weighs the same); the 95% confidence interval
is ``mean ± t_{0.975, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation
(Student t; undefined, reported as NaN, for a single episode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import gymnasium as gym
import numpy as np

from swarmgym.config import MAX_TIERS

#: Recorded quantities that are not episode metrics themselves, with their definitions.
DERIVED: Mapping[str, str] = {
    "task_makespan_ratio": "critical_steps / task_lower_bound",
    "idle_share": "concurrency_profile[0]: the share of ticks with no sub-agent running",
}
#: The quantities of the mechanics (docs/mechanics.md) that :class:`MetricsRecorder` aggregates:
#: what was wrong or missing at the end, checks (rate, yield, the orchestrator's ticks), the
#: coordination tax's tokens, and spawns and spend per tier (metric keys of
#: :data:`swarmgym.layout.SCALAR_METRIC_KEYS`; 0 in an episode where the mechanic is off).
MECHANICS_RECORDED: tuple[str, ...] = (
    "targets_wrong",
    "targets_missing",
    "verification_rate",
    "verification_yield",
    "verify_ticks",
    "coordination_tokens",
    *(f"spawned_tier{t}" for t in range(MAX_TIERS)),
    *(f"cost_usd_tier{t}" for t in range(MAX_TIERS)),
)
#: The quantities :class:`MetricsRecorder` aggregates, in table order (metric keys of
#: :data:`swarmgym.layout.SCALAR_METRIC_KEYS`, or :data:`DERIVED`), the mechanics' last.
RECORDED: tuple[str, ...] = (
    "score",
    "critical_steps",
    "speedup",
    "ideal_speedup",
    "serial_collapse_index",
    "spurious_spawn_rate",
    "makespan_ratio",
    "task_makespan_ratio",
    "mean_concurrency",
    "peak_concurrency",
    "idle_share",
    "n_spawned",
    "tokens",
    "cost_usd",
    "budget_exhausted",
    *MECHANICS_RECORDED,
)
#: Name of the row that pools every family.
ALL = "all"

# two-sided 95% Student t quantiles t_{0.975, df}
_T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
    21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
    40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    """``t_{0.975, df}``: tabulated to df = 30, then interpolated linearly in ``1/df``
    through 40, 60, 120 and the normal limit (error < 0.001)."""
    if isinstance(df, (bool, np.bool_)) or not isinstance(df, (int, np.integer)):
        raise TypeError(f"df must be an integer >= 1 (degrees of freedom), got {df!r}")
    if df < 1:
        raise ValueError(f"df must be an integer >= 1 (degrees of freedom), got {df}")
    if df in _T975:
        return _T975[df]
    points = [(30, _T975[30]), (40, _T975[40]), (60, _T975[60]), (120, _T975[120]), (math.inf, _Z975)]
    for (d0, t0), (d1, t1) in zip(points, points[1:]):
        if d0 < df <= d1:
            x0, x1, x = 1 / d0, (0.0 if math.isinf(d1) else 1 / d1), 1 / df
            return t1 + (t0 - t1) * (x - x1) / (x0 - x1)
    return _Z975  # pragma: no cover


@dataclass(frozen=True)
class Stat:
    """Mean of ``n`` episodes with its 95% confidence half-width (NaN when n < 2)."""

    mean: float
    half_width: float
    n: int
    std: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @classmethod
    def of(cls, values: Iterable[float]) -> "Stat":
        x = np.asarray(list(values), dtype=np.float64)
        n = int(x.size)
        if n == 0:
            return cls(math.nan, math.nan, 0, math.nan)
        mean = float(x.mean())
        if n < 2:
            return cls(mean, math.nan, 1, math.nan)
        std = float(x.std(ddof=1))
        return cls(mean, t_quantile_975(n - 1) * std / math.sqrt(n), n, std)

    def format(self, digits: int = 2) -> str:
        """``"mean ± half_width"`` (``"mean"`` alone when the interval is undefined)."""
        if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or not 0 <= digits <= 15:
            raise ValueError(f"digits must be an integer in [0, 15], got {digits!r}")
        if math.isnan(self.mean):
            return "-"
        if math.isnan(self.half_width):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def _scalar(x: Any) -> float:
    return float(np.asarray(x).reshape(()))


def episode_row(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The recorded quantities of one episode, from its ``info["metrics"]`` dict."""
    try:
        t = _scalar(metrics["critical_steps"])
        row = {
            "score": _scalar(metrics["score"]),
            "critical_steps": t,
            "speedup": _scalar(metrics["speedup"]),
            "ideal_speedup": _scalar(metrics["ideal_speedup"]),
            "serial_collapse_index": _scalar(metrics["serial_collapse_index"]),
            "spurious_spawn_rate": _scalar(metrics["spurious_spawn_rate"]),
            "makespan_ratio": _scalar(metrics["makespan_ratio"]),
            "task_makespan_ratio": t / max(_scalar(metrics["task_lower_bound"]), 1.0),
            "mean_concurrency": _scalar(metrics["mean_concurrency"]),
            "peak_concurrency": _scalar(metrics["peak_concurrency"]),
            "idle_share": float(np.asarray(metrics["concurrency_profile"], dtype=np.float64).reshape(-1)[0]),
            "n_spawned": _scalar(metrics["n_spawned"]),
            "tokens": _scalar(metrics["tokens"]),
            "cost_usd": _scalar(metrics["cost_usd"]),
            "budget_exhausted": float(bool(np.asarray(metrics["budget_exhausted"]).reshape(()))),
        }
        row.update({name: _scalar(metrics[name]) for name in MECHANICS_RECORDED})
    except KeyError as exc:
        raise KeyError(f"episode metrics lack {exc.args[0]!r}; pass the dict of SwarmSimulator.metrics() (info['metrics'])") from None
    return row


class MetricsRecorder:
    """Accumulates episode metrics and aggregates them per family.

    Feed it with :meth:`add` (one episode's metrics dict), :meth:`add_vector` (a vector
    env's dict-of-arrays info), or through :class:`RecordSwarmMetrics` /
    :class:`RecordSwarmMetricsVector`.
    """

    def __init__(self) -> None:
        self._rows: dict[str, list[dict[str, float]]] = {}
        self._profiles: dict[str, list[np.ndarray]] = {}

    def add(self, metrics: Mapping[str, Any]) -> None:
        """Record one episode (``info["metrics"]`` of its last step)."""
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be one episode's info['metrics'] dict, got {type(metrics).__name__}")
        family = str(np.asarray(metrics.get("family", "custom")).reshape(()))
        self._rows.setdefault(family, []).append(episode_row(metrics))
        self._profiles.setdefault(family, []).append(np.asarray(metrics["concurrency_profile"], dtype=np.float64).reshape(-1))

    def add_vector(self, info: Mapping[str, Any]) -> int:
        """Record the episodes that ended in one vector-env step (Gymnasium's vector info:
        ``info["metrics"]`` dict of arrays, ``info["_metrics"]`` marks finished envs).

        :returns: the number of episodes recorded.
        """
        metrics = info.get("metrics")
        if metrics is None:
            return 0
        if "_metrics" not in info:
            raise ValueError(
                "info has 'metrics' but no '_metrics' (which envs finished); pass a vector env's info (Gymnasium's dict-of-arrays form)"
            )
        finished = np.flatnonzero(np.asarray(info["_metrics"], dtype=bool).reshape(-1))
        for i in finished:
            self.add({k: (np.asarray(v)[i]) for k, v in metrics.items() if not k.startswith("_")})
        return int(finished.size)

    def extend(self, other: "MetricsRecorder") -> None:
        """Add every episode recorded by ``other``."""
        for fam, rows in other._rows.items():
            self._rows.setdefault(fam, []).extend(rows)
            self._profiles.setdefault(fam, []).extend(other._profiles[fam])

    @property
    def families(self) -> list[str]:
        """Families seen, sorted."""
        return sorted(self._rows)

    def n_episodes(self, family: str = ALL) -> int:
        return sum(len(r) for r in self._rows.values()) if family == ALL else len(self._rows.get(family, []))

    def _select(self, family: str) -> list[dict[str, float]]:
        if family == ALL:
            return [row for fam in self.families for row in self._rows[fam]]
        if family not in self._rows:
            raise KeyError(f"no episodes of family {family!r}; recorded: {self.families}")
        return self._rows[family]

    def values(self, name: str, family: str = ALL) -> np.ndarray:
        """Per-episode values of one recorded quantity."""
        if name not in RECORDED:
            raise KeyError(f"{name!r} is not recorded; choose from {RECORDED}")
        return np.array([row[name] for row in self._select(family)], dtype=np.float64)

    def summary(self, family: str = ALL) -> dict[str, Stat]:
        """Mean and 95% CI of every recorded quantity, for one family or :data:`ALL`."""
        rows = self._select(family)
        return {name: Stat.of(row[name] for row in rows) for name in RECORDED}

    def concurrency_profile(self, family: str = ALL) -> np.ndarray:
        """Mean share of ticks with exactly ``k`` sub-agents running, ``k = 0..m``
        (profiles of different widths are zero-padded to the widest)."""
        if family != ALL and family not in self._profiles:
            raise KeyError(f"no episodes of family {family!r}; recorded: {self.families}")
        profiles = [p for fam in self.families for p in self._profiles[fam]] if family == ALL else self._profiles[family]
        if not profiles:
            return np.zeros(0)
        width = max(p.size for p in profiles)
        return np.mean([np.pad(p, (0, width - p.size)) for p in profiles], axis=0)

    def __len__(self) -> int:
        return self.n_episodes()

    def __repr__(self) -> str:
        return f"MetricsRecorder({', '.join(f'{f}: {len(r)}' for f, r in sorted(self._rows.items()))})"


class RecordSwarmMetrics(gym.Wrapper):
    """Feeds every finished episode's ``info["metrics"]`` to a :class:`MetricsRecorder`.

    :param env: a SwarmEnv (possibly wrapped).
    :param recorder: the recorder to feed; a new one by default (``self.recorder``).
    """

    def __init__(self, env: gym.Env, recorder: MetricsRecorder | None = None) -> None:
        super().__init__(env)
        self.recorder = recorder if recorder is not None else MetricsRecorder()

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "metrics" in info:
            self.recorder.add(info["metrics"])
        return obs, reward, terminated, truncated, info


class RecordSwarmMetricsVector(gym.vector.VectorWrapper):
    """Vector form of :class:`RecordSwarmMetrics` for any vector env whose infos carry
    ``info["metrics"]`` as a dict of arrays with ``info["_metrics"]`` marking finished envs
    (sync/async vector envs of SwarmEnv, the batched ``SwarmVectorEnv``)."""

    def __init__(self, env: gym.vector.VectorEnv, recorder: MetricsRecorder | None = None) -> None:
        super().__init__(env)
        self.recorder = recorder if recorder is not None else MetricsRecorder()

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.recorder.add_vector(info)
        return obs, reward, terminated, truncated, info


__all__ = [
    "ALL",
    "DERIVED",
    "RECORDED",
    "MetricsRecorder",
    "RecordSwarmMetrics",
    "RecordSwarmMetricsVector",
    "Stat",
    "episode_row",
    "t_quantile_975",
]
