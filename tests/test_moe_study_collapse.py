"""swarmgym.collapse (collapse and escape, operationally; paired play) and the latency-valued r_perf."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.collapse import collapse_verdicts, escape_verdict, paired_difference, play_paired
from swarmgym.evaluation import run_episodes
from swarmgym.orchestrators import load_orchestrator
from swarmgym.parl import perf_reward

WIDE = "swarmgym/WideSearch-v0"


@pytest.fixture(scope="module")
def wide_rows():
    n = 40
    return {name: play_paired(load_orchestrator(name), WIDE, n, seed_offset=500, batch=16) for name in ("sequential_crew", "critical_path")}


def test_play_paired__rows_are_in_seed_order_and_match_run_episodes(wide_rows):
    rows = wide_rows["critical_path"]
    assert [r["seed"] for r in rows] == list(range(500, 540))
    rec = run_episodes(load_orchestrator("critical_path"), WIDE, 40, seed_offset=500, batch=16)
    assert np.mean([r["score"] for r in rows]) == pytest.approx(rec.summary()["score"].mean)
    assert np.mean([r["speedup"] for r in rows]) == pytest.approx(rec.summary()["speedup"].mean)
    # pairing: the same seed is the same task for both policies
    crew = wide_rows["sequential_crew"]
    assert [r["task_serial_steps"] for r in crew] == [r["task_serial_steps"] for r in rows]


def test_paired_difference__of_a_policy_with_itself_is_zero_and_mismatched_seeds_raise(wide_rows):
    rows = wide_rows["critical_path"]
    st = paired_difference(rows, rows)
    assert st.mean == 0.0 and st.half_width == 0.0 and st.n == 40
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference(rows, rows[1:])


def test_paired_difference__is_the_mean_of_per_episode_differences(wide_rows):
    a, b = wide_rows["critical_path"], wide_rows["sequential_crew"]
    st = paired_difference(a, b, "score")
    assert st.mean == pytest.approx(np.mean([x["score"] - y["score"] for x, y in zip(a, b)]))
    assert st.low > 0  # critical_path beats the crew on WideSearch's tight budget


def test_collapse_verdicts__the_crew_is_trapped_on_widesearch_and_critical_path_is_not(wide_rows):
    crew = collapse_verdicts(wide_rows["sequential_crew"], wide_rows["critical_path"])["WideSearch"]
    assert crew.serial and crew.trapped and crew.collapsed
    assert crew.collapse_index == pytest.approx(1.0) and crew.task_ideal_speedup >= 2
    cp = collapse_verdicts(wide_rows["critical_path"], wide_rows["critical_path"])["WideSearch"]
    assert not cp.serial and not cp.trapped and not cp.collapsed


def test_collapse_verdicts__serial_play_on_a_serial_task_is_a_choice_not_a_collapse():
    ids = "swarmgym/SerialReasoning-v0"
    crew = play_paired(load_orchestrator("sequential_crew"), ids, 12, batch=12)
    cp = play_paired(load_orchestrator("critical_path"), ids, 12, batch=12)
    v = collapse_verdicts(crew, cp)["SerialReasoning"]
    assert not v.serial and not v.collapsed  # task ideal speedup 1: nothing to collapse from


def test_collapse_verdicts__a_serial_policy_that_loses_nothing_is_not_trapped(wide_rows):
    # same rows as the reference, but marked fully serial: collapse index 1 and yet no return gap
    crew_like = [{**r, "serial_collapse_index": 1.0} for r in wide_rows["critical_path"]]
    v = collapse_verdicts(crew_like, wide_rows["critical_path"])["WideSearch"]
    assert v.serial and not v.trapped and not v.collapsed


def test_escape_verdict__thresholds_are_relative_to_critical_path(wide_rows):
    cp, crew = wide_rows["critical_path"], wide_rows["sequential_crew"]
    assert escape_verdict(cp, cp, cp).escaped
    v = escape_verdict(crew, cp, cp)  # greedy serial, sampled parallel: both must reach it
    assert not v.escaped and v.speedup_needed == pytest.approx(2 / 3 * v.reference_speedup)
    slower = [{**r, "speedup": r["speedup"] * 0.7} for r in cp]  # 0.7 > 2/3 of the speedup, same score
    assert escape_verdict(slower, slower, cp).escaped
    worse = [{**r, "score": r["score"] - 0.06} for r in cp]
    assert not escape_verdict(worse, cp, cp).escaped


def test_perf_reward__latency_form_scales_the_score_by_the_budget_share_left():
    m = {"score": 0.8, "critical_steps": 10.0, "budget": 40.0}
    assert perf_reward(m) == 0.8
    assert perf_reward(m, "latency", 1.0) == pytest.approx(0.8 * 0.75)
    assert perf_reward(m, "latency", 0.5) == pytest.approx(0.8 * (0.5 + 0.5 * 0.75))
    assert perf_reward(m, "latency", 0.0) == pytest.approx(0.8)
    ended = {"score": 0.5, "critical_steps": 40.0, "budget": 40.0}
    assert perf_reward(ended, "latency", 0.5) == pytest.approx(0.25)
    batch = {k: torch.tensor([m[k], ended[k]]) for k in m}
    out = perf_reward(batch, "latency", 1.0)
    assert torch.is_tensor(out) and out.tolist() == pytest.approx([0.6, 0.0])


@pytest.mark.parametrize("kwargs,match", [({"form": "fast"}, "form"), ({"form": "latency", "latency_weight": 1.5}, "latency_weight")])
def test_perf_reward__bad_arguments_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        perf_reward({"score": 1.0, "critical_steps": 1.0, "budget": 2.0}, **kwargs)


def test_ppo_episode_reward__latency_form_pays_more_for_the_same_score_in_fewer_steps():
    from swarmgym.moe.model import ModelConfig
    from swarmgym.moe.ppo import PPOConfig, PPOTrainer

    cfg = PPOConfig(
        env_id=WIDE, num_envs=2, num_steps=4, total_steps=8, parl=False, perf_form="latency", latency_weight=1.0,
        model=ModelConfig.preset("small"), progress=False, tensorboard=False,
    )  # fmt: skip
    trainer = PPOTrainer(cfg)
    done = torch.tensor([True, True])
    metrics = {
        "score": torch.tensor([1.0, 1.0]),
        "critical_steps": torch.tensor([10.0, 30.0]),
        "budget": torch.tensor([40.0, 40.0]),
        "tokens": torch.zeros(2),
    }
    r = trainer.episode_reward(torch.tensor([1.0, 1.0]), metrics, done)["reward"]
    assert r.tolist() == pytest.approx([0.75, 0.25])
    assert not math.isnan(float(r.sum()))


def test_study_paired__cli_writes_paired_differences_against_critical_path(tmp_path, capsys):
    from swarmgym.moe import study

    rc = study.cli_main(
        ["--paired", "critical_path", "sequential_crew", "--env-id", "WideSearch-v0", "--eval-episodes", "12", "--out", str(tmp_path)]
    )
    assert rc == 0
    text = (tmp_path / "paired.md").read_text()
    assert "swarmgym study --paired" in text
    assert "| critical_path | +0.0000 ± 0.0000 | tied (CI spans 0) |" in text  # a policy against itself: exactly 0
    import json

    figures = json.loads((tmp_path / "paired.json").read_text())["figures"]
    crew = figures["policies"]["sequential_crew"]["score_minus_reference"]["WideSearch"]
    assert crew["n"] == 12 and crew["mean"] + crew["half_width"] < 0  # the crew is below critical_path with a CI clear of 0
