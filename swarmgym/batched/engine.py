"""BatchedSwarmEngine: many swarm envs stepped together by one compiled per-env kernel.

Every env of the batch holds one task instance and the simulator's state as named
arrays (:mod:`swarmgym.batched.kernel`: :class:`~swarmgym.batched.kernel.State`,
:class:`~swarmgym.batched.kernel.Instance`), torch tensors on one device. A step is one
call of the kernel: on CPU a numba ``prange`` loop over the envs working on numpy views of
the tensors; on CUDA one numba kernel launch, one thread per env, on the tensors' device
memory (``__cuda_array_interface__``, no copies). Finished envs are reset in place inside
the same call, from an :class:`~swarmgym.batched.instance_bank.InstanceBank`.

The dynamics are those of :class:`swarmgym.simulator.SwarmSimulator` as driven by
:class:`swarmgym.SwarmEnv` (an invalid, masked-out action is a wasted tick), stage for stage
(see :mod:`swarmgym.batched.kernel`). The observation, mask, reward, flags and metrics a
step returns are the engine's own buffers, overwritten by the next step: copy what you keep
(and do not write into them: the static node columns are written only when an episode starts).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import numpy as np
import torch

from swarmgym.batched import kernel as K
from swarmgym.batched.instance_bank import InstanceBank, bit_words, generate_instances
from swarmgym.config import MAX_NUM_ENVS, MAX_TIERS, CoordinationTax, SwarmConfig, Verification, check_num_envs
from swarmgym.env import SwarmEnv
from swarmgym.layout import METRIC_KEYS as LAYOUT_METRIC_KEYS
from swarmgym.layout import ActionLayout, global_features, node_features
from swarmgym.simulator import TaskInstance

#: Episode metrics in ``info["metrics"]``: ``family_id`` (index into ``family_names``) and the
#: simulator's numeric metrics (:data:`swarmgym.layout.METRICS`), in its order
#: (``concurrency_profile`` is ``[N, m + 1]``).
METRIC_KEYS: tuple[str, ...] = ("family_id", *(key for key in LAYOUT_METRIC_KEYS if key != "family"))

#: Version of :meth:`BatchedSwarmEngine.state_dict`'s layout.
STATE_FORMAT = "swarmgym.batched.state/2"
#: What a masked-out action does in batch (SwarmEnv's ``invalid_action`` rules but ``"raise"``).
BATCHED_INVALID_ACTION_RULES = ("waste_tick", "answer")
#: CUDA threads per block of a kernel launch.
THREADS_PER_BLOCK = 128


def buffer_shapes(num_envs: int, n_max: int, config: SwarmConfig, with_adjacency: bool) -> dict[str, dict[str, tuple]]:
    """``{"state" | "instance" | "output": {name: (shape, dtype)}}``: the engine's buffers (the blocks
    of :class:`~swarmgym.batched.kernel.State`, :class:`~swarmgym.batched.kernel.Instance` and
    :class:`~swarmgym.batched.kernel.Output`) for ``num_envs`` envs."""
    N, n, cfg = num_envs, n_max, config
    A, W, m, T = cfg.max_attempts, bit_words(n), cfg.max_subagents, cfg.n_tiers
    F, G = len(node_features(cfg.extended)), len(global_features(cfg.extended))
    n_actions = ActionLayout(n, cfg.extended).n
    env_columns, node_rows = K.state_widths(cfg.extended)
    adjacency = (N, n, n) if with_adjacency else (1, 1, 1)
    i32, i64, f32, f64, b = torch.int32, torch.int64, torch.float32, torch.float64, torch.bool
    return {
        # per-env dynamic state (named rows and columns in kernel.ENV_FIELDS, NODE_FIELDS; those of the
        # mechanics only for an extended config: kernel.state_widths)
        "state": {"env": ((N, env_columns), i64), "node": ((N, node_rows, n), i32), "concurrency_ticks": ((N, m + 1), i64)},
        # per-env copy of the instance each env plays
        "instance": {
            "node": ((N, len(K.INSTANCE_NODE_FIELDS), n), i32),
            "bits": ((N, 2, n, W), i64),
            "fates": ((N, 2, n, A * T), i32),
            "env": ((N, len(K.INSTANCE_ENV_FIELDS)), i64),
        },
        "output": {
            "nodes": ((N, n, F), f32),
            "globals_": ((N, G), f32),
            "mask": ((N, n_actions), b),
            "adjacency": (adjacency, f32),
            "final_nodes": ((N, n, F), f32),
            "final_globals": ((N, G), f32),
            "final_mask": ((N, n_actions), b),
            "final_adjacency": (adjacency, f32),
            "reward": ((N,), f64),
            "flags": ((4, N), b),
            "metric_int": ((len(K.INT_METRICS), N), i64),
            "metric_float": ((len(K.FLOAT_METRICS), N), f64),
            "concurrency_profile": ((N, m + 1), f64),
        },
    }


def bytes_per_env(n_max: int, config: SwarmConfig, with_adjacency: bool) -> int:
    """The engine's memory per env, in bytes: its share of :func:`buffer_shapes` (about 9.2 kB at
    n_max = 32 with the default config; the instance bank comes on top)."""

    def total(num_envs: int) -> int:
        groups = buffer_shapes(num_envs, n_max, config, with_adjacency).values()
        return sum(math.prod(shape) * torch.empty((), dtype=dtype).element_size() for group in groups for shape, dtype in group.values())

    return total(2) - total(1)


class BatchedSwarmEngine:
    """``num_envs`` swarm envs stepped together by a compiled kernel, exact to :class:`swarmgym.SwarmEnv`.

    :param generator: a family name, ``"module:attr"`` path, or callable ``rng -> TaskGraph``
        (as :class:`swarmgym.SwarmEnv` takes it).
    :param generator_kwargs: the family's parameters.
    :param config: the dynamics (:class:`SwarmConfig`, a dict of its fields, or None).
    :param n_max: node slots; default the generator's ``n_max``, else 32.
    :param num_envs: envs in the batch, in [1, 2**22], and within the available memory.
    :param device: ``"cpu"`` (numba, parallel over the batch), ``"cuda"`` (numba's CUDA target,
        one thread per env) or a :class:`torch.device`.
    :param seed: seeds the instance bank (numpy) and the bank draws of resets and autoresets.
    :param bank_size: instances in the bank, in [1, 2**22]; default 4096.
    :param refresh_every: regenerate the whole bank (next draws of the same numpy stream)
        every this many steps; None (default) keeps the bank for the engine's life.
    :param max_episode_steps: truncate episodes after this many steps (None: never).
    :param with_adjacency: add ``obs["adjacency"]`` ``[num_envs, n_max, n_max]``.
    :param kernel: ``"cpu"`` or ``"cuda"``; default: the device's. ``kernel="cuda"`` on
        ``device="cpu"`` runs the CUDA kernel on host arrays under numba's CUDA simulator
        (``NUMBA_ENABLE_CUDASIM=1`` before numba is imported; for tests, slow).
    :param invalid_action: what a masked-out action does, as SwarmEnv's rule of that name:
        ``"waste_tick"`` (the turn is spent, one tick passes) or ``"answer"`` (counted as
        invalid, then the episode ends as if the agent answered). ``"raise"`` exists only
        for a single env.
    """

    def __init__(
        self,
        generator: Any = "WideSearch",
        generator_kwargs: dict | None = None,
        config: SwarmConfig | dict | None = None,
        n_max: int | None = None,
        num_envs: int = 1024,
        device: str | torch.device = "cpu",
        seed: int = 0,
        bank_size: int = 4096,
        refresh_every: int | None = None,
        max_episode_steps: int | None = None,
        with_adjacency: bool = False,
        kernel: str | None = None,
        invalid_action: str = "waste_tick",
    ) -> None:
        if invalid_action not in BATCHED_INVALID_ACTION_RULES:
            raise ValueError(
                f"invalid_action must be one of {BATCHED_INVALID_ACTION_RULES} in batch, got {invalid_action!r}"
                + (
                    "; 'raise' needs one env per process: use gymnasium.vector.SyncVectorEnv over SwarmEnv"
                    if invalid_action == "raise"
                    else ""
                )
            )
        for name, value, lo, hi in (("num_envs", num_envs, 1, MAX_NUM_ENVS), ("bank_size", bank_size, 1, 1 << 22)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
        for name, value in (("refresh_every", refresh_every), ("max_episode_steps", max_episode_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be 'cpu', 'cuda' or a torch.device, got {device!r}") from exc
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but torch.cuda.is_available() is False")
        if kernel is None:
            kernel = self.device.type
        if kernel not in ("cpu", "cuda"):
            raise ValueError(f"kernel must be None, 'cpu' or 'cuda', got {kernel!r}")
        if kernel == "cpu" and self.device.type != "cpu":
            raise ValueError(f"kernel='cpu' needs device='cpu', got device={str(self.device)!r}")
        if kernel == "cuda" and self.device.type == "cpu" and not K.numba.config.ENABLE_CUDASIM:
            raise ValueError(
                "kernel='cuda' with device='cpu' runs only under numba's CUDA simulator (set NUMBA_ENABLE_CUDASIM=1 before numba is imported)"
            )
        self.kernel = kernel
        self.spec: dict[str, Any] = {
            "generator": generator,
            "generator_kwargs": copy.deepcopy(generator_kwargs),
            "config": config.to_dict() if isinstance(config, SwarmConfig) else copy.deepcopy(config),
            "n_max": None if n_max is None else int(n_max),
            "num_envs": int(num_envs),
            "device": str(self.device),
            "seed": int(seed),
            "bank_size": int(bank_size),
            "refresh_every": refresh_every,
            "max_episode_steps": max_episode_steps,
            "with_adjacency": bool(with_adjacency),
            "kernel": kernel,
            "invalid_action": invalid_action,
        }
        # the reference env validates generator, config, n_max and adjacency, and encodes first observations
        self.reference_env = SwarmEnv(generator, generator_kwargs, config, n_max, "dict", with_adjacency)
        self.generator = self.reference_env.generator
        self.config: SwarmConfig = self.reference_env.config
        self.n_max = n = self.reference_env.n_max
        # refused before any allocation
        check_num_envs(num_envs, bytes_per_env(n, self.config, with_adjacency))
        self.num_envs = N = int(num_envs)
        self.with_adjacency = bool(with_adjacency)
        self.layout = ActionLayout(n, self.config.extended)
        self.n_actions = self.layout.n
        self.max_episode_steps = max_episode_steps
        self.invalid_action = invalid_action
        self.refresh_every = refresh_every
        self.bank_size = int(bank_size)
        self.seed = int(seed)
        self.family_names: list[str] = []
        self._np_rng = np.random.default_rng(seed)
        self._bank_rng_state = copy.deepcopy(self._np_rng.bit_generator.state)
        self._initial_bank_rng_state = copy.deepcopy(self._bank_rng_state)
        self._stream_key = K.stream_key(seed)
        self._steps = 0
        self._pinned: dict[int, TaskInstance] = {}  # env -> the instance it plays, where not a bank row
        self._is_reset = False
        cfg = self.config
        buffers = {
            group: {name: torch.zeros(shape, dtype=dtype, device=self.device) for name, (shape, dtype) in tensors.items()}
            for group, tensors in buffer_shapes(N, n, cfg, self.with_adjacency).items()
        }
        #: per-env dynamic state (kernel.State's blocks), per-env instance (kernel.Instance's), outputs (kernel.Output's)
        self.state, self.instance, self.output = buffers["state"], buffers["instance"], buffers["output"]
        out = self.output
        views = {name: out["metric_int"][k] for k, name in enumerate(K.INT_METRICS)}
        views.update({name: out["metric_float"][k] for k, name in enumerate(K.FLOAT_METRICS)})
        views["budget_exhausted"] = out["flags"][K.BUDGET_EXHAUSTED]
        views["concurrency_profile"] = out["concurrency_profile"]
        self._metric_views = {key: views[key] for key in METRIC_KEYS}
        self.bank = self._build_bank(generate_instances(self.generator, cfg, self._np_rng, self.bank_size))
        self._kernel_state = self._kernel_args(self.state, K.State)
        self._kernel_instance = self._kernel_args(self.instance, K.Instance)
        self._kernel_output = self._kernel_args(self.output, K.Output)
        self._kernel_bank = self._kernel_args(self.bank.tensors, K.Bank)
        self._rules = self._make_rules()
        self._kernels = K.cpu_kernels() if kernel == "cpu" else K.cuda_kernels()

    # ------------------------------------------------------------------ kernel plumbing
    def _as_kernel_array(self, t: torch.Tensor):
        if self.kernel == "cpu" or self.device.type == "cpu":  # numba on CPU, or the CUDA simulator on host arrays
            return t.numpy()
        from numba import cuda

        return cuda.as_cuda_array(t)

    def _kernel_args(self, tensors: dict[str, torch.Tensor], kind):
        return kind(*(self._as_kernel_array(tensors[name]) for name in kind._fields))

    def _make_rules(self) -> K.Rules:
        cfg, tok, lay = self.config, self.config.tokens, self.layout
        tiers = cfg.tier_list
        # per tier (MAX_TIERS scalars each; tiers the config lacks are never spawned)
        step_input = [tok.subagent_step_input * t.token_percent // 100 for t in tiers] + [0] * (MAX_TIERS - len(tiers))
        step_output = [tok.subagent_tick_output * t.token_percent // 100 for t in tiers] + [0] * (MAX_TIERS - len(tiers))
        price_scale = [float(t.price_scale) for t in tiers] + [0.0] * (MAX_TIERS - len(tiers))
        # the extended blocks' offsets (n_actions where the layout has none: no action reaches them)
        spawn_offsets = [lay.spawn_tier(t) if lay.extended else lay.n for t in range(MAX_TIERS)]
        verification = cfg.verification or Verification()
        coordination = cfg.coordination or CoordinationTax()
        return K.Rules(
            invalid_answers=self.invalid_action == "answer",
            fastest_percent=cfg.fastest_percent,
            n_max=self.n_max,
            do_offset=lay.do,
            spawn_offset=lay.spawn,
            wait_action=lay.wait,
            answer_action=lay.answer,
            max_subagents=cfg.max_subagents,
            max_spawns_per_turn=cfg.max_spawns_per_turn,
            max_attempts=cfg.max_attempts,
            spawn_ticks=cfg.spawn_ticks,
            orchestrator_turn_input=tok.orchestrator_turn_input,
            orchestrator_turn_output=tok.orchestrator_turn_output,
            handoff_base=tok.handoff_base,
            handoff_per_parent=tok.handoff_per_parent,
            result_tokens=tok.result_tokens,
            price_input_per_million=float(tok.price_input_per_million),
            price_output_per_million=float(tok.price_output_per_million),
            max_episode_steps=self.max_episode_steps or 0,
            with_adjacency=self.with_adjacency,
            stream_key=self._stream_key,
            extended=lay.extended,
            n_actions=lay.n,
            verify_offset=lay.verify if lay.extended else lay.n,
            spawn_offset_1=spawn_offsets[1],
            spawn_offset_2=spawn_offsets[2],
            progressive=cfg.progressive,
            verification=cfg.verification is not None,
            verify_base_ticks=verification.base_ticks,
            verify_work_percent=verification.work_percent,
            verify_ticks_per_parent=verification.ticks_per_parent,
            n_tiers=cfg.n_tiers,
            **{f"tier_step_input_{t}": step_input[t] for t in range(MAX_TIERS)},
            **{f"tier_step_output_{t}": step_output[t] for t in range(MAX_TIERS)},
            **{f"tier_price_scale_{t}": price_scale[t] for t in range(MAX_TIERS)},
            priced_by_tier=bool(cfg.tiers),
            turn_input_per_result=coordination.turn_input_per_result,
            merge_work_per_subagent_input=coordination.merge_work_per_subagent_input,
        )

    def _launch(self, which: int, count: int, *args) -> None:
        fn = self._kernels[which]
        if self.kernel == "cpu":
            fn(*args)
        else:
            threads = min(THREADS_PER_BLOCK, count)
            fn[math.ceil(count / threads), threads](*args)

    def _load(self, bank: InstanceBank, kernel_bank: K.Bank, env_ids: Sequence[int], rows: Sequence[int]) -> None:
        """Env ``env_ids[j]`` starts on ``bank`` row ``rows[j]`` (-1: drawn from its stream)."""
        ids = torch.as_tensor(np.asarray(env_ids, dtype=np.int64), device=self.device)
        rws = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)
        if ids.numel():
            args = (self._as_kernel_array(ids), self._as_kernel_array(rws), self._kernel_state, self._kernel_instance)
            self._launch(1, ids.numel(), *args, self._rules, self._kernel_output, kernel_bank)

    # ------------------------------------------------------------------ bank
    def _build_bank(self, instances: Sequence[TaskInstance]) -> InstanceBank:
        return InstanceBank(instances, self.config, self.n_max, self.reference_env, self.family_names, self.device, self.with_adjacency)

    def refresh_bank(self) -> None:
        """Regenerate the bank with the next draws of its numpy stream (envs keep their current episodes)."""
        self._pinned = dict(enumerate(self.instances()))
        self.state["env"][:, K.INSTANCE_REF] = -1  # every env now plays an instance outside the new bank
        self._bank_rng_state = copy.deepcopy(self._np_rng.bit_generator.state)
        self.bank = self._build_bank(generate_instances(self.generator, self.config, self._np_rng, self.bank_size))
        self._kernel_bank = self._kernel_args(self.bank.tensors, K.Bank)

    # ------------------------------------------------------------------ episodes
    def load_instances(self, instances: Sequence[TaskInstance], env_ids: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """Start episodes on given instances: env ``env_ids[k]`` (default ``k``) gets ``instances[k]``.

        Later autoresets draw from the bank again. Returns the observation.
        """
        instances = list(instances)
        if env_ids is None:
            env_ids = list(range(len(instances)))
        env_ids = [int(e) for e in env_ids]
        if len(env_ids) != len(instances):
            raise ValueError(f"instances has {len(instances)} entries; env_ids has {len(env_ids)} (one per instance)")
        if any(not 0 <= e < self.num_envs for e in env_ids) or len(set(env_ids)) != len(env_ids):
            raise ValueError(f"env_ids must be distinct integers in [0, {self.num_envs - 1}], got {env_ids}")
        if not instances:
            return self.observation()
        if not self._is_reset:  # the other envs start on bank draws
            self.reset()
        bank = self._build_bank(instances)
        self._load(bank, self._kernel_args(bank.tensors, K.Bank), env_ids, range(len(instances)))
        for e, inst in zip(env_ids, instances):
            self._pinned[e] = inst
        return self.observation()

    def reset(self, seed: int | None = None) -> dict[str, torch.Tensor]:
        """Start a new episode in every env (bank draws); ``seed`` reseeds the draws. Returns the observation."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
            self._stream_key = K.stream_key(int(seed))
            self._rules = self._make_rules()
            self.state["env"][:, K.RNG_DRAWS] = 0
        self._pinned = {}
        self._load(self.bank, self._kernel_bank, range(self.num_envs), [-1] * self.num_envs)
        self._is_reset = True
        return self.observation()

    def instances(self) -> list[TaskInstance]:
        """The task instance each env is playing now (for replays and tests; copies to the host)."""
        refs = self.state["env"][:, K.INSTANCE_REF].cpu().tolist()
        return [self.bank.instances[r] if r >= 0 else self._pinned[e] for e, r in enumerate(refs)]

    # ------------------------------------------------------------------ views
    def observation(self) -> dict[str, torch.Tensor]:
        """The current observation (the engine's buffers; see the module docstring)."""
        out = self.output
        obs = {"nodes": out["nodes"], "globals": out["globals_"]}
        if self.with_adjacency:
            obs["adjacency"] = out["adjacency"]
        return obs

    @property
    def action_mask(self) -> torch.Tensor:
        """Valid actions of the current observations, ``bool[num_envs, layout.n]`` (True = valid)."""
        return self.output["mask"]

    # ------------------------------------------------------------------ step
    def step(self, actions: torch.Tensor, final_obs: bool = False):
        """Apply one action per env; reset finished envs in place.

        :param actions: ``[num_envs]`` integers in ``[0, layout.n)`` (a tensor, on the engine's
            device to avoid a copy; on CUDA the range is not checked: an action outside it is a
            wasted tick).
        :param final_obs: also return ``info["final_obs"]`` and ``info["final_mask"]``: the last
            observation and mask of every env whose episode ended in this step (rows where
            ``info["done_mask"]`` is False hold an earlier episode's). A terminated episode's
            final mask allows exactly ``answer`` (ignored; the episode is over).
        :returns: ``(obs, reward, terminated, info)``: ``reward`` float64 ``[num_envs]``
            (the score on the step an episode terminates, else 0), ``terminated`` bool,
            ``info`` with ``done_mask`` (terminated or truncated), ``truncated``,
            ``metrics`` (dict of ``[num_envs]`` tensors, valid where ``done_mask``; see
            :data:`METRIC_KEYS`) and ``action_mask``. All are the engine's buffers.
        """
        if not self._is_reset:
            raise RuntimeError("call reset() before step()")
        a = torch.as_tensor(actions, device=self.device)
        if a.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {tuple(a.shape)}")
        if a.dtype.is_floating_point or a.dtype == torch.bool or a.dtype.is_complex:
            raise TypeError(f"actions must be integers in [0, {self.n_actions - 1}], got dtype {a.dtype}")
        a = a.to(torch.int64).contiguous()
        if self.device.type == "cpu":
            a_np = a.numpy()
            if a_np.min() < 0 or a_np.max() >= self.n_actions:
                raise ValueError(f"actions must be integers in [0, {self.n_actions - 1}], got min {a_np.min()}, max {a_np.max()}")
        args = (self._kernel_state, self._kernel_instance, self._rules, self._kernel_output, self._kernel_bank, bool(final_obs))
        self._launch(0, self.num_envs, self._as_kernel_array(a), *args)
        self._steps += 1
        if self.refresh_every is not None and self._steps % self.refresh_every == 0:
            self.refresh_bank()
        out = self.output
        info: dict[str, Any] = {
            "metrics": self._metric_views,
            "done_mask": out["flags"][K.DONE_MASK],
            "truncated": out["flags"][K.TRUNCATED],
            "action_mask": out["mask"],
        }
        if final_obs:
            fo = {"nodes": out["final_nodes"], "globals": out["final_globals"]}
            if self.with_adjacency:
                fo["adjacency"] = out["final_adjacency"]
            info["final_obs"] = fo
            info["final_mask"] = out["final_mask"]
        return self.observation(), out["reward"], out["flags"][K.TERMINATED], info

    def random_actions(self, draw: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """One action per env, uniform among the valid actions of the current mask, drawn in the
        kernel (``draw``: a non-negative integer naming the draw; the same draw, seed and mask give
        the same actions). For random baselines and benchmarks.

        :param out: an int64 ``[num_envs]`` tensor on the engine's device to write into.
        """
        if isinstance(draw, bool) or not isinstance(draw, (int, np.integer)) or draw < 0:
            raise ValueError(f"draw must be a non-negative integer, got {draw!r}")
        if out is None:
            out = torch.empty(self.num_envs, dtype=torch.int64, device=self.device)
        key = K.hash32(self._stream_key ^ 0x5EED5EED)  # a stream apart from the bank draws'
        mask = self._as_kernel_array(self.output["mask"])
        self._launch(3, self.num_envs, mask, key, int(draw), self._as_kernel_array(out))
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The engine's compact, exact state: per-env dynamic state, the random streams' state and
        the instances envs play outside the bank (not the bank: ``spec`` and the bank's numpy
        state regenerate it). ``type(e)(**e.spec).load_state_dict(e.state_dict())`` continues
        bit for bit."""
        return {
            "format": STATE_FORMAT,
            "spec": copy.deepcopy(self.spec),
            "state": {name: t.detach().cpu().clone() for name, t in self.state.items()},
            "stream_key": self._stream_key,
            "bank_rng_state": copy.deepcopy(self._bank_rng_state),
            "rng_state": copy.deepcopy(self._np_rng.bit_generator.state),
            "steps": self._steps,
            "pinned": {e: self._pinned[e] for e in self._outside_bank()},
            "family_names": list(self.family_names),
            "is_reset": self._is_reset,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` of an engine built with the same ``spec``."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"state must be a dict from BatchedSwarmEngine.state_dict() (format {STATE_FORMAT!r})")
        mine, theirs = self.spec, {"invalid_action": "waste_tick", **state["spec"]}  # states before the rule was a spec key
        differ = sorted(k for k in set(mine) | set(theirs) if k not in ("device", "kernel") and mine.get(k) != theirs.get(k))
        if differ:
            raise ValueError(
                f"state was saved by an engine with a different spec (differs in {differ}); build the engine from state['spec']"
            )
        self.family_names[:] = state["family_names"]
        if state["bank_rng_state"] != self._bank_rng_state:
            self._np_rng.bit_generator.state = copy.deepcopy(state["bank_rng_state"])
            self._bank_rng_state = copy.deepcopy(state["bank_rng_state"])
            self.bank = self._build_bank(generate_instances(self.generator, self.config, self._np_rng, self.bank_size))
            self._kernel_bank = self._kernel_args(self.bank.tensors, K.Bank)
            if self.family_names[: len(state["family_names"])] != state["family_names"]:
                raise ValueError("the regenerated bank's family names differ from the saved ones")
        self._np_rng.bit_generator.state = copy.deepcopy(state["rng_state"])
        self._stream_key = int(state["stream_key"])
        self._rules = self._make_rules()
        self._steps = int(state["steps"])
        self._pinned = dict(state["pinned"])
        self._is_reset = bool(state["is_reset"])
        if not self._is_reset:
            return
        refs = state["state"]["env"][:, K.INSTANCE_REF].tolist()
        from_bank = [e for e, r in enumerate(refs) if r >= 0]
        self._load(self.bank, self._kernel_bank, from_bank, [refs[e] for e in from_bank])
        pinned = [e for e, r in enumerate(refs) if r < 0]
        if pinned:
            bank = self._build_bank([self._pinned[e] for e in pinned])
            self._load(bank, self._kernel_args(bank.tensors, K.Bank), pinned, range(len(pinned)))
        for name, t in self.state.items():
            t.copy_(state["state"][name].to(self.device))
        self._launch(2, self.num_envs, self._kernel_state, self._kernel_instance, self._rules, self._kernel_output)

    def _outside_bank(self) -> list[int]:
        """Envs playing an instance that is not a row of the current bank."""
        return [e for e, r in enumerate(self.state["env"][:, K.INSTANCE_REF].tolist()) if r < 0]

    def __getstate__(self) -> dict:
        """Pickled as ``spec`` and :meth:`state_dict` (the bank is regenerated on unpickling)."""
        return {"spec": self.spec, "state": self.state_dict()}

    def __setstate__(self, saved: dict) -> None:
        self.__init__(**saved["spec"])
        self.load_state_dict(saved["state"])

    def __repr__(self) -> str:
        return (
            f"BatchedSwarmEngine(generator={self.generator!r}, num_envs={self.num_envs}, n_max={self.n_max}, "
            f"device={str(self.device)!r}, kernel={self.kernel!r}, bank_size={self.bank_size}, "
            f"refresh_every={self.refresh_every}, config={self.config!r})"
        )
