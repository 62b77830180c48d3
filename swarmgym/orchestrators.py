"""Reference orchestrators: hand-coded policies over the observation and the action mask.

They are how code-level frameworks coordinate agents, made explicit, so learned
orchestration can be compared against them on the same table:

==========================  ==========================================================
``"sequential_crew"``       does every subtask itself, in node order (CrewAI's
                            sequential process): never spawns -- serial collapse by design.
``"delegating_manager"``    hands every ready subtask it can to a sub-agent, waits, and
                            does itself only what it cannot hand off (CrewAI's
                            hierarchical process, an AutoGen-style manager).
``"static_fanout"``         a fixed map-reduce plan (a LangGraph fan-out graph): when a
                            wide layer is ready (>= ``min_width`` nodes at once) it spawns
                            its low-context nodes; chains and merges it does itself.
``"critical_path"``         list scheduling with HLFET priorities (highest bottom level
                            first): the orchestrator keeps the highest-priority ready node
                            for itself and spawns the others while slots are free and
                            their hand-off context is small; answers when all targets are
                            done. On failure-free instances with the context filter off it
                            is a greedy list schedule, so Graham's bound holds:
                            makespan <= (2 - 1/(m+1)) x lower bound.
``"random"``                uniform over the valid actions (masked).
==========================  ==========================================================

Interface (shared with learned policies): an orchestrator has a ``name`` and
``act(obs, mask) -> int64[B]`` where ``obs`` is the Dict observation batched with a
leading env dimension (``obs["nodes"]: [B, n_max, 20]``, ``obs["globals"]: [B, 10]``)
and ``mask`` is ``bool[B, ActionLayout(n_max).n]``. The extended observation and mask of a
config with the mechanics of ``docs/mechanics.md`` on (more columns, ``ActionLayout(n_max,
extended=True)``) are accepted too; the base blocks keep their offsets. :func:`load_orchestrator` resolves a spec
string: a built-in name (optionally with keyword arguments, ``"critical_path:max_spawn_parents=8"``)
``"moe:PATH"`` (a trained checkpoint, loaded by ``swarmgym.moe.policy.load_policy``) or
``"sb3:PATH"`` (a stable-baselines3 ``model.zip``, see :class:`SB3Policy`).

The policies read only the observation: node status, kind, ``n_parents``,
``bottom_level`` and ``work`` come from ``obs["nodes"]`` columns named in
:data:`swarmgym.layout.NODE_FEATURES` (``n_parents`` is stored ``/ COUNT_SCALE``, clipped);
actions are indices of :class:`swarmgym.layout.ActionLayout`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import numpy as np

from swarmgym.layout import COUNT_SCALE, GLOBAL_COLUMN, NODE_COLUMN, ActionLayout, FlatLayout, global_features, node_features

_STATUS_READY, _STATUS_ACTIVE = NODE_COLUMN["status_ready"], NODE_COLUMN["status_active"]
_N_PARENTS, _BOTTOM_LEVEL = NODE_COLUMN["n_parents"], NODE_COLUMN["bottom_level"]
_TARGETS_DONE = GLOBAL_COLUMN["targets_done"]


@lru_cache(maxsize=64)
def _layout(n_max: int, extended: bool = False) -> ActionLayout:
    """The action layout (the base blocks ``do``, ``spawn``, ``wait``, ``answer`` have the same
    offsets in the extended one)."""
    return ActionLayout(n_max, extended)


def _check_batch(obs: dict[str, np.ndarray], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Validate a batched observation and mask (base, or extended throughout); returns
    ``(nodes, globals, mask, n_max)``."""
    if not isinstance(obs, dict) or "nodes" not in obs or "globals" not in obs:
        raise TypeError("obs must be a dict with 'nodes' [B, n_max, 20] and 'globals' [B, 10] (the Dict observation, batched)")
    nodes = np.asarray(obs["nodes"])
    glob = np.asarray(obs["globals"])
    mask = np.asarray(mask, dtype=bool)
    columns = (len(node_features()), len(node_features(True)))
    if nodes.ndim != 3 or nodes.shape[2] not in columns:
        raise ValueError(f"obs['nodes'] must have shape [B, n_max, {columns[0]}] (or {columns[1]} columns, extended), got {nodes.shape}")
    b, n_max = nodes.shape[:2]
    extended = nodes.shape[2] == columns[1]
    if glob.shape != (b, len(global_features(extended))):
        what = "extended node columns" if extended else "base node columns"
        raise ValueError(f"obs['globals'] must have shape [{b}, {len(global_features(extended))}] with {what}, got {glob.shape}")
    if mask.shape != (b, _layout(n_max, extended).n):
        raise ValueError(
            f"mask must have shape [B, ActionLayout(n_max, extended={extended}).n] = [{b}, {_layout(n_max, extended).n}], got {mask.shape}"
        )
    return nodes, glob, mask, n_max


class Orchestrator:
    """Base class: a batched policy over the Dict observation and the action mask.

    Subclasses implement :meth:`act_one` (one env) or override :meth:`act`.
    """

    name: str = "orchestrator"

    def reset(self, seed: int | None = None) -> None:
        """Re-seed any randomness (the deterministic policies have none)."""

    def act(self, obs: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """One action per env: ``int64[B]``, always valid under ``mask``."""
        nodes, glob, mask, n_max = _check_batch(obs, mask)
        out = np.empty(nodes.shape[0], dtype=np.int64)
        for b in range(nodes.shape[0]):
            out[b] = self.act_one(nodes[b], glob[b], mask[b], n_max)
        return out

    def act_one(self, nodes: np.ndarray, glob: np.ndarray, mask: np.ndarray, n_max: int) -> int:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _all_targets_done(glob: np.ndarray) -> bool:
    return glob[_TARGETS_DONE] >= 1.0 - 1e-6


def _fallback(mask: np.ndarray, n_max: int) -> int:
    """Wait if a sub-agent runs, else answer."""
    lay = _layout(n_max)
    return lay.wait if mask[lay.wait] else lay.answer


def _doable(nodes: np.ndarray, mask: np.ndarray, n_max: int) -> np.ndarray:
    """Indices where ``do`` is valid, active nodes (already started) first, then by index."""
    idx = np.flatnonzero(_layout(n_max).block(mask, "do"))
    if idx.size == 0:
        return idx
    active = nodes[idx, _STATUS_ACTIVE] > 0.5
    return np.concatenate([idx[active], idx[~active]])


class SequentialCrew(Orchestrator):
    """Does every subtask itself, in node order; never spawns (CrewAI's sequential process)."""

    name = "sequential_crew"

    def act_one(self, nodes, glob, mask, n_max):
        lay = _layout(n_max)
        if _all_targets_done(glob):
            return lay.answer
        doable = _doable(nodes, mask, n_max)
        if doable.size:
            return int(lay.do + doable[0])
        return _fallback(mask, n_max)


class DelegatingManager(Orchestrator):
    """Hands every ready subtask it can to a sub-agent, waits, and does only what it
    cannot hand off (a node out of sub-agent attempts, or no sub-agent running to wait for)."""

    name = "delegating_manager"

    def act_one(self, nodes, glob, mask, n_max):
        lay = _layout(n_max)
        if _all_targets_done(glob):
            return lay.answer
        spawnable = np.flatnonzero(lay.block(mask, "spawn"))
        if spawnable.size:
            return int(lay.spawn + spawnable[0])
        if mask[lay.wait]:
            return lay.wait
        doable = _doable(nodes, mask, n_max)
        if doable.size:
            return int(lay.do + doable[0])
        return lay.answer


class StaticFanout(Orchestrator):
    """A fixed map-reduce plan: spawn the low-context nodes of a wide layer, do chains itself.

    :param min_width: a layer is "wide" when at least this many nodes are ready at once, >= 2.
    :param max_spawn_parents: spawn only nodes with at most this many parents (little
        upstream context to hand off), in [0, 8].
    """

    name = "static_fanout"

    def __init__(self, min_width: int = 2, max_spawn_parents: int = 1) -> None:
        if isinstance(min_width, bool) or not isinstance(min_width, int) or min_width < 2:
            raise ValueError(f"min_width must be an integer >= 2, got {min_width!r}")
        if isinstance(max_spawn_parents, bool) or not isinstance(max_spawn_parents, int) or not 0 <= max_spawn_parents <= 8:
            raise ValueError(f"max_spawn_parents must be an integer in [0, 8], got {max_spawn_parents!r}")
        self.min_width = min_width
        self.max_spawn_parents = max_spawn_parents

    def act_one(self, nodes, glob, mask, n_max):
        lay = _layout(n_max)
        if _all_targets_done(glob):
            return lay.answer
        ready = nodes[:, _STATUS_READY] > 0.5
        if ready.sum() >= self.min_width:
            low_context = nodes[:, _N_PARENTS] * COUNT_SCALE <= self.max_spawn_parents + 1e-6
            spawnable = np.flatnonzero(lay.block(mask, "spawn") & low_context)
            if spawnable.size:
                return int(lay.spawn + spawnable[0])
        doable = _doable(nodes, mask, n_max)
        if doable.size:
            return int(lay.do + doable[0])
        return _fallback(mask, n_max)

    def __repr__(self) -> str:
        return f"StaticFanout(min_width={self.min_width}, max_spawn_parents={self.max_spawn_parents})"


class CriticalPathScheduler(Orchestrator):
    """HLFET list scheduling: priority = bottom level (longest remaining path to a target).

    Each turn: the orchestrator's own node is the one it has started, else the
    highest-priority ready node; every other ready node, highest priority first, is
    spawned while a slot is free and its hand-off context is small (at most
    ``max_spawn_parents`` parents); then it works one tick on its own node. With
    nothing to do it waits for a sub-agent; it answers when every target is done.

    :param max_spawn_parents: spawn only nodes with at most this many parents, in [0, 8];
        ``None`` spawns any ready node (a pure greedy list schedule: Graham's bound).
    """

    name = "critical_path"

    def __init__(self, max_spawn_parents: int | None = 2) -> None:
        if max_spawn_parents is not None and (
            isinstance(max_spawn_parents, bool) or not isinstance(max_spawn_parents, int) or not 0 <= max_spawn_parents <= 8
        ):
            raise ValueError(f"max_spawn_parents must be None or an integer in [0, 8], got {max_spawn_parents!r}")
        self.max_spawn_parents = max_spawn_parents

    def act_one(self, nodes, glob, mask, n_max):
        lay = _layout(n_max)
        if _all_targets_done(glob):
            return lay.answer
        level = nodes[:, _BOTTOM_LEVEL]
        do_mask = lay.block(mask, "do")
        active = np.flatnonzero((nodes[:, _STATUS_ACTIVE] > 0.5) & do_mask)
        doable = np.flatnonzero(do_mask)
        # the orchestrator's own node: the one it started, else the highest-priority ready one
        if active.size:
            own = int(active[np.argmax(level[active])])
        elif doable.size:
            # ties: lower index first (argmax on -index within the best level)
            own = int(doable[np.lexsort((doable, -level[doable]))[0]])
        else:
            own = -1
        spawnable = lay.block(mask, "spawn").copy()
        if own >= 0:
            spawnable[own] = False
        if self.max_spawn_parents is not None:
            spawnable &= nodes[:, _N_PARENTS] * COUNT_SCALE <= self.max_spawn_parents + 1e-6
        cand = np.flatnonzero(spawnable)
        if cand.size:
            best = cand[np.lexsort((cand, -level[cand]))[0]]
            return int(lay.spawn + best)
        if own >= 0:
            return lay.do + own
        return _fallback(mask, n_max)

    def __repr__(self) -> str:
        return f"CriticalPathScheduler(max_spawn_parents={self.max_spawn_parents})"


class RandomOrchestrator(Orchestrator):
    """Uniform over the valid actions (masked), from a seeded generator.

    :param seed: seed of its ``numpy`` generator.
    """

    name = "random"

    def __init__(self, seed: int | None = 0) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self.seed if seed is None else seed)

    def act(self, obs, mask):
        _, _, mask, n_max = _check_batch(obs, mask)
        out = np.empty(mask.shape[0], dtype=np.int64)
        for b in range(mask.shape[0]):
            valid = np.flatnonzero(mask[b])
            out[b] = valid[self.rng.integers(valid.size)] if valid.size else _layout(n_max).answer
        return out


class SB3Policy(Orchestrator):
    """A stable-baselines3 model as an orchestrator: ``predict`` with the mask
    (sb3-contrib's MaskablePPO) or on the flat observation rebuilt from the Dict one
    (a model trained on a ``-flat`` id: nodes, globals, adjacency if present, mask as 0/1).

    :param model: a trained SB3 model (``MaskablePPO``, ``PPO``, ...).
    :param name: the table name.
    :param deterministic: greedy actions (default) or sampled ones.
    :param seed: seed of the sampled actions: :meth:`reset` seeds torch's global generator
        with it (SB3 samples from that generator).
    """

    def __init__(self, model: Any, name: str = "sb3", deterministic: bool = True, seed: int = 0) -> None:
        import gymnasium as gym

        self.model = model
        self.name = name
        self.deterministic = bool(deterministic)
        self.seed = int(seed)
        self.flat = not isinstance(model.observation_space, gym.spaces.Dict)
        self.masked = type(model).__name__ == "MaskablePPO"

    def reset(self, seed: int | None = None) -> None:
        """Seed the sampled actions (torch's global generator), from ``seed`` or the policy's ``seed``."""
        if not self.deterministic:
            import torch

            torch.manual_seed(self.seed if seed is None else int(seed))

    def act(self, obs, mask):
        mask = np.asarray(mask, dtype=bool)
        if self.flat:
            n_max = np.shape(obs["nodes"])[1]
            extended = mask.shape[-1] == ActionLayout(n_max, True).n
            model_obs: Any = FlatLayout(n_max, with_adjacency="adjacency" in obs, extended=extended).flatten(obs, mask)
        else:
            model_obs = {k: np.asarray(v) for k, v in obs.items()}
        if self.masked:
            actions, _ = self.model.predict(model_obs, action_masks=mask, deterministic=self.deterministic)
        else:
            actions, _ = self.model.predict(model_obs, deterministic=self.deterministic)
        return np.asarray(actions, dtype=np.int64).reshape(-1)

    def __repr__(self) -> str:
        return f"SB3Policy({type(self.model).__name__}, name={self.name!r})"


def load_sb3(path: str, name: str | None = None) -> SB3Policy:
    """Load a saved SB3 model (``model.zip`` or a run folder holding one; MaskablePPO tried
    first, then PPO) as an orchestrator. Needs ``stable-baselines3`` and ``sb3-contrib``."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        p = p / "model.zip"
    if not p.is_file():
        raise FileNotFoundError(f"no SB3 model at {str(path)!r} (expected a model.zip or a run folder holding one)")
    try:
        from sb3_contrib import MaskablePPO
        from stable_baselines3 import PPO
    except ImportError as exc:
        raise ImportError("loading SB3 checkpoints needs stable-baselines3 and sb3-contrib: pip install 'swarmgym[sb3]'") from exc
    errors = []
    for algo in (MaskablePPO, PPO):
        try:
            model = algo.load(p, device="cpu")
        except Exception as exc:  # noqa: BLE001 - try the next algorithm
            errors.append(f"{algo.__name__}: {exc}")
            continue
        return SB3Policy(model, name or f"sb3:{path}")
    raise ValueError(f"{str(p)!r} is neither a MaskablePPO nor a PPO model ({'; '.join(errors)})")


#: Built-in orchestrators by name (the reference set, in table order).
BUILTIN: dict[str, Callable[..., Orchestrator]] = {
    "sequential_crew": SequentialCrew,
    "delegating_manager": DelegatingManager,
    "static_fanout": StaticFanout,
    "critical_path": CriticalPathScheduler,
    "random": RandomOrchestrator,
}
#: The reference orchestrators' names.
REFERENCE_NAMES: tuple[str, ...] = tuple(BUILTIN)


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def load_orchestrator(spec: str) -> Orchestrator:
    """Resolve an orchestrator spec.

    * a built-in name (:data:`REFERENCE_NAMES`), optionally with keyword arguments:
      ``"critical_path:max_spawn_parents=8"``, ``"random:seed=3"``;
    * ``"moe:PATH"``: a trained checkpoint, loaded lazily with
      ``swarmgym.moe.policy.load_policy(PATH)``;
    * ``"sb3:PATH"``: a stable-baselines3 model (:func:`load_sb3`).

    :raises ValueError: for an unknown name or a malformed argument list.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"an orchestrator spec must be a non-empty string, got {spec!r}")
    head, sep, rest = spec.partition(":")
    if head == "moe":
        if not rest:
            raise ValueError("spec 'moe:PATH' needs a checkpoint path after 'moe:'")
        from swarmgym.moe.policy import load_policy

        policy = load_policy(rest)
        if not getattr(policy, "name", None):
            try:
                policy.name = f"moe:{rest}"
            except AttributeError:
                pass
        return policy
    if head == "sb3":
        if not rest:
            raise ValueError("spec 'sb3:PATH' needs a model path after 'sb3:'")
        return load_sb3(rest)
    if head not in BUILTIN:
        raise ValueError(f"unknown orchestrator {head!r}; choose from {', '.join(REFERENCE_NAMES)}, 'moe:PATH' or 'sb3:PATH'")
    kwargs: dict[str, Any] = {}
    if sep:
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise ValueError(f"orchestrator arguments must be key=value pairs separated by commas, got {item!r} in {spec!r}")
            kwargs[key.strip()] = _parse_value(value.strip())
    try:
        policy = BUILTIN[head](**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for orchestrator {head!r}: {exc}") from None
    if kwargs:
        policy.name = spec
    return policy


__all__ = [
    "BUILTIN",
    "REFERENCE_NAMES",
    "CriticalPathScheduler",
    "DelegatingManager",
    "Orchestrator",
    "RandomOrchestrator",
    "SB3Policy",
    "SequentialCrew",
    "StaticFanout",
    "load_orchestrator",
    "load_sb3",
]
