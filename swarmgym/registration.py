"""Registration of the suite: every spec file in ``envs/`` becomes two env ids.

A spec file is TOML with an ``id`` and the ``kwargs`` of :class:`swarmgym.SwarmEnv`
(plus free-text ``structure`` and ``parallelism`` for the README's table, and an
optional ``max_episode_steps``). For each spec, :func:`register_spec` registers the
Dict-observation id and its flat twin (``swarmgym/X-v0`` and ``swarmgym/X-flat-v0``),
both with the batched engine as ``vector_entry_point``.

A spec is validated completely when it is registered, not at ``gymnasium.make``:
a TOML syntax error names the file, and the kwargs are checked by building the env
once (an unknown family, field or parameter fails here, naming the spec).
Registering the same spec again is a no-op; replacing an id registered with other
settings needs ``override=True``.
"""

from __future__ import annotations

import copy
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym

ENTRY_POINT = "swarmgym.env:SwarmEnv"
VECTOR_ENTRY_POINT = "swarmgym.batched:SwarmVectorEnv"

#: Spec files of the suite, in the order of the README's table.
SUITE_FILES = (
    "wide_search.toml",
    "serial_reasoning.toml",
    "dependent_chains.toml",
    "layered_dag.toml",
    "mixed.toml",
    "workflows.toml",
    "deep_research.toml",
    "verified_pipeline.toml",
    "deep_research_hard.toml",
    "verified_pipeline_hard.toml",
    "layered_dag_hard.toml",
)

#: Keys a spec may have at its top level.
SPEC_KEYS = ("id", "kwargs", "structure", "parallelism", "max_episode_steps")

# gymnasium's id grammar ([namespace/]name-vN), with the version required
_ID = re.compile(r"^(?:[\w:.-]+/)?[\w:.-]+?-v\d+$")


def flat_id(env_id: str) -> str:
    """``swarmgym/WideSearch-v0`` -> ``swarmgym/WideSearch-flat-v0``."""
    name, sep, version = env_id.rpartition("-v")
    if not sep:
        raise ValueError(f"env id {env_id!r} has no version suffix '-vN'")
    return f"{name}-flat-v{version}"


def load_spec(source: str | Path | bytes, *, name: str | None = None) -> dict[str, Any]:
    """Read a spec file (a path, or the TOML text as bytes) and validate it (see :func:`validate_spec`).

    :param source: the file's path, or its bytes.
    :param name: what to call the file in error messages (default: the path).
    :raises ValueError: naming the file, for a missing file, a TOML syntax error or a bad spec.
    """
    where = name or (repr(str(source)) if not isinstance(source, bytes) else "<bytes>")
    try:
        text = source.decode() if isinstance(source, bytes) else Path(source).read_text()
    except OSError as exc:
        raise ValueError(f"spec file {where}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"spec file {where}: is not UTF-8 text ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"spec file {where}: TOML syntax error: {exc}") from None
    validate_spec(data, where=f"spec file {where}")
    return data


def validate_spec(spec: Mapping[str, Any], *, where: str = "spec") -> None:
    """Check a spec completely: its keys and their types, and its kwargs by building the env once.

    :raises ValueError: (or TypeError) starting with ``where`` and the id, naming what is wrong.
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"{where}: a spec must be a dict (or a TOML file's path), got {type(spec).__name__}")
    env_id = spec.get("id")
    if not isinstance(env_id, str) or not _ID.match(env_id):
        raise ValueError(f"{where}: needs a string 'id' of the form 'namespace/Name-vN', got {env_id!r}")
    where = f"{where} ({env_id})"
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; a spec has {list(SPEC_KEYS)}")
    for key in ("structure", "parallelism"):
        if key in spec and not isinstance(spec[key], str):
            raise ValueError(f"{where}: '{key}' must be a string, got {spec[key]!r}")
    steps = spec.get("max_episode_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"{where}: 'max_episode_steps' must be an integer >= 1, got {steps!r}")
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"{where}: 'kwargs' must be a table of SwarmEnv's arguments, got {kwargs!r}")
    if "observation_mode" in kwargs:
        raise ValueError(f"{where}: kwargs must not set 'observation_mode'; every spec registers both forms (-v and -flat-v)")
    from swarmgym.env import SwarmEnv  # here: the env module imports nothing of this one

    try:
        SwarmEnv(**copy.deepcopy(dict(kwargs)))
    except TypeError as exc:
        message = str(exc)
        names = [k for k in kwargs if k not in _env_arguments()]
        if names:
            message = f"unknown kwargs {names}; SwarmEnv takes {_env_arguments()}"
        raise TypeError(f"{where}: {message}") from None
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _env_arguments() -> list[str]:
    import inspect

    from swarmgym.env import SwarmEnv

    return [p for p in inspect.signature(SwarmEnv.__init__).parameters if p != "self"]


def register_spec(spec: dict[str, Any] | str | Path, *, flat: bool = True, override: bool = False) -> list[str]:
    """Register one spec (a dict as :func:`load_spec` returns, or a path to a TOML file), validated first.

    :param spec: the spec.
    :param flat: also register the flat twin id.
    :param override: replace an id already registered with other settings (without it,
        that raises; registering the same settings again is always allowed).
    :returns: the ids registered (the Dict form, then the flat form if ``flat``).
    :raises ValueError: for a bad spec (naming the file or id), or an id taken by other settings.
    """
    if not isinstance(override, bool):
        raise TypeError(f"override must be a bool, got {override!r}")
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    else:
        validate_spec(spec)
    forms = [(spec["id"], "dict")] + ([(flat_id(spec["id"]), "flat")] if flat else [])
    planned = []
    for env_id, mode in forms:
        kwargs = copy.deepcopy(dict(spec.get("kwargs", {})))
        kwargs["observation_mode"] = mode
        planned.append((env_id, kwargs))
        old = gym.registry.get(env_id)
        if old is not None and not override and not _same_registration(old, kwargs, spec.get("max_episode_steps")):
            raise ValueError(
                f"env id {env_id!r} is already registered with other settings ({old.entry_point}, kwargs {old.kwargs}); "
                "pass override=True to replace it, or choose another id"
            )
    ids = []
    for env_id, kwargs in planned:
        gym.registry.pop(env_id, None)
        gym.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            kwargs=kwargs,
            max_episode_steps=spec.get("max_episode_steps"),
            disable_env_checker=False,
        )
        ids.append(env_id)
    return ids


def _same_registration(old: Any, kwargs: dict[str, Any], max_episode_steps: int | None) -> bool:
    return (
        old.entry_point == ENTRY_POINT
        and old.vector_entry_point == VECTOR_ENTRY_POINT
        and old.kwargs == kwargs
        and old.max_episode_steps == max_episode_steps
    )


def uses_mechanics(env_id: str) -> bool:
    """Whether a registered id's config turns on any mechanic of ``docs/mechanics.md`` (then its env
    has the extended action layout and observation; the text interface plays only the others)."""
    from swarmgym.config import SwarmConfig

    config = gym.spec(env_id).kwargs.get("config")
    if isinstance(config, Mapping):
        config = SwarmConfig.from_dict(config)
    return bool(config is not None and config.extended)


def suite_specs() -> list[dict[str, Any]]:
    """The suite's spec files, parsed, in table order."""
    folder = resources.files("swarmgym.envs")
    return [load_spec(folder.joinpath(name).read_bytes(), name=f"swarmgym/envs/{name}") for name in SUITE_FILES]


def register_suite() -> list[str]:
    """Register every suite id (called on ``import swarmgym``); returns them."""
    ids: list[str] = []
    for spec in suite_specs():
        ids += register_spec(spec)
    return ids
