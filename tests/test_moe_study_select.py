"""swarmgym study --select: checkpoint selection on validation episodes, evaluation on the held-out ones."""

from __future__ import annotations

import json

import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.collapse import play_paired
from swarmgym.metrics import Stat
from swarmgym.moe.model import ModelConfig, OrchestratorNet
from swarmgym.moe.ppo import CHECKPOINT_FORMAT
from swarmgym.moe.study import checkpoint_candidates, cli_main, paired_report, selection_report
from swarmgym.moe.train import EVAL_SEED_OFFSET, VALIDATION_SEED_OFFSET
from swarmgym.orchestrators import load_orchestrator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDE = "swarmgym/WideSearch-v0"


def save_net(path, seed: int) -> str:
    torch.manual_seed(seed)
    net = OrchestratorNet(ModelConfig.preset("small"))
    torch.save({"format": CHECKPOINT_FORMAT, "model_config": net.config.to_dict(), "extended": False, "model": net.state_dict()}, path)
    return str(path)


def test_checkpoint_candidates__natural_order_prefixes_and_no_match(tmp_path):
    for name in ("leg10.pt", "leg2.pt", "leg1.pt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "leg3.pt").mkdir()  # a folder is not a checkpoint
    assert checkpoint_candidates(str(tmp_path / "leg*.pt")) == [f"moe:{tmp_path / n}" for n in ("leg1.pt", "leg2.pt", "leg10.pt")]
    assert checkpoint_candidates(f"sb3:{tmp_path / 'leg2.pt'}") == [f"sb3:{tmp_path / 'leg2.pt'}"]
    assert checkpoint_candidates(f"moe:{tmp_path / 'leg1*'}") == [f"moe:{tmp_path / 'leg1.pt'}", f"moe:{tmp_path / 'leg10.pt'}"]
    with pytest.raises(ValueError, match="no checkpoint matches"):
        checkpoint_candidates(str(tmp_path / "nothing*.pt"))


def test_selection_report__chooses_the_best_on_validation_seeds_and_evaluates_it_on_the_held_out_ones():
    groups = [["sequential_crew", "critical_path"], ["static_fanout"]]
    text, fig = selection_report(groups, WIDE, 5, 4, reference="sequential_crew")
    # the validation figures are those of the candidates' own rows on the validation seeds
    val = {
        spec: play_paired(load_orchestrator(spec), WIDE, 5, seed_offset=VALIDATION_SEED_OFFSET)
        for spec in ("sequential_crew", "critical_path")
    }
    mean = {spec: Stat.of(r["score"] for r in rows).mean for spec, rows in val.items()}
    assert mean["critical_path"] != mean["sequential_crew"]
    best = max(mean, key=mean.get)
    assert fig["choices"][0] == {"candidates": groups[0], "chosen": best, "validation_score": pytest.approx(mean[best])}
    assert fig["choices"][1]["chosen"] == "static_fanout"  # a group of one
    assert fig["validation"]["policies"]["critical_path"]["score"]["mean"] == pytest.approx(mean["critical_path"])
    # the chosen play the held-out evaluation episodes, exactly as --paired reports them
    _, paired = paired_report([best, "static_fanout"], WIDE, 4, reference="sequential_crew")
    assert fig["evaluation"] == paired
    held_out = play_paired(load_orchestrator(best), WIDE, 4, seed_offset=EVAL_SEED_OFFSET)
    assert fig["evaluation"]["policies"][best]["score"]["mean"] == pytest.approx(Stat.of(r["score"] for r in held_out).mean)
    assert f"seeds {VALIDATION_SEED_OFFSET}..{VALIDATION_SEED_OFFSET + 4}" in text
    assert f"seeds {EVAL_SEED_OFFSET}..{EVAL_SEED_OFFSET + 3}" in text


def test_selection_report__a_tie_goes_to_the_first_candidate(tmp_path):
    a = f"moe:{save_net(tmp_path / 'a.pt', 0)}"
    b = f"moe:{save_net(tmp_path / 'b.pt', 0)}"  # the same weights
    _, fig = selection_report([[b, a]], WIDE, 3, 2, reference="critical_path")
    assert fig["validation"]["policies"][f"{a} (greedy)"]["score"] == fig["validation"]["policies"][f"{b} (greedy)"]["score"]
    assert fig["choices"][0]["chosen"] == b


def test_selection_report__evaluation_episodes_may_not_reach_the_validation_seeds():
    with pytest.raises(ValueError, match="--eval-episodes must be at most 10000"):
        selection_report([["critical_path"]], WIDE, 2, VALIDATION_SEED_OFFSET - EVAL_SEED_OFFSET + 1)


def test_study_cli__select_writes_its_report_and_rejects_bad_input_before_any_work(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    for leg, seed in ((1, 0), (2, 1)):
        save_net(runs / f"leg{leg}.pt", seed)
    out = tmp_path / "sel"
    argv = ["--select", str(runs / "leg*.pt"), "--env-id", "WideSearch-v0", "--validation-episodes", "3", "--eval-episodes", "2"]
    assert cli_main([*argv, "--policy-mode", "both", "--out", str(out)]) == 0
    saved = json.loads((out / "selection.json").read_text())
    assert saved["choices"][0]["candidates"] == [f"moe:{runs / 'leg1.pt'}", f"moe:{runs / 'leg2.pt'}"]
    chosen = saved["choices"][0]["chosen"]
    assert list(saved["evaluation"]["policies"]) == [f"{chosen} (greedy)", f"{chosen} (sampled)"]
    assert "--select" in saved["command"] and f"**`{chosen}`**" in (out / "selection.md").read_text()
    capsys.readouterr()
    bad = [
        (["--select", str(runs / "none*.pt")], "--select: no checkpoint matches"),
        (["--select", str(runs / "leg1.pt"), "--paired", "critical_path"], "--select: choose --select or --paired"),
        (["--select", str(runs / "leg1.pt"), "--eval-episodes", "10001"], "--eval-episodes: must be an integer in [1, 10000]"),
        (["--select", str(runs / "leg1.pt"), "--validation-episodes", "0"], "--validation-episodes: must be an integer in [1, 10000000]"),
    ]
    for args, message in bad:
        fresh = tmp_path / "never"
        assert cli_main([*args, "--out", str(fresh)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not fresh.exists()
