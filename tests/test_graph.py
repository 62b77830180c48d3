"""TaskGraph: validation messages name the node; bounds match hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from swarmgym import TaskGraph
from swarmgym.graph import MAX_WORK


def test_graph__bounds_of_a_diamond():
    #   0(2) -> 1(3) -> 3(1)
    #        -> 2(1) ->
    g = TaskGraph([2, 3, 1, 1], ["plan", "search", "search", "merge"], [(), (0,), (0,), (1, 2)])
    assert g.total_work == 7
    assert g.critical_path == 6  # 2 + 3 + 1
    assert g.bottom_level.tolist() == [6, 4, 2, 1]
    assert g.targets.tolist() == [False, False, False, True]  # default: the sinks
    assert g.lower_bound(0) == 7  # one agent: all the work
    assert g.lower_bound(1) == 6  # max(6, ceil(7 / 2) = 4)
    assert g.lower_bound(8) == 6
    assert g.budget(1) == 12  # ceil(2.0 * 6)
    assert g.depth() == 3


def test_graph__lower_bound_is_work_bound_when_wide():
    g = TaskGraph([1] * 10, ["search"] * 10, [()] * 10)
    assert g.critical_path == 1
    assert g.lower_bound(1) == 5 and g.lower_bound(3) == 3 and g.lower_bound(9) == 1


@pytest.mark.parametrize(
    "work, kind, parents, message",
    [
        ([1, 1, 1], ["search"] * 3, [(2,), (0,), (1,)], r"node \d: is on a cycle"),
        ([1, 1], ["search"] * 2, [(1,), (1,)], r"node 1: a node cannot be its own parent"),
        ([1, 1], ["search"] * 2, [(), (5,)], r"node 1: parent 5 does not exist"),
        ([1, 0], ["search"] * 2, [(), (0,)], r"node 1: work must be in \[1, 64\]"),
        ([1, MAX_WORK + 1], ["search"] * 2, [(), (0,)], r"node 1: work must be in"),
        ([1, 1], ["search", "dance"], [(), (0,)], r"node 1: kind must be one of"),
        ([1, 1], ["search"], [(), (0,)], r"kind has 1 entries"),
        ([1, 1], ["search"] * 2, [(), (0, 0)], r"node 1: parent listed twice"),
        ([], [], [], r"at least 1 node"),
    ],
)
def test_graph__malformed_input_is_rejected_naming_the_node(work, kind, parents, message):
    with pytest.raises(ValueError, match=message):
        TaskGraph(work, kind, parents)


def test_graph__cycle_message_lists_the_cycle():
    with pytest.raises(ValueError, match=r"cycle \(.*->.*->.*\)"):
        TaskGraph([1, 1, 1, 1], ["search"] * 4, [(), (3,), (1,), (2,)])


def test_graph__too_many_nodes_names_n_max():
    with pytest.raises(ValueError, match=r"5 nodes; n_max allows at most 4"):
        TaskGraph([1] * 5, ["search"] * 5, [()] * 5, n_max=4)


def test_graph__non_integer_work_is_a_type_error():
    with pytest.raises(TypeError, match=r"node 0: work must be an integer"):
        TaskGraph([1.5], ["search"], [()])


def test_graph__node_leading_to_no_target_is_rejected():
    with pytest.raises(ValueError, match=r"node 2: leads to no target"):
        TaskGraph([1, 1, 1], ["search"] * 3, [(), (0,), (0,)], targets=[1])


def test_graph__targets_must_exist():
    with pytest.raises(ValueError, match=r"target 7 does not exist"):
        TaskGraph([1], ["search"], [()], targets=[7])


def test_graph__budget_factor_must_be_positive():
    with pytest.raises(ValueError, match=r"budget_factor must be a finite number > 0"):
        TaskGraph([1], ["search"], [()], budget_factor=0)


def test_graph__kinds_accept_names_and_indices():
    g = TaskGraph([1, 1], [0, "merge"], [(), (0,)])
    assert g.kind.tolist() == [0, 3]
    assert isinstance(g.work, np.ndarray)
