"""One-call property checks of an env: :func:`check_family` and :func:`replay`.

:func:`check_family` runs hypothesis over seeds and action sequences drawn from
the live mask and checks every invariant of
:data:`~swarmgym.testing.invariants.INVARIANTS` along each episode, with a twin
env in lockstep for determinism; where the env id has a batched engine, it also
holds the batched engine to the reference. On failure hypothesis shrinks the
seed and the actions, and the :class:`~swarmgym.testing.invariants.InvariantViolation`
raised says how to replay the minimal episode.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Iterable

import gymnasium as gym
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from swarmgym.layout import ActionLayout
from swarmgym.testing.invariants import INVARIANTS, EpisodeRecord, run_episode
from swarmgym.testing.strategies import draw_action, seeds, swarm_configs

__all__ = ["PROFILES", "as_factory", "check_family", "drawn_policy", "replay", "resolve_profile"]

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

#: Hypothesis settings by profile name. ``"ci"``: derandomized (the same examples
#: on every run), 40 episodes, no deadline, no example database, one bug reported,
#: and no "explain" phase (slow; the replay says what matters). ``"deep"``: 2000
#: random episodes with the example database, for local fuzzing.
PROFILES: dict[str, settings] = {
    "ci": settings(
        max_examples=40, derandomize=True, deadline=None, database=None, print_blob=False,
        report_multiple_bugs=False, suppress_health_check=_SUPPRESS,
        phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
    ),
    "deep": settings(max_examples=2000, derandomize=False, deadline=None, report_multiple_bugs=False, suppress_health_check=_SUPPRESS),
}  # fmt: skip

#: Styles of play :func:`drawn_policy` draws from (listed in shrinking order).
PLAY_STYLES: tuple[str, ...] = ("any", "any", "spawn first", "do only")

#: An episode probes its whole mask (every allowed action, on copies of the env) at a
#: step drawn from ``[0, PROBE_STEPS]`` (skipped if the episode ends sooner).
PROBE_STEPS = 24

#: Steps after which a drawn episode answers, by profile (the budget usually ends it sooner).
MAX_STEPS: dict[str, int] = {"ci": 200, "deep": 2000}

#: Environment variable naming the profile used when none is passed (default ``"ci"``):
#: ``SWARMGYM_TEST_PROFILE=deep pytest`` searches deeper without editing any test.
PROFILE_VARIABLE = "SWARMGYM_TEST_PROFILE"


def _target_of(factory: Callable) -> str:
    """Python source naming a factory for replay snippets (``module:qualname`` when importable)."""
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", None)
    if module and qualname and module != "__main__" and "<" not in qualname:
        try:
            obj = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            if obj is factory:
                return f"{module}:{qualname}"
        except (ImportError, AttributeError):
            pass
    return f"<factory>{module}.{qualname}" if qualname else f"<factory>{factory!r}"


def as_factory(env: str | Callable[[], gym.Env], **make_kwargs: Any) -> tuple[Callable[[], gym.Env], str]:
    """Turn an env id or a zero-argument env factory into ``(factory, replay target)``.

    The target is Python source naming the env in a replay snippet: the quoted id
    (``make_kwargs`` travel separately, as keyword arguments of the replay call), an
    importable factory's ``"module:qualname"``, or ``"<factory>description"``.

    :param env: a registered env id (``"mylab/MyTask-v0"``; ``"module:id"`` imports the
        module first) or a callable returning a fresh env.
    :param make_kwargs: extra keyword arguments for ``gymnasium.make`` (ids only).
    :raises TypeError: if ``env`` is neither.
    :raises ValueError: if the id is not registered.
    """
    if isinstance(env, str):
        target = repr(env)
        if ":" in env:  # "module:id", as gymnasium.make takes it: import the module that registers the id
            module, _, env = env.partition(":")
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ValueError(f"env id {module}:{env}: module {module!r} cannot be imported ({exc})") from exc
        try:
            gym.spec(env)
        except gym.error.Error as exc:
            raise ValueError(f"env id {env!r} is not registered ({exc}); register it first, or import the module that does") from exc
        return (lambda: gym.make(env, **make_kwargs)), target
    if callable(env):
        if make_kwargs:
            raise TypeError("make_kwargs are only accepted with an env id, not a factory")
        return env, _target_of(env)
    raise TypeError(f"env must be an env id (str) or a zero-argument callable returning an env, got {type(env).__name__}")


def drawn_policy(
    data, max_steps: int = 200, *, masked_out: bool = True, layout: ActionLayout | None = None
) -> Callable[[np.ndarray, int], int]:
    """A policy for :func:`~swarmgym.testing.invariants.run_episode` whose choices hypothesis draws.

    It first draws the style of play (any valid action, in half the episodes;
    spawns first, as a delegating orchestrator would; or ``do`` only) and a step
    at which to answer (in ``[0, max_steps]``; the budget usually ends the episode
    sooner), then one action per step from the live mask. Outside ``do``-only
    play, about one step in six takes a masked-out action instead, which the env
    must absorb by its invalid-action rule. Shrinking prefers answering early, the
    first valid action, no masked-out actions, and play of any kind.

    :param data: the ``st.data()`` object of the running test.
    :param max_steps: answer at the latest after this many steps.
    :param masked_out: allow masked-out actions (off for ``strict=True`` envs, which
        raise on them by design).
    :param layout: the env's :class:`~swarmgym.layout.ActionLayout` (``env.unwrapped.layout``;
        needed for the extended layout), default: the base layout of the mask's size.
    """
    play = data.draw(st.sampled_from(PLAY_STYLES), label="play")
    answer_at = data.draw(st.integers(0, max_steps), label="answer_after_steps")

    def policy(mask: np.ndarray, step: int) -> int:
        answer = (layout or ActionLayout.for_actions(mask.size)).answer
        if step >= answer_at and mask[answer]:
            return answer
        # drawn in every style, so that a shrink from one style to another keeps the draws aligned
        off_mask = masked_out and not mask.all() and data.draw(st.integers(0, 5), label="masked_out?") == 5
        if off_mask and play != "do only":
            return int(data.draw(st.sampled_from(np.flatnonzero(~mask).tolist()), label="masked_out_action"))
        return draw_action(data, mask, serial_only=play == "do only", spawn_first=play == "spawn first", layout=layout)

    return policy


def _close(env: gym.Env | None) -> None:
    try:
        if env is not None:
            env.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


def _batched_available(env: Any) -> bool:
    """Whether ``env`` is an id whose vector entry point (swarmgym.batched) can be imported."""
    if not isinstance(env, str):
        return False
    spec = gym.spec(env)
    entry = spec.vector_entry_point
    if not isinstance(entry, str) or not entry.startswith("swarmgym.batched:"):
        return False
    try:
        importlib.import_module("swarmgym.batched")
    except ImportError:
        return False
    return True


def resolve_profile(profile: str | settings | None, max_steps: int | None, max_examples: int | None = None) -> tuple[settings, int]:
    """The hypothesis settings and the answer-by step of a profile.

    :param profile: a name from :data:`PROFILES`, a hypothesis ``settings`` object, or
        None: the profile named by the environment variable ``SWARMGYM_TEST_PROFILE``
        (:data:`PROFILE_VARIABLE`), else ``"ci"``.
    :param max_steps: answer at the latest after this many steps (None: the profile's).
    :param max_examples: episodes to draw (None: the profile's). When the profile came
        from the environment variable, a smaller number is raised to the profile's, so
        that a test's own small count does not cap a deep run.
    :raises ValueError: for an unknown profile (naming the variable if it came from there),
        or a bad ``max_steps`` / ``max_examples``.
    """
    from_variable = profile is None and os.environ.get(PROFILE_VARIABLE) not in (None, "")
    if profile is None:
        profile = os.environ.get(PROFILE_VARIABLE) or "ci"
        if profile not in PROFILES:
            raise ValueError(f"the environment variable {PROFILE_VARIABLE} must be one of {sorted(PROFILES)}, got {profile!r}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0):
        raise ValueError(f"max_steps must be an integer >= 0 (or None), got {max_steps!r}")
    if max_examples is not None and (isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1):
        raise ValueError(f"max_examples must be an integer >= 1 (or None), got {max_examples!r}")
    if isinstance(profile, settings):
        base, steps = profile, MAX_STEPS["ci"]
    elif isinstance(profile, str) and profile in PROFILES:
        base, steps = PROFILES[profile], MAX_STEPS[profile]
    else:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, a hypothesis settings object or None, got {profile!r}")
    if max_examples is not None:
        examples = max(max_examples, base.max_examples) if from_variable else max_examples
        base = settings(base, max_examples=examples)
    return base, steps if max_steps is None else max_steps


def check_family(
    env: str | Callable[[], gym.Env],
    profile: str | settings | None = None,
    *,
    max_examples: int | None = None,
    max_steps: int | None = None,
    checks: Iterable[str] | None = None,
    batched: bool | None = None,
    drawn_configs: bool = False,
    **make_kwargs: Any,
) -> None:
    """Check an env family's invariants on hypothesis-drawn episodes; pass or raise a shrunk counterexample.

    Usable as the body of a pytest test::

        def test_my_family():
            check_family("mylab/MyTask-v0")

    Each example resets two fresh envs with a drawn seed and steps them in
    lockstep with actions drawn from the live mask, checking every invariant of
    :data:`~swarmgym.testing.invariants.INVARIANTS` after every step; at one drawn
    step it also tries every action the mask allows, each on a copy of the env.

    :param env: a registered env id or a zero-argument factory returning a fresh env
        (whose ``unwrapped`` is a :class:`~swarmgym.env.SwarmEnv`, for the simulator checks).
    :param profile: ``"ci"`` (derandomized, bounded, no deadline) or ``"deep"``
        (many random examples, for local fuzzing), or a hypothesis ``settings`` object;
        default: the environment variable ``SWARMGYM_TEST_PROFILE``, else ``"ci"``.
    :param max_examples: override the profile's number of episodes (raised to the
        profile's when the profile comes from ``SWARMGYM_TEST_PROFILE``).
    :param max_steps: answer at the latest after this many steps (default per profile: 200 / 2000).
    :param checks: names of invariants to check (default all).
    :param batched: also hold the batched engine to the reference (default: when the id's
        vector entry point is ``swarmgym.batched`` and importable; a factory has none).
    :param drawn_configs: also draw the dynamics per example, the orchestration mechanics
        included (:func:`~swarmgym.testing.strategies.swarm_configs` with ``mechanics=True``),
        replacing the id's config (ids only; the replay snippet passes the drawn ``config``).
    :param make_kwargs: keyword arguments for ``gymnasium.make`` (ids only).
    :raises InvariantViolation: the minimal failing episode, with a replay snippet.
    :raises ValueError: for an unknown profile or check name.
    """
    run_settings, steps = resolve_profile(profile, max_steps, max_examples)
    if checks is not None:
        if isinstance(checks, str):
            raise TypeError(f"checks must be a list of invariant names, not one string ({checks!r}); pass [{checks!r}]")
        checks = list(checks)
        unknown = sorted(set(checks) - set(INVARIANTS))
        if unknown:
            raise ValueError(f"checks must be names from INVARIANTS {sorted(INVARIANTS)}, got unknown {unknown}")
    if batched and not isinstance(env, str):
        raise ValueError("batched=True needs an env id (the batched engine is built from the id's kwargs), not a factory")
    if not isinstance(drawn_configs, bool):
        raise TypeError(f"drawn_configs must be a bool, got {drawn_configs!r}")
    if drawn_configs and not isinstance(env, str):
        raise ValueError("drawn_configs=True needs an env id (the drawn config is passed to gymnasium.make), not a factory")
    factory, target = as_factory(env, **make_kwargs)

    @run_settings
    @given(seed=seeds(), data=st.data())
    def episode(seed: int, data) -> None:
        __tracebackhide__ = True
        kwargs, make = make_kwargs, factory
        if drawn_configs:
            kwargs = {**make_kwargs, "config": data.draw(swarm_configs(mechanics=True), label="config").to_dict()}
            make = as_factory(env, **kwargs)[0]
        first, twin = make(), make()
        try:
            own_layout = getattr(first.unwrapped, "layout", None)
            policy = drawn_policy(
                data, steps, masked_out=getattr(first.unwrapped, "invalid_action", "waste_tick") != "raise",
                layout=own_layout if isinstance(own_layout, ActionLayout) else None,
            )  # fmt: skip
            probe_step = data.draw(st.integers(0, PROBE_STEPS), label="probe_the_whole_mask_at_step")
            run_episode(first, seed, policy, twin=twin, checks=checks, target=target, probe_step=probe_step, replay_kwargs=kwargs)
        finally:
            _close(first)
            _close(twin)

    episode()
    if batched or (batched is None and _batched_available(env)):
        if checks is None or "batched_matches_reference" in checks:
            from swarmgym.testing.batched import check_batched

            # single-env options stay out; "raise" (single-env only) is compared under the default rule
            batch_kwargs = {k: v for k, v in make_kwargs.items() if k not in ("strict", "render_mode")}
            if batch_kwargs.get("invalid_action") == "raise":
                del batch_kwargs["invalid_action"]
            check_batched(env, run_settings, max_steps=steps, drawn_configs=drawn_configs, **batch_kwargs)


def replay(
    env: str | Callable[[], gym.Env],
    seed: int | None,
    actions: Iterable[int],
    *,
    checks: Iterable[str] | None = None,
    keep_observations: bool = True,
    probe_step: int | None = None,
    **make_kwargs: Any,
) -> EpisodeRecord:
    """Replay an episode with every invariant checked (what a violation's message tells you to run).

    :param env: the env id or factory that was checked.
    :param seed: the reset seed.
    :param actions: the actions, in order; the replay stops when they run out.
    :param checks: the invariants to check (default all).
    :param keep_observations: keep every observation and info in the returned record.
    :param probe_step: try every action the mask allows at this step, on copies of the env
        (see :func:`~swarmgym.testing.invariants.run_episode`).
    :param make_kwargs: keyword arguments for ``gymnasium.make`` (ids only).
    :returns: the :class:`~swarmgym.testing.invariants.EpisodeRecord` if nothing is broken.
    :raises InvariantViolation: the same violation as the original run.
    """
    factory, target = as_factory(env, **make_kwargs)
    todo = list(actions)
    bad = [a for a in todo if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer))]
    if bad:
        raise TypeError(f"actions must be integers (action indices), got {bad[0]!r} among them")
    todo = [int(a) for a in todo]

    def policy(mask: np.ndarray, step: int) -> int | None:
        return todo[step] if step < len(todo) else None

    first, twin = factory(), factory()
    try:
        return run_episode(
            first, seed, policy, twin=twin, checks=checks, target=target, keep_observations=keep_observations,
            probe_step=probe_step, replay_kwargs=make_kwargs,
        )  # fmt: skip
    finally:
        _close(first)
        _close(twin)
