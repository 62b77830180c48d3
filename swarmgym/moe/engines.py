"""The engine a trainer drives (:class:`swarmgym.engine_protocol.SwarmEngine`), and how an env id becomes one.

Two engines implement the protocol: :class:`swarmgym.batched.BatchedSwarmEngine` (the
compiled batched kernel, what :func:`make_engine` returns by default) and
:class:`GymVectorEngine`, the same interface over
``gymnasium.make_vec(id, num_envs=N, vectorization_mode="sync")`` (same-step autoreset),
which steps the reference :class:`~swarmgym.env.SwarmEnv` one env at a time (slow; for
comparisons and for env kwargs only the reference env takes).
"""

from __future__ import annotations

import copy
import inspect
import pickle
import warnings
from dataclasses import fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from swarmgym.config import SubAgentReliability, SwarmConfig, TokenModel
from swarmgym.env import SwarmEnv
from swarmgym.layout import ActionLayout

#: Metric keys that are not scalars per episode (skipped when metrics become tensors).
_NON_SCALAR = ("family", "concurrency_profile")


def resolve_env_kwargs(env_id: str, overrides: dict | None = None) -> dict[str, Any]:
    """The SwarmEnv keyword arguments of a registered id, with ``overrides`` merged in
    (``generator_kwargs`` and ``config`` are merged key by key, one level deep for the
    ``reliability`` and ``tokens`` tables of the config).

    :param env_id: a registered id such as ``"swarmgym/Mixed-v0"``.
    :param overrides: e.g. ``{"config": {"spawn_ticks": 1}, "generator_kwargs": {"budget_factor": 1.2}}``.
    """
    import swarmgym  # noqa: F401  (registers the suite)

    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"env_id {env_id!r} is not registered: {exc}") from None
    kwargs = copy.deepcopy(dict(spec.kwargs))
    kwargs.pop("observation_mode", None)
    if isinstance(kwargs.get("config"), SwarmConfig):  # registered as an object: merged as its dict form
        kwargs["config"] = kwargs["config"].to_dict()
    for key, value in (overrides or {}).items():
        if key in ("generator_kwargs", "config") and isinstance(value, dict):
            merged = dict(kwargs.get(key) or {})
            for k, v in value.items():
                if isinstance(v, dict) and isinstance(merged.get(k), dict):
                    merged[k] = {**merged[k], **v}
                else:
                    merged[k] = v
            kwargs[key] = merged
        else:
            kwargs[key] = value
    return kwargs


def _check_keys(prefix: str, given: dict, known: list[str]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"unknown key {prefix}{unknown[0]}; known: {', '.join(known)}")


def check_env_kwargs(env_id: str, overrides: dict | None = None) -> dict[str, Any]:
    """:func:`resolve_env_kwargs`, then the env built once with them, so an unknown key or a value
    out of range raises here (``ValueError`` naming it, the same check ``gymnasium.make`` makes)
    and not after training. Returns the resolved kwargs."""
    kwargs = resolve_env_kwargs(env_id, overrides)
    _check_keys("", kwargs, [p for p in inspect.signature(SwarmEnv).parameters if p != "observation_mode"])
    config = kwargs.get("config")
    if isinstance(config, dict):
        _check_keys("config.", config, [f.name for f in fields(SwarmConfig)])
        for group, cls in (("reliability", SubAgentReliability), ("tokens", TokenModel)):
            if isinstance(config.get(group), dict):
                _check_keys(f"config.{group}.", config[group], [f.name for f in fields(cls)])
    try:
        SwarmEnv(**kwargs)
    except TypeError as exc:  # an unknown keyword, or a value of the wrong type
        raise ValueError(f"{env_id} with overrides {overrides or {}}: {exc}") from None
    return kwargs


def kwargs_extended(kwargs: dict[str, Any]) -> bool:
    """Whether SwarmEnv keyword arguments (:func:`resolve_env_kwargs`) make an env of the extended
    layout (``SwarmConfig.extended``: any mechanic of ``docs/mechanics.md`` on)."""
    config = kwargs.get("config")
    if isinstance(config, dict):
        config = SwarmConfig.from_dict(config)
    return bool(config.extended) if isinstance(config, SwarmConfig) else False


def family_names_of(generator: Any) -> list[str]:
    """Family names a generator can produce, in a fixed order (Mixed: its members)."""
    members = getattr(generator, "generators", None)
    if members:
        return [g.name for g in members]
    name = getattr(generator, "name", None)
    return [name] if isinstance(name, str) else []


class _EnvFactory:
    """A picklable env constructor (so an engine can be saved in a checkpoint)."""

    def __init__(self, kwargs: dict) -> None:
        self.kwargs = kwargs

    def __call__(self) -> SwarmEnv:
        return SwarmEnv(**copy.deepcopy(self.kwargs))


class GymVectorEngine:
    """The engine protocol over a synchronous Gymnasium vector env of :class:`SwarmEnv`.

    :param env_kwargs: keyword arguments of :class:`SwarmEnv` (see :func:`resolve_env_kwargs`).
    :param num_envs: envs stepped together, in [1, 65536].
    :param device: torch device of the returned tensors.
    :param seed: env ``i`` is seeded with ``seed + i`` at :meth:`reset`.
    """

    def __init__(self, env_kwargs: dict, num_envs: int, device: str | torch.device = "cpu", seed: int = 0) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or not 1 <= num_envs <= 65536:
            raise ValueError(f"num_envs must be an integer in [1, 65536], got {num_envs!r}")
        kwargs = dict(env_kwargs)
        kwargs["observation_mode"] = "dict"
        self.env_kwargs = kwargs
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.seed = int(seed)
        self.spec: dict[str, Any] = {
            "env_kwargs": copy.deepcopy(kwargs),
            "num_envs": num_envs,
            "device": str(self.device),
            "seed": self.seed,
        }
        self.vec = gym.vector.SyncVectorEnv(
            [_EnvFactory(kwargs) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        first = self.vec.envs[0]
        self.n_max = first.n_max
        self.config = first.config
        self.layout = ActionLayout(self.n_max, self.config.extended)  # extended when any mechanic is on
        self.family_names = family_names_of(first.generator) or ["custom"]
        self._mask = np.zeros((num_envs, self.layout.n), dtype=bool)

    def state_dict(self) -> dict[str, Any]:
        """Every sub-env pickled (its simulator and random state), the current masks and the family names."""
        return {
            "format": "swarmgym.gym_vector_engine/1",
            "spec": copy.deepcopy(self.spec),
            "envs": pickle.dumps([env.unwrapped.__dict__ for env in self.vec.envs]),
            "mask": self._mask.copy(),
            "family_names": list(self.family_names),
            "autoreset": self.vec._autoreset_envs.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` of an engine with the same ``spec``."""
        if not isinstance(state, dict) or state.get("format") != "swarmgym.gym_vector_engine/1":
            raise ValueError("state must be a dict from GymVectorEngine.state_dict()")
        if state["spec"]["env_kwargs"] != self.spec["env_kwargs"] or state["spec"]["num_envs"] != self.num_envs:
            raise ValueError("state was saved by a GymVectorEngine with other env_kwargs or num_envs")
        for env, saved in zip(self.vec.envs, pickle.loads(state["envs"])):
            u = env.unwrapped
            if hasattr(u, "__setstate__"):  # SwarmEnv's re-links the arrays that are views of one another
                u.__setstate__(saved)
            else:
                u.__dict__.update(saved)
        self._mask = state["mask"].copy()
        self.family_names[:] = state["family_names"]
        self.vec._autoreset_envs = state["autoreset"].copy()

    def __repr__(self) -> str:
        return f"GymVectorEngine(num_envs={self.num_envs}, n_max={self.n_max}, families={self.family_names}, device={self.device})"

    def _obs(self, obs: dict) -> dict[str, torch.Tensor]:
        return {
            "nodes": torch.as_tensor(obs["nodes"], dtype=torch.float32, device=self.device),
            "globals": torch.as_tensor(obs["globals"], dtype=torch.float32, device=self.device),
        }

    def reset(self, seed: int | None = None) -> dict[str, torch.Tensor]:
        """Start a new episode in every env; env ``i`` is seeded with ``seed + i`` (default: the engine's seed)."""
        obs, info = self.vec.reset(seed=self.seed if seed is None else int(seed))
        self._mask = np.asarray(info["action_mask"], dtype=bool)
        return self._obs(obs)

    @property
    def action_mask(self) -> torch.Tensor:
        return torch.as_tensor(self._mask, device=self.device)

    def _family_id(self, name: str) -> int:
        if name not in self.family_names:
            self.family_names.append(name)
        return self.family_names.index(name)

    def step(self, actions: torch.Tensor):
        acts = actions.detach().to("cpu").numpy().astype(np.int64)
        obs, reward, terminated, truncated, info = self.vec.step(acts)
        self._mask = np.asarray(info["action_mask"], dtype=bool)
        done = np.logical_or(terminated, truncated)
        metrics: dict[str, torch.Tensor] = {}
        if done.any():
            final = info["final_info"]
            raw = final["metrics"]
            finished = np.asarray(final.get("_metrics", done), dtype=bool) & done
            for key, value in raw.items():
                if key.startswith("_") or key in _NON_SCALAR:
                    continue
                arr = np.zeros(self.num_envs, dtype=np.float64)
                arr[finished] = np.asarray(value, dtype=np.float64)[finished]
                metrics[key] = torch.as_tensor(arr, device=self.device)
            fam = np.full(self.num_envs, -1, dtype=np.int64)
            for i in np.flatnonzero(finished):
                fam[i] = self._family_id(str(raw["family"][i]))
            metrics["family_id"] = torch.as_tensor(fam, device=self.device)
            profile = np.asarray(raw["concurrency_profile"], dtype=np.float64)
            metrics["concurrency_profile"] = torch.as_tensor(np.where(finished[:, None], profile, 0.0), device=self.device)
        info_out = {"done_mask": torch.as_tensor(done, device=self.device), "metrics": metrics}
        return (
            self._obs(obs),
            torch.as_tensor(reward, dtype=torch.float32, device=self.device),
            torch.as_tensor(done, device=self.device),
            info_out,
        )


def make_engine(
    env_id: str,
    num_envs: int,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    engine: str = "auto",
    overrides: dict | None = None,
):
    """An engine for ``env_id``.

    :param engine: ``"batched"`` or ``"auto"`` (:class:`swarmgym.batched.BatchedSwarmEngine`,
        on ``device``) or ``"gym"`` (:class:`GymVectorEngine`: reference envs stepped on CPU,
        tensors moved to ``device``).
    """
    if engine not in ("auto", "batched", "gym"):
        raise ValueError(f"engine must be 'auto', 'batched' or 'gym', got {engine!r}")
    kwargs = check_env_kwargs(env_id, overrides)  # bad values raise here, whichever engine runs
    if engine in ("auto", "batched"):
        from swarmgym.batched import BatchedSwarmEngine

        return BatchedSwarmEngine(
            kwargs.get("generator", "WideSearch"),
            generator_kwargs=kwargs.get("generator_kwargs"),
            config=kwargs.get("config"),
            n_max=kwargs.get("n_max"),
            num_envs=num_envs,
            device=device,
            seed=seed,
            with_adjacency=bool(kwargs.get("with_adjacency", False)),
        )
    if torch.device(device).type != "cpu":
        warnings.warn("the gymnasium sync engine steps on CPU; tensors are moved to the device", stacklevel=2)
    return GymVectorEngine(kwargs, num_envs, device=device, seed=seed)
