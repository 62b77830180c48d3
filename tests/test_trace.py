"""Episode traces: a hand-worked trace, consistency with the episode's metrics, the wrapper and its JSON."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import swarmgym  # noqa: F401  (registers the suite)
from swarmgym import Fates, Fixed, SubAgentReliability, SwarmConfig, SwarmEnv, TaskGraph, TaskInstance
from swarmgym.evaluation import dict_observation
from swarmgym.layout import ActionLayout
from swarmgym.orchestrators import load_orchestrator
from swarmgym.simulator import FAIL, OK, WRONG
from swarmgym.trace import TRACE_FORMAT, EpisodeTracer, TraceRecorder, read_trace, write_trace

N_MAX = 8
LAYOUT = ActionLayout(N_MAX)
DICT_IDS = [i for i in swarmgym.SUITE_IDS if "-flat-" not in i]


def wide_graph() -> TaskGraph:
    """plan(1) -> three lookups (2 each) -> merge(2)."""
    return TaskGraph(
        [1, 2, 2, 2, 2], ["plan", "search", "search", "search", "merge"], [(), (0,), (0,), (0,), (1, 2, 3)], targets=[1, 2, 3, 4]
    )


def traced_episode(actions: list[int], outcome, spawn_ticks: int = 0) -> dict:
    graph = wide_graph()
    config = SwarmConfig(max_subagents=3, reliability=SubAgentReliability.perfect(), spawn_ticks=spawn_ticks)
    env = SwarmEnv(generator=Fixed(graph), config=config, n_max=N_MAX)
    instance = TaskInstance(graph, Fates(np.full((5, config.max_attempts), 2, dtype=np.int64), np.array(outcome, dtype=np.int64)))
    env.reset(seed=0, options={"instance": instance})
    tracer = EpisodeTracer(env, {"seed": 0})
    for a in actions:
        env.step(a)
        tracer.observe(a)
    return tracer.to_dict()


def strip(events: list[dict], *keys: str) -> list[tuple]:
    return [tuple(ev.get(k) for k in ("type", "t", "node", *keys)) for ev in events]


def test_tracer__hand_worked_episode_with_a_failure_and_a_retry():
    outcome = [[OK] * 3, [FAIL, OK, OK], [OK] * 3, [WRONG, OK, OK], [OK] * 3]
    do, spawn, wait, answer = LAYOUT.do, LAYOUT.spawn, LAYOUT.wait, LAYOUT.answer
    # t=0 do(plan) -> 1; spawn 1, 2, 3; wait -> 3 (1 failed, 3 wrong); spawn 1 again; wait -> 5; merge twice -> 7
    trace = traced_episode([do + 0, spawn + 1, spawn + 2, spawn + 3, wait, spawn + 1, wait, do + 4, do + 4, answer], outcome)
    assert strip(trace["events"], "slot", "fate", "until") == [
        ("do", 0, 0, None, None, 1),
        ("spawn", 1, 1, 0, None, None),
        ("start", 1, 1, 0, None, None),
        ("spawn", 1, 2, 1, None, None),
        ("start", 1, 2, 1, None, None),
        ("spawn", 1, 3, 2, None, None),
        ("start", 1, 3, 2, None, None),
        ("wait", 1, None, None, None, 3),
        ("finish", 3, 1, 0, "fail", None),
        ("finish", 3, 2, 1, "ok", None),
        ("finish", 3, 3, 2, "wrong", None),
        ("spawn", 3, 1, 0, None, None),
        ("start", 3, 1, 0, None, None),
        ("wait", 3, None, None, None, 5),
        ("finish", 5, 1, 0, "ok", None),
        ("do", 5, 4, None, None, 6),
        ("do", 6, 4, None, None, 7),
        ("answer", 7, None, None, None, None),
    ]
    retry = [ev for ev in trace["events"] if ev["type"] in ("spawn", "start") and ev["node"] == 1]
    assert [ev["attempt"] for ev in retry] == [1, 1, 2, 2]
    assert all(ev["handoff_tokens"] == 150 + 300 for ev in retry if ev["type"] == "spawn")
    assert [ev["completed"] for ev in trace["events"] if ev["type"] == "do"] == [True, False, True]
    assert trace["t"] == 7 and trace["over"] and trace["metrics"]["critical_steps"] == 7
    assert trace["events"][-1]["tokens"] == trace["tokens"] == trace["metrics"]["tokens"]


def test_tracer__spawn_latency_separates_spawn_from_start_and_budget_cuts_off_running_agents():
    outcome = [[OK] * 3] * 5
    do, spawn = LAYOUT.do, LAYOUT.spawn
    # budget: ceil(2 x max(5, ceil(9 / 4))) = 10; each spawn costs one tick of hand-off latency
    trace = traced_episode([do + 0, spawn + 1, spawn + 2] + [LAYOUT.wait] * 1 + [do + 3] * 2, outcome, spawn_ticks=1)
    spawns = [ev for ev in trace["events"] if ev["type"] == "spawn"]
    starts = [ev for ev in trace["events"] if ev["type"] == "start"]
    assert [(ev["t"], ev["node"]) for ev in spawns] == [(1, 1), (2, 2)]
    assert [(ev["t"], ev["node"], ev["returns_at"]) for ev in starts] == [(2, 1, 4), (3, 2, 5)]
    assert not trace["over"] and trace["t"] == 6
    assert [r["node"] for r in trace["running"]] == []  # both returned by t=5


def test_tracer__budget_end_lists_unfinished_sub_agents():
    outcome = [[OK] * 3] * 5
    graph = wide_graph()
    config = SwarmConfig(max_subagents=3, reliability=SubAgentReliability.perfect())
    env = SwarmEnv(generator=Fixed(graph), config=config, n_max=N_MAX)
    fates = Fates(np.full((5, config.max_attempts), 30, dtype=np.int64), np.array(outcome, dtype=np.int64))
    env.reset(seed=0, options={"instance": TaskInstance(graph, fates)})
    tracer = EpisodeTracer(env)
    for a in (LAYOUT.do + 0, LAYOUT.spawn + 1, LAYOUT.wait):
        env.step(a)
        tracer.observe(a)
    trace = tracer.to_dict()
    assert [ev["type"] for ev in trace["events"]][-2:] == ["budget", "unfinished"]
    assert trace["events"][-1]["node"] == 1 and trace["t"] == env.sim.budget == 10
    with pytest.raises(RuntimeError, match="over"):
        tracer.observe(LAYOUT.answer)


def test_tracer__needs_a_reset_env():
    with pytest.raises(RuntimeError, match="reset"):
        EpisodeTracer(SwarmEnv())


def play_traced(env_id: str, orchestrator: str, seed: int) -> tuple[dict, dict]:
    env = TraceRecorder(gym.make(env_id), meta={"orchestrator": orchestrator})
    policy = load_orchestrator(orchestrator)
    obs, info = env.reset(seed=seed)
    while True:
        action = policy.act({k: v[None] for k, v in dict_observation(env, obs).items()}, info["action_mask"][None])[0]
        obs, _, terminated, truncated, info = env.step(int(action))
        if terminated or truncated:
            return env.last_trace, info.get("metrics") or env.unwrapped.sim.metrics()


@pytest.mark.parametrize("env_id", DICT_IDS)
@pytest.mark.parametrize("orchestrator", ["critical_path", "delegating_manager", "random"])
def test_trace__agrees_with_the_episode_metrics_and_the_fates(env_id, orchestrator):
    for seed in range(3):
        trace, m = play_traced(env_id, orchestrator, seed)
        events = trace["events"]

        def count(kind: str, events=events, **kw) -> int:
            return sum(ev["type"] == kind and all(ev.get(k) == v for k, v in kw.items()) for ev in events)

        assert count("start") == m["n_spawned"]
        assert count("finish", fate="ok") == m["n_subagent_ok"]
        assert count("finish", fate="fail") == m["n_subagent_failed"]
        assert count("finish", fate="wrong") == m["n_subagent_wrong"]
        assert count("unfinished") == m["n_subagent_unfinished"]
        assert count("invalid") == m["invalid_actions"]
        assert trace["t"] == m["critical_steps"] and trace["tokens"] == m["tokens"]
        assert count("budget") == int(m["budget_exhausted"])
        assert [ev["t"] for ev in events] == sorted(ev["t"] for ev in events)  # a step's returns follow its action
        # sub-agent bars: each lane holds one sub-agent at a time; a finished bar lasts its drawn duration
        bars: dict[int, list[tuple[int, int]]] = {}
        for ev in events:
            if ev["type"] in ("finish", "unfinished"):
                bars.setdefault(ev["slot"], []).append((ev["started"], ev["t"]))
        for slot, spans in bars.items():
            assert 0 <= slot < trace["max_subagents"]
            spans.sort()
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"lane {slot} overlaps: {spans}"
        json.dumps(trace)  # plain data


def test_trace_recorder__writes_json_per_episode_and_reads_it_back(tmp_path):
    env = TraceRecorder(gym.make("swarmgym/WideSearch-v0"), tmp_path, episode_trigger=lambda k: k != 1, meta={"orchestrator": "answer_now"})
    for seed in range(3):
        env.reset(seed=seed)
        env.step(env.action_space.n - 1)  # answer at once
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["trace-episode-0.json", "trace-episode-2.json"]
    trace = read_trace(tmp_path / "trace-episode-2.json")
    assert trace["format"] == TRACE_FORMAT and trace["seed"] == 2 and trace["env_id"] == "swarmgym/WideSearch-v0"
    assert trace["orchestrator"] == "answer_now" and [ev["type"] for ev in trace["events"]] == ["answer"]
    bad = tmp_path / "other.json"
    write_trace({"format": "nope"}, bad)
    with pytest.raises(ValueError, match="not a swarmgym trace"):
        read_trace(bad)


def test_trace_recorder__refuses_a_non_swarmgym_env():
    with pytest.raises(TypeError, match="swarmgym env"):
        TraceRecorder(gym.make("CartPole-v1"))


def test_trace_recorder__records_a_time_limit_truncation():
    env = TraceRecorder(gym.make("swarmgym/SerialReasoning-v0", max_episode_steps=2))
    env.reset(seed=0)
    for _ in range(2):
        env.step(0)  # do(0): work on the first step (or a wasted turn once it is done)
    assert env.last_trace["events"][-1]["type"] == "truncated" and "metrics" in env.last_trace


def test_replay_cli__writes_the_trace_and_the_gantt_png(tmp_path, capsys):
    from swarmgym.cli import main

    assert main(["replay", "--id", "WideSearch-v0", "--seed", "3", "-o", "critical_path", "--out", str(tmp_path)]) == 0
    trace = read_trace(tmp_path / "WideSearch-v0_seed3_critical_path.json")
    png = (tmp_path / "WideSearch-v0_seed3_critical_path.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert trace["seed"] == 3 and trace["orchestrator"] == "critical_path" and trace["over"]
    assert f"critical steps {trace['metrics']['critical_steps']}/" in capsys.readouterr().out
    assert main(["replay", "--id", "NoSuchTask-v0", "--out", str(tmp_path)]) == 2
    assert "unknown env id 'NoSuchTask-v0'" in capsys.readouterr().err


def test_evaluate_traces__saves_the_first_k_episodes_per_orchestrator_as_replay_would(tmp_path):
    from swarmgym.evaluation import cli_main
    from swarmgym.replay import play_traced

    argv = [
        "-o",
        "critical_path",
        "random",
        "--ids",
        "WideSearch-v0",
        "-n",
        "5",
        "--batch",
        "3",
        "--traces",
        "2",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert cli_main(argv) == 0
    for name in ("critical_path", "random"):
        folder = tmp_path / "traces" / "WideSearch-v0" / name
        assert sorted(p.name for p in folder.iterdir()) == ["seed0.json", "seed1.json"]
    saved = read_trace(tmp_path / "traces" / "WideSearch-v0" / "critical_path" / "seed1.json")
    again = play_traced(load_orchestrator("critical_path"), "WideSearch-v0", 1, meta={"orchestrator": "critical_path"})
    assert saved["events"] == again["events"] and saved["metrics"] == json.loads(json.dumps(again["metrics"]))
    assert cli_main(argv[:-3] + ["--traces", "-1"]) == 2
