"""The deep fuzz command (``python -m swarmgym.testing.fuzz``): what it plays, counts and reports, on a tiny budget."""

from __future__ import annotations

import json
import time

import gymnasium as gym
import pytest

import swarmgym
from swarmgym.families import FAMILIES
from swarmgym.testing import fuzz
from swarmgym.testing.invariants import InvariantViolation


def test_family_ids__every_family_of_the_suite_with_its_dict_id():
    ids = fuzz.family_ids()
    suite_families = {gym.spec(i).kwargs["generator"] for i in swarmgym.SUITE_IDS if "-flat-" not in i} & set(FAMILIES)
    assert set(ids) == suite_families
    assert {"WideSearch", "SerialReasoning", "DependentChains", "LayeredDAG", "Mixed", "Workflows"} <= set(ids)
    for family, env_id in ids.items():
        assert "-flat-" not in env_id and gym.spec(env_id).kwargs["generator"] == family


def test_fuzz_family__plays_every_part_to_its_goal():
    result = fuzz.fuzz_family("WideSearch", 6, 600, chunk=2, max_steps=30, batched_examples=3, log=lambda line: None)
    assert result["breaks"] == []
    assert (result["suite_episodes"], result["drawn_episodes"], result["episodes"]) == (3, 3, 6)
    assert result["batched_examples"] == 3
    assert result["batched_episodes"] == 3 * fuzz.BATCHED_ENVS * fuzz.BATCHED_EPISODES
    assert result["complete"] is True and result["env_id"] == "swarmgym/WideSearch-v0"


def test_fuzz_family__batched_part_draws_the_dynamics_in_half_its_examples(monkeypatch):
    calls = []

    def fake_check_batched(env_id, profile, **kwargs):
        calls.append((env_id, profile.max_examples, kwargs["drawn_configs"], kwargs["num_envs"], kwargs["episodes"]))

    monkeypatch.setattr("swarmgym.testing.check_batched", fake_check_batched)
    result = fuzz.fuzz_family("LayeredDAG", 2, 600, chunk=16, max_steps=10, batched_examples=5, log=lambda line: None)
    drawn = sum(n for _, n, d, _, _ in calls if d)
    fixed = sum(n for _, n, d, _, _ in calls if not d)
    assert (fixed, drawn) == (3, 2)
    assert {(c[0], c[3], c[4]) for c in calls} == {("swarmgym/LayeredDAG-v0", fuzz.BATCHED_ENVS, fuzz.BATCHED_EPISODES)}
    assert result["batched_episodes"] == 5 * fuzz.BATCHED_ENVS * fuzz.BATCHED_EPISODES


def test_fuzz_family__a_break_is_reported_and_counts_the_episodes_up_to_it(monkeypatch):
    suite_calls = [0]

    def breaks_from_the_third_suite_episode_on(env, seed, policy, **kwargs):
        if kwargs["target"].startswith("<factory>"):
            return  # a drawn setting: no break
        suite_calls[0] += 1
        if suite_calls[0] >= 3:
            raise InvariantViolation("budget", "planted", seed=seed, actions=[], step=0, target="'swarmgym/WideSearch-v0'")

    monkeypatch.setattr(fuzz, "run_episode", breaks_from_the_third_suite_episode_on)
    lines = []
    result = fuzz.fuzz_family("WideSearch", 10, 600, chunk=5, max_steps=10, log=lines.append)
    assert [b["invariant"] for b in result["breaks"]] == ["budget"]
    assert result["breaks"][0]["part"] == "suite" and "planted" in result["breaks"][0]["detail"]
    assert result["suite_episodes"] == 3  # two clean episodes and the one that broke; the shrinker's replays are not counted
    assert result["drawn_episodes"] == 5
    assert lines == ["  WideSearch [suite] BROKE budget: planted"]


def test_main__writes_the_summary_and_exits_0_without_breaks(tmp_path, capsys):
    out = tmp_path / "fuzz.json"
    code = fuzz.main(["--episodes", "2", "--families", "SerialReasoning", "--chunk", "1", "--max-steps", "20", "--out", str(out)])
    assert code == 0
    summary = json.loads(out.read_text())
    assert [(r["family"], r["episodes"], r["breaks"]) for r in summary] == [("SerialReasoning", 2, [])]
    assert "all: 2 episodes, 0 batched episodes, 0 breaks" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["--batched-examples", "-1"], "--batched-examples must be >= 0, got -1"),
        (["--max-seconds", "0"], "--max-seconds must be > 0, got 0.0"),
    ],
)
def test_main__bad_options_are_one_line_naming_the_option(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        fuzz.main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_fuzz_family__chunks_share_the_time_between_the_parts(monkeypatch):
    """Chunks are sized from each part's measured rate: a slow part cannot eat the others' time."""
    sizes: dict[str, list[int]] = {"episodes": [], "batched": []}

    def slow_episodes(setting, n, max_steps):  # 20 ms an episode
        sizes["episodes"].append(n)
        time.sleep(0.02 * n)
        return n, None

    def batched(env_id, n, max_steps, drawn_configs):  # 5 ms an example
        sizes["batched"].append(n)
        time.sleep(0.005 * n)
        return n * fuzz.BATCHED_ENVS * fuzz.BATCHED_EPISODES, None

    monkeypatch.setattr(fuzz, "_episodes_chunk", slow_episodes)
    monkeypatch.setattr(fuzz, "_batched_chunk", batched)
    result = fuzz.fuzz_family("WideSearch", 10**6, 2.0, chunk=250, batched_examples=10**6, log=lambda line: None)
    assert sizes["episodes"][:2] == [fuzz.FIRST_CHUNK] * 2 and sizes["batched"][:2] == [fuzz.FIRST_CHUNK] * 2
    assert max(sizes["episodes"]) < 60  # a full chunk of 250 would take 5 s
    assert result["seconds"] < 3.5 and result["complete"] is False
    assert result["suite_episodes"] > fuzz.FIRST_CHUNK and result["drawn_episodes"] > fuzz.FIRST_CHUNK
    assert result["batched_examples"] > 2 * fuzz.FIRST_CHUNK
