"""SwarmVectorEnv: the Gymnasium vector env over :class:`BatchedSwarmEngine` (the compiled batched kernel)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from swarmgym.batched.engine import BatchedSwarmEngine
from swarmgym.layout import FlatLayout
from swarmgym.simulator import TaskInstance


class SwarmVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`swarmgym.SwarmEnv`, stepped together by the batched engine.

    ## Description

    The same task suite, dynamics, observations, rewards and metrics as
    :class:`swarmgym.SwarmEnv` (the reference, which this env reproduces exactly on
    the same task instances), computed for the whole batch at once by a compiled kernel,
    on CPU or CUDA. ``gymnasium.make_vec("swarmgym/WideSearch-v0", num_envs=N)`` returns one
    (every suite id registers it as its ``vector_entry_point``).

    ## Spaces

    ``single_observation_space`` and ``single_action_space`` are SwarmEnv's
    (``Dict`` of ``nodes``/``globals`` [/``adjacency``], or one ``Box`` with
    ``observation_mode="flat"``; ``Discrete(ActionLayout(n_max, config.extended).n)``: the
    extended layout and observation when the config turns on a mechanic of
    ``docs/mechanics.md``); ``observation_space`` and ``action_space`` are their ``batch_space``.

    ## Autoreset

    ``metadata["autoreset_mode"] = AutoresetMode.SAME_STEP``: on the step an episode
    ends, the returned observation is already the first observation of the env's next
    episode (an instance drawn from the engine's bank); the last observation of the
    finished episode is in ``info["final_obs"]`` (rows marked by ``info["_final_obs"]``)
    and its step info in ``info["final_info"]``. A terminated episode's final mask allows
    exactly ``answer`` (ignored; the episode is over); in the flat form it is part of the
    final observation.

    ## Infos (Gymnasium dict-of-arrays form)

    * ``action_mask``: ``bool[num_envs, env.engine.layout.n]``, valid actions of the returned
      observations (also :meth:`action_masks`).
    * ``metrics`` / ``_metrics``: on the step an episode ends (terminated or truncated),
      the episode metrics of :meth:`swarmgym.simulator.SwarmSimulator.metrics`, one array
      per key with a row per env (``family`` a string array, ``concurrency_profile``
      ``[num_envs, max_subagents + 1]``); ``_metrics`` marks the envs that finished,
      other rows are zero.
    * ``final_obs`` / ``_final_obs``, ``final_info`` / ``_final_info``: see Autoreset.

    ## Arguments

    | Parameter | Type | Default | Meaning |
    |-----------|------|---------|---------|
    | num_envs | int | 1 | envs in the batch |
    | generator, generator_kwargs, config, n_max, with_adjacency | | | as :class:`swarmgym.SwarmEnv` |
    | observation_mode | str | "dict" | "dict" or "flat" |
    | max_episode_steps | int or None | None | truncate episodes after this many steps |
    | device | str or torch.device | "cpu" | where the engine's tensors live |
    | return_tensors | bool | False | return torch tensors on ``device`` instead of numpy arrays |
    | copy | bool | True | with ``return_tensors``, return copies (False: the engine's buffers, overwritten next step) |
    | seed | int | 0 | seeds the instance bank; ``reset(seed=...)`` reseeds the bank draws |
    | bank_size, refresh_every | int, int or None | 4096, None | the instance bank (see :class:`BatchedSwarmEngine`) |
    | render_mode | None | None | rendering is not supported in batch |
    | strict | bool | False | must be False (a batch cannot raise for one env) |
    | invalid_action | str | "waste_tick" | what a masked-out action does: "waste_tick" or "answer" (SwarmEnv's rules; "raise" is single-env only) |

    ## Version History

    * v0: initial release.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        generator: Any = "WideSearch",
        generator_kwargs: dict | None = None,
        config: Any = None,
        n_max: int | None = None,
        observation_mode: str = "dict",
        with_adjacency: bool = False,
        max_episode_steps: int | None = None,
        device: str | torch.device = "cpu",
        return_tensors: bool = False,
        copy: bool = True,
        seed: int = 0,
        bank_size: int = 4096,
        refresh_every: int | None = None,
        render_mode: str | None = None,
        strict: bool = False,
        invalid_action: str = "waste_tick",
    ) -> None:
        if observation_mode not in ("dict", "flat"):
            raise ValueError(f"observation_mode must be 'dict' or 'flat', got {observation_mode!r}")
        if render_mode is not None:
            raise ValueError(f"render_mode must be None (the batched engine does not render), got {render_mode!r}")
        if strict:
            raise ValueError(
                "strict=True is not supported in batch (one env cannot raise for the batch); "
                "pass invalid_action='waste_tick' or 'answer', or use gymnasium.vector.SyncVectorEnv over SwarmEnv"
            )
        for name, flag in (("return_tensors", return_tensors), ("copy", copy)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        self.engine = BatchedSwarmEngine(
            generator,
            generator_kwargs,
            config,
            n_max,
            num_envs=num_envs,
            device=device,
            seed=seed,
            bank_size=bank_size,
            refresh_every=refresh_every,
            max_episode_steps=max_episode_steps,
            with_adjacency=with_adjacency,
            invalid_action=invalid_action,
        )
        ref = self.engine.reference_env
        self.num_envs = self.engine.num_envs
        self.observation_mode = observation_mode
        self.return_tensors = bool(return_tensors)
        self.copy = bool(copy)
        self.render_mode = None
        self.single_action_space = ref.action_space
        if observation_mode == "dict":
            self.single_observation_space = ref.dict_observation_space
        else:
            flat = FlatLayout(ref.n_max, self.engine.with_adjacency, self.engine.config.extended)
            self.single_observation_space = gym.spaces.Box(0.0, 1.0, (flat.size,), np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._started = False

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new episode in every env.

        :param seed: reseeds the engine's bank draws (and ``self.np_random``).
        :param options: ``{"instances": [TaskInstance, ...]}`` loads the given instances,
            env ``k`` the ``k``-th (at most ``num_envs``; envs beyond them draw from the bank);
            later autoresets draw from the bank.
        """
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"instances"}
        if unknown:
            raise ValueError(f"reset options must be among 'instances'; got {sorted(unknown)}")
        self.engine.reset(seed=seed)
        if "instances" in options:
            instances = list(options["instances"])
            if not 1 <= len(instances) <= self.num_envs:
                raise ValueError(f"options['instances'] must hold 1 to num_envs={self.num_envs} TaskInstances, got {len(instances)}")
            for k, inst in enumerate(instances):
                if not isinstance(inst, TaskInstance):
                    raise TypeError(f"options['instances'][{k}] must be a TaskInstance, got {type(inst).__name__}")
            self.engine.load_instances(instances)
        self._started = True
        mask = self.engine.action_mask
        obs = self._convert_obs(self.engine.observation(), mask)
        return obs, {"action_mask": self._out(mask)}

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = self._parse_actions(actions)
        obs_t, reward, terminated, info_t = self.engine.step(a, final_obs=True)
        done = info_t["done_mask"]
        mask = info_t["action_mask"]
        obs = self._convert_obs(obs_t, mask)
        info: dict[str, Any] = {"action_mask": self._out(mask)}
        done_np = done.cpu().numpy().copy()
        if done_np.any():
            metrics = self._metrics(info_t["metrics"], done_np)
            info["metrics"], info["_metrics"] = metrics, done_np
            final_obs = self._convert_obs(info_t["final_obs"], info_t["final_mask"])
            info["final_obs"], info["_final_obs"] = final_obs, done_np
            info["final_info"] = {"metrics": metrics, "_metrics": done_np, "action_mask": self._out(info_t["final_mask"])}
            info["_final_info"] = done_np
        if self.return_tensors:
            return obs, reward.clone(), terminated.clone(), info_t["truncated"].clone(), info
        return obs, reward.cpu().numpy().copy(), terminated.cpu().numpy().copy(), info_t["truncated"].cpu().numpy().copy(), info

    def action_masks(self):
        """Valid actions now, ``bool[num_envs, engine.layout.n]`` (numpy, or a tensor with ``return_tensors``)."""
        return self._out(self.engine.action_mask)

    def close_extras(self, **kwargs: Any) -> None:
        self._started = False

    # ------------------------------------------------------------------ helpers
    def _parse_actions(self, actions) -> torch.Tensor:
        n = self.engine.n_actions
        if isinstance(actions, torch.Tensor):
            a = actions
        else:
            arr = np.asarray(actions)
            if arr.dtype.kind not in "iu":
                raise TypeError(f"actions must be integers in [0, {n - 1}], got dtype {arr.dtype}")
            a = torch.from_numpy(arr.astype(np.int64, copy=False))
        if tuple(a.shape) != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {tuple(a.shape)}")
        if a.device.type == "cpu" and a.numel() and (int(a.min()) < 0 or int(a.max()) >= n):
            raise ValueError(f"actions must be integers in [0, {n - 1}], got min {int(a.min())}, max {int(a.max())}")
        return a

    def _out(self, x: torch.Tensor):
        if self.return_tensors:
            return x.clone() if self.copy else x
        return x.cpu().numpy().copy()

    def _convert_obs(self, obs: dict[str, torch.Tensor], mask: torch.Tensor):
        N = self.num_envs
        if self.observation_mode == "flat":
            parts = [obs["nodes"].reshape(N, -1), obs["globals"]]
            if "adjacency" in obs:
                parts.append(obs["adjacency"].reshape(N, -1))
            parts.append(mask.to(torch.float32))
            flat = torch.cat(parts, 1)  # a new tensor: not overwritten by the next step
            return flat if self.return_tensors else flat.cpu().numpy()
        if self.return_tensors:
            return {k: (v.contiguous().clone() if self.copy else v) for k, v in obs.items()}
        return {k: v.cpu().numpy().copy(order="C") for k, v in obs.items()}

    def _metrics(self, metrics: dict[str, torch.Tensor], done: np.ndarray) -> dict[str, Any]:
        """Engine metrics -> SwarmSimulator.metrics() keys, one array per key (zero where not done)."""
        out: dict[str, Any] = {}
        names = self.engine.family_names
        for key, value in metrics.items():
            if key == "family_id":
                ids = value.cpu().numpy()
                fam = np.array([names[i] if d else "" for i, d in zip(ids, done)], dtype=object)
                out["family"] = fam
                continue
            arr = value.cpu().numpy()
            keep = done.reshape(-1, *([1] * (arr.ndim - 1)))
            out[key] = np.where(keep, arr, np.zeros((), arr.dtype))
        if self.return_tensors:
            dev = self.engine.device
            return {k: (v if k == "family" else torch.from_numpy(v).to(dev)) for k, v in out.items()}
        return out

    def __repr__(self) -> str:
        return f"SwarmVectorEnv(num_envs={self.num_envs}, observation_mode={self.observation_mode!r}, engine={self.engine!r})"
