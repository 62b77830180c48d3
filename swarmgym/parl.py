"""PARL reward shaping: ``r = λ1·r_parallel + λ2·r_finish + r_perf`` (Kimi K2.5).

* ``r_perf`` is the env's own reward: the task score (F1 over targets) at the end.
* ``r_parallel`` rewards instantiating sub-agents; it counters **serial collapse**
  (the orchestrator stuck doing everything itself). Forms (:data:`PARALLEL_FORMS`):

  ======================  ==============================================================
  ``"instantiation"``     ``min(n_spawned, cap) / cap`` -- the published form (OpenPARL
                          uses ``cap = 10``). Cheap to game: failed, wrong, isolated
                          spawns all count.
  ``"useful"``            ``min(n_subagent_ok - n_subagent_isolated, cap) / cap`` -- only
                          spawns that returned a good result *and* ran alongside other
                          work. It pays parallelism, not instantiation, so it cannot be
                          farmed with spawns that fail or run alone (no speedup).
  ``"concurrency"``       ``mean_concurrency / max_subagents`` -- the time-averaged share
                          of sub-agent slots in use; pays for *overlap in time*, the
                          thing that shortens critical steps, instead of a count.
  ======================  ==============================================================

* ``r_finish`` rewards sub-agents that complete their subtask; it counters
  **spurious parallelism** (spawning without meaningful decomposition). Forms
  (:data:`FINISH_FORMS`), all 0 when nothing was spawned:

  ======================  ==============================================================
  ``"finish_rate"``       ``n_subagent_ok / n_spawned`` -- the published form (completed ÷
                          spawned). Sub-agents still running at the end, failed ones and
                          silently wrong ones are not completed.
  ``"observed"``          ``(n_subagent_ok + n_subagent_wrong) / n_spawned`` -- what an
                          orchestrator can observe as "returned a result" (a wrong result
                          looks valid); this is the format-validity check a real PARL
                          pipeline can run (OpenPARL's ``n_valid``).
  ``"non_spurious"``      ``1 - spurious_spawn_rate`` -- also counts a successful spawn that
                          overlapped with no other work as wasted (it bought no speedup).
  ======================  ==============================================================

Payment. By default (``payment="episode_end"``) both terms are computed once from
the episode's ``info["metrics"]`` and paid on its last step. With
``payment="per_event"`` each term is paid as it changes: on every step the wrapper
evaluates the term on the episode's *running* counters and pays the difference from
the previous step, so a spawn pays on the step it is issued and a return on the step
it arrives, and the per-episode sum equals the episode-end value exactly
(telescoping). The running counters come from the simulator
(``env.unwrapped.sim.metrics()`` for the single env, ``env.get_attr("sim")`` for a
vector env of :class:`~swarmgym.env.SwarmEnv`); on the final step the episode's
``info["metrics"]`` is used.

λ schedules (:class:`LambdaSchedule`) anneal λ to 0 by a fraction of training,
driven by the global step count; :class:`ParlScheduleCallback` advances them from
stable-baselines3 through ``env_method("set_global_step", n)``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import gymnasium as gym
import numpy as np

#: ``r_parallel`` forms; the first is the published one (and the default).
PARALLEL_FORMS: tuple[str, ...] = ("instantiation", "useful", "concurrency")
#: ``r_finish`` forms; the first is the published one (and the default).
FINISH_FORMS: tuple[str, ...] = ("finish_rate", "observed", "non_spurious")
#: ``r_perf`` forms; the first (the env's own score) is the default.
PERF_FORMS: tuple[str, ...] = ("score", "latency")
#: λ schedule kinds.
SCHEDULE_KINDS: tuple[str, ...] = ("constant", "linear", "cosine", "step")
#: How the PARL terms are paid.
PAYMENTS: tuple[str, ...] = ("episode_end", "per_event")
#: Keys of ``info["parl"]``.
PARL_INFO_KEYS: tuple[str, ...] = ("r_perf", "r_parallel", "r_finish", "lambda1", "lambda2", "total")


# ---------------------------------------------------------------------- schedules
class LambdaSchedule:
    """A λ coefficient as a function of the global step count.

    ``constant`` stays at ``initial``. The others start at ``initial`` and reach 0 at
    step ``anneal_fraction * total_steps`` (and stay there):

    * ``linear``: ``initial * (1 - p)``,
    * ``cosine``: ``initial * (1 + cos(pi * p)) / 2``,
    * ``step``: a staircase of ``n_stairs`` equal drops, ``initial * (1 - floor(n_stairs * p) / n_stairs)``,

    where ``p = min(1, global_step / (anneal_fraction * total_steps))``.

    :param kind: one of :data:`SCHEDULE_KINDS`.
    :param initial: λ at step 0, a finite number >= 0.
    :param anneal_fraction: fraction of training by which λ reaches 0, in (0, 1].
    :param total_steps: the training length in env steps, an integer >= 1.
    :param n_stairs: number of drops of the ``step`` kind, an integer in [1, 1000].
    """

    def __init__(
        self, kind: str = "linear", initial: float = 0.1, anneal_fraction: float = 0.5, total_steps: int = 1, *, n_stairs: int = 4
    ) -> None:
        if kind not in SCHEDULE_KINDS:
            raise ValueError(f"kind must be one of {SCHEDULE_KINDS}, got {kind!r}")
        if isinstance(initial, bool) or not isinstance(initial, (int, float, np.floating, np.integer)):
            raise TypeError(f"initial must be a finite number >= 0, got {initial!r}")
        if not (math.isfinite(initial) and initial >= 0):
            raise ValueError(f"initial must be a finite number >= 0, got {initial!r}")
        if isinstance(anneal_fraction, bool) or not isinstance(anneal_fraction, (int, float, np.floating, np.integer)):
            raise TypeError(f"anneal_fraction must be a number in (0, 1], got {anneal_fraction!r}")
        if not (math.isfinite(anneal_fraction) and 0 < anneal_fraction <= 1):
            raise ValueError(f"anneal_fraction must be in (0, 1], got {anneal_fraction!r}")
        if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)):
            raise TypeError(f"total_steps must be an integer >= 1, got {total_steps!r}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if isinstance(n_stairs, bool) or not isinstance(n_stairs, (int, np.integer)) or not 1 <= n_stairs <= 1000:
            raise ValueError(f"n_stairs must be an integer in [1, 1000], got {n_stairs!r}")
        self.kind = kind
        self.initial = float(initial)
        self.anneal_fraction = float(anneal_fraction)
        self.total_steps = int(total_steps)
        self.n_stairs = int(n_stairs)

    @property
    def anneal_steps(self) -> float:
        """The global step at which λ reaches 0 (``anneal_fraction * total_steps``)."""
        return self.anneal_fraction * self.total_steps

    def progress(self, global_step: int) -> float:
        """``min(1, global_step / anneal_steps)``."""
        if (
            isinstance(global_step, bool)
            or not isinstance(global_step, (int, np.integer, float, np.floating))
            or not math.isfinite(global_step)
            or global_step < 0
        ):
            raise ValueError(f"global_step must be a finite number >= 0, got {global_step!r}")
        return min(1.0, float(global_step) / self.anneal_steps)

    def __call__(self, global_step: int) -> float:
        if self.kind == "constant":
            self.progress(global_step)  # validates
            return self.initial
        p = self.progress(global_step)
        if p >= 1.0:
            return 0.0
        if self.kind == "linear":
            return self.initial * (1.0 - p)
        if self.kind == "cosine":
            return self.initial * 0.5 * (1.0 + math.cos(math.pi * p))
        return self.initial * (1.0 - math.floor(self.n_stairs * p) / self.n_stairs)

    @classmethod
    def from_config(cls, value: Any, total_steps: int) -> "LambdaSchedule":
        """A schedule from a number (constant), a mapping of the constructor's keywords
        (``total_steps`` filled in if missing), or a schedule (returned as is)."""
        if isinstance(value, LambdaSchedule):
            return value
        if isinstance(value, Mapping):
            kw = dict(value)
            known = ("kind", "initial", "anneal_fraction", "total_steps", "n_stairs")
            unknown = sorted(str(k) for k in kw if k not in known)
            if unknown:
                raise TypeError(f"a λ schedule mapping has unknown key(s) {unknown}; known: {list(known)}")
            kw.setdefault("total_steps", total_steps)
            return cls(**kw)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise TypeError(f"a λ must be a number, a LambdaSchedule or a mapping of its arguments, got {value!r}")
        return cls("constant", float(value), 1.0, max(1, int(total_steps)))

    def __repr__(self) -> str:
        extra = f", n_stairs={self.n_stairs}" if self.kind == "step" else ""
        return (
            f"LambdaSchedule(kind={self.kind!r}, initial={self.initial}, anneal_fraction={self.anneal_fraction}, "
            f"total_steps={self.total_steps}{extra})"
        )


# ---------------------------------------------------------------------- reward terms
def _is_torch(x: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _as_float(x: Any):
    """Float view of a scalar, numpy array or torch tensor (type kept; python scalars -> np.float64)."""
    if _is_torch(x):
        return x if x.is_floating_point() else x.to(dtype=__import__("torch").float32)
    return np.asarray(x, dtype=np.float64)


def _safe_ratio(num, den):
    """``num / den`` where ``den > 0``, else 0 (numpy or torch, elementwise)."""
    if _is_torch(num) or _is_torch(den):
        import torch

        num = num if _is_torch(num) else torch.as_tensor(num)
        den = den if _is_torch(den) else torch.as_tensor(den, device=num.device)
        return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)


def _clip(x, lo: float, hi: float):
    return x.clamp(lo, hi) if _is_torch(x) else np.clip(x, lo, hi)


def _out(result, like: Any):
    """Return ``result`` in the type of ``like``: a python float for scalars."""
    if _is_torch(result):
        return result
    if np.ndim(result) == 0 and not isinstance(like, np.ndarray):
        return float(result)
    return np.asarray(result, dtype=np.float64)


def _get(metrics: Mapping[str, Any], key: str, form: str):
    try:
        return metrics[key]
    except KeyError:
        raise KeyError(f"form {form!r} needs metrics[{key!r}] (the episode metrics mapping, swarmgym.layout.METRIC_KEYS)") from None


def parallel_reward(metrics: Mapping[str, Any], form: str = "instantiation", cap: int = 10, max_subagents: int | None = None):
    """``r_parallel`` of one episode (or a batch of episodes), in [0, 1].

    :param metrics: episode metrics (``SwarmSimulator.metrics()`` keys); values are
        python scalars, numpy arrays or torch tensors -- the result has the same type.
    :param form: one of :data:`PARALLEL_FORMS` (see the module docstring).
    :param cap: spawns that earn the full term (``instantiation`` and ``useful``), an integer >= 1.
    :param max_subagents: sub-agent slots (``concurrency``); default: read from the
        length of ``metrics["concurrency_profile"]`` (``max_subagents + 1`` entries).
    :raises ValueError: for an unknown form or a bad ``cap``.
    """
    if form not in PARALLEL_FORMS:
        raise ValueError(f"form must be one of {PARALLEL_FORMS}, got {form!r}")
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
        raise ValueError(f"cap must be an integer >= 1, got {cap!r}")
    if max_subagents is not None and (
        isinstance(max_subagents, (bool, np.bool_)) or not isinstance(max_subagents, (int, np.integer)) or not 0 <= max_subagents <= 64
    ):
        raise ValueError(f"max_subagents must be None (read from the metrics) or an integer in [0, 64], got {max_subagents!r}")
    if form == "instantiation":
        n = _get(metrics, "n_spawned", form)
        x = _as_float(n)
        return _out(_clip(x, 0.0, float(cap)) / cap, n)
    if form == "useful":
        ok = _get(metrics, "n_subagent_ok", form)
        useful = _as_float(ok) - _as_float(_get(metrics, "n_subagent_isolated", form))
        return _out(_clip(useful, 0.0, float(cap)) / cap, ok)
    # concurrency
    mc = _get(metrics, "mean_concurrency", form)
    if max_subagents is None:
        profile = _get(metrics, "concurrency_profile", form)
        max_subagents = int(profile.shape[-1] if hasattr(profile, "shape") else len(profile)) - 1
    if max_subagents < 1:
        x = _as_float(mc)
        return _out(x * 0.0, mc)
    return _out(_clip(_as_float(mc) / max_subagents, 0.0, 1.0), mc)


def finish_reward(metrics: Mapping[str, Any], form: str = "finish_rate"):
    """``r_finish`` of one episode (or a batch), in [0, 1]; 0 when nothing was spawned.

    :param metrics: episode metrics, values python scalars, numpy arrays or torch tensors
        (same type out).
    :param form: one of :data:`FINISH_FORMS` (see the module docstring).
    :raises ValueError: for an unknown form.
    """
    if form not in FINISH_FORMS:
        raise ValueError(f"form must be one of {FINISH_FORMS}, got {form!r}")
    spawned = _get(metrics, "n_spawned", form)
    den = _as_float(spawned)
    if form == "finish_rate":
        num = _as_float(_get(metrics, "n_subagent_ok", form))
    elif form == "observed":
        num = _as_float(_get(metrics, "n_subagent_ok", form)) + _as_float(_get(metrics, "n_subagent_wrong", form))
    else:
        num = (1.0 - _as_float(_get(metrics, "spurious_spawn_rate", form))) * den
    return _out(_clip(_safe_ratio(num, den), 0.0, 1.0), spawned)


def perf_reward(metrics: Mapping[str, Any], form: str = "score", latency_weight: float = 0.5):
    """``r_perf`` of one episode (or a batch), in [0, 1].

    * ``"score"`` (default): the task score, ``metrics["score"]`` (the env's own reward).
    * ``"latency"``: the score scaled by the share of the critical-step budget left,
      ``score * ((1 - w) + w * left)`` with ``left = clip(1 - critical_steps / budget, 0, 1)``
      and ``w = latency_weight``. A reward that values latency: the same score earned in fewer
      critical steps is worth more, and an episode the budget ended earns ``(1 - w) * score``.
      With ``w = 1`` it is the score times the share of the budget left.

    :param metrics: episode metrics (``score``; ``critical_steps`` and ``budget`` for ``"latency"``),
        python scalars, numpy arrays or torch tensors (same type out).
    :param form: one of :data:`PERF_FORMS`.
    :param latency_weight: ``w`` of the ``"latency"`` form, in [0, 1].
    :raises ValueError: for an unknown form or a weight outside [0, 1].
    """
    if form not in PERF_FORMS:
        raise ValueError(f"form must be one of {PERF_FORMS}, got {form!r}")
    if isinstance(latency_weight, bool) or not isinstance(latency_weight, (int, float, np.floating)) or not 0.0 <= latency_weight <= 1.0:
        raise ValueError(f"latency_weight must be a number in [0, 1], got {latency_weight!r}")
    score = _get(metrics, "score", form)
    if form == "score":
        return _out(_as_float(score), score)
    used = _safe_ratio(_as_float(_get(metrics, "critical_steps", form)), _as_float(_get(metrics, "budget", form)))
    left = _clip(1.0 - used, 0.0, 1.0)
    return _out(_as_float(score) * ((1.0 - latency_weight) + latency_weight * left), score)


# ---------------------------------------------------------------------- wrappers
class _ParlTerms:
    """Shared configuration and λ bookkeeping of the single and vector wrappers."""

    def _setup(self, lambda1, lambda2, parallel_form, finish_form, cap, payment, total_steps, max_subagents) -> None:
        if payment not in PAYMENTS:
            raise ValueError(f"payment must be one of {PAYMENTS}, got {payment!r}")
        if parallel_form not in PARALLEL_FORMS:
            raise ValueError(f"parallel_form must be one of {PARALLEL_FORMS}, got {parallel_form!r}")
        if finish_form not in FINISH_FORMS:
            raise ValueError(f"finish_form must be one of {FINISH_FORMS}, got {finish_form!r}")
        if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
            raise ValueError(f"cap must be an integer >= 1, got {cap!r}")
        if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
            raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
        if max_subagents is not None and (
            isinstance(max_subagents, (bool, np.bool_)) or not isinstance(max_subagents, (int, np.integer)) or not 0 <= max_subagents <= 64
        ):
            raise ValueError(f"max_subagents must be None (read from the metrics) or an integer in [0, 64], got {max_subagents!r}")
        schedules = []
        for name, value in (("lambda1", lambda1), ("lambda2", lambda2)):
            try:
                schedules.append(LambdaSchedule.from_config(value, total_steps))
            except (TypeError, ValueError) as exc:  # say which λ, not only the schedule's own argument
                raise type(exc)(f"{name}: {exc}") from None
        self.lambda1_schedule, self.lambda2_schedule = schedules
        self.parallel_form = parallel_form
        self.finish_form = finish_form
        self.cap = int(cap)
        self.payment = payment
        self.max_subagents = max_subagents
        self.global_step = 0
        self._step_set_externally = False

    def set_global_step(self, global_step: int) -> None:
        """Set the global step count that drives the λ schedules (the SB3 callback calls
        this through ``env_method``). From then on the wrapper stops counting its own steps."""
        if isinstance(global_step, bool) or not isinstance(global_step, (int, np.integer)) or global_step < 0:
            raise ValueError(f"global_step must be an integer >= 0, got {global_step!r}")
        self.global_step = int(global_step)
        self._step_set_externally = True

    def lambdas(self) -> tuple[float, float]:
        """``(λ1, λ2)`` at the current global step."""
        return self.lambda1_schedule(self.global_step), self.lambda2_schedule(self.global_step)

    def _terms(self, metrics: Mapping[str, Any]):
        return (
            parallel_reward(metrics, self.parallel_form, self.cap, self.max_subagents),
            finish_reward(metrics, self.finish_form),
        )


class ParlReward(gym.Wrapper, _ParlTerms):
    """``r = λ1·r_parallel + λ2·r_finish + r_perf`` for a single :class:`~swarmgym.env.SwarmEnv`.

    Every step's ``info["parl"]`` holds the components paid on that step: ``r_perf``
    (the env's reward), ``r_parallel`` and ``r_finish`` (unweighted terms paid now),
    ``lambda1``, ``lambda2`` and ``total`` (the reward returned).

    :param env: a SwarmEnv, possibly wrapped (needs ``info["metrics"]`` at the end;
        ``payment="per_event"`` also reads ``env.unwrapped.sim``).
    :param lambda1: λ1 -- a number (constant), a :class:`LambdaSchedule`, or a mapping of its arguments.
    :param lambda2: λ2, likewise.
    :param parallel_form: one of :data:`PARALLEL_FORMS`.
    :param finish_form: one of :data:`FINISH_FORMS`.
    :param cap: the spawn cap of the count-based parallel forms, >= 1.
    :param payment: ``"episode_end"`` (default) or ``"per_event"``.
    :param total_steps: training length used when a λ is given as a mapping without one.
    :param max_subagents: slots for the ``concurrency`` form (default: read from the metrics).
    """

    def __init__(
        self,
        env: gym.Env,
        lambda1: Any = 0.1,
        lambda2: Any = 0.1,
        *,
        parallel_form: str = "instantiation",
        finish_form: str = "finish_rate",
        cap: int = 10,
        payment: str = "episode_end",
        total_steps: int = 1,
        max_subagents: int | None = None,
    ) -> None:
        gym.Wrapper.__init__(self, env)
        self._setup(lambda1, lambda2, parallel_form, finish_form, cap, payment, total_steps, max_subagents)
        self._paid = (0.0, 0.0)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._paid = (0.0, 0.0)
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, r_perf, terminated, truncated, info = self.env.step(action)
        ended = terminated or truncated
        l1, l2 = self.lambdas()
        if self.payment == "episode_end":
            if ended:
                metrics = info.get("metrics")
                if metrics is None:  # truncated by a TimeLimit: score the running state
                    metrics = self.env.unwrapped.sim.metrics()
                r_par, r_fin = self._terms(metrics)
            else:
                r_par = r_fin = 0.0
        else:
            metrics = info.get("metrics") or self.env.unwrapped.sim.metrics()
            now = self._terms(metrics)
            r_par, r_fin = now[0] - self._paid[0], now[1] - self._paid[1]
            self._paid = (0.0, 0.0) if ended else now
        total = float(r_perf) + l1 * r_par + l2 * r_fin
        info["parl"] = {
            "r_perf": float(r_perf),
            "r_parallel": float(r_par),
            "r_finish": float(r_fin),
            "lambda1": l1,
            "lambda2": l2,
            "total": total,
        }
        if not self._step_set_externally:
            self.global_step += 1
        return obs, total, terminated, truncated, info

    def __repr__(self) -> str:
        return (
            f"<ParlReward(lambda1={self.lambda1_schedule!r}, lambda2={self.lambda2_schedule!r}, parallel_form={self.parallel_form!r}, "
            f"finish_form={self.finish_form!r}, cap={self.cap}, payment={self.payment!r}){self.env}>"
        )


def _metrics_rows(info: Mapping[str, Any], num_envs: int) -> tuple[dict[str, np.ndarray] | None, np.ndarray]:
    """``(metrics dict of arrays, finished mask)`` from a vector env's info (``info["metrics"]``, ``info["_metrics"]``)."""
    metrics = info.get("metrics")
    if metrics is None:
        return None, np.zeros(num_envs, dtype=bool)
    if "_metrics" not in info:
        raise ValueError(
            "the vector env's info has 'metrics' but no '_metrics' (which envs finished); it must follow Gymnasium's dict-of-arrays form"
        )
    finished = np.asarray(info["_metrics"], dtype=bool).reshape(-1)
    if finished.shape != (num_envs,):
        raise ValueError(f"info['_metrics'] must mark each of the {num_envs} envs, got shape {finished.shape}")
    return metrics, finished


class ParlRewardVector(gym.vector.VectorWrapper, _ParlTerms):
    """The PARL reward on any Gymnasium vector env whose infos carry
    (``info["metrics"]`` dict-of-arrays and ``info["_metrics"]`` on finished envs): a
    sync/async vector env of SwarmEnv, or the batched ``SwarmVectorEnv``.

    Same arguments and ``info["parl"]`` keys as :class:`ParlReward` (arrays of length
    ``num_envs``, with ``info["_parl"]`` all True). The global step advances by
    ``num_envs`` per step unless :meth:`set_global_step` is called. An episode that
    ends without ``info["metrics"]`` (a truncation) earns no episode-end PARL terms.
    ``payment="per_event"`` needs the per-env simulators (``env.get_attr("sim")``),
    which sync and async vector envs of SwarmEnv provide.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        lambda1: Any = 0.1,
        lambda2: Any = 0.1,
        *,
        parallel_form: str = "instantiation",
        finish_form: str = "finish_rate",
        cap: int = 10,
        payment: str = "episode_end",
        total_steps: int = 1,
        max_subagents: int | None = None,
    ) -> None:
        gym.vector.VectorWrapper.__init__(self, env)
        self._setup(lambda1, lambda2, parallel_form, finish_form, cap, payment, total_steps, max_subagents)
        n = self.num_envs
        self._paid = np.zeros((2, n))
        if payment == "per_event":
            try:
                sims = self.env.get_attr("sim")
            except Exception as exc:  # noqa: BLE001 - any failure means the env cannot supply counters
                raise TypeError(
                    "payment='per_event' on a vector env needs per-env simulators (env.get_attr('sim')), as a sync or "
                    f"async vector env of SwarmEnv provides; this env cannot ({exc}). Use payment='episode_end'."
                ) from None
            if len(sims) != n:
                raise TypeError("payment='per_event': env.get_attr('sim') must return one simulator per env")

    def reset(self, *, seed=None, options=None):
        self._paid[:] = 0.0
        return self.env.reset(seed=seed, options=options)

    def step(self, actions):
        obs, r_perf, terminated, truncated, info = self.env.step(actions)
        n = self.num_envs
        r_perf_np = np.asarray(r_perf, dtype=np.float64)
        l1, l2 = self.lambdas()
        metrics, finished = _metrics_rows(info, n)
        r_par = np.zeros(n)
        r_fin = np.zeros(n)
        if finished.any():
            par, fin = self._terms(metrics)
            r_par = np.where(finished, np.broadcast_to(np.asarray(par, dtype=np.float64), (n,)), 0.0)
            r_fin = np.where(finished, np.broadcast_to(np.asarray(fin, dtype=np.float64), (n,)), 0.0)
        if self.payment == "per_event":
            sims = self.env.get_attr("sim")
            now = np.zeros((2, n))
            for i in range(n):
                if finished[i]:
                    now[:, i] = (r_par[i], r_fin[i])
                elif sims[i] is not None:
                    now[:, i] = self._terms(sims[i].metrics())
            ended = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
            pay = now - self._paid
            r_par, r_fin = pay[0], pay[1]
            self._paid = np.where(ended[None, :], 0.0, now)
        total = r_perf_np + l1 * r_par + l2 * r_fin
        info["parl"] = {
            "r_perf": r_perf_np,
            "r_parallel": r_par,
            "r_finish": r_fin,
            "lambda1": np.full(n, l1),
            "lambda2": np.full(n, l2),
            "total": total,
        }
        info["_parl"] = np.ones(n, dtype=bool)
        if not self._step_set_externally:
            self.global_step += n
        rewards = total.astype(r_perf.dtype) if isinstance(r_perf, np.ndarray) and r_perf.dtype.kind == "f" else total
        return obs, rewards, terminated, truncated, info


# ---------------------------------------------------------------------- SB3 callback
def _base_callback():
    try:
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ImportError("ParlScheduleCallback needs stable-baselines3: pip install 'swarmgym[sb3]'") from exc
    return BaseCallback


def __getattr__(name: str):
    # ParlScheduleCallback is built lazily so that importing swarmgym.parl never imports SB3.
    if name == "ParlScheduleCallback":
        cls = _make_callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_callback_class():
    BaseCallback = _base_callback()

    class ParlScheduleCallback(BaseCallback):
        """Advances the λ schedules of every :class:`ParlReward` in an SB3 VecEnv to the
        model's ``num_timesteps`` (through ``env_method("set_global_step", n)``, which
        reaches through Gymnasium 1.x wrappers), and logs the PARL components.

        Logged (means over the episodes that ended since the last log): ``parl/lambda1``,
        ``parl/lambda2``, ``parl/r_perf``, ``parl/r_parallel``, ``parl/r_finish``,
        ``parl/total`` (per-episode sums).

        :param update_every: push the step count every this many calls of ``_on_step``
            (and at every rollout start), an integer >= 1.
        :param verbose: SB3 verbosity.
        """

        def __init__(self, update_every: int = 64, verbose: int = 0) -> None:
            super().__init__(verbose)
            if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
                raise ValueError(f"update_every must be an integer >= 1, got {update_every!r}")
            self.update_every = update_every
            self._sums: np.ndarray | None = None
            self._ended: list[np.ndarray] = []
            self.last_lambdas: tuple[float, float] = (float("nan"), float("nan"))

        def _push(self) -> None:
            try:
                self.training_env.env_method("set_global_step", int(self.num_timesteps))
            except AttributeError:
                raise ValueError(
                    "ParlScheduleCallback needs training envs wrapped in swarmgym.parl.ParlReward (no set_global_step found)"
                ) from None
            lam = self.training_env.env_method("lambdas", indices=[0])[0]
            self.last_lambdas = (float(lam[0]), float(lam[1]))

        def _on_training_start(self) -> None:
            self._push()

        def _on_rollout_start(self) -> None:
            self._push()

        def _on_step(self) -> bool:
            if self.n_calls % self.update_every == 0:
                self._push()
            infos = self.locals.get("infos", ())
            dones = self.locals.get("dones")
            if self._sums is None:
                self._sums = np.zeros((len(infos), 4))
            for i, info in enumerate(infos):
                parl = info.get("parl")
                if parl is None:
                    continue
                self._sums[i] += (parl["r_perf"], parl["r_parallel"], parl["r_finish"], parl["total"])
                if dones is not None and dones[i]:
                    self._ended.append(self._sums[i].copy())
                    self._sums[i] = 0.0
            return True

        def _on_rollout_end(self) -> None:
            self.logger.record("parl/lambda1", self.last_lambdas[0])
            self.logger.record("parl/lambda2", self.last_lambdas[1])
            if self._ended:
                mean = np.mean(self._ended, axis=0)
                for key, value in zip(("r_perf", "r_parallel", "r_finish", "total"), mean):
                    self.logger.record(f"parl/{key}", float(value))
                self._ended = []

    return ParlScheduleCallback


__all__ = [
    "FINISH_FORMS",
    "PARALLEL_FORMS",
    "PARL_INFO_KEYS",
    "PERF_FORMS",
    "PAYMENTS",
    "SCHEDULE_KINDS",
    "LambdaSchedule",
    "ParlReward",
    "ParlRewardVector",
    "finish_reward",
    "parallel_reward",
    "perf_reward",
]
