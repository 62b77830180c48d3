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


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.+?)```", README.read_text(), flags=re.S)


def test_readme__has_the_examples_it_should():
    blocks = _python_blocks()
    assert len(blocks) >= 5
    assert any("check_family" in b for b in blocks) and any("make_vec" in b for b in blocks)


@pytest.mark.parametrize("index", range(len(_python_blocks())) if README.exists() else [])
def test_readme__python_example_runs(index, request):
    """Every Python block of the README runs as written; test functions it defines are called."""
    import gymnasium as gym

    request.addfinalizer(lambda: gym.registry.pop("mylab/Tiny-v0", None))
    scope: dict = {"__name__": "readme_example"}
    exec(compile(_python_blocks()[index], f"README python block {index}", "exec"), scope)
    for name, value in list(scope.items()):
        if name.startswith("test_") and callable(value):
            value()
    env = scope.get("env")
    if env is not None and hasattr(env, "observation_space"):
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
    assert swarmgym.SUITE_IDS  # the suite is still registered beside it
