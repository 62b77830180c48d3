"""What a trainer, an evaluator or ``swarmgym.testing`` needs of a batched engine.

:class:`SwarmEngine` is the protocol; :class:`swarmgym.batched.BatchedSwarmEngine` (the
compiled kernel) implements it, and so does ``swarmgym.moe.engines.GymVectorEngine``
(a synchronous Gymnasium vector env of :class:`swarmgym.SwarmEnv`, stepping the reference
simulator; ``make_engine(..., engine="gym")``).

Shapes (``N = num_envs``, ``n = n_max``, ``A = layout.n``)::

    reset(seed=None)      -> obs
    step(actions [N] int) -> (obs, reward [N] (float64 from the kernel, float32 from GymVectorEngine),
                              terminated bool [N], info)  (GymVectorEngine's third value also
                              counts truncations; info["done_mask"] is every episode end)
    action_mask           -> bool [N, A], valid actions of the current observations
    obs["nodes"]          -> float32 [N, n, len(NODE_FEATURES)]
    obs["globals"]        -> float32 [N, len(GLOBAL_FEATURES)]
    info["done_mask"]     -> bool [N], the envs whose episode ended in this step
    info["metrics"][key]  -> [N] tensor for every key of SCALAR_METRIC_KEYS and "family_id"
                             (index into family_names), valid where done_mask; plus
                             "concurrency_profile" [N, config.max_subagents + 1]

A finished env is reset in place (Gymnasium's SAME_STEP autoreset): the returned
observation is the next episode's first. Returned tensors may be the engine's own
buffers, overwritten by the next step: copy what you keep.

Checkpoints: ``state_dict()`` is the engine's compact, exact state (per-env dynamic
state and random-number state, not the instance bank, which ``spec`` regenerates);
``type(engine)(**engine.spec)`` followed by ``load_state_dict(state)`` continues
bit for bit where the saved engine stood.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from swarmgym.config import SwarmConfig
from swarmgym.layout import ActionLayout


@runtime_checkable
class SwarmEngine(Protocol):
    """A batch of swarm envs stepped together (see the module docstring for shapes)."""

    num_envs: int
    n_max: int
    device: torch.device
    #: the resolved dynamics (what a trainer reads ``max_subagents`` etc. from)
    config: SwarmConfig
    #: family names; ``info["metrics"]["family_id"]`` indexes this list
    family_names: list[str]
    layout: ActionLayout
    #: keyword arguments that rebuild an equivalent engine (JSON-serialisable)
    spec: dict[str, Any]

    def reset(self, seed: int | None = None) -> dict[str, torch.Tensor]: ...

    def step(self, actions: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, dict[str, Any]]: ...

    @property
    def action_mask(self) -> torch.Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
