"""The README's claims that can drift: the suite table, the set-up commands, the CI script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import swarmgym
from swarmgym.registration import suite_specs

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
pytestmark = pytest.mark.skipif(not README.exists(), reason="needs the source tree")


def test_readme__suite_table_lists_every_id_with_its_budget():
    text = README.read_text()
    rows = re.findall(r"^\| `(swarmgym/[\w-]+)` \|.*\| ([\d.]+ × floor|per family) \|$", text, flags=re.M)
    specs = suite_specs()
    assert [r[0] for r in rows] == [s["id"] for s in specs]
    for (env_id, budget), spec in zip(rows, specs):
        factor = spec["kwargs"].get("generator_kwargs", {}).get("budget_factor")
        if factor is None:
            assert budget == "per family", env_id
        else:
            assert budget == f"{factor:.1f} × floor", env_id
    assert all(s["kwargs"]["config"]["max_subagents"] == 8 for s in specs)


def test_readme__ci_runs_exactly_the_readme_test_command():
    text = README.read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", text)
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    for part in test_command.split(" && "):
        assert part in ci, part


def test_readme__quick_start_runs():
    code = re.search(r"## Quick start\n\n```python\n(.+?)```", README.read_text(), flags=re.S).group(1)
    exec(compile(code, "README quick start", "exec"), {})


def test_readme__user_family_example_runs(request):
    import gymnasium as gym

    code = re.search(r"## Your own task family\n.*?```python\n(.+?)```", README.read_text(), flags=re.S).group(1)
    request.addfinalizer(lambda: gym.registry.pop("mylab/Tiny-v0", None))
    scope: dict = {}
    exec(compile(code, "README user family", "exec"), scope)
    obs, _ = scope["env"].reset(seed=0)
    assert scope["env"].observation_space.contains(obs)
    assert swarmgym.SUITE_IDS  # the suite is still registered beside it
