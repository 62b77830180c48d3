"""SwarmVectorEnv through gymnasium.make_vec: every suite id, batched spaces, SAME_STEP autoreset,
dict-of-arrays infos, reset options, tensors on the engine's device, and bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

import swarmgym
from swarmgym import SwarmEnv
from swarmgym.batched import BatchedSwarmEngine, SwarmVectorEnv, generate_instances
from swarmgym.layout import METRIC_KEYS as LAYOUT_METRIC_KEYS
from swarmgym.layout import ActionLayout

METRIC_KEYS = set(LAYOUT_METRIC_KEYS)


def _random_actions(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(np.flatnonzero(row)) for row in mask], dtype=np.int64)


@pytest.mark.parametrize("env_id", swarmgym.SUITE_IDS)
def test_make_vec__serves_every_id_with_batched_spaces(env_id):
    env = gym.make_vec(env_id, num_envs=3, bank_size=4)
    single = gym.make(env_id).unwrapped
    assert isinstance(env, SwarmVectorEnv) and env.num_envs == 3
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.observation_space == batch_space(single.observation_space, 3)
    assert env.action_space == batch_space(single.action_space, 3)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["action_mask"].shape == (3, single.action_space.n) and info["action_mask"].dtype == bool
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs, reward, terminated, truncated, info = env.step(_random_actions(env.action_masks(), rng))
        assert env.observation_space.contains(obs)
        assert reward.dtype == np.float64 and terminated.dtype == bool and truncated.dtype == bool
        np.testing.assert_array_equal(info["action_mask"], env.action_masks())
    env.close()


def test_step__infos_are_gymnasium_dict_of_arrays_with_episode_metrics():
    env = gym.make_vec("swarmgym/Mixed-v0", num_envs=4, bank_size=8)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    seen = 0
    for _ in range(60):
        obs, reward, terminated, truncated, info = env.step(_random_actions(env.action_masks(), rng))
        done = terminated | truncated
        if not done.any():
            assert "metrics" not in info
            continue
        seen += int(done.sum())
        np.testing.assert_array_equal(info["_metrics"], done)
        metrics = info["metrics"]
        assert set(metrics) == METRIC_KEYS
        for key, value in metrics.items():
            assert len(value) == 4, key
        assert metrics["concurrency_profile"].shape == (4, 9)
        assert set(metrics["family"][done]) <= set(swarmgym.Mixed.FAMILY_ORDER)
        np.testing.assert_array_equal(metrics["score"][done], reward[done])
        assert (metrics["score"][~done] == 0).all()
        ran = done & (metrics["critical_steps"] > 0)
        np.testing.assert_allclose(metrics["concurrency_profile"][ran].sum(1), 1.0)
        # SAME_STEP: the final observation of the finished episode, the new episode's first one
        np.testing.assert_array_equal(info["_final_obs"], done)
        final_mask = info["final_info"]["action_mask"][done]  # a terminal mask allows exactly answer
        answer = env.unwrapped.engine.layout.answer
        assert final_mask[:, answer].all() and (final_mask.sum(1) == 1).all()
        assert (obs["globals"][done, 0] == 0).all()  # time_used of a fresh episode
        time_used = (metrics["critical_steps"][done] / metrics["budget"][done]).astype(np.float32)
        np.testing.assert_array_equal(info["final_obs"]["globals"][done, 0], time_used)
    assert seen > 0


def test_reset__options_instances_load_one_per_env_and_match_the_reference():
    env = gym.make_vec("swarmgym/LayeredDAG-v0", num_envs=3, bank_size=4)
    single = SwarmEnv(**{k: v for k, v in gym.spec("swarmgym/LayeredDAG-v0").kwargs.items() if k != "observation_mode"})
    instances = generate_instances(single.generator, single.config, np.random.default_rng(9), 3)
    obs, info = env.reset(options={"instances": instances})
    for e, inst in enumerate(instances):
        ref_obs, ref_info = single.reset(options={"instance": inst})
        np.testing.assert_array_equal(obs["nodes"][e], ref_obs["nodes"])
        np.testing.assert_array_equal(obs["globals"][e], ref_obs["globals"])
        np.testing.assert_array_equal(info["action_mask"][e], ref_info["action_mask"])
    assert env.engine.instances() == instances
    with pytest.raises(ValueError, match="instances"):
        env.reset(options={"instances": instances * 2})
    with pytest.raises(TypeError, match="TaskInstance"):
        env.reset(options={"instances": ["not an instance"]})
    with pytest.raises(ValueError, match="reset options"):
        env.reset(options={"instance": instances[0]})


def test_flat_mode__matches_the_reference_flat_observation():
    env = gym.make_vec("swarmgym/WideSearch-flat-v0", num_envs=2, bank_size=4)
    single = gym.make("swarmgym/WideSearch-flat-v0").unwrapped
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(3)
    for step in range(40):
        instances = env.engine.instances()
        for e in range(2):
            if step == 0:
                ref_obs, _ = single.reset(options={"instance": instances[e]})
                np.testing.assert_array_equal(obs[e], ref_obs)
        actions = _random_actions(env.action_masks(), rng)
        obs, reward, terminated, truncated, info = env.step(actions)
        assert obs.shape == (2, single.observation_space.shape[0]) and obs.dtype == np.float32
        # the last entries of a flat observation are the action mask
        np.testing.assert_array_equal(obs[:, -single.action_space.n :], info["action_mask"].astype(np.float32))


#: Every orchestration mechanic of docs/mechanics.md on: the extended layout and observation.
MECHANICS = {
    "progressive": True,
    "verification": {"base_ticks": 1},
    "tiers": [{"name": "fast", "slowdown_percent": 50, "error_scale": 2.0}, {"name": "careful", "token_percent": 300}],
    "hidden_reliability": (0.5, 2.0),
    "coordination": {"turn_input_per_result": 50, "merge_work_per_subagent_input": 1},
}


@pytest.mark.parametrize("env_id", ["swarmgym/Mixed-v0", "swarmgym/Mixed-flat-v0"])
def test_make_vec__an_extended_config_serves_the_extended_spaces_and_observations(env_id):
    """With the mechanics on, make_vec's spaces are the reference's extended ones (dict, or the
    longer flat vector ending with the extended mask), and so are its observations."""
    env = gym.make_vec(env_id, num_envs=2, bank_size=4, config=MECHANICS)
    single = gym.make(env_id, config=MECHANICS).unwrapped
    assert env.single_observation_space == single.observation_space and env.single_action_space == single.action_space
    assert single.action_space.n == ActionLayout(single.n_max, extended=True).n
    obs, info = env.reset(seed=0)
    for e, inst in enumerate(env.unwrapped.engine.instances()):
        ref_obs, ref_info = single.reset(options={"instance": inst})
        if isinstance(ref_obs, dict):
            for key in ref_obs:
                np.testing.assert_array_equal(obs[key][e], ref_obs[key])
        else:
            np.testing.assert_array_equal(obs[e], ref_obs)
        np.testing.assert_array_equal(info["action_mask"][e], ref_info["action_mask"])
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs, _, _, _, info = env.step(_random_actions(env.action_masks(), rng))
        assert env.observation_space.contains(obs)
        if not isinstance(obs, dict):
            np.testing.assert_array_equal(obs[:, -single.action_space.n :], info["action_mask"].astype(np.float32))
    env.close()


def test_with_adjacency__is_the_parent_matrix_of_each_instance():
    env = SwarmVectorEnv(num_envs=2, generator="DependentChains", with_adjacency=True, bank_size=4)
    obs, _ = env.reset(seed=0)
    single = SwarmEnv("DependentChains", with_adjacency=True)
    for e, inst in enumerate(env.engine.instances()):
        ref_obs, _ = single.reset(options={"instance": inst})
        np.testing.assert_array_equal(obs["adjacency"][e], ref_obs["adjacency"])
    assert env.single_observation_space == single.observation_space


def test_return_tensors__gives_torch_tensors_equal_to_the_numpy_form():
    kwargs = dict(num_envs=3, generator="SerialReasoning", bank_size=4, seed=2)
    env_np = SwarmVectorEnv(**kwargs)
    env_t = SwarmVectorEnv(**kwargs, return_tensors=True, device="cpu")
    obs_np, _ = env_np.reset(seed=4)
    obs_t, info_t = env_t.reset(seed=4)
    assert isinstance(obs_t["nodes"], torch.Tensor) and obs_t["nodes"].device.type == "cpu"
    assert isinstance(info_t["action_mask"], torch.Tensor)
    rng = np.random.default_rng(4)
    for _ in range(25):
        actions = _random_actions(env_np.action_masks(), rng)
        obs_np, r_np, te_np, tr_np, _ = env_np.step(actions)
        obs_t, r_t, te_t, tr_t, _ = env_t.step(torch.from_numpy(actions))
        for key in obs_np:
            np.testing.assert_array_equal(obs_t[key].numpy(), obs_np[key])
        np.testing.assert_array_equal(r_t.numpy(), r_np)
        np.testing.assert_array_equal(te_t.numpy(), te_np)
        np.testing.assert_array_equal(env_t.action_masks().numpy(), env_np.action_masks())


def test_reset_seed__makes_rollouts_reproducible():
    def rollout(seed):
        env = SwarmVectorEnv(num_envs=3, generator="Mixed", bank_size=6)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs["nodes"].copy()]
        for _ in range(30):
            obs, *_ = env.step(_random_actions(env.action_masks(), rng))
            out.append(obs["nodes"].copy())
        return np.stack(out)

    np.testing.assert_array_equal(rollout(7), rollout(7))


def test_max_episode_steps__truncates_with_metrics():
    env = SwarmVectorEnv(num_envs=2, generator="WideSearch", bank_size=4, max_episode_steps=3)
    env.reset(seed=0)
    wait_or_do = []
    for _ in range(3):
        mask = env.action_masks()
        n = env.engine.n_max
        actions = np.array([np.flatnonzero(row[: 2 * n + 1])[0] for row in mask])  # never answer
        obs, reward, terminated, truncated, info = env.step(actions)
        wait_or_do.append(truncated)
    assert truncated.all() and not terminated.any()
    assert info["_metrics"].all() and (reward == 0).all()
    assert (info["metrics"]["critical_steps"] > 0).all()


def test_outputs__are_copies_not_engine_buffers():
    env = SwarmVectorEnv(num_envs=2, generator="WideSearch", bank_size=4)
    obs, _ = env.reset(seed=0)
    before = {k: v.copy() for k, v in obs.items()}
    env.step(np.array([2 * env.engine.n_max + 1] * 2))
    for key in obs:
        np.testing.assert_array_equal(obs[key], before[key])


def test_bad_input__raises_naming_the_parameter():
    with pytest.raises(ValueError, match="observation_mode"):
        SwarmVectorEnv(num_envs=2, observation_mode="graph")
    with pytest.raises(ValueError, match="num_envs"):
        SwarmVectorEnv(num_envs=0)
    with pytest.raises(ValueError, match="bank_size"):
        SwarmVectorEnv(num_envs=2, bank_size=0)
    with pytest.raises(ValueError, match="strict"):
        SwarmVectorEnv(num_envs=2, strict=True)
    with pytest.raises(
        ValueError, match=r"invalid_action must be one of \('waste_tick', 'answer'\) in batch, got 'raise'; 'raise' needs one env"
    ):
        SwarmVectorEnv(num_envs=2, invalid_action="raise")
    with pytest.raises(ValueError, match="invalid_action must be one of"):
        SwarmVectorEnv(num_envs=2, invalid_action="noop")
    with pytest.raises(ValueError, match="render_mode"):
        SwarmVectorEnv(num_envs=2, render_mode="ansi")
    with pytest.raises(ValueError, match="max_episode_steps"):
        SwarmVectorEnv(num_envs=2, max_episode_steps=0)
    with pytest.raises(ValueError, match="device"):
        BatchedSwarmEngine(num_envs=2, device="tpu", bank_size=2)
    env = SwarmVectorEnv(num_envs=2, bank_size=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, dtype=np.int64))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="actions must be integers"):
        env.step(np.array([0, 10_000]))
    with pytest.raises(TypeError, match="integers"):
        env.step(np.array([0.5, 1.0]))


def test_engine__metrics_are_tensors_with_family_ids():
    engine = BatchedSwarmEngine("Mixed", num_envs=4, bank_size=8)
    engine.reset()
    obs, reward, terminated, info = engine.step(torch.full((4,), 2 * engine.n_max + 1))
    assert terminated.all() and info["done_mask"].all()
    assert obs["nodes"].shape == (4, engine.n_max, 20) and obs["globals"].shape == (4, 10)
    assert obs["nodes"].dtype == torch.float32 and engine.action_mask.dtype == torch.bool
    metrics = info["metrics"]
    assert set(metrics) == (METRIC_KEYS - {"family"}) | {"family_id"}
    assert all(isinstance(v, torch.Tensor) for v in metrics.values())
    assert {engine.family_names[i] for i in metrics["family_id"].tolist()} <= set(swarmgym.Mixed.FAMILY_ORDER)
    assert (metrics["critical_steps"] == 0).all() and (metrics["score"] == reward).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("config", [None, MECHANICS], ids=["base", "mechanics"])
def test_engine__on_cuda_matches_cpu(config):
    kwargs = dict(generator="Mixed", config=config, num_envs=64, bank_size=1, seed=0, with_adjacency=config is not None)
    cpu, gpu = BatchedSwarmEngine(**kwargs), BatchedSwarmEngine(**kwargs, device="cuda")
    assert gpu.kernel == "cuda"
    cpu.reset(seed=0)
    gpu.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        actions = torch.from_numpy(_random_actions(cpu.action_mask.numpy(), rng))
        oc, rc, tc, ic = cpu.step(actions)
        og, rg, tg, ig = gpu.step(actions.cuda())
        for key in oc:
            assert torch.equal(oc[key], og[key].cpu())
        assert torch.equal(rc, rg.cpu()) and torch.equal(tc, tg.cpu())
        assert torch.equal(ic["action_mask"], ig["action_mask"].cpu())
        done = ic["done_mask"]
        for key, value in ic["metrics"].items():
            assert torch.equal(value[done], ig["metrics"][key].cpu()[done]), key


def test_gymnasium_vector_wrappers__record_episode_statistics_sees_every_episode():
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    env = RecordEpisodeStatistics(gym.make_vec("swarmgym/WideSearch-v0", num_envs=4, bank_size=8))
    obs, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    recorded = finished = 0
    for _ in range(60):
        obs, reward, terminated, truncated, info = env.step(_random_actions(info["action_mask"], rng))
        done = terminated | truncated
        finished += int(done.sum())
        if "episode" in info:
            recorded += int(info["_episode"].sum())
            np.testing.assert_array_equal(info["_episode"], done)
            np.testing.assert_allclose(info["episode"]["r"][done], reward[done])  # the score comes at the end only
    assert recorded == finished > 0


def test_docstring__arguments_table_names_every_constructor_parameter():
    import inspect
    import re

    doc = SwarmVectorEnv.__doc__
    table = doc[doc.index("## Arguments") : doc.index("## Version History")]
    documented = set()
    for row in re.findall(r"^\s*\| ([^|]+) \|", table, flags=re.M):
        documented |= {name.strip() for name in row.split(",")}
    params = set(inspect.signature(SwarmVectorEnv.__init__).parameters) - {"self"}
    assert params <= documented, sorted(params - documented)


def test_engine__saved_with_torch_save_resumes_exactly():
    """Trainers save the engine whole (torch.save): its state must pickle (no storage viewed as two
    dtypes) and a loaded copy must step exactly as the original."""
    import io

    engine = BatchedSwarmEngine("Mixed", num_envs=6, bank_size=8, seed=2)
    engine.reset(seed=1)
    rng = np.random.default_rng(0)

    def actions(mask):
        return torch.from_numpy(np.array([rng.choice(np.flatnonzero(row)) for row in mask.numpy()]))

    for _ in range(5):
        engine.step(actions(engine.action_mask))
    buffer = io.BytesIO()
    torch.save(engine, buffer)
    buffer.seek(0)
    copy = torch.load(buffer, weights_only=False)
    for _ in range(30):
        a = actions(engine.action_mask)
        obs, reward, terminated, info = engine.step(a)
        obs2, reward2, terminated2, info2 = copy.step(a.clone())
        assert torch.equal(obs["nodes"], obs2["nodes"]) and torch.equal(obs["globals"], obs2["globals"])
        assert torch.equal(reward, reward2) and torch.equal(terminated, terminated2)
        assert torch.equal(info["action_mask"], info2["action_mask"])
