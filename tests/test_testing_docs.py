"""docs/testing.md: its worked example runs and passes, its failure example fails as shown,
and its table lists exactly the invariants swarmgym.testing checks."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import pytest

from swarmgym.testing import INVARIANTS, InvariantViolation

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
pytestmark = pytest.mark.skipif(not DOC.exists(), reason="needs the source tree")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.+?)```", DOC.read_text(), flags=re.S)


def test_docs__worked_example_registers_a_family_and_passes():
    scope: dict = {}
    exec(compile(blocks("python")[0], "docs/testing.md example", "exec"), scope)
    scope["test_tiny_family"]()
    assert "mylab/Tiny-v0" not in gym.registry


def test_docs__the_global_rng_mistake_fails_as_shown():
    code = blocks("python")[0].replace("int(rng.integers(2, 5))", "int(np.random.randint(2, 5))")
    scope: dict = {}
    exec(compile(code, "docs/testing.md example, broken", "exec"), scope)
    with pytest.raises(InvariantViolation) as caught:
        scope["test_tiny_family"]()
    shown = blocks("text")[0]
    assert caught.value.invariant == "deterministic"
    for line in shown.splitlines()[-5:]:  # the replay snippet, verbatim
        assert line.strip() in str(caught.value), line
    assert "is all randomness drawn from the rng passed in?" in str(caught.value)


def test_docs__invariant_table_lists_every_invariant():
    section = DOC.read_text().split("### What is checked")[1].split("###")[0]
    assert re.findall(r"^\| `(\w+)` \|", section, flags=re.M) == list(INVARIANTS)


def test_docs__own_property_example_runs():
    scope: dict = {}
    exec(compile(blocks("python")[1], "docs/testing.md own properties", "exec"), scope)
    scope["test_any_graph_any_config"]()
