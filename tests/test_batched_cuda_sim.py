"""The CUDA kernel, run by numba's CUDA simulator (no GPU needed): bit for bit the CPU kernel's
and the reference's. The simulator must be switched on before numba.cuda is imported, so each
check runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np, torch
    from swarmgym.batched import BatchedSwarmEngine
    from swarmgym.testing import check_batched

    kwargs = dict(generator={generator!r}, config={config!r}, num_envs=3, bank_size=5, seed=2, max_episode_steps={max_steps}, with_adjacency={adjacency})
    cpu = BatchedSwarmEngine(**kwargs)
    sim = BatchedSwarmEngine(**kwargs, kernel="cuda")
    assert sim.kernel == "cuda" and cpu.kernel == "cpu"
    gen = torch.Generator().manual_seed(0)
    for engine in (cpu, sim):
        engine.reset(seed=1)
    episodes = 0
    for step in range({steps}):
        assert torch.equal(cpu.action_mask, sim.action_mask), step
        actions = (torch.rand(cpu.action_mask.shape, generator=gen) * cpu.action_mask).argmax(1)
        if step % 7 == 3:
            actions[0] = (actions[0] + 1) % cpu.layout.n  # now and then an invalid action
        a, b = cpu.step(actions, final_obs=True), sim.step(actions, final_obs=True)
        for x, y in zip((*a[0].values(), a[1], a[2]), (*b[0].values(), b[1], b[2])):
            assert torch.equal(x, y), step
        for key in ("done_mask", "truncated", "final_mask"):
            assert torch.equal(a[3][key], b[3][key]), (step, key)
        done = a[3]["done_mask"]
        episodes += int(done.sum())
        for key, value in a[3]["metrics"].items():
            assert torch.equal(value[done], b[3]["metrics"][key][done]), (step, key)
        for key, value in a[3]["final_obs"].items():
            assert torch.equal(value[done], b[3]["final_obs"][key][done]), (step, key)
    assert episodes >= 3, episodes
    state = sim.state_dict()
    twin = BatchedSwarmEngine(**cpu.spec)
    twin.load_state_dict(state)
    assert torch.equal(twin.observation()["nodes"], sim.observation()["nodes"])
    # the simulated CUDA kernel against the reference, across autoresets
    factory = lambda n: BatchedSwarmEngine({generator!r}, config={config!r}, num_envs=n, bank_size=max(2, n), kernel="cuda", with_adjacency={adjacency})
    check_batched("swarmgym/{family}-v0", num_envs=2, max_examples=2, episodes=2, engine_factory=factory, config={config!r}, with_adjacency={adjacency})
    print("ok", episodes)
    """
)


#: Every orchestration mechanic of docs/mechanics.md on (the extended layout, observation and stages).
MECHANICS = {
    "max_subagents": 4,
    "progressive": True,
    "verification": {"base_ticks": 1, "work_percent": 50},
    "tiers": [{"name": "fast", "slowdown_percent": 50, "error_scale": 2.0}, {"name": "careful", "token_percent": 250, "price_scale": 2.0}],
    "hidden_reliability": (0.5, 2.0),
    "coordination": {"turn_input_per_result": 60, "merge_work_per_subagent_input": 1},
    "reliability": {"fail_base": (0.2,) * 4, "wrong_base": (0.4,) * 4},
}


def _run(generator: str, family: str, config: dict, steps: int, max_steps: int | None, with_adjacency: bool) -> str:
    code = SCRIPT.format(generator=generator, family=family, config=config, steps=steps, max_steps=max_steps, adjacency=with_adjacency)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done.stdout


@pytest.mark.parametrize(
    "generator, family, config, max_steps, with_adjacency",
    [
        ("WideSearch", "WideSearch", {"max_subagents": 4, "spawn_ticks": 1}, None, False),
        (
            "Mixed",
            "Mixed",
            {"max_subagents": 3, "max_attempts": 1, "reliability": {"fail_base": (0.5,) * 4, "wrong_base": (0.3,) * 4}},
            9,
            False,
        ),
        # progressive revelation writes the adjacency as it reveals nodes
        ("LayeredDAG", "LayeredDAG", MECHANICS, None, True),
    ],
    ids=["WideSearch", "Mixed", "LayeredDAG-mechanics"],
)
def test_cuda_kernel__under_the_simulator_equals_cpu_kernel_and_reference(generator, family, config, max_steps, with_adjacency):
    assert _run(generator, family, config, steps=40, max_steps=max_steps, with_adjacency=with_adjacency).startswith("ok")


def test_kernel_cuda_on_cpu__needs_the_simulator():
    from swarmgym.batched import BatchedSwarmEngine

    with pytest.raises(ValueError, match="NUMBA_ENABLE_CUDASIM"):
        BatchedSwarmEngine("WideSearch", num_envs=2, bank_size=2, kernel="cuda")
    with pytest.raises(ValueError, match="kernel must be"):
        BatchedSwarmEngine("WideSearch", num_envs=2, bank_size=2, kernel="tpu")
