"""``swarmgym train`` / ``swarmgym study`` smoke runs and the checkpoint as an orchestrator."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.moe import study, train
from swarmgym.moe.policy import MoEOrchestrator, load_policy


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quick_output(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("train")
    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        import io
        import sys

        out = io.StringIO()
        mp.setattr(sys, "stdout", out)
        rc = train.cli_main(["--quick", "--run-dir", str(run_dir), "--no-progress", "--eval-seeds", "8", "--engine", "gym"])
    torch.set_num_threads(before)  # the trainer sets its thread count process-wide
    assert rc == 0
    return run_dir, out.getvalue()


@pytest.fixture(scope="module")
def quick_run(quick_output):
    return quick_output[0]


def test_train_cli__prints_a_compact_table_with_both_policy_modes(quick_output):
    run_dir, printed = quick_output
    lines = printed.splitlines()
    assert lines and max(len(line) for line in lines) <= 100
    label = f"moe:{run_dir.name}"
    for orchestrator in (f"{label} (greedy)", f"{label} (sampled)", "sequential_crew", "critical_path"):
        assert any(line.strip().startswith(orchestrator) for line in lines), orchestrator
    assert "Mixed-v0 / all (8 episodes)" in printed
    assert "moe (moe)" not in printed


def test_train_cli__quick_run_writes_the_run_folder(quick_run, capsys):
    for name in (
        "checkpoint.pt",
        "config.json",
        "progress.csv",
        "table.md",
        "table.csv",
        "training_curves.png",
        "concurrency.png",
        "expert_load.png",
        "summary.json",
    ):
        assert (quick_run / name).is_file(), name
    table = (quick_run / "table.md").read_text()
    for orchestrator in (
        f"moe:{quick_run.name} (greedy)",
        f"moe:{quick_run.name} (sampled)",
        "sequential_crew",
        "delegating_manager",
        "static_fanout",
        "critical_path",
    ):
        assert f"| {orchestrator} |" in table
    csv_text = (quick_run / "table.csv").read_text()
    assert f",moe:{quick_run.name} (greedy)," in csv_text and f",moe:{quick_run.name} (sampled)," in csv_text
    assert "| Mixed-v0 | all |" in table
    cfg = json.loads((quick_run / "config.json").read_text())
    assert cfg["env_id"] == "swarmgym/Mixed-v0" and cfg["parl"] is True and cfg["lambda_schedule"] == "linear"
    assert any(tb.name.startswith("events") for tb in (quick_run / "tb").iterdir())


def test_load_policy__acts_validly_in_the_env(quick_run):
    from swarmgym.orchestrators import load_orchestrator

    policy = load_orchestrator(f"moe:{quick_run / 'checkpoint.pt'}")
    assert isinstance(policy, MoEOrchestrator) and policy.name.startswith("moe")
    env = gym.make("swarmgym/WideSearch-v0", disable_env_checker=True)
    obs, info = env.reset(seed=0)
    for _ in range(200):
        batch = {k: v[None] for k, v in obs.items()}
        a = int(policy.act(batch, info["action_mask"][None])[0])
        assert info["action_mask"][a]
        obs, _, term, _, info = env.step(a)
        if term:
            break
    assert term
    # a run folder works too, and sampling mode stays valid
    sampler = load_policy(quick_run, deterministic=False)
    mask = np.zeros((1, 66), dtype=bool)
    mask[0, [3, 40, 65]] = True
    nodes = np.zeros((1, 32, 20), dtype=np.float32)
    nodes[0, :8, 0] = 1.0
    for _ in range(20):
        assert sampler.act({"nodes": nodes, "globals": np.zeros((1, 10), np.float32)}, mask)[0] in (3, 40, 65)


def test_load_policy__rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_policy(tmp_path / "missing.pt")
    import torch

    torch.save({"format": "something else"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a swarmgym MoE checkpoint"):
        load_policy(tmp_path / "x.pt")


def test_train_cli__resume_of_a_finished_run_trains_nothing_and_keeps_its_log(quick_run, tmp_path):
    import shutil

    from swarmgym.moe.ppo import read_checkpoint

    run = tmp_path / "r"
    shutil.copytree(quick_run, run)
    log = (run / "progress.csv").read_text()
    before = read_checkpoint(run)
    rc = train.cli_main(["--resume", str(run / "checkpoint.pt"), "--no-eval", "--no-plots", "--no-progress"])
    assert rc == 0
    after = read_checkpoint(run)
    assert after["update"] == before["update"] == 2 and after["global_step"] == before["global_step"]
    for name, value in before["model"].items():
        assert torch.equal(after["model"][name], value), name
    assert (run / "progress.csv").read_text() == log


def test_train_cli__bad_settings_exit_2(capsys):
    assert train.cli_main(["--quick", "--set", "nope=1", "--no-eval"]) == 2
    assert "unknown field" in capsys.readouterr().err
    assert train.cli_main(["--quick", "--set", "gamma=3", "--no-eval"]) == 2


def test_study_cli__quick_report(tmp_path):
    out = tmp_path / "study"
    rc = study.cli_main(["--quick", "--seeds", "1", "--conditions", "r_perf", "dense_parl", "--scan", "handoff_latency", "--out", str(out)])
    assert rc == 0
    report = (out / "report.md").read_text()
    assert "| r_perf | 1 |" in report and "| dense_parl | 1 |" in report
    assert "handoff_latency" in report and "## Knob scan" in report
    assert (out / "curves.png").is_file()
    results = json.loads((out / "results.json").read_text())
    assert set(results["conditions"]) == {"r_perf", "dense_parl"}
    assert results["conditions"]["dense_parl"][0]["parameters"]["total"] == results["conditions"]["dense_parl"][0]["parameters"]["active"]


def test_study_cli__time_to_target_reports_every_seed(tmp_path):
    rc = study.cli_main(["--time-to-target", "--quick", "--seeds", "2", "--skip-sb3", "--max-seconds", "2", "--out", str(tmp_path)])
    assert rc == 0
    text = (tmp_path / "time_to_target.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| MoE orchestrator")]
    assert [row.split("|")[2].strip() for row in rows] == ["0", "1"]
    data = json.loads((tmp_path / "time_to_target.json").read_text())
    assert [run["seed"] for run in data["runs"]] == [0, 1] and all(run["moe"]["checks"] for run in data["runs"])
    assert "median time to target" in text


@pytest.mark.parametrize(
    "argv,expected",
    [
        ([], ("critical_path", 30, 0.5)),  # the main job: a clone of critical_path with a fitted critic
        (["--warm-start", "none"], (None, 6, 0.0)),
        (["--warm-start", "sequential_crew"], ("sequential_crew", 6, 0.0)),
        (["--quick"], (None, 6, 0.0)),
    ],
)
def test_make_config__the_main_job_warm_starts_from_critical_path_unless_told_otherwise(argv, expected):
    cfg = train.make_config(train.build_parser().parse_args(argv))
    assert (cfg.warm_start, cfg.warm_start_epochs, cfg.warm_start_value_coef) == expected


def test_train_cli__init_from_takes_the_checkpoints_model_and_no_warm_start(quick_run):
    cfg = train.make_config(train.build_parser().parse_args(["--init-from", str(quick_run), "--total-steps", "4096"]))
    saved = torch.load(quick_run / "checkpoint.pt", weights_only=False)["model_config"]
    assert cfg.init_from == str(quick_run) and cfg.warm_start is None
    assert cfg.model.to_dict() == saved and cfg.model.d_model == 16  # the quick run's model, not the default one


@pytest.mark.parametrize(
    "extra,option",
    [
        (["--warm-start", "critical_path"], "--warm-start"),
        (["--model", "small"], "--model"),
        (["--ffn", "dense"], "--ffn"),
        (["--set", "model.d_model=32"], "--set"),
    ],
)
def test_train_cli__init_from_refuses_options_that_would_choose_another_start(quick_run, tmp_path, capsys, extra, option):
    rc = train.cli_main(["--init-from", str(quick_run), "--run-dir", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and f"{option}: " in err and "--init-from" in err
    assert not (tmp_path / "run").exists()


def test_train_cli__init_from_a_missing_checkpoint_is_one_line_naming_the_option(tmp_path, capsys):
    assert train.cli_main(["--init-from", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--init-from: no checkpoint at" in err and not (tmp_path / "run").exists()


def test_train_cli__init_from_a_policy_of_another_layout_is_refused_before_any_work(quick_run, tmp_path, capsys):
    argv = ["--init-from", str(quick_run), "--env-id", "swarmgym/DeepResearch-v0", "--run-dir", str(tmp_path / "run")]
    assert train.cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--init-from: " in err and "base layout" in err and "extended layout" in err
    assert not (tmp_path / "run").exists()


def test_export_policy__a_small_weights_only_file_that_plays_and_inits_like_the_checkpoint(quick_run, tmp_path, capsys):
    from swarmgym.cli import main
    from swarmgym.collapse import play_paired
    from swarmgym.moe.ppo import POLICY_EXPORT_FORMAT, PPOTrainer, read_checkpoint
    from swarmgym.orchestrators import load_orchestrator

    out = tmp_path / "policy.pt"
    assert main(["export-policy", str(quick_run), "--out", str(out)]) == 0
    assert f"moe:{out}" in capsys.readouterr().out
    full = read_checkpoint(quick_run)
    saved = torch.load(out, map_location="cpu", weights_only=True)  # no pickled objects in it
    assert saved["format"] == POLICY_EXPORT_FORMAT
    assert saved["model_config"] == full["model_config"] and saved["env_id"] == full["env_id"]
    assert saved["global_step"] == full["global_step"] and saved["system_info"] == full["system_info"]
    assert saved["source"] == {"checkpoint": str(quick_run / "checkpoint.pt"), "format": full["format"]}
    assert not {"optimizer", "history", "engine", "rng"} & set(saved)
    assert out.stat().st_size * 5 < (quick_run / "checkpoint.pt").stat().st_size
    # it plays the same episodes, greedy and sampled, as the checkpoint it came from
    greedy = [play_paired(load_orchestrator(f"moe:{p}"), "swarmgym/WideSearch-v0", 3, seed_offset=7) for p in (quick_run, out)]
    sampled = [play_paired(load_policy(p, deterministic=False), "swarmgym/WideSearch-v0", 3, seed_offset=7) for p in (quick_run, out)]
    assert greedy[0] == greedy[1] and sampled[0] == sampled[1]
    # --init-from takes its network
    cfg = train.make_config(train.build_parser().parse_args(["--init-from", str(out), "--total-steps", "4096", "--quick"]))
    trainer = PPOTrainer(cfg, warm_start=False)
    trainer.load_initial_policy(out)
    for name, value in full["model"].items():
        assert torch.equal(trainer.model.state_dict()[name], value), name
    # an export of an export keeps the first source
    again = tmp_path / "again.pt"
    assert main(["export-policy", str(out), "--out", str(again)]) == 0
    assert torch.load(again, weights_only=True)["source"] == saved["source"]


def test_export_policy__cannot_be_resumed_and_bad_input_is_one_line(quick_run, tmp_path, capsys):
    from swarmgym.cli import main

    run = tmp_path / "run"
    run.mkdir()
    assert main(["export-policy", str(quick_run), "--out", str(run / "checkpoint.pt")]) == 0
    capsys.readouterr()
    assert train.cli_main(["--resume", str(run), "--no-eval", "--no-plots", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is a policy export" in err and "not resumed" in err and err.count("\n") == 1, err
    for argv, message in (
        ([str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.pt")], "checkpoint: no checkpoint at"),
        ([str(quick_run), "--out", str(tmp_path)], "--out: "),
        ([str(quick_run), "--out", str(tmp_path / "no" / "p.pt")], "--out: no folder"),
    ):
        assert main(["export-policy", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "p.pt").exists() and not (tmp_path / "no").exists()
