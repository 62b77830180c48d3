"""The batched engine: many swarm envs stepped together by one compiled per-env kernel (CPU or CUDA).

* :class:`BatchedSwarmEngine`: torch tensors in and out, for trainers that stay in torch;
  its dynamics are :mod:`swarmgym.batched.kernel` (numba), stage for stage the simulator's.
* :class:`SwarmVectorEnv`: a ``gymnasium.vector.VectorEnv`` over the engine; what
  ``gymnasium.make_vec("swarmgym/...-v0", num_envs=N)`` returns.
* :class:`SwarmSB3VecEnv`: a stable-baselines3 ``VecEnv`` adapter (MaskablePPO-ready).
"""

from swarmgym.batched.engine import METRIC_KEYS, BatchedSwarmEngine
from swarmgym.batched.instance_bank import InstanceBank, generate_instances
from swarmgym.batched.vector_env import SwarmVectorEnv


def __getattr__(name):  # the SB3 adapter imports stable-baselines3 lazily
    if name == "SwarmSB3VecEnv":
        from swarmgym.batched.sb3_vec_env import SwarmSB3VecEnv

        return SwarmSB3VecEnv
    raise AttributeError(f"module 'swarmgym.batched' has no attribute {name!r}")


__all__ = ["METRIC_KEYS", "BatchedSwarmEngine", "InstanceBank", "SwarmSB3VecEnv", "SwarmVectorEnv", "generate_instances"]
