"""Hand-coded orchestrators on the mechanics: valid and deterministic on the mechanics families,
verifying_scheduler's decisions on hand-made observations as its docstring states them, and bad
orchestrator arguments named in one line."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import swarmgym  # noqa: F401  (registers the ids)
from swarmgym.config import MAX_TIERS, SwarmConfig
from swarmgym.evaluation import run_episodes
from swarmgym.layout import GLOBAL_COLUMN, KIND_COLUMN0, NODE_COLUMN, RESULTS_HALF, ActionLayout, global_features, node_features
from swarmgym.orchestrators import BUILTIN, PUBLIC_TABLE_ID, VerifyingScheduler, bind_to_env, load_orchestrator

MECHANICS_IDS = ("swarmgym/DeepResearch-v0", "swarmgym/VerifiedPipeline-v0")
VARIANTS = (
    "verifying_scheduler:verify=always",
    "verifying_scheduler:verify=never",
    "verifying_scheduler:tier=fast",
    "verifying_scheduler:tier=careful",
    "verifying_scheduler:verify=never,tier=fast",
)
SPECS = (*BUILTIN, *VARIANTS)


def _play(spec: str, env_id: str, seeds: range) -> tuple[list[int], list[dict]]:
    """Every action and the final metrics of each episode; asserts each action is allowed."""
    env = gym.make(env_id)
    policy = load_orchestrator(spec)
    actions, metrics = [], []
    for seed in seeds:
        policy.reset(seed=seed)
        obs, info = env.reset(seed=seed)
        while True:
            mask = info["action_mask"]
            a = int(policy.act({k: v[None] for k, v in obs.items()}, mask[None])[0])
            assert mask[a], f"{spec} took masked action {env.unwrapped.layout.describe(a)} on {env_id} seed {seed}"
            actions.append(a)
            obs, _, terminated, truncated, info = env.step(a)
            assert not info["invalid_action"]
            if terminated or truncated:
                metrics.append(info["metrics"])
                break
    return actions, metrics


@pytest.mark.parametrize("env_id", MECHANICS_IDS)
@pytest.mark.parametrize("spec", SPECS)
def test_orchestrator__on_the_mechanics_families_is_valid_and_deterministic(spec, env_id):
    a1, m1 = _play(spec, env_id, range(3))
    a2, m2 = _play(spec, env_id, range(3))
    assert a1 == a2
    assert [m["score"] for m in m1] == [m["score"] for m in m2]


def test_verifying_scheduler__uses_the_mechanics_it_is_for():
    _, metrics = _play("verifying_scheduler", "swarmgym/VerifiedPipeline-v0", range(12))
    assert sum(m["n_verified"] for m in metrics) > 0
    assert sum(m["spawned_tier0"] for m in metrics) > 0 and sum(m["spawned_tier1"] for m in metrics) > 0
    _, never = _play("verifying_scheduler:verify=never,tier=careful", "swarmgym/VerifiedPipeline-v0", range(4))
    assert all(m["n_verified"] == 0 and m["spawned_tier0"] == 0 for m in never)


@pytest.mark.parametrize("env_id", ["swarmgym/WideSearch-v0", "swarmgym/Mixed-v0"])
def test_verifying_scheduler__on_the_base_layout_is_critical_path(env_id):
    a, _ = _play("verifying_scheduler", env_id, range(4))
    b, _ = _play("critical_path", env_id, range(4))
    assert a == b


HARD_IDS = ("swarmgym/DeepResearchHard-v0", "swarmgym/VerifiedPipelineHard-v0")


@pytest.mark.parametrize("env_id", HARD_IDS)
def test_verifying_scheduler__is_told_the_table_of_the_env_it_plays_unless_given_one(env_id):
    """A Hard id's public table differs from v0's: evaluated there, the plain rule plays exactly as the rule
    told that id's table, and a rule given v0's table explicitly keeps it (and plays differently)."""
    n = 24
    bound = run_episodes(load_orchestrator("verifying_scheduler"), env_id, n)
    told = run_episodes(load_orchestrator(f"verifying_scheduler:public={env_id}"), env_id, n)
    kept = run_episodes(load_orchestrator(f"verifying_scheduler:public={PUBLIC_TABLE_ID}"), env_id, n)
    for key in ("score", "critical_steps", "cost_usd"):
        np.testing.assert_array_equal(bound.values(key), told.values(key))
    assert not np.array_equal(bound.values("cost_usd"), kept.values("cost_usd"))


def test_verifying_scheduler__the_paired_study_and_the_warm_start_also_tell_it_the_env_s_table():
    """The other loops that play a rule on an env (the paired study's, the warm start's demonstrations)
    bind it as run_episodes does: the plain rule acts exactly as the rule told the Hard id's table."""
    from swarmgym.collapse import play_paired
    from swarmgym.moe.warm_start import collect_demonstrations

    env_id = HARD_IDS[1]
    plain, told = load_orchestrator("verifying_scheduler"), load_orchestrator(f"verifying_scheduler:public={env_id}")
    assert play_paired(plain, env_id, 12) == play_paired(told, env_id, 12)
    demo = [collect_demonstrations(p, env_id, num_envs=4, num_steps=48, engine="gym")["actions"] for p in (plain, told)]
    assert torch.equal(*demo)
    kept = collect_demonstrations(
        load_orchestrator(f"verifying_scheduler:public={PUBLIC_TABLE_ID}"), env_id, num_envs=4, num_steps=48, engine="gym"
    )
    assert not torch.equal(demo[0], kept["actions"])  # the test can tell the tables apart


def test_verifying_scheduler__for_env_binds_only_an_untold_rule_on_the_extended_layout():
    hard = gym.make(HARD_IDS[0]).unwrapped.config
    rule = VerifyingScheduler(verify="never", target_ticks=16.0)
    bound = rule.for_env(hard)
    assert bound is not rule and bound.public is hard and bound.name == rule.name
    assert (bound.verify, bound.target_ticks) == ("never", 16.0)
    assert bound.for_env(gym.make(MECHANICS_IDS[0]).unwrapped.config) is bound  # a bound rule keeps its table
    told = VerifyingScheduler(public=PUBLIC_TABLE_ID)
    assert told.for_env(hard) is told
    assert rule.for_env(gym.make("swarmgym/WideSearch-v0").unwrapped.config) is rule  # base layout: no table to tell
    assert bind_to_env(object, gym.make(HARD_IDS[0])) is object  # a policy without for_env is played as it is


def test_flat_twins__evaluate_like_their_dict_ids():
    for env_id in MECHANICS_IDS:
        flat = swarmgym.flat_id(env_id)
        a = run_episodes(load_orchestrator("verifying_scheduler"), env_id, 4, batch=2)
        b = run_episodes(load_orchestrator("verifying_scheduler"), flat, 4, batch=2)
        for key in ("score", "critical_steps", "cost_usd"):
            np.testing.assert_array_equal(a.values(key), b.values(key))


# ------------------------------------------------------------------ hand-made observations
N_MAX = 8
LAY = ActionLayout(N_MAX, extended=True)
TABLE = gym.spec(PUBLIC_TABLE_ID).kwargs["config"]


def _node(row: np.ndarray, *, status: str, kind: str, work: int, target: bool = False, parents: int = 1, **extra: float) -> None:
    row[NODE_COLUMN["present"]] = 1.0
    row[NODE_COLUMN[f"status_{status}"]] = 1.0
    row[KIND_COLUMN0 + ("plan", "search", "reason", "merge").index(kind)] = 1.0
    row[NODE_COLUMN["work"]] = work / 16
    row[NODE_COLUMN["work_left"]] = (0 if status == "done" else work) / 16
    row[NODE_COLUMN["is_target"]] = float(target)
    row[NODE_COLUMN["n_parents"]] = parents / 8
    for name, value in extra.items():
        row[NODE_COLUMN[name]] = value


def _state(time_left: float = 20.0, **globals_: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nodes = np.zeros((N_MAX, len(node_features(True))), np.float32)
    glob = np.zeros(len(global_features(True)), np.float32)
    glob[GLOBAL_COLUMN["time_left"]] = time_left / (time_left + 16.0)
    glob[GLOBAL_COLUMN["can_spawn"]] = 1.0
    for name, value in globals_.items():
        glob[GLOBAL_COLUMN[name]] = value
    return nodes, glob, np.zeros(LAY.n, bool)


def _returns(n: int) -> float:
    return n / (n + RESULTS_HALF)


def _act(policy: VerifyingScheduler, nodes, glob, mask) -> str:
    a = int(policy.act({"nodes": nodes[None], "globals": glob[None]}, mask[None])[0])
    assert mask[a]
    return LAY.describe(a)


def _done_by_fast_subagent(nodes, i: int, **kw) -> None:
    _node(nodes[i], status="done", by_subagent=1.0, attempt_tier=1 / MAX_TIERS, **kw)


def test_belief__more_failures_and_catches_mean_a_larger_hidden_scale():
    policy = VerifyingScheduler()
    nodes, glob, _ = _state()
    prior = policy.scale_belief(nodes, glob)
    np.testing.assert_allclose(prior.sum(axis=1), 1.0)
    np.testing.assert_allclose(prior[0], prior[0, 0])  # no evidence: the uniform prior
    grid = policy._grid
    means = []
    for fail_rate in (0.0, 0.1, 0.3):
        glob[GLOBAL_COLUMN["tier0_returns"]] = _returns(20)
        glob[GLOBAL_COLUMN["tier0_fail_rate"]] = fail_rate
        means.append(float(policy.scale_belief(nodes, glob)[0] @ grid))
    assert means[0] < means[1] < means[2]
    # a caught wrong result among verified ones moves the belief up too (tier 0 only)
    glob[GLOBAL_COLUMN["tier0_fail_rate"]] = 0.0
    for i in range(3):
        _done_by_fast_subagent(nodes, i, kind="reason", work=4, target=True, verified=1.0)
    clean = policy.scale_belief(nodes, glob)
    glob[GLOBAL_COLUMN["tier0_caught_rate"]] = 0.5
    caught = policy.scale_belief(nodes, glob)
    assert caught[0] @ grid > clean[0] @ grid
    np.testing.assert_allclose(caught[1], clean[1])


def _busy_orchestrator(nodes, mask) -> None:
    """Node 7: a reading the orchestrator has started (4 ticks left: its queue)."""
    _node(nodes[7], status="active", kind="reason", work=4, target=True)
    mask[LAY.do + 7] = True


def test_tier__fast_for_a_low_risk_search_careful_for_a_reading_when_the_fast_tier_errs_often():
    policy = VerifyingScheduler(verify="never")
    nodes, glob, mask = _state()
    _busy_orchestrator(nodes, mask)
    _node(nodes[0], status="ready", kind="search", work=2, parents=1)
    mask[LAY.spawn + 0] = mask[LAY.spawn_tier(1) + 0] = mask[LAY.do + 0] = True
    mask[LAY.answer] = True
    assert _act(policy, nodes, glob, mask) == "spawn(0)"  # a search: little risk, the fast tier is quicker
    nodes[0] = 0
    _node(nodes[0], status="ready", kind="reason", work=4, target=True, parents=2)
    glob[GLOBAL_COLUMN["tier0_returns"]] = _returns(30)
    glob[GLOBAL_COLUMN["tier0_fail_rate"]] = 0.15  # the fast tier's hidden scale is high
    assert _act(policy, nodes, glob, mask) == "spawn_1(0)"
    # ... or low (no failure in 60 returns, five fast readings passed verification): the fast tier
    glob[GLOBAL_COLUMN["tier0_returns"]] = _returns(60)
    glob[GLOBAL_COLUMN["tier0_fail_rate"]] = 0.0
    for i in range(1, 6):
        _done_by_fast_subagent(nodes, i, kind="reason", work=4, target=True, verified=1.0)
    assert _act(policy, nodes, glob, mask) == "spawn(0)"


def test_tier__a_tier_that_cannot_return_before_the_budget_is_not_chosen():
    policy = VerifyingScheduler(verify="never")
    nodes, glob, mask = _state(time_left=6.0)
    _busy_orchestrator(nodes, mask)
    _node(nodes[0], status="ready", kind="reason", work=4, target=True, parents=2)
    mask[LAY.spawn + 0] = mask[LAY.spawn_tier(1) + 0] = mask[LAY.do + 0] = mask[LAY.answer] = True
    glob[GLOBAL_COLUMN["tier0_returns"]] = _returns(30)
    glob[GLOBAL_COLUMN["tier0_fail_rate"]] = 0.15
    # careful would take ceil(4 * 1.5) + 0.5 = 6.5 ticks > 6 left: the fast tier, though risky
    assert _act(policy, nodes, glob, mask) == "spawn(0)"


def _one_result_to_check(nodes, glob, mask, *, risky: bool) -> None:
    """Node 0: a fast sub-agent's result the orchestrator may verify; node 1 runs. Risky: a reading
    (a target feeding a merge) with three inputs while the fast tier fails often (its scale is high);
    safe: a search (not a target) while the fast tier has not failed in 60 returns."""
    if risky:
        _done_by_fast_subagent(nodes, 0, kind="reason", work=4, target=True, parents=3)
    else:
        _done_by_fast_subagent(nodes, 0, kind="search", work=4, parents=1)
    _node(nodes[1], status="running", kind="search", work=4, attempt_tier=1 / MAX_TIERS)
    mask[LAY.verify + 0] = mask[LAY.wait] = mask[LAY.answer] = True
    glob[GLOBAL_COLUMN["tier0_returns"]] = _returns(30 if risky else 60)
    glob[GLOBAL_COLUMN["tier0_fail_rate"]] = 0.1 if risky else 0.0


def _chain(nodes) -> None:
    """A visible chain 0 -> 1 -> 2 (works 2, 4, 2; 2 the only target): bottom levels 8, 6 and 2
    ticks over the critical path of 8."""
    for i, (work, level) in enumerate(((2, 8), (4, 6), (2, 2))):
        _node(nodes[i], status="ready" if i == 0 else "blocked", kind="reason", work=work, target=i == 2, bottom_level=level / 8)
        nodes[i, NODE_COLUMN["n_children"]] = 0.0 if i == 2 else 1 / 8


def test_depth_stake__grows_the_stake_by_the_work_below_a_node_in_units_of_its_own():
    nodes, _, _ = _state()
    _chain(nodes)
    np.testing.assert_allclose(VerifyingScheduler.levels_below(nodes)[:3], [3.0, 0.5, 0.0])  # 8/2 - 1, 6/4 - 1, 2/2 - 1
    counted = VerifyingScheduler().stake(nodes)
    np.testing.assert_allclose(counted[:3], [1.0, 1.0, 1.0])  # two feed one target, the target feeds nothing
    np.testing.assert_allclose(VerifyingScheduler(depth_stake=0.5).stake(nodes)[:3], [2.5, 1.25, 1.0])
    assert not counted[3:].any() and not VerifyingScheduler(depth_stake=0.5).stake(nodes)[3:].any()  # absent nodes


def test_depth_stake__is_nothing_where_the_task_hides_its_structure():
    nodes, _, _ = _state()
    _chain(nodes)
    nodes[:, NODE_COLUMN["bottom_level"]] = 0.0  # a progressive task shows no bottom levels
    assert not VerifyingScheduler.levels_below(nodes).any()
    np.testing.assert_array_equal(VerifyingScheduler(depth_stake=2.0).stake(nodes), VerifyingScheduler().stake(nodes))


def test_depth_stake__sends_an_early_step_to_the_careful_tier_that_the_count_alone_sends_to_the_fast_one():
    nodes, glob, mask = _state()
    _busy_orchestrator(nodes, mask)
    _chain(nodes)
    nodes[0] = 0
    _node(nodes[0], status="ready", kind="search", work=2, parents=1, bottom_level=8 / 8)  # little risk, 3 works below
    nodes[0, NODE_COLUMN["n_children"]] = 1 / 8
    mask[LAY.spawn + 0] = mask[LAY.spawn_tier(1) + 0] = mask[LAY.do + 0] = mask[LAY.answer] = True
    assert _act(VerifyingScheduler(verify="never"), nodes, glob, mask) == "spawn(0)"
    assert _act(VerifyingScheduler(verify="never", depth_stake=2.0), nodes, glob, mask) == "spawn_1(0)"


def test_verify__auto_checks_a_risky_result_while_idle_and_leaves_a_safe_one():
    policy = VerifyingScheduler()
    nodes, glob, mask = _state()
    _one_result_to_check(nodes, glob, mask, risky=True)
    assert _act(policy, nodes, glob, mask) == "verify(0)"
    nodes, glob, mask = _state()
    _one_result_to_check(nodes, glob, mask, risky=False)
    assert _act(policy, nodes, glob, mask) == "wait"


def test_verify__never_pushes_the_orchestrators_own_queue_past_the_budget():
    nodes, glob, mask = _state(time_left=4.5)
    _one_result_to_check(nodes, glob, mask, risky=True)
    _busy_orchestrator(nodes, mask)  # 4 ticks of its own work left: a 1-tick check would end at 5 > 4.5
    assert _act(VerifyingScheduler(), nodes, glob, mask) == "do(7)"
    nodes, glob, mask = _state(time_left=6.0)
    _one_result_to_check(nodes, glob, mask, risky=True)
    _busy_orchestrator(nodes, mask)
    assert _act(VerifyingScheduler(), nodes, glob, mask) == "verify(0)"


def test_verify__never_and_always_are_what_they_say():
    nodes, glob, mask = _state()
    _one_result_to_check(nodes, glob, mask, risky=True)
    assert _act(VerifyingScheduler(verify="never"), nodes, glob, mask) == "wait"
    nodes, glob, mask = _state()
    _one_result_to_check(nodes, glob, mask, risky=False)
    assert _act(VerifyingScheduler(verify="always"), nodes, glob, mask) == "verify(0)"


def test_verify__not_when_the_check_and_a_redo_do_not_fit_the_time_left():
    nodes, glob, mask = _state(time_left=3.0)
    _one_result_to_check(nodes, glob, mask, risky=True)
    # check 1 tick + redo ceil(4 * 0.6) + 0.5 = 3.5 ticks > 3 left
    assert _act(VerifyingScheduler(verify="always"), nodes, glob, mask) == "wait"


def test_verify__when_every_target_is_done_checks_what_pays_else_answers():
    nodes, glob, mask = _state(targets_done=1.0)
    _one_result_to_check(nodes, glob, mask, risky=True)
    assert _act(VerifyingScheduler(), nodes, glob, mask) == "verify(0)"
    assert _act(VerifyingScheduler(verify="never"), nodes, glob, mask) == "answer"


def test_own_work__a_node_cheaper_done_by_the_orchestrator_is_kept_not_spawned():
    policy = VerifyingScheduler(verify="never")
    nodes, glob, mask = _state()
    # a one-tick merge of 6 inputs: in a fast sub-agent's hands it is often wrong; the orchestrator does it
    _node(nodes[0], status="ready", kind="merge", work=1, target=True, parents=6)
    mask[LAY.spawn + 0] = mask[LAY.spawn_tier(1) + 0] = mask[LAY.do + 0] = mask[LAY.answer] = True
    assert _act(policy, nodes, glob, mask) == "do(0)"
    # critical_path's parent limit, given explicitly, still applies
    assert _act(VerifyingScheduler(verify="never", max_spawn_parents=8), nodes, glob, mask) == "do(0)"


def test_public_table__is_the_registered_config_or_one_given():
    assert VerifyingScheduler()._grid[[0, -1]].tolist() == list(TABLE["hidden_reliability"])
    custom = VerifyingScheduler(public=SwarmConfig(hidden_reliability=(1.0, 2.0)))
    assert custom._grid[[0, -1]].tolist() == [1.0, 2.0]
    assert VerifyingScheduler(public=SwarmConfig())._grid.tolist() == [1.0]


# ------------------------------------------------------------------ arguments
@pytest.mark.parametrize(
    "spec, message",
    [
        ("random:seed=3.5", r"^random: seed must be None or an integer in \[0, 2\*\*63 - 1\], got 3.5$"),
        ("random:seed=-1", r"^random: seed must be None or an integer in \[0, 2\*\*63 - 1\], got -1$"),
        ("random:colour=3", r"^random: unknown argument\(s\) \['colour'\]; it takes \['seed'\]$"),
        ("critical_path:max_spawn_parents=9", r"^critical_path: max_spawn_parents must be None or an integer in \[0, 8\], got 9$"),
        ("static_fanout:min_width=1", r"^static_fanout: min_width must be an integer >= 2, got 1$"),
        (
            "verifying_scheduler:verify=sometimes",
            r"^verifying_scheduler: verify must be one of \('auto', 'always', 'never'\), got 'sometimes'$",
        ),
        ("verifying_scheduler:tier=2", r"^verifying_scheduler: tier must be one of \('auto', 'fast', 'careful'\), got 2$"),
        ("verifying_scheduler:fast_tier=3", r"^verifying_scheduler: fast_tier must be an integer in \[0, 2\], got 3$"),
        ("verifying_scheduler:target_ticks=-1", r"^verifying_scheduler: target_ticks must be a number in \[0, 1000\], got -1$"),
        ("verifying_scheduler:idle_share=1.5", r"^verifying_scheduler: idle_share must be a number in \[0, 1\], got 1.5$"),
        ("verifying_scheduler:depth_stake=11", r"^verifying_scheduler: depth_stake must be a number in \[0, 10\], got 11$"),
        (
            "verifying_scheduler:max_spawn_parents=x",
            r"^verifying_scheduler: max_spawn_parents must be 'auto', None or an integer in \[0, 8\], got 'x'$",
        ),
        (
            "verifying_scheduler:public=nowhere",
            r"^verifying_scheduler: public must be a SwarmConfig or a registered env id, got 'nowhere'$",
        ),
    ],
)
def test_load_orchestrator__a_bad_value_is_one_line_naming_the_parameter_and_its_range(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        load_orchestrator(spec)
    assert "\n" not in str(err.value)
