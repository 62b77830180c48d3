"""Engines through the protocol only: ``type(engine)(**engine.spec)`` + ``load_state_dict`` continues
bit for bit, the saved state is compact, and the resolved ``config`` is the one the engine runs."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

import swarmgym  # noqa: F401
from swarmgym.config import SwarmConfig
from swarmgym.engine_protocol import SwarmEngine
from swarmgym.moe.engines import make_engine

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _has_batched() -> bool:
    try:
        from swarmgym.batched import BatchedSwarmEngine  # noqa: F401
    except ImportError:
        return False
    return True


ENGINES = ["gym"] + (["batched"] if _has_batched() else [])


def _valid_actions(engine: SwarmEngine, rng: np.random.Generator) -> torch.Tensor:
    """One valid action per env, uniform over the mask (answer only as a last resort, so episodes run long)."""
    mask = engine.action_mask.cpu().numpy()
    answer = engine.layout.answer
    out = []
    for row in mask:
        valid = np.flatnonzero(row)
        others = valid[valid != answer]
        out.append(int(rng.choice(others)) if others.size and rng.random() > 0.02 else answer)
    return torch.as_tensor(out, dtype=torch.int64)


def _trace(engine: SwarmEngine, actions: list[torch.Tensor]) -> list[tuple]:
    out = []
    for a in actions:
        obs, reward, done, info = engine.step(a)
        metrics = info["metrics"]
        out.append(
            (
                obs["nodes"].cpu().clone(),
                obs["globals"].cpu().clone(),
                engine.action_mask.cpu().clone(),
                reward.cpu().clone(),
                info["done_mask"].cpu().clone(),
                metrics["score"].cpu().clone() if "score" in metrics else None,
                metrics["critical_steps"].cpu().clone() if "critical_steps" in metrics else None,
            )
        )
    return out


def _assert_same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b)):
        for k, (u, v) in enumerate(zip(x, y)):
            if u is None or v is None:
                assert u is None and v is None, (t, k)
            else:
                done = x[4]
                if k >= 5:  # metrics are defined where an episode ended
                    u, v = u[done], v[done]
                assert torch.equal(u, v), (t, k)


@pytest.mark.parametrize("engine_kind", ENGINES)
def test_engine_state__rebuilt_from_spec_continues_bit_for_bit(engine_kind):
    engine = make_engine("swarmgym/Mixed-v0", 6, engine=engine_kind, seed=5)
    assert isinstance(engine, SwarmEngine)
    engine.reset()
    rng = np.random.default_rng(0)
    for _ in range(40):  # mid-episode in some envs, freshly reset in others
        engine.step(_valid_actions(engine, rng))
    state = engine.state_dict()
    blob = io.BytesIO()
    torch.save({"spec": engine.spec, "state": state}, blob)  # a checkpoint holds exactly this
    saved = torch.load(io.BytesIO(blob.getvalue()), weights_only=False)
    actions = []
    probe = np.random.default_rng(1)
    # the actions of the continuation must be valid for both: draw them from the original as it goes
    reference = []
    for _ in range(80):
        a = _valid_actions(engine, probe)
        actions.append(a)
        reference += _trace(engine, [a])
    assert any(bool(r[4].any()) for r in reference), "no episode ended in the continuation"
    rebuilt = type(engine)(**saved["spec"])
    rebuilt.reset(seed=123)  # a different state, overwritten by load_state_dict
    rebuilt.load_state_dict(saved["state"])
    _assert_same(reference, _trace(rebuilt, actions))


@pytest.mark.parametrize("engine_kind", ENGINES)
def test_engine_state__is_compact(engine_kind):
    """The saved state grows with envs x node slots (not with the engine's instance bank)."""
    engine = make_engine("swarmgym/Mixed-v0", 16, engine=engine_kind, seed=0)
    engine.reset()
    blob = io.BytesIO()
    torch.save(engine.state_dict(), blob)
    per_env_node = len(blob.getvalue()) / (engine.num_envs * engine.n_max)
    assert per_env_node < 2048, f"{per_env_node:.0f} bytes per env and node slot"


@pytest.fixture
def max4_id():
    env_id = "swarmgym-test/WideSearchMax4-v0"
    gym.register(id=env_id, entry_point="swarmgym.env:SwarmEnv", kwargs={"generator": "WideSearch", "config": SwarmConfig(max_subagents=4)})
    yield env_id
    del gym.registry[env_id]


@pytest.mark.parametrize("engine_kind", ENGINES)
def test_engine_config__is_the_resolved_registration(max4_id, engine_kind):
    if engine_kind == "gym":  # the batched engine takes long to build: one is enough
        assert make_engine(max4_id, 2, engine=engine_kind).config.max_subagents == 4
    engine = make_engine(max4_id, 2, engine=engine_kind, overrides={"config": {"spawn_ticks": 1}})
    assert engine.config.max_subagents == 4 and engine.config.spawn_ticks == 1
