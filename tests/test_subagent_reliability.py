"""Sub-agent reliability: the per-kind base rate plus the per-parent term, by hand and in the drawn fates."""

from __future__ import annotations

import numpy as np
import pytest

from swarmgym import SubAgentReliability, SwarmConfig, TaskGraph
from swarmgym.simulator import FAIL, OK, WRONG, draw_fates, subagent_probabilities

# a merge with 3 parents, two searches with 1, a plan with none
GRAPH = TaskGraph([1, 1, 1, 1, 1], ["plan", "search", "search", "reason", "merge"], [(), (0,), (0,), (0,), (1, 2, 3)])


def test_subagent_probabilities__base_by_kind_plus_per_parent_term_by_hand():
    rel = SubAgentReliability(
        fail_base=(0.01, 0.02, 0.03, 0.04), wrong_base=(0.05, 0.06, 0.07, 0.08), fail_per_parent=0.1, wrong_per_parent=0.2, max_jitter=0
    )
    p_fail, p_wrong = subagent_probabilities(GRAPH, SwarmConfig(reliability=rel))
    np.testing.assert_allclose(p_fail, [0.01, 0.02 + 0.1, 0.02 + 0.1, 0.03 + 0.1, 0.04 + 3 * 0.1])
    np.testing.assert_allclose(p_wrong, [0.05, 0.06 + 0.2, 0.06 + 0.2, 0.07 + 0.2, 0.08 + 3 * 0.2])


def test_subagent_probabilities__capped_at_0_95():
    rel = SubAgentReliability(fail_base=(0.9,) * 4, wrong_base=(0.0,) * 4, fail_per_parent=0.5, wrong_per_parent=0.5)
    p_fail, p_wrong = subagent_probabilities(GRAPH, SwarmConfig(reliability=rel))
    np.testing.assert_allclose(p_fail, [0.9, 0.95, 0.95, 0.95, 0.95])
    np.testing.assert_allclose(p_wrong, [0.0, 0.5, 0.5, 0.5, 0.95])


@pytest.mark.parametrize("per_parent", ["fail", "wrong"])
def test_draw_fates__more_parents_fail_or_err_more_often(per_parent):
    """Only the per-parent term differs between the nodes of one kind: the frequencies must follow it."""
    graph = TaskGraph([1] * 6, ["search"] * 6, [(), (0,), (0, 1), (0, 1, 2), (0, 1, 2, 3), (0, 1, 2, 3, 4)])
    zero = (0.0,) * 4
    other = "wrong" if per_parent == "fail" else "fail"
    rel = SubAgentReliability(
        fail_base=zero, wrong_base=zero, **{f"{per_parent}_per_parent": 0.15, f"{other}_per_parent": 0.0}, max_jitter=0
    )
    config = SwarmConfig(max_attempts=16, reliability=rel)
    rng = np.random.default_rng(0)
    outcome = np.concatenate([draw_fates(graph, config, rng).outcome for _ in range(400)], axis=1)  # 6400 attempts per node
    code = FAIL if per_parent == "fail" else WRONG
    freq = (outcome == code).mean(axis=1)
    np.testing.assert_allclose(freq, 0.15 * np.arange(6), atol=0.02)
    assert ((outcome == OK) | (outcome == code)).all()
