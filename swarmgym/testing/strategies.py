"""Hypothesis strategies for swarmgym: task graphs, generator parameters, seeds, actions.

Every strategy here shrinks towards *small and simple*: fewer layers and nodes,
no extra edges, unit work, node ids in topological order, the lower end of every
declared parameter range, and, for actions, the first valid action (``do`` on the
lowest-numbered ready node) and early answers.

Actions are drawn **step by step from the live mask** with ``st.data()``, so a
drawn sequence stays valid while the episode evolves::

    from hypothesis import given, strategies as st
    from swarmgym.testing.strategies import draw_action, seeds

    @given(seed=seeds(), data=st.data())
    def test_my_property(seed, data):
        obs, info = env.reset(seed=seed)
        while True:
            a = draw_action(data, info["action_mask"])
            obs, reward, terminated, truncated, info = env.step(a)
            if terminated or truncated:
                break
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from swarmgym.config import MAX_TIERS, CoordinationTax, SubAgentReliability, SubAgentTier, SwarmConfig, Verification
from swarmgym.families import DEFAULT_N_MAX, FAMILIES, Mixed, Param, TaskGenerator
from swarmgym.graph import KINDS, MAX_WORK, TaskGraph
from swarmgym.layout import ActionLayout

__all__ = [
    "draw_action",
    "draw_actions",
    "generator_params",
    "mechanics_fields",
    "seeds",
    "sub_agent_tiers",
    "swarm_configs",
    "task_graphs",
]


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``env.reset(seed=...)``: integers in ``[0, 2**32 - 1]`` (shrink to 0)."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def _pair(value, name: str, lo: float, hi: float, cast=int) -> tuple:
    """Normalise a knob given as a number or a ``(lo, hi)`` pair, checked against ``[lo, hi]``."""
    pair = (value, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise TypeError(f"{name} must be a number or a (lo, hi) pair in [{lo}, {hi}], got {value!r}")
    a, b = cast(pair[0]), cast(pair[1])
    if not lo <= a <= b <= hi:
        raise ValueError(f"{name} must be a number or a (lo, hi) pair with {lo} <= lo <= hi <= {hi}, got {value!r}")
    return a, b


def task_graphs(
    n_max: int = DEFAULT_N_MAX,
    *,
    nodes: int | tuple[int, int] | None = None,
    width: int | None = None,
    depth: int | None = None,
    edge_density: float = 0.5,
    work: int | tuple[int, int] = (1, 8),
    kinds: Sequence[str] = KINDS,
    extra_targets: bool = True,
    shuffle: bool = True,
    budget_factor: float | tuple[float, float] = (0.5, 3.0),
    family: str = "hypothesis",
) -> st.SearchStrategy[TaskGraph]:
    """Valid :class:`~swarmgym.graph.TaskGraph` s of any shape within ``n_max`` nodes.

    A graph is built in layers: each node after the first layer has one parent in
    the layer just above (so the number of layers is the depth in nodes) plus a
    drawn set of extra parents from any earlier layer. Sinks are always targets
    (every node must lead to a target); other nodes may be targets too.

    :param n_max: largest number of nodes, in [1, 1024].
    :param nodes: number of nodes, an int or a ``(lo, hi)`` pair within ``[1, n_max]``; default ``(1, n_max)``.
    :param width: most nodes in one layer, >= 1; default unlimited.
    :param depth: most layers (nodes on the longest chain), >= 1; default unlimited.
    :param edge_density: in [0, 1]: at most this fraction of the earlier nodes
        becomes extra parents of a node (0 gives forests of in-trees).
    :param work: work of each node, an int or a ``(lo, hi)`` pair within ``[1, MAX_WORK]``.
    :param kinds: kind names nodes are drawn from (a non-empty subset of :data:`~swarmgym.graph.KINDS`).
    :param extra_targets: whether non-sink nodes may be targets as well.
    :param shuffle: permute node ids, so that parents may have larger ids than children.
    :param budget_factor: the graph's budget factor, a number or a ``(lo, hi)`` pair in (0, 100].
    :param family: the graphs' family name.
    :raises ValueError: at once, for a knob outside its range, naming it.
    """
    if isinstance(n_max, bool) or not isinstance(n_max, int) or not 1 <= n_max <= 1024:
        raise ValueError(f"n_max must be an integer in [1, 1024], got {n_max!r}")
    n_lo, n_hi = _pair((1, n_max) if nodes is None else nodes, "nodes", 1, n_max)
    for name, value in (("width", width), ("depth", depth)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
    if isinstance(edge_density, bool) or not isinstance(edge_density, (int, float)) or not 0.0 <= edge_density <= 1.0:
        raise ValueError(f"edge_density must be a number in [0, 1], got {edge_density!r}")
    w_lo, w_hi = _pair(work, "work", 1, MAX_WORK)
    kinds = tuple(kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds!r}")
    b_lo, b_hi = _pair(budget_factor, "budget_factor", 1e-3, 100.0, float)
    width = width or n_hi
    depth = depth or n_hi
    if width * depth < n_lo:
        raise ValueError(f"width x depth = {width} x {depth} cannot hold the minimum of {n_lo} nodes")
    return _task_graphs(
        n_max, n_lo, n_hi, width, depth, float(edge_density), (w_lo, w_hi), kinds, bool(extra_targets), bool(shuffle),
        (b_lo, b_hi), str(family),
    )  # fmt: skip


@st.composite
def _task_graphs(draw, n_max, n_lo, n_hi, width, depth, edge_density, work, kinds, extra_targets, shuffle, budget, family) -> TaskGraph:
    """The drawing half of :func:`task_graphs` (arguments already validated)."""
    (w_lo, w_hi), (b_lo, b_hi) = work, budget

    # 1. layer sizes: the first layer, then further layers while nodes remain
    n_target = draw(st.integers(n_lo, min(n_hi, width * depth)), label="n_nodes")
    sizes: list[int] = []
    remaining = n_target
    while remaining > 0:
        layers_left = depth - len(sizes)
        # each layer must leave room: the rest must fit in the layers still allowed
        lo = max(1, remaining - (layers_left - 1) * width)
        sizes.append(draw(st.integers(lo, min(width, remaining)), label="layer_size"))
        remaining -= sizes[-1]
    n = sum(sizes)

    # 2. parents: one in the layer above, extras from any earlier layer
    parents: list[list[int]] = []
    start_prev, start = 0, 0
    for layer, size in enumerate(sizes):
        for _ in range(size):
            if layer == 0:
                parents.append([])
                continue
            spine = draw(st.integers(start_prev, start - 1), label="spine_parent")
            candidates = [p for p in range(start) if p != spine]
            max_extra = math.floor(edge_density * len(candidates))
            extra = draw(st.sets(st.sampled_from(candidates), max_size=max_extra), label="extra_parents") if max_extra else set()
            parents.append(sorted({spine, *extra}))
        start_prev, start = start, start + size

    # 3. work, kinds, targets
    work_list = draw(st.lists(st.integers(w_lo, w_hi), min_size=n, max_size=n), label="work")
    kind_list = draw(st.lists(st.sampled_from(kinds), min_size=n, max_size=n), label="kinds")
    has_child = {p for ps in parents for p in ps}
    sinks = [i for i in range(n) if i not in has_child]
    others = [i for i in range(n) if i in has_child]
    targets = set(sinks)
    if extra_targets and others:
        targets |= draw(st.sets(st.sampled_from(others)), label="extra_targets")

    # 4. relabel nodes (identity when shrunk)
    perm = draw(st.permutations(range(n)), label="node_ids") if shuffle and n > 1 else list(range(n))
    new_parents: list[list[int]] = [[] for _ in range(n)]
    new_work, new_kind = [0] * n, [""] * n
    for old, new in enumerate(perm):
        new_parents[new] = [perm[p] for p in parents[old]]
        new_work[new] = work_list[old]
        new_kind[new] = kind_list[old]
    factor = draw(st.floats(b_lo, b_hi, allow_nan=False, allow_infinity=False), label="budget_factor") if b_lo < b_hi else b_lo
    return TaskGraph(new_work, new_kind, new_parents, sorted(perm[t] for t in targets), family=family, budget_factor=factor, n_max=n_max)


@st.composite
def swarm_configs(draw, *, max_subagents: int = 8, spawn_ticks: int = 2, mechanics: bool = False) -> SwarmConfig:
    """:class:`~swarmgym.config.SwarmConfig` s: caps, attempts, spawn latency and reliability,
    and with ``mechanics=True`` the orchestration mechanics of ``docs/mechanics.md``.

    Shrinks towards no sub-agents at all, one spawn per turn, one attempt, no spawn
    latency and perfect sub-agents (and every mechanic off).

    :param max_subagents: largest ``max_subagents`` drawn, in [0, 64].
    :param spawn_ticks: largest ``spawn_ticks`` drawn, in [0, 16].
    :param mechanics: also draw, each on or off, progressive revelation, verification (random
        :class:`~swarmgym.config.Verification`), 0 to 3 sub-agent tiers with random fields, hidden
        reliability and the coordination tax (:func:`mechanics_fields`).
    """
    if isinstance(max_subagents, bool) or not isinstance(max_subagents, int) or not 0 <= max_subagents <= 64:
        raise ValueError(f"max_subagents must be an integer in [0, 64], got {max_subagents!r}")
    if isinstance(spawn_ticks, bool) or not isinstance(spawn_ticks, int) or not 0 <= spawn_ticks <= 16:
        raise ValueError(f"spawn_ticks must be an integer in [0, 16], got {spawn_ticks!r}")
    if not isinstance(mechanics, bool):
        raise TypeError(f"mechanics must be a bool, got {mechanics!r}")
    probability = st.floats(0.0, 0.95, allow_nan=False)
    reliability = st.one_of(
        st.just(SubAgentReliability.perfect()),
        st.just(SubAgentReliability()),
        st.builds(
            SubAgentReliability,
            fail_base=st.tuples(*[probability] * len(KINDS)),
            wrong_base=st.tuples(*[probability] * len(KINDS)),
            fail_per_parent=st.floats(0.0, 0.5),
            wrong_per_parent=st.floats(0.0, 0.5),
            max_jitter=st.integers(0, 3),
        ),
    )
    return SwarmConfig(
        max_subagents=draw(st.integers(0, max_subagents), label="max_subagents"),
        max_spawns_per_turn=draw(st.integers(1, max(1, max_subagents)), label="max_spawns_per_turn"),
        max_attempts=draw(st.integers(1, 4), label="max_attempts"),
        spawn_ticks=draw(st.integers(0, spawn_ticks), label="spawn_ticks"),
        reliability=draw(reliability, label="reliability"),
        **(draw(mechanics_fields(), label="mechanics") if mechanics else {}),
    )


def sub_agent_tiers() -> st.SearchStrategy[SubAgentTier]:
    """:class:`~swarmgym.config.SubAgentTier` s with random fields (shrink to the default tier)."""
    return st.builds(
        SubAgentTier,
        name=st.sampled_from(("standard", "fast", "careful")),
        slowdown_percent=st.integers(10, 400),
        error_scale=st.floats(0.0, 5.0, allow_nan=False),
        token_percent=st.integers(0, 400),
        price_scale=st.floats(0.0, 10.0, allow_nan=False),
    )


@st.composite
def mechanics_fields(draw) -> dict[str, Any]:
    """The mechanics fields of a :class:`~swarmgym.config.SwarmConfig` (keyword arguments), each
    drawn on or off: ``progressive``; ``verification`` (random ticks); ``tiers`` (0 to
    :data:`~swarmgym.config.MAX_TIERS` tiers, :func:`sub_agent_tiers`); ``hidden_reliability``
    (a random ``(lo, hi)`` in [0, 4]); ``coordination`` (random tax). Shrinks to all off."""
    out: dict[str, Any] = {"progressive": draw(st.booleans(), label="progressive")}
    if draw(st.booleans(), label="verification?"):
        out["verification"] = Verification(
            base_ticks=draw(st.integers(1, 4), label="verify_base_ticks"),
            work_percent=draw(st.integers(0, 200), label="verify_work_percent"),
            ticks_per_parent=draw(st.integers(0, 2), label="verify_ticks_per_parent"),
        )
    out["tiers"] = tuple(draw(st.lists(sub_agent_tiers(), max_size=MAX_TIERS), label="tiers"))
    if draw(st.booleans(), label="hidden_reliability?"):
        lo, hi = sorted(
            draw(st.tuples(st.floats(0.0, 4.0, allow_nan=False), st.floats(0.0, 4.0, allow_nan=False)), label="hidden_reliability")
        )
        out["hidden_reliability"] = (lo, hi)
    if draw(st.booleans(), label="coordination?"):
        out["coordination"] = CoordinationTax(
            turn_input_per_result=draw(st.integers(0, 500), label="turn_input_per_result"),
            merge_work_per_subagent_input=draw(st.integers(0, 3), label="merge_work_per_subagent_input"),
        )
    return out


def _param_strategy(p: Param, lo: float, hi: float) -> st.SearchStrategy:
    """Values of one declared parameter within ``[lo, hi]``."""
    if p.kind == "float":
        return st.floats(float(lo), float(hi), allow_nan=False, allow_infinity=False)
    ilo, ihi = math.ceil(lo), math.floor(hi)
    if p.kind == "int":
        return st.integers(ilo, ihi)
    # int_range: a single int, or an ordered (lo, hi) pair
    pair = st.tuples(st.integers(ilo, ihi), st.integers(ilo, ihi)).map(lambda ab: (min(ab), max(ab)))
    return st.one_of(st.integers(ilo, ihi), pair)


def _resolve_family(family: Any) -> type[TaskGenerator]:
    if isinstance(family, str):
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {sorted(FAMILIES)} or a TaskGenerator subclass, got {family!r}")
        return FAMILIES[family]
    if isinstance(family, TaskGenerator):
        return type(family)
    if isinstance(family, type) and issubclass(family, TaskGenerator):
        return family
    raise TypeError(f"family must be a family name or a TaskGenerator subclass, got {family!r}")


def generator_params(
    family: str | type[TaskGenerator] | TaskGenerator,
    n_max: int = DEFAULT_N_MAX,
    *,
    limits: dict[str, tuple[float, float]] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for ``family(n_max=n_max, **kwargs)`` drawn from its declared ranges.

    Each :class:`~swarmgym.families.Param` is drawn within ``[lo, upper(n_max)]``
    (``int_range`` parameters as an int or an ordered pair). Known cross-checks
    are respected while drawing (DependentChains: ``chains x length <= n_max``,
    VerifiedPipeline: ``pipelines x stages <= n_max``, DeepResearch: ``1 + 2 x width + sections
    <= n_max``, at the upper ends); any other cross-check of a user's family is respected by
    filtering (the drawn set must construct). ``Mixed`` draws a non-empty subset of
    its families, each with its own drawn parameters, and positive weights.

    :param family: a built-in family name, a :class:`~swarmgym.families.TaskGenerator`
        subclass or an instance of one.
    :param n_max: the padding size the generator is built for.
    :param limits: optional ``{name: (lo, hi)}`` narrowing declared ranges (e.g. to keep
        work or budgets small in fast tests); intersected with the declared range.
    :raises ValueError: at once, for an unknown family or limit.
    """
    cls = _resolve_family(family)
    limits = dict(limits or {})
    declared = {p.name for p in cls.params}
    unknown = sorted(set(limits) - declared - {p for f in FAMILIES.values() for p in (q.name for q in f.params)})
    if unknown:
        raise ValueError(f"limits names unknown parameters {unknown}; {cls.name} declares {sorted(declared)}")
    for p in cls.params:
        if p.name in limits and max(float(p.lo), limits[p.name][0]) > min(float(p.upper(n_max)), limits[p.name][1]):
            raise ValueError(
                f"{cls.name}: limits leave {p.name} an empty range (declared [{p.lo}, {p.upper(n_max)}], limits {limits[p.name]})"
            )
    if issubclass(cls, Mixed):
        return _mixed_params(n_max, limits)
    return _generator_params(cls, n_max, limits)


@st.composite
def _mixed_params(draw, n_max: int, limits: dict) -> dict[str, Any]:
    """Mixed: a non-empty subset of its families, each with drawn parameters, and positive weights."""
    names = draw(st.lists(st.sampled_from(Mixed.FAMILY_ORDER), min_size=1, unique=True), label="mixed_families")
    families = {name: draw(generator_params(name, n_max, limits=limits)) for name in names}
    weights = draw(st.lists(st.floats(0.1, 10.0), min_size=len(names), max_size=len(names)), label="mixed_weights")
    return {"families": families, "weights": weights}


#: The built-in families' cross-checks, respected while drawing: (family, parameter) -> (the
#: parameter drawn before it, the cap on this one's upper end given n_max and that one's upper end).
_CROSS_CAPS: dict[tuple[str, str], tuple[str, Callable[[int, int], int]]] = {
    ("DependentChains", "length"): ("chains", lambda n_max, chains: n_max // chains),
    ("VerifiedPipeline", "stages"): ("pipelines", lambda n_max, pipelines: n_max // pipelines),
    ("DeepResearch", "sections"): ("width", lambda n_max, width: n_max - 1 - 2 * width),
}


@st.composite
def _generator_params(draw, cls: type[TaskGenerator], n_max: int, limits: dict) -> dict[str, Any]:
    """The drawing half of :func:`generator_params` (arguments already validated)."""
    values: dict[str, Any] = {}
    for p in cls.params:
        lo, hi = float(p.lo), float(p.upper(n_max))
        if p.name in limits:
            lo, hi = max(lo, limits[p.name][0]), min(hi, limits[p.name][1])
        cap = _CROSS_CAPS.get((cls.name, p.name))
        if cap is not None and cap[0] in values:
            other = values[cap[0]]
            hi = min(hi, cap[1](n_max, other if isinstance(other, int) else other[1]))
        values[p.name] = draw(_param_strategy(p, lo, hi), label=p.name)
    try:
        cls(n_max=n_max, **values)
    except ValueError:
        assume(False)  # a cross-check of the family rejects this set; draw another
    return values


def draw_action(
    data,
    mask: np.ndarray,
    *,
    serial_only: bool = False,
    spawn_first: bool = False,
    answer: bool = False,
    label: str = "action",
    layout: ActionLayout | None = None,
) -> int:
    """Draw one valid action from a live action mask (for use with ``st.data()``).

    ``answer`` (the last action) is only drawn when it is the sole valid action or
    when ``answer=True`` asks for it; draw the episode length separately, so that
    shrinking shortens episodes instead of mixing answers into them.

    :param data: the ``st.data()`` object of the running test.
    :param mask: ``bool[ActionLayout(n_max).n]``, True = valid (``info["action_mask"]``).
    :param serial_only: draw only ``do`` actions (the ``do`` block of the layout);
        answer when none is valid.
    :param spawn_first: draw among the valid ``spawn`` actions while there are any
        (a delegating orchestrator: high concurrency, episodes that finish).
    :param answer: return the answer action (checked to be valid).
    :param label: shown in hypothesis's report of the drawn value.
    :param layout: the env's :class:`~swarmgym.layout.ActionLayout` (``env.unwrapped.layout``);
        needed for the extended layout, default: the base layout of the mask's size.
    :returns: the action index.
    :raises ValueError: if the mask allows nothing (the episode should have ended).
    """
    mask = np.asarray(mask, dtype=bool)
    if layout is not None:
        if not isinstance(layout, ActionLayout) or mask.shape != (layout.n,):
            raise ValueError(f"mask must be a 1-D bool array of size layout.n, got shape {mask.shape} for {layout!r}")
        lay = layout
    else:
        try:
            lay = ActionLayout.for_actions(mask.size) if mask.ndim == 1 else None
        except ValueError:
            lay = None
    if lay is None:
        raise ValueError(f"mask must be a 1-D bool array of size ActionLayout(n_max).n = 2 n_max + 2, got shape {mask.shape}")
    answer_action = lay.answer
    if answer:
        return answer_action
    if serial_only:
        valid = lay.do + np.flatnonzero(lay.block(mask, "do"))
    else:
        valid = np.flatnonzero(mask)
        valid = valid[valid != answer_action]
    if spawn_first and not serial_only:
        is_spawn = np.zeros(valid.shape, dtype=bool)
        for name, _per_node in lay.blocks:  # spawn, and spawn_1, spawn_2 in the extended layout
            if name.startswith("spawn"):
                start = lay[name]
                is_spawn |= (valid >= start) & (valid < start + lay.n_max)
        spawns = valid[is_spawn]
        valid = spawns if spawns.size else valid
    if valid.size == 0:
        if not mask.any():
            raise ValueError("the mask allows no action")
        return answer_action if mask[answer_action] else int(np.flatnonzero(mask)[0])
    return int(data.draw(st.sampled_from(valid.tolist()), label=label))


def draw_actions(data, masks: Any, *, serial_only: bool = False, label: str = "actions", layout: ActionLayout | None = None) -> np.ndarray:
    """Draw one valid action per env from a batched mask ``bool[num_envs, A]``.

    Rows with no valid action (an env between episodes) get action 0.

    :param data: the ``st.data()`` object of the running test.
    :param masks: a numpy array or torch tensor of shape ``[num_envs, ActionLayout(n_max).n]``.
    :param serial_only: as in :func:`draw_action`.
    :param layout: as in :func:`draw_action`.
    :returns: ``int64[num_envs]``.
    """
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2:
        raise ValueError(f"masks must have shape [num_envs, ActionLayout(n_max).n], got {masks.shape}")
    out = np.zeros(masks.shape[0], dtype=np.int64)
    for e, row in enumerate(masks):
        if row.any():
            out[e] = draw_action(data, row, serial_only=serial_only, label=f"{label}[{e}]", layout=layout)
    return out
