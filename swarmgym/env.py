"""SwarmEnv: the reference Gymnasium environment over :mod:`swarmgym.simulator`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from swarmgym.config import SwarmConfig
from swarmgym.families import DEFAULT_N_MAX, make_generator
from swarmgym.graph import KINDS, TaskGraph
from swarmgym.simulator import (
    ACTIVE,
    DONE,
    READY,
    RUNNING,
    STATUS_NAMES,
    SwarmSimulator,
    TaskInstance,
    draw_fates,
)

#: Columns of ``obs["nodes"]`` (one row per node slot; padding rows are all zero).
NODE_FEATURES: tuple[str, ...] = (
    "present",
    *(f"status_{s}" for s in STATUS_NAMES),
    *(f"kind_{k}" for k in KINDS),
    "work",
    "work_left",
    "attempts",
    "unfinished_parents",
    "bottom_level",
    "is_target",
    "n_parents",
    "last_attempt_failed",
    "subagent_elapsed",
    "n_children",
)
#: Entries of ``obs["globals"]``.
GLOBAL_FEATURES: tuple[str, ...] = (
    "time_used",
    "time_left",
    "running_subagents",
    "spawns_this_turn",
    "can_spawn",
    "tokens_used",
    "nodes_done",
    "targets_done",
    "n_nodes",
    "max_subagents",
)
WORK_SCALE = 16.0  # work, work_left: divided by this, clipped to 1
COUNT_SCALE = 8.0  # n_parents, n_children: divided by this, clipped to 1
UNFINISHED_SCALE = 4.0  # unfinished_parents: divided by this, clipped to 1
TIME_LEFT_HALF = 16.0  # time_left = left / (left + 16)
TOKENS_HALF = 1e5  # tokens_used = tokens / (tokens + 1e5)
MAX_SUBAGENTS_SCALE = 64.0

_F = {name: i for i, name in enumerate(NODE_FEATURES)}
_STATUS0 = _F["status_blocked"]
_WORK_LEFT, _ATTEMPTS, _UNFINISHED = _F["work_left"], _F["attempts"], _F["unfinished_parents"]
_FAILED, _ELAPSED = _F["last_attempt_failed"], _F["subagent_elapsed"]
_EYE_STATUS = np.eye(len(STATUS_NAMES), dtype=np.float32)
# lookup tables for the integer-valued features: table[k] == float32(min(k * scale, 1))
_WORK_LEFT_TABLE = np.minimum(np.arange(65) * (1.0 / WORK_SCALE), 1.0).astype(np.float32)
_DOABLE = np.array([s in ("ready", "active") for s in STATUS_NAMES])


#: What a masked-out action does (see SwarmEnv's invalid-action rule); the first is the default.
INVALID_ACTION_RULES: tuple[str, ...] = ("waste_tick", "answer", "raise")


def action_layout(n_max: int) -> dict[str, int]:
    """Offsets of the Discrete action space: do(i) = i, spawn(i) = n_max + i, wait, answer."""
    return {"do": 0, "spawn": n_max, "wait": 2 * n_max, "answer": 2 * n_max + 1, "n": 2 * n_max + 2}


class SwarmEnv(gym.Env):
    """An orchestrator decides, subtask by subtask, to do the work itself or spawn sub-agents.

    ## Description

    Each episode draws a task instance: a DAG of subtasks from ``generator`` and the
    fates of every sub-agent attempt (duration, failure, silent wrong result). The
    agent is the orchestrator. Time is counted in ticks (agent steps); the
    episode's critical steps are the ticks elapsed. One env step is one action;
    ``spawn`` calls do not end the orchestrator's turn, the other actions do, and
    every turn costs one tick. Sub-agents run in parallel while the clock runs.
    The dynamics are specified in :mod:`swarmgym.simulator`.

    ## Action Space

    ``Discrete(2 * n_max + 2)``:

    | Num | Action | Valid when |
    |-----|--------|------------|
    | i in [0, n_max) | do(i): the orchestrator works one tick on node i; ends the turn | node i is ready or active |
    | n_max + i | spawn(i): hand node i to a new sub-agent; the turn goes on | node i is ready, has attempts left, a slot is free, the turn's spawn cap is not reached |
    | 2 * n_max | wait: run the clock to the next sub-agent finish; ends the turn | a sub-agent is running |
    | 2 * n_max + 1 | answer: submit now; the episode ends | always |

    Invalid-action rule (``invalid_action``): an action inside the space that the
    mask forbids is handled in one of three ways, and always counted in
    ``info["invalid_actions"]`` (``info["invalid_action"]`` flags the step):

    * ``"waste_tick"`` (default): a no-op that still spends the turn (one tick,
      orchestrator tokens). Every registered id uses it, so recorded numbers stay
      comparable.
    * ``"answer"``: the action submits the current state, as ``answer`` does; the
      episode ends. For libraries without action masks (flat PPO, DQN): a policy
      that learned to use masked-out actions as one-tick waits, run greedily, can
      repeat one until the budget runs out; under this rule it cannot stall, and
      training sees a masked-out action cost the rest of the episode. (A reward
      penalty per invalid action alone would not do: a greedy policy could still
      repeat a penalised no-op until the budget ends.)
    * ``"raise"``: ``ValueError`` naming the action and the valid ones
      (``strict=True`` is the same).

    The rule is a per-env choice of what one invalid action does, with no state of
    its own, so the batched engine can mirror it action for action. An action
    outside the space raises ``ValueError`` under every rule. The valid actions are
    ``env.action_masks()`` (sb3-contrib) and ``info["action_mask"]`` (bool, True =
    valid).

    A mask is never empty. The mask of a terminal observation (the step that
    ends the episode) allows exactly ``answer``; it is ignored, since the episode is
    over (step raises until ``reset``). It exists so that samplers fed by vector
    envs that autoreset on the next step (Gymnasium's sync and async vector envs)
    can draw from every mask they are given.

    ## Observation Space

    ``Dict`` of ``nodes`` (``Box(0, 1, (n_max, 20), float32)``, one row per node,
    padding rows all zero), ``globals`` (``Box(0, 1, (10,), float32)``) and, with
    ``with_adjacency=True``, ``adjacency`` (``Box(0, 1, (n_max, n_max), float32)``,
    ``adjacency[i, j] = 1`` iff node j is a parent of node i). With
    ``observation_mode="flat"`` the observation is one ``Box(0, 1)`` vector: nodes
    (row-major), globals, adjacency if enabled, then the action mask as 0/1.

    Node features (``obs["nodes"][:, index]``):

    | Index | Feature | Meaning | Min | Max |
    |-------|---------|---------|-----|-----|
    | 0 | present | 1 for a real node, 0 for padding | 0 | 1 |
    | 1 | status_blocked | some parent is not done | 0 | 1 |
    | 2 | status_ready | all parents done, no work started | 0 | 1 |
    | 3 | status_active | the orchestrator has started it | 0 | 1 |
    | 4 | status_running | a sub-agent is on it | 0 | 1 |
    | 5 | status_done | finished (its correctness is not observed) | 0 | 1 |
    | 6 | kind_plan | kind one-hot | 0 | 1 |
    | 7 | kind_search | kind one-hot | 0 | 1 |
    | 8 | kind_reason | kind one-hot | 0 | 1 |
    | 9 | kind_merge | kind one-hot | 0 | 1 |
    | 10 | work | work / 16, clipped | 0 | 1 |
    | 11 | work_left | work left / 16, clipped | 0 | 1 |
    | 12 | attempts | sub-agent attempts / max_attempts | 0 | 1 |
    | 13 | unfinished_parents | parents not done / 4, clipped | 0 | 1 |
    | 14 | bottom_level | longest path from the node to a target (work, itself included) / critical path | 0 | 1 |
    | 15 | is_target | scored in the answer | 0 | 1 |
    | 16 | n_parents | parents / 8, clipped (upstream context a hand-off needs) | 0 | 1 |
    | 17 | last_attempt_failed | the last sub-agent on it reported failure | 0 | 1 |
    | 18 | subagent_elapsed | ticks its sub-agent has run / work, clipped | 0 | 1 |
    | 19 | n_children | children / 8, clipped | 0 | 1 |

    Global features (``obs["globals"][index]``):

    | Index | Feature | Meaning | Min | Max |
    |-------|---------|---------|-----|-----|
    | 0 | time_used | ticks elapsed / budget | 0 | 1 |
    | 1 | time_left | ticks left / (ticks left + 16) | 0 | 1 |
    | 2 | running_subagents | running sub-agents / max_subagents | 0 | 1 |
    | 3 | spawns_this_turn | spawns this turn / max_spawns_per_turn | 0 | 1 |
    | 4 | can_spawn | a slot is free and the turn's cap not reached | 0 | 1 |
    | 5 | tokens_used | tokens / (tokens + 100000) | 0 | 1 |
    | 6 | nodes_done | done nodes / nodes | 0 | 1 |
    | 7 | targets_done | done targets / targets | 0 | 1 |
    | 8 | n_nodes | nodes / n_max | 0 | 1 |
    | 9 | max_subagents | max_subagents / 64 | 0 | 1 |

    ## Rewards

    The task score at the end of the episode (``r_perf``, F1 over the targets: a
    right output is a true positive, a wrong one a false positive, a missing one
    a false negative), 0 on every other step. The PARL terms are added by
    :class:`swarmgym.parl.ParlReward`.

    ## Starting State

    ``reset`` draws a graph from the generator and the fates of every sub-agent
    attempt from ``self.np_random``; nodes without parents are ready, the clock
    is at 0, no sub-agent runs.

    ## Episode End

    * Termination: the agent chooses ``answer`` (or, with ``invalid_action="answer"``,
      a masked-out action).
    * Termination: the clock reaches the critical-step budget
      (``ceil(budget_factor * lower_bound)``); the current state is submitted.
    * Truncation: none by the env itself; every episode ends by the budget within
      ``budget * (max_spawns_per_turn + 1)`` steps. Pass ``max_episode_steps`` to
      ``gymnasium.make`` for a TimeLimit.

    At the end ``info["metrics"]`` holds the episode metrics (see the README).

    ## Arguments

    | Parameter | Type | Default | Meaning |
    |-----------|------|---------|---------|
    | generator | str or callable | "WideSearch" | family name, "module:attr" path, or callable rng -> TaskGraph |
    | generator_kwargs | dict or None | None | parameters of the family (see :mod:`swarmgym.families`) |
    | config | SwarmConfig, dict or None | None | dynamics: max_subagents, spawn caps, reliability, tokens |
    | n_max | int or None | None | padding size; default the generator's n_max, else 32 |
    | observation_mode | str | "dict" | "dict" or "flat" |
    | with_adjacency | bool | False | add the parent adjacency matrix to the observation |
    | strict | bool | False | same as ``invalid_action="raise"`` |
    | render_mode | str or None | None | None or "ansi" |
    | invalid_action | str | "waste_tick" | what a masked-out action does: "waste_tick", "answer" or "raise" |

    ## Version History

    * v0: initial release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        generator: Any = "WideSearch",
        generator_kwargs: dict | None = None,
        config: SwarmConfig | dict | None = None,
        n_max: int | None = None,
        observation_mode: str = "dict",
        with_adjacency: bool = False,
        strict: bool = False,
        render_mode: str | None = None,
        invalid_action: str = "waste_tick",
    ) -> None:
        if not isinstance(observation_mode, str) or observation_mode not in ("dict", "flat"):
            raise ValueError(f"observation_mode must be 'dict' or 'flat', got {observation_mode!r}")
        if render_mode is not None and (not isinstance(render_mode, str) or render_mode not in self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        for name, flag in (("with_adjacency", with_adjacency), ("strict", strict)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        if not isinstance(invalid_action, str) or invalid_action not in INVALID_ACTION_RULES:
            raise ValueError(f"invalid_action must be one of {INVALID_ACTION_RULES}, got {invalid_action!r}")
        if strict and invalid_action not in ("waste_tick", "raise"):
            raise ValueError(
                f"strict=True means invalid_action='raise'; it contradicts invalid_action={invalid_action!r} (pass one of them)"
            )
        if strict:
            invalid_action = "raise"
        if n_max is not None:
            if isinstance(n_max, (bool, np.bool_)) or not isinstance(n_max, (int, np.integer)):
                raise TypeError(f"n_max must be an integer in [2, 1024] or None, got {n_max!r}")
            if not 2 <= n_max <= 1024:
                raise ValueError(f"n_max must be an integer in [2, 1024] or None, got {n_max!r}")
        if config is None:
            config = SwarmConfig()
        elif isinstance(config, dict):
            config = SwarmConfig.from_dict(config)
        elif not isinstance(config, SwarmConfig):
            raise TypeError(f"config must be a SwarmConfig, a dict of its fields or None, got {type(config).__name__}")
        gen = make_generator(generator, generator_kwargs, n_max)
        gen_n_max = getattr(gen, "n_max", None)
        if n_max is None:
            n_max = gen_n_max if gen_n_max is not None else DEFAULT_N_MAX
        elif gen_n_max is not None and gen_n_max > n_max:
            raise ValueError(f"n_max={n_max} is smaller than the generator's n_max={gen_n_max}")
        # draw one instance with a private rng: a broken generator fails here, not mid-training
        probe = gen(np.random.default_rng(0))
        if not isinstance(probe, TaskGraph):
            raise TypeError(f"generator must return a TaskGraph, got {type(probe).__name__}")
        if probe.n_nodes > n_max:
            raise ValueError(f"generator returned {probe.n_nodes} nodes; n_max is {n_max}")

        self.generator = gen
        self.config = config
        self.n_max = int(n_max)
        self.observation_mode = observation_mode
        self.with_adjacency = bool(with_adjacency)
        self.invalid_action = invalid_action
        self.strict = invalid_action == "raise"
        self.render_mode = render_mode
        self.layout = action_layout(self.n_max)
        self.action_space = spaces.Discrete(self.layout["n"])
        node_space = spaces.Box(0.0, 1.0, (self.n_max, len(NODE_FEATURES)), np.float32)
        global_space = spaces.Box(0.0, 1.0, (len(GLOBAL_FEATURES),), np.float32)
        parts: dict[str, spaces.Space] = {"nodes": node_space, "globals": global_space}
        if self.with_adjacency:
            parts["adjacency"] = spaces.Box(0.0, 1.0, (self.n_max, self.n_max), np.float32)
        self.dict_observation_space = spaces.Dict(parts)
        if observation_mode == "dict":
            self.observation_space = self.dict_observation_space
        else:
            size = sum(int(np.prod(s.shape)) for s in parts.values()) + self.layout["n"]
            self.observation_space = spaces.Box(0.0, 1.0, (size,), np.float32)
        self.sim: SwarmSimulator | None = None
        self._last_invalid = False

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Draw a new instance. ``options={"instance": TaskInstance}`` replays a given one
        (``options={"graph": TaskGraph}`` draws only the fates)."""
        super().reset(seed=seed)
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"reset options must be a dict or None, got {type(options).__name__}")
        options = options or {}
        unknown = set(options) - {"instance", "graph"}
        if unknown:
            raise ValueError(f"reset options must be among 'instance', 'graph'; got {sorted(unknown)}")
        if "instance" in options:
            instance = options["instance"]
            if not isinstance(instance, TaskInstance):
                raise TypeError(f"options['instance'] must be a TaskInstance, got {type(instance).__name__}")
        else:
            graph = options.get("graph")
            if graph is None:
                graph = self.generator(self.np_random)
            if not isinstance(graph, TaskGraph):
                raise TypeError(f"the graph must be a TaskGraph, got {type(graph).__name__}")
            instance = TaskInstance(graph, draw_fates(graph, self.config, self.np_random))
        if instance.graph.n_nodes > self.n_max:
            raise ValueError(f"the instance has {instance.graph.n_nodes} nodes; n_max is {self.n_max}")
        self.instance = instance
        self.sim = SwarmSimulator(instance, self.config)
        self._encode_static()
        self._last_invalid = False
        info = self._info()
        return self._observation(info["action_mask"]), info

    def step(self, action):
        sim = self.sim
        if sim is None:
            raise RuntimeError("call reset() before step()")
        if sim.done:
            raise RuntimeError("the episode is over; call reset()")
        a = self._parse_action(action)
        lay = self.layout
        invalid = False
        # 1. apply the action (an invalid one wastes the turn)
        if a < lay["spawn"]:
            if sim.can_do(a):
                sim.do(a)
            else:
                invalid = True
        elif a < lay["wait"]:
            if sim.can_spawn(a - lay["spawn"]):
                sim.spawn(a - lay["spawn"])
            else:
                invalid = True
        elif a == lay["wait"]:
            if sim.can_wait():
                sim.wait()
            else:
                invalid = True
        else:
            sim.answer()
        if invalid:
            if self.invalid_action == "raise":
                raise ValueError(
                    f"action {a} ({self.describe_action(a)}) is not valid now; valid: {np.flatnonzero(self.action_masks()).tolist()}"
                )
            if self.invalid_action == "answer":
                sim.invalid_actions += 1
                sim.answer()
            else:
                sim.waste_tick()
        self._last_invalid = invalid
        # 2. reward: the score, once, when the episode ends
        terminated = sim.done
        reward = sim.score() if terminated else 0.0
        info = self._info()
        if terminated:
            info["metrics"] = sim.metrics()
        return self._observation(info["action_mask"]), reward, terminated, False, info

    def action_masks(self) -> np.ndarray:
        """Valid actions now, ``bool[2 * n_max + 2]`` (sb3-contrib's MaskablePPO calls this).

        Once the episode is over the mask allows exactly ``answer`` (ignored: step
        raises until ``reset``); before the first ``reset`` it allows nothing."""
        sim = self.sim
        mask = np.zeros(self.layout["n"], dtype=bool)
        if sim is None:
            return mask
        if sim.done:
            mask[self.layout["answer"]] = True
            return mask
        n = sim.graph.n_nodes
        doable = _DOABLE[sim.status]
        mask[:n] = doable
        cfg = self.config
        if len(sim.running) < cfg.max_subagents and sim.spawns_this_turn < cfg.max_spawns_per_turn:
            off = self.n_max
            mask[off : off + n] = (sim.status == READY) & (sim.attempts < cfg.max_attempts)
        mask[2 * self.n_max] = bool(sim.running)
        mask[2 * self.n_max + 1] = True
        return mask

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() was called without render_mode; make the env with render_mode='ansi'")
            return None
        return self.render_text()

    # ------------------------------------------------------------------ helpers
    def describe_action(self, a: int) -> str:
        """Human-readable name of action index ``a``."""
        lay = self.layout
        if a < lay["spawn"]:
            return f"do({a})"
        if a < lay["wait"]:
            return f"spawn({a - lay['spawn']})"
        return "wait" if a == lay["wait"] else "answer"

    def render_text(self) -> str:
        """A text view of the graph: every node, its state, and who works on it."""
        sim = self.sim
        if sim is None:
            return "SwarmEnv (not reset)"
        g = sim.graph
        tok = sim.tokens
        price = self.config.tokens.price(sim.input_tokens, sim.output_tokens)
        lines = [
            f"{g.family}  t={sim.t}/{sim.budget}  sub-agents {sim.n_running}/{self.config.max_subagents}"
            f"  spawns this turn {sim.spawns_this_turn}/{self.config.max_spawns_per_turn}"
            f"  tokens {tok:,} (${price:.4f}){'  [episode over]' if sim.done else ''}",
            f"{'id':>3} {'kind':<7}{'status':<9}{'work':>6}  {'parents':<14}who",
        ]
        for i in range(g.n_nodes):
            status = STATUS_NAMES[sim.status[i]]
            if sim.status[i] == RUNNING:
                who = f"sub-agent (attempt {sim.attempts[i]}, returns at t={sim.finish_time[i]})"
            elif sim.status[i] == ACTIVE:
                who = "orchestrator"
            elif sim.status[i] == DONE:
                who = "sub-agent" if sim.done_by_subagent[i] else "orchestrator"
            elif sim.status[i] == READY and sim.last_failed[i]:
                who = f"(sub-agent failed; attempts {sim.attempts[i]}/{self.config.max_attempts})"
            else:
                who = ""
            target = "*" if g.targets[i] else " "
            parents = ",".join(map(str, g.parents[i])) or "-"
            if len(parents) > 13:
                parents = parents[:12] + "~"
            done_work = f"{g.work[i] - sim.work_left[i]}/{g.work[i]}"
            lines.append(f"{i:>3}{target}{KINDS[g.kind[i]]:<7}{status:<9}{done_work:>6}  {parents:<14}{who}")
        lines.append("(* = target)")
        return "\n".join(lines)

    def _parse_action(self, action) -> int:
        """The action as an int; a float, bool or string is rejected, never rounded."""
        value = action
        if isinstance(value, np.ndarray) and value.size == 1 and value.ndim <= 1:
            value = value.reshape(())[()]  # a 0-d or one-element integer array, as some vector wrappers pass
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"action must be an integer in [0, {self.layout['n'] - 1}], got {action!r} ({type(action).__name__})")
        a = int(value)
        if not 0 <= a < self.layout["n"]:
            raise ValueError(f"action must be an integer in [0, {self.layout['n'] - 1}], got {a}")
        return a

    def _encode_static(self) -> None:
        """The per-episode constant part of the observation."""
        g = self.sim.graph
        n = g.n_nodes
        base = np.zeros((self.n_max, len(NODE_FEATURES)), dtype=np.float32)
        base[:n, _F["present"]] = 1.0
        base[np.arange(n), _F["kind_plan"] + g.kind] = 1.0
        base[:n, _F["work"]] = np.minimum(g.work / WORK_SCALE, 1.0)
        base[:n, _F["bottom_level"]] = g.bottom_level / g.critical_path
        base[:n, _F["is_target"]] = g.targets
        n_parents = np.array([len(p) for p in g.parents])
        base[:n, _F["n_parents"]] = np.minimum(n_parents / COUNT_SCALE, 1.0)
        base[:n, _F["n_children"]] = np.minimum(np.array([len(c) for c in g.children]) / COUNT_SCALE, 1.0)
        self._static_nodes = base
        self._inv_work = 1.0 / g.work
        self._attempts_table = (np.arange(self.config.max_attempts + 1) * (1.0 / self.config.max_attempts)).astype(np.float32)
        self._unfinished_table = np.minimum(np.arange(n + 1) * (1.0 / UNFINISHED_SCALE), 1.0).astype(np.float32)
        self._n_targets = int(g.targets.sum())
        if self.with_adjacency:
            adj = np.zeros((self.n_max, self.n_max), dtype=np.float32)
            for i, ps in enumerate(g.parents):
                adj[i, list(ps)] = 1.0
            self._adjacency = adj

    def _observation(self, mask: np.ndarray | None = None):
        sim = self.sim
        n = sim.graph.n_nodes
        nodes = self._static_nodes.copy()
        view = nodes[:n]
        view[:, _STATUS0 : _STATUS0 + 5] = _EYE_STATUS[sim.status]
        view[:, _WORK_LEFT] = _WORK_LEFT_TABLE[sim.work_left]
        view[:, _ATTEMPTS] = self._attempts_table[sim.attempts]
        view[:, _UNFINISHED] = self._unfinished_table[sim.unfinished_parents]
        view[:, _FAILED] = sim.last_failed
        t, running = sim.t, sim.running
        for j in running:
            view[j, _ELAPSED] = min(1.0, (t - sim.start_time[j]) * self._inv_work[j])
        cfg = self.config
        left = sim.budget - t
        n_run = len(running)
        can_spawn = n_run < cfg.max_subagents and sim.spawns_this_turn < cfg.max_spawns_per_turn and not sim.done
        tokens = sim.input_tokens + sim.output_tokens
        glob = np.array(
            [
                t / sim.budget,
                left / (left + TIME_LEFT_HALF),
                n_run / cfg.max_subagents if cfg.max_subagents else 0.0,
                sim.spawns_this_turn / cfg.max_spawns_per_turn,
                float(can_spawn),
                tokens / (tokens + TOKENS_HALF),
                sim.n_done / n,
                sim.n_targets_done / self._n_targets,
                n / self.n_max,
                cfg.max_subagents / MAX_SUBAGENTS_SCALE,
            ],
            dtype=np.float32,
        )
        if self.observation_mode == "dict":
            if self.with_adjacency:
                return {"nodes": nodes, "globals": glob, "adjacency": self._adjacency.copy()}
            return {"nodes": nodes, "globals": glob}
        parts = [nodes.ravel(), glob]
        if self.with_adjacency:
            parts.append(self._adjacency.ravel())
        parts.append(self.action_masks() if mask is None else mask)
        return np.concatenate(parts, dtype=np.float32)

    def _info(self) -> dict:
        sim = self.sim
        return {
            "action_mask": self.action_masks(),
            "invalid_action": self._last_invalid,
            "invalid_actions": sim.invalid_actions,
            "critical_steps": sim.t,
            "budget": sim.budget,
            "tokens": sim.tokens,
        }

    def __repr__(self) -> str:
        return (
            f"SwarmEnv(generator={self.generator!r}, n_max={self.n_max}, config={self.config!r}, "
            f"observation_mode={self.observation_mode!r}, with_adjacency={self.with_adjacency}, invalid_action={self.invalid_action!r})"
        )
