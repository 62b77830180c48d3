"""Evaluate saved stable-baselines3 checkpoints with the metrics recorder, beside the reference orchestrators.

    python baselines/sb3/evaluate.py runs/sb3/maskable_ppo_parl/swarmgym_WideSearch-v0/seed0 \
        --ids WideSearch-v0 --seeds 500 --reference critical_path random

Every checkpoint (a ``model.zip`` or a run folder) and every reference orchestrator plays
the same held-out episodes (seeds ``--seed-offset ..``); the table is printed and written
as Markdown and CSV (``--out``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sb3_baselines as B  # noqa: E402

from swarmgym.evaluation import evaluate, table_rows, to_csv, to_markdown  # noqa: E402


def _run_name(path: Path) -> str:
    """``runs/sb3/<config>/<env>/seed<k>[/model.zip]`` -> ``<config>/seed<k>``."""
    run = path if path.is_dir() else path.parent
    return f"{run.parent.parent.name}/{run.name}" if len(run.parts) >= 3 else run.name


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="model.zip files or run folders")
    p.add_argument(
        "--ids", nargs="+", required=True, help="env ids (the form the models were trained on: Dict for MaskablePPO, flat for PPO)"
    )
    p.add_argument("--seeds", type=int, default=200, help="episodes per checkpoint and id (default 200)")
    p.add_argument("--seed-offset", type=int, default=100_000, help="first held-out seed (default 100000)")
    p.add_argument("--reference", nargs="*", default=["critical_path", "random"], help="reference orchestrators to add to the table")
    p.add_argument("--out", default="runs/sb3/eval", help="folder for table.md and table.csv")
    args = p.parse_args(argv)
    policies = [B.load_checkpoint(c, name=_run_name(Path(c))) for c in args.checkpoints]
    results = evaluate(policies + list(args.reference), args.ids, args.seeds, seed_offset=args.seed_offset)
    rows = table_rows(results)
    md = to_markdown(rows, title="SB3 checkpoints, held-out evaluation", command="python baselines/sb3/evaluate.py " + shlex.join(argv))
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(md)
    (out / "table.csv").write_text(to_csv(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
