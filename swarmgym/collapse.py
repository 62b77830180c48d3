"""Serial collapse and its escape, operationally; paired comparisons on the same episodes.

Definitions (the suite's; :data:`COLLAPSE_INDEX_AT`, :data:`IDEAL_SPEEDUP_AT`,
:data:`ESCAPE_SPEEDUP_SHARE` and :data:`ESCAPE_SCORE_GAP` hold the numbers):

* **Collapse** (a trap, not a choice) on a family: after training, the policy's mean
  serial-collapse index is >= 0.5 on a family whose *task* ideal speedup (total work
  over the task's makespan floor, a property of the family, not of the policy) is >= 2,
  **and** a reference policy (by default ``critical_path``) earns a strictly higher
  return under the same reward on the same episodes: the lower end of the 95 %
  confidence interval of the paired per-episode difference (reference − policy) is
  above 0. Serial play that loses nothing under the reward is a choice and does not count.
* **Escape** (from a serial start, on WideSearch): the greedy *and* the sampled policy
  each reach at least 2/3 of the reference's mean speedup with a mean score no more
  than 0.05 below the reference's, on the same episodes. The threshold is relative
  because even ``critical_path`` leaves ~30 % of WideSearch's ideal speedup unused
  (collapse index 0.29-0.30): absolute thresholds would misjudge what the family allows.

Episodes are paired by seed: :func:`play_paired` plays episode ``k`` as
``reset(seed=seed_offset + k)`` for every policy and returns one row per seed, in seed
order, so two policies' rows line up episode by episode (same graph, same sub-agent
fates) and :func:`paired_difference` can difference them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from swarmgym.metrics import Stat

#: A policy collapsed on a family when its mean serial-collapse index is at least this.
COLLAPSE_INDEX_AT = 0.5
#: Only families whose task ideal speedup is at least this can collapse.
IDEAL_SPEEDUP_AT = 2.0
#: Escape: speedup at least this share of the reference's ...
ESCAPE_SPEEDUP_SHARE = 2.0 / 3.0
#: ... with a score at most this far below the reference's.
ESCAPE_SCORE_GAP = 0.05

#: Scalar episode metrics kept per row (plus ``family``, ``seed`` and ``task_ideal_speedup``).
ROW_KEYS = (
    "score",
    "critical_steps",
    "budget",
    "speedup",
    "ideal_speedup",
    "serial_collapse_index",
    "spurious_spawn_rate",
    "n_spawned",
    "tokens",
    "cost_usd",
    "budget_exhausted",
    "task_serial_steps",
    "task_lower_bound",
)


def _row(metrics: Mapping[str, Any], seed: int) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": seed, "family": str(metrics["family"])}
    for k in ROW_KEYS:
        row[k] = float(np.asarray(metrics[k], dtype=np.float64).reshape(()))
    row["task_ideal_speedup"] = row["task_serial_steps"] / max(row["task_lower_bound"], 1.0)
    return row


def play_paired(
    policy, env_id: str, n_episodes: int, *, seed_offset: int = 0, env_kwargs: dict | None = None, batch: int = 64
) -> list[dict]:
    """Play episodes ``seed_offset .. seed_offset + n_episodes - 1`` with ``policy`` (anything with
    ``act(obs, mask)``); returns one row of scalar metrics per episode, **in seed order**.

    :param env_kwargs: keyword arguments of ``gymnasium.make`` (e.g. a ``config``), as in
        :func:`swarmgym.evaluation.run_episodes`.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ValueError(f"n_episodes must be an integer >= 1, got {n_episodes!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    from swarmgym.evaluation import dict_observation
    from swarmgym.orchestrators import bind_to_env

    n_envs = min(batch, n_episodes)
    envs = [gym.make(env_id, disable_env_checker=True, **(env_kwargs or {})) for _ in range(n_envs)]
    policy = bind_to_env(policy, envs[0])  # a rule told the env's public table is told this env's
    rows: dict[int, dict] = {}
    next_seed, last_seed = seed_offset, seed_offset + n_episodes
    obs, masks, seeds = [None] * n_envs, [None] * n_envs, [0] * n_envs
    for k, env in enumerate(envs):
        o, info = env.reset(seed=next_seed)
        obs[k], masks[k], seeds[k] = dict_observation(env, o), info["action_mask"], next_seed
        next_seed += 1
    live = list(range(n_envs))
    while live:
        batch_obs = {key: np.stack([obs[k][key] for k in live]) for key in obs[live[0]]}
        actions = np.asarray(policy.act(batch_obs, np.stack([masks[k] for k in live])), dtype=np.int64).reshape(-1)
        still = []
        for k, a in zip(live, actions):
            o, _, terminated, truncated, info = envs[k].step(int(a))
            if terminated or truncated:
                metrics = info["metrics"] if "metrics" in info else envs[k].unwrapped.sim.metrics()
                rows[seeds[k]] = _row(metrics, seeds[k])
                if next_seed >= last_seed:
                    continue
                o, info = envs[k].reset(seed=next_seed)
                seeds[k] = next_seed
                next_seed += 1
            obs[k], masks[k] = dict_observation(envs[k], o), info["action_mask"]
            still.append(k)
        live = still
    for env in envs:
        env.close()
    return [rows[s] for s in range(seed_offset, last_seed)]


def score_return(row: Mapping[str, float]) -> float:
    """The default return of an episode row: its score (``r_perf``)."""
    return float(row["score"])


def paired_difference(
    a: Sequence[Mapping], b: Sequence[Mapping], value: Callable[[Mapping], float] | str = score_return, family: str | None = None
) -> Stat:
    """Mean and 95 % CI of the per-episode difference ``value(a) - value(b)`` over episodes paired by seed.

    :param a, b: rows of :func:`play_paired` on the same seeds.
    :param value: a row -> number function, or a row key.
    :param family: only episodes of this family (None: all).
    :raises ValueError: when the rows are not on the same seeds.
    """
    if [r["seed"] for r in a] != [r["seed"] for r in b]:
        raise ValueError("paired_difference needs rows of the same seeds in the same order (play both on the same episodes)")
    f = (lambda r: float(r[value])) if isinstance(value, str) else value
    diffs = [f(x) - f(y) for x, y in zip(a, b) if family is None or x["family"] == family]
    return Stat.of(diffs)


def _mean(rows: Sequence[Mapping], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else math.nan


@dataclass
class CollapseVerdict:
    """Whether a policy collapsed on one family (see the module docstring)."""

    family: str
    episodes: int
    collapse_index: float
    task_ideal_speedup: float
    return_gap: float
    """Mean paired return difference, reference - policy."""
    return_gap_low: float
    """Lower end of its 95 % CI."""
    serial: bool
    """collapse index >= COLLAPSE_INDEX_AT on a family with task ideal speedup >= IDEAL_SPEEDUP_AT."""
    trapped: bool
    """The reference earns strictly more (``return_gap_low > 0``)."""

    @property
    def collapsed(self) -> bool:
        return self.serial and self.trapped

    def to_dict(self) -> dict:
        return {**asdict(self), "collapsed": self.collapsed}


def collapse_verdicts(
    policy_rows: Sequence[Mapping], reference_rows: Sequence[Mapping], value: Callable[[Mapping], float] | str = score_return
) -> dict[str, CollapseVerdict]:
    """Per family (and ``"all"`` pooled), whether ``policy_rows`` show serial collapse against
    ``reference_rows`` (the same seeds) under the return ``value``."""
    fams = sorted({r["family"] for r in policy_rows})
    out = {}
    for fam in [*fams, "all"]:
        sel = [r for r in policy_rows if fam == "all" or r["family"] == fam]
        ref = [r for r in reference_rows if fam == "all" or r["family"] == fam]
        gap = paired_difference(ref, sel, value)
        ci = _mean(sel, "serial_collapse_index")
        ideal = _mean(sel, "task_ideal_speedup")
        low = gap.low if not math.isnan(gap.half_width) else (gap.mean if gap.n == 1 else math.nan)
        out[fam] = CollapseVerdict(
            family=fam,
            episodes=len(sel),
            collapse_index=ci,
            task_ideal_speedup=ideal,
            return_gap=gap.mean,
            return_gap_low=low,
            serial=bool(ci >= COLLAPSE_INDEX_AT and ideal >= IDEAL_SPEEDUP_AT),
            trapped=bool(low > 0),
        )
    return out


@dataclass
class EscapeVerdict:
    """Whether a policy escaped serial play (see the module docstring)."""

    greedy_speedup: float
    sampled_speedup: float
    reference_speedup: float
    greedy_score: float
    sampled_score: float
    reference_score: float

    @property
    def speedup_needed(self) -> float:
        return ESCAPE_SPEEDUP_SHARE * self.reference_speedup

    @property
    def score_needed(self) -> float:
        return self.reference_score - ESCAPE_SCORE_GAP

    @property
    def escaped(self) -> bool:
        return all(s >= self.speedup_needed for s in (self.greedy_speedup, self.sampled_speedup)) and all(
            s >= self.score_needed for s in (self.greedy_score, self.sampled_score)
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "speedup_needed": self.speedup_needed, "score_needed": self.score_needed, "escaped": self.escaped}


def escape_verdict(greedy_rows: Sequence[Mapping], sampled_rows: Sequence[Mapping], reference_rows: Sequence[Mapping]) -> EscapeVerdict:
    """Escape of a policy from its greedy and sampled rows against the reference's (same episodes; pass
    WideSearch episodes, or rows filtered to the WideSearch family)."""
    if not greedy_rows or not sampled_rows or not reference_rows:
        raise ValueError("escape_verdict needs non-empty greedy, sampled and reference rows")
    return EscapeVerdict(
        greedy_speedup=_mean(greedy_rows, "speedup"),
        sampled_speedup=_mean(sampled_rows, "speedup"),
        reference_speedup=_mean(reference_rows, "speedup"),
        greedy_score=_mean(greedy_rows, "score"),
        sampled_score=_mean(sampled_rows, "score"),
        reference_score=_mean(reference_rows, "score"),
    )
