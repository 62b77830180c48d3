"""Runs that survive interruption: atomic files, SIGINT/SIGTERM handling, exact resumption with
clean logs, and one clear line for a checkpoint that cannot be used."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.moe import train
from swarmgym.moe.checkpointing import (
    RUN_PACKAGES,
    GracefulStop,
    StopRequested,
    atomic_torch_save,
    atomic_write_text,
    exit_code_for,
    system_info,
    system_info_differences,
)
from swarmgym.moe.policy import load_policy
from swarmgym.moe.ppo import CHECKPOINT_FORMAT, CheckpointError, PPOConfig, PPOTrainer, read_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_MODEL = dict(d_model=16, n_heads=2, n_layers=1, n_experts=4, top_k=2, expert_hidden=16)


def tiny_config(**kw) -> PPOConfig:
    base = dict(
        env_id="swarmgym/WideSearch-v0",
        engine="gym",
        num_envs=4,
        num_steps=16,
        total_steps=4 * 16 * 5,
        num_minibatches=2,
        update_epochs=2,
        model=TINY_MODEL,
        progress=False,
        tensorboard=False,
        checkpoint_seconds=0.0,
        seed=1,
    )
    base.update(kw)
    return PPOConfig(**base)


def progress_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "progress.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def logged_figures(run_dir: Path) -> list[dict]:
    """progress.csv without the wall-clock columns (the rest is the same for the same seed)."""
    return [{k: v for k, v in row.items() if k not in ("time_s", "charts/sps")} for row in progress_rows(run_dir)]


def _signal_on_update(monkeypatch, update: int, signum: int = signal.SIGINT) -> None:
    """Send ``signum`` to this process while the trainer computes update ``update`` (1-based)."""
    original = PPOTrainer.learn

    def learn(self, buf):
        if self.update + 1 == update:
            os.kill(os.getpid(), signum)
        return original(self, buf)

    monkeypatch.setattr(PPOTrainer, "learn", learn)


# ---------------------------------------------------------------- machinery
def test_atomic_write__a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"v": 1}, path)

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"v": 2, "x": Unsaveable()}, path)
    assert torch.load(path, weights_only=False) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary file left
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"


def test_graceful_stop__first_signal_requests_second_stops_at_once():
    before = signal.getsignal(signal.SIGINT)
    seen = []
    with GracefulStop(seen.append) as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.requested and stop.signum == signal.SIGTERM and seen == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        with pytest.raises(StopRequested) as info:
            stop.raise_stop("saved")
        assert info.value.exit_code == 143 and info.value.message == "saved"
    assert signal.getsignal(signal.SIGINT) is before
    assert exit_code_for(signal.SIGINT) == 130


# ---------------------------------------------------------------- trainer
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_trainer__signal_finishes_the_update_saves_and_resume_is_exact(tmp_path, monkeypatch, signum):
    cfg = tiny_config()
    straight = PPOTrainer(cfg, run_dir=tmp_path / "straight")
    straight.train()
    run = tmp_path / "run"
    _signal_on_update(monkeypatch, 2, signum)
    trainer = PPOTrainer(cfg, run_dir=run)
    with pytest.raises(StopRequested) as info:
        trainer.train()
    monkeypatch.undo()
    assert info.value.exit_code == exit_code_for(signum)
    assert trainer.update == 2  # the update in progress was finished, not lost
    assert read_checkpoint(run)["update"] == 2
    assert [int(r["update"]) for r in progress_rows(run)] == [1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    resumed = PPOTrainer.resume(run, run_dir=run)  # a run folder is accepted
    assert resumed.update == 2 and resumed.global_step == trainer.global_step
    resumed.train()
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert logged_figures(run) == logged_figures(tmp_path / "straight")


def test_resume__drops_log_rows_written_after_the_checkpoint(tmp_path):
    """A run killed after logging updates it never checkpointed: resuming truncates progress.csv to the
    checkpoint's update, so the finished log has every update once and equals an uninterrupted run's."""
    cfg = tiny_config(tensorboard=True)
    straight = PPOTrainer(cfg, run_dir=tmp_path / "straight")
    straight.train()
    run = tmp_path / "run"
    first = PPOTrainer(cfg, run_dir=run)
    first.train(max_updates=2)
    shutil.copy(run / "checkpoint.pt", tmp_path / "at2.pt")
    first.train(max_updates=1)  # logs update 3 ...
    shutil.copy(tmp_path / "at2.pt", run / "checkpoint.pt")  # ... and dies before its checkpoint lands
    assert [int(r["update"]) for r in progress_rows(run)] == [1, 2, 3]
    resumed = PPOTrainer.resume(run / "checkpoint.pt", run_dir=run)
    assert [int(r["update"]) for r in progress_rows(run)] == [1, 2]
    resumed.train()
    rows = progress_rows(run)
    assert [int(r["update"]) for r in rows] == [1, 2, 3, 4, 5]
    straight_rows = progress_rows(tmp_path / "straight")
    for key in ("global_step", "charts/score", "charts/critical_steps", "losses/pg_loss", "parl/lambda1"):
        assert [r[key] for r in rows] == [r[key] for r in straight_rows], key


def test_trainer__time_based_checkpoints(tmp_path, monkeypatch):
    saves = []
    original = PPOTrainer.save

    def save(self, path):
        saves.append(self.update)
        return original(self, path)

    monkeypatch.setattr(PPOTrainer, "save", save)
    PPOTrainer(tiny_config(checkpoint_seconds=1e-9), run_dir=tmp_path).train()
    assert saves == [1, 2, 3, 4, 5, 5]  # after every update (the interval is tiny), and at the end
    saves.clear()
    PPOTrainer(tiny_config(checkpoint_seconds=0.0), run_dir=tmp_path / "b").train()
    assert saves == [5]


# ---------------------------------------------------------------- checkpoint files
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("ckpt")
    trainer = PPOTrainer(tiny_config(total_steps=64), run_dir=run)
    trainer.train()
    return run / "checkpoint.pt"


def _bad_files(tmp_path: Path, checkpoint: Path) -> dict[str, tuple[Path, str]]:
    data = checkpoint.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.pt"
    text.write_text("these are my notes, not a checkpoint\n")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    state = torch.load(checkpoint, weights_only=False)
    newer = tmp_path / "newer.pt"
    torch.save({**state, "format": "swarmgym-moe-ppo-99"}, newer)
    return {
        "missing": (tmp_path / "missing.pt", "no checkpoint"),
        "truncated": (truncated, "not a readable swarmgym checkpoint"),
        "text": (text, "not a readable swarmgym checkpoint"),
        "foreign": (foreign, "not a swarmgym MoE checkpoint"),
        "newer": (newer, "checkpoint format 'swarmgym-moe-ppo-99'"),
    }


def test_read_checkpoint__one_clear_error_naming_the_file(tmp_path, checkpoint):
    for kind, (path, message) in _bad_files(tmp_path, checkpoint).items():
        with pytest.raises((CheckpointError, FileNotFoundError), match=message) as info:
            read_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value), kind
        with pytest.raises((CheckpointError, FileNotFoundError), match=message):
            load_policy(path)


def test_load_policy__reads_format_1_models_but_resume_needs_the_current_format(tmp_path, checkpoint):
    state = torch.load(checkpoint, weights_only=False)
    old = tmp_path / "old.pt"
    torch.save({**state, "format": "swarmgym-moe-ppo-1"}, old)
    assert load_policy(old).model.config == load_policy(checkpoint).model.config
    with pytest.raises(CheckpointError, match=f"this swarmgym reads '{CHECKPOINT_FORMAT}'"):
        PPOTrainer.resume(old)


def test_cli__unusable_checkpoints_exit_2_with_one_line(tmp_path, checkpoint, capsys):
    from swarmgym.evaluation import cli_main as evaluate_main

    for kind, (path, message) in _bad_files(tmp_path, checkpoint).items():
        assert train.cli_main(["--resume", str(path), "--no-eval", "--no-plots", "--no-progress"]) == 2, kind
        err = capsys.readouterr().err.strip()
        assert err.startswith("swarmgym train: --resume:") and str(path) in err and message in err and "\n" not in err, err
        assert evaluate_main(["-o", f"moe:{path}", "--ids", "WideSearch-v0", "-n", "2", "--no-write"]) == 2, kind
        err = capsys.readouterr().err.strip()
        assert err.startswith("swarmgym evaluate: --orchestrators:") and str(path) in err and "\n" not in err, err


# ---------------------------------------------------------------- the command line
def test_train_cli__interrupted_run_resumes_from_its_folder_to_the_uninterrupted_result(tmp_path, monkeypatch, capsys):
    args = ["--quick", "--total-steps", "1024", "--engine", "gym", "--no-eval", "--no-plots", "--no-progress", "--checkpoint-seconds", "0"]
    assert train.cli_main([*args, "--run-dir", str(tmp_path / "straight")]) == 0
    run = tmp_path / "run"
    _signal_on_update(monkeypatch, 2)
    assert train.cli_main([*args, "--run-dir", str(run)]) == 130
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    straight_line = [line for line in err if line.startswith("swarmgym train: trained ")]
    assert len(straight_line) == 1 and "this part" not in straight_line[0], straight_line  # no resume, no part
    assert err[-1].startswith("swarmgym train: stopped at update 2/4") and err[-1].endswith(f"resume with: swarmgym train --resume {run}")
    assert read_checkpoint(run)["update"] == 2
    assert train.cli_main(["--resume", str(run), "--no-eval", "--no-plots", "--no-progress"]) == 0
    final, straight = read_checkpoint(run), read_checkpoint(tmp_path / "straight")
    # The totals cover the whole run (both parts); the resumed part's own steps are named beside them.
    trained = [line for line in capsys.readouterr().err.splitlines() if line.startswith("swarmgym train: trained ")]
    assert len(trained) == 1 and trained[0].startswith("swarmgym train: trained 1,024 env steps in "), trained
    assert trained[0].endswith(" s") and "; this part, from the resume: 512 env steps in " in trained[0], trained
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_seconds"] == pytest.approx(final["wall_time"]) and summary["env_steps"] == 1024
    assert final["update"] == straight["update"] == 4 and final["global_step"] == straight["global_step"]
    for name, value in straight["model"].items():
        assert torch.equal(final["model"][name], value), name
    assert logged_figures(run) == logged_figures(tmp_path / "straight")
    assert (run / "command.txt").read_text().count("swarmgym train") == 2  # the first command and the resume
    parts = json.loads((run / "system_info.json").read_text())
    assert [p["from_update"] for p in parts] == [0, 2] and all(p == {**p, **system_info()} for p in parts)
    assert "note: resuming under other versions" not in "\n".join(err)  # same versions: no note


def test_system_info__names_python_the_run_packages_and_the_cpu():
    import platform

    import numba
    import numpy as np

    info = system_info()
    assert info["python"] == platform.python_version()
    assert info["torch"] == torch.__version__ and info["numpy"] == np.__version__ and info["numba"] == numba.__version__
    assert set(RUN_PACKAGES) <= set(info) and info["cpu"] and info["platform"]
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert system_info_differences(info) == []
    changed = {**info, "numpy": "0.0", "cpu": "another"}
    assert system_info_differences(changed, info) == [f"numpy {info['numpy']} (was 0.0)", f"cpu {info['cpu']} (was another)"]
    assert system_info_differences({"newpkg": "1.0"}, info) == ["newpkg absent (was 1.0)"]


def test_train_cli__resume_under_other_versions_names_them_and_goes_on(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--quick", "--total-steps", "512", "--engine", "gym", "--no-eval", "--no-plots", "--no-progress"]
    assert train.cli_main([*args, "--run-dir", str(run)]) == 0
    state = read_checkpoint(run)
    assert state["system_info"] == system_info()
    state["system_info"] = {**state["system_info"], "numpy": "0.0"}
    atomic_torch_save(state, run / "checkpoint.pt")
    capsys.readouterr()
    assert train.cli_main(["--resume", str(run), "--no-eval", "--no-plots", "--no-progress"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert notes == [
        f"swarmgym train: note: resuming under other versions than the checkpoint was written with: numpy {system_info()['numpy']} "
        "(was 0.0); the run goes on, but need not be bit-identical to an uninterrupted one"
    ]


def test_train_cli__sigint_to_a_real_process_exits_130_with_the_resume_line(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "swarmgym.cli", "train", "--quick", "--total-steps", str(256 * 200), "--engine", "gym"]
    cmd += ["--run-dir", str(run), "--no-eval", "--no-plots", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "progress.csv").is_file() and len(progress_rows(run)) >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "resume with: swarmgym train --resume" in last and "Traceback" not in err
    state = read_checkpoint(run)
    assert [int(r["update"]) for r in progress_rows(run)] == list(range(1, state["update"] + 1))
