"""swarmgym.testing's API: bad arguments are refused by name; replays and policies that
choose masked-out actions; the standalone graph and metric checks."""

from __future__ import annotations

import numpy as np
import pytest

from swarmgym import SwarmEnv, TaskGraph, WideSearch
from swarmgym.testing import (
    PROFILES,
    Broken,
    InvariantViolation,
    as_factory,
    check_family,
    check_graph,
    check_metrics,
    replay,
    run_episode,
)

ENV_ID = "swarmgym/WideSearch-v0"


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"profile": "fast"}, ValueError, "profile must be one of ['ci', 'deep']"),
        ({"checks": ["parents"]}, ValueError, "got unknown ['parents']"),
        ({"max_steps": -1}, ValueError, "max_steps must be an integer >= 0"),
    ],
)
def test_check_family__bad_arguments_name_the_parameter(kwargs, exc, message):
    with pytest.raises(exc) as caught:
        check_family(ENV_ID, **kwargs)
    assert message in str(caught.value)


def test_check_family__batched_needs_an_id_and_ids_must_exist():
    with pytest.raises(ValueError, match="batched=True needs an env id"):
        check_family(lambda: SwarmEnv(), batched=True)
    with pytest.raises(ValueError, match="env id 'mylab/NoSuchEnv-v0' is not registered"):
        check_family("mylab/NoSuchEnv-v0")


def test_as_factory__ids_factories_and_nonsense():
    factory, target = as_factory(ENV_ID)
    assert target == repr(ENV_ID) and factory().unwrapped.n_max == 32
    factory, target = as_factory(ENV_ID, max_episode_steps=5)
    assert target == repr(ENV_ID) and factory().spec.max_episode_steps == 5
    with pytest.raises(TypeError, match="make_kwargs are only accepted with an env id"):
        as_factory(lambda: SwarmEnv(), strict=True)
    with pytest.raises(TypeError, match="env must be an env id"):
        as_factory(42)
    factory, target = as_factory("swarmgym:swarmgym/SerialReasoning-v0")  # gymnasium.make's "module:id" form
    assert target == repr("swarmgym:swarmgym/SerialReasoning-v0") and factory().unwrapped.generator.name == "SerialReasoning"
    with pytest.raises(ValueError, match="module 'no_such_module' cannot be imported"):
        as_factory("no_such_module:mylab/X-v0")


def test_profiles__ci_is_derandomized_and_bounded_deep_is_not():
    ci, deep = PROFILES["ci"], PROFILES["deep"]
    assert ci.derandomize and ci.deadline is None and ci.database is None and ci.max_examples <= 100
    assert not deep.derandomize and deep.deadline is None and deep.max_examples > ci.max_examples


def test_replay__a_masked_out_action_is_stepped_under_the_invalid_action_rule():
    # do(5) before the plan node is done: masked out, a wasted tick, no violation
    record = replay(ENV_ID, seed=0, actions=[5, 0])
    assert record.infos[1]["invalid_action"] and record.infos[2]["invalid_actions"] == 1


def test_run_episode__strict_env_refusing_a_masked_out_choice_is_the_policys_error():
    env = SwarmEnv(WideSearch(width=3), strict=True)
    with pytest.raises(ValueError, match="is not valid now"):
        run_episode(env, 0, lambda mask, step: 5)


def test_run_episode__unknown_check_is_refused():
    with pytest.raises(ValueError, match="checks must be names from INVARIANTS"):
        run_episode(SwarmEnv(), 0, lambda mask, step: None, checks=["speed"])


def test_check_graph__names_a_mutated_field():
    graph = TaskGraph([1, 2, 1], ["plan", "search", "merge"], [(), (0,), (1,)])
    check_graph(graph, 4)
    object.__setattr__(graph, "critical_path", 3)
    with pytest.raises(Broken, match="graph.critical_path = 3 does not match its parents"):
        check_graph(graph)
    with pytest.raises(Broken, match="the graph does not re-validate: TaskGraph has 3 nodes; n_max allows at most 2"):
        check_graph(TaskGraph([1, 1, 1], ["plan"] * 3, [(), (0,), (1,)]), 2)


def test_check_metrics__a_real_episode_passes_and_each_edit_is_caught():
    env = SwarmEnv(WideSearch(width=3))
    record = run_episode(env, 0, lambda mask, step: int(np.flatnonzero(mask)[0]))
    graph, config = env.instance.graph, env.config
    check_metrics(record.metrics, graph, config, all_done=True)
    for key, value, invariant in [
        ("speedup", 2.0, "metrics_consistent"),
        ("score", 1.5, "score_range"),
        ("tokens", 0, "metrics_consistent"),
        ("lower_bound", 10**6, "metrics_consistent"),
        ("concurrency_profile", np.zeros(9), "metrics_consistent"),
    ]:
        with pytest.raises(Broken) as caught:
            check_metrics({**record.metrics, key: value}, graph, config)
        assert caught.value.invariant == invariant, (key, caught.value)
    with pytest.raises(Broken, match="lacks \\['cost_usd'\\]"):
        check_metrics({k: v for k, v in record.metrics.items() if k != "cost_usd"})


def test_violation__pickles_with_its_replay():
    import pickle

    v = InvariantViolation("budget", "the clock ran on", seed=3, actions=[1, 2], step=2, target=repr(ENV_ID))
    again = pickle.loads(pickle.dumps(v))
    assert str(again) == str(v) and again.actions == [1, 2] and "replay('swarmgym/WideSearch-v0', seed=3, actions=[1, 2])" in str(v)


def test_check_family__make_kwargs_reach_the_env_and_the_replay():
    # a 1-step TimeLimit truncates every episode; with the id's strict mode on, masks are still honoured
    check_family(ENV_ID, max_examples=5, max_episode_steps=1, strict=True, batched=False)
    v = InvariantViolation("budget", "x", seed=1, actions=[], step=0, target=repr(ENV_ID), replay_kwargs={"strict": True})
    assert "replay('swarmgym/WideSearch-v0', seed=1, actions=[], strict=True)" in v.replay_code()
