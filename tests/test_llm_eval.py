"""``swarmgym llm-eval`` against a local fake chat-completions server: faults, retries, the cache,
resuming after SIGKILL and SIGINT, and the table beside the hand-coded orchestrators."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest

from swarmgym.cli import COMMANDS
from swarmgym.llm.chat import ChatEndpoint, ChatSettings, EndpointError, FatalEndpointError, import_openai, play_episode
from swarmgym.llm.eval import cli_main, episode_path, load_episode, write_atomic
from swarmgym.llm.fake_server import FakeChatServer
from swarmgym.llm.roundtrip import play_array
from swarmgym.orchestrators import load_orchestrator

ROOT = Path(__file__).resolve().parents[1]
WIDE = "swarmgym/WideSearch-v0"
CHAINS = "swarmgym/DependentChains-v0"


def _key(env_id: str, seed: int) -> str:
    return f"{env_id}/seed={seed}"


def _critical_path_metrics(env_id: str, seed: int) -> dict:
    _, metrics = play_array(gym.make(env_id), load_orchestrator("critical_path"), seed)
    return metrics


def _fast(url: str, **kw) -> ChatSettings:
    return ChatSettings(url, "fake-model", timeout=kw.pop("timeout", 0.5), backoff=kw.pop("backoff", 0.01), **kw)


# ---------------------------------------------------------------------------- one episode
def test_play_episode__every_fault_is_recorded_and_the_episode_finishes():
    ep = _key(WIDE, 0)
    faults = {
        (ep, 0): "http_500",
        (ep, 1): "slow",
        (ep, 2): "drop",
        (ep, 3): "http_429",
        (ep, 5): "garbage_json",
        (ep, 6): "wrong_tool",
        (ep, 7): "no_tool_call",
    }
    with FakeChatServer(faults=faults, slow_seconds=1.5, max_requests=200, lifetime=60) as server:
        record = play_episode(ChatEndpoint(_fast(server.url)), WIDE, 0)
        log = list(server.log)
    llm = record["llm"]
    assert llm["failures"] == {"http_500": 1, "timeout": 1, "connection": 1, "http_429": 1}
    assert llm["invalid_calls"] == 3 and llm["messages_without_calls"] == 1
    assert record["metrics"]["invalid_actions"] == 3
    assert llm["requests"] == len(log) == llm["messages"] + 4
    assert llm["prompt_tokens"] > 0 and llm["completion_tokens"] > 0 and llm["usage_reported"]
    assert record["status"] == "finished" and 0.0 <= record["metrics"]["score"] <= 1.0
    assert {e["episode"] for e in log} == {ep}


def test_play_episode__endpoint_faults_alone_leave_the_episode_as_the_scripted_policy_plays_it():
    ep = _key(CHAINS, 1)
    faults = {(ep, 0): "http_500", (ep, 2): "drop", (ep, 4): "http_429", (ep, 5): "bad_body"}
    with FakeChatServer(faults=faults, max_requests=200, lifetime=60) as server:
        record = play_episode(ChatEndpoint(_fast(server.url)), CHAINS, 1)
    assert record["llm"]["failures"] == {"http_500": 1, "connection": 1, "http_429": 1, "bad_response": 1}
    expected = _critical_path_metrics(CHAINS, 1)
    for key in ("score", "critical_steps", "tokens", "n_spawned", "invalid_actions"):
        assert record["metrics"][key] == expected[key], key


def test_play_episode__retries_run_out_and_the_episode_is_not_finished():
    with FakeChatServer(faults=lambda episode, k: "http_500", max_requests=50, lifetime=60) as server:
        with pytest.raises(EndpointError, match="gave up after 3 tries") as info:
            play_episode(ChatEndpoint(_fast(server.url, max_retries=2)), WIDE, 0)
        assert len(server.log) == 3
    assert info.value.kind == "http_500" and info.value.partial["failures"] == {"http_500": 3}


def test_play_episode__a_wrong_key_stops_the_run():
    with FakeChatServer(faults=lambda episode, k: "http_401", max_requests=50, lifetime=60) as server:
        with pytest.raises(FatalEndpointError, match="401"):
            play_episode(ChatEndpoint(_fast(server.url)), WIDE, 0)
        assert len(server.log) == 1  # not retried


def test_fake_server__stops_by_itself_after_its_request_limit():
    with FakeChatServer(max_requests=3, lifetime=60) as server:
        with pytest.raises(EndpointError):
            play_episode(ChatEndpoint(_fast(server.url, max_retries=1)), WIDE, 0)
        deadline = time.time() + 5
        while not server._stopped.is_set() and time.time() < deadline:
            time.sleep(0.05)
        assert server._stopped.is_set() and [e["status"] for e in server.log][3] == 503


# ---------------------------------------------------------------------------- the command
def _args(url: str, out: Path, *extra: str) -> list[str]:
    return [
        "--base-url", url, "--model", "fake-model", "--ids", "WideSearch-v0", "DependentChains-v0", "-n", "10",
        "--out", str(out), "--timeout", "1", "--backoff", "0.01", "--concurrency", "3", "--quiet", *extra,
    ]  # fmt: skip


def _faults():
    """Endpoint faults on some episodes, model faults on others."""
    return {
        (_key(WIDE, 0), 1): "http_500",
        (_key(WIDE, 1), 0): "slow",
        (_key(WIDE, 2), 2): "drop",
        (_key(CHAINS, 0), 1): "http_429",
        (_key(CHAINS, 1), 1): "garbage_json",
        (_key(CHAINS, 2), 0): "wrong_tool",
        (_key(CHAINS, 3), 3): "no_tool_call",
    }


def test_llm_eval__a_20_episode_run_with_faults_writes_the_same_table_as_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    with FakeChatServer(faults=_faults(), slow_seconds=2.0, max_requests=2000, lifetime=300) as server:
        rc = cli_main(_args(server.url, out, "--transcripts", "--price", "0.5", "2.0"))
    assert rc == 0, capsys.readouterr().err
    for env_id in (WIDE, CHAINS):
        for seed in range(10):
            record = load_episode(out, env_id, seed)
            assert record is not None and record["model"] == "fake-model"
            assert episode_path(out, env_id, seed).with_suffix(".transcript.json").exists()
    assert load_episode(out, WIDE, 0)["llm"]["failures"] == {"http_500": 1}
    assert load_episode(out, WIDE, 1)["llm"]["failures"] == {"timeout": 1}
    assert load_episode(out, WIDE, 2)["llm"]["failures"] == {"connection": 1}
    assert load_episode(out, CHAINS, 0)["llm"]["failures"] == {"http_429": 1}
    for seed in (1, 2, 3):
        assert load_episode(out, CHAINS, seed)["llm"]["invalid_calls"] == 1
        assert load_episode(out, CHAINS, seed)["metrics"]["invalid_actions"] == 1
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    assert [(r["env_id"], r["orchestrator"]) for r in rows] == [
        (env_id, name) for env_id in (WIDE, CHAINS) for name in ("llm:fake-model", "critical_path", "sequential_crew")
    ]
    by = {(r["env_id"], r["orchestrator"]): r for r in rows}
    # the fake server plays critical_path: without model faults its row is critical_path's row
    assert by[(WIDE, "llm:fake-model")] == {**by[(WIDE, "critical_path")], "orchestrator": "llm:fake-model"}
    assert all(r["episodes"] == "10" for r in rows)
    usage = list(csv.DictReader(io.StringIO((out / "usage.csv").read_text())))
    assert [u["env_id"] for u in usage] == [WIDE, CHAINS] and all(float(u["prompt_tokens"]) > 0 for u in usage)
    for u in usage:
        expected = (float(u["prompt_tokens"]) * 0.5 + float(u["completion_tokens"]) * 2.0) / 1e6
        assert float(u["real_cost_usd"]) == pytest.approx(expected, rel=1e-4)
    assert "llm:fake-model" in (out / "table.md").read_text()


def _run_until(cmd: list[str], out: Path, n_files: int, sig: int, timeout: float = 120.0) -> tuple[set, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(list((out / "episodes").rglob("seed-*.json"))) >= n_files:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.stderr.read()}"
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    finished = {(p.parent.name, p.name) for p in (out / "episodes").rglob("seed-*.json")}
    return finished, rc


def test_llm_eval__killed_then_interrupted_then_resumed_never_replays_a_finished_episode(tmp_path):
    out = tmp_path / "run"
    with FakeChatServer(delay=0.02, max_requests=5000, lifetime=300) as server:
        cmd = [sys.executable, "-m", "swarmgym.cli", "llm-eval", *_args(server.url, out)]
        # 1. SIGKILL halfway: no partial file, the finished episodes stay
        after_kill, rc = _run_until(cmd, out, 5, signal.SIGKILL)
        assert rc == -signal.SIGKILL and 5 <= len(after_kill) < 20
        for path in (out / "episodes").rglob("seed-*.json"):
            assert json.loads(path.read_text())["status"] == "finished"
        log_mark = len(server.log)
        # 2. SIGINT later: stops between turns with status 130
        after_int, rc = _run_until(cmd, out, len(after_kill) + 4, signal.SIGINT)
        assert rc == 130 and after_kill < after_int
        second = {e["episode"] for e in server.log[log_mark:]}
        log_mark = len(server.log)
        # 3. resume to the end
        done = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        third = {e["episode"] for e in server.log[log_mark:]}
    played_before = {_key(f"swarmgym/{d.removeprefix('swarmgym_')}", int(n[5:-5])) for d, n in after_kill}
    played_before_3 = {_key(f"swarmgym/{d.removeprefix('swarmgym_')}", int(n[5:-5])) for d, n in after_int}
    assert not second & played_before, "the second run replayed an episode the first one finished"
    assert not third & played_before_3, "the third run replayed a finished episode"
    assert len(list((out / "episodes").rglob("seed-*.json"))) == 20
    everything = {_key(env_id, seed) for env_id in (WIDE, CHAINS) for seed in range(10)}
    assert third == everything - played_before_3  # exactly the episodes not finished before


# ---------------------------------------------------------------------------- input and packaging
def test_llm_eval__rejects_bad_input_with_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    base = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--out", str(tmp_path / "x"), "--quiet"]
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    cases = [
        (["-n", "0"], "--episodes must be an integer >= 1"),
        (["--concurrency", "0"], "--concurrency must be in [1, 256]"),
        (["--history", "-3"], "--history must be -1 (all) or >= 0"),
        (["--extra-body", "[1]"], "--extra-body must be a JSON object"),
        (["--api-key-env", "NO_SUCH_KEY_VAR"], "NO_SUCH_KEY_VAR: that environment variable is not set"),
        (["--ids", "NoSuchEnv-v0"], "unknown env id 'NoSuchEnv-v0'"),
        (["--compare", "oracle"], "unknown orchestrator 'oracle'"),
        (["--timeout", "0"], "timeout must be a number of seconds > 0"),
        (["--max-retries", "-1"], "max_retries must be an integer in [0, 100]"),
        (["--price", "1", "-2"], "--price must be two numbers >= 0"),
    ]
    for extra, message in cases:
        assert cli_main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
    assert not (tmp_path / "x" / "episodes").exists()


def test_llm_eval__other_settings_in_the_same_folder_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    write_atomic(out / "run.json", json.dumps({"model": "fake-model", "temperature": 0.7}))
    assert (
        cli_main(["--base-url", "http://127.0.0.1:9/v1", "--model", "fake-model", "--out", str(out), "-n", "1", "--ids", "WideSearch-v0"])
        == 2
    )
    assert "temperature 0.7 -> 0.0" in capsys.readouterr().err


def test_llm_eval__without_openai_names_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError, match=r"pip install 'swarmgym\[llm\]'"):
        import_openai()
    assert cli_main(["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--out", str(tmp_path), "-n", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "swarmgym[llm]" in err[0]


def test_write_atomic__replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a" / "seed-0.json"
    write_atomic(path, "x" * 10)
    write_atomic(path, "y")
    assert path.read_text() == "y" and sorted(p.name for p in path.parent.iterdir()) == ["seed-0.json"]


def test_cli__lists_llm_eval():
    assert COMMANDS["llm-eval"][0] == "swarmgym.llm.eval"
