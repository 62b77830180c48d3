"""``swarmgym evaluate``: tables over orchestrators x ids x seeds, Markdown and CSV."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from swarmgym.cli import main as swarmgym_main
from swarmgym.evaluation import cli_main, evaluate, run_episodes, table_rows, to_csv, to_markdown
from swarmgym.metrics import MECHANICS_RECORDED, RECORDED
from swarmgym.orchestrators import load_orchestrator


def test_cli__writes_markdown_and_csv_with_per_family_rows(tmp_path, capsys):
    argv = ["-o", "critical_path", "sequential_crew", "--ids", "Mixed-v0", "WideSearch-v0", "-n", "12", "--out", str(tmp_path), "--quiet"]
    assert swarmgym_main(["evaluate", *argv]) == 0
    printed = capsys.readouterr().out
    md = (tmp_path / "table.md").read_text()
    assert "Mixed-v0 / all (12 episodes)" in printed and "| Mixed-v0 |" not in printed  # the compact table
    assert max(len(line) for line in printed.splitlines()) <= 100
    assert "swarmgym evaluate " + " ".join(argv[:-3]) in md  # the exact command is recorded
    assert swarmgym_main(["evaluate", *argv, "--full", "--no-write"]) == 0
    full = capsys.readouterr().out  # --full prints the Markdown table
    assert [line for line in full.splitlines() if line.startswith("|")] == [line for line in md.splitlines() if line.startswith("|")]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "table.csv").read_text())))
    mixed = [r for r in rows if r["env_id"] == "swarmgym/Mixed-v0"]
    families = {r["family"] for r in mixed}
    assert "all" in families and len(families) >= 3
    # per family, the orchestrators side by side, and the family rows add up to the 'all' row
    for orch in ("critical_path", "sequential_crew"):
        per = [r for r in mixed if r["orchestrator"] == orch]
        assert sum(int(r["episodes"]) for r in per if r["family"] != "all") == 12
        assert [int(r["episodes"]) for r in per if r["family"] == "all"] == [12]
    wide = [r for r in rows if r["env_id"] == "swarmgym/WideSearch-v0"]
    assert [r["family"] for r in wide] == ["WideSearch", "WideSearch"]
    for r in rows:
        assert not any(name in r for name in ("targets_wrong_mean", "verification_rate_mean"))  # no id with the mechanics
        for name in (n for n in RECORDED if n not in MECHANICS_RECORDED):
            lo, mean, hi = float(r[f"{name}_ci_low"]), float(r[f"{name}_mean"]), float(r[f"{name}_ci_high"])
            assert lo <= mean <= hi or np.isnan(lo)
    assert abs(sum(float(wide[0][f"profile_{k}"]) for k in range(9)) - 1.0) < 1e-6


def test_evaluate__every_orchestrator_meets_the_same_instances():
    """Sequential crew and static fan-out both do a chain themselves: identical episodes."""
    results = evaluate(["sequential_crew", "static_fanout"], ["SerialReasoning-v0"], 10)
    a, b = (r.recorder for r in results)
    np.testing.assert_array_equal(a.values("critical_steps"), b.values("critical_steps"))
    np.testing.assert_array_equal(a.values("tokens"), b.values("tokens"))
    # a different seed offset draws other instances
    c = evaluate(["sequential_crew"], ["SerialReasoning-v0"], 10, seed_offset=50)[0].recorder
    assert not np.array_equal(a.values("critical_steps"), c.values("critical_steps"))


def test_evaluate__flat_ids_and_batch_size_do_not_change_results():
    policy = load_orchestrator("critical_path")
    ref = run_episodes(policy, "swarmgym/DependentChains-v0", 9, batch=4)
    flat = run_episodes(policy, "swarmgym/DependentChains-flat-v0", 9, batch=9)
    one = run_episodes(policy, "swarmgym/DependentChains-v0", 9, batch=1)
    for rec in (flat, one):
        for name in ("critical_steps", "score", "tokens", "n_spawned"):
            np.testing.assert_array_equal(np.sort(ref.values(name)), np.sort(rec.values(name)))


def test_table__markdown_has_one_row_per_id_family_orchestrator():
    results = evaluate(["random", "critical_path"], ["LayeredDAG-v0"], 5)
    rows = table_rows(results)
    md = to_markdown(rows, title="t", command="cmd")
    lines = [line for line in md.splitlines() if line.startswith("| LayeredDAG-v0")]
    assert len(lines) == 2 and "± " in lines[0]
    assert to_csv(rows).count("\n") == 3


def test_cli__rejects_bad_input(capsys):
    assert cli_main(["--ids", "NoSuchEnv-v0", "-n", "2", "--no-write"]) == 2
    assert "unknown env id" in capsys.readouterr().err
    assert cli_main(["-o", "oracle", "-n", "2", "--no-write"]) == 2
    assert cli_main(["-n", "0", "--no-write"]) == 2
    assert cli_main(["-o", "moe:no/such/run", "-n", "2", "--no-write"]) == 2
    assert cli_main(["-o", "sb3:no/such/model.zip", "-n", "2", "--no-write"]) == 2
    assert "no SB3 model" in capsys.readouterr().err
    with pytest.raises(ValueError, match="n_episodes"):
        run_episodes(load_orchestrator("random"), "swarmgym/WideSearch-v0", 0)


# ---------------------------------------------------------------- learned policies: greedy and sampled
def _tiny_policy(**kw):
    import torch

    from swarmgym.moe.model import ModelConfig, OrchestratorNet
    from swarmgym.moe.policy import MoEOrchestrator

    torch.manual_seed(0)
    net = OrchestratorNet(ModelConfig(d_model=16, n_heads=2, n_layers=1, n_experts=4, top_k=2, expert_hidden=16))
    return MoEOrchestrator(net, name="moe:tiny", **kw)


def test_policy_variants__learned_twice_labelled_hand_coded_once():
    from swarmgym.evaluation import policy_variants

    policy = _tiny_policy()
    greedy, sampled = policy_variants(policy, "both", sample_seed=7)
    assert (greedy.name, greedy.deterministic) == ("moe:tiny (greedy)", True)
    assert (sampled.name, sampled.deterministic, sampled.seed) == ("moe:tiny (sampled)", False, 7)
    assert policy.name == "moe:tiny" and policy.deterministic  # the original is unchanged
    assert [p.name for p in policy_variants(policy, "sampled")] == ["moe:tiny (sampled)"]
    crew = load_orchestrator("sequential_crew")
    assert policy_variants(crew, "both") == [crew]
    with pytest.raises(ValueError, match="policy_mode"):
        policy_variants(policy, "argmax")


def test_evaluate__sampled_mode_is_seeded_and_differs_from_greedy():
    def run(seed):
        results = evaluate([_tiny_policy()], ["WideSearch-v0"], 12, policy_mode="both", sample_seed=seed)
        assert [r.orchestrator for r in results] == ["moe:tiny (greedy)", "moe:tiny (sampled)"]
        return {r.orchestrator: r.recorder for r in results}

    a, b, c = run(0), run(0), run(1)
    for name in ("critical_steps", "score", "n_spawned", "tokens"):
        for key in a:
            np.testing.assert_array_equal(a[key].values(name), b[key].values(name))  # same seed, same numbers
        np.testing.assert_array_equal(a["moe:tiny (greedy)"].values(name), c["moe:tiny (greedy)"].values(name))
    assert not np.array_equal(a["moe:tiny (sampled)"].values("tokens"), c["moe:tiny (sampled)"].values("tokens"))
    assert not np.array_equal(a["moe:tiny (sampled)"].values("tokens"), a["moe:tiny (greedy)"].values("tokens"))


def test_evaluate_cli__policy_mode_rows(tmp_path, capsys):
    from swarmgym.moe.ppo import PPOConfig, PPOTrainer

    run = tmp_path / "run"
    cfg = PPOConfig(
        env_id="swarmgym/WideSearch-v0",
        engine="gym",
        num_envs=2,
        num_steps=8,
        total_steps=16,
        progress=False,
        tensorboard=False,
        model=dict(d_model=16, n_heads=2, n_layers=1, n_experts=4, top_k=2, expert_hidden=16),
    )
    PPOTrainer(cfg, run_dir=run).save(run / "checkpoint.pt")
    base = ["-o", f"moe:{run}", "critical_path", "--ids", "WideSearch-v0", "-n", "4", "--out", str(tmp_path / "out"), "--quiet"]
    for mode, labels in (
        ("greedy", ["moe:run (greedy)"]),
        ("sampled", ["moe:run (sampled)"]),
        ("both", ["moe:run (greedy)", "moe:run (sampled)"]),
    ):
        assert cli_main([*base, "--policy-mode", mode]) == 0
        rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "table.csv").read_text())))
        assert [r["orchestrator"] for r in rows] == [*labels, "critical_path"]
    capsys.readouterr()


def test_moe_policy__acts_on_one_thread_and_restores_the_callers_setting():
    import torch

    policy = _tiny_policy()
    seen = []
    policy.model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        nodes = np.zeros((1, 32, 20), dtype=np.float32)
        nodes[0, :4, 0] = 1.0
        mask = np.zeros((1, 66), dtype=bool)
        mask[0, -1] = True
        policy.act({"nodes": nodes, "globals": np.zeros((1, 10), np.float32)}, mask)
        assert seen == [1] and torch.get_num_threads() == 2
        policy.threads = None
        policy.act({"nodes": nodes, "globals": np.zeros((1, 10), np.float32)}, mask)
        assert seen == [1, 2]
    finally:
        torch.set_num_threads(before)


def test_to_terminal__at_most_100_columns_with_the_mode_kept():
    from swarmgym.evaluation import to_terminal

    results = evaluate(["critical_path", "sequential_crew"], ["Mixed-v0"], 6)
    results[0].orchestrator = "moe:runs/a-very-long-run-folder-name-that-would-wrap-the-terminal-table (sampled)"
    text = to_terminal(table_rows(results))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "Mixed-v0 / all (6 episodes)" in text
    for header in ("orchestrator", "score", "crit.", "speedup", "collapse", "spurious", "tok(k)", "m$"):
        assert header in lines[0]
    long = [line for line in lines if "moe:runs" in line]
    assert long and all("… " not in line and "(sampled)" in line for line in long)


def test_evaluate__sb3_policies_sampled_are_seeded():
    pytest.importorskip("sb3_contrib")
    import gymnasium as gym
    from sb3_contrib import MaskablePPO

    from swarmgym.orchestrators import SB3Policy

    model = MaskablePPO("MultiInputPolicy", gym.make("swarmgym/WideSearch-v0"), seed=0, device="cpu")
    policy = SB3Policy(model, "sb3:untrained")

    def run(seed):
        return {r.orchestrator: r.recorder for r in evaluate([policy], ["WideSearch-v0"], 8, policy_mode="both", sample_seed=seed)}

    a, b = run(3), run(3)
    assert list(a) == ["sb3:untrained (greedy)", "sb3:untrained (sampled)"]
    for key in a:
        np.testing.assert_array_equal(a[key].values("tokens"), b[key].values("tokens"))
    assert not np.array_equal(a["sb3:untrained (greedy)"].values("tokens"), a["sb3:untrained (sampled)"].values("tokens"))
    assert policy.deterministic and policy.name == "sb3:untrained"


class _AlwaysWait:
    """Takes ``wait`` at every step: masked out while no sub-agent runs, so it never spawns one."""

    name = "always_wait"

    def act(self, obs, mask):
        return np.full(len(mask), np.shape(mask)[1] - 2, dtype=np.int64)


def test_run_episodes__invalid_action_answer_ends_the_episode_a_masked_out_action_would_stall():
    stalled = run_episodes(_AlwaysWait(), "swarmgym/WideSearch-flat-v0", 6)
    np.testing.assert_array_equal(stalled.values("budget_exhausted"), np.ones(6))  # waste_tick: a no-op per step, to the budget
    ended = run_episodes(_AlwaysWait(), "swarmgym/WideSearch-flat-v0", 6, env_kwargs={"invalid_action": "answer"})
    np.testing.assert_array_equal(ended.values("budget_exhausted"), np.zeros(6))
    np.testing.assert_array_equal(ended.values("critical_steps"), np.zeros(6))  # the first (masked-out) action submitted at t = 0


def test_cli__invalid_action_option_reaches_every_env(monkeypatch, capsys):
    seen = []

    def fake_evaluate(policies, ids, n, **kwargs):
        seen.append(kwargs["env_kwargs"])
        return []

    monkeypatch.setattr("swarmgym.evaluation.evaluate", fake_evaluate)
    assert cli_main(["-o", "random", "--ids", "WideSearch-flat-v0", "-n", "2", "--no-write", "--quiet", "--invalid-action", "answer"]) == 0
    assert cli_main(["-o", "random", "--ids", "WideSearch-flat-v0", "-n", "2", "--no-write", "--quiet"]) == 0
    assert seen == [{"invalid_action": "answer"}, None]
    with pytest.raises(SystemExit) as exc:
        cli_main(["-o", "random", "--invalid-action", "skip"])
    assert exc.value.code == 2 and "--invalid-action: invalid choice: 'skip'" in capsys.readouterr().err


def test_sb3_policy__acts_on_one_torch_thread_and_restores_the_setting():
    pytest.importorskip("sb3_contrib")
    import gymnasium as gym
    import torch
    from sb3_contrib import MaskablePPO

    from swarmgym.orchestrators import SB3Policy

    env = gym.make("swarmgym/WideSearch-v0")
    model = MaskablePPO("MultiInputPolicy", env, seed=0, device="cpu")
    seen = []
    predict = model.predict

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return predict(*args, **kwargs)

    model.predict = spy
    obs, info = env.reset(seed=0)
    batch = {k: v[None] for k, v in obs.items()}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        SB3Policy(model).act(batch, info["action_mask"][None])
        assert seen == [1] and torch.get_num_threads() == 2
        SB3Policy(model, threads=None).act(batch, info["action_mask"][None])
        assert seen == [1, 2]
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be None or an integer >= 1, got 0"):
        SB3Policy(model, threads=0)


def test_table__mechanics_columns_only_where_an_id_uses_the_mechanics():
    """The mechanics' quantities (checks, tiers, coordination, wrong and missing targets) are
    columns of the Markdown and CSV tables when an id has the mechanics; a base id's row shows '-'
    (Markdown) or empty cells (CSV), and a table of base ids alone has no such columns."""
    results = evaluate(["verifying_scheduler:verify=always"], ["DeepResearch-v0", "WideSearch-v0"], 4)
    assert [r.tiers for r in results] == [2, 0]
    rows = table_rows(results)
    md = to_markdown(rows)
    header = next(line for line in md.splitlines() if line.startswith("| env"))
    for h in ("targets wrong", "targets missing", "verified share", "caught / verify", "coordination tokens (k)", "cost tier 1 (m$)"):
        assert f"| {h} |" in header
    assert "tier 2" not in header  # the ids have two tiers
    deep = next(line for line in md.splitlines() if line.startswith("| DeepResearch-v0"))
    wide = next(line for line in md.splitlines() if line.startswith("| WideSearch-v0"))
    n_columns = header.count("|")
    assert deep.count("|") == wide.count("|") == n_columns
    assert wide.rstrip(" |").split(" | ")[-9:] == ["-"] * 9
    rec = results[0].recorder
    verified = rec.values("verification_rate")
    assert verified.mean() > 0  # verify=always checks the sub-agents' results
    assert f"{verified.mean():.2f}" in deep.split(" | ")[header.split(" | ").index("verified share")]
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    for name in MECHANICS_RECORDED:
        assert float(table[0][f"{name}_mean"]) == pytest.approx(rec.values(name).mean(), rel=1e-5, abs=1e-9)
        assert table[1][f"{name}_mean"] == ""
    base_only = table_rows(evaluate(["critical_path"], ["WideSearch-v0"], 2))
    assert "targets wrong" not in to_markdown(base_only)
    assert not any(f"{name}_mean" in to_csv(base_only).splitlines()[0].split(",") for name in MECHANICS_RECORDED)
