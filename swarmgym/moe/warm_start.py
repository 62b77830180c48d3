"""Serial warm start: imitate an orchestrator before RL, with a chosen spawn habit.

Kimi K2.5's orchestrator began as a single agent with a serial habit; the analogue
here is a policy that first imitates ``sequential_crew`` (which never spawns) and
then learns by PPO. :func:`warm_start` does three things, in a few seconds on CPU:

1. **Demonstrations.** The orchestrator plays ``num_envs x num_steps`` steps on the
   batched engine (its own engine and seed, so the trainer's episode stream is not
   touched); every visited state, its mask and the orchestrator's action are kept.
2. **Behaviour cloning.** ``epochs`` passes of minibatch cross-entropy between the
   network's masked action distribution and the demonstrated actions (Adam).
3. **Critic fit** (optional, ``value_coef > 0``). The value head is fitted, in the same passes
   and on the same states, to the discounted return that followed each state in the
   demonstration (the trainer's own episode reward, :meth:`PPOTrainer.episode_reward`, at its
   first step); states whose episode had not ended when the demonstration stopped are left out.
   Without it PPO's first updates run on advantages of an untrained critic, which are noise:
   a sharp clone of ``critical_path`` on Mixed-v0 then fell from 0.94 to 0.75-0.88 (sampled
   score) in its first four updates, and regained it only slowly.
4. **Spawn habit.** With ``spawn_prob`` set, one constant ``c`` is added to the bias
   of the spawn logit (``node_head.bias[1]``; in the extended layout also the biases of
   ``spawn_1`` and ``spawn_2``, every tier alike), which shifts every spawn logit
   by exactly ``c`` and nothing else. ``c`` is found by bisection so that the mean
   per-step probability of choosing *any* spawn (of any tier), over the demonstration
   states, equals ``spawn_prob`` (to 1e-3 relative), then it is measured again by a forward pass.

The returned :class:`WarmStartReport` holds what was measured: imitation accuracy,
the spawn probability and the policy entropy before and after the offset, and ``c``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from swarmgym.config import MAX_TIERS
from swarmgym.layout import ActionLayout, spawn_block
from swarmgym.moe.model import OrchestratorNet, layout_name

#: The action blocks that spawn a sub-agent, one per tier (``spawn``, ``spawn_1``, ``spawn_2``).
SPAWN_BLOCKS = frozenset(spawn_block(t) for t in range(MAX_TIERS))
#: Seed offset of the demonstration engine (disjoint from a trainer's engine seeded ``seed``).
DEMO_SEED_OFFSET = 7_919


@dataclass
class WarmStartReport:
    """What a warm start did and measured (per-step figures are means over the demonstration states)."""

    orchestrator: str
    env_id: str
    states: int
    epochs: int
    seconds: float
    accuracy: float
    """Share of demonstration states where the clone's most probable action is the demonstrated one.
    Below 1 for the sequential crew even when learned well: it picks among equivalent ready nodes by
    slot index, which a permutation-equivariant network cannot see."""
    kind_accuracy: float
    """The same for the kind of action (its block: do, spawn, wait, answer; extended: also verify,
    spawn_1, spawn_2), whichever node."""
    spawn_prob_cloned: float
    """Per-step probability of choosing any spawn (of any tier), right after cloning."""
    spawn_prob: float
    """The same after the spawn-logit offset (measured by a forward pass)."""
    entropy_cloned: float
    entropy: float
    """Mean policy entropy (nats) per step, after cloning and after the offset."""
    spawn_logit_offset: float
    target_spawn_prob: float | None
    value_states: int = 0
    """Demonstration states with a known return (their episode ended inside the demonstration); 0 without a critic fit."""
    value_explained_variance: float | None = None
    """``1 - Var(return - value) / Var(return)`` over those states after the fit; None without a critic fit."""
    value_rmse: float | None = None
    """Root mean squared error of the value on those returns after the fit; None without a critic fit."""

    def to_dict(self) -> dict:
        return asdict(self)


def collect_demonstrations(
    orchestrator,
    env_id: str,
    *,
    env_overrides: dict | None = None,
    num_envs: int = 64,
    num_steps: int = 64,
    seed: int = 0,
    engine: str = "auto",
    reward_fn=None,
    gamma: float = 1.0,
) -> dict[str, torch.Tensor]:
    """States, masks and actions of ``orchestrator`` playing ``num_envs x num_steps`` steps of ``env_id``.

    With ``reward_fn(r_perf, metrics, done) -> {"reward": ...}`` (the trainer's episode reward), the
    result also holds ``rewards`` (the reward after each state's action, nonzero only where it ended an
    episode), ``episode_end`` (that action ended the episode), ``returns``, each state's discounted
    (``gamma``) return until its episode's end, and ``has_return``, False for states whose episode had
    not ended when the demonstration stopped."""
    from swarmgym.moe.engines import make_engine
    from swarmgym.moe.ppo import _metrics_rows
    from swarmgym.orchestrators import bind_to_env

    eng = make_engine(env_id, num_envs, seed=seed + DEMO_SEED_OFFSET, engine=engine, overrides=env_overrides)
    orchestrator = bind_to_env(orchestrator, eng)  # a rule told the env's public table is told this one's (with the overrides)
    obs = eng.reset()
    nodes, glob, masks, actions, rewards, dones = [], [], [], [], [], []
    for _ in range(num_steps):
        mask = eng.action_mask.clone()
        a = orchestrator.act({"nodes": obs["nodes"].cpu().numpy(), "globals": obs["globals"].cpu().numpy()}, mask.cpu().numpy())
        act = torch.as_tensor(np.asarray(a, dtype=np.int64))
        nodes.append(obs["nodes"].cpu().clone())
        glob.append(obs["globals"].cpu().clone())
        masks.append(mask.cpu())
        actions.append(act)
        obs, r_perf, terminated, info = eng.step(act.to(eng.device) if hasattr(eng, "device") else act)
        if reward_fn is not None:
            done = info.get("done_mask", terminated).to(torch.bool).cpu().clone()  # the engine reuses its buffer
            reward = torch.zeros(done.shape[0])
            if done.any():
                reward[done] = reward_fn(r_perf.cpu(), _metrics_rows(info.get("metrics", {}), done), done)["reward"].float().cpu()
            rewards.append(reward)
            dones.append(done)
    out = {"nodes": torch.cat(nodes), "globals": torch.cat(glob), "mask": torch.cat(masks), "actions": torch.cat(actions)}
    if reward_fn is not None:
        ret = torch.zeros(num_envs)
        known = torch.zeros(num_envs, dtype=torch.bool)  # an episode end lies ahead of this step (in this env)
        returns, has_return = [], []
        for r, d in zip(reversed(rewards), reversed(dones)):
            ret = r + gamma * ret * (~d)
            known = known | d
            returns.append(ret.clone())
            has_return.append(known.clone())
        out["rewards"] = torch.cat(rewards)
        out["episode_end"] = torch.cat(dones)
        out["returns"] = torch.cat(returns[::-1])
        out["has_return"] = torch.cat(has_return[::-1])
    return out


def _action_kind(actions: torch.Tensor, layout: ActionLayout) -> torch.Tensor:
    """The index of each action's block in ``layout.blocks`` (0 do, 1 spawn, 2 wait, 3 answer; extended:
    4 verify, 5 spawn_1, 6 spawn_2)."""
    kind = torch.zeros_like(actions)
    for k, (name, _) in enumerate(layout.blocks[1:], start=1):
        kind[actions >= layout[name]] = k  # blocks lie in index order
    return kind


def _spawn_columns(layout: ActionLayout) -> torch.Tensor:
    """Indices of every spawn action of ``layout`` (tier 0's block and, extended, the others)."""
    starts = [layout[name] for name, _ in layout.blocks if name in SPAWN_BLOCKS]
    return torch.cat([torch.arange(s, s + layout.n_max) for s in starts])


@torch.no_grad()
def _forward(model: OrchestratorNet, demo: dict[str, torch.Tensor], batch: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, values)`` of ``model`` on every demonstration state, in batches."""
    dev = next(model.parameters()).device
    logits, values = [], []
    for s in range(0, demo["actions"].shape[0], batch):
        lg, v = model(demo["nodes"][s : s + batch].to(dev), demo["globals"][s : s + batch].to(dev), demo["mask"][s : s + batch].to(dev))
        logits.append(lg.cpu())
        values.append(v.cpu())
    return torch.cat(logits), torch.cat(values)


def _logits(model: OrchestratorNet, demo: dict[str, torch.Tensor]) -> torch.Tensor:
    return _forward(model, demo)[0]


def _values(model: OrchestratorNet, demo: dict[str, torch.Tensor]) -> torch.Tensor:
    return _forward(model, demo)[1]


def spawn_probability(logits: torch.Tensor, offset: float = 0.0, layout: ActionLayout | None = None) -> tuple[float, float]:
    """``(mean per-step probability of any spawn, mean entropy)`` of masked ``logits`` with ``offset``
    added to every spawn logit, of every tier (masked spawn logits stay masked).

    :param layout: the action layout of ``logits``; default: the base layout of their width."""
    lay = layout if layout is not None else ActionLayout.for_actions(logits.shape[1])
    if logits.shape[1] != lay.n:
        raise ValueError(f"logits must have {lay.n} columns for {lay}, got {logits.shape[1]}")
    cols = _spawn_columns(lay).to(logits.device)
    shifted = logits.clone()
    spawn = shifted[:, cols]
    valid = spawn > -1e8
    shifted[:, cols] = torch.where(valid, spawn + offset, spawn)
    logp = F.log_softmax(shifted.double(), dim=-1)
    p = logp.exp()
    p_spawn = p[:, cols].sum(-1)
    entropy = -(p * logp).sum(-1)
    return float(p_spawn.mean()), float(entropy.mean())


def solve_spawn_offset(
    logits: torch.Tensor, target: float, lo: float = -60.0, hi: float = 60.0, layout: ActionLayout | None = None
) -> float:
    """The offset ``c`` with ``spawn_probability(logits, c, layout)[0] == target`` (bisection on log c-space;
    the mean spawn probability is increasing in ``c``)."""
    spawn_probability_at = lambda c: spawn_probability(logits, c, layout)  # noqa: E731
    p_lo, p_hi = spawn_probability_at(lo)[0], spawn_probability_at(hi)[0]
    if not p_lo <= target <= p_hi:
        raise ValueError(
            f"warm_start_spawn_prob={target:g} is out of reach on these states: spawn probability ranges over "
            f"[{p_lo:.3g}, {p_hi:.3g}] (spawns are masked in many states); choose a value in that range"
        )
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        p = spawn_probability_at(mid)[0]
        if abs(p - target) <= 1e-3 * target:
            return mid
        lo, hi = (mid, hi) if p < target else (lo, mid)
    return 0.5 * (lo + hi)


def warm_start(
    model: OrchestratorNet,
    orchestrator: str = "sequential_crew",
    env_id: str = "swarmgym/Mixed-v0",
    *,
    env_overrides: dict | None = None,
    spawn_prob: float | None = None,
    num_envs: int = 64,
    num_steps: int = 64,
    epochs: int = 6,
    minibatch: int = 512,
    learning_rate: float = 3e-3,
    seed: int = 0,
    engine: str = "auto",
    reward_fn=None,
    gamma: float = 0.995,
    value_coef: float = 0.0,
) -> WarmStartReport:
    """Behaviour-clone ``orchestrator`` into ``model`` (in place), then set its spawn habit.

    :param model: the network to train (its weights are changed in place).
    :param orchestrator: a spec of :func:`swarmgym.orchestrators.load_orchestrator`
        (``"sequential_crew"`` is the analogue of a single-agent start).
    :param env_id: the id whose states are imitated (the training id).
    :param env_overrides: SwarmEnv kwarg changes, as in :class:`~swarmgym.moe.ppo.PPOConfig`.
    :param spawn_prob: target per-step probability of choosing any spawn, in (0, 1), or
        None to keep the clone's own; reached by one exact offset of the spawn logits.
    :param num_envs: demonstration envs, in [1, 65536]. :param num_steps: steps per env, in [1, 100000].
    :param epochs: cloning passes over the demonstrations, in [0, 1000] (0: offset only).
    :param minibatch: states per gradient step, >= 1. :param learning_rate: Adam step size, in (0, 1).
    :param seed: seeds the demonstration engine (``seed + DEMO_SEED_OFFSET``) and the minibatch order.
    :param reward_fn: the episode reward the critic is fitted to, ``reward_fn(r_perf, metrics, done)``
        returning ``{"reward": [done rows]}`` (:meth:`PPOTrainer.episode_reward`); needed when ``value_coef > 0``.
    :param gamma: discount of the fitted returns, in [0, 1].
    :param value_coef: weight of the critic's squared error beside the cloning loss, >= 0 (0: no critic fit).
    """
    from swarmgym.config import _check_int
    from swarmgym.orchestrators import load_orchestrator

    if not isinstance(model, OrchestratorNet):
        raise TypeError(f"model must be an OrchestratorNet, got {type(model).__name__}")
    _check_int("num_envs", num_envs, 1, 65536)
    _check_int("num_steps", num_steps, 1, 100_000)
    _check_int("epochs", epochs, 0, 1000)
    _check_int("minibatch", minibatch, 1, 10**7)
    if spawn_prob is not None and not (
        isinstance(spawn_prob, (int, float)) and 0.0 < float(spawn_prob) < 1.0 and math.isfinite(spawn_prob)
    ):
        raise ValueError(f"warm_start_spawn_prob must be None or a number in (0, 1), got {spawn_prob!r}")
    if not (isinstance(learning_rate, (int, float)) and 0.0 < learning_rate < 1.0):
        raise ValueError(f"learning_rate must be in (0, 1), got {learning_rate!r}")
    if not (isinstance(value_coef, (int, float)) and 0.0 <= value_coef <= 100.0):
        raise ValueError(f"value_coef must be in [0, 100], got {value_coef!r}")
    if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
    if value_coef > 0 and reward_fn is None:
        raise ValueError("value_coef > 0 needs reward_fn (the episode reward the critic is fitted to)")
    fit_value = value_coef > 0
    policy = load_orchestrator(orchestrator) if isinstance(orchestrator, str) else orchestrator
    name = orchestrator if isinstance(orchestrator, str) else str(getattr(orchestrator, "name", type(orchestrator).__name__))
    start = time.perf_counter()
    demo = collect_demonstrations(
        policy,
        env_id,
        env_overrides=env_overrides,
        num_envs=num_envs,
        num_steps=num_steps,
        seed=seed,
        engine=engine,
        reward_fn=reward_fn if fit_value else None,
        gamma=gamma,
    )
    dev = next(model.parameters()).device
    n = demo["actions"].shape[0]
    layout = ActionLayout(demo["nodes"].shape[1], model.extended)
    if demo["mask"].shape[1] != layout.n:
        demo_extended = not model.extended
        raise ValueError(
            f"the model acts on the {layout_name(model.extended)} layout but {env_id!r} (with these env_overrides) is an env of the "
            f"{layout_name(demo_extended)} layout: build OrchestratorNet(..., extended={demo_extended}) (SwarmConfig.extended of the env)"
        )
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    use_bias = model.config.ffn == "moe" and model.config.balance in ("bias", "both")
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, minibatch):
            mb = order[s : s + minibatch]
            logits, value = model(demo["nodes"][mb].to(dev), demo["globals"][mb].to(dev), demo["mask"][mb].to(dev))
            loss = F.cross_entropy(logits, demo["actions"][mb].to(dev))
            if fit_value:
                known = demo["has_return"][mb].to(dev)
                if known.any():
                    loss = loss + value_coef * 0.5 * ((value[known] - demo["returns"][mb].to(dev)[known]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if use_bias:
                model.update_router_bias()
    for m in model.moe_layers():
        m.load_since_update.zero_()
    model.eval()
    logits, values = _forward(model, demo)
    value_states, value_ev, value_rmse = 0, None, None
    if fit_value:
        known = demo["has_return"]
        value_states = int(known.sum())
        if value_states > 1:
            ret, val = demo["returns"][known].double(), values[known].double()
            var = float(ret.var())
            value_ev = float("nan") if var == 0 else 1.0 - float((ret - val).var()) / var
            value_rmse = float((ret - val).pow(2).mean().sqrt())
    pred = logits.argmax(-1)
    accuracy = float((pred == demo["actions"]).float().mean())
    kind_accuracy = float((_action_kind(pred, layout) == _action_kind(demo["actions"], layout)).float().mean())
    p_cloned, h_cloned = spawn_probability(logits, layout=layout)
    offset = 0.0
    if spawn_prob is not None:
        offset = solve_spawn_offset(logits, float(spawn_prob), layout=layout)
        with torch.no_grad():
            for k, block in enumerate(model.node_blocks):
                if block in SPAWN_BLOCKS:  # every tier's spawn logits
                    model.node_head.bias[k] += offset
    p_after, h_after = spawn_probability(_logits(model, demo), layout=layout)
    for m in model.moe_layers():
        m.load_since_update.zero_()  # the measuring passes are not part of the first balance update
    return WarmStartReport(
        orchestrator=name,
        env_id=env_id,
        states=n,
        epochs=epochs,
        seconds=time.perf_counter() - start,
        accuracy=accuracy,
        kind_accuracy=kind_accuracy,
        spawn_prob_cloned=p_cloned,
        spawn_prob=p_after,
        entropy_cloned=h_cloned,
        entropy=h_after,
        spawn_logit_offset=offset,
        target_spawn_prob=None if spawn_prob is None else float(spawn_prob),
        value_states=value_states,
        value_explained_variance=value_ev,
        value_rmse=value_rmse,
    )


def warm_start_from_config(model: OrchestratorNet, cfg, reward_fn=None) -> WarmStartReport:
    """:func:`warm_start` with the settings of a :class:`~swarmgym.moe.ppo.PPOConfig`
    (``warm_start``, ``warm_start_spawn_prob``, ``warm_start_steps``, ``warm_start_epochs``, ``warm_start_value_coef``,
    ``gamma``,
    the env, seed and engine); ``reward_fn`` is the trainer's episode reward (for the critic fit)."""
    return warm_start(
        model,
        cfg.warm_start,
        cfg.env_id,
        env_overrides=cfg.env_overrides,
        spawn_prob=cfg.warm_start_spawn_prob,
        num_steps=cfg.warm_start_steps,
        epochs=cfg.warm_start_epochs,
        seed=cfg.seed,
        engine=cfg.engine,
        reward_fn=reward_fn,
        gamma=cfg.gamma,
        value_coef=cfg.warm_start_value_coef,
    )
