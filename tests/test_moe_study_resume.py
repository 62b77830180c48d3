"""``swarmgym study`` (the condition study): options checked before any run, finished runs kept,
a run stopped by a signal continued from its checkpoint to the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal

import pytest

import swarmgym  # noqa: F401
from swarmgym.moe import study
from swarmgym.moe.ppo import PPOTrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# two conditions x one seed, two updates per run (--quick: 8 envs x 16 steps, 256 steps)
ARGS = ["--quick", "--conditions", "r_perf", "parl_annealed", "--seeds", "1", "--set", "checkpoint_seconds=0"]
CLOCK = ("time_s", "charts/sps")


def _signal_on_learn_call(monkeypatch, call: int, signum: int = signal.SIGINT) -> None:
    """Send ``signum`` to this process during the ``call``-th PPO update of the whole study (1-based)."""
    original, calls = PPOTrainer.learn, [0]

    def learn(self, buf):
        calls[0] += 1
        if calls[0] == call:
            os.kill(os.getpid(), signum)
        return original(self, buf)

    monkeypatch.setattr(PPOTrainer, "learn", learn)


def _results(out) -> dict:
    runs = {}
    for name in ("r_perf-s0", "parl_annealed-s0"):
        r = json.loads((out / "runs" / name / study.RESULT_FILE).read_text())["result"]
        history = [{k: v for k, v in row.items() if k not in CLOCK} for row in r["history"]]
        runs[name] = (r["env_steps"], history, r["evaluation"])
    return runs


def test_study_cli__a_stopped_study_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, capsys):
    assert study.cli_main([*ARGS, "--out", str(tmp_path / "straight")]) == 0
    out = tmp_path / "run"
    argv = [*ARGS, "--out", str(out)]
    _signal_on_learn_call(monkeypatch, 3, signal.SIGTERM)  # the second run's first update
    assert study.cli_main(argv) == 143
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("swarmgym study: stopped after 1 of 2 runs") and err.endswith(" --resume"), err
    finished = out / "runs" / "r_perf-s0" / study.RESULT_FILE
    stamp = finished.stat().st_mtime_ns
    assert not (out / "runs" / "parl_annealed-s0" / study.RESULT_FILE).exists()
    assert (out / "runs" / "parl_annealed-s0" / "checkpoint.pt").is_file()
    assert study.cli_main(argv) == 2  # without --resume the runs there are not overwritten
    assert "pass --resume" in capsys.readouterr().err
    learned = []
    monkeypatch.setattr(PPOTrainer, "learn", lambda self, buf, _o=PPOTrainer.learn: learned.append(self.update) or _o(self, buf))
    assert study.cli_main([*argv, "--resume"]) == 0
    assert learned == [1]  # only the stopped run's last update: the finished run is not redone
    assert finished.stat().st_mtime_ns == stamp
    assert _results(out) == _results(tmp_path / "straight")


def test_run_one__a_result_of_other_settings_is_refused_by_name(tmp_path):
    from swarmgym.moe.ppo import PPOConfig

    base = PPOConfig(env_id="swarmgym/WideSearch-v0").to_dict()
    base.update(progress=False, tensorboard=False, num_envs=8, num_steps=16, total_steps=128, checkpoint_seconds=0.0)
    base["model"].update(d_model=16, n_heads=2, n_layers=1, n_experts=4, expert_hidden=16)
    run_dir = tmp_path / "r"
    first = study.run_one(base, {"parl": False}, {}, 0, run_dir, 4)
    assert study.run_one(base, {"parl": False}, {}, 0, run_dir, 4, resume=True) == first
    with pytest.raises(ValueError, match=f"{run_dir / study.RESULT_FILE} holds a run with other settings"):
        study.run_one(base, {"parl": True}, {}, 0, run_dir, 4, resume=True)


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--seeds", "0"], "swarmgym study: --seeds: must be an integer in [1, inf], got 0"),
        (["--eval-episodes", "0"], "swarmgym study: --eval-episodes: must be an integer in [1, 10000000], got 0"),
        (["--env-id", "Nope-v0"], "swarmgym study: --env-id: unknown env id 'Nope-v0'"),
        (["--scan", "nope"], "swarmgym study: --scan: unknown knob 'nope'"),
        (["--set", "env_overrides.bogus=1"], "swarmgym study: --set env_overrides: swarmgym/Mixed-v0: unknown key bogus"),
        (
            ["--set", "env_overrides.config.max_subagents=999"],
            "swarmgym study: --set env_overrides: swarmgym/Mixed-v0: max_subagents must be in [0, 64]",
        ),
        (["--env-id", "WideSearch-v0", "--knob", "serial_trap"], "swarmgym study: --knob serial_trap: swarmgym/WideSearch-v0"),
        (["--phase-diagram", "--dial", "spawn_ticks=0", "--set", "env_overrides.bogus=1"], "swarmgym study: --set env_overrides / --dial:"),
    ],
)
def test_study_cli__bad_option_exits_2_with_one_line_before_any_run(tmp_path, capsys, argv, line):
    assert study.cli_main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1, err
    assert not (tmp_path / "out" / "runs").exists()


def test_study_cli__out_must_be_a_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert study.cli_main(["--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"swarmgym study: --out: '{tmp_path / 'file'}' is a file, not a folder\n"
