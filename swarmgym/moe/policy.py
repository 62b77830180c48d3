"""A trained checkpoint as an orchestrator (``load_orchestrator("moe:PATH")``).

The orchestrator interface (as :class:`swarmgym.orchestrators.Orchestrator`): an object
with a ``name`` and ``act(obs, mask) -> int64[B]`` where ``obs`` is a dict of numpy arrays
with a leading env dimension (``nodes [B, n_max, 20]``, ``globals [B, 10]``) and ``mask``
is ``bool[B, ActionLayout(n_max).n]`` (True = valid).

The network's logits are per node, so a checkpoint acts on any ``n_max``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from swarmgym.layout import ActionLayout
from swarmgym.moe.model import OrchestratorNet
from swarmgym.moe.ppo import CHECKPOINT_FORMAT


class MoEOrchestrator:
    """A trained :class:`OrchestratorNet` acting greedily (or by sampling).

    :param model: the network (evaluation mode is set here).
    :param name: the name shown in evaluation tables.
    :param deterministic: pick the most probable valid action (True) or sample (False).
    :param device: torch device to run on.
    :param seed: seed of the sampler when ``deterministic`` is False.
    """

    def __init__(self, model: OrchestratorNet, name: str = "moe", deterministic: bool = True, device: str = "cpu", seed: int = 0) -> None:
        if not isinstance(model, OrchestratorNet):
            raise TypeError(f"model must be an OrchestratorNet, got {type(model).__name__}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.name = name
        self.deterministic = bool(deterministic)
        self._gen = torch.Generator(device="cpu").manual_seed(seed)

    def __repr__(self) -> str:
        return f"MoEOrchestrator(name={self.name!r}, ffn={self.model.config.ffn!r}, deterministic={self.deterministic})"

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations; always valid under ``mask``."""
        nodes = torch.as_tensor(np.asarray(obs["nodes"], dtype=np.float32), device=self.device)
        glob = torch.as_tensor(np.asarray(obs["globals"], dtype=np.float32), device=self.device)
        if nodes.dim() == 2:  # a single, unbatched observation
            nodes, glob = nodes.unsqueeze(0), glob.unsqueeze(0)
        m = torch.as_tensor(np.asarray(mask, dtype=bool), device=self.device).reshape(nodes.shape[0], -1)
        n_actions = ActionLayout(nodes.shape[1]).n
        if m.shape[1] != n_actions:
            raise ValueError(f"mask must be bool[B, ActionLayout(n_max).n] = [{nodes.shape[0]}, {n_actions}], got {tuple(m.shape)}")
        logits, _ = self.model(nodes, glob, m)
        if self.deterministic:
            action = logits.argmax(-1)
        else:
            from swarmgym.moe.ppo import sample_actions

            action = sample_actions(logits, self._gen)
        return action.cpu().numpy().astype(np.int64)


def load_policy(path: str | Path, *, deterministic: bool = True, device: str = "cpu", name: str | None = None) -> MoEOrchestrator:
    """Load a checkpoint written by the trainer (``swarmgym train``) as an orchestrator.

    :param path: a ``checkpoint.pt`` file, or a run folder that holds one. Only load files
        you trust: checkpoints are read with ``torch.load(weights_only=False)``.
    :param deterministic: greedy actions (default) or sampled ones.
    :param device: torch device.
    :param name: table name (default ``"moe:<run folder name>"``).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r} (expected a checkpoint.pt or a run folder holding one)")
    state = torch.load(p, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(p)!r} is not a swarmgym MoE checkpoint (format {state.get('format') if isinstance(state, dict) else None!r})"
        )
    model = OrchestratorNet(state["model_config"])
    model.load_state_dict(state["model"])
    label = name or f"moe:{p.parent.name or p.stem}"
    return MoEOrchestrator(model, name=label, deterministic=deterministic, device=device)
