"""swarmgym study --paired: policies against a chosen reference on the same held-out episodes."""

from __future__ import annotations

import json

import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.collapse import play_paired
from swarmgym.metrics import Stat
from swarmgym.moe.model import ModelConfig, OrchestratorNet
from swarmgym.moe.ppo import CHECKPOINT_FORMAT
from swarmgym.moe.study import cli_main, paired_report
from swarmgym.moe.train import EVAL_SEED_OFFSET
from swarmgym.orchestrators import load_orchestrator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDE = "swarmgym/WideSearch-v0"


def test_paired_report__differences_ratios_and_learned_policy_rows(tmp_path):
    torch.manual_seed(0)
    net = OrchestratorNet(ModelConfig.preset("small"))
    torch.save(
        {"format": CHECKPOINT_FORMAT, "model_config": net.config.to_dict(), "extended": False, "model": net.state_dict()}, tmp_path / "c.pt"
    )
    spec = f"moe:{tmp_path / 'c.pt'}"
    text, fig = paired_report([spec, "critical_path", "sequential_crew"], WIDE, 6, reference="critical_path", policy_mode="both")
    pol = fig["policies"]
    assert list(pol) == [f"{spec} (greedy)", f"{spec} (sampled)", "critical_path", "sequential_crew"]
    # the reference against itself: no difference, ratio 1
    assert pol["critical_path"]["score_minus_reference"]["WideSearch"] == {"mean": 0.0, "half_width": 0.0, "n": 6}
    assert pol["critical_path"]["critical_steps_ratio"] == 1.0
    # the sequential crew's figures are those of its own rows on the same seeds
    rows = play_paired(load_orchestrator("sequential_crew"), WIDE, 6, seed_offset=EVAL_SEED_OFFSET)
    ref = play_paired(load_orchestrator("critical_path"), WIDE, 6, seed_offset=EVAL_SEED_OFFSET)
    crew = pol["sequential_crew"]
    assert crew["score"]["mean"] == pytest.approx(Stat.of(r["score"] for r in rows).mean)
    assert crew["cost_usd"]["half_width"] == pytest.approx(Stat.of(r["cost_usd"] for r in rows).half_width)
    mean_crit = lambda rs: sum(r["critical_steps"] for r in rs) / len(rs)  # noqa: E731
    assert crew["critical_steps_ratio"] == pytest.approx(mean_crit(rows) / mean_crit(ref))
    assert fig["reference"]["spec"] == "critical_path"
    assert "| critical_path (reference) |" in text and f"| {spec} (sampled) |" in text


def test_study_cli__paired_takes_a_reference(tmp_path):
    out = tmp_path / "paired"
    code = cli_main(
        [
            "--paired",
            "sequential_crew",
            "--reference",
            "static_fanout",
            "--env-id",
            "WideSearch-v0",
            "--eval-episodes",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert "score − static_fanout" in (out / "paired.md").read_text()
    assert json.loads((out / "paired.json").read_text())["figures"]["reference"]["spec"] == "static_fanout"
    assert cli_main(["--paired", "sequential_crew", "--reference", "nobody", "--eval-episodes", "3", "--out", str(out)]) == 2
