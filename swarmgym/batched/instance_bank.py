"""A bank of pre-generated task instances, padded into arrays for the batched kernel.

The batched engine does not generate graphs on the hot path. Instances are drawn
with the reference generators and :func:`swarmgym.simulator.draw_fates` (numpy,
seeded), exactly as :class:`swarmgym.SwarmEnv` draws them, and packed here into
fixed-size tensors (the blocks of :class:`swarmgym.batched.kernel.Bank`). An autoreset
draws a bank row in the kernel and copies it into the finished env's
:class:`~swarmgym.batched.kernel.Instance` row.

Shapes (``B`` bank rows, ``n`` = ``n_max`` node slots, ``A`` = ``config.max_attempts``,
``T`` = ``config.n_tiers``, ``W = ceil(n / BITS)`` words of a node bit set, ``F`` / ``G`` the
node / global features of ``swarmgym.layout.node_features(config.extended)`` /
``global_features(config.extended)``; the named rows and columns are
:mod:`swarmgym.batched.kernel`'s). Padding node slots are absent: ``work`` 0, no parents,
no children, no fates.

=============  ==================  ==========================================================
field          shape, dtype        meaning
=============  ==================  ==========================================================
``node``       [B, 4, n] int32     rows ``WORK``, ``N_PARENTS``, ``TARGET`` (0/1), ``KIND``
``bits``       [B, 2, n, W] int64  rows ``PARENTS``, ``CHILDREN``: bit ``p % BITS`` of word
                                   ``p // BITS`` of node i: p is a parent / child of i
``fates``      [B, 2, n, A * T]    rows ``DURATION`` (ticks of attempt a by a sub-agent of tier
               int32               t, in column ``a * T + t``) and ``OUTCOME`` (OK, FAIL or WRONG)
``env``        [B, 6] int64        budget, n_nodes, n_targets, task_serial_steps,
                                   task_lower_bound, family_id
``nodes0``     [B, n, F] f32       first observation's node features (the static
                                   columns stay valid all episode; a progressive
                                   episode writes those of nodes it reveals)
``globals0``   [B, G] f32          first observation's global features
``mask0``      [B, n_actions] bool first action mask
``adjacency0`` [B, n, n] f32       parent adjacency (``[1, 1, 1]`` without ``with_adjacency``)
=============  ==================  ==========================================================

The first observation and mask are taken from :class:`swarmgym.SwarmEnv` itself
(reset on the instance), so they are bit-identical to the reference by construction.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from swarmgym.batched import kernel as K
from swarmgym.config import SwarmConfig
from swarmgym.env import SwarmEnv
from swarmgym.simulator import TaskInstance, draw_fates


def generate_instances(generator, config: SwarmConfig, rng: np.random.Generator, count: int) -> list[TaskInstance]:
    """Draw ``count`` instances exactly as ``SwarmEnv.reset`` draws one: a graph, then its fates."""
    out = []
    for _ in range(count):
        graph = generator(rng)
        out.append(TaskInstance(graph, draw_fates(graph, config, rng)))
    return out


def bit_words(n_max: int) -> int:
    """Words of a node bit set over ``n_max`` slots."""
    return -(-n_max // K.BITS)


class InstanceBank:
    """Task instances packed into padded tensors on one device.

    :param instances: the instances (each with at most ``n_max`` nodes).
    :param config: the dynamics (budget and fates' width depend on it).
    :param n_max: node slots per instance.
    :param reference_env: a :class:`SwarmEnv` with the same ``config`` and ``n_max``, used
        to encode each instance's first observation.
    :param family_names: the list of family names; new names are appended to it.
    :param device: where the tensors live.
    :param with_adjacency: also pack each instance's adjacency matrix.
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
        B, n, A, T = len(instances), n_max, config.max_attempts, config.n_tiers
        W = bit_words(n)
        m, fastest = config.max_subagents, config.fastest_percent
        obs_space = reference_env.dict_observation_space
        node = np.zeros((B, len(K.INSTANCE_NODE_FIELDS), n), np.int32)
        bits = np.zeros((B, 2, n, W), np.int64)
        fates = np.zeros((B, 2, n, A * T), np.int32)
        env = np.zeros((B, len(K.INSTANCE_ENV_FIELDS)), np.int64)
        nodes0 = np.zeros((B, *obs_space["nodes"].shape), np.float32)
        globals0 = np.zeros((B, *obs_space["globals"].shape), np.float32)
        mask0 = np.zeros((B, reference_env.action_space.n), bool)
        adjacency0 = np.zeros((B, n, n) if with_adjacency else (1, 1, 1), np.float32)
        for b, inst in enumerate(instances):
            if not isinstance(inst, TaskInstance):
                raise TypeError(f"instances[{b}] must be a TaskInstance, got {type(inst).__name__}")
            g, f = inst.graph, inst.fates
            k = g.n_nodes
            if k > n:
                raise ValueError(f"instances[{b}] has {k} nodes; n_max is {n}")
            want = (k, A, T) if config.extended else (k, A)
            if f.duration.shape != want:
                expected = "(n_nodes, max_attempts, n_tiers)" if config.extended else "(n_nodes, max_attempts)"
                raise ValueError(f"instances[{b}]: fates have shape {f.duration.shape}; expected {expected} = {want}")
            node[b, K.WORK, :k] = g.work
            node[b, K.TARGET, :k] = g.targets
            node[b, K.KIND, :k] = g.kind
            for i, ps in enumerate(g.parents):
                node[b, K.N_PARENTS, i] = len(ps)
                for p in ps:
                    bits[b, K.PARENTS, i, p // K.BITS] |= 1 << (p % K.BITS)
                    bits[b, K.CHILDREN, p, i // K.BITS] |= 1 << (i % K.BITS)
            fates[b, K.DURATION, :k] = f.duration.reshape(k, A * T)  # column a * T + t (not extended: T = 1)
            fates[b, K.OUTCOME, :k] = f.outcome.reshape(k, A * T)
            obs, info = reference_env.reset(options={"instance": inst})
            nodes0[b] = obs["nodes"]
            globals0[b] = obs["globals"]
            mask0[b] = info["action_mask"]
            if with_adjacency:
                adjacency0[b] = obs["adjacency"]
            if g.family not in family_names:
                family_names.append(g.family)
            env[b, K.FAMILY_ID] = family_names.index(g.family)
            env[b, K.BUDGET] = g.budget(m)
            env[b, K.N_NODES] = k
            env[b, K.N_TARGETS] = int(g.targets.sum())
            env[b, K.TASK_SERIAL_STEPS] = g.total_work
            env[b, K.TASK_LOWER_BOUND] = g.lower_bound(m, fastest)
        arrays = {
            "node": node,
            "bits": bits,
            "fates": fates,
            "env": env,
            "nodes0": nodes0,
            "globals0": globals0,
            "mask0": mask0,
            "adjacency0": adjacency0,
        }
        self.size = B
        self.instances = list(instances)
        self.tensors: dict[str, torch.Tensor] = {name: torch.from_numpy(arrays[name]).to(device) for name in K.Bank._fields}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]
