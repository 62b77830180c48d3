"""SwarmSB3VecEnv: a stable-baselines3 ``VecEnv`` over the batched engine (MaskablePPO-ready)."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

from swarmgym.batched.engine import BatchedSwarmEngine
from swarmgym.layout import FlatLayout

try:
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "SwarmSB3VecEnv needs stable-baselines3 (and sb3-contrib for MaskablePPO); install them with "
        "`pip install stable-baselines3 sb3-contrib`"
    ) from exc


class SwarmSB3VecEnv(VecEnv):
    """``num_envs`` swarm envs as one stable-baselines3 ``VecEnv``, stepped by :class:`BatchedSwarmEngine`.

    Observations are numpy dicts (``nodes``, ``globals`` [, ``adjacency``]) for
    ``"MultiInputPolicy"``, or flat vectors with ``observation_mode="flat"`` (nodes,
    globals, adjacency, then the action mask as 0/1, as SwarmEnv's flat form) for
    ``"MlpPolicy"``. When an episode ends the env resets itself (SB3's convention);
    that step's ``infos[i]`` holds ``terminal_observation``, ``TimeLimit.truncated``
    and ``metrics`` (the episode metrics, as :meth:`SwarmSimulator.metrics`), and
    ``episode`` (``r``: return, ``l``: length) so ``ep_rew_mean`` is logged without a
    ``VecMonitor``. ``env_method("action_masks")`` gives the masks sb3-contrib's
    ``MaskablePPO`` asks for.

    :param engine: an existing engine, or None to build one from ``engine_kwargs``
        (keyword arguments of :class:`BatchedSwarmEngine`, e.g. ``generator``,
        ``config``, ``num_envs``, ``max_episode_steps``, ``seed``).
    :param observation_mode: ``"dict"`` or ``"flat"``.
    """

    def __init__(self, engine: BatchedSwarmEngine | None = None, observation_mode: str = "dict", **engine_kwargs: Any) -> None:
        if observation_mode not in ("dict", "flat"):
            raise ValueError(f"observation_mode must be 'dict' or 'flat', got {observation_mode!r}")
        if engine is None:
            engine = BatchedSwarmEngine(**engine_kwargs)
        elif engine_kwargs:
            raise TypeError(f"pass either an engine or engine keyword arguments, not both (got {sorted(engine_kwargs)})")
        if not isinstance(engine, BatchedSwarmEngine):
            raise TypeError(f"engine must be a BatchedSwarmEngine, got {type(engine).__name__}")
        self.engine = engine
        self.observation_mode = observation_mode
        ref = engine.reference_env
        import gymnasium as gym

        if observation_mode == "dict":
            obs_space = ref.dict_observation_space
        else:
            obs_space = gym.spaces.Box(
                0.0, 1.0, (FlatLayout(engine.n_max, engine.with_adjacency, engine.config.extended).size,), np.float32
            )
        super().__init__(engine.num_envs, obs_space, ref.action_space)
        self._actions: torch.Tensor | None = None
        self._episode_return = np.zeros(self.num_envs, np.float64)
        self._episode_length = np.zeros(self.num_envs, np.int64)
        self._seed: int | None = None

    # ------------------------------------------------------------------ VecEnv API
    def reset(self):
        self.engine.reset(seed=self._seed)
        self._seed = None
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._obs(self.engine.observation(), self.engine.action_mask)

    def step_async(self, actions: np.ndarray) -> None:
        a = np.asarray(actions).reshape(self.num_envs)
        if a.dtype.kind not in "iu":
            a = a.astype(np.int64)
        self._actions = torch.from_numpy(a.astype(np.int64, copy=False))

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_async() must be called before step_wait()")
        obs_t, reward_t, terminated_t, info_t = self.engine.step(self._actions, final_obs=True)
        self._actions = None
        reward = reward_t.cpu().numpy().astype(np.float32)
        done = info_t["done_mask"].cpu().numpy().copy()
        truncated = info_t["truncated"].cpu().numpy().copy()
        obs = self._obs(obs_t, info_t["action_mask"])
        self._episode_return += reward
        self._episode_length += 1
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done.any():
            final = self._obs(info_t["final_obs"], info_t["final_mask"])
            metrics = {k: v.cpu().numpy().copy() for k, v in info_t["metrics"].items()}
            names = self.engine.family_names
            for i in np.flatnonzero(done):
                if self.observation_mode == "dict":
                    term_obs = {k: v[i] for k, v in final.items()}
                else:
                    term_obs = final[i]
                m = {k: (v[i].item() if v.ndim == 1 else v[i]) for k, v in metrics.items() if k != "family_id"}
                m = {"family": names[int(metrics["family_id"][i])], **m}
                infos[i] = {
                    "terminal_observation": term_obs,
                    "TimeLimit.truncated": bool(truncated[i]),
                    "metrics": m,
                    "episode": {"r": float(self._episode_return[i]), "l": int(self._episode_length[i])},
                }
            self._episode_return[done] = 0.0
            self._episode_length[done] = 0
        return obs, reward, done, infos

    def action_masks(self) -> np.ndarray:
        """Valid actions now, ``bool[num_envs, engine.layout.n]``."""
        return self.engine.action_mask.cpu().numpy().copy()

    def env_method(self, method_name: str, *method_args, indices: None | int | Iterable[int] = None, **method_kwargs) -> list[Any]:
        """Only ``action_masks`` is served (one mask per env); other methods raise ``AttributeError``."""
        if method_name != "action_masks":
            raise AttributeError(f"SwarmSB3VecEnv.env_method supports only 'action_masks', got {method_name!r}")
        masks = self.action_masks()
        return [masks[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: None | int | Iterable[int] = None) -> list[Any]:
        """Attributes shared by every env: ``action_masks`` (the method), ``config``, ``n_max``,
        ``layout``, ``generator``, ``render_mode``; anything else raises ``AttributeError``."""
        values = {
            "action_masks": lambda: self.action_masks,
            "config": lambda: self.engine.config,
            "n_max": lambda: self.engine.n_max,
            "layout": lambda: self.engine.layout,
            "generator": lambda: self.engine.generator,
            "render_mode": lambda: None,
        }
        if attr_name not in values:
            raise AttributeError(f"SwarmSB3VecEnv has no per-env attribute {attr_name!r}")
        value = values[attr_name]()
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: None | int | Iterable[int] = None) -> None:
        raise AttributeError(f"SwarmSB3VecEnv envs share one engine; setting {attr_name!r} per env is not supported")

    def env_is_wrapped(self, wrapper_class: type, indices: None | int | Iterable[int] = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        """Seed the bank draws of the next :meth:`reset`."""
        self._seed = seed
        return [seed for _ in range(self.num_envs)]

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ helpers
    def _obs(self, obs: dict[str, torch.Tensor], mask: torch.Tensor):
        if self.observation_mode == "flat":
            N = self.num_envs
            parts = [obs["nodes"].reshape(N, -1), obs["globals"]]
            if "adjacency" in obs:
                parts.append(obs["adjacency"].reshape(N, -1))
            parts.append(mask.to(torch.float32))
            return torch.cat(parts, 1).cpu().numpy()
        return {k: v.cpu().numpy().copy(order="C") for k, v in obs.items()}
