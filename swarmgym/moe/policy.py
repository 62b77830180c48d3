"""A trained checkpoint as an orchestrator (``load_orchestrator("moe:PATH")``).

The orchestrator interface (as :class:`swarmgym.orchestrators.Orchestrator`): an object
with a ``name`` and ``act(obs, mask) -> int64[B]`` where ``obs`` is a dict of numpy arrays
with a leading env dimension (``nodes [B, n_max, 20]``, ``globals [B, 10]``; with the
extended layout ``[B, n_max, 23]`` and ``[B, 20]``) and ``mask`` is
``bool[B, ActionLayout(n_max, extended).n]`` (True = valid).

The network's logits are per node, so a checkpoint acts on any ``n_max``, but only on envs of
the layout it was trained on (the checkpoint records ``extended``; an env of the other layout
is refused with one line naming both). A policy
trained by PPO acts by sampling; :func:`swarmgym.evaluation.evaluate` reports it greedy
and sampled (``deterministic`` switches between the two).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from swarmgym.layout import ActionLayout
from swarmgym.moe.model import OrchestratorNet, layout_name
from swarmgym.moe.ppo import POLICY_EXPORT_FORMAT, POLICY_FORMATS, checkpoint_path, read_checkpoint


class MoEOrchestrator:
    """A trained :class:`OrchestratorNet` acting greedily (or by sampling).

    :param model: the network (evaluation mode is set here).
    :param name: the name shown in evaluation tables.
    :param deterministic: pick the most probable valid action (True) or sample (False).
    :param device: torch device to run on.
    :param seed: seed of the sampler when ``deterministic`` is False (:meth:`reset` returns to it).
    :param threads: torch threads while acting on CPU (default 1, the fastest for these small
        models; the caller's setting is restored after each call); None leaves torch's setting.
    """

    def __init__(
        self,
        model: OrchestratorNet,
        name: str = "moe",
        deterministic: bool = True,
        device: str = "cpu",
        seed: int = 0,
        threads: int | None = 1,
    ) -> None:
        if not isinstance(model, OrchestratorNet):
            raise TypeError(f"model must be an OrchestratorNet, got {type(model).__name__}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an integer >= 1, got {threads!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.name = name
        self.deterministic = bool(deterministic)
        self.seed = int(seed)
        self.threads = threads
        self._gen = torch.Generator(device="cpu").manual_seed(self.seed)

    def reset(self, seed: int | None = None) -> None:
        """Restart the sampler from ``seed`` (default: the policy's ``seed``)."""
        self._gen = torch.Generator(device="cpu").manual_seed(self.seed if seed is None else int(seed))

    def __repr__(self) -> str:
        return f"MoEOrchestrator(name={self.name!r}, ffn={self.model.config.ffn!r}, deterministic={self.deterministic})"

    def act(self, obs: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations; always valid under ``mask``."""
        before = torch.get_num_threads()
        switch = self.threads is not None and self.device.type == "cpu" and before != self.threads
        if switch:
            torch.set_num_threads(self.threads)
        try:
            return self._act(obs, mask)
        finally:
            if switch:
                torch.set_num_threads(before)

    def check_observation(self, n_node_columns: int) -> None:
        """Refuse, in one line, an env whose observation has another layout than the policy's."""
        if n_node_columns == self.model.n_node_features:
            return
        from swarmgym.layout import node_features

        other = [ext for ext in (False, True) if len(node_features(ext)) == n_node_columns]
        env = f"the {layout_name(other[0])} layout (SwarmConfig.extended={other[0]})" if other else "no swarmgym layout"
        raise ValueError(
            f"{self.name} was trained on the {layout_name(self.model.extended)} layout (SwarmConfig.extended={self.model.extended}, "
            f"{self.model.n_node_features} node columns) but this env's observation has {n_node_columns} node columns, {env}: "
            f"use it on envs of its own layout"
        )

    @torch.no_grad()
    def _act(self, obs: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        nodes = torch.as_tensor(np.asarray(obs["nodes"], dtype=np.float32), device=self.device)
        glob = torch.as_tensor(np.asarray(obs["globals"], dtype=np.float32), device=self.device)
        if nodes.dim() == 2:  # a single, unbatched observation
            nodes, glob = nodes.unsqueeze(0), glob.unsqueeze(0)
        self.check_observation(nodes.shape[-1])
        m = torch.as_tensor(np.asarray(mask, dtype=bool), device=self.device).reshape(nodes.shape[0], -1)
        n_actions = ActionLayout(nodes.shape[1], self.model.extended).n
        if m.shape[1] != n_actions:
            raise ValueError(
                f"mask must be bool[B, ActionLayout(n_max{', extended=True' if self.model.extended else ''}).n] = [{nodes.shape[0]}, {n_actions}], got {tuple(m.shape)}"
            )
        logits, _ = self.model(nodes, glob, m)
        if self.deterministic:
            action = logits.argmax(-1)
        else:
            from swarmgym.moe.ppo import sample_actions

            action = sample_actions(logits, self._gen)
        return action.cpu().numpy().astype(np.int64)


def load_policy(
    path: str | Path,
    *,
    deterministic: bool = True,
    device: str = "cpu",
    name: str | None = None,
    seed: int = 0,
    threads: int | None = 1,
) -> MoEOrchestrator:
    """Load a checkpoint written by the trainer (``swarmgym train``) as an orchestrator.

    :param path: a ``checkpoint.pt`` file, or a run folder that holds one. Only load files
        you trust: checkpoints are read with ``torch.load(weights_only=False)``.
    :param deterministic: greedy actions (default) or sampled ones.
    :param device: torch device.
    :param name: table name (default ``"moe:<run folder name>"``).
    :param seed: seed of the sampled actions.
    :param threads: torch threads while acting on CPU (see :class:`MoEOrchestrator`).
    :raises FileNotFoundError: nothing at ``path``.
    :raises swarmgym.moe.ppo.CheckpointError: a truncated or foreign file (the message names it).
    """
    p = checkpoint_path(path)
    state = read_checkpoint(path, formats=POLICY_FORMATS)
    model = OrchestratorNet(state["model_config"], extended=bool(state.get("extended", False)))  # absent before extended layouts
    model.load_state_dict(state["model"])
    label = name or f"moe:{p.parent.name or p.stem}"
    return MoEOrchestrator(model, name=label, deterministic=deterministic, device=device, seed=seed, threads=threads)


#: What a policy export keeps of a trainer checkpoint (besides its own format tag and ``source``).
EXPORTED_FIELDS = ("model_config", "extended", "n_max", "family_names", "env_id", "ppo_config", "global_step", "system_info")


def export_policy(source: str | Path, out: str | Path) -> Path:
    """Write the network of a trainer checkpoint as a policy export: ``load_policy``, ``moe:OUT`` and
    ``--init-from`` read it like the checkpoint, and it holds only tensors and plain Python values, so
    ``torch.load(out, weights_only=True)`` reads it too (no pickled code runs). It keeps the run's env id,
    ``PPOConfig``, step count and :func:`~swarmgym.moe.checkpointing.system_info` (those the checkpoint has)
    and drops the optimiser, log history, RNG and engine state, so it cannot be resumed; a checkpoint of the
    small model (the VerifiedPipelineHard-v0 runs) shrinks from about 1.5 MB to about 33 kB. The file is written atomically.

    :param source: a ``checkpoint.pt`` (or a run folder holding one) in one of :data:`POLICY_FORMATS`.
    :param out: the file to write.
    :raises FileNotFoundError, swarmgym.moe.ppo.CheckpointError: see :func:`~swarmgym.moe.ppo.read_checkpoint`.
    """
    from swarmgym.moe.checkpointing import atomic_torch_save

    state = read_checkpoint(source, formats=POLICY_FORMATS)
    export = {"format": POLICY_EXPORT_FORMAT, "model": {k: v.detach().clone() for k, v in state["model"].items()}}
    export.update({k: state[k] for k in EXPORTED_FIELDS if k in state})
    export["source"] = state.get("source", {"checkpoint": str(checkpoint_path(source)), "format": state["format"]})
    return atomic_torch_save(export, out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarmgym export-policy",
        description="Write a trained checkpoint's network alone (no optimiser, history or engine state): a small file that "
        "moe:FILE, load_policy and --init-from read, and torch.load(..., weights_only=True) reads safely.",
    )
    p.add_argument("checkpoint", help="a checkpoint.pt written by swarmgym train, or a run folder holding one")
    p.add_argument("--out", required=True, help="the file to write (e.g. policy.pt)")
    return p


def cli_main(argv: list[str]) -> int:
    """Entry point of ``swarmgym export-policy``."""
    from swarmgym.cli import UsageError, usage_failure
    from swarmgym.moe.ppo import CheckpointError

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.is_dir():
        return usage_failure("swarmgym export-policy", UsageError("--out", f"{str(out)!r} is a folder; give a file name"))
    if not out.parent.is_dir():
        return usage_failure("swarmgym export-policy", UsageError("--out", f"no folder {str(out.parent)!r} to write into"))
    try:
        export_policy(args.checkpoint, out)
    except (FileNotFoundError, CheckpointError) as exc:
        return usage_failure("swarmgym export-policy", UsageError("checkpoint", str(exc)))
    print(f"swarmgym export-policy: wrote {out} ({out.stat().st_size:,} bytes); evaluate it as moe:{shlex.quote(str(out))}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_main(sys.argv[1:]))
