"""The batched engine held to the reference env: same instances, same actions, same everything.

:func:`check_batched` draws a seed and, for each of ``num_envs`` reference envs
(``gymnasium.make(env_id)``, reset with ``seed + e``), actions from the live mask;
it loads the reference instances into a fresh
:class:`~swarmgym.batched.BatchedSwarmEngine` and steps both, comparing
after every step the observations, masks, rewards, terminations and, when an
episode ends, the final observation and mask and every metric. When an episode ends
the engine resets the env itself (from its instance bank); the reference is reset onto
the instance the engine drew and the comparison goes on, for ``episodes`` episodes per
env. Then it replays the same actions through what ``gymnasium.make_vec(env_id)``
returns (``options={"instances": ...}``), in the id's own observation mode (so flat ids
check the flat encoding too). With ``drawn_configs=True`` every example also draws the
dynamics, the orchestration mechanics of ``docs/mechanics.md`` included
(:func:`~swarmgym.testing.strategies.swarm_configs` with ``mechanics=True``). Envs done with their
episodes are given the first valid action of the engine's own mask. A difference raises
:class:`~swarmgym.testing.invariants.InvariantViolation`
(``batched_matches_reference``) with a :func:`replay_batched` snippet.

The profile (``"ci"`` or ``"deep"``) defaults to the environment variable
``SWARMGYM_TEST_PROFILE`` (``"ci"`` when unset).
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmgym.layout import ActionLayout
from swarmgym.testing.invariants import InvariantViolation, _first_difference, _same
from swarmgym.testing.strategies import seeds, swarm_configs

__all__ = ["check_batched", "engine_for", "replay_batched"]

#: Environment variable naming the default profile of :func:`check_batched`.
PROFILE_VARIABLE = "SWARMGYM_TEST_PROFILE"
#: Episodes compared per env (the first, then the engine's own autoresets), by profile.
EPISODES: dict[str, int] = {"ci": 2, "deep": 4}


def default_profile() -> str:
    """``$SWARMGYM_TEST_PROFILE`` (``"ci"`` or ``"deep"``), ``"ci"`` when unset."""
    name = os.environ.get(PROFILE_VARIABLE, "ci") or "ci"
    if name not in EPISODES:
        raise ValueError(f"{PROFILE_VARIABLE} must be one of {sorted(EPISODES)}, got {name!r}")
    return name


# SwarmEnv keyword arguments the engine does not take (it always encodes Dict observations)
_ENV_ONLY = ("observation_mode", "strict", "render_mode")


def engine_for(env_id: str, num_envs: int, *, seed: int = 0, **make_kwargs: Any):
    """A :class:`~swarmgym.batched.BatchedSwarmEngine` with the env id's generator, config and sizes.

    :param env_id: a registered id whose kwargs are :class:`~swarmgym.env.SwarmEnv`'s.
    :param num_envs: envs in the batch.
    :param seed: the engine's seed (only its autoreset draws use it).
    :param make_kwargs: overrides of the id's kwargs, as for ``gymnasium.make``.
    """
    from swarmgym.batched import BatchedSwarmEngine

    kwargs = {**gym.spec(env_id).kwargs, **make_kwargs}
    for key in _ENV_ONLY:
        kwargs.pop(key, None)
    return BatchedSwarmEngine(**kwargs, num_envs=num_envs, bank_size=max(2, num_envs), seed=seed)


def _numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


def _metric_difference(ref: dict, eng: dict, e: int, family_names: Sequence[str]) -> str | None:
    """The first metric where the batched env ``e`` differs from the reference (None if none)."""
    for key, value in ref.items():
        if key == "family":
            got = str(eng["family"][e]) if "family" in eng else family_names[int(_numpy(eng["family_id"])[e])]
            if got != value:
                return f"metrics['family'] = {got!r} vs the reference's {value!r}"
            continue
        if key not in eng:
            return f"the batched metrics lack {key!r}"
        got = np.asarray(_numpy(eng[key])[e])
        want = np.asarray(value)
        if got.shape != want.shape:
            return f"metrics[{key!r}] has shape {got.shape} vs the reference's {want.shape}"
        if want.dtype.kind in "f" or got.dtype.kind in "f":
            same = np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-9, atol=1e-12)
        else:
            same = np.array_equal(got.astype(np.int64), want.astype(np.int64))
        if not same:
            return f"metrics[{key!r}] = {got.tolist()!r} vs the reference's {want.tolist()!r}"
    return None


def _row(obs: Any, e: int) -> Any:
    """Env ``e``'s observation out of a batched one (dict of arrays/tensors, or one array)."""
    if isinstance(obs, dict):
        return {k: np.asarray(_numpy(v)[e]) for k, v in obs.items()}
    return np.asarray(_numpy(obs)[e])


class _EngineSide:
    """The tensor engine (contract 2), compared with Dict-observation reference envs."""

    name = "the batched engine"
    observation_mode = "dict"

    def __init__(self, env_id: str, num_envs: int, engine_factory, make_kwargs: dict) -> None:
        self.engine = engine_for(env_id, num_envs, seed=0, **make_kwargs) if engine_factory is None else engine_factory(num_envs)
        self.family_names = self.engine.family_names

    def load(self, instances):
        obs = self.engine.load_instances(instances)
        return obs, np.asarray(_numpy(self.engine.action_mask)).copy()

    def instances(self):
        return self.engine.instances()

    def step(self, batch: np.ndarray):
        import torch

        obs, reward, terminated, info = self.engine.step(torch.as_tensor(batch), final_obs=True)
        return {
            "obs": obs, "reward": np.asarray(_numpy(reward)), "terminated": np.asarray(_numpy(terminated)),
            "done": np.asarray(_numpy(info["done_mask"])), "mask": np.asarray(_numpy(info["action_mask"])).copy(),
            "final_obs": info["final_obs"], "final_mask": np.asarray(_numpy(info["final_mask"])), "metrics": info["metrics"],
        }  # fmt: skip

    def close(self) -> None:
        pass


class _VectorSide:
    """What ``gymnasium.make_vec(env_id)`` returns, compared with reference envs of the id's own observation mode."""

    name = "gymnasium.make_vec's vector env"

    def __init__(self, env_id: str, num_envs: int, make_kwargs: dict) -> None:
        self.env = gym.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **{"bank_size": max(2, num_envs), **make_kwargs}
        )
        self.observation_mode = {**gym.spec(env_id).kwargs, **make_kwargs}.get("observation_mode", "dict")
        self.family_names = ()

    def load(self, instances):
        obs, info = self.env.reset(seed=0, options={"instances": list(instances)})
        return obs, np.asarray(info["action_mask"]).copy()

    def instances(self):
        return self.env.unwrapped.engine.instances()

    def step(self, batch: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(batch)
        done = np.asarray(terminated) | np.asarray(truncated)
        final_mask = np.asarray(info["final_info"]["action_mask"]) if "final_info" in info else None
        return {
            "obs": obs, "reward": np.asarray(reward), "terminated": np.asarray(terminated), "done": done,
            "mask": np.asarray(info["action_mask"]).copy(), "final_obs": info.get("final_obs"), "final_mask": final_mask,
            "metrics": info.get("metrics", {}),
        }  # fmt: skip

    def close(self) -> None:
        self.env.close()


def run_batched(
    env_id: str,
    seed: int,
    policies: Sequence[Callable[[np.ndarray, int], int | None]],
    *,
    via: str = "engine",
    target: str | None = None,
    engine_factory: Callable[[int], Any] | None = None,
    episodes: int | None = 1,
    **make_kwargs: Any,
) -> list[list[int]]:
    """Step ``len(policies)`` reference envs and a batched env together, comparing them.

    :param env_id: the registered id.
    :param seed: env ``e`` is reset with ``seed + e``.
    :param policies: one ``policy(mask, step) -> action`` per env, ``step`` counting the env's
        actions over all its episodes (None stops that env's comparison; the replay's lists run
        out that way). A policy with a ``new_episode(step)`` method is told when the engine's
        autoreset starts the env's next episode.
    :param via: ``"engine"``: the tensor engine (:class:`~swarmgym.batched.BatchedSwarmEngine`)
        against Dict-observation reference envs; ``"make_vec"``: what ``gymnasium.make_vec``
        returns for the id (its own observation mode, e.g. flat) against ``gymnasium.make``'s.
    :param target: Python source naming the env for the replay (default: the quoted id).
    :param engine_factory: with ``via="engine"``, ``engine_factory(num_envs)`` returns the
        engine to compare (default: :func:`engine_for` the id); it must have
        ``load_instances``, ``action_mask`` and ``step(actions, final_obs=True)`` as
        :class:`~swarmgym.batched.BatchedSwarmEngine` has.
    :param episodes: episodes compared per env: the first, then those the batched env's own
        autoresets start (the reference following onto the instance it drew); None: until
        the env's policy returns None.
    :returns: the actions taken, one list per env.
    :raises InvariantViolation: ``batched_matches_reference``, with a :func:`replay_batched` snippet.
    """
    if episodes is not None and (isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1):
        raise ValueError(f"episodes must be None or an integer >= 1, got {episodes!r}")
    if via not in ("engine", "make_vec"):
        raise ValueError(f"via must be 'engine' or 'make_vec', got {via!r}")
    if engine_factory is not None and via != "engine":
        raise ValueError("engine_factory is only used with via='engine'")
    num_envs = len(policies)
    target = repr(env_id) if target is None else target
    actions: list[list[int]] = [[] for _ in range(num_envs)]
    step = 0
    refs: list[gym.Env] = []
    side = None

    def fail(detail: str, cause: BaseException | None = None) -> None:
        __tracebackhide__ = True
        raise InvariantViolation(
            "batched_matches_reference", detail, seed=seed, actions=actions, step=step, target=target, replay_with="replay_batched",
            custom_engine=engine_factory is not None, replay_kwargs={**({} if via == "engine" else {"via": via}), **make_kwargs},
        ) from cause  # fmt: skip

    def compare_obs(e: int, obs: Any, ref_obs: Any, mask: np.ndarray, ref_mask: np.ndarray, what: str) -> None:
        __tracebackhide__ = True
        mine = _row(obs, e)
        if not _same(mine, ref_obs):
            fail(
                f"env {e}: {what} observation of {side.name} differs from the reference: {_first_difference(mine, ref_obs)} (batched vs reference)"
            )
        if not np.array_equal(mask, ref_mask):
            diff = np.flatnonzero(mask != ref_mask).tolist()
            fail(f"env {e}: {what} action mask of {side.name} differs from the reference at actions {diff} (batched {mask[diff].tolist()})")

    try:
        side = _EngineSide(env_id, num_envs, engine_factory, make_kwargs) if via == "engine" else _VectorSide(env_id, num_envs, make_kwargs)
        refs = [gym.make(env_id, **{**make_kwargs, "observation_mode": side.observation_mode}) for _ in range(num_envs)]
        resets = [ref.reset(seed=seed + e) for e, ref in enumerate(refs)]
        ref_masks = [np.asarray(info["action_mask"]) for _, info in resets]
        obs, mask = side.load([ref.unwrapped.instance for ref in refs])
        for e in range(num_envs):
            compare_obs(e, obs, resets[e][0], mask[e], ref_masks[e], "the first")
        live = [True] * num_envs
        played = [1] * num_envs  # episodes started, per env
        while True:
            batch = np.zeros(num_envs, dtype=np.int64)
            for e in range(num_envs):
                a = policies[e](ref_masks[e], len(actions[e])) if live[e] else None
                if a is None:
                    live[e] = False
                    valid = np.flatnonzero(mask[e])
                    batch[e] = int(valid[0]) if valid.size else 0
                else:
                    batch[e] = int(a)
            if not any(live):
                break
            for e in range(num_envs):
                if live[e]:
                    actions[e].append(int(batch[e]))
            step += 1
            out = side.step(batch)
            mask = out["mask"]
            instances = None  # the batched env's instances, fetched once per step if an episode ended
            for e in range(num_envs):
                if not live[e]:
                    continue
                r_obs, r_reward, r_term, r_trunc, r_info = refs[e].step(int(batch[e]))
                term, done = bool(out["terminated"][e]), bool(out["done"][e])
                if term != bool(r_term) or done != bool(r_term or r_trunc):
                    fail(
                        f"env {e}: {side.name} says terminated={term}, done={done}; the reference terminated={r_term}, truncated={r_trunc}"
                    )
                if not math.isclose(float(out["reward"][e]), float(r_reward), rel_tol=1e-9, abs_tol=1e-12):
                    fail(f"env {e}: {side.name}'s reward {float(out['reward'][e])!r} vs the reference's {float(r_reward)!r}")
                if done:
                    compare_obs(e, out["final_obs"], r_obs, out["final_mask"][e], np.asarray(r_info["action_mask"]), "the final")
                    if "metrics" in r_info:
                        problem = _metric_difference(r_info["metrics"], out["metrics"], e, side.family_names)
                        if problem:
                            fail(f"env {e}: {side.name}'s {problem}")
                    if episodes is not None and played[e] >= episodes:
                        live[e] = False
                        continue
                    # the batched env has reset itself: the reference follows onto the instance it drew
                    played[e] += 1
                    instances = instances or side.instances()
                    r_obs, r_info = refs[e].reset(options={"instance": instances[e]})
                    compare_obs(e, out["obs"], r_obs, mask[e], np.asarray(r_info["action_mask"]), f"episode {played[e]}'s first")
                    ref_masks[e] = np.asarray(r_info["action_mask"])
                    hook = getattr(policies[e], "new_episode", None)
                    if hook is not None:
                        hook(len(actions[e]))
                else:
                    compare_obs(e, out["obs"], r_obs, mask[e], np.asarray(r_info["action_mask"]), "the")
                    ref_masks[e] = np.asarray(r_info["action_mask"])
    except InvariantViolation:
        raise
    except Exception as exc:  # noqa: BLE001 - a batched env's error is reported with its replay
        fail(f"{type(exc).__name__} in {side.name if side else 'building the batched env'}: {exc}", exc)
    finally:
        for ref in refs:
            ref.close()
        if side is not None:
            side.close()
    return actions


class _EpisodesPolicy:
    """Drawn episodes back to back: a fresh :func:`~swarmgym.testing.check.drawn_policy` per episode
    (``layout``: the env's action layout, base or extended)."""

    def __init__(self, data, max_steps: int, layout: ActionLayout) -> None:
        from swarmgym.testing.check import drawn_policy

        self._draw = lambda: drawn_policy(data, max_steps, layout=layout)
        self._policy = self._draw()
        self._start = 0

    def new_episode(self, step: int) -> None:
        self._policy = self._draw()
        self._start = step

    def __call__(self, mask: np.ndarray, step: int) -> int:
        return self._policy(mask, step - self._start)


def _layout(env_id: str, make_kwargs: dict) -> ActionLayout:
    """The action layout (base or extended) of ``gymnasium.make(env_id, **make_kwargs)``."""
    env = gym.make(env_id, **make_kwargs)
    try:
        return env.unwrapped.layout
    finally:
        env.close()


def check_batched(
    env_id: str,
    profile: str | settings | None = None,
    *,
    num_envs: int = 3,
    max_examples: int | None = None,
    max_steps: int | None = None,
    episodes: int | None = None,
    drawn_configs: bool = False,
    via: str | None = None,
    engine_factory: Callable[[int], Any] | None = None,
    **make_kwargs: Any,
) -> None:
    """Hold the batched engine to the reference env on hypothesis-drawn instances and actions.

    Each example draws a seed and, per env and episode, a style of play and actions from the
    live masks, plays them on the engine beside ``num_envs`` reference envs (across the
    engine's own autoresets) and then replays the same actions through ``gymnasium.make_vec``
    (see ``via``).

    :param env_id: a registered id (its kwargs are :class:`~swarmgym.env.SwarmEnv`'s).
    :param profile: ``"ci"``, ``"deep"`` or a hypothesis ``settings`` object (see
        :data:`~swarmgym.testing.check.PROFILES`); default ``$SWARMGYM_TEST_PROFILE``, else ``"ci"``.
    :param num_envs: envs in the batch, each with its own seed and actions.
    :param max_examples: override the profile's number of examples.
    :param max_steps: each episode answers at the latest after this many steps.
    :param episodes: episodes compared per env, >= 1 (the first, then autoresets); default
        the profile's (:data:`EPISODES`: 2 for ``"ci"``, 4 for ``"deep"``).
    :param drawn_configs: also draw the dynamics per example, the orchestration mechanics
        included (:func:`~swarmgym.testing.strategies.swarm_configs` with ``mechanics=True``,
        replacing the id's config).
    :param via: ``"engine"`` (the batched engine), ``"make_vec"`` (the id's vector env, in
        its own observation mode), or None (default): the engine, then ``make_vec`` too
        when the id's vector entry point is swarmgym's and no ``engine_factory`` is given.
    :param engine_factory: ``engine_factory(num_envs)`` returns the engine to compare
        (default: the id's :class:`~swarmgym.batched.BatchedSwarmEngine`, see :func:`engine_for`);
        with ``drawn_configs`` it is called as ``engine_factory(num_envs, config=...)``.
    :param make_kwargs: overrides of the id's kwargs.
    :raises InvariantViolation: ``batched_matches_reference``, shrunk, with a :func:`replay_batched` snippet.
    """
    from swarmgym.testing.check import resolve_profile

    if profile is None:
        profile = default_profile()
    base, steps = resolve_profile(profile, max_steps)
    if episodes is None:
        episodes = EPISODES.get(profile, EPISODES["ci"]) if isinstance(profile, str) else EPISODES["ci"]
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be None or an integer >= 1, got {episodes!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if via not in (None, "engine", "make_vec"):
        raise ValueError(f"via must be None, 'engine' or 'make_vec', got {via!r}")
    if not isinstance(drawn_configs, bool):
        raise TypeError(f"drawn_configs must be a bool, got {drawn_configs!r}")
    spec = gym.spec(env_id)  # fails now, naming the id, if it is not registered
    if via is None:
        ours = isinstance(spec.vector_entry_point, str) and spec.vector_entry_point.startswith("swarmgym.batched:")
        sides = ["engine"] + (["make_vec"] if ours and engine_factory is None else [])
    else:
        sides = [via]
    run_settings = settings(base, max_examples=max_examples) if max_examples is not None else base

    @run_settings
    @given(seed=seeds(), data=st.data())
    def batched_episode(seed: int, data) -> None:
        __tracebackhide__ = True
        kwargs, factory = dict(make_kwargs), engine_factory
        if drawn_configs:
            kwargs["config"] = data.draw(swarm_configs(mechanics=True), label="config").to_dict()
            if engine_factory is not None:
                factory = lambda n: engine_factory(n, config=kwargs["config"])  # noqa: E731
        layout = _layout(env_id, kwargs)
        policies = [_EpisodesPolicy(data, steps, layout) for _ in range(num_envs)]
        actions = run_batched(env_id, seed, policies, via=sides[0], engine_factory=factory, episodes=episodes, **kwargs)
        for side in sides[1:]:  # the same episodes again, through the other door
            replay_batched(env_id, seed, actions, via=side, **kwargs)

    batched_episode()


def replay_batched(
    env_id: str,
    seed: int,
    actions: Sequence[Sequence[int]],
    *,
    via: str = "engine",
    engine_factory: Callable[[int], Any] | None = None,
    episodes: int | None = None,
    **make_kwargs: Any,
) -> list[list[int]]:
    """Replay a batched comparison (what a ``batched_matches_reference`` message tells you to run).

    :param env_id: the registered id.
    :param seed: env ``e`` was reset with ``seed + e``.
    :param actions: one action list per env.
    :param via: ``"engine"`` or ``"make_vec"``, as the message says.
    :param engine_factory: the engine factory that was checked, if not the default.
    :param episodes: episodes compared per env (default: as many as the actions reach).
    :returns: the actions replayed, if the engine matched the reference throughout.
    :raises InvariantViolation: the same difference as the original run.
    """
    lists = [[int(a) for a in row] for row in actions]

    def policy_for(row: list[int]):
        return lambda mask, step: row[step] if step < len(row) else None

    policies = [policy_for(row) for row in lists]
    return run_batched(env_id, seed, policies, via=via, engine_factory=engine_factory, episodes=episodes, **make_kwargs)
