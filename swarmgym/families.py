"""Task families: generators of task graphs with a tunable amount of parallelism.

A generator is any callable ``generator(rng: np.random.Generator) -> TaskGraph``;
a plain function will do. The built-in families are classes whose parameters are
declared (:class:`Param`), validated at construction, and drawn per episode where
a ``(lo, hi)`` pair is given. Every random draw comes from the ``rng`` passed in
(the env's seeded ``np_random``), so the same seed gives the same graph.

=================  ==================================  ==========================
family             structure                           parallelism available
=================  ==================================  ==========================
WideSearch         plan -> W independent lookups ->    ~ W (embarrassingly
                   merge                               parallel)
SerialReasoning    a chain of D reasoning steps        1 (parallelism only hurts)
DependentChains    K chains of length L, cross-links   ~ K, limited by links
LayeredDAG         random layered DAG; ``parallelism``  the dial
                   trades width for depth
Mixed              one of the above per episode        the policy must recognise
DeepResearch       plan -> W searches -> a high-context ~ W (W seen only when the
                   reading each -> section merges      plan is done)
VerifiedPipeline   K chains of extract -> reason ->    ~ K; an early wrong step
                   report steps, cross-links           poisons its chain
=================  ==================================  ==========================

The last two are built for the mechanics of ``docs/mechanics.md`` (progressive revelation,
verification, sub-agent tiers, hidden reliability, the coordination tax); their registered
ids turn those on (``docs/families_mechanics.md``).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from swarmgym.graph import MAX_WORK, MERGE, PLAN, REASON, SEARCH, TaskGraph

Generator = Callable[[np.random.Generator], TaskGraph]

DEFAULT_N_MAX = 32


@dataclass(frozen=True)
class Param:
    """A declared generator parameter.

    ``kind`` is ``"int"``, ``"float"`` or ``"int_range"`` (an int, or a ``(lo, hi)``
    pair drawn uniformly per episode). ``hi`` may be a callable of ``n_max``.
    """

    name: str
    kind: str
    lo: float
    hi: float | Callable[[int], float]
    default: Any
    doc: str

    def upper(self, n_max: int) -> float:
        return self.hi(n_max) if callable(self.hi) else self.hi

    def validate(self, value: Any, n_max: int, family: str) -> Any:
        lo, hi = self.lo, self.upper(n_max)
        where = f"{family}: {self.name}"
        if self.kind == "float":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"{where} must be a number in [{lo}, {hi}], got {value!r}")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{where} must be in [{lo}, {hi}], got {value}")
            return float(value)
        if self.kind == "int":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{where} must be an integer in [{lo}, {hi}], got {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{where} must be in [{lo}, {hi}], got {value}")
            return int(value)
        # int_range
        pair = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) else value
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2) or any(
            isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in pair
        ):
            raise TypeError(f"{where} must be an integer or a (lo, hi) pair of integers in [{lo}, {hi}], got {value!r}")
        a, b = int(pair[0]), int(pair[1])
        if not (lo <= a <= b <= hi):
            raise ValueError(f"{where} must be an integer or a (lo, hi) pair with {lo} <= lo <= hi <= {hi}, got {value!r}")
        return (a, b)


class TaskGenerator:
    """Base of the built-in families: declared, validated parameters and ``n_max``.

    Subclasses declare ``params`` and implement :meth:`generate`. Calling the
    generator returns a valid :class:`TaskGraph` of at most ``n_max`` nodes. A
    subclass of your own should build it with ``TaskGraph(...)``, which validates;
    the built-in families use ``TaskGraph._trusted`` (no validation at every reset),
    and tests/test_families.py proves their outputs valid instead.
    """

    name: ClassVar[str] = "custom"
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, n_max: int = DEFAULT_N_MAX, **kwargs: Any) -> None:
        if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)):
            raise TypeError(f"{self.name}: n_max must be an integer in [2, 1024], got {n_max!r}")
        if not 2 <= n_max <= 1024:
            raise ValueError(f"{self.name}: n_max must be in [2, 1024], got {n_max}")
        known = {p.name for p in self.params}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameter(s) {unknown}; known: {sorted(known)}")
        self.n_max = int(n_max)
        for p in self.params:
            if p.upper(self.n_max) < p.lo:
                least = next((m for m in range(2, 1025) if p.upper(m) >= p.lo), None)
                raise ValueError(f"{self.name}: n_max={self.n_max} is too small for this family (its {p.name} needs n_max >= {least})")
        values = {}
        self._defaulted = frozenset(p.name for p in self.params if p.name not in kwargs)
        for p in self.params:
            if p.name in kwargs:
                values[p.name] = p.validate(kwargs[p.name], self.n_max, self.name)
                continue
            try:
                values[p.name] = p.validate(p.default, self.n_max, self.name)
            except ValueError as exc:  # the default does not fit this n_max: say so, not that the user passed it
                raise ValueError(
                    f"{self.name}: the default {p.name}={p.default!r} does not fit n_max={self.n_max} ({exc}); pass {p.name}= explicitly"
                ) from None
        self.kwargs = values
        self._check(values)

    def _check(self, values: dict[str, Any]) -> None:
        """Cross-parameter checks (override); raise ValueError naming the parameters."""

    @classmethod
    def least_n_max(cls) -> int:
        """The smallest ``n_max`` whose declared ranges are all non-empty (2 with no such limit)."""
        return next((m for m in range(2, 1025) if all(p.upper(m) >= p.lo for p in cls.params)), 1025)

    def generate(self, rng: np.random.Generator) -> TaskGraph:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, rng: np.random.Generator) -> TaskGraph:
        return self.generate(rng)

    @staticmethod
    def draw(rng: np.random.Generator, pair: tuple[int, int]) -> int:
        """A uniform integer in the inclusive range ``pair``."""
        return int(rng.integers(pair[0], pair[1] + 1))

    @classmethod
    def param_table(cls, n_max: int = DEFAULT_N_MAX) -> list[tuple[str, str, Any, str]]:
        """``(name, range, default, meaning)`` rows, for documentation and test strategies."""
        return [(p.name, f"[{p.lo}, {p.upper(n_max)}]", p.default, p.doc) for p in cls.params]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{type(self).__name__}(n_max={self.n_max}, {args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.n_max == other.n_max and self.kwargs == other.kwargs

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.n_max, tuple(sorted(self.kwargs.items()))))


_WORK = lambda n_max: MAX_WORK  # noqa: E731  (upper bound of every work parameter)


class WideSearch(TaskGenerator):
    """plan -> ``width`` independent lookups -> merge. Targets: every lookup and the merge
    (item-F1, as WideSearch scores a table of items). Parallelism available ~ width."""

    name = "WideSearch"
    params = (
        Param("width", "int_range", 1, lambda n: n - 2, (8, 20), "independent lookups"),
        Param("lookup_work", "int_range", 1, _WORK, (1, 4), "work of each lookup"),
        Param("plan_work", "int", 1, MAX_WORK, 1, "work of the plan node"),
        Param("merge_work", "int", 1, MAX_WORK, 2, "work of the merge node"),
        Param("budget_factor", "float", 0.1, 100.0, 2.0, "budget = ceil(factor x lower bound)"),
    )

    def generate(self, rng: np.random.Generator) -> TaskGraph:
        k = self.kwargs
        width = self.draw(rng, k["width"])
        lo, hi = k["lookup_work"]
        lookups = rng.integers(lo, hi + 1, size=width).tolist()
        work = [k["plan_work"], *lookups, k["merge_work"]]
        kind = [PLAN] + [SEARCH] * width + [MERGE]
        parents = [()] + [(0,)] * width + [tuple(range(1, width + 1))]
        targets = list(range(1, width + 2))
        return TaskGraph._trusted(work, kind, parents, targets, family=self.name, budget_factor=k["budget_factor"])


class SerialReasoning(TaskGenerator):
    """A chain of ``depth`` reasoning steps; only the last step's answer is scored.
    Parallelism available: 1 (sub-agents can only add risk and hand-off cost)."""

    name = "SerialReasoning"
    params = (
        Param("depth", "int_range", 1, lambda n: n, (8, 16), "reasoning steps in the chain"),
        Param("step_work", "int_range", 1, _WORK, (1, 3), "work of each step"),
        Param("budget_factor", "float", 0.1, 100.0, 1.5, "budget = ceil(factor x lower bound)"),
    )

    def generate(self, rng: np.random.Generator) -> TaskGraph:
        k = self.kwargs
        depth = self.draw(rng, k["depth"])
        lo, hi = k["step_work"]
        work = rng.integers(lo, hi + 1, size=depth).tolist()
        parents = [()] + [(i - 1,) for i in range(1, depth)]
        return TaskGraph._trusted(work, [REASON] * depth, parents, [depth - 1], family=self.name, budget_factor=k["budget_factor"])


class DependentChains(TaskGenerator):
    """``chains`` chains of multi-hop lookups of ``length`` steps; each step after the
    first also needs, with probability ``link_prob``, the previous step of another
    chain. Targets: the chain ends. Parallelism available ~ chains, limited by links."""

    name = "DependentChains"
    params = (
        Param("chains", "int_range", 1, lambda n: n, (3, 6), "number of chains"),
        Param("length", "int_range", 1, lambda n: n, (3, 5), "steps per chain"),
        Param("link_prob", "float", 0.0, 1.0, 0.3, "probability of a cross-link per step"),
        Param("step_work", "int_range", 1, _WORK, (1, 3), "work of each step"),
        Param("budget_factor", "float", 0.1, 100.0, 1.5, "budget = ceil(factor x lower bound)"),
    )

    def _check(self, values: dict[str, Any]) -> None:
        if values["chains"][1] * values["length"][1] > self.n_max:
            defaulted = [name for name in ("chains", "length") if name in self._defaulted]
            note = (
                f" ({' and '.join(defaulted)} at the default; pass {' and '.join(n + '=' for n in defaulted)} to fit)" if defaulted else ""
            )
            raise ValueError(
                f"{self.name}: chains x length must be <= n_max={self.n_max} at their upper ends, "
                f"got {values['chains'][1]} x {values['length'][1]}{note}"
            )

    def generate(self, rng: np.random.Generator) -> TaskGraph:
        k = self.kwargs
        n_chains, length = self.draw(rng, k["chains"]), self.draw(rng, k["length"])
        lo, hi = k["step_work"]
        work = rng.integers(lo, hi + 1, size=n_chains * length).tolist()
        links = rng.random(n_chains * length) < k["link_prob"]
        other = rng.integers(0, max(1, n_chains - 1), size=n_chains * length)
        parents: list[tuple[int, ...]] = []
        for c in range(n_chains):
            for j in range(length):
                i = c * length + j
                if j == 0:
                    parents.append(())
                    continue
                ps = [i - 1]
                if n_chains > 1 and links[i]:
                    c2 = int(other[i]) + (1 if other[i] >= c else 0)  # another chain, uniformly
                    ps.append(c2 * length + j - 1)
                parents.append(tuple(sorted(ps)))
        targets = [c * length + length - 1 for c in range(n_chains)]
        return TaskGraph._trusted(work, [SEARCH] * len(work), parents, targets, family=self.name, budget_factor=k["budget_factor"])


class LayeredDAG(TaskGenerator):
    """A random layered DAG of ``n_nodes`` nodes whose ``parallelism`` dial in [0, 1]
    trades width for depth at fixed size: ``1 + round((1 - parallelism) * (n - 1))``
    layers (0 -> a chain, 1 -> all independent). Each node after the first layer has
    one parent in the layer above plus each other node there with ``edge_prob``.
    Nodes with 3+ parents merge; others search or reason (even odds). Targets: sinks."""

    name = "LayeredDAG"
    params = (
        Param("n_nodes", "int_range", 2, lambda n: n, (16, 24), "nodes in the graph"),
        Param("parallelism", "float", 0.0, 1.0, 0.5, "0 = a chain, 1 = all independent"),
        Param("edge_prob", "float", 0.0, 1.0, 0.2, "extra parent probability per node of the layer above"),
        Param("work", "int_range", 1, _WORK, (1, 4), "work of each node"),
        Param("budget_factor", "float", 0.1, 100.0, 1.5, "budget = ceil(factor x lower bound)"),
    )

    def generate(self, rng: np.random.Generator) -> TaskGraph:
        k = self.kwargs
        n = self.draw(rng, k["n_nodes"])
        n_layers = 1 + int(round((1.0 - k["parallelism"]) * (n - 1)))
        sizes = 1 + rng.multinomial(n - n_layers, np.full(n_layers, 1.0 / n_layers))
        lo, hi = k["work"]
        work = rng.integers(lo, hi + 1, size=n).tolist()
        edge_prob = k["edge_prob"]
        parents: list[tuple[int, ...]] = []
        kind: list[int] = []
        start_prev, start = 0, 0
        for layer, size in enumerate(sizes.tolist()):
            for _ in range(size):
                if layer == 0:
                    parents.append(())
                else:
                    first = int(rng.integers(start_prev, start))
                    # one uniform per node of the layer above; below edge_prob it is an extra parent
                    draws = rng.random(start - start_prev).tolist()
                    extra = [start_prev + m for m, u in enumerate(draws) if u < edge_prob and start_prev + m != first]
                    parents.append(tuple(sorted([first, *extra])))
                ps = parents[-1]
                kind.append(MERGE if len(ps) >= 3 else (SEARCH if rng.random() < 0.5 else REASON))
            start_prev, start = start, start + size
        if sizes[0] == 1 and n_layers > 1:
            kind[0] = PLAN
        return TaskGraph._trusted(work, kind, parents, None, family=self.name, budget_factor=k["budget_factor"])


class Mixed(TaskGenerator):
    """Each episode draws one family (by ``weights``) and one instance of it; the
    policy must recognise which regime it is in. ``families`` maps family names to
    their keyword arguments (default: each suite family at its defaults)."""

    name = "Mixed"
    FAMILY_ORDER: ClassVar[tuple[str, ...]] = ("WideSearch", "SerialReasoning", "DependentChains", "LayeredDAG")
    params = ()

    def __init__(self, n_max: int = DEFAULT_N_MAX, families: dict[str, dict] | None = None, weights: Any = None, **unknown: Any) -> None:
        if unknown:
            raise TypeError(
                f"Mixed: unknown parameter(s) {sorted(unknown)}; known: ['families', 'weights'] (a family's own parameters go in families)"
            )
        super().__init__(n_max)
        families = {name: {} for name in self.FAMILY_ORDER} if families is None else families
        if not isinstance(families, dict) or not families:
            raise TypeError(f"Mixed: families must be a non-empty dict of family name -> kwargs, got {families!r}")
        self.generators: list[TaskGenerator] = []
        for name, kwargs in families.items():
            if name not in FAMILIES or name == "Mixed":
                raise ValueError(f"Mixed: families keys must be in {sorted(set(FAMILIES) - {'Mixed'})}, got {name!r}")
            if kwargs is not None and not isinstance(kwargs, dict):
                raise TypeError(f"Mixed: families[{name!r}] must be a dict of {name}'s parameters, got {kwargs!r}")
            self.generators.append(FAMILIES[name](n_max=n_max, **(kwargs or {})))
        n = len(self.generators)
        if weights is None:
            weights = [1.0] * n
        if isinstance(weights, np.ndarray):
            weights = weights.tolist()
        if not isinstance(weights, (list, tuple)) or any(
            isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)) for x in weights
        ):
            raise TypeError(f"Mixed: weights must be a list of {n} non-negative numbers (one per family), got {weights!r}")
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"Mixed: weights must be {n} non-negative numbers (one per family) with a positive sum, got {weights!r}")
        self.weights = w / w.sum()
        self._cdf = self.weights.cumsum()
        self._cdf /= self._cdf[-1]
        self.kwargs = {"families": {g.name: g.kwargs for g in self.generators}, "weights": self.weights.tolist()}

    def generate(self, rng: np.random.Generator) -> TaskGraph:
        # rng.choice(len(self.generators), p=self.weights), as numpy computes it: one uniform, its bin of the cdf
        index = int(self._cdf.searchsorted(rng.random(), side="right"))
        return self.generators[index](rng)


class DeepResearch(TaskGenerator):
    """A progressive wide search (deep research): plan -> ``width`` searches -> a reading of each
    search's sources -> ``sections`` merges. Reading ``j`` is high-context work: it needs search
    ``j`` and, with probability ``cross_read_prob``, the next search too (cross-references), so it
    costs more to hand off and errs more in a sub-agent's hands. The readings are split into
    ``sections`` contiguous groups (fewer if ``width`` is smaller), one merge each. Targets: every
    reading (the findings) and every merge (the report's sections). Parallelism available ~ width.

    Designed for the mechanics of ``docs/mechanics.md`` (``envs/deep_research.toml``): with
    progressive revelation the width is seen only when the plan is done, the readings only when
    their searches are; see ``docs/families_mechanics.md``."""

    name = "DeepResearch"
    params = (
        Param("width", "int_range", 1, lambda n: (n - 2) // 2, (6, 12), "searches, each read by one reading node"),
        Param("sections", "int_range", 1, lambda n: (n - 2) // 2, (1, 3), "merge targets (report sections), at most width"),
        Param("search_work", "int_range", 1, _WORK, (1, 3), "work of each search"),
        Param("read_work", "int_range", 1, _WORK, (3, 5), "work of each reading"),
        Param("plan_work", "int", 1, MAX_WORK, 2, "work of the plan node"),
        Param("merge_work", "int", 1, MAX_WORK, 2, "work of each merge node"),
        Param("cross_read_prob", "float", 0.0, 1.0, 0.3, "probability that a reading also needs the next search"),
        Param("budget_factor", "float", 0.1, 100.0, 1.5, "budget = ceil(factor x lower bound)"),
    )

    def _check(self, values: dict[str, Any]) -> None:
        nodes = 1 + 2 * values["width"][1] + values["sections"][1]
        if nodes > self.n_max:
            raise ValueError(
                f"{self.name}: 1 + 2 x width + sections must be <= n_max={self.n_max} at their upper ends, "
                f"got 1 + 2 x {values['width'][1]} + {values['sections'][1]} = {nodes}"
            )

    def generate(self, rng: np.random.Generator) -> TaskGraph:
        k = self.kwargs
        width = self.draw(rng, k["width"])
        sections = min(width, self.draw(rng, k["sections"]))
        searches = rng.integers(k["search_work"][0], k["search_work"][1] + 1, size=width).tolist()
        readings = rng.integers(k["read_work"][0], k["read_work"][1] + 1, size=width).tolist()
        cross = (rng.random(width) < k["cross_read_prob"]).tolist()
        read0, merge0 = 1 + width, 1 + 2 * width
        work = [k["plan_work"], *searches, *readings, *([k["merge_work"]] * sections)]
        kind = [PLAN] + [SEARCH] * width + [REASON] * width + [MERGE] * sections
        parents: list[tuple[int, ...]] = [()] + [(0,)] * width
        for j in range(width):
            if cross[j] and width > 1:
                parents.append(tuple(sorted((1 + j, 1 + (j + 1) % width))))
            else:
                parents.append((1 + j,))
        for s in range(sections):
            lo, hi = s * width // sections, (s + 1) * width // sections
            parents.append(tuple(range(read0 + lo, read0 + hi)))
        targets = list(range(read0, merge0 + sections))
        return TaskGraph._trusted(work, kind, parents, targets, family=self.name, budget_factor=k["budget_factor"])


class VerifiedPipeline(TaskGenerator):
    """``pipelines`` chains of ``stages`` dependent steps: an extraction (search), reasoning
    steps, and a final report (merge) that is the chain's target; each step after the first
    also needs, with probability ``link_prob``, the previous step of another chain. A wrong
    result anywhere upstream makes every output built on it wrong, so an early error that is
    not caught poisons its whole chain (and the chains linked to it); only checking each step
    soon after it returns stops it cheaply. Parallelism available ~ pipelines.

    Designed for the mechanics of ``docs/mechanics.md`` (``envs/verified_pipeline.toml``):
    verification, sub-agent tiers, hidden reliability; see ``docs/families_mechanics.md``."""

    name = "VerifiedPipeline"
    params = (
        Param("pipelines", "int_range", 1, lambda n: n, (3, 5), "number of chains"),
        Param("stages", "int_range", 1, lambda n: n, (4, 6), "steps per chain"),
        Param("link_prob", "float", 0.0, 1.0, 0.2, "probability of a cross-link per step"),
        Param("step_work", "int_range", 1, _WORK, (1, 3), "work of each step"),
        Param("budget_factor", "float", 0.1, 100.0, 1.5, "budget = ceil(factor x lower bound)"),
    )

    def _check(self, values: dict[str, Any]) -> None:
        if values["pipelines"][1] * values["stages"][1] > self.n_max:
            raise ValueError(
                f"{self.name}: pipelines x stages must be <= n_max={self.n_max} at their upper ends, "
                f"got {values['pipelines'][1]} x {values['stages'][1]}"
            )

    def generate(self, rng: np.random.Generator) -> TaskGraph:
        k = self.kwargs
        n_chains, length = self.draw(rng, k["pipelines"]), self.draw(rng, k["stages"])
        lo, hi = k["step_work"]
        work = rng.integers(lo, hi + 1, size=n_chains * length).tolist()
        links = rng.random(n_chains * length) < k["link_prob"]
        other = rng.integers(0, max(1, n_chains - 1), size=n_chains * length)
        parents: list[tuple[int, ...]] = []
        kind: list[int] = []
        for c in range(n_chains):
            for j in range(length):
                i = c * length + j
                kind.append(SEARCH if j == 0 else (MERGE if j == length - 1 else REASON))
                if j == 0:
                    parents.append(())
                    continue
                ps = [i - 1]
                if n_chains > 1 and links[i]:
                    c2 = int(other[i]) + (1 if other[i] >= c else 0)  # another chain, uniformly
                    ps.append(c2 * length + j - 1)
                parents.append(tuple(sorted(ps)))
        targets = [c * length + length - 1 for c in range(n_chains)]
        return TaskGraph._trusted(work, kind, parents, targets, family=self.name, budget_factor=k["budget_factor"])


class Fixed:
    """A generator that always returns the same graph (hand-built toy instances)."""

    def __init__(self, graph: TaskGraph) -> None:
        if not isinstance(graph, TaskGraph):
            raise TypeError(f"Fixed: graph must be a TaskGraph, got {type(graph).__name__}")
        self.graph = graph
        self.n_max = graph.n_nodes

    def __call__(self, rng: np.random.Generator) -> TaskGraph:
        return self.graph

    def __repr__(self) -> str:
        return f"Fixed({self.graph!r})"


FAMILIES: dict[str, type[TaskGenerator]] = {
    cls.name: cls for cls in (WideSearch, SerialReasoning, DependentChains, LayeredDAG, Mixed, DeepResearch, VerifiedPipeline)
}
# swarmgym.workflows adds "Workflows" (real workflow graphs from WfCommons recipes) on import swarmgym


def make_generator(generator: str | Generator, kwargs: dict | None = None, n_max: int | None = None) -> Generator:
    """Resolve ``generator`` into a callable.

    :param generator: a built-in family name (``"WideSearch"``), an import path
        ``"package.module:factory"`` (called with ``kwargs``), or a callable
        ``rng -> TaskGraph`` (used as is; ``kwargs`` must then be empty).
    :param kwargs: keyword arguments for the family or factory.
    :param n_max: passed to built-in families (their padding size).
    """
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError(f"generator_kwargs must be a dict of the generator's parameters or None, got {type(kwargs).__name__}: {kwargs!r}")
    kwargs = dict(kwargs or {})
    if isinstance(generator, str):
        if generator in FAMILIES:
            if n_max is not None:
                kwargs.setdefault("n_max", n_max)
            return FAMILIES[generator](**kwargs)
        if ":" in generator:
            module, _, attr = generator.partition(":")
            try:
                factory = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"generator {generator!r} cannot be imported: {exc}") from exc
            if isinstance(factory, type) and issubclass(factory, TaskGenerator) and n_max is not None:
                kwargs.setdefault("n_max", n_max)
            return factory(**kwargs) if (kwargs or isinstance(factory, type)) else factory
        raise ValueError(f"generator must be a family in {sorted(FAMILIES)}, a 'module:attr' path, or a callable; got {generator!r}")
    if not callable(generator):
        raise TypeError(
            f"generator must be a family name, a 'module:attr' path, or a callable rng -> TaskGraph; got {type(generator).__name__}"
        )
    if kwargs:
        raise TypeError("generator_kwargs are only accepted with a family name or a 'module:attr' path")
    return generator
