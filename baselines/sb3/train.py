"""Train the stable-baselines3 baselines on swarmgym.

    python baselines/sb3/train.py --config baselines/sb3/configs/maskable_ppo_parl.toml
    python baselines/sb3/train.py --config baselines/sb3/configs/ppo_flat.toml --env-id LayeredDAG-flat-v0 --seeds 0

Each seed trains one run into ``<out>/<config>/<env>/seed<k>/`` (``model.zip``, TensorBoard
logs under ``tb/``), then evaluates it on held-out seeds with the metrics recorder and
writes ``eval.md`` / ``eval.csv`` there. ``runs/`` is git-ignored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sb3_baselines as B  # noqa: E402

from swarmgym.evaluation import EvalResult, table_rows, to_csv, to_markdown  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="a TOML file in baselines/sb3/configs/")
    p.add_argument("--env-id", default=None, help="override the config's env id")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the config's seeds")
    p.add_argument("--total-timesteps", type=int, default=None, help="override the config's training length")
    p.add_argument("--out", default="runs/sb3", help="output folder (default runs/sb3)")
    p.add_argument("--verbose", type=int, default=0)
    args = p.parse_args(argv)
    cfg = B.load_config(args.config, env_id=args.env_id, seeds=args.seeds, total_timesteps=args.total_timesteps)
    name = Path(args.config).stem
    for seed in cfg["seeds"]:
        run_dir = Path(args.out) / name / cfg["env_id"].replace("/", "_") / f"seed{seed}"
        print(f"training {name} on {cfg['env_id']} seed {seed} for {cfg['total_timesteps']} steps -> {run_dir}", flush=True)
        model = B.train(cfg, seed, run_dir, verbose=args.verbose)
        if cfg["eval_episodes"]:
            policy = B.SB3Orchestrator(model, f"{name}/seed{seed}")
            rec = B.evaluate_policy(policy, cfg["env_id"], cfg["eval_episodes"], cfg["eval_seed_offset"], env_kwargs=cfg["env_kwargs"])
            rows = table_rows([EvalResult(cfg["env_id"], policy.name, rec, 0.0)])
            command = f"python baselines/sb3/train.py {' '.join(argv if argv is not None else sys.argv[1:])}"
            md = to_markdown(rows, title=f"{name} seed {seed}: held-out evaluation", command=command)
            (run_dir / "eval.md").write_text(md)
            (run_dir / "eval.csv").write_text(to_csv(rows))
            print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
