"""The text interface: tool schemas, parsing of tool calls, the turn mapping, the rendered state,
and the round trip (an array orchestrator playing through text meets the array env's episodes)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import swarmgym
from swarmgym.layout import ActionLayout
from swarmgym.llm import SwarmTextEnv, assistant_message, parse_message, tool_schemas
from swarmgym.llm.roundtrip import RoundTripMismatch, check_roundtrip, cli_main as roundtrip_main
from swarmgym.llm.text_policy import TextOrchestrator, parse_state
from swarmgym.registration import uses_mechanics


def _calls(*calls):
    return assistant_message([(name, args) for name, args in calls])


# ---------------------------------------------------------------------------- tools
def test_tool_schemas__are_openai_function_tools_one_per_action_block():
    schemas = tool_schemas(ActionLayout(8))
    assert [s["function"]["name"] for s in schemas] == ["spawn_subagent", "do_node", "wait", "answer"]
    for s in schemas:
        assert s["type"] == "function"
        params = s["function"]["parameters"]
        assert params["type"] == "object" and params["additionalProperties"] is False
        assert s["function"]["description"]
    by_name = {s["function"]["name"]: s["function"]["parameters"] for s in schemas}
    assert by_name["spawn_subagent"]["required"] == ["node"] and by_name["spawn_subagent"]["properties"]["node"]["type"] == "integer"
    assert by_name["wait"]["required"] == [] and by_name["answer"]["properties"] == {}
    json.dumps(schemas)  # serialisable as sent


@pytest.mark.parametrize(
    "action, error_part",
    [
        ("{not json", "not valid JSON"),
        ("42", "must be an assistant message"),
        ('{"tool_calls": "wait"}', "must be a list"),
    ],
)
def test_parse_message__an_unreadable_action_is_an_error_not_an_exception(action, error_part):
    calls, _, error = parse_message(action, ActionLayout(8), 1)
    assert calls == [] and error_part in error


@pytest.mark.parametrize(
    "call, error_part",
    [
        ({"name": "create_subagent", "arguments": "{}"}, "unknown tool 'create_subagent'"),
        ({"name": "spawn_subagent", "arguments": '{"node": three'}, "not valid JSON"),
        ({"name": "spawn_subagent", "arguments": "{}"}, "needs an integer argument 'node'"),
        ({"name": "do_node", "arguments": '{"node": true}'}, "must be an integer"),
        ({"name": "do_node", "arguments": '{"node": 2.5}'}, "must be an integer"),
        ({"name": "do_node", "arguments": '{"node": 8}'}, "node 8 does not exist"),
        ({"name": "do_node", "arguments": '{"node": -1}'}, "node -1 does not exist"),
        ({"name": "wait", "arguments": "[1]"}, "must be a JSON object"),
        ({"arguments": "{}"}, "no function name"),
        ("wait", "must be an object"),
    ],
)
def test_parse_message__each_malformed_call_gets_its_error(call, error_part):
    calls, _, error = parse_message([call], ActionLayout(8), 1)
    assert error is None and len(calls) == 1
    assert calls[0].error is not None and error_part in calls[0].error, calls[0].error


def test_parse_message__accepts_openai_short_and_lenient_forms():
    lay = ActionLayout(8)
    openai_form = {
        "role": "assistant",
        "content": "ok",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "spawn_subagent", "arguments": '{"node": 3}'}}],
    }
    calls, content, error = parse_message(json.dumps(openai_form), lay, 1)
    assert error is None and content == "ok" and calls[0].id == "c1" and calls[0].node == 3 and calls[0].error is None
    calls, _, _ = parse_message({"name": "do_node", "arguments": {"node": "5", "why": "critical"}}, lay, 2)
    assert calls[0].node == 5 and calls[0].error is None and calls[0].extra == {"why": "critical"} and calls[0].id == "call_2_0"
    calls, _, _ = parse_message([{"name": "wait"}, {"name": "answer", "arguments": ""}], lay, 3)
    assert [c.error for c in calls] == [None, None]


# ---------------------------------------------------------------------------- the turn mapping
def _array_and_text(env_id="swarmgym/WideSearch-v0", seed=3):
    array_env = gym.make(env_id)
    text_env = SwarmTextEnv(env_id)
    _, info = array_env.reset(seed=seed)
    text, tinfo = text_env.reset(seed=seed)
    return array_env, info, text_env, text, tinfo


def test_text_env__spawns_then_a_timed_action_in_one_message_is_one_turn():
    array_env, info, text_env, text, _ = _array_and_text()
    lay = ActionLayout(array_env.unwrapped.n_max)
    # the plan node first (done by the orchestrator), then fan out
    while array_env.unwrapped.sim.status[0] != 4:
        array_env.step(lay.encode("do", 0))
        text, *_ = text_env.step(_calls(("do_node", {"node": 0})))
    ready = np.flatnonzero(lay.block(array_env.unwrapped.action_masks(), "spawn"))[:3].tolist()
    assert len(ready) == 3
    for i in ready:
        array_env.step(lay.encode("spawn", i))
    _, _, _, _, a_info = array_env.step(lay.wait)
    msg = _calls(*[("spawn_subagent", {"node": i}) for i in ready], ("wait", {}), ("do_node", {"node": 0}), ("answer", {}))
    _, _, terminated, _, t_info = text_env.step(msg)
    assert t_info["actions"] == [lay.encode("spawn", i) for i in ready] + [lay.wait]
    assert not terminated
    assert [r["ok"] for r in t_info["tool_results"]] == [True, True, True, True, False, False]
    assert t_info["tool_results"][-1]["result"].startswith("not executed: the turn already ended with wait()")
    assert text_env.stats["ignored_calls"] == 2
    sim_a, sim_t = array_env.unwrapped.sim, text_env.unwrapped.sim
    assert sim_a.t == sim_t.t and np.array_equal(sim_a.status, sim_t.status) and sim_a.tokens == sim_t.tokens
    # the tool messages answer every call id of the assistant message
    msgs = t_info["messages"]
    assistant = [m for m in msgs if m["role"] == "assistant"][-1]
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert [m["tool_call_id"] for m in msgs if m["role"] == "tool"][-len(ids) :] == ids


def test_text_env__a_message_of_spawns_only_leaves_the_turn_open():
    _, _, text_env, _, _ = _array_and_text("swarmgym/LayeredDAG-v0", seed=0)
    sim = text_env.unwrapped.sim
    ready = [i for i in range(sim.graph.n_nodes) if sim.status[i] == 1][:2]
    text, _, _, _, info = text_env.step(_calls(*[("spawn_subagent", {"node": i}) for i in ready]))
    assert sim.t == 0 and sim.spawns_this_turn == len(ready) and info["text_stats"]["invalid_calls"] == 0
    assert "your turn is still open" in text
    assert parse_state(text).spawns_this_turn == len(ready)


@pytest.mark.parametrize(
    "message, note",
    [
        (_calls(("create_subagent", {"node": 0})), "unknown tool"),
        (json.dumps([{"name": "spawn_subagent", "arguments": '{"node": x'}]), "not valid JSON"),
        (_calls(("spawn_subagent", {"node": 31})), "node 31 does not exist"),
        (_calls(("do_node", {"node": 999})), "node 999 does not exist"),
        (_calls(("wait", {})), "no sub-agent is running"),
        (_calls(("spawn_subagent", {"node": 1})), "node 1 is blocked"),
        ("this is not JSON", "not valid JSON"),
        (json.dumps({"role": "assistant", "content": "I think I should spawn."}), "no tool call"),
    ],
)
def test_text_env__a_bad_call_is_one_invalid_action_by_the_env_rule(message, note):
    array_env, _, text_env, _, _ = _array_and_text(seed=1)
    sim = text_env.unwrapped.sim
    mask_before = text_env.unwrapped.action_masks()
    text, reward, terminated, truncated, info = text_env.step(message)
    assert note in text
    assert sim.invalid_actions == 1 and sim.t == 1 and info["invalid_actions"] == 1
    assert info["text_stats"]["invalid_calls"] == 1
    assert len(info["actions"]) == 1 and not mask_before[info["actions"][0]]
    assert "the turn is lost" in text and not terminated and reward == 0.0


def test_text_env__an_invalid_call_ends_the_turn_and_later_calls_are_not_executed():
    _, _, text_env, _, _ = _array_and_text(seed=2)
    sim = text_env.unwrapped.sim
    _, _, _, _, info = text_env.step(_calls(("do_node", {"node": 5}), ("do_node", {"node": 0})))
    assert sim.t == 1 and sim.work_left[0] == sim.graph.work[0] and sim.invalid_actions == 1
    assert info["tool_results"][1]["result"] == "not executed: the turn already ended with do_node(node=5)"


def test_text_env__answer_ends_the_episode_with_metrics_and_the_score():
    _, _, text_env, _, _ = _array_and_text(seed=4)
    text, reward, terminated, truncated, info = text_env.step(_calls(("answer", {}), ("wait", {})))
    assert terminated and not truncated and reward == 0.0
    assert info["metrics"]["score"] == 0.0 and "## Episode over" in text and "none: the episode is over" in text
    assert info["tool_results"][1]["result"] == "not executed: the episode is over"
    with pytest.raises(RuntimeError, match="reset"):
        text_env.step(_calls(("wait", {})))


def test_text_env__history_keeps_the_last_exchanges_and_starts_with_system_then_user():
    env = SwarmTextEnv("SerialReasoning-v0", history=1)
    text, info = env.reset(seed=0)
    assert [m["role"] for m in info["messages"]] == ["system", "user"]
    for _ in range(3):
        text, _, _, _, info = env.step(
            _calls(("do_node", {"node": int(parse_state(text).mask(env.layout.n_max)[: env.layout.n_max].argmax())}))
        )
    assert [m["role"] for m in info["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert info["messages"][-1]["content"] in text
    assert len(env.transcript) == 2 + 3 * 3  # system, first user, then assistant + tool + user per step
    full = SwarmTextEnv("SerialReasoning-v0", history=None)
    full.reset(seed=0)
    for _ in range(3):
        _, _, _, _, info = full.step(_calls(("do_node", {"node": 0})))
    assert len(info["messages"]) == 2 + 3 * 3


# ---------------------------------------------------------------------------- the rendered state
def test_render__is_deterministic_ascii_and_hides_the_fates():
    env = SwarmTextEnv("DependentChains-v0")
    text_a, _ = env.reset(seed=11)
    text_b, _ = env.reset(seed=11)
    assert text_a == text_b and text_a.isascii()
    instance = env.unwrapped.instance
    # the same graph with other fates (other durations and outcomes) renders the same text
    other, _ = env.reset(seed=12, options={"graph": instance.graph})
    fates = env.unwrapped.instance.fates
    assert not (np.array_equal(fates.outcome, instance.fates.outcome) and np.array_equal(fates.duration, instance.fates.duration))
    assert other == text_a
    assert "returns at" not in text_a and "wrong" not in text_a


def test_render__a_running_sub_agent_shows_elapsed_ticks_not_its_finish_time():
    env = SwarmTextEnv("WideSearch-v0")
    env.reset(seed=0)
    while env.unwrapped.sim.status[0] != 4:
        env.step(_calls(("do_node", {"node": 0})))
    text, *_ = env.step(_calls(("spawn_subagent", {"node": 1}), ("do_node", {"node": 2})))
    row = next(r for r in parse_state(text).nodes if r.id == 1)
    assert row.status == "running" and row.elapsed == 1 and row.note == "sub-agent for 1 ticks"


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_text_env__passes_gymnasium_check_env():
    from gymnasium.utils.env_checker import check_env

    env = SwarmTextEnv("WideSearch-v0")
    check_env(env, skip_render_check=True)
    # the spec recreates the text env (the id, then this wrapper with its arguments)
    remade = gym.make(env.spec)
    assert isinstance(remade, SwarmTextEnv) and remade.history == env.history
    assert remade.reset(seed=3)[0] == env.reset(seed=3)[0]


def test_text_env__rejects_a_strict_env_and_bad_history():
    with pytest.raises(ValueError, match="strict=False"):
        SwarmTextEnv(gym.make("swarmgym/WideSearch-v0", strict=True))
    with pytest.raises(ValueError, match="history must be None or an integer >= 0"):
        SwarmTextEnv("WideSearch-v0", history=-2)


# ---------------------------------------------------------------------------- the round trip
#: Episodes per id and mode in CI (the 200-episode check is ``python -m swarmgym.llm.roundtrip``).
CI_EPISODES = 4


TEXT_IDS = [i for i in swarmgym.SUITE_IDS if not uses_mechanics(i)]  # the text interface plays the base layout


def test_text_ids__are_the_suite_without_the_mechanics_families_which_are_refused():
    assert TEXT_IDS and set(swarmgym.SUITE_IDS) - set(TEXT_IDS) == {
        f"swarmgym/{f}-{form}v0"
        for f in ("DeepResearch", "VerifiedPipeline", "DeepResearchHard", "VerifiedPipelineHard", "LayeredDAGHard")
        for form in ("", "flat-")
    }
    with pytest.raises(ValueError, match="supports the base layout only"):
        SwarmTextEnv("swarmgym/DeepResearch-v0")


@pytest.mark.parametrize("env_id", TEXT_IDS)
def test_roundtrip__critical_path_through_text_equals_the_array_env_step_for_step(env_id):
    per_call = check_roundtrip(env_id, range(CI_EPISODES), "critical_path", whole_turn=False)
    whole = check_roundtrip(env_id, range(CI_EPISODES, 2 * CI_EPISODES), "critical_path", whole_turn=True)
    assert per_call["episodes"] == whole["episodes"] == CI_EPISODES
    assert per_call["steps"] == per_call["messages"] > 0
    assert whole["messages"] <= whole["steps"]


@pytest.mark.parametrize(
    "spec", ["sequential_crew", "delegating_manager", "static_fanout", "random:seed=5", "critical_path:max_spawn_parents=None"]
)
def test_roundtrip__every_reference_orchestrator_plays_the_same_through_text(spec):
    check_roundtrip("swarmgym/Mixed-v0", range(3), spec, whole_turn=False)
    check_roundtrip("swarmgym/LayeredDAG-v0", range(3), spec, whole_turn=True)


def test_roundtrip__a_text_that_omits_a_fact_is_caught():
    """The check can fail: a renderer that drops the failed-attempt note changes the rebuilt observation."""
    import swarmgym.llm.render as render

    original = render._note
    render._note = lambda sim, i, status: (
        original(sim, i, status).replace("; last sub-agent failed", "").replace("last sub-agent failed", "-")
    )
    try:
        with pytest.raises(RoundTripMismatch, match="obs\\['nodes'\\]"):
            check_roundtrip("swarmgym/SerialReasoning-v0", range(40), "delegating_manager", whole_turn=False)
    finally:
        render._note = original


def test_parse_state__rebuilds_the_adjacency_observation():
    env = gym.make("swarmgym/LayeredDAG-v0", with_adjacency=True)
    obs, _ = env.reset(seed=5)
    text_env = SwarmTextEnv("LayeredDAG-v0")
    text, _ = text_env.reset(seed=5)
    rebuilt = parse_state(text).observation(env.unwrapped.n_max, with_adjacency=True)
    for key in ("nodes", "globals", "adjacency"):
        assert np.array_equal(rebuilt[key], obs[key]), key


def test_text_orchestrator__whole_turn_emits_spawns_then_one_timed_call():
    env = SwarmTextEnv("WideSearch-v0")
    text, _ = env.reset(seed=0)
    agent = TextOrchestrator("delegating_manager", whole_turn=True)
    widest = []
    for _ in range(6):
        msg = agent.act(text)
        names = [c["function"]["name"] for c in msg["tool_calls"]]
        assert names[-1] in ("do_node", "wait", "answer") and set(names[:-1]) <= {"spawn_subagent"}
        widest = max(widest, names, key=len)
        text, *_ = env.step(msg)
    assert len(widest) > 3  # the lookups fanned out in one message


def test_roundtrip_cli__prints_equal_per_id(capsys):
    assert roundtrip_main(["--ids", "swarmgym/WideSearch-v0", "-n", "2", "--mode", "both"]) == 0
    out = capsys.readouterr().out
    assert out.count(": equal") == 2 and "all equal" in out
    assert roundtrip_main(["-n", "0"]) == 2


# ---------------------------------------------------------------------------- fuzzing
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_call = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["spawn_subagent", "do_node", "wait", "answer", "create_subagent", ""]),
        "arguments": st.one_of(_json, st.fixed_dictionaries({"node": st.integers(-3, 40) | st.text(max_size=3)}).map(json.dumps)),
    }
)


@given(st.lists(st.one_of(_json, st.lists(_call, max_size=5).map(json.dumps), st.text(max_size=30)), min_size=1, max_size=8))
def test_text_env__any_action_is_answered_never_raises_and_time_moves_unless_only_valid_spawns(actions):
    env = SwarmTextEnv("LayeredDAG-v0")
    env.reset(seed=0)
    sim = env.unwrapped.sim
    for action in actions:
        t, invalid = sim.t, sim.invalid_actions
        text, _, terminated, truncated, info = env.step(action)
        assert text.isascii() and env.observation_space.contains(text)
        played = [ActionLayout(env.layout.n_max).decode(a)[0] for a in info["actions"]]
        only_spawns = sim.invalid_actions == invalid and set(played) <= {"spawn"}
        assert sim.t > t or only_spawns or played[-1:] == ["answer"]
        if terminated or truncated:
            break
