#!/usr/bin/env bash
# Train every SB3 baseline config (its seeds, its length) on WideSearch, then evaluate all
# checkpoints with the metrics recorder beside the reference orchestrators on 500 held-out
# seeds. Writes baselines/sb3/results/{dict,flat}.{md,csv}. About 15 minutes on one core.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
for cfg in maskable_ppo maskable_ppo_parl ppo_flat ppo_flat_parl; do
    python baselines/sb3/train.py --config "baselines/sb3/configs/$cfg.toml" --out runs/sb3 > "runs/sb3_$cfg.log"
done
python baselines/sb3/evaluate.py runs/sb3/maskable_ppo/swarmgym_WideSearch-v0/seed{0,1,2} \
    runs/sb3/maskable_ppo_parl/swarmgym_WideSearch-v0/seed{0,1,2} \
    --ids WideSearch-v0 --seeds 500 --reference critical_path static_fanout random --out baselines/sb3/results/dict
python baselines/sb3/evaluate.py runs/sb3/ppo_flat/swarmgym_WideSearch-flat-v0/seed{0,1,2} \
    runs/sb3/ppo_flat_parl/swarmgym_WideSearch-flat-v0/seed{0,1,2} \
    --ids WideSearch-flat-v0 --seeds 500 --reference critical_path static_fanout random --out baselines/sb3/results/flat
