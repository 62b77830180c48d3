"""``swarmgym evaluate``: tables over orchestrators x ids x seeds, Markdown and CSV."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from swarmgym.cli import main as swarmgym_main
from swarmgym.evaluation import cli_main, evaluate, run_episodes, table_rows, to_csv, to_markdown
from swarmgym.metrics import RECORDED
from swarmgym.orchestrators import load_orchestrator


def test_cli__writes_markdown_and_csv_with_per_family_rows(tmp_path, capsys):
    argv = ["-o", "critical_path", "sequential_crew", "--ids", "Mixed-v0", "WideSearch-v0", "-n", "12", "--out", str(tmp_path), "--quiet"]
    assert swarmgym_main(["evaluate", *argv]) == 0
    printed = capsys.readouterr().out
    md = (tmp_path / "table.md").read_text()
    assert md in printed or md.strip() in printed
    assert "swarmgym evaluate " + " ".join(argv[:-3]) in md  # the exact command is recorded
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
        for name in RECORDED:
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
