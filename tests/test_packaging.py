"""The built wheel carries the suite: installed into a fresh venv, every id can be made."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import swarmgym

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import gymnasium as gym, swarmgym, os, pathlib
assert pathlib.Path(swarmgym.__file__).is_relative_to(os.environ["FRESH_VENV"]), swarmgym.__file__
for env_id in swarmgym.SUITE_IDS:
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs), env_id
import swarmgym.batched, swarmgym.testing, swarmgym.moe  # the subpackages import from the wheel too
print("made", len(swarmgym.SUITE_IDS), "ids from", swarmgym.__file__)
"""


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
def test_wheel__installs_into_a_fresh_venv_and_registers_every_id(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    wheels = list(dist.glob("swarmgym-*.whl"))
    assert len(wheels) == 1
    import zipfile

    names = zipfile.ZipFile(wheels[0]).namelist()
    assert {f"swarmgym/envs/{f}" for f in swarmgym.registration.SUITE_FILES} <= set(names)
    # every module of the source tree is in the wheel (a subpackage missing from pyproject fails here)
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "swarmgym").rglob("*.py")}
    assert sources <= set(names), sorted(sources - set(names))

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheels[0])], check=True, capture_output=True)
    # the dependencies (gymnasium, numpy, torch) come from this test's environment via PYTHONPATH;
    # swarmgym itself only from the wheel (an editable install here is a .pth hook, not read from PYTHONPATH)
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"], FRESH_VENV=str(env_dir.resolve()))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([str(python), "-c", CHECK], cwd=elsewhere, env=env, check=True, capture_output=True, text=True)
    assert f"made {len(swarmgym.SUITE_IDS)} ids" in out.stdout
