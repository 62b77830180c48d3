"""A pickled (or deep-copied) batched engine continues exactly like the original."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from swarmgym.batched import BatchedSwarmEngine


def _draw(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(mask.shape, generator=gen) * mask).argmax(1)


@pytest.mark.parametrize("clone", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy], ids=["pickle", "deepcopy"])
def test_engine__clone_mid_run_continues_identically(clone):
    engine = BatchedSwarmEngine("Mixed", num_envs=16, seed=0, bank_size=64)
    engine.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        engine.step(_draw(engine.action_mask, gen))
    twin = clone(engine)
    for k in range(40):
        assert torch.equal(engine.action_mask, twin.action_mask), k
        actions = _draw(engine.action_mask, gen)
        obs_a, rew_a, term_a, info_a = engine.step(actions)
        obs_b, rew_b, term_b, info_b = twin.step(actions)
        assert torch.equal(obs_a["nodes"], obs_b["nodes"]) and torch.equal(obs_a["globals"], obs_b["globals"]), k
        assert torch.equal(rew_a, rew_b) and torch.equal(term_a, term_b), k
