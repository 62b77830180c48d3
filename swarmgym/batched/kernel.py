"""The batched dynamics: one per-environment step, stage for stage the simulator's, compiled with numba.

This module is the only implementation of the batched dynamics. Each stage is a plain
Python function of one env ``e`` over named state arrays, named after the
:class:`swarmgym.simulator.SwarmSimulator` method it mirrors (``advance`` is ``_advance``,
``return_result`` is ``_return``, ``complete`` is ``_complete``, ``invalidate`` is ``_invalidate``,
then ``spawn``, ``do``, ``wait``, ``verify``, ``waste_tick``, ``answer``, ``check_budget``,
``score``, ``metrics``), so a rule
changed in the simulator is changed here line for line. The stages are
:func:`stage` functions (``numba.extending.register_jitable``): the same source is compiled into

* :func:`cpu_kernels` -- ``step_batch``: a ``numba.prange`` loop over the batch (on-disk
  cache, ``workqueue`` threading layer), and
* :func:`cuda_kernels` -- one CUDA thread per env, one kernel launch per step
  (numba's CUDA target; under ``NUMBA_ENABLE_CUDASIM=1`` its simulator runs it on host
  arrays, which is how the CUDA path is tested without a GPU).

The arrays the stages read are grouped in four named tuples of a few arrays each (shapes with ``N`` envs,
``n`` = ``n_max`` node slots, ``A`` = ``max_attempts``, ``T`` = ``n_tiers``, ``W`` = words of a node bit set,
``m`` = ``max_subagents``, ``B`` bank rows):

* :class:`State` -- per-env dynamic state, the simulator's attributes;
* :class:`Instance` -- per-env copy of the task instance it plays (graph and fates);
* :class:`Bank` -- the instance bank autoresets draw from (see :mod:`.instance_bank`);
* :class:`Output` -- observation, mask, reward, flags and episode metrics written by a step.

Rules (the config's constants and the action layout's offsets) are a tuple of scalars,
:class:`Rules` (a per-tier quantity is :data:`~swarmgym.config.MAX_TIERS` scalars, read by
``tier_step_input(r, t)`` and the like). Sets of nodes (parents, children) are bit sets of ``BITS`` nodes per
int64 word (``W = ceil(n / BITS)`` words), kept below 2**32 so every shift is exact.

Random numbers (the bank row an autoreset draws) come from a counter-based 32-bit hash
computed in int64 without overflow, so Python, numba on CPU, CUDA and the CUDA simulator
draw the same rows: env ``e``'s stream is ``mix32(stream_key, e, k)`` for its ``k``-th draw.
"""

from __future__ import annotations

import os
from collections import namedtuple

import numpy as np

try:
    import numba
except ImportError as exc:  # pragma: no cover - numba is a dependency
    raise ImportError(
        "swarmgym.batched needs the 'numba' package (pip install 'numba>=0.60'): the batched kernel is compiled with it"
    ) from exc

from numba.extending import overload, register_jitable

from swarmgym.config import MAX_TIERS
from swarmgym.layout import (
    ACTIVE,
    BLOCKED,
    COUNT_SCALE,
    DONE,
    GLOBAL_COLUMN,
    KIND_COLUMN0,
    MAX_SUBAGENTS_SCALE,
    NODE_COLUMN,
    READY,
    RESULTS_HALF,
    RUNNING,
    STATUS_COLUMN0,
    TIME_LEFT_HALF,
    TOKENS_HALF,
    UNFINISHED_SCALE,
    WORK_SCALE,
)
from swarmgym.simulator import FAIL, OK, WRONG

# numba's default OpenMP layer shares a runtime with torch and slows both many times over;
# the workqueue layer does not (it must be chosen before the first parallel compile).
if os.environ.get("NUMBA_THREADING_LAYER") is None:
    numba.config.THREADING_LAYER = "workqueue"


def stage(fn):
    """Make ``fn`` (restricted Python over one env) callable from the compiled kernels.

    On every target it is compiled where a kernel calls it (``register_jitable``); on the CPU it is
    also marked ``forceinline`` (LLVM's ``alwaysinline``), so a step is one function: a call
    would copy the :class:`State`, :class:`Instance` and :class:`Rules` tuples (about a hundred
    words) on every stage, which cost a quarter of a step's instructions. The CUDA target is not
    offered the CPU overload: it compiles the generic one, as before, with its own inlining."""
    register_jitable(fn)
    overload(fn, jit_options={"forceinline": True}, target="cpu", strict=False)(lambda *args: fn)
    return fn


#: Nodes per word of a node bit set (words are int64 holding values below 2**32).
BITS = 32
_MASK32 = 0xFFFFFFFF
_BLOCKED, _READY, _ACTIVE, _RUNNING, _DONE = BLOCKED, READY, ACTIVE, RUNNING, DONE
_OK, _FAIL, _WRONG = OK, FAIL, WRONG

# observation columns
_C_STATUS0 = STATUS_COLUMN0
_C_WORK_LEFT = NODE_COLUMN["work_left"]
_C_ATTEMPTS = NODE_COLUMN["attempts"]
_C_UNFINISHED = NODE_COLUMN["unfinished_parents"]
_C_FAILED = NODE_COLUMN["last_attempt_failed"]
_C_ELAPSED = NODE_COLUMN["subagent_elapsed"]
_G_TIME_USED = GLOBAL_COLUMN["time_used"]
_G_TIME_LEFT = GLOBAL_COLUMN["time_left"]
_G_RUNNING = GLOBAL_COLUMN["running_subagents"]
_G_SPAWNS = GLOBAL_COLUMN["spawns_this_turn"]
_G_CAN_SPAWN = GLOBAL_COLUMN["can_spawn"]
_G_TOKENS = GLOBAL_COLUMN["tokens_used"]
_G_NODES_DONE = GLOBAL_COLUMN["nodes_done"]
_G_TARGETS_DONE = GLOBAL_COLUMN["targets_done"]
_G_N_NODES = GLOBAL_COLUMN["n_nodes"]
_G_MAX_SUBAGENTS = GLOBAL_COLUMN["max_subagents"]
_INV_WORK_SCALE = 1.0 / WORK_SCALE
_INV_UNFINISHED_SCALE = 1.0 / UNFINISHED_SCALE
_INV_COUNT_SCALE = 1.0 / COUNT_SCALE
# the columns a progressive episode writes when it reveals a node (the others stay 0: bottom_level, n_children)
_C_PRESENT = NODE_COLUMN["present"]
_C_KIND0 = KIND_COLUMN0
_C_WORK = NODE_COLUMN["work"]
_C_TARGET = NODE_COLUMN["is_target"]
_C_N_PARENTS = NODE_COLUMN["n_parents"]
# the extended observation's columns
_C_BY_SUBAGENT = NODE_COLUMN["by_subagent"]
_C_VERIFIED = NODE_COLUMN["verified"]
_C_ATTEMPT_TIER = NODE_COLUMN["attempt_tier"]
_G_RESULTS_READ = GLOBAL_COLUMN["results_read"]
_G_TIER0_RETURNS = GLOBAL_COLUMN["tier0_returns"]
_G_TIER0_FAIL_RATE = GLOBAL_COLUMN["tier0_fail_rate"]
_G_TIER0_CAUGHT_RATE = GLOBAL_COLUMN["tier0_caught_rate"]
_G_TIER_STRIDE = GLOBAL_COLUMN["tier1_returns"] - GLOBAL_COLUMN["tier0_returns"]
_MAX_TIERS = MAX_TIERS

# ------------------------------------------------------------------ named arrays
# Each block is one array; its named rows (or columns) are the simulator's attributes. A block
# per kind of quantity, not an array per attribute: a compiled stage then passes a few arrays,
# which keeps compile time and call overhead low.

#: ``State.env`` columns, int64 ``[N, len(ENV_FIELDS)]`` (``[N, BASE_ENV_COLUMNS]`` for a base
#: config, see :func:`state_widths`): the simulator's per-episode scalars (``done`` and
#: ``ended_by_budget`` as 0/1), the env's random-stream counter and the bank row it plays
#: (``instance_ref``: >= 0, or -1 for an instance loaded from outside the bank), the sub-agent
#: tiers' accounts and the mechanics' counters.
ENV_FIELDS: tuple[str, ...] = (
    "t",
    "spawns_this_turn",
    "n_running",
    "n_done",
    "n_targets_done",
    "input_tokens",
    "output_tokens",
    "n_spawned",
    "n_ok",
    "n_failed",
    "n_wrong",
    "n_isolated",
    "invalid_actions",
    "running_ticks",
    "peak_concurrency",
    "episode_steps",
    "done",
    "ended_by_budget",
    "rng_draws",
    "instance_ref",
    # per sub-agent tier t, a block of TIER_STRIDE columns: ``<QUANTITY>_TIER0 + t * TIER_STRIDE``
    # (those every clock advance updates first)
    *(
        f"{q}_tier{t}"
        for t in range(MAX_TIERS)
        for q in ("running", "input", "output", "spawned", "returns", "fails", "verified", "caught")
    ),
    # the mechanics of docs/mechanics.md (an extended config's only)
    "n_cancelled",
    "n_verified",
    "n_caught",
    "verify_ticks",
    "n_invalidated",
    "coordination_tokens",
)
(
    T,
    SPAWNS_THIS_TURN,
    N_RUNNING,
    N_DONE,
    N_TARGETS_DONE,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    N_SPAWNED,
    N_OK,
    N_FAILED,
    N_WRONG,
    N_ISOLATED,
    INVALID_ACTIONS,
    RUNNING_TICKS,
    PEAK_CONCURRENCY,
    EPISODE_STEPS,
    IS_DONE,
    ENDED_BY_BUDGET,
    RNG_DRAWS,
    INSTANCE_REF,
) = range(ENV_FIELDS.index("running_tier0"))
RUNNING_TIER0, SPAWNED_TIER0, RETURNS_TIER0, FAILS_TIER0, VERIFIED_TIER0, CAUGHT_TIER0, INPUT_TIER0, OUTPUT_TIER0 = (
    ENV_FIELDS.index(f"{q}_tier0") for q in ("running", "spawned", "returns", "fails", "verified", "caught", "input", "output")
)
TIER_STRIDE = ENV_FIELDS.index("running_tier1") - RUNNING_TIER0
N_CANCELLED, N_VERIFIED, N_CAUGHT, VERIFY_TICKS, N_INVALIDATED, COORDINATION_TOKENS = (
    ENV_FIELDS.index(name) for name in ("n_cancelled", "n_verified", "n_caught", "verify_ticks", "n_invalidated", "coordination_tokens")
)
#: The columns of ``State.env`` a base (not extended) config has: the one tier's accounts are
#: kept, the other tiers' and the mechanics' counters are not (they would all be 0).
BASE_ENV_COLUMNS = RUNNING_TIER0 + TIER_STRIDE

#: ``State.node`` rows, int32 ``[N, len(NODE_FIELDS), n]`` (``[N, BASE_NODE_ROWS, n]`` for a base
#: config): the simulator's per-node arrays (``status`` a code BLOCKED .. DONE, the flags 0/1).
#: The rows from ``revealed`` on are the mechanics' (``docs/mechanics.md``; ``attempt_tier`` -1
#: before any attempt; ``mark`` is :func:`invalidate`'s scratch row, 0 outside it).
NODE_FIELDS: tuple[str, ...] = (
    "status",
    "work_left",
    "attempts",
    "unfinished_parents",
    "path_len",
    "start_time",
    "finish_time",
    "last_failed",
    "correct",
    "overlapped",
    "revealed",
    "extra_work",
    "by_subagent",
    "result_wrong",
    "verified",
    "attempt_tier",
    "mark",
)
(
    STATUS,
    WORK_LEFT,
    ATTEMPTS,
    UNFINISHED_PARENTS,
    PATH_LEN,
    START_TIME,
    FINISH_TIME,
    LAST_FAILED,
    CORRECT,
    OVERLAPPED,
    REVEALED,
    EXTRA_WORK,
    BY_SUBAGENT,
    RESULT_WRONG,
    VERIFIED,
    ATTEMPT_TIER,
    MARK,
) = range(len(NODE_FIELDS))
#: The rows of ``State.node`` a base (not extended) config has: none of the mechanics'.
BASE_NODE_ROWS = REVEALED

#: ``Instance.node`` rows, int32 ``[N, len(INSTANCE_NODE_FIELDS), n]`` (0 on padding slots;
#: ``kind`` indexes :data:`swarmgym.graph.KINDS`).
INSTANCE_NODE_FIELDS: tuple[str, ...] = ("work", "n_parents", "target", "kind")
WORK, N_PARENTS, TARGET, KIND = range(len(INSTANCE_NODE_FIELDS))
#: ``Instance.bits`` rows, int64 ``[N, 2, n, W]``: bit ``p % BITS`` of word ``p // BITS`` of node i's
#: row: p is a parent (``PARENTS``) / a child (``CHILDREN``) of i.
PARENTS, CHILDREN = 0, 1
#: ``Instance.fates`` rows, int32 ``[N, 2, n, A * T]`` (``T`` = ``config.n_tiers``): column ``a * T + t``
#: holds the ticks of attempt ``a`` on node i by a sub-agent of tier t (``DURATION``) and its outcome
#: (``OUTCOME``: OK, FAIL, WRONG); see :func:`fate`.
DURATION, OUTCOME = 0, 1
#: ``Instance.env`` columns, int64 ``[N, len(INSTANCE_ENV_FIELDS)]``.
INSTANCE_ENV_FIELDS: tuple[str, ...] = ("budget", "n_nodes", "n_targets", "task_serial_steps", "task_lower_bound", "family_id")
BUDGET, N_NODES, N_TARGETS, TASK_SERIAL_STEPS, TASK_LOWER_BOUND, FAMILY_ID = range(len(INSTANCE_ENV_FIELDS))

#: Per-env dynamic state: ``env`` int64 ``[N, C]``, ``node`` int32 ``[N, R, n]`` (``C, R`` =
#: :func:`state_widths`), ``concurrency_ticks`` int64 ``[N, m + 1]``.
State = namedtuple("State", ["env", "node", "concurrency_ticks"])


def state_widths(extended: bool) -> tuple[int, int]:
    """``(columns of State.env, rows of State.node)``: all of :data:`ENV_FIELDS` and
    :data:`NODE_FIELDS` for an extended config; for a base one :data:`BASE_ENV_COLUMNS` and
    :data:`BASE_NODE_ROWS`, without the mechanics' (the stages touch them only when
    ``Rules.extended``), so a base config's step moves no more memory than before them."""
    return (len(ENV_FIELDS), len(NODE_FIELDS)) if extended else (BASE_ENV_COLUMNS, BASE_NODE_ROWS)


#: Per-env copy of the task instance it plays: ``node`` int32 ``[N, 4, n]``, ``bits`` int64
#: ``[N, 2, n, W]``, ``fates`` int32 ``[N, 2, n, A * T]``, ``env`` int64 ``[N, 6]``.
Instance = namedtuple("Instance", ["node", "bits", "fates", "env"])
#: The instance bank: :class:`Instance`'s blocks with ``B`` rows, plus each instance's first
#: observation (from the reference env): ``nodes0`` float32 ``[B, n, F]``, ``globals0`` float32
#: ``[B, G]`` (``F``, ``G``: the columns of ``swarmgym.layout.node_features(extended)`` and
#: ``global_features(extended)``), ``mask0`` bool ``[B, n_actions]``,
#: ``adjacency0`` float32 ``[B, n, n]`` (``[1, 1, 1]`` without adjacency).
Bank = namedtuple("Bank", [*Instance._fields, "nodes0", "globals0", "mask0", "adjacency0"])
#: What a step writes: ``nodes``/``final_nodes`` float32 ``[N, n, F]``,
#: ``globals_``/``final_globals`` float32 ``[N, G]``, ``mask``/``final_mask``
#: bool ``[N, n_actions]``, ``adjacency``/``final_adjacency`` float32 ``[N, n, n]`` (``[1, 1, 1]``
#: without adjacency), ``reward`` float64 ``[N]``, ``flags`` bool ``[4, N]`` (rows
#: ``TERMINATED``, ``TRUNCATED``, ``DONE_MASK``, ``BUDGET_EXHAUSTED``), ``metric_int`` int64
#: ``[len(INT_METRICS), N]``, ``metric_float`` float64 ``[len(FLOAT_METRICS), N]``,
#: ``concurrency_profile`` float64 ``[N, m + 1]``.
Output = namedtuple(
    "Output",
    [
        "nodes",
        "globals_",
        "mask",
        "adjacency",
        "final_nodes",
        "final_globals",
        "final_mask",
        "final_adjacency",
        "reward",
        "flags",
        "metric_int",
        "metric_float",
        "concurrency_profile",
    ],
)
TERMINATED, TRUNCATED, DONE_MASK, BUDGET_EXHAUSTED = range(4)

#: The config's constants and the action layout's offsets, as scalars.
Rules = namedtuple(
    "Rules",
    [
        "n_max",
        "do_offset",
        "spawn_offset",
        "wait_action",
        "answer_action",
        "max_subagents",
        "max_spawns_per_turn",
        "max_attempts",
        "spawn_ticks",
        "orchestrator_turn_input",
        "orchestrator_turn_output",
        "handoff_base",
        "handoff_per_parent",
        "result_tokens",
        "price_input_per_million",
        "price_output_per_million",
        "max_episode_steps",  # 0: never truncate
        "with_adjacency",
        "stream_key",  # the random stream's key (see mix32)
        # the mechanics of docs/mechanics.md
        "extended",  # the extended layout: the verify and spawn_t blocks, the extended columns
        "n_actions",
        "verify_offset",
        "spawn_offset_1",  # the spawn block of tier 1 (n_actions when the layout has none)
        "spawn_offset_2",
        "progressive",
        "verification",
        "verify_base_ticks",
        "verify_work_percent",
        "verify_ticks_per_parent",
        "n_tiers",
        *(f"tier_step_input_{t}" for t in range(MAX_TIERS)),  # tokens a running tier-t sub-agent reads per tick
        *(f"tier_step_output_{t}" for t in range(MAX_TIERS)),  # and writes
        *(f"tier_price_scale_{t}" for t in range(MAX_TIERS)),
        "priced_by_tier",  # config.tiers is not empty: cost_usd is the orchestrator's share plus each tier's
        "turn_input_per_result",
        "merge_work_per_subagent_input",
        "fastest_percent",  # SwarmConfig.fastest_percent: the makespan floor's time per unit of work, in percent
        "invalid_answers",  # the invalid-action rule: False, a masked-out action wastes a tick; True, it answers
    ],
)

if MAX_TIERS != 3:  # tier_step_input(r, t) and the like read one of three scalars
    raise ImportError(f"swarmgym.batched.kernel reads 3 sub-agent tiers from Rules; swarmgym.config.MAX_TIERS is {MAX_TIERS}")

#: Integer episode metrics, one row each of ``Output.metric_int`` (``family_id`` indexes family_names).
INT_METRICS: tuple[str, ...] = (
    "family_id",
    "critical_steps",
    "serial_steps",
    "lower_bound",
    "task_serial_steps",
    "task_lower_bound",
    "budget",
    "n_spawned",
    "n_subagent_ok",
    "n_subagent_failed",
    "n_subagent_wrong",
    "n_subagent_isolated",
    "n_subagent_unfinished",
    "peak_concurrency",
    "targets_correct",
    "targets_wrong",
    "targets_missing",
    "input_tokens",
    "output_tokens",
    "tokens",
    "invalid_actions",
    "n_subagent_cancelled",
    "n_verified",
    "n_caught",
    "verify_ticks",
    "n_invalidated",
    "coordination_tokens",
    *(f"spawned_tier{t}" for t in range(MAX_TIERS)),
)
#: Float episode metrics, one row each of ``Output.metric_float``.
FLOAT_METRICS: tuple[str, ...] = (
    "score",
    "speedup",
    "ideal_speedup",
    "serial_collapse_index",
    "spurious_spawn_rate",
    "makespan_ratio",
    "mean_concurrency",
    "cost_usd",
    "verification_rate",
    "verification_yield",
    *(f"cost_usd_tier{t}" for t in range(MAX_TIERS)),
)
(
    _M_FAMILY_ID,
    _M_CRITICAL_STEPS,
    _M_SERIAL_STEPS,
    _M_LOWER_BOUND,
    _M_TASK_SERIAL_STEPS,
    _M_TASK_LOWER_BOUND,
    _M_BUDGET,
    _M_N_SPAWNED,
    _M_N_OK,
    _M_N_FAILED,
    _M_N_WRONG,
    _M_N_ISOLATED,
    _M_N_UNFINISHED,
    _M_PEAK,
    _M_TARGETS_CORRECT,
    _M_TARGETS_WRONG,
    _M_TARGETS_MISSING,
    _M_INPUT_TOKENS,
    _M_OUTPUT_TOKENS,
    _M_TOKENS,
    _M_INVALID,
    _M_N_CANCELLED,
    _M_N_VERIFIED,
    _M_N_CAUGHT,
    _M_VERIFY_TICKS,
    _M_N_INVALIDATED,
    _M_COORDINATION_TOKENS,
) = range(INT_METRICS.index("spawned_tier0"))
_M_SPAWNED_TIER0 = INT_METRICS.index("spawned_tier0")
(
    _M_SCORE,
    _M_SPEEDUP,
    _M_IDEAL,
    _M_COLLAPSE,
    _M_SPURIOUS,
    _M_MAKESPAN,
    _M_MEAN_CONCURRENCY,
    _M_COST,
    _M_VERIFICATION_RATE,
    _M_VERIFICATION_YIELD,
) = range(FLOAT_METRICS.index("cost_usd_tier0"))
_M_COST_TIER0 = FLOAT_METRICS.index("cost_usd_tier0")


# ------------------------------------------------------------------ random stream
@stage
def mul32(x, c):
    """``(x * c) mod 2**32`` for ``0 <= x, c < 2**32``, with no int64 product above 2**48."""
    low = (x * (c & 0xFFFF)) & _MASK32
    high = ((x * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


@stage
def hash32(x):
    """A 32-bit integer hash (lowbias32) of ``0 <= x < 2**32``."""
    x ^= x >> 16
    x = mul32(x, 0x7FEB352D)
    x ^= x >> 15
    x = mul32(x, 0x846CA68B)
    x ^= x >> 16
    return x


@stage
def mix32(key, env, k):
    """The ``k``-th 32-bit draw of env ``env``'s stream under ``key`` (all non-negative)."""
    h = hash32((key ^ hash32(env & _MASK32)) & _MASK32)
    h = hash32(h ^ (k & _MASK32))
    return hash32(h ^ ((k >> 32) & _MASK32))


@stage
def draw_bank_row(s, r, e, bank_size):
    """A bank row for env ``e``, uniform over ``[0, bank_size)`` up to a 2**-10 relative bias."""
    u = mix32(r.stream_key, e, s.env[e, RNG_DRAWS])
    s.env[e, RNG_DRAWS] += 1
    return (u * bank_size) >> 32


# ------------------------------------------------------------------ node sets
@stage
def has_bit(bits, e, which, i, j):
    """Node ``j`` is in node ``i``'s set ``which`` (PARENTS or CHILDREN)."""
    return ((bits[e, which, i, j // BITS] >> (j % BITS)) & 1) == 1


# ------------------------------------------------------------------ sub-agent tiers (Rules holds MAX_TIERS scalars per quantity)
@stage
def fate(k, r, e, which, i, attempt, tier):
    """The ``DURATION`` or ``OUTCOME`` of attempt ``attempt`` on node ``i`` by a sub-agent of tier ``tier``."""
    return k.fates[e, which, i, attempt * r.n_tiers + tier]


@stage
def tier_step_input(r, t):
    """Tokens a running sub-agent of tier ``t`` reads per tick."""
    if t == 0:
        return r.tier_step_input_0
    if t == 1:
        return r.tier_step_input_1
    return r.tier_step_input_2


@stage
def tier_step_output(r, t):
    """Tokens a running sub-agent of tier ``t`` writes per tick."""
    if t == 0:
        return r.tier_step_output_0
    if t == 1:
        return r.tier_step_output_1
    return r.tier_step_output_2


@stage
def tier_price_scale(r, t):
    """What tier ``t``'s tokens cost, relative to the TokenModel's prices."""
    if t == 0:
        return r.tier_price_scale_0
    if t == 1:
        return r.tier_price_scale_1
    return r.tier_price_scale_2


@stage
def spawn_offset(r, t):
    """First action of the block that spawns a sub-agent of tier ``t`` (``n_actions`` when the layout has none)."""
    if t == 0:
        return r.spawn_offset
    if t == 1:
        return r.spawn_offset_1
    return r.spawn_offset_2


@stage
def extra_work(s, r, e, i):
    """Node ``i``'s coordination work (0 unless the config is extended: a base config has no such row)."""
    return s.node[e, EXTRA_WORK, i] if r.extended else 0


# ------------------------------------------------------------------ queries (SwarmSimulator.can_*)
@stage
def can_do(s, k, e, i):
    if s.env[e, IS_DONE] or not 0 <= i < k.env[e, N_NODES]:
        return False
    st = s.node[e, STATUS, i]
    return st == _READY or st == _ACTIVE


@stage
def can_spawn(s, k, r, e, i, tier):
    return (
        s.env[e, IS_DONE] == 0
        and 0 <= i < k.env[e, N_NODES]
        and 0 <= tier < r.n_tiers
        and s.node[e, STATUS, i] == _READY
        and s.node[e, ATTEMPTS, i] < r.max_attempts
        and s.env[e, N_RUNNING] < r.max_subagents
        and s.env[e, SPAWNS_THIS_TURN] < r.max_spawns_per_turn
    )


@stage
def can_wait(s, e):
    return s.env[e, IS_DONE] == 0 and s.env[e, N_RUNNING] > 0


@stage
def can_verify(s, k, r, e, i):
    return (
        r.verification
        and s.env[e, IS_DONE] == 0
        and 0 <= i < k.env[e, N_NODES]
        and s.node[e, STATUS, i] == _DONE
        and s.node[e, BY_SUBAGENT, i] == 1
        and s.node[e, VERIFIED, i] == 0
    )


# ------------------------------------------------------------------ internals (SwarmSimulator._*)
@stage
def complete(s, k, r, e, i, correct):
    """Node ``i`` is done; its output is right iff it and all its parents' outputs are. A child whose
    last parent this was is ready (and revealed), its work fixed: its own plus the coordination work
    of merging its sub-agents' inputs."""
    node = s.node
    node[e, STATUS, i] = _DONE
    node[e, WORK_LEFT, i] = 0
    s.env[e, N_DONE] += 1
    s.env[e, N_TARGETS_DONE] += k.node[e, TARGET, i]
    right = correct
    longest = 0
    n = k.env[e, N_NODES]
    for p in range(n):
        if has_bit(k.bits, e, PARENTS, i, p):
            right = right and node[e, CORRECT, p] == 1
            longest = max(longest, node[e, PATH_LEN, p])
    node[e, CORRECT, i] = right
    node[e, PATH_LEN, i] = k.node[e, WORK, i] + extra_work(s, r, e, i) + longest
    for c in range(n):
        if has_bit(k.bits, e, CHILDREN, i, c):
            node[e, UNFINISHED_PARENTS, c] -= 1
            if node[e, UNFINISHED_PARENTS, c] == 0:
                node[e, STATUS, c] = _READY
                if r.extended:
                    extra = 0
                    if r.merge_work_per_subagent_input > 0 and k.node[e, N_PARENTS, c] >= 2:
                        for p in range(n):
                            if has_bit(k.bits, e, PARENTS, c, p) and node[e, BY_SUBAGENT, p] == 1:
                                extra += r.merge_work_per_subagent_input
                    node[e, EXTRA_WORK, c] = extra
                    node[e, WORK_LEFT, c] = k.node[e, WORK, c] + extra
                    node[e, REVEALED, c] = 1


@stage
def return_result(s, k, r, e, j):
    """The sub-agent on node ``j`` returns its result."""
    tier = s.node[e, ATTEMPT_TIER, j] if r.extended else 0
    s.env[e, N_RUNNING] -= 1
    s.env[e, RUNNING_TIER0 + tier * TIER_STRIDE] -= 1
    s.env[e, RETURNS_TIER0 + tier * TIER_STRIDE] += 1
    s.env[e, OUTPUT_TOKENS] += r.result_tokens  # the sub-agent writes its result
    s.env[e, INPUT_TOKENS] += r.result_tokens  # the orchestrator reads it
    s.env[e, OUTPUT_TIER0 + tier * TIER_STRIDE] += r.result_tokens
    outcome = fate(k, r, e, OUTCOME, j, s.node[e, ATTEMPTS, j] - 1, tier)
    if outcome == _FAIL:
        s.env[e, N_FAILED] += 1
        s.env[e, FAILS_TIER0 + tier * TIER_STRIDE] += 1
        s.node[e, STATUS, j] = _READY
        s.node[e, LAST_FAILED, j] = 1
        return
    if outcome == _WRONG:
        s.env[e, N_WRONG] += 1
    else:
        s.env[e, N_OK] += 1
        if s.node[e, OVERLAPPED, j] == 0:
            s.env[e, N_ISOLATED] += 1
    if r.extended:
        s.node[e, RESULT_WRONG, j] = outcome == _WRONG
        s.node[e, BY_SUBAGENT, j] = 1
        s.node[e, VERIFIED, j] = 0
    complete(s, k, r, e, j, outcome == _OK)


@stage
def advance(s, k, r, e, dt, turn, orchestrator_worked):
    """Run the clock ``dt`` ticks: charge tokens, count concurrency, resolve finishes."""
    env = s.env
    if turn:
        env[e, INPUT_TOKENS] += r.orchestrator_turn_input
        env[e, OUTPUT_TOKENS] += r.orchestrator_turn_output
        if r.turn_input_per_result:
            # the coordination tax: the orchestrator re-reads every result returned so far
            tax = r.turn_input_per_result * (env[e, N_OK] + env[e, N_WRONG] + env[e, N_FAILED])
            env[e, INPUT_TOKENS] += tax
            env[e, COORDINATION_TOKENS] += tax
    n_run = env[e, N_RUNNING]
    n = k.env[e, N_NODES]
    if dt > 0:
        if n_run:
            for t in range(r.n_tiers):  # each tier's sub-agents read and write at its own rate
                running = env[e, RUNNING_TIER0 + t * TIER_STRIDE]
                step_in = running * dt * tier_step_input(r, t)
                step_out = running * dt * tier_step_output(r, t)
                env[e, INPUT_TOKENS] += step_in
                env[e, OUTPUT_TOKENS] += step_out
                env[e, INPUT_TIER0 + t * TIER_STRIDE] += step_in
                env[e, OUTPUT_TIER0 + t * TIER_STRIDE] += step_out
        s.concurrency_ticks[e, n_run] += dt
        env[e, RUNNING_TICKS] += n_run * dt
        if n_run > env[e, PEAK_CONCURRENCY]:
            env[e, PEAK_CONCURRENCY] = n_run
        if orchestrator_worked or n_run >= 2:
            for j in range(n):
                if s.node[e, STATUS, j] == _RUNNING:
                    s.node[e, OVERLAPPED, j] = 1
    env[e, T] += dt
    if n_run:
        # finishes resolve in node order; a return changes no other running node's status
        t = env[e, T]
        for j in range(n):
            if s.node[e, STATUS, j] == _RUNNING and s.node[e, FINISH_TIME, j] <= t:
                return_result(s, k, r, e, j)


@stage
def invalidate(s, k, r, e, i):
    """Node ``i``'s result was caught wrong: every node built on it (its transitive descendants) is
    reset to blocked, the sub-agents on them cancelled; ``i`` is ready again, seen as a failure."""
    node = s.node
    env = s.env
    n = k.env[e, N_NODES]
    # the descendants: MARK 1 = found, children not yet followed; 2 = followed
    node[e, MARK, i] = 1
    more = True
    while more:
        more = False
        for x in range(n):
            if node[e, MARK, x] == 1:
                node[e, MARK, x] = 2
                more = True
                for c in range(n):
                    if node[e, MARK, c] == 0 and has_bit(k.bits, e, CHILDREN, x, c):
                        node[e, MARK, c] = 1
    for d in range(n):
        if d == i or node[e, MARK, d] == 0 or node[e, STATUS, d] == _BLOCKED:
            continue
        st = node[e, STATUS, d]
        if st == _RUNNING:
            env[e, RUNNING_TIER0 + node[e, ATTEMPT_TIER, d] * TIER_STRIDE] -= 1
            env[e, N_CANCELLED] += 1
            env[e, N_RUNNING] -= 1
        elif st == _DONE:
            env[e, N_DONE] -= 1
            env[e, N_TARGETS_DONE] -= k.node[e, TARGET, d]
        env[e, N_INVALIDATED] += 1
        node[e, STATUS, d] = _BLOCKED
        node[e, WORK_LEFT, d] = k.node[e, WORK, d]
        node[e, EXTRA_WORK, d] = 0
        node[e, CORRECT, d] = 0
        node[e, PATH_LEN, d] = 0
        node[e, BY_SUBAGENT, d] = 0
        node[e, RESULT_WRONG, d] = 0
        node[e, VERIFIED, d] = 0
        node[e, LAST_FAILED, d] = 0
        node[e, OVERLAPPED, d] = 0
    node[e, STATUS, i] = _READY
    node[e, WORK_LEFT, i] = k.node[e, WORK, i] + node[e, EXTRA_WORK, i]
    node[e, CORRECT, i] = 0
    node[e, PATH_LEN, i] = 0
    node[e, BY_SUBAGENT, i] = 0
    node[e, RESULT_WRONG, i] = 0
    node[e, VERIFIED, i] = 0
    node[e, LAST_FAILED, i] = 1
    env[e, N_DONE] -= 1
    env[e, N_TARGETS_DONE] -= k.node[e, TARGET, i]
    for d in range(n):
        if d != i and node[e, MARK, d] != 0:
            unfinished = 0
            for p in range(n):
                if has_bit(k.bits, e, PARENTS, d, p) and node[e, STATUS, p] != _DONE:
                    unfinished += 1
            node[e, UNFINISHED_PARENTS, d] = unfinished
    for d in range(n):
        node[e, MARK, d] = 0


@stage
def check_budget(s, k, e):
    if s.env[e, T] >= k.env[e, BUDGET] and s.env[e, IS_DONE] == 0:
        s.env[e, IS_DONE] = 1
        s.env[e, ENDED_BY_BUDGET] = 1


@stage
def end_turn(s, k, e):
    s.env[e, SPAWNS_THIS_TURN] = 0
    check_budget(s, k, e)


# ------------------------------------------------------------------ actions (SwarmSimulator.*)
@stage
def do(s, k, r, e, i):
    """The orchestrator works one tick on ready node ``i``; ends the turn."""
    s.node[e, STATUS, i] = _ACTIVE
    s.node[e, WORK_LEFT, i] -= 1
    advance(s, k, r, e, 1, True, True)
    if s.node[e, WORK_LEFT, i] == 0:
        if r.extended:
            s.node[e, BY_SUBAGENT, i] = 0
            s.node[e, RESULT_WRONG, i] = 0
        complete(s, k, r, e, i, True)
    end_turn(s, k, e)


@stage
def spawn(s, k, r, e, i, tier):
    """Hand ready node ``i`` to a new sub-agent of tier ``tier``; the turn goes on."""
    handoff = r.handoff_base + r.handoff_per_parent * k.node[e, N_PARENTS, i]
    s.env[e, OUTPUT_TOKENS] += handoff  # the orchestrator writes the hand-off
    s.env[e, INPUT_TOKENS] += handoff  # the sub-agent reads it
    s.env[e, INPUT_TIER0 + tier * TIER_STRIDE] += handoff
    s.env[e, SPAWNS_THIS_TURN] += 1
    if r.spawn_ticks:
        advance(s, k, r, e, min(r.spawn_ticks, k.env[e, BUDGET] - s.env[e, T]), False, False)
        check_budget(s, k, e)
        if s.env[e, IS_DONE]:
            return
    attempt = s.node[e, ATTEMPTS, i]
    s.node[e, ATTEMPTS, i] += 1
    s.env[e, N_SPAWNED] += 1
    s.node[e, STATUS, i] = _RUNNING
    s.node[e, LAST_FAILED, i] = 0
    s.node[e, START_TIME, i] = s.env[e, T]
    s.node[e, FINISH_TIME, i] = s.env[e, T] + fate(k, r, e, DURATION, i, attempt, tier) + extra_work(s, r, e, i)
    s.node[e, OVERLAPPED, i] = 0
    if r.extended:
        s.node[e, ATTEMPT_TIER, i] = tier
    s.env[e, N_RUNNING] += 1
    s.env[e, RUNNING_TIER0 + tier * TIER_STRIDE] += 1
    s.env[e, SPAWNED_TIER0 + tier * TIER_STRIDE] += 1


@stage
def wait(s, k, r, e):
    """Run the clock to the next sub-agent finish (or the budget); ends the turn."""
    next_finish = -1
    for j in range(k.env[e, N_NODES]):
        if s.node[e, STATUS, j] == _RUNNING and (next_finish < 0 or s.node[e, FINISH_TIME, j] < next_finish):
            next_finish = s.node[e, FINISH_TIME, j]
    advance(s, k, r, e, min(next_finish, k.env[e, BUDGET]) - s.env[e, T], True, False)
    end_turn(s, k, e)


@stage
def verify(s, k, r, e, i):
    """The orchestrator re-checks the result a sub-agent returned on node ``i`` (one timed turn of
    its own work); a wrong result it catches is invalidated with everything built on it."""
    n_parents = k.node[e, N_PARENTS, i]
    ticks = r.verify_base_ticks + k.node[e, WORK, i] * r.verify_work_percent // 100 + r.verify_ticks_per_parent * n_parents
    dt = min(ticks, k.env[e, BUDGET] - s.env[e, T])
    s.env[e, INPUT_TOKENS] += r.result_tokens + r.handoff_per_parent * n_parents  # it re-reads the result with its context
    advance(s, k, r, e, dt, True, True)
    s.env[e, VERIFY_TICKS] += dt
    if dt == ticks and s.node[e, STATUS, i] == _DONE and s.node[e, BY_SUBAGENT, i] == 1:
        tier = s.node[e, ATTEMPT_TIER, i]
        s.env[e, N_VERIFIED] += 1
        s.env[e, VERIFIED_TIER0 + tier * TIER_STRIDE] += 1
        if s.node[e, RESULT_WRONG, i]:
            s.env[e, N_CAUGHT] += 1
            s.env[e, CAUGHT_TIER0 + tier * TIER_STRIDE] += 1
            invalidate(s, k, r, e, i)
        else:
            s.node[e, VERIFIED, i] = 1
    end_turn(s, k, e)


@stage
def waste_tick(s, k, r, e):
    """An invalid action: the turn is spent and one tick passes."""
    s.env[e, INVALID_ACTIONS] += 1
    advance(s, k, r, e, 1, True, False)
    end_turn(s, k, e)


@stage
def answer(s, e):
    """Submit the current state; the episode ends at the current tick."""
    s.env[e, IS_DONE] = 1


@stage
def apply_action(s, k, r, e, a):
    """One env step's action, as SwarmEnv.step applies it (an invalid action wastes the turn, or answers: ``r.invalid_answers``)."""
    invalid = False
    if r.do_offset <= a < r.spawn_offset:
        i = a - r.do_offset
        if can_do(s, k, e, i):
            do(s, k, r, e, i)
        else:
            invalid = True
    elif r.spawn_offset <= a < r.wait_action:
        i = a - r.spawn_offset
        if can_spawn(s, k, r, e, i, 0):
            spawn(s, k, r, e, i, 0)
        else:
            invalid = True
    elif a == r.wait_action:
        if can_wait(s, e):
            wait(s, k, r, e)
        else:
            invalid = True
    elif a == r.answer_action:
        answer(s, e)
    elif r.extended and r.verify_offset <= a < r.verify_offset + r.n_max:
        i = a - r.verify_offset
        if can_verify(s, k, r, e, i):
            verify(s, k, r, e, i)
        else:
            invalid = True
    elif r.extended and a < r.n_actions:  # the spawn block of a further tier
        tier = 1
        while not spawn_offset(r, tier) <= a < spawn_offset(r, tier) + r.n_max:
            tier += 1
        i = a - spawn_offset(r, tier)
        if can_spawn(s, k, r, e, i, tier):
            spawn(s, k, r, e, i, tier)
        else:
            invalid = True
    else:  # outside the action space (the host rejects it on CPU; on CUDA it is a wasted turn)
        invalid = True
    if invalid:
        if r.invalid_answers:  # SwarmEnv's invalid_action="answer"
            s.env[e, INVALID_ACTIONS] += 1
            answer(s, e)
        else:  # invalid_action="waste_tick"
            waste_tick(s, k, r, e)


# ------------------------------------------------------------------ scoring (SwarmSimulator.score / metrics)
@stage
def target_counts(s, k, e):
    """``(right, wrong, missing)`` targets."""
    tp = 0
    fp = 0
    fn = 0
    for i in range(k.env[e, N_NODES]):
        if k.node[e, TARGET, i]:
            if s.node[e, STATUS, i] == _DONE:
                if s.node[e, CORRECT, i]:
                    tp += 1
                else:
                    fp += 1
            else:
                fn += 1
    return tp, fp, fn


@stage
def score(s, k, e):
    """F1 over targets: a right output is a true positive, a wrong one a false positive, a missing one a false negative."""
    tp, fp, fn = target_counts(s, k, e)
    return 2.0 * tp / (2 * tp + fp + fn)


@stage
def tier_cost(s, r, e, t):
    """The price of tier ``t``'s sub-agent tokens, its price scale applied."""
    usd = (
        s.env[e, INPUT_TIER0 + t * TIER_STRIDE] * r.price_input_per_million
        + s.env[e, OUTPUT_TIER0 + t * TIER_STRIDE] * r.price_output_per_million
    ) / 1e6
    return tier_price_scale(r, t) * usd


@stage
def metrics(s, k, r, e, out):
    """Episode metrics of env ``e`` into ``out``'s metric rows (the simulator's ``metrics()``)."""
    m = r.max_subagents
    n = k.env[e, N_NODES]
    node = s.node
    serial = 0
    longest = 0
    for i in range(n):
        serial += k.node[e, WORK, i] + extra_work(s, r, e, i) - node[e, WORK_LEFT, i]
        if node[e, STATUS, i] == _DONE:
            longest = max(longest, node[e, PATH_LEN, i])
    for i in range(n):
        if node[e, STATUS, i] == _ACTIVE:
            above = 0
            for p in range(n):
                if has_bit(k.bits, e, PARENTS, i, p):
                    above = max(above, node[e, PATH_LEN, p])
            longest = max(longest, k.node[e, WORK, i] + extra_work(s, r, e, i) - node[e, WORK_LEFT, i] + above)
    p = r.fastest_percent  # a tier faster than the orchestrator lowers the floor
    lower = max(-(-longest * p // 100), -(-serial * p // (100 * (m + 1))))
    env = s.env
    t = env[e, T]
    speedup = serial / t if t > 0 else 1.0
    ideal = serial / lower if lower > 0 else 1.0
    collapse = min(1.0, max(0.0, (ideal - speedup) / (ideal - 1.0))) if ideal > 1.0 + 1e-12 else 0.0
    unfinished = env[e, N_RUNNING]
    cancelled = env[e, N_CANCELLED] if r.extended else 0  # a base config has no such column
    spurious = env[e, N_FAILED] + env[e, N_WRONG] + env[e, N_ISOLATED] + unfinished + cancelled
    tp, fp, fn = target_counts(s, k, e)
    mi = out.metric_int
    mf = out.metric_float
    mi[_M_FAMILY_ID, e] = k.env[e, FAMILY_ID]
    mi[_M_CRITICAL_STEPS, e] = t
    mi[_M_SERIAL_STEPS, e] = serial
    mi[_M_LOWER_BOUND, e] = lower
    mi[_M_TASK_SERIAL_STEPS, e] = k.env[e, TASK_SERIAL_STEPS]
    mi[_M_TASK_LOWER_BOUND, e] = k.env[e, TASK_LOWER_BOUND]
    mi[_M_BUDGET, e] = k.env[e, BUDGET]
    mi[_M_N_SPAWNED, e] = env[e, N_SPAWNED]
    mi[_M_N_OK, e] = env[e, N_OK]
    mi[_M_N_FAILED, e] = env[e, N_FAILED]
    mi[_M_N_WRONG, e] = env[e, N_WRONG]
    mi[_M_N_ISOLATED, e] = env[e, N_ISOLATED]
    mi[_M_N_UNFINISHED, e] = unfinished
    mi[_M_PEAK, e] = env[e, PEAK_CONCURRENCY]
    mi[_M_TARGETS_CORRECT, e] = tp
    mi[_M_TARGETS_WRONG, e] = fp
    mi[_M_TARGETS_MISSING, e] = fn
    mi[_M_INPUT_TOKENS, e] = env[e, INPUT_TOKENS]
    mi[_M_OUTPUT_TOKENS, e] = env[e, OUTPUT_TOKENS]
    mi[_M_TOKENS, e] = env[e, INPUT_TOKENS] + env[e, OUTPUT_TOKENS]
    mi[_M_INVALID, e] = env[e, INVALID_ACTIONS]
    mi[_M_SPAWNED_TIER0, e] = env[e, SPAWNED_TIER0]
    mf[_M_COST_TIER0, e] = tier_cost(s, r, e, 0)
    if r.extended:  # the mechanics' metrics; a base config only has 0 for them: their rows are left as allocated
        mi[_M_N_CANCELLED, e] = cancelled
        mi[_M_N_VERIFIED, e] = env[e, N_VERIFIED]
        mi[_M_N_CAUGHT, e] = env[e, N_CAUGHT]
        mi[_M_VERIFY_TICKS, e] = env[e, VERIFY_TICKS]
        mi[_M_N_INVALIDATED, e] = env[e, N_INVALIDATED]
        mi[_M_COORDINATION_TOKENS, e] = env[e, COORDINATION_TOKENS]
        for q in range(1, _MAX_TIERS):
            mi[_M_SPAWNED_TIER0 + q, e] = env[e, SPAWNED_TIER0 + q * TIER_STRIDE] if q < r.n_tiers else 0
            mf[_M_COST_TIER0 + q, e] = tier_cost(s, r, e, q) if q < r.n_tiers else 0.0
        results = env[e, N_OK] + env[e, N_WRONG]
        verified = env[e, N_VERIFIED]
        mf[_M_VERIFICATION_RATE, e] = verified / results if results else 0.0
        mf[_M_VERIFICATION_YIELD, e] = env[e, N_CAUGHT] / verified if verified else 0.0
    mf[_M_SCORE, e] = 2.0 * tp / (2 * tp + fp + fn)
    mf[_M_SPEEDUP, e] = speedup
    mf[_M_IDEAL, e] = ideal
    mf[_M_COLLAPSE, e] = collapse
    mf[_M_SPURIOUS, e] = spurious / env[e, N_SPAWNED] if env[e, N_SPAWNED] else 0.0
    mf[_M_MAKESPAN, e] = t / max(lower, 1)
    mf[_M_MEAN_CONCURRENCY, e] = env[e, RUNNING_TICKS] / t if t > 0 else 0.0
    if r.priced_by_tier:
        # the orchestrator's tokens at the TokenModel's prices, then each tier's at its own
        tier_in = 0
        tier_out = 0
        for q in range(r.n_tiers):
            tier_in += env[e, INPUT_TIER0 + q * TIER_STRIDE]
            tier_out += env[e, OUTPUT_TIER0 + q * TIER_STRIDE]
        cost = (
            (env[e, INPUT_TOKENS] - tier_in) * r.price_input_per_million + (env[e, OUTPUT_TOKENS] - tier_out) * r.price_output_per_million
        ) / 1e6
        for q in range(r.n_tiers):
            cost += tier_cost(s, r, e, q)
        mf[_M_COST, e] = cost
    else:
        mf[_M_COST, e] = (env[e, INPUT_TOKENS] * r.price_input_per_million + env[e, OUTPUT_TOKENS] * r.price_output_per_million) / 1e6
    out.flags[BUDGET_EXHAUSTED, e] = env[e, ENDED_BY_BUDGET] == 1
    for q in range(m + 1):
        out.concurrency_profile[e, q] = s.concurrency_ticks[e, q] / t if t > 0 else 0.0


# ------------------------------------------------------------------ observation (SwarmEnv._observation / action_masks)
@stage
def encode(s, k, r, e, nodes, globals_, mask):
    """Write env ``e``'s dynamic node columns, globals and action mask into ``nodes[e]``,
    ``globals_[e]``, ``mask[e]`` (the static node columns are written when the episode starts).
    A finished episode's mask allows exactly ``answer`` (ignored; the episode is over).
    An extended config's parts are written after it by :func:`encode_extended`."""
    n = k.env[e, N_NODES]
    env = s.env
    node = s.node
    t = env[e, T]
    done = env[e, IS_DONE] == 1
    m = r.max_subagents
    n_run = env[e, N_RUNNING]
    spawn_open = (not done) and n_run < m and env[e, SPAWNS_THIS_TURN] < r.max_spawns_per_turn
    inv_attempts = 1.0 / r.max_attempts
    for i in range(n):
        st = node[e, STATUS, i]
        for q in range(5):
            nodes[e, i, _C_STATUS0 + q] = 1.0 if st == q else 0.0
        nodes[e, i, _C_WORK_LEFT] = min(node[e, WORK_LEFT, i] * _INV_WORK_SCALE, 1.0)
        nodes[e, i, _C_ATTEMPTS] = node[e, ATTEMPTS, i] * inv_attempts
        nodes[e, i, _C_UNFINISHED] = min(node[e, UNFINISHED_PARENTS, i] * _INV_UNFINISHED_SCALE, 1.0)
        nodes[e, i, _C_FAILED] = node[e, LAST_FAILED, i]
        if st == _RUNNING:
            nodes[e, i, _C_ELAPSED] = min(1.0, (t - node[e, START_TIME, i]) * (1.0 / k.node[e, WORK, i]))
        else:
            nodes[e, i, _C_ELAPSED] = 0.0
        mask[e, r.do_offset + i] = (not done) and (st == _READY or st == _ACTIVE)
        mask[e, r.spawn_offset + i] = spawn_open and st == _READY and node[e, ATTEMPTS, i] < r.max_attempts
    left = k.env[e, BUDGET] - t
    tokens = env[e, INPUT_TOKENS] + env[e, OUTPUT_TOKENS]
    globals_[e, _G_TIME_USED] = t / k.env[e, BUDGET]
    globals_[e, _G_TIME_LEFT] = left / (left + TIME_LEFT_HALF)
    globals_[e, _G_RUNNING] = n_run / m if m else 0.0
    globals_[e, _G_SPAWNS] = env[e, SPAWNS_THIS_TURN] / r.max_spawns_per_turn
    globals_[e, _G_CAN_SPAWN] = 1.0 if spawn_open else 0.0
    globals_[e, _G_TOKENS] = tokens / (tokens + TOKENS_HALF)
    globals_[e, _G_NODES_DONE] = env[e, N_DONE] / n
    globals_[e, _G_TARGETS_DONE] = env[e, N_TARGETS_DONE] / k.env[e, N_TARGETS]
    globals_[e, _G_N_NODES] = n / r.n_max
    globals_[e, _G_MAX_SUBAGENTS] = m / MAX_SUBAGENTS_SCALE
    mask[e, r.wait_action] = (not done) and n_run > 0
    mask[e, r.answer_action] = True


@stage
def encode_extended(s, k, r, e, nodes, globals_, mask):
    """The extended layout's part of :func:`encode`: the verify and further spawn blocks of the mask,
    the extended node columns and globals and, in a progressive episode, what is hidden: a hidden
    node's row all zero, a revealed node's static columns (``bottom_level`` and ``n_children`` 0),
    ``n_nodes`` and ``nodes_done`` over the revealed nodes."""
    n = k.env[e, N_NODES]
    env = s.env
    node = s.node
    done = env[e, IS_DONE] == 1
    spawn_open = (not done) and env[e, N_RUNNING] < r.max_subagents and env[e, SPAWNS_THIS_TURN] < r.max_spawns_per_turn
    n_revealed = 0
    for i in range(n):
        st = node[e, STATUS, i]
        spawnable = spawn_open and st == _READY and node[e, ATTEMPTS, i] < r.max_attempts
        for q in range(1, _MAX_TIERS):
            mask[e, spawn_offset(r, q) + i] = spawnable and q < r.n_tiers
        mask[e, r.verify_offset + i] = (
            r.verification and (not done) and st == _DONE and node[e, BY_SUBAGENT, i] == 1 and node[e, VERIFIED, i] == 0
        )
        if r.progressive and node[e, REVEALED, i] == 0:
            for c in range(nodes.shape[2]):
                nodes[e, i, c] = 0.0
            continue
        n_revealed += 1
        if r.progressive:
            nodes[e, i, _C_PRESENT] = 1.0
            kind = k.node[e, KIND, i]
            for q in range(4):
                nodes[e, i, _C_KIND0 + q] = 1.0 if kind == q else 0.0
            nodes[e, i, _C_WORK] = min(k.node[e, WORK, i] * _INV_WORK_SCALE, 1.0)
            nodes[e, i, _C_TARGET] = k.node[e, TARGET, i]
            nodes[e, i, _C_N_PARENTS] = min(k.node[e, N_PARENTS, i] * _INV_COUNT_SCALE, 1.0)
        nodes[e, i, _C_BY_SUBAGENT] = 1.0 if st == _DONE and node[e, BY_SUBAGENT, i] == 1 else 0.0
        nodes[e, i, _C_VERIFIED] = node[e, VERIFIED, i]
        nodes[e, i, _C_ATTEMPT_TIER] = (node[e, ATTEMPT_TIER, i] + 1) / _MAX_TIERS
    if r.progressive:  # what is known of the graph: its revealed nodes
        globals_[e, _G_NODES_DONE] = env[e, N_DONE] / n_revealed
        globals_[e, _G_N_NODES] = n_revealed / r.n_max
    results = env[e, N_OK] + env[e, N_WRONG] + env[e, N_FAILED]
    globals_[e, _G_RESULTS_READ] = results / (results + RESULTS_HALF)
    for q in range(_MAX_TIERS):
        col = q * _G_TIER_STRIDE
        returns = env[e, RETURNS_TIER0 + q * TIER_STRIDE] if q < r.n_tiers else 0
        verified = env[e, VERIFIED_TIER0 + q * TIER_STRIDE] if q < r.n_tiers else 0
        globals_[e, _G_TIER0_RETURNS + col] = returns / (returns + RESULTS_HALF)
        globals_[e, _G_TIER0_FAIL_RATE + col] = env[e, FAILS_TIER0 + q * TIER_STRIDE] / returns if returns else 0.0
        globals_[e, _G_TIER0_CAUGHT_RATE + col] = env[e, CAUGHT_TIER0 + q * TIER_STRIDE] / verified if verified else 0.0


@stage
def encode_adjacency(s, k, e, adjacency):
    """A progressive episode's adjacency: the parent rows of its revealed nodes (hidden rows and
    columns stay zero: a hidden node's children are hidden too)."""
    n = k.env[e, N_NODES]
    for i in range(n):
        if s.node[e, REVEALED, i] == 1:
            for p in range(n):
                adjacency[e, i, p] = 1.0 if has_bit(k.bits, e, PARENTS, i, p) else 0.0


@stage
def copy_observation(src_nodes, src_globals, src_mask, src_row, dst_nodes, dst_globals, dst_mask, dst_row, n_rows):
    """Row ``src_row`` of one set of observation buffers into row ``dst_row`` of another (of the
    node rows, the first ``n_rows``)."""
    for i in range(n_rows):
        for c in range(src_nodes.shape[2]):
            dst_nodes[dst_row, i, c] = src_nodes[src_row, i, c]
    for c in range(src_globals.shape[1]):
        dst_globals[dst_row, c] = src_globals[src_row, c]
    for c in range(src_mask.shape[1]):
        dst_mask[dst_row, c] = src_mask[src_row, c]


@stage
def copy_matrix(src, src_row, dst, dst_row, n_rows):
    """``dst[dst_row, :n_rows, :n_rows] = src[src_row, :n_rows, :n_rows]`` for ``[rows, n, n]`` arrays."""
    for i in range(n_rows):
        for j in range(n_rows):
            dst[dst_row, i, j] = src[src_row, i, j]


# ------------------------------------------------------------------ episode start (SwarmSimulator.__init__)
@stage
def load_instance(s, k, r, out, bank, e, row, n_rows):
    """Env ``e`` starts an episode on bank row ``row``: its instance copied, its state cleared,
    its first observation (the bank's) written, for node slots ``[0, n_rows)``. ``n_rows`` is
    ``n_max`` for a fresh start; an autoreset passes the larger of the two episodes' node counts:
    the slots above it hold what every instance has in a slot without a node (written by a
    fresh start, never touched by a step), so they need no copy."""
    for f in range(k.node.shape[1]):
        for i in range(n_rows):
            k.node[e, f, i] = bank.node[row, f, i]
    for f in range(2):
        for i in range(n_rows):
            for w in range(k.bits.shape[3]):
                k.bits[e, f, i, w] = bank.bits[row, f, i, w]
            for a in range(k.fates.shape[3]):
                k.fates[e, f, i, a] = bank.fates[row, f, i, a]
    for f in range(k.env.shape[1]):
        k.env[e, f] = bank.env[row, f]
    for f in range(s.node.shape[1]):
        for i in range(n_rows):
            s.node[e, f, i] = 0
    for i in range(n_rows):
        s.node[e, STATUS, i] = _READY if bank.node[row, N_PARENTS, i] == 0 else _BLOCKED
        s.node[e, WORK_LEFT, i] = bank.node[row, WORK, i]
        s.node[e, UNFINISHED_PARENTS, i] = bank.node[row, N_PARENTS, i]
    if r.extended:
        for i in range(n_rows):
            s.node[e, REVEALED, i] = 1 if (not r.progressive) or bank.node[row, N_PARENTS, i] == 0 else 0
            s.node[e, ATTEMPT_TIER, i] = -1
    for f in range(RNG_DRAWS):
        s.env[e, f] = 0
    for f in range(INSTANCE_REF + 1, s.env.shape[1]):
        s.env[e, f] = 0
    for q in range(s.concurrency_ticks.shape[1]):
        s.concurrency_ticks[e, q] = 0
    copy_observation(bank.nodes0, bank.globals0, bank.mask0, row, out.nodes, out.globals_, out.mask, e, n_rows)
    if r.with_adjacency:
        copy_matrix(bank.adjacency0, row, out.adjacency, e, n_rows)


# ------------------------------------------------------------------ one env step
@stage
def step_env(s, k, r, out, bank, e, a, write_final):
    """Env ``e`` takes action ``a``: dynamics, reward, termination, truncation, metrics and,
    when its episode ends, its final observation (``write_final``) and an autoreset."""
    apply_action(s, k, r, e, a)
    s.env[e, EPISODE_STEPS] += 1
    terminated = s.env[e, IS_DONE] == 1
    truncated = (not terminated) and r.max_episode_steps > 0 and s.env[e, EPISODE_STEPS] >= r.max_episode_steps
    out.flags[TERMINATED, e] = terminated
    out.flags[TRUNCATED, e] = truncated
    out.flags[DONE_MASK, e] = terminated or truncated
    out.reward[e] = score(s, k, e) if terminated else 0.0
    if terminated or truncated:
        metrics(s, k, r, e, out)
        if write_final:
            # the static columns (and padding) from the episode's observation, then its final state
            copy_observation(out.nodes, out.globals_, out.mask, e, out.final_nodes, out.final_globals, out.final_mask, e, r.n_max)
            encode(s, k, r, e, out.final_nodes, out.final_globals, out.final_mask)
            if r.extended:
                encode_extended(s, k, r, e, out.final_nodes, out.final_globals, out.final_mask)
            if r.with_adjacency:
                copy_matrix(out.adjacency, e, out.final_adjacency, e, r.n_max)
                if r.progressive:
                    encode_adjacency(s, k, e, out.final_adjacency)
        row = draw_bank_row(s, r, e, bank.env.shape[0])
        s.env[e, INSTANCE_REF] = row
        load_instance(s, k, r, out, bank, e, row, max(k.env[e, N_NODES], bank.env[row, N_NODES]))
    else:
        encode(s, k, r, e, out.nodes, out.globals_, out.mask)
        if r.extended:
            encode_extended(s, k, r, e, out.nodes, out.globals_, out.mask)
        if r.progressive and r.with_adjacency:
            encode_adjacency(s, k, e, out.adjacency)


@stage
def start_env(s, k, r, out, bank, e, row):
    """Env ``e`` starts on bank row ``row`` (``-1``: a row drawn from its stream; ``instance_ref``
    records it, else -1: the caller knows which instance the row is)."""
    if row < 0:
        row = draw_bank_row(s, r, e, bank.env.shape[0])
        s.env[e, INSTANCE_REF] = row
    else:
        s.env[e, INSTANCE_REF] = -1
    load_instance(s, k, r, out, bank, e, row, r.n_max)


@stage
def random_valid_action(mask, e, key, draw):
    """A uniform draw among env ``e``'s valid actions (``mix32(key, e, draw)``; 0 if none is valid)."""
    count = 0
    for a in range(mask.shape[1]):
        count += mask[e, a]
    if count == 0:
        return 0
    pick = (mix32(key, e, draw) * count) >> 32
    for a in range(mask.shape[1]):
        if mask[e, a]:
            if pick == 0:
                return a
            pick -= 1
    return 0


# ------------------------------------------------------------------ compiled kernels (CPU)
@numba.njit(parallel=True, cache=True)
def cpu_random_actions(mask, key, draw, actions):
    """``actions[e]``: a uniform draw among env ``e``'s valid actions, for every env."""
    for j in numba.prange(mask.shape[0]):
        e = np.int64(j)
        actions[e] = random_valid_action(mask, e, key, draw)


@numba.njit(parallel=True, cache=True)
def cpu_step_batch(actions, s, k, r, out, bank, write_final):
    """Env ``e`` takes action ``actions[e]``, for every env (see :func:`step_env`)."""
    for j in numba.prange(actions.shape[0]):
        e = np.int64(j)  # prange indices may be unsigned; mixed with signed ones they would become floats
        step_env(s, k, r, out, bank, e, actions[e], write_final)


@numba.njit(parallel=True, cache=True)
def cpu_start_batch(env_ids, rows, s, k, r, out, bank):
    """Env ``env_ids[j]`` starts on bank row ``rows[j]`` (see :func:`start_env`)."""
    for j in numba.prange(env_ids.shape[0]):
        start_env(s, k, r, out, bank, env_ids[j], rows[j])


@numba.njit(parallel=True, cache=True)
def cpu_encode_batch(s, k, r, out):
    """Re-encode every env's observation and mask (and a progressive episode's adjacency) from its state."""
    for j in numba.prange(s.env.shape[0]):
        e = np.int64(j)
        encode(s, k, r, e, out.nodes, out.globals_, out.mask)
        if r.extended:
            encode_extended(s, k, r, e, out.nodes, out.globals_, out.mask)
        if r.progressive and r.with_adjacency:
            encode_adjacency(s, k, e, out.adjacency)


def cpu_kernels():
    """``(step_batch, start_batch, encode_batch, random_actions)`` for the CPU (parallel over the batch; cached on disk)."""
    return cpu_step_batch, cpu_start_batch, cpu_encode_batch, cpu_random_actions


# ------------------------------------------------------------------ compiled kernels (CUDA)
def cuda_kernels():
    """``(step_batch, start_batch, encode_batch, random_actions)`` for CUDA, one thread per env
    (or per listed env), with the CPU kernels' arguments; launched as ``kernel[blocks, threads](...)``
    (defined in :mod:`swarmgym.batched.cuda_kernels`, imported on first use)."""
    from swarmgym.batched import cuda_kernels as ck

    return ck.step_batch, ck.start_batch, ck.encode_batch, ck.random_actions


def stream_key(seed: int) -> int:
    """The 32-bit key of the random stream seeded with ``seed`` (a non-negative integer)."""
    key = 0
    seed = int(seed)
    while True:
        key = hash32(key ^ (seed & _MASK32))
        seed >>= 32
        if not seed:
            return key
