"""BatchedSwarmEngine: the dynamics of :mod:`swarmgym.simulator` over tensors, many envs at once.

Every env of the batch holds one task instance; its state lives in tensors shaped
``[num_envs, n_max, ...]`` on one device (CPU or CUDA). A step applies one action per
env with tensor operations only (no Python loop over envs; on CUDA no host<->device
copy inside a step), resets finished envs in place from an :class:`InstanceBank`,
and returns the new observations, rewards, terminations and episode metrics.

The dynamics are those of :class:`swarmgym.simulator.SwarmSimulator` as driven by
:class:`swarmgym.SwarmEnv` (an invalid, masked-out action is a wasted tick). One env
step is one action:

* ``do(i)``: ``work_left[i] -= 1``; the clock advances one tick (a turn, the
  orchestrator worked); if the work is finished, node ``i`` completes correctly
  (iff its parents' outputs are correct).
* ``spawn(i)``: hand-off tokens; ``spawns_this_turn += 1``; with ``spawn_ticks > 0``
  the clock advances ``min(spawn_ticks, budget - t)`` ticks (not a turn) and the
  budget is checked; then a sub-agent starts on ``i`` with the fate of its next attempt.
* ``wait``: the clock runs to the next sub-agent finish, clamped to the budget (a turn).
* invalid action: one wasted tick (a turn, counted in ``invalid_actions``).
* ``answer``: the episode ends at the current tick.

A clock advance of ``dt`` ticks charges orchestrator tokens (for a turn) and
``n_running * dt`` sub-agent ticks (tokens, concurrency histogram, running ticks,
peak, overlap flags), then resolves every sub-agent whose finish time has come:
failure (node ready again), wrong (node done, incorrect) or ok (node done, correct
iff all parents are). Completions within one step are order-independent (a node's
parents are done before it can start), so they are resolved together.

State layout. Every per-node quantity the step passes over is a contiguous
``[num_envs, n_max]`` tensor: flag blocks are flag-major (``[k, num_envs, n_max]``), per-env
counters and per-instance integers env-minor (``[k, num_envs]``), since a strided view costs
several times a contiguous pass here. Parent sets are int32 bit sets (32 nodes per word);
a node's unfinished parents are a popcount of its parent bits outside the done set.

Observation layout. ``obs["nodes"]`` is a ``[num_envs, n_max, 20]`` float32 view of a
feature-major buffer (``[20, num_envs, n_max]``): static features are written only
when an env resets, the ten dynamic ones each step as contiguous ``[num_envs, n_max]``
rows. The view is
not contiguous; call ``.contiguous()`` for a packed copy (``contiguous_obs=True``
does that in :meth:`step`). Returned observation tensors and the action mask are the
engine's buffers and are overwritten by the next step: copy them to keep them.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np
import torch

from swarmgym.batched.instance_bank import InstanceBank, generate_instances
from swarmgym.config import SwarmConfig
from swarmgym.env import (
    GLOBAL_FEATURES,
    NODE_FEATURES,
    TIME_LEFT_HALF,
    TOKENS_HALF,
    UNFINISHED_SCALE,
    WORK_SCALE,
    SwarmEnv,
)
from swarmgym.layout import ActionLayout
from swarmgym.simulator import TaskInstance

_F = {name: i for i, name in enumerate(NODE_FEATURES)}
_G = {name: i for i, name in enumerate(GLOBAL_FEATURES)}
#: Dynamic node-feature columns, written every step (the others change only at reset).
DYNAMIC_COLUMNS = (
    _F["status_blocked"],
    _F["status_ready"],
    _F["status_active"],
    _F["status_running"],
    _F["status_done"],
    _F["work_left"],
    _F["attempts"],
    _F["unfinished_parents"],
    _F["last_attempt_failed"],
    _F["subagent_elapsed"],
)
#: Nodes per word of the engine's bit sets of nodes (int32 words: 32-bit passes vectorise, 64-bit shifts do not).
SET_BITS = 32
#: Finish time of a node no sub-agent runs on (larger than any clock value).
_NOT_RUNNING = 1 << 30

#: Per-instance integers of the bank, one column each of the engine's ``scalars`` block.
_SCALARS = ("budget", "n_nodes", "n_targets", "task_serial_steps", "task_lower_bound", "family_id")

#: Numeric episode metrics, in the order of ``SwarmSimulator.metrics()`` (``family`` is ``family_id``).
METRIC_KEYS: tuple[str, ...] = (
    "family_id",
    "score",
    "critical_steps",
    "serial_steps",
    "lower_bound",
    "speedup",
    "ideal_speedup",
    "serial_collapse_index",
    "spurious_spawn_rate",
    "makespan_ratio",
    "task_serial_steps",
    "task_lower_bound",
    "budget",
    "budget_exhausted",
    "n_spawned",
    "n_subagent_ok",
    "n_subagent_failed",
    "n_subagent_wrong",
    "n_subagent_isolated",
    "n_subagent_unfinished",
    "mean_concurrency",
    "peak_concurrency",
    "concurrency_profile",
    "targets_correct",
    "targets_wrong",
    "targets_missing",
    "input_tokens",
    "output_tokens",
    "tokens",
    "cost_usd",
    "invalid_actions",
)


def _put(x: torch.Tensor, node: torch.Tensor, cond: torch.Tensor, value: bool | torch.Tensor) -> None:
    """``x[e, node[e]] = value`` where ``cond[e]`` (bool ``[N, n]`` state, ``[N, 1]`` node and cond)."""
    old = x.gather(1, node)
    if isinstance(value, bool):
        x.scatter_(1, node, (old | cond) if value else (old & ~cond))
    else:
        x.scatter_(1, node, torch.where(cond, value, old))


def _rows(x: torch.Tensor, count: int) -> torch.Tensor:
    """``x`` (contiguous, ``count`` rows) as ``[count, k]`` of the widest integer word its row's bytes
    divide into: row copies then move 8-byte words, not bytes (5x fewer elements for bool rows)."""
    return _words(x.view(count, -1))


def _words(x: torch.Tensor) -> torch.Tensor:
    """A block ``[..., n]`` (contiguous last dimension) with its last dimension as the widest integer
    words its bytes divide into (row copies then move words, not elements)."""
    row_bytes = x.shape[-1] * x.element_size()
    for dtype, size in ((torch.int64, 8), (torch.int32, 4), (torch.int16, 2)):
        if row_bytes % size == 0 and size > x.element_size():
            return x.view(dtype)
    return x


def _count(x: torch.Tensor) -> torch.Tensor:
    """Trues per row of a ``[N, n]`` bool tensor (contiguous rows), as int64.

    With ``n`` a multiple of 4 (up to 1020), the row is summed as int32 words, four byte-wide
    counters at once (a byte lane counts at most n / 4 <= 255), and the four lanes are added;
    otherwise as bytes in a byte-wide accumulator where a row cannot overflow it."""
    n = x.shape[1]
    if n % 4 == 0 and n <= 1020:
        lanes = x.view(torch.int32).sum(1, dtype=torch.int32)
        total = (lanes & 0xFF) + ((lanes >> 8) & 0xFF)
        total += (lanes >> 16) & 0xFF
        total += (lanes >> 24) & 0xFF  # the top lane (the int32 sign bit is its bit 7)
        return total.to(torch.int64)
    acc = torch.uint8 if n <= 255 else torch.int32
    return x.view(torch.uint8).sum(1, dtype=acc).to(torch.int64)


class BatchedSwarmEngine:
    """``num_envs`` swarm envs stepped together in torch, exact to :class:`swarmgym.SwarmEnv`.

    :param generator: a family name, ``"module:attr"`` path, or callable ``rng -> TaskGraph``
        (as :class:`swarmgym.SwarmEnv` takes it).
    :param generator_kwargs: the family's parameters.
    :param config: the dynamics (:class:`SwarmConfig`, a dict of its fields, or None).
    :param n_max: node slots; default the generator's ``n_max``, else 32.
    :param num_envs: envs in the batch, in [1, 2**24].
    :param device: ``"cpu"``, ``"cuda"`` or a :class:`torch.device`.
    :param seed: seeds the instance bank (numpy) and the bank draws of autoresets (torch).
    :param bank_size: instances in the bank, in [1, 2**22]; default 4096.
    :param refresh_every: regenerate the whole bank (next draws of the same numpy stream)
        every this many steps; None (default) keeps the bank for the engine's life.
    :param max_episode_steps: truncate episodes after this many steps (None: never).
    :param with_adjacency: add ``obs["adjacency"]`` ``[num_envs, n_max, n_max]``.
    :param sync_free: reset finished envs with full-batch ``torch.where`` instead of
        index lists, so a step never waits on the device; default True on CUDA, False on CPU
        (where index lists are cheaper). Both give identical results.
    """

    def __getstate__(self) -> dict:
        """Pickle through ``torch.save``: the state tensors share storages (views of packed
        blocks), which plain pickling would split into independent copies."""
        buffer = io.BytesIO()
        torch.save(self.__dict__, buffer)
        return {"torch_saved_state": buffer.getvalue()}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(torch.load(io.BytesIO(state["torch_saved_state"]), weights_only=False))

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
        sync_free: bool | None = None,
    ) -> None:
        for name, value, lo, hi in (("num_envs", num_envs, 1, 1 << 24), ("bank_size", bank_size, 1, 1 << 22)):
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
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but torch.cuda.is_available() is False")
        # the reference env validates generator, config, n_max and adjacency, and encodes first observations
        self._ref = SwarmEnv(generator, generator_kwargs, config, n_max, "dict", with_adjacency)
        #: keyword arguments that rebuild this engine (``type(engine)(**engine.spec)``)
        self.spec: dict[str, Any] = {
            "generator": generator,
            "generator_kwargs": dict(generator_kwargs) if generator_kwargs else None,
            "config": self._ref.config.to_dict(),
            "n_max": n_max,
            "num_envs": int(num_envs),
            "device": str(self.device),
            "seed": int(seed),
            "bank_size": int(bank_size),
            "refresh_every": refresh_every,
            "max_episode_steps": max_episode_steps,
            "with_adjacency": bool(with_adjacency),
            "sync_free": sync_free,
        }
        self.generator = self._ref.generator
        self.config: SwarmConfig = self._ref.config
        self.n_max = n = self._ref.n_max
        self.num_envs = N = int(num_envs)
        self.with_adjacency = bool(with_adjacency)
        self.layout = ActionLayout(n)
        self.n_actions = self.layout.n
        self.max_episode_steps = max_episode_steps
        self.refresh_every = refresh_every
        self.bank_size = int(bank_size)
        self.seed = int(seed)
        self.sync_free = (self.device.type == "cuda") if sync_free is None else bool(sync_free)
        self.family_names: list[str] = []
        self._np_rng = np.random.default_rng(seed)
        self._torch_gen = torch.Generator(device=self.device)
        self._torch_gen.manual_seed(int(seed))
        self._steps = 0
        self._bank_rng_state = self._np_rng.bit_generator.state  # the numpy state the current bank was drawn from
        cfg = self.config
        A, W, m = cfg.max_attempts, -(-n // SET_BITS), cfg.max_subagents
        self._W = W
        dev = self.device
        tok = cfg.tokens
        self._orch_in, self._orch_out = tok.orchestrator_turn_input, tok.orchestrator_turn_output
        self._sub_in, self._sub_out = tok.subagent_step_input, tok.subagent_tick_output
        self._result = tok.result_tokens

        self._word_value = self._word_value_of(n)
        self._nib_pad = W * 8 - n // 4
        self._nib_shift = torch.arange(0, 32, 4, dtype=torch.int32, device=self.device)
        self.bank = self._build_bank(generate_instances(self.generator, cfg, self._np_rng, self.bank_size))

        def z(*shape, dtype):
            return torch.zeros(*shape, dtype=dtype, device=dev)

        # -- per-env copies of the loaded instance (bank field -> state tensor)
        # (grouped by dtype and shape into blocks, so an autoreset copies a few rows, not one per field;
        # the names below are views into the blocks)
        self._static = {
            "node_i32": z(N, 3, n, dtype=torch.int32),  # work, top_level, parent_top
            "handoff": z(N, n, dtype=torch.int64),
            "parent_bits": z(N, W, n, dtype=torch.int32),  # word w of node i: its parents among nodes 32w..32w+31
            "targets": z(N, n, dtype=torch.bool),
            "fate_duration": z(N, n, A, dtype=torch.int32),
            "fate_bools": z(N, 2, n, A, dtype=torch.bool),  # fate_fail, fate_wrong
            "work_div": z(N, n, dtype=torch.float32),
        }
        # per-instance integers and per-env counters are env-minor ([k, N]): each is a contiguous row
        # (a column of an env-major block is one cache line per env: a [N] op on it costs 20x more)
        self._scalars = z(len(_SCALARS), N, dtype=torch.int64)
        # -- dynamic state initialised from the bank
        # node features feature-major over the batch ([20, N, n]): each feature a contiguous [N, n] row
        self._nodes_fm = z(len(NODE_FEATURES), N, n, dtype=torch.float32)
        self._globals = z(N, len(GLOBAL_FEATURES), dtype=torch.float32)
        self._mask = z(N, self.n_actions, dtype=torch.bool)
        # status flags in observation order (blocked, ready, active, running, done): one block,
        # so the five one-hot rows of the observation are written by one copy
        # (flag-major, [5, N, n]: each flag is a contiguous [N, n] tensor; ``_flags_env`` is the
        # [N, 5, n] view of it)
        self._flags = z(5, N, n, dtype=torch.bool)
        self._flags_env = self._flags.permute(1, 0, 2)
        self._from_bank = {
            "work_left": (z(N, n, dtype=torch.int32), "work"),
            "globals": (self._globals, "globals0"),
            "mask": (self._mask, "mask0"),
        }
        if self.with_adjacency:
            self._adjacency = z(N, n, n, dtype=torch.float32)
            self._from_bank["adjacency"] = (self._adjacency, "adjacency")
        # -- dynamic state initialised to zero (finish_time is set to _NOT_RUNNING separately), in
        # three blocks so an autoreset clears it with three row fills; the names are views into them
        node_bools = ("correct", "last_failed", "overlapped", "cur_fail", "cur_wrong", "cur_ok", "exhausted")
        node_ints = ("attempts",)
        counters = (
            "t",
            "spawns",
            "n_running",
            "input_tokens",
            "output_tokens",
            "n_spawned",
            "n_ok",
            "n_failed",
            "n_wrong",
            "n_isolated",
            "invalid_actions",
            "running_ticks",
            "peak",
            "episode_steps",
        )
        self._zero = {
            "node_ints": z(N, len(node_ints), n, dtype=torch.int32),
            # start_time in float32 (exact below 2**24 ticks), so elapsed/work is one float op
            "node_floats": z(N, 1, n, dtype=torch.float32),
        }
        # per-node flags, flag-major as the status flags are
        self._node_bools = z(len(node_bools), N, n, dtype=torch.bool)
        self._node_bools_env = self._node_bools.permute(1, 0, 2)
        # flag-major blocks and their bank sources (None: cleared)
        self._flag_major = ((self._flags, "flags0_fm"), (self._node_bools, None), (self._nodes_fm, "nodes0_fm"))
        views = {name: self._node_bools[k] for k, name in enumerate(node_bools)}
        views.update({name: self._zero["node_ints"][:, k] for k, name in enumerate(node_ints)})
        views["start_time"] = self._zero["node_floats"][:, 0]
        self._counters = z(len(counters) + m + 1, N, dtype=torch.int64)  # then the concurrency histogram
        views.update({name: self._counters[k] for k, name in enumerate(counters)})
        views["concurrency_ticks"] = self._counters[len(counters) :].t()  # [N, m + 1]
        self._counter_names = counters
        self._finish_time = torch.full((N, n), _NOT_RUNNING, dtype=torch.int32, device=dev)
        # which instance each env plays: a row of self.bank (>= 0) or -(k + 1) for the k-th
        # instance of the last load_instances() call
        self._instance_ref = torch.zeros(N, dtype=torch.int64, device=dev)
        self._loaded_instances: list[TaskInstance] = []
        s = {**self._static, **{k: v for k, (v, _) in self._from_bank.items()}, **views}
        st = self._static
        s["work"], s["top_level"], s["parent_top"] = st["node_i32"][:, 0], st["node_i32"][:, 1], st["node_i32"][:, 2]
        s["fate_fail"], s["fate_wrong"] = st["fate_bools"][:, 0], st["fate_bools"][:, 1]
        for k, name in enumerate(_SCALARS):
            s[name] = self._scalars[k]
        for k, name in enumerate(("blocked", "ready", "active", "running", "done")):
            s[name] = self._flags[k]
        self._s = s
        # constants
        # parents not done yet, per node: recomputed each step from the bit sets (not state)
        self._unfinished = z(N, n, dtype=torch.int32)
        self._scratch = z(2, N, n, dtype=torch.int32)
        self._env_ids = torch.arange(N, device=dev)
        self._zero_f32 = torch.zeros((), dtype=torch.float32, device=dev)
        self._onehot = torch.eye(5, dtype=torch.bool, device=dev)  # status rows: blocked .. done
        self._two_false = torch.zeros(1, 2, dtype=torch.bool, device=dev)
        self._nb_count = len(node_bools)
        self._not_running = torch.tensor(_NOT_RUNNING, dtype=torch.int32, device=dev)
        # globals written each step: time_used, time_left, running, spawns, tokens, nodes_done, targets_done
        self._glob_cols = torch.tensor([0, 1, 2, 3, 5, 6, 7], device=dev)
        # their denominators: budget, left + 16, max_subagents (1 if 0: then running is 0), cap,
        # tokens + 1e5, n_nodes, n_targets (columns of the stacked integers, scaled and offset)
        self._glob_den_cols = torch.tensor([7, 1, 0, 0, 4, 8, 9], device=dev)
        self._glob_scale = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64, device=dev)
        self._glob_offset = torch.tensor(
            [0.0, TIME_LEFT_HALF, float(m or 1), float(cfg.max_spawns_per_turn), TOKENS_HALF, 0.0, 0.0], dtype=torch.float64, device=dev
        )
        self._is_reset = False

    # ------------------------------------------------------------------ bank
    def _word_value_of(self, n: int) -> list[torch.Tensor]:
        """Per bit-set word, the float64 value of each of its bits (``_bits`` multiplies by it)."""
        return [
            2.0 ** torch.arange(min(SET_BITS, n - w * SET_BITS), dtype=torch.float64, device=self.device) for w in range(-(-n // SET_BITS))
        ]

    def _build_bank(self, instances: Sequence[TaskInstance]) -> InstanceBank:
        bank = InstanceBank(instances, self.config, self.n_max, self._ref, self.family_names, self.device, self.with_adjacency)
        t = bank.tensors
        t["node_i32"] = torch.stack([t["work"], t["top_level"], t["parent_top"]], 1)
        t["fate_bools"] = torch.stack([t["fate_fail"], t["fate_wrong"]], 1)
        t["scalars"] = torch.stack([t[name] for name in _SCALARS], 0)  # [k, B], as the engine's
        t["nodes0_fm"] = t["nodes0"].permute(2, 0, 1).contiguous()  # [20, B, n], as the engine's
        t["flags0_fm"] = t["flags0"].transpose(0, 1).contiguous()  # [5, B, n], as the engine's
        # parent bit sets from the children matrix: bit p of word w of node i iff 32w + p is a parent of i
        # (a sum of distinct powers of two is their OR; bit 31 is the int32 sign bit)
        parents = t["children"][:, : self.n_max].to(torch.int64)
        t["parent_bits"] = torch.stack(
            [
                (parents[:, w * SET_BITS : (w + 1) * SET_BITS] << torch.arange(v.numel(), device=self.device)[:, None]).sum(1)
                for w, v in enumerate(self._word_value_of(self.n_max))
            ],
            1,
        ).to(torch.int32)
        # a padding slot divides by 1 (its elapsed time is multiplied by 0)
        t["work_div"] = t["work"].clamp(min=1).to(torch.float32)
        return bank

    def refresh_bank(self) -> None:
        """Regenerate the bank with the next draws of its numpy stream (envs keep their current episodes)."""
        current = self.instances()
        self._bank_rng_state = self._np_rng.bit_generator.state
        self.bank = self._build_bank(generate_instances(self.generator, self.config, self._np_rng, self.bank_size))
        self._instance_ref.fill_(-1)  # every env now plays an instance outside the new bank
        self._pin_instances(current)

    def _pin_instances(self, current: list[TaskInstance]) -> None:
        """Envs not playing a row of the current bank refer to ``current[env]`` from now on."""
        self._loaded_instances = current
        own = -1 - torch.arange(self.num_envs, device=self.device)
        self._instance_ref.copy_(torch.where(self._instance_ref >= 0, self._instance_ref, own))

    # ------------------------------------------------------------------ loading
    def _load_rows(self, bank: InstanceBank, env_ids: torch.Tensor, slots: torch.Tensor) -> None:
        """Start new episodes: env ``env_ids[k]`` gets bank row ``slots[k]`` (index lists)."""
        bt = bank.tensors
        env_major, env_minor, cleared, cleared_minor = self._reset_views(bank)
        for dst, src in env_major:  # rows as flat vectors of the widest word: index_copy_ copies element by element
            dst.index_copy_(0, env_ids, src.index_select(0, slots))
        for dst in cleared:
            dst.index_fill_(0, env_ids, 0)
        for dst, src in env_minor:  # [k, N, n] blocks: n-byte segments, moved as words
            dst.index_copy_(1, env_ids, src.index_select(1, slots))
        for dst in cleared_minor:
            dst.index_fill_(1, env_ids, 0)
        self._scalars.index_copy_(1, env_ids, bt["scalars"].index_select(1, slots))
        self._counters.index_fill_(1, env_ids, 0)
        self._finish_time.index_fill_(0, env_ids, _NOT_RUNNING)
        self._instance_ref.index_copy_(0, env_ids, slots if bank is self.bank else torch.full_like(slots, -1))

    def _reset_views(self, bank: InstanceBank) -> tuple:
        """The word views an index-list reset copies between ``bank`` and the state: env-major
        (destination, source) row pairs, flag-major ``[k, N, words]`` pairs, and the env-major and
        flag-major blocks it clears. (Made per call, not kept: ``torch.save`` refuses to pickle one
        storage viewed as two dtypes, and the engine is saved whole by trainers.)"""
        bt, N, B = bank.tensors, self.num_envs, bank.size
        pairs = [(dst, bt[name]) for name, dst in self._static.items()] + [(dst, bt[src]) for dst, src in self._from_bank.values()]
        return (
            [(_rows(dst, N), _rows(src, B)) for dst, src in pairs],
            [(_words(dst), _words(bt[src])) for dst, src in self._flag_major if src is not None],
            [_rows(dst, N) for dst in self._zero.values()],
            [_words(dst) for dst, src in self._flag_major if src is None],
        )

    def _load_where(self, bank: InstanceBank, env_mask: torch.Tensor, slots: torch.Tensor) -> None:
        """Start new episodes where ``env_mask`` holds (row ``e`` gets bank row ``slots[e]``); no index lists."""
        bt = bank.tensors

        def sel(dst: torch.Tensor, src: torch.Tensor | int) -> None:
            m = env_mask.view(-1, *([1] * (dst.dim() - 1)))
            dst.copy_(torch.where(m, src, dst))

        for name, dst in self._static.items():
            sel(dst, bt[name][slots])
        for dst, src in self._from_bank.values():
            sel(dst, bt[src][slots].to(dst.dtype))
        for dst in self._zero.values():
            sel(dst, torch.zeros((), dtype=dst.dtype, device=self.device))
        for dst, src in self._flag_major:
            dst.copy_(torch.where(env_mask[None, :, None], False if src is None else bt[src][:, slots], dst))
        self._scalars.copy_(torch.where(env_mask, bt["scalars"][:, slots], self._scalars))
        self._counters.masked_fill_(env_mask, 0)
        sel(self._finish_time, torch.full((), _NOT_RUNNING, dtype=torch.int32, device=self.device))
        sel(self._instance_ref, slots)

    def _autoreset(self, env_mask: torch.Tensor) -> None:
        """Draw bank rows for the envs in ``env_mask`` and load them."""
        if self.sync_free:
            slots = torch.randint(0, self.bank.size, (self.num_envs,), generator=self._torch_gen, device=self.device)
            self._load_where(self.bank, env_mask, slots)
        else:
            env_ids = env_mask.nonzero().squeeze(1)
            if env_ids.numel():
                slots = torch.randint(0, self.bank.size, (env_ids.numel(),), generator=self._torch_gen, device=self.device)
                self._load_rows(self.bank, env_ids, slots)

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
        bank = self._build_bank(instances)
        ids = torch.tensor(env_ids, dtype=torch.int64, device=self.device)
        current = self.instances()
        for k, e in enumerate(env_ids):
            current[e] = instances[k]
        self._load_rows(bank, ids, torch.arange(len(instances), device=self.device))
        self._pin_instances(current)
        self._is_reset = True
        return self.observation()

    def reset(self, seed: int | None = None) -> dict[str, torch.Tensor]:
        """Start a new episode in every env (bank draws); ``seed`` reseeds the draws. Returns the observation."""
        if seed is not None:
            self._torch_gen.manual_seed(int(seed))
        with torch.inference_mode():
            slots = torch.randint(0, self.bank.size, (self.num_envs,), generator=self._torch_gen, device=self.device)
            self._load_rows(self.bank, self._env_ids, slots)
        self._is_reset = True
        return self.observation()

    def instances(self) -> list[TaskInstance]:
        """The task instance each env is playing now (for replays and tests; copies to the host)."""
        refs = self._instance_ref.cpu().tolist()
        return [self.bank.instances[r] if r >= 0 else self._loaded_instances[-1 - r] for r in refs]

    # ------------------------------------------------------------------ checkpoints
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors that hold the per-env state (the instance rows each env plays and its
        dynamic state); everything else is rebuilt from :attr:`spec` or is per-step scratch."""
        out = {f"static/{k}": v for k, v in self._static.items()}
        out.update({f"zero/{k}": v for k, v in self._zero.items()})
        out.update({f"from_bank/{k}": v for k, (v, _) in self._from_bank.items()})
        for name in ("_scalars", "_nodes_fm", "_flags", "_node_bools", "_counters", "_finish_time", "_instance_ref"):
            out[name] = getattr(self, name)
        return out

    def state_dict(self) -> dict[str, Any]:
        """The engine's exact state without the instance bank (see :mod:`swarmgym.engine_protocol`)."""
        return {
            "tensors": {k: v.detach().cpu().clone() for k, v in self._state_tensors().items()},
            "torch_generator": self._torch_gen.get_state().cpu(),
            "numpy_rng": self._np_rng.bit_generator.state,
            "bank_rng": self._bank_rng_state,
            "steps": self._steps,
            "is_reset": self._is_reset,
            "family_names": list(self.family_names),
            "loaded_instances": list(self._loaded_instances),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where the engine that wrote ``state`` stood (built with the same :attr:`spec`)."""
        own = self._state_tensors()
        saved = state["tensors"]
        if set(saved) != set(own):
            raise ValueError(f"engine state has tensors {sorted(saved)}; this engine has {sorted(own)}")
        for name, dst in own.items():
            if tuple(saved[name].shape) != tuple(dst.shape):
                raise ValueError(f"engine state tensor {name} has shape {tuple(saved[name].shape)}; this engine's is {tuple(dst.shape)}")
        if state["bank_rng"] != self._bank_rng_state:  # the saved engine had refreshed its bank
            self._np_rng.bit_generator.state = state["bank_rng"]
            self._bank_rng_state = state["bank_rng"]
            self.bank = self._build_bank(generate_instances(self.generator, self.config, self._np_rng, self.bank_size))
        with torch.inference_mode():
            for name, dst in own.items():
                dst.copy_(saved[name].to(dst.device))
        self._np_rng.bit_generator.state = state["numpy_rng"]
        self._torch_gen.set_state(state["torch_generator"])
        self._steps = int(state["steps"])
        self._is_reset = bool(state["is_reset"])
        self.family_names[:] = list(state["family_names"])
        self._loaded_instances = list(state["loaded_instances"])

    # ------------------------------------------------------------------ views
    def observation(self, contiguous: bool = False) -> dict[str, torch.Tensor]:
        """The current observation (the engine's buffers; see the module docstring)."""
        nodes = self._nodes_fm.permute(1, 2, 0)
        obs = {"nodes": nodes.contiguous() if contiguous else nodes, "globals": self._globals}
        if self.with_adjacency:
            obs["adjacency"] = self._adjacency
        return obs

    @property
    def action_mask(self) -> torch.Tensor:
        """Valid actions of the current observations, ``bool[num_envs, 2 * n_max + 2]`` (True = valid)."""
        return self._mask

    # ------------------------------------------------------------------ step
    def step(self, actions: torch.Tensor, final_obs: bool = False, contiguous_obs: bool = False):
        """Apply one action per env; reset finished envs in place.

        :param actions: ``[num_envs]`` integers in ``[0, 2 * n_max + 2)``.
        :param final_obs: also return ``info["final_obs"]`` (the last observation of every
            env, a copy; rows where ``info["done_mask"]`` is False repeat the returned obs)
            and ``info["final_mask"]``.
        :param contiguous_obs: return ``obs["nodes"]`` as a contiguous copy.
        :returns: ``(obs, reward, terminated, info)``: ``reward`` float64 ``[num_envs]``
            (the score on the step an episode terminates, else 0), ``terminated`` bool,
            ``info`` with ``done_mask`` (terminated or truncated), ``truncated``,
            ``metrics`` (dict of ``[num_envs]`` tensors, valid where ``done_mask``) and
            ``action_mask``.
        """
        if not self._is_reset:
            raise RuntimeError("call reset() before step()")
        with torch.inference_mode():
            a = torch.as_tensor(actions, device=self.device)
            if a.shape != (self.num_envs,):
                raise ValueError(f"actions must have shape ({self.num_envs},), got {tuple(a.shape)}")
            if a.dtype.is_floating_point or a.dtype == torch.bool or a.dtype.is_complex:
                raise TypeError(f"actions must be integers in [0, {self.n_actions - 1}], got dtype {a.dtype}")
            a = a.to(torch.int64)
            if not self.sync_free and bool(((a < 0) | (a >= self.n_actions)).any()):
                raise ValueError(f"actions must be integers in [0, {self.n_actions - 1}]")
            reward, terminated, truncated, done = self._dynamics(a)
            info: dict[str, Any] = {"metrics": self._metrics(done), "done_mask": done, "truncated": truncated}
            # a truncated episode is not over for the env (TimeLimit cuts it from outside): its
            # final observation and mask are those of a live state, as the reference's are
            self._encode(live=~terminated)
            if final_obs:
                fo = {k: v.clone() for k, v in self.observation(contiguous=True).items()}
                info["final_obs"] = fo
                info["final_mask"] = self._mask.clone()
            self._steps += 1
            if self.refresh_every is not None and self._steps % self.refresh_every == 0:
                self.refresh_bank()
            self._autoreset(done)
            info["action_mask"] = self._mask
            return self.observation(contiguous_obs), reward, terminated, info

    def _dynamics(self, a: torch.Tensor):
        """Stages 1-9 of a step (everything but the observation and the autoreset)."""
        s = self._s
        cfg = self.config
        n, A = self.n_max, cfg.max_attempts
        i32 = torch.int32
        # 1. decode the action and check it against the current mask
        valid = self._mask.gather(1, a[:, None]).squeeze(1)
        is_do = a < n
        is_answer = a == 2 * n + 1
        is_spawn = (a >= n) & (a < 2 * n)
        node = torch.where(is_spawn, a - n, a).clamp_(0, n - 1)[:, None]  # [N, 1]
        do_ok = is_do & valid
        sp_ok = is_spawn & valid
        wait_ok = (a == 2 * n) & valid
        invalid = ~valid
        turn = do_ok | wait_ok | invalid
        t, budget = s["t"], s["budget"]
        pb = s["parent_bits"]
        # nodes done with a wrong output, as bit sets: a node with such a parent cannot be right
        # (this step's completions have all their parents done before the step, so the set of
        # the step's start decides them all)
        bad = self._bits(s["done"] & ~s["correct"])
        # 2. do: one tick of the orchestrator's own work on the node
        # (single-node updates are gathers and scatters of one entry per env, not [N, n] passes; the
        # node completes, if its work is done, here rather than after the clock advance: nothing
        # in between reads it, and its children learn of it with the others' in stage 7)
        do1 = do_ok[:, None]
        wl = s["work_left"].gather(1, node) - do1.to(i32)
        s["work_left"].scatter_(1, node, wl)
        do_done = do1 & (wl == 0)  # [N, 1]
        node_parents = pb.gather(2, node[:, None, :].expand(-1, self._W, 1)).squeeze(2)  # [N, W]
        do_wrong = do_done & ((node_parents & bad) != 0).any(1, keepdim=True)
        # the do node's status row becomes active, or done (one gather and one scatter of the block)
        at_node5 = node[:, None, :].expand(-1, 5, 1)
        row = self._flags_env.gather(2, at_node5).squeeze(2)
        row = torch.where(do1, torch.where(do_done, self._onehot[4], self._onehot[2]), row)
        self._flags_env.scatter_(2, at_node5, row[:, :, None])
        _put(s["correct"], node, do_done & ~do_wrong, True)
        # 3. spawn: the hand-off is written and read; the turn goes on
        hand = s["handoff"].gather(1, node).squeeze(1) * sp_ok
        s["input_tokens"] += hand
        s["output_tokens"] += hand
        s["spawns"] += sp_ok
        # 4. advance the clock
        next_finish = self._finish_time.amin(1).to(torch.int64)
        dt = torch.where(wait_ok, torch.minimum(next_finish, budget) - t, (do_ok | invalid).to(torch.int64))
        if cfg.spawn_ticks:
            dt += sp_ok * (budget - t).clamp(max=cfg.spawn_ticks)
        nr = s["n_running"]
        s["input_tokens"] += turn * self._orch_in + nr * dt * self._sub_in
        s["output_tokens"] += turn * self._orch_out + nr * dt * self._sub_out
        s["concurrency_ticks"].scatter_add_(1, nr[:, None], dt[:, None])
        s["running_ticks"] += nr * dt
        ticking = dt > 0
        torch.maximum(s["peak"], nr * ticking, out=s["peak"])
        s["overlapped"] |= s["running"] & (ticking & (do_ok | (nr >= 2)))[:, None]
        t += dt
        s["invalid_actions"] += invalid
        # 5. sub-agents whose finish time has come return their results
        finished = self._finish_time <= t.to(i32)[:, None]
        fin_fail = finished & s["cur_fail"]
        fin_wrong = finished & s["cur_wrong"]
        fin_ok = finished & s["cur_ok"]
        n_fin = _count(finished)
        n_fail = _count(fin_fail)
        n_wrong = _count(fin_wrong)
        s["n_failed"] += n_fail
        s["n_wrong"] += n_wrong
        s["n_ok"] += n_fin - n_fail - n_wrong
        s["n_isolated"] += _count(fin_ok & ~s["overlapped"])
        s["input_tokens"] += n_fin * self._result
        s["output_tokens"] += n_fin * self._result
        s["n_running"] -= n_fin
        s["running"] &= ~finished
        s["ready"] |= fin_fail
        s["last_failed"] |= fin_fail
        torch.where(finished, self._not_running, self._finish_time, out=self._finish_time)
        # 6. completions: done; correct iff the outcome is right and no parent's output is wrong
        completed = fin_ok | fin_wrong
        new_correct = fin_ok & ~self._has_parent_in(bad)
        s["correct"] |= new_correct
        s["done"] |= completed
        s["work_left"].masked_fill_(completed, 0)
        # 7. children learn of their parents' completion: a node's unfinished parents are its
        # parent bits outside the done set (a popcount; no pass per completion)
        self._count_unfinished(self._bits(s["done"]))
        newly_ready = s["blocked"] & (self._unfinished == 0)
        s["blocked"] &= ~newly_ready
        s["ready"] |= newly_ready
        # 8. spawn: the sub-agent starts (unless a spawn tick ran the budget out)
        start = sp_ok & (t < budget) if cfg.spawn_ticks else sp_ok
        att = s["attempts"].gather(1, node)
        slot = node * A + att.clamp(max=A - 1).to(torch.int64)
        N = self.num_envs
        dur = s["fate_duration"].view(N, -1).gather(1, slot)
        st = start[:, None]
        s["attempts"].scatter_(1, node, att + st.to(i32))
        old_finish = self._finish_time.gather(1, node)
        self._finish_time.scatter_(1, node, torch.where(st, t.to(i32)[:, None] + dur, old_finish))
        s["start_time"].scatter_(1, node, torch.where(st, t.to(torch.float32)[:, None], s["start_time"].gather(1, node)))
        fates = s["fate_bools"].view(N, 2, -1).gather(2, slot[:, None, :].expand(-1, 2, 1)).squeeze(2)  # fail, wrong
        # the node's status row becomes running; its per-node flags (correct, last_failed, overlapped,
        # cur_fail, cur_wrong, cur_ok, exhausted) are rewritten: one gather and one scatter per block
        row = self._flags_env.gather(2, at_node5).squeeze(2)
        self._flags_env.scatter_(2, at_node5, torch.where(st, self._onehot[3], row)[:, :, None])
        at_node7 = node[:, None, :].expand(-1, self._nb_count, 1)
        nb = self._node_bools_env
        row = nb.gather(2, at_node7).squeeze(2)
        new = torch.cat([row[:, :1], self._two_false.expand(N, 2), fates, ~(fates[:, :1] | fates[:, 1:]), att + 1 >= A], 1)
        nb.scatter_(2, at_node7, torch.where(st, new, row)[:, :, None])
        s["n_spawned"] += start
        s["n_running"] += start
        # 9. end of turn, budget, truncation, reward
        s["spawns"] *= ~turn
        by_budget = (t >= budget) & ~is_answer
        terminated = is_answer | by_budget
        self._by_budget = by_budget
        s["episode_steps"] += 1
        if self.max_episode_steps is not None:
            truncated = (s["episode_steps"] >= self.max_episode_steps) & ~terminated
        else:
            truncated = torch.zeros_like(terminated)
        done = terminated | truncated
        self._score = score = self._score_f1()
        reward = torch.where(terminated, score, torch.zeros_like(score))
        return reward, terminated, truncated, done

    # ------------------------------------------------------------------ helpers
    def _bits(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, n]`` bools -> ``[N, W]`` int32 bit sets (node j: word j // 32, bit j % 32; a float64
        matrix-vector product is exact below 2**53, and the int64 -> int32 cast keeps the low 32 bits)."""
        if self.n_max % 4 == 0:
            # four bools (bytes 0/1) per int32 -> four bits: byte k moves to bit k, the rest is masked off
            v = x.view(torch.int32)
            nib = v | (v >> 7)
            nib |= v >> 14
            nib |= v >> 21
            nib &= 0xF
            if self._nib_pad:
                nib = torch.nn.functional.pad(nib, (0, self._nib_pad))
            # eight nibbles per word: their shifted sum is their OR (int64, then the low 32 bits)
            return (nib.view(-1, self._W, 8) << self._nib_shift).sum(2).to(torch.int32)
        words = []
        for w, value in enumerate(self._word_value):
            part = x[:, w * SET_BITS : w * SET_BITS + value.numel()]
            words.append(torch.mv(part.to(torch.float64), value).to(torch.int64))
        return torch.stack(words, 1).to(torch.int32)

    def _has_parent_in(self, node_set: torch.Tensor) -> torch.Tensor:
        """``[N, n]`` bools: the node has a parent in ``node_set`` (``[N, W]`` bit sets)."""
        pb = self._s["parent_bits"]
        hit = (pb[:, 0] & node_set[:, :1]) != 0
        for w in range(1, self._W):
            hit |= (pb[:, w] & node_set[:, w : w + 1]) != 0
        return hit

    def _count_unfinished(self, done_set: torch.Tensor) -> None:
        """``self._unfinished``: per node, its parents outside ``done_set`` (``[N, W]`` bit sets): a
        branch-free popcount of 32-bit words, in place in two scratch buffers. The shifts are
        arithmetic (int32), so each is masked before its bits are added."""
        pb = self._s["parent_bits"]
        out, x, y = self._unfinished, self._scratch[0], self._scratch[1]
        shr = torch.bitwise_right_shift
        for w in range(self._W):
            torch.bitwise_and(pb[:, w], ~done_set[:, w : w + 1], out=x)
            shr(x, 1, out=y).bitwise_and_(0x55555555)
            x.sub_(y)  # 2-bit counts (two's complement wrap-around keeps the bit pattern)
            shr(x, 2, out=y).bitwise_and_(0x33333333)
            x.bitwise_and_(0x33333333).add_(y)  # 4-bit counts
            x.add_(shr(x, 4, out=y)).bitwise_and_(0x0F0F0F0F)  # byte counts; bit 31 now clear
            x.add_(shr(x, 8, out=y))
            x.add_(shr(x, 16, out=y))
            if w == 0:
                torch.bitwise_and(x, 0x3F, out=out)
            else:
                out.add_(x.bitwise_and_(0x3F))

    def _score_f1(self) -> torch.Tensor:
        s = self._s
        tgt_done = s["targets"] & s["done"]
        tp = _count(tgt_done & s["correct"])
        done_t = _count(tgt_done)
        fp = done_t - tp
        fn = s["n_targets"] - done_t
        self._tp, self._fp, self._fn = tp, fp, fn
        return (2.0 * tp.to(torch.float64)) / (2 * tp + fp + fn).to(torch.float64)

    def _encode(self, live: torch.Tensor) -> None:
        """Write the dynamic node features, the globals and the mask (``live``: the episode goes on)."""
        s = self._s
        cfg = self.config
        fm = self._nodes_fm
        F = _F
        fm[F["status_blocked"] : F["status_done"] + 1] = self._flags.view(torch.uint8)
        torch.mul(s["work_left"], 1.0 / WORK_SCALE, out=fm[F["work_left"]]).clamp_(max=1.0)
        # k / A and e / w for the small integers here round to the same float32 whether computed
        # in float64 (as SwarmEnv does, multiplying by the reciprocal) or divided in float32
        torch.div(s["attempts"], cfg.max_attempts, out=fm[F["attempts"]])
        torch.mul(self._unfinished.clamp(max=int(UNFINISHED_SCALE)), 1.0 / UNFINISHED_SCALE, out=fm[F["unfinished_parents"]])
        fm[F["last_attempt_failed"]] = s["last_failed"].view(torch.uint8)
        elapsed = (s["t"].to(torch.float32)[:, None] - s["start_time"]).div_(s["work_div"]).clamp_(max=1.0)
        torch.where(s["running"], elapsed, self._zero_f32, out=fm[F["subagent_elapsed"]])
        # globals, in float64 as SwarmEnv computes them (the same IEEE operations), then cast; all
        # seven ratios at once: value = num / (num_or_0 * scale + offset). n_nodes / n_max and
        # max_subagents / 64 are constant in an episode (the bank's first observation holds them)
        nr = s["n_running"]
        m, cap = cfg.max_subagents, cfg.max_spawns_per_turn
        can_spawn = (nr < m) & (s["spawns"] < cap) & live
        left = s["budget"] - s["t"]
        ints = torch.stack(
            [
                s["t"],
                left,
                nr,
                s["spawns"],
                s["input_tokens"] + s["output_tokens"],
                _count(s["done"]),
                self._tp + self._fp,
                s["budget"],
                s["n_nodes"],
                s["n_targets"],
            ],
            1,
        ).to(torch.float64)
        den = torch.addcmul(self._glob_offset, ints.index_select(1, self._glob_den_cols), self._glob_scale)
        self._globals.index_copy_(1, self._glob_cols, (ints[:, :7] / den).to(torch.float32))
        self._globals[:, _G["can_spawn"]] = can_spawn
        # the action mask
        n = self.n_max
        mask = self._mask
        live_col = live[:, None]
        torch.logical_and(s["ready"] | s["active"], live_col, out=mask[:, :n])
        torch.logical_and(s["ready"] & ~s["exhausted"], can_spawn[:, None], out=mask[:, n : 2 * n])
        mask[:, 2 * n] = (nr > 0) & live
        mask[:, 2 * n + 1] = live

    def _serial_and_longest(self, done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Work done and the longest finished (or started) path, per env: the two metrics that
        need a pass over the nodes. On CPU only the rows of finished episodes are computed
        (others are 0); sync-free, every row."""
        s = self._s
        rows = None if self.sync_free else done.nonzero().squeeze(1)

        def take(x: torch.Tensor) -> torch.Tensor:
            return x if rows is None else x.index_select(0, rows)

        work, active = take(s["work"]), take(s["active"])
        progress = work - take(s["work_left"])
        serial = progress.sum(1, dtype=torch.int64)
        active_len = torch.where(active, progress + take(s["parent_top"]), 0)
        longest = torch.where(take(s["done"]), take(s["top_level"]), active_len).amax(1).to(torch.int64)
        if rows is None:
            return serial, longest
        full = torch.zeros(2, self.num_envs, dtype=torch.int64, device=self.device)
        full[0].index_copy_(0, rows, serial)
        full[1].index_copy_(0, rows, longest)
        return full[0], full[1]

    def _metrics(self, done: torch.Tensor) -> dict[str, torch.Tensor]:
        """Episode metrics of every env's current state (valid where ``done``)."""
        s = self._s
        f64 = torch.float64
        m = self.config.max_subagents
        serial, longest = self._serial_and_longest(done)
        lower = torch.maximum(longest, -torch.div(-serial, m + 1, rounding_mode="floor"))
        t = s["t"]
        tf, serial_f, lower_f = t.to(f64), serial.to(f64), lower.to(f64)
        speedup = torch.where(t > 0, serial_f / tf.clamp(min=1), 1.0)
        ideal = torch.where(lower > 0, serial_f / lower_f.clamp(min=1), 1.0)
        has_room = ideal > 1.0 + 1e-12
        collapse = torch.where(has_room, ((ideal - speedup) / torch.where(has_room, ideal - 1.0, 1.0)).clamp(0.0, 1.0), 0.0)
        # the counters and per-instance integers are read from snapshots (two copies, not one per
        # metric): the autoreset that follows clears and reloads the live ones
        c = dict(zip(self._counter_names, self._counters.clone().unbind(0)))
        c.update(zip(_SCALARS, self._scalars.clone().unbind(0)))
        unfinished = c["n_running"]
        spurious = c["n_failed"] + c["n_wrong"] + c["n_isolated"] + unfinished
        n_sp = c["n_spawned"]
        tok = self.config.tokens
        inp, out = c["input_tokens"], c["output_tokens"]
        return {
            "family_id": c["family_id"],
            "score": self._score,
            "critical_steps": c["t"],
            "serial_steps": serial,
            "lower_bound": lower,
            "speedup": speedup,
            "ideal_speedup": ideal,
            "serial_collapse_index": collapse,
            "spurious_spawn_rate": torch.where(n_sp > 0, spurious.to(f64) / n_sp.clamp(min=1).to(f64), 0.0),
            "makespan_ratio": tf / lower.clamp(min=1).to(f64),
            "task_serial_steps": c["task_serial_steps"],
            "task_lower_bound": c["task_lower_bound"],
            "budget": c["budget"],
            "budget_exhausted": self._by_budget,
            "n_spawned": n_sp,
            "n_subagent_ok": c["n_ok"],
            "n_subagent_failed": c["n_failed"],
            "n_subagent_wrong": c["n_wrong"],
            "n_subagent_isolated": c["n_isolated"],
            "n_subagent_unfinished": unfinished,
            "mean_concurrency": torch.where(t > 0, s["running_ticks"].to(f64) / tf.clamp(min=1), 0.0),
            "peak_concurrency": c["peak"],
            "concurrency_profile": torch.where(t[:, None] > 0, s["concurrency_ticks"].to(f64) / tf.clamp(min=1)[:, None], 0.0),
            "targets_correct": self._tp,
            "targets_wrong": self._fp,
            "targets_missing": self._fn,
            "input_tokens": inp,
            "output_tokens": out,
            "tokens": inp + out,
            "cost_usd": (inp.to(f64) * tok.price_input_per_million + out.to(f64) * tok.price_output_per_million) / 1e6,
            "invalid_actions": c["invalid_actions"],
        }

    def __repr__(self) -> str:
        return (
            f"BatchedSwarmEngine(generator={self.generator!r}, num_envs={self.num_envs}, n_max={self.n_max}, "
            f"device={str(self.device)!r}, bank_size={self.bank_size}, refresh_every={self.refresh_every}, "
            f"config={self.config!r})"
        )
