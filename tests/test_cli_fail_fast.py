"""Every option of ``swarmgym train`` and ``swarmgym evaluate`` is checked before any work starts:
a bad one ends the command with one line naming it and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.evaluation import cli_main as evaluate_main
from swarmgym.moe import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = ["--quick", "--engine", "gym", "--no-plots", "--no-progress"]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "argv, option, words",
    [
        (["--env-id", "NoSuchEnv-v0"], "--env-id", "unknown env id"),
        (["--set", "env_overrides.foo=1"], "--set env_overrides", "foo"),
        (["--set", "env_overrides.config.bogus=1"], "--set env_overrides", "bogus"),
        (["--set", "env_overrides.config.max_subagents=999"], "--set env_overrides", "max_subagents must be in [0, 64]"),
        (["--eval-seeds", "0"], "--eval-seeds", "[1,"),
        (["--total-steps", "-5"], "--total-steps", "-5"),
        (["--total-steps", "100"], "--total-steps", "one rollout"),
        (["--seed", "-1"], "--seed", "-1"),
        (["--num-envs", "0"], "--num-envs", "[1, 65536]"),
        (["--token-cost", "-1"], "--token-cost", "-1"),
        (["--token-cost", "nan"], "--token-cost", "nan"),
        (["--threads", "-1"], "--threads", "-1"),
        (["--checkpoint-seconds", "-1"], "--checkpoint-seconds", "-1"),
        (["--device", "banana"], "--device", "banana"),
        (["--eval-ids", "WideSearch-v0", "Nope-v0"], "--eval-ids", "Nope-v0"),
        (["--set", "gamma=3"], "--set", "gamma"),
        (["--set", "nope=1"], "--set", "unknown field"),
        (["--set", "model.d_model=-4"], "--set", "d_model"),
    ],
)
def test_train_cli__bad_option_exits_2_naming_it_before_any_work(tmp_path, capsys, argv, option, words):
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "falling back to the gymnasium engine" first
        assert train.cli_main([*QUICK, "--run-dir", str(run), *argv]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"swarmgym train: {option}"), line
    assert words in line, line
    assert not (run / "progress.csv").exists() and not (run / "checkpoint.pt").exists()


def test_train_cli__cuda_without_cuda_exits_2():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = subprocess.run(
        [sys.executable, "-m", "swarmgym.cli", "train", "--quick", "--device", "cuda", "--no-eval"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert line.startswith("swarmgym train: --device:") and "CUDA is not available" in line


def test_train_cli__output_folder_must_be_writable_and_new(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert train.cli_main([*QUICK, "--run-dir", str(blocker / "run")]) == 2
    assert _one_line(capsys.readouterr().err).startswith("swarmgym train: --run-dir:")
    assert train.cli_main([*QUICK, "--run-dir", str(blocker)]) == 2
    assert "is a file" in _one_line(capsys.readouterr().err)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"an earlier run")
    assert train.cli_main([*QUICK, "--run-dir", str(run)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("swarmgym train: --run-dir:") and "--resume" in line
    assert (run / "checkpoint.pt").read_bytes() == b"an earlier run"


def test_train_cli__resume_refuses_options_that_shape_the_run(tmp_path, capsys):
    from swarmgym.moe.ppo import PPOConfig, PPOTrainer

    assert train.cli_main(["--resume", str(tmp_path / "no-such-run"), "--no-eval"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("swarmgym train: --resume:") and "no-such-run" in line
    run = tmp_path / "run"
    cfg = PPOConfig(
        env_id="swarmgym/WideSearch-v0", engine="gym", num_envs=2, num_steps=8, total_steps=16, progress=False, tensorboard=False
    )
    PPOTrainer(cfg, run_dir=run).save(run / "checkpoint.pt")
    for extra, option in ((["--seed", "3"], "--seed"), (["--total-steps", "99999"], "--total-steps"), (["--set", "gamma=0.9"], "--set")):
        assert train.cli_main(["--resume", str(run), "--no-eval", *extra]) == 2
        line = _one_line(capsys.readouterr().err)
        assert line.startswith(f"swarmgym train: {option}:") and "--resume" in line


@pytest.mark.parametrize("argv", [["--total-steps", "abc"], ["--ffn", "bogus"], ["--policy-mode", "argmax"]])
def test_train_cli__argparse_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        train.cli_main(argv)
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, option",
    [
        (["-n", "0"], "--seeds"),
        (["--batch", "0"], "--batch"),
        (["--seed-offset", "-1"], "--seed-offset"),
        (["--sample-seed", "-1"], "--sample-seed"),
        (["--threads", "-1"], "--threads"),
        (["--ids", "NoSuchEnv-v0"], "--ids"),
        (["-o", "oracle"], "--orchestrators"),
        (["-o", "moe:no/such/run"], "--orchestrators"),
        (["--name", "a/b"], "--name"),
    ],
)
def test_evaluate_cli__bad_option_exits_2_naming_it(tmp_path, capsys, argv, option):
    assert evaluate_main(["--ids", "WideSearch-v0", "-n", "2", "--out", str(tmp_path / "out"), *argv]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"swarmgym evaluate: {option}:"), line


def test_evaluate_cli__output_folder_must_be_writable(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert evaluate_main(["--ids", "WideSearch-v0", "-n", "2", "--out", str(blocker / "out")]) == 2
    assert _one_line(capsys.readouterr().err).startswith("swarmgym evaluate: --out:")
    assert evaluate_main(["--ids", "WideSearch-v0", "-o", "critical_path", "-n", "2", "--out", str(blocker / "out"), "--no-write"]) == 0
