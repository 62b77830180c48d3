"""SwarmEnv: the reference Gymnasium environment over :mod:`swarmgym.simulator`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from swarmgym.config import MAX_TIERS, SwarmConfig
from swarmgym.families import DEFAULT_N_MAX, make_generator
from swarmgym.graph import KINDS, MAX_WORK, TaskGraph
from swarmgym.layout import (  # noqa: F401  (NODE_FEATURES ... MAX_SUBAGENTS_SCALE: re-exported, defined in swarmgym.layout)
    ACTIVE,
    COUNT_SCALE,
    DONE,
    GLOBAL_FEATURES,
    KIND_COLUMN0,
    MAX_SUBAGENTS_SCALE,
    NODE_COLUMN,
    NODE_FEATURES,
    READY,
    RESULTS_HALF,
    RUNNING,
    STATUS_COLUMN0,
    STATUS_NAMES,
    TIME_LEFT_HALF,
    TOKENS_HALF,
    UNFINISHED_SCALE,
    WORK_SCALE,
    ActionLayout,
    FlatLayout,
    global_features,
    node_features,
)
from swarmgym.simulator import SwarmSimulator, TaskInstance, draw_fates

#: v0.1's name of :class:`swarmgym.layout.ActionLayout` (``action_layout(n_max)["spawn"]`` still works).
action_layout = ActionLayout

_WORK_LEFT, _ATTEMPTS, _UNFINISHED = NODE_COLUMN["work_left"], NODE_COLUMN["attempts"], NODE_COLUMN["unfinished_parents"]
_FAILED, _ELAPSED = NODE_COLUMN["last_attempt_failed"], NODE_COLUMN["subagent_elapsed"]
_WORK, _BOTTOM, _TARGET = NODE_COLUMN["work"], NODE_COLUMN["bottom_level"], NODE_COLUMN["is_target"]
_N_PARENTS, _N_CHILDREN = NODE_COLUMN["n_parents"], NODE_COLUMN["n_children"]
_BY_SUBAGENT, _VERIFIED, _ATTEMPT_TIER = NODE_COLUMN["by_subagent"], NODE_COLUMN["verified"], NODE_COLUMN["attempt_tier"]
_EYE_STATUS = np.eye(len(STATUS_NAMES), dtype=np.float32)
# the row of a node of each kind before its other features: present = 1 and the kind one-hot
_PRESENT_KIND_ROWS = np.zeros((len(KINDS), len(NODE_FEATURES)), dtype=np.float32)
_PRESENT_KIND_ROWS[:, NODE_COLUMN["present"]] = 1.0
_PRESENT_KIND_ROWS[np.arange(len(KINDS)), KIND_COLUMN0 + np.arange(len(KINDS))] = 1.0
# lookup tables for the integer-valued features: table[k] == float32(min(k / scale, 1))
_WORK_LEFT_TABLE = np.minimum(np.arange(MAX_WORK + 1) * (1.0 / WORK_SCALE), 1.0).astype(np.float32)
_COUNT_TABLE = np.minimum(np.arange(1025) * (1.0 / COUNT_SCALE), 1.0).astype(np.float32)  # n_max <= 1024
_DOABLE = np.array([s in ("ready", "active") for s in STATUS_NAMES])
_IS_READY = np.array([s == "ready" for s in STATUS_NAMES])
# one node's row, written a value at a time: the status one-hot block and a row of it per status
# (separate arrays, not views of one), the work table as Python floats (the same float32 values)
_STATUS_COLUMNS = slice(STATUS_COLUMN0, STATUS_COLUMN0 + len(STATUS_NAMES))
_STATUS_ROWS = tuple(row.copy() for row in _EYE_STATUS)
_WORK_LEFT_LIST, _COUNT_LIST = _WORK_LEFT_TABLE.tolist(), _COUNT_TABLE.tolist()
# a step that changed more rows than this re-encodes every row at once (see SwarmEnv._encode_changes)
_ROWS_PER_STEP = 8


#: What a masked-out action does (see SwarmEnv's invalid-action rule); the first is the default.
INVALID_ACTION_RULES: tuple[str, ...] = ("waste_tick", "answer", "raise")


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

    ``Discrete(2 n_max + 2)``, in the blocks of :class:`swarmgym.layout.ActionLayout`
    (``env.layout``: ``.do``, ``.spawn``, ``.wait``, ``.answer``, ``.encode``, ``.describe``):

    | Num | Action | Valid when |
    |-----|--------|------------|
    | i in [0, n_max) | do(i): the orchestrator works one tick on node i; ends the turn | node i is ready or active |
    | n_max + i | spawn(i): hand node i to a new sub-agent; the turn goes on | node i is ready, has attempts left, a slot is free, the turn's spawn cap is not reached |
    | 2 n_max | wait: run the clock to the next sub-agent finish; ends the turn | a sub-agent is running |
    | 2 n_max + 1 | answer: submit now; the episode ends | always |

    With any of the mechanics of ``docs/mechanics.md`` on (``config.extended``), the
    extended layout ``Discrete(ActionLayout(n_max, extended=True).n) = Discrete(5 n_max + 2)``
    appends, after ``answer``:

    | Num | Action | Valid when |
    |-----|--------|------------|
    | 2 n_max + 2 + i | verify(i): the orchestrator re-checks node i's sub-agent result; ends the turn | verification is on, node i is done by a sub-agent and not yet verified |
    | 3 n_max + 2 + i | spawn_1(i): spawn(i) with a sub-agent of tier 1 | as spawn, and the config has a tier 1 |
    | 4 n_max + 2 + i | spawn_2(i): spawn(i) with a sub-agent of tier 2 | as spawn, and the config has a tier 2 |

    ``spawn`` spawns tier 0.

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
    (row-major), globals, adjacency if enabled, then the action mask as 0/1
    (``env.flat_layout``, a :class:`swarmgym.layout.FlatLayout`, splits it back).

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

    Extended observation (``config.extended``): ``nodes`` has 23 columns, ``globals`` 20
    entries (:func:`swarmgym.layout.node_features` / ``global_features`` with
    ``extended=True``); the base ones keep their index and meaning, these follow:

    | Index | Mechanics feature | Meaning | Min | Max |
    |-------|-------------------|---------|-----|-----|
    | nodes 20 | by_subagent | done, by a sub-agent's result | 0 | 1 |
    | nodes 21 | verified | that result passed verify | 0 | 1 |
    | nodes 22 | attempt_tier | (tier of the latest sub-agent attempt + 1) / 3; 0 before any | 0 | 1 |
    | globals 10 | results_read | r / (r + 8), r = sub-agent results returned so far | 0 | 1 |
    | globals 11 + 3 t | tier{t}_returns | tier t's results returned, q / (q + 8) | 0 | 1 |
    | globals 12 + 3 t | tier{t}_fail_rate | tier t's failures / its results (0 before any) | 0 | 1 |
    | globals 13 + 3 t | tier{t}_caught_rate | wrong tier-t results caught / tier-t results verified (0 before any) | 0 | 1 |

    With ``config.progressive`` a node is hidden until all its parents are done: its row
    (``present`` included) and its adjacency row and column are zero; a revealed node's
    ``bottom_level`` and ``n_children`` are 0 (they would tell what is still hidden);
    ``n_nodes`` and ``nodes_done`` count revealed nodes only.

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
    | config | SwarmConfig, dict or None | None | dynamics: max_subagents, spawn caps, reliability, tokens, the mechanics of docs/mechanics.md |
    | n_max | int or None | None | padding size; default the generator's n_max, else 32 |
    | observation_mode | str | "dict" | "dict" or "flat" |
    | with_adjacency | bool | False | add the parent adjacency matrix to the observation |
    | strict | bool | False | same as ``invalid_action="raise"`` |
    | render_mode | str or None | None | None, "ansi" (text) or "rgb_array" (a Gantt chart, see :mod:`swarmgym.viewer`) |
    | invalid_action | str | "waste_tick" | what a masked-out action does: "waste_tick", "answer" or "raise" |

    ## Version History

    * v0: initial release. The mechanics of ``docs/mechanics.md`` (off by default, so every
      registered id is unchanged) were added later, with the extended layout.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

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
        self.extended = config.extended
        self._progressive = config.progressive
        self.layout = ActionLayout(self.n_max, self.extended)
        self.flat_layout = FlatLayout(self.n_max, self.with_adjacency, self.extended)
        self._flat_slices = self.flat_layout.slices
        self._spawn0, self._wait, self._answer = self.layout.spawn, self.layout.wait, self.layout.answer
        self._n_actions = self.layout.n
        self.action_space = spaces.Discrete(self.layout.n)
        node_space = spaces.Box(0.0, 1.0, (self.n_max, len(node_features(self.extended))), np.float32)
        global_space = spaces.Box(0.0, 1.0, (len(global_features(self.extended)),), np.float32)
        parts: dict[str, spaces.Space] = {"nodes": node_space, "globals": global_space}
        if self.with_adjacency:
            parts["adjacency"] = spaces.Box(0.0, 1.0, (self.n_max, self.n_max), np.float32)
        self.dict_observation_space = spaces.Dict(parts)
        if observation_mode == "dict":
            self.observation_space = self.dict_observation_space
        else:
            self.observation_space = spaces.Box(0.0, 1.0, (self.flat_layout.size,), np.float32)
        self.sim: SwarmSimulator | None = None
        self._last_invalid = False
        # lookup tables of the integer-valued features that depend on the config or n_max
        self._attempts_table = (np.arange(config.max_attempts + 1) * (1.0 / config.max_attempts)).astype(np.float32)
        self._unfinished_table = np.minimum(np.arange(self.n_max + 1) * (1.0 / UNFINISHED_SCALE), 1.0).astype(np.float32)
        self._attempts_list, self._unfinished_list = self._attempts_table.tolist(), self._unfinished_table.tolist()
        self._attempts_left = np.arange(config.max_attempts + 1) < config.max_attempts  # by attempts made
        self._tracer = self._viewer = None  # the episode's trace and its Gantt chart, with render_mode="rgb_array" only

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
        if self.render_mode == "rgb_array":
            from swarmgym.trace import EpisodeTracer

            self._tracer = EpisodeTracer(self, {"env_id": self.spec.id if self.spec is not None else None, "seed": seed})
        info = self._info()
        return self._observation(info["action_mask"]), info

    def step(self, action):
        sim = self.sim
        if sim is None:
            raise RuntimeError("call reset() before step()")
        if sim.done:
            raise RuntimeError("the episode is over; call reset()")
        # the common case (a valid Python int) is checked here, the rest by _parse_action
        a = action if type(action) is int and 0 <= action < self._n_actions else self._parse_action(action)
        invalid = False
        running_before = sim.running.copy()
        caught_before = sim.n_caught
        node = None  # the node the action works on, when valid
        # 1. apply the action (an invalid one wastes the turn)
        if a < self._spawn0:
            if sim.can_do(a):
                sim.do(a)
                node = a
            else:
                invalid = True
        elif a < self._wait:
            if sim.can_spawn(a - self._spawn0):
                node = a - self._spawn0
                sim.spawn(node)
            else:
                invalid = True
        elif a == self._wait:
            if sim.can_wait():
                sim.wait()
            else:
                invalid = True
        elif a == self._answer:
            sim.answer()
        else:  # the extended blocks: verify(i), spawn_t(i)
            block, i = divmod(a - self._answer - 1, self.n_max)
            if block == 0:
                if sim.can_verify(i):
                    node = i
                    sim.verify(i)
                else:
                    invalid = True
            elif sim.can_spawn(i, block):
                node = i
                sim.spawn(i, block)
            else:
                invalid = True
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
        if sim.n_caught != caught_before:  # a caught wrong result invalidated a whole subgraph
            self._encode_all_nodes()
        else:
            self._encode_changes(node, running_before)
        # 2. reward: the score (sim.score(), counted once with the metrics), once, when the episode ends
        terminated = sim.done
        info = self._info()
        reward = 0.0
        if terminated:
            info["metrics"] = sim.metrics()
            reward = info["metrics"]["score"]
        if self._tracer is not None:
            self._tracer.observe(a)
        return self._observation(info["action_mask"]), reward, terminated, False, info

    def action_masks(self) -> np.ndarray:
        """Valid actions now, ``bool[layout.n]`` (sb3-contrib's MaskablePPO calls this).

        Once the episode is over the mask allows exactly ``answer`` (ignored: step
        raises until ``reset``); before the first ``reset`` it allows nothing."""
        sim = self.sim
        if sim is None or sim.done:
            mask = np.zeros(self._n_actions, dtype=bool)
            if sim is not None:  # the episode is over: exactly answer, ignored
                mask[self._answer] = True
            return mask
        cfg = self.config
        mask = self._mask_bits.copy()  # the do and spawn blocks, and answer
        slot_free = len(sim.running) < cfg.max_subagents and sim.spawns_this_turn < cfg.max_spawns_per_turn
        if not slot_free:
            mask[self._spawn0 : self._wait] = False
        mask[self._wait] = bool(sim.running)
        if self.extended:
            layout, n = self.layout, sim.graph.n_nodes
            if cfg.verification is not None:
                verify = layout.verify
                mask[verify : verify + n] = (sim.status == DONE) & sim.done_by_subagent & ~sim.verified
            if slot_free:
                for tier in range(1, cfg.n_tiers):
                    start = layout.spawn_tier(tier)
                    mask[start : start + self.n_max] = self._spawnable
        return mask

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() was called without render_mode; make the env with render_mode='ansi' or 'rgb_array'")
            return None
        if self.render_mode == "rgb_array":
            from swarmgym.viewer import GanttViewer

            if self._viewer is None:
                self._viewer = GanttViewer(self.config.max_subagents)
            return self._viewer.frame(self._tracer.to_dict() if self._tracer is not None else None)
        return self.render_text()

    # ------------------------------------------------------------------ helpers
    def describe_action(self, a: int) -> str:
        """Human-readable name of action index ``a``: ``"do(3)"``, ``"spawn(0)"``, ``"wait"``, ``"answer"``
        (extended layout: ``"verify(2)"``, ``"spawn_1(4)"``)."""
        return self.layout.describe(a)

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
            if self._progressive and not sim.revealed[i]:
                who = "(hidden)"
            elif sim.status[i] == RUNNING:
                who = f"sub-agent (attempt {sim.attempts[i]}, returns at t={sim.finish_time[i]})"
            elif sim.status[i] == ACTIVE:
                who = "orchestrator"
            elif sim.status[i] == DONE:
                who = "sub-agent" if sim.done_by_subagent[i] else "orchestrator"
                if sim.verified[i]:
                    who += " (verified)"
            elif sim.status[i] == READY and sim.last_failed[i]:
                who = f"(sub-agent failed; attempts {sim.attempts[i]}/{self.config.max_attempts})"
            else:
                who = ""
            target = "*" if g.targets[i] else " "
            parents = ",".join(map(str, g.parents[i])) or "-"
            if len(parents) > 13:
                parents = parents[:12] + "~"
            total = g.work[i] + sim.extra_work[i]
            done_work = f"{total - sim.work_left[i]}/{total}"
            lines.append(f"{i:>3}{target}{KINDS[g.kind[i]]:<7}{status:<9}{done_work:>6}  {parents:<14}{who}")
        lines.append("(* = target)")
        return "\n".join(lines)

    def _parse_action(self, action) -> int:
        """The action as an int; a float, bool or string is rejected, never rounded."""
        value = action
        if isinstance(value, np.ndarray) and value.size == 1 and value.ndim <= 1:
            value = value.reshape(())[()]  # a 0-d or one-element integer array, as some vector wrappers pass
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"action must be an integer in [0, {self.layout.n - 1}], got {action!r} ({type(action).__name__})")
        a = int(value)
        if not 0 <= a < self.layout.n:
            raise ValueError(f"action must be an integer in [0, {self.layout.n - 1}], got {a}")
        return a

    def _encode_static(self) -> None:
        """Encode a new episode: the per-episode constant features, then every node's state.

        ``self._nodes`` holds the current node rows; a step re-encodes only the rows of
        the nodes it changed (:meth:`_encode_changes`) and the observation is a copy.
        ``self._doable`` / ``self._spawnable`` are the per-node blocks of the mask
        (``spawn`` before the slot and per-turn gates), views of ``self._mask_bits``, the
        mask before :meth:`action_masks` applies its gates. With ``config.progressive`` the
        constant part of each row (``self._static_rows``) and of the adjacency
        (``self._parent_rows``) is written when the node is revealed (``self._shown``).
        """
        g = self.sim.graph
        n = g.n_nodes
        self._new_observation_arrays()
        nodes = np.zeros_like(self._nodes) if self._progressive else self._nodes  # the constant part of each row
        view = nodes[:n, : len(NODE_FEATURES)]
        view[:] = _PRESENT_KIND_ROWS.take(g.kind, axis=0)  # present and the kind one-hot
        view[:, _WORK] = _WORK_LEFT_TABLE.take(g.work)
        view[:, _TARGET] = g.targets
        view[:, _N_PARENTS] = [_COUNT_LIST[len(ps)] for ps in g.parents]
        if not self._progressive:  # hidden structure: progressive revelation shows neither
            view[:, _BOTTOM] = g.bottom_level / g.critical_path
            view[:, _N_CHILDREN] = [_COUNT_LIST[len(cs)] for cs in g.children]
        self._inv_work = [1.0 / w for w in g.work.tolist()]
        self._n_targets = int(np.count_nonzero(g.targets))
        adj = None
        if self.with_adjacency:
            adj = np.zeros_like(self._adjacency) if self._progressive else self._adjacency
            for i, ps in enumerate(g.parents):
                adj[i, list(ps)] = 1.0
        if self._progressive:
            self._static_rows, self._parent_rows = nodes, adj
            self._shown = np.zeros(n, dtype=bool)
        # the mask before the gates of action_masks: the do and spawn blocks (two views) and answer
        self._mask_bits = np.zeros(self._n_actions, dtype=bool)
        self._mask_bits[self._answer] = True
        self._view_mask_bits()
        self._encode_all_nodes()

    def _new_observation_arrays(self) -> None:
        """Zeroed ``self._nodes`` (and ``self._adjacency``) for a new episode. In flat mode they
        are views of ``self._flat``, the flat observation's buffer (:meth:`_observation` writes
        its globals and mask), so that an observation is one copy."""
        if self.observation_mode == "flat":
            self._flat = np.zeros(self.observation_space.shape, dtype=np.float32)
            self._view_flat()
            return
        self._nodes = np.zeros((self.n_max, len(node_features(self.extended))), dtype=np.float32)
        if self.with_adjacency:
            self._adjacency = np.zeros((self.n_max, self.n_max), dtype=np.float32)

    def _view_flat(self) -> None:
        """``self._nodes`` and ``self._adjacency`` as views of their parts of ``self._flat``."""
        self._nodes = self._flat[self._flat_slices["nodes"]].reshape(self.n_max, -1)
        if self.with_adjacency:
            self._adjacency = self._flat[self._flat_slices["adjacency"]].reshape(self.n_max, self.n_max)

    def _view_mask_bits(self) -> None:
        """``self._doable`` and ``self._spawnable``: views of the do and spawn blocks of ``self._mask_bits``."""
        self._doable, self._spawnable = self._mask_bits[: self._spawn0], self._mask_bits[self._spawn0 : self._wait]

    def __setstate__(self, state: dict) -> None:
        """Unpickled or deep-copied: the mask's do and spawn blocks and, in flat mode, the node rows
        and the adjacency become views of their copied buffers again (pickle and deepcopy copy each
        array on its own, which would detach them)."""
        self.__dict__.update(state)
        if state.get("_mask_bits") is not None:
            self._view_mask_bits()
        if state.get("_flat") is not None:
            self._view_flat()

    def _show(self, rows) -> None:
        """Write the constant part of newly revealed nodes' rows (``rows``: an index or an index
        array) and their adjacency rows; their state columns are written next by the caller."""
        self._shown[rows] = True
        self._nodes[rows] = self._static_rows[rows]
        if self.with_adjacency:
            self._adjacency[rows] = self._parent_rows[rows]

    def _encode_all_nodes(self) -> None:
        """Every node's state features and mask bits (at reset, and after an invalidation;
        :meth:`_encode_node` for one)."""
        sim = self.sim
        n = sim.graph.n_nodes
        if self._progressive:
            self._show(np.flatnonzero(sim.revealed & ~self._shown))
        view = self._nodes[:n]
        view[:, STATUS_COLUMN0 : STATUS_COLUMN0 + len(STATUS_NAMES)] = _EYE_STATUS.take(sim.status, axis=0)
        if self.extended:
            view[:, _WORK_LEFT] = _WORK_LEFT_TABLE.take(np.minimum(sim.work_left, MAX_WORK))  # extra work may exceed MAX_WORK
            view[:, _BY_SUBAGENT] = (sim.status == DONE) & sim.done_by_subagent
            view[:, _VERIFIED] = sim.verified
            view[:, _ATTEMPT_TIER] = (sim.attempt_tier + 1) / MAX_TIERS
        else:
            view[:, _WORK_LEFT] = _WORK_LEFT_TABLE.take(sim.work_left)
        view[:, _ATTEMPTS] = self._attempts_table.take(sim.attempts)
        view[:, _UNFINISHED] = self._unfinished_table.take(sim.unfinished_parents)
        view[:, _FAILED] = sim.last_failed
        view[:, _ELAPSED] = 0.0
        self._encode_elapsed()
        self._doable[:n] = _DOABLE.take(sim.status)
        np.logical_and(_IS_READY.take(sim.status), self._attempts_left.take(sim.attempts), out=self._spawnable[:n])
        if self._progressive:
            view[~sim.revealed] = 0.0

    def _encode_node(self, i: int) -> None:
        """Node ``i``'s state features and mask bits (as :meth:`_encode_all_nodes` for one row;
        ``subagent_elapsed`` of running nodes is written by :meth:`_encode_elapsed` when the clock moves).
        A hidden node's row stays zero. The simulator's values are read as Python scalars
        (``item``) and the tables are lists: a row costs a few Python operations, not numpy calls."""
        sim = self.sim
        if self._progressive and not self._shown[i]:
            if not sim.revealed[i]:
                return
            self._show(i)
        status = sim.status.item(i)
        attempts = sim.attempts.item(i)
        row = self._nodes[i]
        row[_STATUS_COLUMNS] = _STATUS_ROWS[status]
        row[_ATTEMPTS] = self._attempts_list[attempts]
        row[_UNFINISHED] = self._unfinished_list[sim.unfinished_parents.item(i)]
        row[_FAILED] = sim.last_failed.item(i)
        if status != RUNNING:
            row[_ELAPSED] = 0.0
        if self.extended:
            row[_WORK_LEFT] = _WORK_LEFT_LIST[min(sim.work_left.item(i), MAX_WORK)]
            row[_BY_SUBAGENT] = status == DONE and sim.done_by_subagent.item(i)
            row[_VERIFIED] = sim.verified.item(i)
            row[_ATTEMPT_TIER] = (sim.attempt_tier.item(i) + 1) / MAX_TIERS
        else:
            row[_WORK_LEFT] = _WORK_LEFT_LIST[sim.work_left.item(i)]
        self._doable[i] = status == READY or status == ACTIVE
        self._spawnable[i] = status == READY and attempts < self.config.max_attempts

    def _encode_changes(self, node: int | None, running_before: list[int]) -> None:
        """Re-encode what one step changed. A node's state changes only when the action
        works on it (``node``), when a sub-agent starts or returns on it (it entered or
        left ``running``), or when one of its parents completes (a parent among those).
        (A verify that catches a wrong result changes a whole subgraph: ``step`` then
        re-encodes every row; so does a step that changed more than ``_ROWS_PER_STEP``
        rows, e.g. a plan node that released every search, since one vectorised pass is
        cheaper than that many single rows.)"""
        sim = self.sim
        changed = set(running_before).symmetric_difference(sim.running)  # sub-agents that started or returned
        if node is not None:
            changed.add(node)
        rows = set(changed)
        status, children = sim.status, sim.graph.children
        for j in changed:
            if status.item(j) == DONE:
                rows.update(children[j])
        if len(rows) > _ROWS_PER_STEP:
            self._encode_all_nodes()
            return
        for i in rows:
            self._encode_node(i)
        if sim.t != self._elapsed_at:
            self._encode_elapsed()

    def _encode_elapsed(self) -> None:
        """``subagent_elapsed`` of every running node: ticks its sub-agent has run / work, at most 1.
        It changes only when the clock moves (``self._elapsed_at``: the tick it was written at); a
        sub-agent spawned since reads 0, which its row holds already (a row not running holds 0)."""
        sim = self.sim
        t, nodes, start_time, inv_work = sim.t, self._nodes, sim.start_time, self._inv_work
        self._elapsed_at = t
        for j in sim.running:
            elapsed = (t - start_time.item(j)) * inv_work[j]
            nodes[j, _ELAPSED] = elapsed if elapsed < 1.0 else 1.0

    def _observation(self, mask: np.ndarray | None = None):
        sim = self.sim
        n = sim.graph.n_nodes
        t = sim.t
        cfg = self.config
        left = sim.budget - t
        n_run = len(sim.running)
        can_spawn = n_run < cfg.max_subagents and sim.spawns_this_turn < cfg.max_spawns_per_turn and not sim.done
        tokens = sim.input_tokens + sim.output_tokens
        n_seen = sim.n_revealed if self._progressive else n  # the nodes the orchestrator can see
        glob = [
            t / sim.budget,
            left / (left + TIME_LEFT_HALF),
            n_run / cfg.max_subagents if cfg.max_subagents else 0.0,
            sim.spawns_this_turn / cfg.max_spawns_per_turn,
            float(can_spawn),
            tokens / (tokens + TOKENS_HALF),
            sim.n_done / n_seen,
            sim.n_targets_done / self._n_targets,
            n_seen / self.n_max,
            cfg.max_subagents / MAX_SUBAGENTS_SCALE,
        ]
        if self.extended:
            glob += self._extended_globals()
        if self.observation_mode == "dict":
            glob = np.array(glob, dtype=np.float32)
            if self.with_adjacency:
                return {"nodes": self._nodes.copy(), "globals": glob, "adjacency": self._adjacency.copy()}
            return {"nodes": self._nodes.copy(), "globals": glob}
        # the flat buffer holds the node rows and the adjacency already
        flat = self._flat
        flat[self._flat_slices["globals"]] = glob
        flat[self._flat_slices["action_mask"]] = self.action_masks() if mask is None else mask
        return flat.copy()

    def _extended_globals(self) -> list[float]:
        """``results_read`` and, per tier, ``tier{t}_returns``, ``_fail_rate``, ``_caught_rate``
        (what the orchestrator can know of the tiers' hidden reliability; 0 for absent tiers)."""
        sim = self.sim
        results = sim.n_ok + sim.n_wrong + sim.n_failed
        out = [results / (results + RESULTS_HALF)]
        for tier in range(MAX_TIERS):
            if tier < sim.n_tiers:
                returns, verified = sim.returns_tier[tier], sim.verified_tier[tier]
                out.append(returns / (returns + RESULTS_HALF))
                out.append(sim.fails_tier[tier] / returns if returns else 0.0)
                out.append(sim.caught_tier[tier] / verified if verified else 0.0)
            else:
                out += [0.0, 0.0, 0.0]
        return out

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
