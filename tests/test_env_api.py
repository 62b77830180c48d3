"""SwarmEnv construction, its docstring tables, and users' own families."""

from __future__ import annotations

import textwrap
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import swarmgym
from swarmgym import SwarmEnv, TaskGraph
from swarmgym.env import GLOBAL_FEATURES, NODE_FEATURES
from swarmgym.layout import ActionLayout, FlatLayout


def tiny_family(rng: np.random.Generator) -> TaskGraph:
    """A user's own family: two to four independent lookups feeding a report."""
    width = int(rng.integers(2, 5))
    return TaskGraph([1] * width + [2], ["search"] * width + ["merge"], [()] * width + [tuple(range(width))], family="Tiny")


# ---------------------------------------------------------------- bad input at construction
@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"observation_mode": "image"}, ValueError, r"observation_mode must be 'dict' or 'flat'"),
        ({"render_mode": "human"}, ValueError, r"render_mode must be None or one of \['ansi', 'rgb_array'\]"),
        ({"n_max": 1}, ValueError, r"n_max must be an integer in \[2, 1024\]"),
        ({"n_max": 8}, ValueError, r"WideSearch: width must be .* <= 6, got \(8, 20\)"),
        ({"generator": swarmgym.WideSearch(), "n_max": 8}, ValueError, r"n_max=8 is smaller than the generator's n_max=32"),
        ({"strict": "yes"}, TypeError, r"strict must be a bool"),
        ({"config": 5}, TypeError, r"config must be a SwarmConfig"),
        ({"config": {"max_subagents": 99}}, ValueError, r"max_subagents must be in \[0, 64\]"),
        ({"generator": "NoSuchFamily"}, ValueError, r"generator must be a family in"),
        ({"generator": "no_such_module:thing"}, ValueError, r"cannot be imported"),
        ({"generator": 42}, TypeError, r"generator must be a family name"),
        ({"generator_kwargs": {"width": 99}}, ValueError, r"WideSearch: width must be"),
        ({"generator": tiny_family, "generator_kwargs": {"width": 3}}, TypeError, r"generator_kwargs are only accepted"),
        ({"generator": lambda rng: "not a graph"}, TypeError, r"generator must return a TaskGraph"),
    ],
)
def test_env__bad_arguments_fail_at_construction(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        SwarmEnv(**kwargs)


def test_env__generator_larger_than_n_max_fails_at_construction():
    with pytest.raises(ValueError, match=r"generator returned \d+ nodes; n_max is 3"):
        SwarmEnv(generator=tiny_family, n_max=3)


def test_env__step_before_reset_and_after_the_end_raise():
    env = SwarmEnv()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    env.reset(seed=0)
    env.step(env.layout.answer)
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(0)


# ---------------------------------------------------------------- the docstring tells the truth
def _table(doc: str, heading: str) -> list[list[str]]:
    block = doc.split(heading, 1)[1]
    rows = []
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("|") and not set(line) <= set("|- "):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows and not line.startswith("|"):
            break
    return rows[1:]  # drop the header row


def test_docstring__node_feature_table_matches_the_observation():
    env = SwarmEnv()
    rows = _table(SwarmEnv.__doc__, "Node features")
    assert [r[1] for r in rows] == list(NODE_FEATURES)
    assert [int(r[0]) for r in rows] == list(range(env.observation_space["nodes"].shape[1]))
    assert all(
        float(r[3]) == env.observation_space["nodes"].low.min() and float(r[4]) == env.observation_space["nodes"].high.max() for r in rows
    )


def test_docstring__global_feature_table_matches_the_observation():
    env = SwarmEnv()
    rows = _table(SwarmEnv.__doc__, "Global features")
    assert [r[1] for r in rows] == list(GLOBAL_FEATURES)
    assert len(rows) == env.observation_space["globals"].shape[0]


def test_docstring__action_table_and_space_agree():
    env = SwarmEnv()
    rows = _table(SwarmEnv.__doc__, "## Action Space")
    assert [r[1].split("(")[0].split(":")[0] for r in rows] == ["do", "spawn", "wait", "answer"]
    assert "Discrete(2 n_max + 2)" in SwarmEnv.__doc__ and env.action_space.n == 2 * env.n_max + 2
    assert [r[0] for r in rows] == ["i in [0, n_max)", "n_max + i", "2 n_max", "2 n_max + 1"]
    assert (env.layout.do, env.layout.spawn, env.layout.wait, env.layout.answer) == (0, 32, 64, 65)
    assert env.layout == ActionLayout(32) and env.layout["spawn"] == 32 and env.layout["n"] == env.action_space.n


def test_docstring__argument_table_lists_every_constructor_parameter():
    import inspect

    rows = _table(SwarmEnv.__doc__, "## Arguments")
    params = [p for p in inspect.signature(SwarmEnv.__init__).parameters if p != "self"]
    assert [r[0] for r in rows] == params
    defaults = {p: v.default for p, v in inspect.signature(SwarmEnv.__init__).parameters.items() if p != "self"}
    assert all(r[2].strip('"') == str(defaults[r[0]]) for r in rows)


def test_docstring__flat_size_is_as_described():
    env = SwarmEnv(observation_mode="flat")
    assert env.observation_space.shape == (32 * len(NODE_FEATURES) + len(GLOBAL_FEATURES) + 66,)
    env = SwarmEnv(observation_mode="flat", with_adjacency=True)
    assert env.observation_space.shape == (32 * len(NODE_FEATURES) + len(GLOBAL_FEATURES) + 32 * 32 + 66,)


def test_adjacency__marks_parents():
    env = SwarmEnv(generator="WideSearch", generator_kwargs={"width": 3}, with_adjacency=True)
    obs, _ = env.reset(seed=0)
    adj = obs["adjacency"]
    assert adj[1, 0] == adj[2, 0] == adj[3, 0] == 1 and adj[4, 1:4].tolist() == [1, 1, 1]
    assert adj.sum() == 6


# ---------------------------------------------------------------- users' own families
def test_user_family__one_register_call(request):
    env_id = "mylab/Tiny-v0"
    gym.register(env_id, entry_point="swarmgym:SwarmEnv", kwargs={"generator": tiny_family, "config": {"max_subagents": 2}})
    request.addfinalizer(lambda: gym.registry.pop(env_id, None))
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert env.unwrapped.instance.graph.family == "Tiny"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []
    # the lookups have no parents: they are ready at once, so spawning them is allowed
    obs, info = env.reset(seed=0)
    width = env.unwrapped.instance.graph.n_nodes - 1
    spawn = env.unwrapped.layout.block(info["action_mask"], "spawn")
    assert spawn[:width].all()
    assert not spawn[width]  # the report waits for them


def test_user_family__one_spec_file(tmp_path, request):
    spec = tmp_path / "tiny.toml"
    spec.write_text(
        textwrap.dedent(
            """
        id = "mylab/TinyWide-v0"
        structure = "plan -> 4 lookups -> merge"
        [kwargs]
        generator = "WideSearch"
        [kwargs.generator_kwargs]
        width = 4
        budget_factor = 3.0
        [kwargs.config]
        max_subagents = 2
        """
        )
    )
    ids = swarmgym.register_spec(spec)
    request.addfinalizer(lambda: [gym.registry.pop(i, None) for i in ids])
    assert ids == ["mylab/TinyWide-v0", "mylab/TinyWide-flat-v0"]
    env = gym.make("mylab/TinyWide-flat-v0")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and env.unwrapped.config.max_subagents == 2
    assert env.unwrapped.instance.graph.n_nodes == 6


def test_spec_file__unknown_keys_are_rejected(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('id = "mylab/Bad-v0"\ncolour = "red"\n')
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        swarmgym.register_spec(spec)


def test_generator__import_path_with_kwargs():
    env = SwarmEnv(generator="swarmgym.families:LayeredDAG", generator_kwargs={"n_nodes": 6, "parallelism": 1.0})
    env.reset(seed=0)
    assert env.unwrapped.instance.graph.n_nodes == 6 and env.instance.graph.depth() == 1


def test_repr__prints_the_configuration():
    text = repr(SwarmEnv(generator_kwargs={"width": 4}))
    assert "WideSearch(n_max=32, width=(4, 4)" in text and "max_subagents=8" in text


@pytest.mark.parametrize(
    "generator, kwargs",
    [
        ("WideSearch", {}),
        ("Mixed", {"config": {"spawn_ticks": 2, "max_subagents": 3, "max_attempts": 2}}),
        ("LayeredDAG", {"config": {"max_spawns_per_turn": 1, "max_subagents": 1}, "strict": False}),
        ("DependentChains", {"generator_kwargs": {"link_prob": 1.0}}),
    ],
)
def test_observation__rows_re_encoded_per_step_equal_a_full_encoding(generator, kwargs):
    """A step re-encodes only the nodes it changed; every step, the rows and mask bits must equal
    encoding every node afresh, and the mask must equal the simulator's own can_do / can_spawn."""
    env = SwarmEnv(generator, **kwargs)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    for _ in range(1500):
        mask = info["action_mask"]
        if rng.random() < 0.05:
            action = int(rng.integers(env.action_space.n - 1))  # sometimes a masked-out action (a wasted tick)
        else:
            valid = np.flatnonzero(mask[:-1])
            action = int(rng.choice(valid)) if valid.size and rng.random() > 0.03 else env.layout.answer
        obs, _, terminated, _, info = env.step(action)
        nodes, doable, spawnable = env._nodes.copy(), env._doable.copy(), env._spawnable.copy()
        env._encode_all_nodes()
        np.testing.assert_array_equal(obs["nodes"], env._nodes)
        np.testing.assert_array_equal(nodes, env._nodes)
        np.testing.assert_array_equal(doable, env._doable)
        np.testing.assert_array_equal(spawnable, env._spawnable)
        sim, lay = env.sim, env.layout
        if not sim.done:
            n = sim.graph.n_nodes
            assert info["action_mask"][lay.do : lay.do + n].tolist() == [sim.can_do(i) for i in range(n)]
            assert info["action_mask"][lay.spawn : lay.spawn + n].tolist() == [sim.can_spawn(i) for i in range(n)]
            assert info["action_mask"][lay.wait] == sim.can_wait()
        if terminated:
            obs, info = env.reset()


def test_flat_observation__unflattens_to_the_dict_observation_and_mask():
    flat_env = SwarmEnv("Mixed", observation_mode="flat", with_adjacency=True)
    dict_env = SwarmEnv("Mixed", with_adjacency=True)
    flat, _ = flat_env.reset(seed=4)
    obs, info = dict_env.reset(seed=4)
    for action in (flat_env.layout.spawn, flat_env.layout.do, flat_env.layout.spawn + 1):
        parts, mask = FlatLayout(32, with_adjacency=True).unflatten(flat)
        assert set(parts) == set(obs)
        for key in obs:
            np.testing.assert_array_equal(parts[key], obs[key])
        np.testing.assert_array_equal(mask, info["action_mask"])
        valid = np.flatnonzero(info["action_mask"])
        action = action if info["action_mask"][action] else int(valid[0])
        flat, *_ = flat_env.step(action)
        obs, _, _, _, info = dict_env.step(action)
