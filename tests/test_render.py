"""render_mode="rgb_array": the Gantt chart, its effect on dynamics (none), RecordVideo, headless Agg."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import swarmgym  # noqa: F401  (registers the suite)
from swarmgym.evaluation import dict_observation
from swarmgym.orchestrators import load_orchestrator
from swarmgym.viewer import COLOURS, GanttViewer, critical_path

DICT_IDS = [i for i in swarmgym.SUITE_IDS if "-flat-" not in i]


def rollout(env, orchestrator: str, seed: int, render: bool = False):
    policy = load_orchestrator(orchestrator)
    obs, info = env.reset(seed=seed)
    out, frames = [], [env.render()] if render else []
    while True:
        action = int(policy.act({k: v[None] for k, v in dict_observation(env, obs).items()}, info["action_mask"][None])[0])
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((action, reward, terminated, info["critical_steps"], info["tokens"]))
        if render:
            frames.append(env.render())
        if terminated or truncated:
            return out, frames


def colour(name: str) -> np.ndarray:
    return np.array([int(COLOURS[name][k : k + 2], 16) for k in (1, 3, 5)], dtype=np.uint8)


@pytest.mark.parametrize("env_id", ["swarmgym/WideSearch-v0", "swarmgym/Mixed-flat-v0"])
def test_rgb_array__frames_have_one_shape_and_do_not_change_the_episode(env_id):
    plain, _ = rollout(gym.make(env_id), "critical_path", seed=4)
    drawn, frames = rollout(gym.make(env_id, render_mode="rgb_array"), "critical_path", seed=4, render=True)
    assert plain == drawn
    lanes = gym.make(env_id).unwrapped.config.max_subagents + 1
    shape = frames[0].shape
    assert shape == (*GanttViewer(lanes - 1).size, 3) and shape[0] % 2 == 0 and shape[1] % 2 == 0
    assert all(f.shape == shape and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[-1])


def test_rgb_array__sub_agent_outcomes_and_orchestrator_work_appear_in_their_colours():
    env = gym.make("swarmgym/WideSearch-v0", render_mode="rgb_array")
    for seed in range(20):  # an episode with a failed sub-agent
        _, frames = rollout(env, "delegating_manager", seed=seed, render=True)
        if env.unwrapped.sim.n_failed:
            break
    last = frames[-1][:-75]  # the chart without the legend below it
    present = lambda name: bool((last == colour(name)).all(axis=-1).any())  # noqa: E731
    assert present("ok") and present("fail")
    _, frames = rollout(gym.make("swarmgym/SerialReasoning-v0", render_mode="rgb_array"), "sequential_crew", seed=0, render=True)
    chart = frames[-1][:-75]
    assert (chart == colour("do")).all(axis=-1).any() and not (chart == colour("ok")).all(axis=-1).any()


def test_rgb_array__before_reset_and_after_pickling():
    env = gym.make("swarmgym/WideSearch-v0", render_mode="rgb_array").unwrapped
    blank = env.render()
    assert blank.dtype == np.uint8 and blank.ndim == 3
    env.reset(seed=0)
    env.step(0)
    first = env.render()
    clone = pickle.loads(pickle.dumps(env))  # the figure stays behind; the clone draws its own
    assert np.array_equal(clone.render(), first)


def test_critical_path__follows_the_longest_work_chain():
    # 0 -> 1 (work 5) -> 3, 0 -> 2 (work 1) -> 3
    assert critical_path([1, 5, 1, 2], [[], [0], [0], [1, 2]]) == [0, 1, 3]
    assert critical_path([3], [[]]) == [0]


def test_gantt_viewer__refuses_a_bad_lane_count():
    with pytest.raises(ValueError, match="max_subagents must be an integer >= 0"):
        GanttViewer(-1)


def test_rgb_array__is_drawn_headless_with_agg_and_leaves_pyplot_alone():
    code = textwrap.dedent(
        """
        import sys, gymnasium as gym, swarmgym
        env = gym.make("swarmgym/WideSearch-v0", render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
        viewer = env.unwrapped._viewer
        print(type(viewer._figure.canvas).__name__, frame.shape, "matplotlib.pyplot" in sys.modules)
        """
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    environ["MPLBACKEND"] = "tkagg"  # a GUI backend that cannot start here: must never be touched
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "FigureCanvasAgg" and out.stdout.strip().endswith("False")


def test_record_video__writes_a_playable_video_of_a_wide_search_episode(tmp_path):
    from moviepy import VideoFileClip  # the render extra, also in the test extra

    env = gym.wrappers.RecordVideo(
        gym.make("swarmgym/WideSearch-v0", render_mode="rgb_array"), str(tmp_path / "videos"), episode_trigger=lambda k: k == 0
    )
    steps, _ = rollout(env, "critical_path", seed=0)
    env.close()
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0
    clip = VideoFileClip(str(videos[0]))
    try:
        frames = sum(1 for _ in clip.iter_frames())
        height, width = GanttViewer(env.unwrapped.config.max_subagents).size
        assert clip.size == [width, height] or tuple(clip.size) == (width, height)
        assert frames == len(steps) + 1  # the reset frame and one per step
        assert clip.fps == env.unwrapped.metadata["render_fps"]
    finally:
        clip.close()


def test_docs_render__python_blocks_run(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "render.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "docs/render.md", "exec"), scope)
    assert scope["frame"].shape == (420, 960, 3)
