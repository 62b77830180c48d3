"""The orchestrator network: a small transformer over node tokens with MoE feed-forward blocks.

Layout (the Kimi K2 / DeepSeek-V3 MoE layout, scaled down to a few ten thousand parameters):

* **Tokens.** One token per node slot (the columns of ``obs["nodes"]``: the 20 of
  :data:`swarmgym.layout.NODE_FEATURES`, 23 with the extended observation,
  :func:`swarmgym.layout.node_features`) plus one global token (the entries of ``obs["globals"]``:
  the 10 of :data:`swarmgym.layout.GLOBAL_FEATURES`, 20 extended, :func:`swarmgym.layout.global_features`),
  each embedded by its own linear map. Padding slots (``present == 0``) are masked out of attention
  as keys and skipped by the experts.
* **Blocks.** ``n_layers`` pre-norm transformer blocks: multi-head self-attention,
  then a feed-forward block that is either

  - :class:`MoEFeedForward`: ``n_experts`` routed experts of which each token uses
    ``top_k`` (sigmoid affinities, top-k selection on affinity + a per-expert bias,
    gates = the selected affinities normalised to sum 1), plus ``n_shared`` always-on
    shared experts; load balancing by the auxiliary-loss-free bias update of
    DeepSeek-V3 (``balance="bias"``), the Switch Transformer auxiliary loss
    (``balance="aux"``), both, or neither; or
  - :class:`DenseFeedForward`: one MLP whose hidden size is chosen so that its
    parameter count equals the MoE block's *active* parameter count (shared +
    ``top_k`` routed experts + router), the fair control.

* **Heads.** One logit per node token for every per-node block of
  :class:`swarmgym.layout.ActionLayout` (``do(i)``, ``spawn(i)``; extended: also ``verify(i)``,
  ``spawn_1(i)``, ``spawn_2(i)``) from one linear head; one logit per single action (``wait``,
  ``answer``) and the value from the global token; concatenated in the layout's block order.
  Invalid actions are masked to a large negative logit before sampling. ``extended`` (the env's
  ``SwarmConfig.extended``) is a constructor argument, not part of :class:`ModelConfig`: the
  architecture is the same, only the input widths and head sizes follow the layout.

Dispatch is vectorised: tokens are gathered per expert with index operations (a
Python loop runs over the handful of experts, never over tokens). On CUDA the
forward pass runs under bf16 autocast; logits and values come out in float32.

Parameter counts (:meth:`OrchestratorNet.parameter_counts`), defaults ``d_model=32,
n_layers=2, n_heads=4, n_experts=8, top_k=2, n_shared=1, expert_hidden=32``: MoE 49,541
total / 24,197 active per token; dense control 24,207 (hidden width 97; +0.04 %). At
``d_model=expert_hidden=64``: MoE 191,237 total / 91,397 active; dense 91,407. The extended
layout adds 3 node columns, 10 global entries and 3 per-node heads: 50,056 total at the defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from swarmgym.layout import NODE_COLUMN, ActionLayout, global_features, node_features

_PRESENT = NODE_COLUMN["present"]
_NEG = -1e9  # logit of a masked-out action (finite: no NaN when a row is all masked)


@dataclass
class ModelConfig:
    """Architecture of :class:`OrchestratorNet`."""

    ffn: str = "moe"
    """Feed-forward block: ``"moe"`` (routed + shared experts) or ``"dense"`` (the control of equal active size)."""
    d_model: int = 32
    """Width of every token, in [8, 1024]; a multiple of ``n_heads``."""
    n_layers: int = 2
    """Transformer blocks, in [1, 16]."""
    n_heads: int = 4
    """Attention heads, in [1, 32]."""
    n_experts: int = 8
    """Routed experts per MoE block, in [1, 256]."""
    top_k: int = 2
    """Routed experts each token uses, in [1, n_experts]."""
    n_shared: int = 1
    """Always-on shared experts per MoE block, in [0, 4]."""
    expert_hidden: int = 32
    """Hidden width of one expert (routed or shared), in [4, 4096]."""
    balance: str = "bias"
    """Load balancing: ``"bias"`` (DeepSeek-V3 auxiliary-loss-free bias update), ``"aux"`` (Switch auxiliary loss), ``"both"`` or ``"none"``."""
    bias_update_rate: float = 1e-3
    """Step ``gamma`` of the bias update ``b_e += gamma * sign(mean load - load_e)``, in [0, 1]."""
    answer_logit_init: float = -6.0
    """Initial bias of the ``answer`` logit, in [-20, 20]. ``answer`` is always valid, so a uniform
    fresh policy would submit early in most chain-shaped episodes (e.g. -3 lets a random policy answer
    before the end of half the SerialReasoning episodes); -6 makes that rare and lets learning decide."""

    def __post_init__(self) -> None:
        if self.ffn not in ("moe", "dense"):
            raise ValueError(f"ffn must be 'moe' or 'dense', got {self.ffn!r}")
        if self.balance not in ("bias", "aux", "both", "none"):
            raise ValueError(f"balance must be one of 'bias', 'aux', 'both', 'none', got {self.balance!r}")
        for name, lo, hi in (
            ("d_model", 8, 1024),
            ("n_layers", 1, 16),
            ("n_heads", 1, 32),
            ("n_experts", 1, 256),
            ("n_shared", 0, 4),
            ("expert_hidden", 4, 4096),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or not 1 <= self.top_k <= self.n_experts:
            raise ValueError(f"top_k must be an integer in [1, n_experts={self.n_experts}], got {self.top_k!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")
        if not 0.0 <= float(self.bias_update_rate) <= 1.0:
            raise ValueError(f"bias_update_rate must be in [0, 1], got {self.bias_update_rate}")
        if not -20.0 <= float(self.answer_logit_init) <= 20.0:
            raise ValueError(f"answer_logit_init must be in [-20, 20], got {self.answer_logit_init}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def preset(cls, name: str, **changes) -> "ModelConfig":
        """A named size (:data:`MODEL_PRESETS`: ``"default"`` or ``"small"``, the sweep model), with ``changes`` on top."""
        if name not in MODEL_PRESETS:
            raise ValueError(f"model preset must be one of {sorted(MODEL_PRESETS)}, got {name!r}")
        return cls(**{**MODEL_PRESETS[name], **changes})

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


#: Named model sizes: field changes from the :class:`ModelConfig` defaults. ``"small"`` is the
#: sweep model (one layer of 4 experts at width 16: about a tenth of the default's parameters).
MODEL_PRESETS: dict[str, dict] = {
    "default": {},
    "small": {"d_model": 16, "n_layers": 1, "n_heads": 2, "n_experts": 4, "expert_hidden": 16},
}


def _mlp_params(d: int, h: int) -> int:
    """Parameters of ``Linear(d, h) -> GELU -> Linear(h, d)`` with biases."""
    return d * h + h + h * d + d


def dense_hidden_for(cfg: ModelConfig) -> int:
    """Hidden width of the dense control whose parameter count is closest to the MoE
    block's active parameter count (shared experts + ``top_k`` routed experts + router)."""
    d = cfg.d_model
    active = (cfg.n_shared + cfg.top_k) * _mlp_params(d, cfg.expert_hidden) + d * cfg.n_experts
    # _mlp_params(d, H) = H (2d + 1) + d
    return max(1, round((active - d) / (2 * d + 1)))


class DenseFeedForward(nn.Module):
    """The control: one MLP of hidden width ``hidden``."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor, valid: torch.Tensor, family: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class MoEFeedForward(nn.Module):
    """Top-k routed experts plus always-on shared experts (DeepSeek-V3 layout).

    Routing of token ``x``: affinities ``s = sigmoid(W_r x)`` (one per routed expert);
    the ``top_k`` experts with the largest ``s + b`` are selected (``b`` is the
    balancing bias, a buffer that gets no gradient); gates are the selected
    affinities normalised to sum to 1. Output: ``sum_shared E(x) + sum_selected g_e E_e(x)``.

    Statistics of the last forward pass (real tokens only): :attr:`last_load`
    (tokens per expert, float ``[n_experts]``), :attr:`last_family_load`
    (``[n_families, n_experts]`` when family ids were given) and
    :attr:`last_aux_loss` (the Switch loss ``E * sum_e f_e P_e``). Loads also
    accumulate in :attr:`load_since_update` for :meth:`update_bias`.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, h, e = cfg.d_model, cfg.expert_hidden, cfg.n_experts
        self.n_experts, self.top_k = e, cfg.top_k
        self.bias_update_rate = float(cfg.bias_update_rate)
        self.router = nn.Linear(d, e, bias=False)
        # routed experts as stacked weights: [E, d, h], [E, h], [E, h, d], [E, d]
        self.w1 = nn.Parameter(torch.empty(e, d, h))
        self.b1 = nn.Parameter(torch.zeros(e, h))
        self.w2 = nn.Parameter(torch.empty(e, h, d))
        self.b2 = nn.Parameter(torch.zeros(e, d))
        bound1, bound2 = 1.0 / math.sqrt(d), 1.0 / math.sqrt(h)
        nn.init.uniform_(self.w1, -bound1, bound1)
        nn.init.uniform_(self.w2, -bound2, bound2)
        nn.init.normal_(self.router.weight, std=0.02)
        self.shared = nn.ModuleList(DenseFeedForward(d, h) for _ in range(cfg.n_shared))
        self.register_buffer("expert_bias", torch.zeros(e))
        self.register_buffer("load_since_update", torch.zeros(e))
        self.last_load: torch.Tensor | None = None
        self.last_family_load: torch.Tensor | None = None
        self.last_aux_loss: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, valid: torch.Tensor, family: torch.Tensor | None = None) -> torch.Tensor:
        """:param x: ``[B, T, d]`` tokens. :param valid: ``[B, T]`` bool, real tokens.
        :param family: optional ``[B]`` int family ids for per-family load statistics."""
        b, t, d = x.shape
        flat_valid = valid.reshape(-1)
        idx = flat_valid.nonzero(as_tuple=True)[0]  # real tokens only
        xs = x.reshape(-1, d).index_select(0, idx)  # [n, d]
        n = xs.shape[0]
        out = torch.zeros_like(xs)
        for expert in self.shared:
            out = out + expert(xs, valid)
        affinity = torch.sigmoid(self.router(xs).float())  # [n, E]
        _, chosen = torch.topk(affinity + self.expert_bias, self.top_k, dim=-1)  # [n, k]
        gate = affinity.gather(1, chosen)
        gate = gate / gate.sum(-1, keepdim=True).clamp_min(1e-9)
        for e in range(self.n_experts):
            tok, slot = (chosen == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue
            h = F.gelu(torch.addmm(self.b1[e], xs.index_select(0, tok), self.w1[e]))
            y = torch.addmm(self.b2[e], h, self.w2[e]) * gate[tok, slot].unsqueeze(-1).to(h.dtype)
            out.index_add_(0, tok, y.to(out.dtype))
        # statistics (no gradient) and the Switch auxiliary loss (with gradient through P)
        one_hot = torch.zeros(n, self.n_experts, device=x.device).scatter_(1, chosen, 1.0)
        load = one_hot.sum(0)
        self.last_load = load.detach()
        self.load_since_update += load.detach()
        if family is not None:
            tok_family = family.reshape(b, 1).expand(b, t).reshape(-1).index_select(0, idx).long()
            n_fam = int(family.max().item()) + 1 if family.numel() else 0
            fam_load = torch.zeros(max(n_fam, 1), self.n_experts, device=x.device)
            fam_load.index_add_(0, tok_family, one_hot)
            self.last_family_load = fam_load.detach()
        else:
            self.last_family_load = None
        if n > 0:
            frac = load / (n * self.top_k)  # f_e: share of assignments
            prob = (affinity / affinity.sum(-1, keepdim=True)).mean(0)  # P_e: mean normalised affinity
            self.last_aux_loss = self.n_experts * (frac.detach() * prob).sum()
        else:
            self.last_aux_loss = xs.sum() * 0.0
        full = torch.zeros(b * t, d, dtype=out.dtype, device=x.device)
        full.index_copy_(0, idx, out)
        return full.reshape(b, t, d).to(x.dtype)

    @torch.no_grad()
    def update_bias(self) -> None:
        """DeepSeek-V3's auxiliary-loss-free balancing: ``b_e += gamma * sign(mean load - load_e)``
        over the loads accumulated since the last call; then the accumulator is cleared."""
        load = self.load_since_update
        if load.sum() > 0:
            self.expert_bias += self.bias_update_rate * torch.sign(load.mean() - load)
        load.zero_()


class Block(nn.Module):
    """Pre-norm transformer block: self-attention over real tokens, then the feed-forward block."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn: nn.Module = MoEFeedForward(cfg) if cfg.ffn == "moe" else DenseFeedForward(d, dense_hidden_for(cfg))

    def forward(self, x: torch.Tensor, valid: torch.Tensor, family: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        attn_mask = valid[:, None, None, :]  # keys: real tokens only (the global token is always real)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.ffn(self.norm2(x), valid, family)


def layout_name(extended: bool) -> str:
    """``"extended"`` or ``"base"``: how messages name a layout."""
    return "extended" if extended else "base"


class OrchestratorNet(nn.Module):
    """Policy and value network of the orchestrator (see the module docstring).

    :param config: a :class:`ModelConfig` (or a dict of its fields).
    :param extended: act on the extended action layout and observation (``SwarmConfig.extended``
        of the env: ``ActionLayout(n_max, extended=True)``, ``node_features(True)``,
        ``global_features(True)``); False (default) is the base layout.
    """

    def __init__(self, config: ModelConfig | dict | None = None, extended: bool = False) -> None:
        super().__init__()
        if not isinstance(extended, (bool, np.bool_)):
            raise TypeError(f"extended must be a bool (the env's SwarmConfig.extended), got {extended!r}")
        if config is None:
            config = ModelConfig()
        elif isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        elif not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, a dict of its fields or None, got {type(config).__name__}")
        self.config = config
        self.extended = bool(extended)
        self.n_node_features = len(node_features(self.extended))
        self.n_global_features = len(global_features(self.extended))
        blocks = ActionLayout(1, self.extended).blocks
        #: names of the per-node blocks (the outputs of ``node_head``) and of the single actions
        #: (the outputs of ``global_head``), each in layout order
        self.node_blocks: tuple[str, ...] = tuple(name for name, per_node in blocks if per_node)
        self.single_actions: tuple[str, ...] = tuple(name for name, per_node in blocks if not per_node)
        # where each block's logits come from, in layout order: (per_node, output index of its head)
        self._block_sources = tuple(
            (per_node, (self.node_blocks if per_node else self.single_actions).index(name)) for name, per_node in blocks
        )
        d = config.d_model
        self.node_embed = nn.Linear(self.n_node_features, d)
        self.global_embed = nn.Linear(self.n_global_features, d)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(d)
        self.node_head = nn.Linear(d, len(self.node_blocks))  # do(i), spawn(i)[, verify(i), spawn_1(i), spawn_2(i)]
        self.global_head = nn.Linear(d, len(self.single_actions))  # wait, answer
        self.value_head = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1))
        for head in (self.node_head, self.global_head):
            nn.init.orthogonal_(head.weight, gain=0.01)
            nn.init.zeros_(head.bias)
        with torch.no_grad():
            self.global_head.bias[self.single_actions.index("answer")] = config.answer_logit_init
        nn.init.orthogonal_(self.value_head[2].weight, gain=1.0)
        nn.init.zeros_(self.value_head[2].bias)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        nodes: torch.Tensor,
        globals_: torch.Tensor,
        mask: torch.Tensor | None = None,
        family: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Action logits and value.

        :param nodes: ``[B, n_max, len(node_features(extended))]`` float node features (20 base, 23 extended).
        :param globals_: ``[B, len(global_features(extended))]`` float global features (10 base, 20 extended).
        :param mask: optional ``[B, ActionLayout(n_max, extended).n]`` bool, True = valid; invalid logits are set to -1e9.
        :param family: optional ``[B]`` int family ids (routing statistics per family).
        :returns: ``(logits [B, ActionLayout(n_max, extended).n] float32, value [B] float32)``.
        """
        which = f"the {layout_name(self.extended)} layout's"
        if nodes.dim() != 3 or nodes.shape[-1] != self.n_node_features:
            raise ValueError(f"nodes must be [B, n_max, {self.n_node_features}] ({which} node features), got {tuple(nodes.shape)}")
        if globals_.shape != (nodes.shape[0], self.n_global_features):
            raise ValueError(f"globals must be [B, {self.n_global_features}] ({which} global features), got {tuple(globals_.shape)}")
        use_bf16 = nodes.is_cuda
        b, n_max, _ = nodes.shape
        # trailing slots that are padding in every row of the batch are cut off (real nodes come
        # first, padding rows are all zero); their logits are the masked value
        present_any = (nodes[..., _PRESENT] > 0.5).any(0)
        n_used = int(present_any.nonzero().max().item()) + 1 if bool(present_any.any()) else 1
        nodes = nodes[:, :n_used]
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
            present = nodes[..., _PRESENT] > 0.5
            valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=nodes.device), present], dim=1)
            x = torch.cat([self.global_embed(globals_).unsqueeze(1), self.node_embed(nodes)], dim=1)
            for block in self.blocks:
                x = block(x, valid, family)
            x = self.norm(x)
            node_logits = self.node_head(x[:, 1:]).float()  # [B, n_max, len(node_blocks)]
            glob = x[:, 0]
            global_logits = self.global_head(glob).float()  # [B, len(single_actions)]
            value = self.value_head(glob).float().squeeze(-1)
        if n_used < n_max:
            node_logits = F.pad(node_logits, (0, 0, 0, n_max - n_used), value=_NEG)
        # the blocks in ActionLayout order (base: do, spawn, wait, answer; extended: then verify, spawn_1, spawn_2)
        parts = [node_logits[..., k] if per_node else global_logits[:, k : k + 1] for per_node, k in self._block_sources]
        logits = torch.cat(parts, dim=1)
        if mask is not None:
            if mask.shape != logits.shape:
                raise ValueError(
                    f"mask must be [B, ActionLayout(n_max{', extended=True' if self.extended else ''}).n] = {tuple(logits.shape)}, got {tuple(mask.shape)}"
                )
            logits = logits.masked_fill(~mask, _NEG)
        return logits, value

    # ------------------------------------------------------------------ MoE helpers
    def moe_layers(self) -> list[MoEFeedForward]:
        return [blk.ffn for blk in self.blocks if isinstance(blk.ffn, MoEFeedForward)]

    def aux_loss(self) -> torch.Tensor:
        """Switch auxiliary loss of the last forward pass, summed over MoE layers (0 for dense)."""
        losses = [m.last_aux_loss for m in self.moe_layers() if m.last_aux_loss is not None]
        if not losses:
            return torch.zeros((), device=self.node_head.weight.device)
        return torch.stack(losses).sum()

    def update_router_bias(self) -> None:
        """Apply the bias update in every MoE layer (call after each optimiser step when ``balance`` uses the bias)."""
        for m in self.moe_layers():
            m.update_bias()

    def routing_stats(self) -> dict[str, torch.Tensor]:
        """Expert load of the last forward pass: ``load`` ``[n_layers, n_experts]`` (fraction of
        assignments per expert), ``bias`` ``[n_layers, n_experts]`` and, when family ids were
        given, ``family_load`` ``[n_layers, n_families, n_experts]`` (token counts)."""
        layers = self.moe_layers()
        if not layers or layers[0].last_load is None:
            return {}
        load = torch.stack([m.last_load for m in layers])
        out = {"load": load / load.sum(-1, keepdim=True).clamp_min(1.0), "bias": torch.stack([m.expert_bias for m in layers])}
        if all(m.last_family_load is not None for m in layers):
            out["family_load"] = torch.stack([m.last_family_load for m in layers])
        return out

    def parameter_counts(self) -> dict[str, int]:
        """``total`` parameters and ``active`` parameters per token (routed experts not selected excluded)."""
        total = sum(p.numel() for p in self.parameters())
        inactive = 0
        for m in self.moe_layers():
            per_expert = m.w1[0].numel() + m.b1[0].numel() + m.w2[0].numel() + m.b2[0].numel()
            inactive += (m.n_experts - m.top_k) * per_expert
        return {"total": total, "active": total - inactive}

    def ffn_parameter_counts(self) -> dict[str, int]:
        """Total and active parameters of the feed-forward blocks alone."""
        total = sum(p.numel() for blk in self.blocks for p in blk.ffn.parameters())
        inactive = 0
        for m in self.moe_layers():
            per_expert = m.w1[0].numel() + m.b1[0].numel() + m.w2[0].numel() + m.b2[0].numel()
            inactive += (m.n_experts - m.top_k) * per_expert
        return {"total": total, "active": total - inactive}
