"""Property-based testing of swarmgym environments, for the suite and for users' own families.

One call checks a family inside a pytest test::

    from swarmgym.testing import check_family

    def test_my_family():
        check_family("mylab/MyTask-v0")        # or a zero-argument env factory

It either passes or raises :class:`InvariantViolation`: the invariant broken, what
was seen, and a ready-to-paste :func:`replay` call with the shrunk seed and actions.

The parts, for writing properties of your own:

* :mod:`swarmgym.testing.strategies`: hypothesis strategies (:func:`task_graphs`,
  :func:`generator_params`, :func:`swarm_configs` (with ``mechanics=True`` the
  orchestration mechanics too), :func:`seeds`) and :func:`draw_action` /
  :func:`draw_actions`, which draw from a live action mask inside ``st.data()``.
* :mod:`swarmgym.testing.invariants`: :data:`INVARIANTS`, :func:`run_episode`
  (one checked episode under any policy), :func:`check_graph`, :func:`check_metrics`.
* :mod:`swarmgym.testing.check`: :func:`check_family`, :func:`replay`, :data:`PROFILES`.
* :mod:`swarmgym.testing.batched`: :func:`check_batched`, the batched engine held to
  the reference env.
* :mod:`swarmgym.testing.fuzz`: ``python -m swarmgym.testing.fuzz --episodes 10000``, a
  deep fuzz of every suite family through every invariant (outside CI).

Needs hypothesis (``pip install "swarmgym[test]"``).
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('swarmgym.testing needs hypothesis; install the test extra: pip install "swarmgym[test]"') from exc

from swarmgym.testing.batched import check_batched, replay_batched
from swarmgym.testing.check import PROFILES, as_factory, check_family, drawn_policy, replay
from swarmgym.testing.invariants import (
    INVARIANTS,
    METRIC_KEYS,
    Broken,
    EpisodeRecord,
    InvariantViolation,
    check_graph,
    check_metrics,
    run_episode,
)
from swarmgym.testing.strategies import (
    draw_action,
    draw_actions,
    generator_params,
    mechanics_fields,
    seeds,
    sub_agent_tiers,
    swarm_configs,
    task_graphs,
)

__all__ = [
    "INVARIANTS",
    "METRIC_KEYS",
    "PROFILES",
    "Broken",
    "EpisodeRecord",
    "InvariantViolation",
    "as_factory",
    "check_batched",
    "check_family",
    "check_graph",
    "check_metrics",
    "draw_action",
    "draw_actions",
    "drawn_policy",
    "generator_params",
    "mechanics_fields",
    "replay",
    "replay_batched",
    "run_episode",
    "seeds",
    "sub_agent_tiers",
    "swarm_configs",
    "task_graphs",
]
