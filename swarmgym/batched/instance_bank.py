"""A bank of pre-generated task instances, padded into tensors for the batched engine.

The batched engine does not generate graphs on the hot path. Instances are drawn
with the reference generators and :func:`swarmgym.simulator.draw_fates` (numpy,
seeded), exactly as :class:`swarmgym.SwarmEnv` draws them, and packed here into
fixed-size tensors. An autoreset picks a bank row uniformly at random (on the
engine's device) and copies it into the finished env's state.

Shapes (``B`` bank rows, ``n`` = ``n_max`` node slots, ``A`` = ``config.max_attempts``,
``W`` = words of the parent bit sets). Padding node slots are absent: ``present``
is False, ``work`` 0, no parents, no fates.

=====================  =================  ================================================
field                  shape, dtype       meaning
=====================  =================  ================================================
``work``               [B, n] int32       agent-steps of each node
``handoff``            [B, n] int64       hand-off tokens of a spawn on the node
``children``           [B, n+1, n] uint8  ``children[j, i] = 1`` iff node i is a child of node j
                                          (row n is all zero: "no node")
``targets``            [B, n] bool        scored nodes
``top_level``          [B, n] int32       longest work-weighted path ending at the node
                                          (what the reference's ``path_len`` becomes at completion)
``parent_top``         [B, n] int32       max ``top_level`` over the node's parents (0 for roots)
``fate_duration``      [B, n, A] int32    ticks of each sub-agent attempt
``fate_fail``          [B, n, A] bool     the attempt fails
``fate_wrong``         [B, n, A] bool     the attempt returns a silently wrong result
``n_parents``          [B, n] int32       parents of each node
``flags0``             [B, 5, n] bool     status at the start (blocked, ready, active,
                                          running, done): roots ready, others blocked
``nodes0``             [B, n, 20] f32     first observation's node features (the static
                                          columns stay valid all episode)
``globals0``           [B, 10] f32        first observation's global features
``mask0``              [B, 2n+2] bool     first action mask
``adjacency``          [B, n, n] f32      parent adjacency (only with ``with_adjacency``)
``budget``, ...        [B] int            budget, n_nodes, n_targets, task_serial_steps,
                                          task_lower_bound, family_id
=====================  =================  ================================================

The initial observation and mask are taken from :class:`swarmgym.SwarmEnv` itself
(reset on the instance), so they are bit-identical to the reference by construction.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from swarmgym.config import SwarmConfig
from swarmgym.env import SwarmEnv
from swarmgym.simulator import FAIL, WRONG, TaskInstance, draw_fates

#: Node slots per word of a bit set of nodes: 52, so that a word is an integer float64
#: holds exactly (bit sets are built with one float64 matrix-vector product).
BITS_PER_WORD = 52


def n_words(n_max: int) -> int:
    """Words needed for a bit set over ``n_max`` node slots."""
    return -(-n_max // BITS_PER_WORD)


def generate_instances(generator, config: SwarmConfig, rng: np.random.Generator, count: int) -> list[TaskInstance]:
    """Draw ``count`` instances exactly as ``SwarmEnv.reset`` draws one: a graph, then its fates."""
    out = []
    for _ in range(count):
        graph = generator(rng)
        out.append(TaskInstance(graph, draw_fates(graph, config, rng)))
    return out


class InstanceBank:
    """Task instances packed into padded tensors on one device.

    :param instances: the instances (each with at most ``n_max`` nodes).
    :param config: the dynamics (budget and hand-off tokens depend on it).
    :param n_max: node slots per instance.
    :param reference_env: a :class:`SwarmEnv` with the same ``config`` and ``n_max``, used
        to encode each instance's first observation.
    :param family_names: the list of family names; new names are appended to it.
    :param device: where the tensors live.
    """

    def __init__(
        self,
        instances: Sequence[TaskInstance],
        config: SwarmConfig,
        n_max: int,
        reference_env: SwarmEnv,
        family_names: list[str],
        device: torch.device,
        with_adjacency: bool = False,
    ) -> None:
        if len(instances) == 0:
            raise ValueError("an instance bank needs at least one instance")
        B, n, A = len(instances), n_max, config.max_attempts
        m = config.max_subagents
        tok = config.tokens
        work = np.zeros((B, n), np.int32)
        handoff = np.zeros((B, n), np.int64)
        children = np.zeros((B, n + 1, n), np.uint8)
        targets = np.zeros((B, n), bool)
        top_level = np.zeros((B, n), np.int32)
        parent_top = np.zeros((B, n), np.int32)
        fate_duration = np.zeros((B, n, A), np.int32)
        fate_fail = np.zeros((B, n, A), bool)
        fate_wrong = np.zeros((B, n, A), bool)
        n_parents = np.zeros((B, n), np.int16)
        flags0 = np.zeros((B, 5, n), bool)  # blocked, ready, active, running, done
        nodes0 = np.zeros((B, n, 20), np.float32)
        globals0 = np.zeros((B, 10), np.float32)
        mask0 = np.zeros((B, 2 * n + 2), bool)
        adjacency = np.zeros((B, n, n), np.float32) if with_adjacency else None
        scalars = {
            k: np.zeros(B, np.int64) for k in ("budget", "n_nodes", "n_targets", "task_serial_steps", "task_lower_bound", "family_id")
        }
        for b, inst in enumerate(instances):
            if not isinstance(inst, TaskInstance):
                raise TypeError(f"instances[{b}] must be a TaskInstance, got {type(inst).__name__}")
            g, f = inst.graph, inst.fates
            k = g.n_nodes
            if k > n:
                raise ValueError(f"instances[{b}] has {k} nodes; n_max is {n}")
            if f.duration.shape != (k, A):
                raise ValueError(f"instances[{b}]: fates have shape {f.duration.shape}; expected (n_nodes, max_attempts) = ({k}, {A})")
            n_par = np.array([len(p) for p in g.parents], np.int64)
            work[b, :k] = g.work
            handoff[b, :k] = tok.handoff_base + tok.handoff_per_parent * n_par
            for i, ps in enumerate(g.parents):
                for p in ps:
                    children[b, p, i] = 1
            targets[b, :k] = g.targets
            top = np.zeros(k, np.int64)
            for i in g.topo_order:
                pt = max((top[p] for p in g.parents[i]), default=0)
                parent_top[b, i] = pt
                top[i] = g.work[i] + pt
            top_level[b, :k] = top
            fate_duration[b, :k] = f.duration
            fate_fail[b, :k] = f.outcome == FAIL
            fate_wrong[b, :k] = f.outcome == WRONG
            n_parents[b, :k] = n_par
            flags0[b, 0, :k] = n_par > 0
            flags0[b, 1, :k] = n_par == 0
            obs, info = reference_env.reset(options={"instance": inst})
            nodes0[b] = obs["nodes"]
            globals0[b] = obs["globals"]
            mask0[b] = info["action_mask"]
            if with_adjacency:
                adjacency[b] = obs["adjacency"]
            if g.family not in family_names:
                family_names.append(g.family)
            scalars["family_id"][b] = family_names.index(g.family)
            scalars["budget"][b] = g.budget(m)
            scalars["n_nodes"][b] = k
            scalars["n_targets"][b] = int(g.targets.sum())
            scalars["task_serial_steps"][b] = g.total_work
            scalars["task_lower_bound"][b] = g.lower_bound(m)
        arrays = dict(
            work=work,
            handoff=handoff,
            children=children,
            targets=targets,
            top_level=top_level,
            parent_top=parent_top,
            fate_duration=fate_duration,
            fate_fail=fate_fail,
            fate_wrong=fate_wrong,
            n_parents=n_parents,
            flags0=flags0,
            nodes0=nodes0,
            globals0=globals0,
            mask0=mask0,
            **scalars,
        )
        if with_adjacency:
            arrays["adjacency"] = adjacency
        self.size = B
        self.instances = list(instances)
        self.tensors: dict[str, torch.Tensor] = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]
