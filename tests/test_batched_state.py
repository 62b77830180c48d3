"""Checkpoints: an engine rebuilt from ``spec`` and loaded with ``state_dict()`` continues bit for bit;
the state is compact (no instance bank); pickling goes the same way. Both engines of the protocol."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from swarmgym.batched import BatchedSwarmEngine
from swarmgym.engine_protocol import SwarmEngine
from swarmgym.moe.engines import GymVectorEngine, make_engine, resolve_env_kwargs


def _draw(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(mask.shape, generator=gen) * mask).argmax(1)


def _snapshot(out) -> list[torch.Tensor]:
    """What a step returned (metrics where an episode ended: the other rows are not meaningful)."""
    obs, reward, terminated, info = out
    done = info["done_mask"].bool()
    return [t.clone() for t in (*obs.values(), reward, terminated, done)] + [v[done].clone() for v in info["metrics"].values()]


def _assert_continue_equally(a, b, gen: torch.Generator, steps: int) -> None:
    for k in range(steps):
        assert torch.equal(a.action_mask, b.action_mask), k
        actions = _draw(a.action_mask, gen)
        sa, sb = _snapshot(a.step(actions)), _snapshot(b.step(actions))
        for x, y in zip(sa, sb):
            assert torch.equal(x, y), k


@pytest.mark.parametrize("refresh_every", [None, 30])
def test_state_dict__rebuilt_engine_continues_bit_for_bit(refresh_every):
    """Save mid-run (after autoresets, a bank refresh and loaded instances), rebuild from spec,
    load: the next 200 steps are equal, observations, rewards, flags and metrics."""
    engine = BatchedSwarmEngine("Mixed", num_envs=16, seed=3, bank_size=32, refresh_every=refresh_every, max_episode_steps=40)
    engine.reset(seed=4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(45):
        engine.step(_draw(engine.action_mask, gen))
    engine.load_instances(engine.instances()[:2][::-1], env_ids=[5, 6])
    for _ in range(5):
        engine.step(_draw(engine.action_mask, gen))
    state = engine.state_dict()
    # compact: per-env dynamic state (about 1.5 KB per env here), no instance bank
    assert "bank" not in state and sum(t.numel() * t.element_size() for t in state["state"].values()) < 16 * 2048
    twin = type(engine)(**engine.spec)
    twin.load_state_dict(state)
    assert torch.equal(engine.observation()["nodes"], twin.observation()["nodes"])
    assert torch.equal(engine.observation()["globals"], twin.observation()["globals"])
    _assert_continue_equally(engine, twin, gen, 200)


def test_state_dict__an_extended_config_continues_bit_for_bit():
    """With the mechanics on (hidden rows and adjacency, verify, tiers, the tax), the state of the
    mechanics is saved too: a rebuilt engine continues bit for bit, observations and adjacency included."""
    config = {
        "progressive": True,
        "verification": {"base_ticks": 1, "work_percent": 100},
        "tiers": [{"name": "fast", "slowdown_percent": 50, "error_scale": 3.0}, {"name": "careful", "token_percent": 200}],
        "coordination": {"turn_input_per_result": 30, "merge_work_per_subagent_input": 1},
        "reliability": {"wrong_base": (0.4,) * 4},
    }
    engine = BatchedSwarmEngine("Mixed", config=config, num_envs=8, seed=1, bank_size=16, with_adjacency=True)
    engine.reset(seed=2)
    gen = torch.Generator().manual_seed(5)
    for _ in range(60):
        engine.step(_draw(engine.action_mask, gen))
    twin = type(engine)(**engine.spec)
    twin.load_state_dict(engine.state_dict())
    for key, value in engine.observation().items():
        assert torch.equal(value, twin.observation()[key]), key
    assert torch.equal(engine.action_mask, twin.action_mask)
    _assert_continue_equally(engine, twin, gen, 120)


def test_state_dict__refuses_a_state_of_another_spec():
    a = BatchedSwarmEngine("WideSearch", num_envs=2, bank_size=4)
    b = BatchedSwarmEngine("WideSearch", num_envs=3, bank_size=4)
    with pytest.raises(ValueError, match="num_envs"):
        b.load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="state_dict"):
        b.load_state_dict({"format": "something else"})
    answers = BatchedSwarmEngine("WideSearch", num_envs=2, bank_size=4, invalid_action="answer")
    with pytest.raises(ValueError, match=r"differs in \['invalid_action'\]"):
        answers.load_state_dict(a.state_dict())


def test_state_dict__a_state_saved_before_the_rule_was_a_spec_key_loads_as_waste_tick():
    a = BatchedSwarmEngine("WideSearch", num_envs=2, bank_size=4)
    state = a.state_dict()
    del state["spec"]["invalid_action"]
    BatchedSwarmEngine("WideSearch", num_envs=2, bank_size=4).load_state_dict(state)
    with pytest.raises(ValueError, match="invalid_action"):
        BatchedSwarmEngine("WideSearch", num_envs=2, bank_size=4, invalid_action="answer").load_state_dict(state)


@pytest.mark.parametrize("clone", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy], ids=["pickle", "deepcopy"])
def test_engine__clone_mid_run_continues_identically(clone):
    engine = BatchedSwarmEngine("Mixed", num_envs=16, seed=0, bank_size=64)
    engine.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        engine.step(_draw(engine.action_mask, gen))
    _assert_continue_equally(engine, clone(engine), gen, 40)


def test_engines__implement_the_protocol():
    """Both engines of make_engine have the protocol's attributes (config, layout, spec, state_dict)."""
    for kind in ("batched", "gym"):
        engine = make_engine("swarmgym/WideSearch-v0", 2, engine=kind)
        assert isinstance(engine, SwarmEngine), kind
        assert engine.layout.n == engine.action_mask.shape[1] and engine.config.max_subagents == 8


def test_gym_vector_engine__state_dict_continues_bit_for_bit():
    kwargs = resolve_env_kwargs("swarmgym/Mixed-v0")
    engine = GymVectorEngine(kwargs, num_envs=3, seed=7)
    engine.reset()
    gen = torch.Generator().manual_seed(1)
    for _ in range(30):
        engine.step(_draw(engine.action_mask, gen))
    twin = GymVectorEngine(**engine.spec)
    twin.load_state_dict(engine.state_dict())
    _assert_continue_equally(engine, twin, gen, 200)
