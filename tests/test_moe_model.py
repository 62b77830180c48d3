"""The MoE orchestrator network: shapes, masking, padding, routing, balancing, the dense control."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from swarmgym.layout import GLOBAL_FEATURES, NODE_FEATURES, ActionLayout
from swarmgym.moe.model import DenseFeedForward, ModelConfig, MoEFeedForward, OrchestratorNet, dense_hidden_for

TINY = dict(d_model=16, n_heads=2, n_layers=2, n_experts=4, top_k=2, expert_hidden=16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(b: int = 5, n_max: int = 12, n_real=(3, 7, 12, 1, 5), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    nodes = torch.rand(b, n_max, len(NODE_FEATURES), generator=g)
    for i, n in enumerate(n_real[:b]):
        nodes[i, :n, 0] = 1.0
        nodes[i, n:] = 0.0  # padding rows are all zero (the env's convention)
    glob = torch.rand(b, len(GLOBAL_FEATURES), generator=g)
    lay = ActionLayout(n_max)
    mask = torch.zeros(b, lay.n, dtype=torch.bool)
    for i, n in enumerate(n_real[:b]):
        mask[i, lay.do : lay.do + n] = torch.rand(n, generator=g) < 0.5
        mask[i, lay.spawn : lay.spawn + n] = torch.rand(n, generator=g) < 0.5
    mask[:, lay.answer] = True
    return nodes, glob, mask


@pytest.mark.parametrize("ffn", ["moe", "dense"])
def test_model__shapes_and_masked_logits(ffn):
    torch.manual_seed(0)
    model = OrchestratorNet(ModelConfig(ffn=ffn, **TINY))
    nodes, glob, mask = _batch()
    logits, value = model(nodes, glob, mask)
    assert logits.shape == (5, 26) and value.shape == (5,)
    assert logits.dtype == torch.float32 and value.dtype == torch.float32
    assert torch.all(logits[~mask] <= -1e8)
    assert torch.all(logits[mask] > -1e3)
    probs = torch.softmax(logits, -1)
    assert torch.all(probs[~mask] == 0.0)
    assert torch.allclose(probs.sum(-1), torch.ones(5))


@pytest.mark.parametrize("ffn", ["moe", "dense"])
def test_model__padding_slots_change_nothing(ffn):
    """More padding (a larger n_max) leaves every real node's logits and the value unchanged."""
    torch.manual_seed(1)
    model = OrchestratorNet(ModelConfig(ffn=ffn, **TINY)).eval()
    nodes, glob, _ = _batch(n_max=12)
    wide = torch.zeros(5, 20, len(NODE_FEATURES))
    wide[:, :12] = nodes
    with torch.no_grad():
        l12, v12 = model(nodes, glob)
        l20, v20 = model(wide, glob)
    assert torch.allclose(v12, v20, atol=1e-5)
    assert torch.allclose(l12[:, :12], l20[:, :12], atol=1e-5)  # do(i)
    assert torch.allclose(l12[:, 12:24], l20[:, 20:32], atol=1e-5)  # spawn(i)
    assert torch.allclose(l12[:, 24:], l20[:, 40:], atol=1e-5)  # wait, answer


def test_model__node_order_is_equivariant():
    """No positional encoding: permuting the node slots permutes the per-node logits."""
    torch.manual_seed(2)
    model = OrchestratorNet(ModelConfig(**TINY)).eval()
    nodes, glob, _ = _batch(b=1, n_max=12, n_real=(12,))
    perm = torch.randperm(12)
    with torch.no_grad():
        logits, v = model(nodes, glob)
        lp, vp = model(nodes[:, perm], glob)
    assert torch.allclose(v, vp, atol=1e-5)
    assert torch.allclose(logits[:, :12][:, perm], lp[:, :12], atol=1e-5)
    assert torch.allclose(logits[:, 12:24][:, perm], lp[:, 12:24], atol=1e-5)


def _naive_moe(moe: MoEFeedForward, x: torch.Tensor) -> torch.Tensor:
    """Token-by-token reference of the routed + shared computation."""
    out = []
    for tok in x:
        y = sum((s(tok[None], None)[0] for s in moe.shared), torch.zeros_like(tok))
        aff = torch.sigmoid(moe.router(tok))
        chosen = torch.topk(aff + moe.expert_bias, moe.top_k).indices
        gates = aff[chosen] / aff[chosen].sum()
        for g, e in zip(gates, chosen):
            h = F.gelu(tok @ moe.w1[e] + moe.b1[e])
            y = y + g * (h @ moe.w2[e] + moe.b2[e])
        out.append(y)
    return torch.stack(out)


def test_moe__vectorised_dispatch_matches_token_loop():
    torch.manual_seed(3)
    moe = MoEFeedForward(ModelConfig(d_model=8, n_heads=2, n_experts=5, top_k=2, expert_hidden=6))
    moe.expert_bias.copy_(torch.tensor([0.3, -0.2, 0.0, 0.1, -0.4]))  # the bias steers selection
    x = torch.randn(2, 7, 8)
    valid = torch.ones(2, 7, dtype=torch.bool)
    valid[1, 4:] = False
    with torch.no_grad():
        got = moe(x, valid)
        ref = _naive_moe(moe, x[valid])
    assert torch.allclose(got[valid], ref, atol=1e-5)
    assert torch.all(got[~valid] == 0)  # padding tokens are not computed
    assert moe.last_load.sum().item() == valid.sum().item() * 2


def test_moe__bias_update_balances_a_skewed_router():
    torch.manual_seed(4)
    cfg = ModelConfig(d_model=8, n_heads=2, n_experts=4, top_k=1, expert_hidden=4, bias_update_rate=0.05)
    moe = MoEFeedForward(cfg)
    with torch.no_grad():
        moe.router.weight.normal_(0.0, 1.0)
        moe.router.weight[0] = 3.0  # every token prefers expert 0
    x = torch.randn(1, 256, 8).abs()
    valid = torch.ones(1, 256, dtype=torch.bool)

    def spread():
        with torch.no_grad():
            moe(x, valid)
        load = moe.last_load
        return float(load.max() - load.min())

    before = spread()
    for _ in range(100):
        spread()
        moe.update_bias()
    after = spread()
    assert before == 256.0
    assert after < 0.5 * before
    assert moe.load_since_update.sum() > 0  # the last forward accumulated; update clears it
    moe.update_bias()
    assert moe.load_since_update.sum() == 0


def test_moe__switch_aux_loss_reaches_the_router():
    torch.manual_seed(5)
    model = OrchestratorNet(ModelConfig(balance="aux", **TINY))
    nodes, glob, mask = _batch()
    model(nodes, glob, mask)
    aux = model.aux_loss()
    assert aux.item() > 0
    aux.backward()
    for m in model.moe_layers():
        assert m.router.weight.grad is not None and m.router.weight.grad.abs().sum() > 0


def test_moe__routing_stats_per_family():
    torch.manual_seed(6)
    model = OrchestratorNet(ModelConfig(**TINY))
    nodes, glob, mask = _batch()
    family = torch.tensor([0, 1, 2, 1, 0])
    model(nodes, glob, mask, family=family)
    stats = model.routing_stats()
    assert stats["load"].shape == (2, 4)
    assert torch.allclose(stats["load"].sum(-1), torch.ones(2))
    fl = stats["family_load"]
    assert fl.shape == (2, 3, 4)
    tokens = (nodes[..., 0] > 0.5).sum(1) + 1  # real nodes + the global token
    per_family = torch.zeros(3).index_add_(0, family, tokens.float())
    assert torch.allclose(fl.sum(-1)[0], per_family * 2)  # top_k = 2 assignments per token


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(d_model=32, expert_hidden=32),
        dict(d_model=64, expert_hidden=64),
        dict(d_model=48, n_heads=4, n_experts=16, top_k=1, expert_hidden=24),
    ],
)
def test_dense_control__equal_active_parameters(kwargs):
    cfg = ModelConfig(**kwargs)
    moe = OrchestratorNet(cfg)
    dense = OrchestratorNet(ModelConfig(**{**cfg.to_dict(), "ffn": "dense"}))
    a_moe, a_dense = moe.parameter_counts()["active"], dense.parameter_counts()["active"]
    assert abs(a_moe - a_dense) / a_moe < 0.01
    assert moe.parameter_counts()["total"] > a_moe  # inactive routed experts exist
    assert dense.parameter_counts()["total"] == a_dense
    assert isinstance(dense.blocks[0].ffn, DenseFeedForward)
    assert dense.blocks[0].ffn.fc1.out_features == dense_hidden_for(cfg)


def test_model__fresh_policy_rarely_answers_at_once():
    model = OrchestratorNet(ModelConfig(**TINY))
    nodes, glob, mask = _batch()
    mask[:, :5] = True
    with torch.no_grad():
        probs = torch.softmax(model(nodes, glob, mask)[0], -1)
    assert torch.all(probs[:, -1] < 0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ffn="sparse"), "ffn"),
        (dict(top_k=9, n_experts=8), "top_k"),
        (dict(d_model=30, n_heads=4), "multiple"),
        (dict(balance="loss"), "balance"),
        (dict(bias_update_rate=2.0), "bias_update_rate"),
        (dict(n_layers=0), "n_layers"),
    ],
)
def test_model_config__rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_model__rejects_bad_shapes():
    model = OrchestratorNet(ModelConfig(**TINY))
    nodes, glob, mask = _batch()
    with pytest.raises(ValueError, match="nodes"):
        model(nodes[..., :10], glob)
    with pytest.raises(ValueError, match="mask"):
        model(nodes, glob, mask[:, :-1])
    with pytest.raises(TypeError, match="config"):
        OrchestratorNet(config=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_model__cuda_bf16_forward():
    model = OrchestratorNet(ModelConfig(**TINY)).cuda()
    nodes, glob, mask = (t.cuda() for t in _batch())
    logits, value = model(nodes, glob, mask)
    assert logits.dtype == torch.float32 and torch.isfinite(value).all()
    cpu = OrchestratorNet(ModelConfig(**TINY))
    cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    l_cpu, _ = cpu(*(t.cpu() for t in (nodes, glob, mask)))
    valid = mask.cpu()
    assert np.allclose(logits.cpu()[valid].numpy(), l_cpu[valid].detach().numpy(), atol=0.1)
