"""``swarmgym study --phase-diagram``: dials, jobs, the runner (retry, resume, backends) and the report."""

from __future__ import annotations

import json
import math

import pytest

import swarmgym  # noqa: F401
from swarmgym.moe import study
from swarmgym.moe.model import ModelConfig
from swarmgym.moe.ppo import PPOConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _base(**changes) -> dict:
    d = PPOConfig(env_id="swarmgym/WideSearch-v0").to_dict()
    d.update(progress=False, tensorboard=False, num_envs=8, num_steps=16, total_steps=128, warm_start=None)
    d["model"] = ModelConfig.preset("small").to_dict()
    d.update(changes)
    return d


def test_parse_dial__reads_values_and_rejects_unknown_dials_and_bad_values():
    assert study.parse_dial("spawn_ticks=0,1,2") == ("spawn_ticks", [0, 1, 2])
    assert study.parse_dial("spawn_prob=6.5e-5,1e-3") == ("spawn_prob", [6.5e-5, 1e-3])
    with pytest.raises(ValueError, match="NAME one of"):
        study.parse_dial("speed=1,2")
    with pytest.raises(ValueError, match="spawn_ticks"):
        study.parse_dial("spawn_ticks=a,b")


def test_make_jobs__one_job_per_cell_condition_seed_with_the_dials_applied():
    dials = {"budget_factor": [1.5, 3.0], "spawn_ticks": [0, 1], "reliability": [2.0]}
    jobs = study.make_jobs(
        _base(), "swarmgym/Mixed-v0", dials, list(study.PHASE_CONDITIONS), 3, eval_episodes=4, check_every=0, check_episodes=4
    )
    assert len(jobs) == 2 * 2 * 1 * 4 * 3 and len({j["id"] for j in jobs}) == len(jobs)
    j = next(
        j for j in jobs if j["cell"] == {"budget_factor": 3.0, "spawn_ticks": 1, "reliability": 2.0} and j["condition"] == "parallel_only"
    )
    over = j["config"]["env_overrides"]
    assert over["config"]["spawn_ticks"] == 1
    assert over["generator_kwargs"]["families"]["WideSearch"]["budget_factor"] == 3.0  # Mixed: every family's budget
    assert over["config"]["reliability"]["fail_base"] == pytest.approx([0.1, 0.1, 0.2, 0.1])
    cfg = j["config"]
    assert cfg["parl"] and cfg["lambda_schedule"] == "constant" and cfg["lambda2"] == 0.0  # r_parallel without r_finish
    wide = study.make_jobs(
        _base(), "swarmgym/WideSearch-v0", {"budget_factor": [1.2]}, ["r_perf"], 1, eval_episodes=4, check_every=0, check_episodes=4
    )
    assert wide[0]["config"]["env_overrides"]["generator_kwargs"] == {"budget_factor": 1.2}
    lat = study.make_jobs(
        _base(), "swarmgym/WideSearch-v0", {"latency_weight": [0.0, 0.5]}, ["r_perf"], 1, eval_episodes=4, check_every=0, check_episodes=4
    )
    assert [j["config"]["perf_form"] for j in lat] == ["score", "latency"]
    for job in jobs + wide + lat:
        PPOConfig.from_dict(job["config"])  # every job is a valid config


def _job(job_id: str, **config) -> dict:
    return {"id": job_id, "cell": {"spawn_ticks": 0}, "condition": "r_perf", "seed": 0, "config": _base(**config),
            "eval_episodes": 4, "check_every": 1, "check_episodes": 4}  # fmt: skip


def test_run_jobs__a_failing_run_is_recorded_with_its_error_and_retried_once(tmp_path):
    calls = []

    def flaky(job):
        calls.append(job["id"])
        if job["id"] == "bad" or calls.count(job["id"]) == 1:
            return {**{k: job[k] for k in ("id", "cell", "condition", "seed")}, "status": "error", "error": f"boom {len(calls)}"}
        return {**{k: job[k] for k in ("id", "cell", "condition", "seed")}, "status": "ok"}

    res = study.run_jobs([_job("good"), _job("bad")], tmp_path, backend="serial", fn=flaky, log=lambda m: None)
    assert calls.count("good") == 2 and calls.count("bad") == 2  # one retry each, no more
    assert res["good"]["status"] == "ok" and res["good"]["attempts"] == 2 and res["good"]["errors"] == ["boom 1"]
    assert res["bad"]["status"] == "error" and res["bad"]["attempts"] == 2 and len(res["bad"]["errors"]) == 2
    on_disk = study.finished_results(tmp_path)
    assert set(on_disk) == {"good", "bad"} and on_disk["bad"]["error"].startswith("boom")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_run_phase_job__trains_evaluates_and_reports_escape_and_collapse(tmp_path):
    res = study.run_phase_job_safely(_job("real"))
    assert res["status"] == "ok", res.get("traceback")
    assert res["env_steps"] == 128 and len(res["checks"]) == 1 + 128 // 128
    assert {"escaped", "greedy_speedup", "sampled_speedup", "greedy_collapse_index"} <= set(res["checks"][0])
    assert set(res["final"]["WideSearch"]) >= {"score", "speedup", "serial_collapse_index", "spurious_spawn_rate", "tokens"}
    assert res["collapse"]["WideSearch"]["episodes"] == 4 and isinstance(res["escape"]["escaped"], bool)
    assert res["paired_score_vs_critical_path"]["all"]["n"] == 4
    json.dumps(res)  # JSON-able (it travels between processes and into results files)


def test_run_jobs__pool_backend_runs_jobs_in_processes_and_retries_a_broken_config(tmp_path):
    bad = _job("broken")
    bad["config"]["num_envs"] = 0  # PPOConfig rejects it inside the worker
    res = study.run_jobs([_job("ok-run"), bad], tmp_path, backend="pool", workers=2, log=lambda m: None)
    assert res["ok-run"]["status"] == "ok" and res["ok-run"]["attempts"] == 1
    assert res["broken"]["status"] == "error" and res["broken"]["attempts"] == 2 and "num_envs" in res["broken"]["error"]


def test_run_jobs__ray_backend_runs_the_same_jobs(tmp_path):
    ray = pytest.importorskip("ray", reason="the [sweep] extra is not installed")
    try:
        res = study.run_jobs([_job("ray-run")], tmp_path, backend="ray", workers=1, log=lambda m: None)
    finally:
        ray.shutdown()
    assert res["ray-run"]["status"] == "ok" and study.finished_results(tmp_path)["ray-run"]["env_steps"] == 128


def _cli(tmp_path, *extra):
    return [
        "--phase-diagram", "--quick", "--env-id", "swarmgym/WideSearch-v0", "--dial", "spawn_ticks=0,1", "--seeds", "1",
        "--phase-conditions", "r_perf", "parallel_only", "--warm-start", "none", "--check-every", "0", "--workers", "1",
        "--set", "lambda1=0.7", "--out", str(tmp_path / "out"), *extra,
    ]  # fmt: skip


def test_phase_cli__writes_report_and_resume_never_redoes_finished_runs(tmp_path, capsys):
    assert study.cli_main(_cli(tmp_path)) == 0
    out = tmp_path / "out"
    for name in ("report.md", "table.md", "results.json", "heatmap_escape.png", "heatmap_collapse.png"):
        assert (out / name).is_file(), name
    runs = sorted((out / "runs").glob("*.json"))
    assert len(runs) == 4
    stamps = {p.name: p.stat().st_mtime_ns for p in runs}
    report = (out / "report.md").read_text()
    assert "swarmgym study --phase-diagram" in report and "| 0 | r_perf |" in report and "| 1 | parallel_only |" in report
    assert "λ1 = 0.7, λ2 = 0.1" in report  # the coefficients the runs trained with, not the trainer's defaults
    # a second invocation without --resume refuses; with --resume it runs nothing and keeps every file
    assert study.cli_main(_cli(tmp_path)) == 2
    assert "--resume" in capsys.readouterr().err
    assert study.cli_main(_cli(tmp_path, "--resume")) == 0
    assert "0 to run" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in sorted((out / "runs").glob("*.json"))} == stamps
    # an interrupted study (one result missing) resumes with that run only
    runs[0].unlink()
    assert study.cli_main(_cli(tmp_path, "--resume")) == 0
    assert "1 to run" in capsys.readouterr().err and runs[0].is_file()


def test_phase_cli__ray_backend_without_ray_names_the_extra(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert study.cli_main(_cli(tmp_path, "--backend", "ray")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["swarmgym study: --backend ray needs Ray: pip install 'swarmgym[sweep]'"]
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


@pytest.mark.parametrize(
    "extra,match",
    [(["--dial", "warp=1"], "NAME one of"), (["--check-episodes", "0"], "check-episodes"), (["--set", "num_envs=0"], "num_envs")],
)
def test_phase_cli__bad_input_is_one_clear_line_before_any_run(tmp_path, capsys, extra, match):
    assert study.cli_main(_cli(tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "runs").exists()


def test_aggregate__escape_probability_and_median_steps_over_seeds():
    def run(seed, escaped, steps, cond="r_perf"):
        fam = {
            "score": 0.9,
            "speedup": 3.0,
            "serial_collapse_index": 0.3,
            "spurious_spawn_rate": 0.1,
            "n_spawned": 5.0,
            "tokens": 1e4,
            "episodes": 4,
        }
        return {"id": f"x{seed}{cond}", "cell": {"spawn_prob": 1e-3}, "condition": cond, "seed": seed, "status": "ok",
                "escape": {"escaped": escaped}, "steps_to_escape": steps,
                "collapse": {"WideSearch": {"collapsed": not escaped}}, "final": {"WideSearch": fam, "all": fam},
                "paired_score_vs_critical_path": {"all": {"mean": 0.01, "half_width": 0.005, "n": 4}}, "warm_start": None}  # fmt: skip

    res = [
        run(0, True, 4096),
        run(1, True, 8192),
        run(2, False, None),
        run(3, True, 2048),
        {"id": "dead", "cell": {"spawn_prob": 1e-3}, "condition": "r_perf", "seed": 4, "status": "error"},
    ]
    fig = study.aggregate(res)[(("spawn_prob", 1e-3),)]["r_perf"]
    assert fig["runs"] == 5 and fig["failed"] == 1
    assert fig["escape_prob"] == pytest.approx(3 / 4) and fig["collapse_prob"] == pytest.approx(1 / 4)
    assert fig["median_steps_to_escape"] == 4096 and fig["above_cp"] == 4
    assert math.isnan(fig["serial_spurious"])  # no SerialReasoning episodes
