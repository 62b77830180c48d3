"""Registration of the suite: every spec file in ``envs/`` becomes two env ids.

A spec file is TOML with an ``id`` and the ``kwargs`` of :class:`swarmgym.SwarmEnv`
(plus free-text ``structure`` and ``parallelism`` for the README's table). For each
spec, :func:`register_spec` registers the Dict-observation id and its flat twin
(``swarmgym/X-v0`` and ``swarmgym/X-flat-v0``), both with the batched engine as
``vector_entry_point``. Registration is idempotent.
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym

ENTRY_POINT = "swarmgym.env:SwarmEnv"
VECTOR_ENTRY_POINT = "swarmgym.batched:SwarmVectorEnv"

#: Spec files of the suite, in the order of the README's table.
SUITE_FILES = ("wide_search.toml", "serial_reasoning.toml", "dependent_chains.toml", "layered_dag.toml", "mixed.toml", "workflows.toml")


def flat_id(env_id: str) -> str:
    """``swarmgym/WideSearch-v0`` -> ``swarmgym/WideSearch-flat-v0``."""
    name, sep, version = env_id.rpartition("-v")
    if not sep:
        raise ValueError(f"env id {env_id!r} has no version suffix '-vN'")
    return f"{name}-flat-v{version}"


def load_spec(source: str | Path | bytes) -> dict[str, Any]:
    """Read a spec file (a path, or the TOML text as bytes) and check its keys."""
    data = tomllib.loads(source.decode()) if isinstance(source, bytes) else tomllib.loads(Path(source).read_text())
    if "id" not in data or not isinstance(data["id"], str):
        raise ValueError(f"spec file {source!r}: needs a string 'id'")
    kwargs = data.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"spec file {data['id']}: 'kwargs' must be a table")
    unknown = set(data) - {"id", "kwargs", "structure", "parallelism", "max_episode_steps"}
    if unknown:
        raise ValueError(f"spec file {data['id']}: unknown keys {sorted(unknown)}")
    return data


def register_spec(spec: dict[str, Any] | str | Path, *, flat: bool = True) -> list[str]:
    """Register one spec (a dict as :func:`load_spec` returns, or a path to a TOML file).

    :returns: the ids registered (the Dict form, then the flat form if ``flat``).
    """
    if not isinstance(spec, dict):
        spec = load_spec(spec)
    ids = []
    forms = [(spec["id"], "dict")] + ([(flat_id(spec["id"]), "flat")] if flat else [])
    for env_id, mode in forms:
        kwargs = copy.deepcopy(spec.get("kwargs", {}))
        kwargs["observation_mode"] = mode
        if env_id in gym.registry:
            del gym.registry[env_id]  # idempotent: re-registering replaces the same spec
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


def suite_specs() -> list[dict[str, Any]]:
    """The suite's spec files, parsed, in table order."""
    folder = resources.files("swarmgym.envs")
    return [load_spec(folder.joinpath(name).read_bytes()) for name in SUITE_FILES]


def register_suite() -> list[str]:
    """Register every suite id (called on ``import swarmgym``); returns them."""
    ids: list[str] = []
    for spec in suite_specs():
        ids += register_spec(spec)
    return ids
