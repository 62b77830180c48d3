"""ActionLayout's two additions: the layout of a given action count, and v0.1's dict-style access."""

from __future__ import annotations

import pytest

from swarmgym.env import SwarmEnv, action_layout
from swarmgym.layout import ActionLayout


@pytest.mark.parametrize("n_max", [1, 2, 7, 32, 1024])
def test_action_layout__for_actions_inverts_n(n_max):
    assert ActionLayout.for_actions(ActionLayout(n_max).n) == ActionLayout(n_max)


@pytest.mark.parametrize("n_actions", [0, 1, 2, 3, 5, 67])
def test_action_layout__for_actions_rejects_counts_no_layout_has(n_actions):
    with pytest.raises(ValueError, match=r"n_actions must be 2 \* n_max \+ 2 for some n_max >= 1"):
        ActionLayout.for_actions(n_actions)


def test_action_layout__dict_access_matches_the_attributes_and_v0_1_names():
    lay = ActionLayout(32)
    assert (
        [lay[k] for k in ("do", "spawn", "wait", "answer", "n")] == [lay.do, lay.spawn, lay.wait, lay.answer, lay.n] == [0, 32, 64, 65, 66]
    )
    with pytest.raises(KeyError):
        lay["jump"]
    assert action_layout(32) == lay  # swarmgym.env's v0.1 name
    assert SwarmEnv(n_max=32).layout == lay
