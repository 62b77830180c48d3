"""Bad input is rejected up front, naming the field; nothing is silently coerced, and no message blames
the user for what they did not pass."""

from __future__ import annotations

import textwrap

import gymnasium as gym
import numpy as np
import pytest

import swarmgym
from swarmgym import Mixed, SubAgentReliability, SwarmEnv, TaskGraph, TokenModel, WideSearch
from swarmgym.config import MAX_NUM_ENVS, check_num_envs
from swarmgym.metrics import MetricsRecorder, Stat, t_quantile_975
from swarmgym.parl import LambdaSchedule, ParlReward, _metrics_rows, parallel_reward
from swarmgym.testing import replay, run_episode
from swarmgym.testing.check import PROFILE_VARIABLE, PROFILES, check_family, resolve_profile


def _graph(**kwargs):
    base = {"work": [1, 1], "kind": ["plan", "search"], "parents": [(), (0,)]}
    return TaskGraph(**{**base, **kwargs})


BAD_INPUT = [
    # the env's own arguments
    (lambda: SwarmEnv(n_max=8.0), TypeError, r"n_max must be an integer in \[2, 1024\] or None, got 8.0"),
    (lambda: SwarmEnv(invalid_action="skip"), ValueError, r"invalid_action must be one of \('waste_tick', 'answer', 'raise'\), got 'skip'"),
    (lambda: SwarmEnv(strict=True, invalid_action="answer"), ValueError, r"strict=True means invalid_action='raise'; it contradicts"),
    (lambda: SwarmEnv(observation_mode=["flat"]), ValueError, r"observation_mode must be 'dict' or 'flat'"),
    (lambda: SwarmEnv(generator_kwargs=[("width", 3)]), TypeError, r"generator_kwargs must be a dict .* got list"),
    (
        lambda: SwarmEnv(config={"max_subagent": 4}),
        TypeError,
        r"config: unknown field\(s\) \['max_subagent'\]; SwarmConfig has \['max_subagents'",
    ),
    (lambda: SwarmEnv(config={"reliability": {"fail_bse": 0.1}}), TypeError, r"reliability: unknown field\(s\) \['fail_bse'\]"),
    (lambda: SwarmEnv(config={"tokens": {"price": 1.0}}), TypeError, r"tokens: unknown field\(s\) \['price'\]"),
    # defaults that do not fit an n_max the user chose are reported as defaults, not as the user's values
    (lambda: SwarmEnv(n_max=16), ValueError, r"WideSearch: the default width=\(8, 20\) does not fit n_max=16 .* pass width= explicitly"),
    (
        lambda: SwarmEnv("DependentChains", n_max=8),
        ValueError,
        r"got 6 x 5 \(chains and length at the default; pass chains= and length= to fit\)",
    ),
    (lambda: SwarmEnv("DependentChains", {"chains": 2}, n_max=8), ValueError, r"got 2 x 5 \(length at the default; pass length= to fit\)"),
    (lambda: SwarmEnv().reset(options=["instance"]), TypeError, r"reset options must be a dict or None, got list"),
    (lambda: WideSearch(n_max=2), ValueError, r"WideSearch: n_max=2 is too small for this family \(its width needs n_max >= 3\)"),
    # families
    (lambda: Mixed(width=3), TypeError, r"Mixed: unknown parameter\(s\) \['width'\]; known: \['families', 'weights'\]"),
    (lambda: Mixed(weights=[1, True, 1, 1]), TypeError, r"Mixed: weights must be a list of 4 non-negative numbers"),
    (lambda: Mixed(weights=[1, 1]), ValueError, r"Mixed: weights must be 4 non-negative numbers \(one per family\)"),
    (lambda: Mixed(families={"WideSearch": [("width", 3)]}), TypeError, r"Mixed: families\['WideSearch'\] must be a dict"),
    (lambda: WideSearch(width=4.0), TypeError, r"WideSearch: width must be an integer or a \(lo, hi\) pair"),
    # graphs: a float, bool or string where a node index belongs is refused, never rounded
    (lambda: _graph(parents=[(), (0.0,)]), TypeError, r"node 1: parent 0.0 is not a node index \(an integer in \[0, 1\]\)"),
    (lambda: _graph(parents=[(), (0.7,)]), TypeError, r"node 1: parent 0.7 is not a node index"),
    (lambda: _graph(parents=[(), (True,)]), TypeError, r"node 1: parent True is not a node index"),
    (lambda: _graph(parents=[(), 0]), TypeError, r"node 1: parents must be a sequence of node indices, got 0"),
    (lambda: _graph(parents=[(), "0"]), TypeError, r"node 1: parents must be a sequence of node indices, got '0'"),
    (lambda: _graph(targets=[1.0]), TypeError, r"target 1.0 is not a node index"),
    (lambda: _graph(targets=[5]), ValueError, r"target 5 does not exist \(nodes are 0..1\)"),
    (lambda: _graph(budget_factor=True), TypeError, r"budget_factor must be a finite number > 0, got True"),
    (lambda: _graph(family=None), TypeError, r"family must be a string"),
    (lambda: _graph(n_max=2.5), TypeError, r"n_max must be None or an integer >= 1, got 2.5"),
    # config
    (lambda: SubAgentReliability(fail_base=0.1), TypeError, r"fail_base must be a sequence of 4 probabilities"),
    (lambda: SubAgentReliability(fail_base=(0.1, 0.1)), ValueError, r"fail_base must be 4 probabilities, one per kind .* got 2"),
    (lambda: TokenModel(subagent_verbosity=True), TypeError, r"subagent_verbosity must be a number"),
    # PARL: the λ named, not only the schedule's own argument
    (lambda: ParlReward(SwarmEnv(), lambda1=float("nan")), ValueError, r"lambda1: initial must be a finite number >= 0, got nan"),
    (lambda: ParlReward(SwarmEnv(), lambda2=-1.0), ValueError, r"lambda2: initial must be a finite number >= 0, got -1.0"),
    (lambda: ParlReward(SwarmEnv(), lambda1={"kind": "linear", "initail": 0.1}), TypeError, r"lambda1: .*unknown key\(s\) \['initail'\]"),
    (lambda: ParlReward(SwarmEnv(), max_subagents="8"), ValueError, r"max_subagents must be None .* or an integer in \[0, 64\], got '8'"),
    (lambda: parallel_reward({"mean_concurrency": 1.0}, "concurrency", max_subagents=2.0), ValueError, r"max_subagents must be None"),
    (lambda: _metrics_rows({"metrics": {"n_spawned": np.zeros(2)}}, 2), ValueError, r"no '_metrics'"),
    (lambda: _metrics_rows({"metrics": {}, "_metrics": np.ones(3, bool)}, 2), ValueError, r"must mark each of the 2 envs"),
    (lambda: LambdaSchedule()(float("nan")), ValueError, r"global_step must be a finite number >= 0, got nan"),
    (lambda: Stat.of([1.0, 2.0]).format(-1), ValueError, r"digits must be an integer in \[0, 15\], got -1"),
    (lambda: replay("swarmgym/WideSearch-v0", seed=1, actions=[0.5]), TypeError, r"actions must be integers \(action indices\), got 0.5"),
    (lambda: replay("swarmgym/WideSearch-v0", seed="1", actions=[]), ValueError, r"seed must be None or an integer >= 0, got '1'"),
    (
        lambda: run_episode(SwarmEnv(), 0, lambda mask, step: None, checks="mask_valid"),
        TypeError,
        r"checks must be a list of invariant names",
    ),
    # metrics: a fractional df used to fall through to the normal quantile
    (lambda: t_quantile_975(2.5), TypeError, r"df must be an integer >= 1"),
    (lambda: MetricsRecorder().add([1, 2]), TypeError, r"metrics must be one episode's info\['metrics'\] dict, got list"),
    (lambda: MetricsRecorder().add_vector({"metrics": {"score": np.ones(2)}}), ValueError, r"no '_metrics'"),
    (lambda: MetricsRecorder().concurrency_profile("Nope"), KeyError, r"no episodes of family 'Nope'"),
    # property checks
    (lambda: check_family("swarmgym/WideSearch-v0", checks="mask_valid"), TypeError, r"checks must be a list of invariant names"),
    (lambda: check_family("swarmgym/WideSearch-v0", max_examples=0), ValueError, r"max_examples must be an integer >= 1"),
    (lambda: check_family("swarmgym/WideSearch-v0", max_examples=True), ValueError, r"max_examples must be an integer >= 1"),
    # batch sizes
    (lambda: check_num_envs(2.0, 12_000, available=2**40), TypeError, r"num_envs must be an integer"),
    (lambda: check_num_envs(0, 12_000, available=2**40), ValueError, r"num_envs must be in \[1, 4194304\], got 0"),
    (lambda: check_num_envs(MAX_NUM_ENVS + 1, 1, available=2**50), ValueError, r"num_envs must be in \[1, 4194304\]"),
]


@pytest.mark.parametrize("make, exc, message", BAD_INPUT)
def test_bad_input__raises_naming_the_field(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


def test_actions__a_float_bool_or_string_is_refused_never_rounded():
    env = SwarmEnv()
    env.reset(seed=0)
    for bad in (0.0, 1.5, np.float64(0.0), True, np.bool_(True), "0", None, np.array([0.0])):
        with pytest.raises(ValueError, match="action must be an integer in"):
            env.step(bad)
    assert env.sim.t == 0 and env.sim.invalid_actions == 0  # nothing was applied
    env.step(np.int64(0))  # numpy integers and one-element integer arrays are integers
    env.step(np.array([0]))
    env.step(np.array(0, dtype=np.int32))
    assert env.sim.t == 3


def test_numpy_numbers__are_accepted_where_python_numbers_are():
    assert Mixed(weights=np.array([1.0, 0.0, 0.0, 1.0])).weights.tolist() == [0.5, 0.0, 0.0, 0.5]
    assert WideSearch(budget_factor=np.float32(2.5)).kwargs["budget_factor"] == 2.5
    rel = SubAgentReliability(fail_base=np.array([0.1, 0.2, 0.3, 0.4]), fail_per_parent=np.float32(0.25))
    assert rel.fail_base == (0.1, 0.2, 0.3, 0.4) and rel.fail_per_parent == 0.25
    assert TokenModel(subagent_verbosity=np.float32(2.0)).subagent_tick_output == 200
    assert _graph(budget_factor=np.float32(1.5)).budget_factor == 1.5
    assert _graph(parents=[(), (np.int64(0),)]).parents == ((), (0,))


def test_num_envs__bounded_by_available_memory_with_the_largest_that_fits():
    # 1.2 GB per 100k envs (measured): 3M envs need about 34 GiB
    with pytest.raises(ValueError) as caught:
        check_num_envs(3_000_000, 12_000, available=16 * 2**30)
    message = str(caught.value)
    assert "num_envs=3000000 needs about 33.53 GiB (12,000 bytes per env)" in message
    assert "only 16.00 GiB of memory is available; use num_envs <= 1,431,655" in message
    check_num_envs(1_431_655, 12_000, available=16 * 2**30)  # the largest that fits is accepted
    with pytest.raises(ValueError):
        check_num_envs(1_431_656, 12_000, available=16 * 2**30)


def test_profile__the_environment_variable_deepens_every_check(monkeypatch):
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)
    base, steps = resolve_profile(None, None, 10)
    assert base.max_examples == 10 and base.derandomize and steps == 200
    monkeypatch.setenv(PROFILE_VARIABLE, "deep")
    base, steps = resolve_profile(None, None, 10)  # a test's small count does not cap a deep run
    assert base.max_examples == PROFILES["deep"].max_examples == 2000 and not base.derandomize and steps == 2000
    assert resolve_profile(None, None, 5000)[0].max_examples == 5000
    assert resolve_profile("ci", None)[0].max_examples == 40  # an explicit profile wins over the variable
    monkeypatch.setenv(PROFILE_VARIABLE, "thorough")
    with pytest.raises(ValueError, match=r"environment variable SWARMGYM_TEST_PROFILE must be one of \['ci', 'deep'\], got 'thorough'"):
        resolve_profile(None, None)


def test_max_steps__zero_is_zero_not_the_default():
    assert resolve_profile("ci", 0)[1] == 0
    assert resolve_profile("deep", 0)[1] == 0
    assert resolve_profile("ci", None)[1] == 200


# ---------------------------------------------------------------- spec files


def _spec(tmp_path, text: str, name: str = "spec.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
    id = "mylab/Checked-v0"
    [kwargs]
    generator = "WideSearch"
    [kwargs.generator_kwargs]
    width = 4
    """


@pytest.mark.parametrize(
    "text, exc, message",
    [
        ('id = "mylab/Broken-v0"\n[kwargs\n', ValueError, r"spec file '.*broken.toml': TOML syntax error"),
        ('id = "mylab/NoVersion"\n', ValueError, r"needs a string 'id' of the form 'namespace/Name-vN', got 'mylab/NoVersion'"),
        (GOOD.replace('"WideSearch"', '"WideSerch"'), ValueError, r"\(mylab/Checked-v0\): generator must be a family in"),
        (
            GOOD.replace("[kwargs.generator_kwargs]", "[kwargs.generator_kwrags]"),
            TypeError,
            r"unknown kwargs \['generator_kwrags'\]; SwarmEnv takes",
        ),
        (GOOD.replace("width = 4", "widht = 4"), TypeError, r"\(mylab/Checked-v0\): WideSearch: unknown parameter\(s\) \['widht'\]"),
        (GOOD.replace("width = 4", "width = 99"), ValueError, r"\(mylab/Checked-v0\): WideSearch: width must be"),
        (GOOD + "[kwargs.config]\nmax_subagent = 3\n", TypeError, r"config: unknown field\(s\) \['max_subagent'\]"),
        (
            GOOD.replace('generator = "WideSearch"', 'generator = "WideSearch"\nobservation_mode = "flat"'),
            ValueError,
            r"must not set 'observation_mode'",
        ),
        ("max_episode_steps = 0\n" + GOOD, ValueError, r"'max_episode_steps' must be an integer >= 1, got 0"),
        ("structure = 3\n" + GOOD, ValueError, r"'structure' must be a string"),
    ],
)
def test_register_spec__a_bad_spec_fails_at_registration_naming_file_and_problem(tmp_path, text, exc, message):
    path = _spec(tmp_path, text, "broken.toml")
    before = set(gym.registry)
    with pytest.raises(exc, match=message):
        swarmgym.register_spec(path)
    assert set(gym.registry) == before  # nothing half-registered


def test_register_spec__a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"spec file '.*nowhere.toml': cannot be read"):
        swarmgym.register_spec(tmp_path / "nowhere.toml")


def test_register_spec__a_dict_spec_is_validated_too():
    with pytest.raises(ValueError, match=r"spec \(mylab/Dict-v0\): generator must be a family in"):
        swarmgym.register_spec({"id": "mylab/Dict-v0", "kwargs": {"generator": "Nope"}})
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        swarmgym.register_spec({"id": "mylab/Dict-v0", "colour": "red"})


def test_register_spec__replacing_an_id_needs_override(tmp_path, request):
    ids = swarmgym.register_spec(_spec(tmp_path, GOOD))
    request.addfinalizer(lambda: [gym.registry.pop(i, None) for i in ids])
    assert swarmgym.register_spec(_spec(tmp_path, GOOD)) == ids  # the same spec again: a no-op
    other = _spec(tmp_path, GOOD.replace("width = 4", "width = 6"), "other.toml")
    with pytest.raises(ValueError, match=r"'mylab/Checked-v0' is already registered with other settings .* pass override=True"):
        swarmgym.register_spec(other)
    assert gym.spec("mylab/Checked-v0").kwargs["generator_kwargs"] == {"width": 4}  # untouched
    swarmgym.register_spec(other, override=True)
    assert gym.spec("mylab/Checked-v0").kwargs["generator_kwargs"] == {"width": 6}
    assert gym.spec("mylab/Checked-flat-v0").kwargs["generator_kwargs"] == {"width": 6}
    with pytest.raises(ValueError, match=r"'swarmgym/WideSearch-v0' is already registered"):
        swarmgym.register_spec({"id": "swarmgym/WideSearch-v0", "kwargs": {"generator": "SerialReasoning"}})
    assert gym.spec("swarmgym/WideSearch-v0").kwargs["generator"] == "WideSearch"


def test_register_suite__is_idempotent_and_keeps_every_id():
    assert tuple(swarmgym.register_suite()) == swarmgym.SUITE_IDS
