#!/usr/bin/env bash
# VerifiedPipelineHard-v0: a fifth, polishing leg after train.sh's four, with the settings of LayeredDAGHard-v0's
# seventh leg (learned_hard_layered_dag_gamma1): peak learning rate 1e-4 annealed to 0, 128 envs, entropy bonus
# 0.005, PARL's terms off, gamma = 1; 5,406,720 steps; training seed 400 + S. Fixed before it ran.
# Usage: polish.sh SEED   (0, 1 or 2); needs runs/vph-g1-leg4-seedS (train.sh S); writes runs/vph-g1-leg5-seedS.
# An interrupted leg is resumed by running the script again; a finished one (its "done" marker) is skipped.
set -euo pipefail
# Another family's copy sets RECIPE_ENV, RECIPE_RUNS and RECIPE_HERE, as for train.sh (learned_hard_deep_research_gamma1).
S=${1:?usage: polish.sh SEED}
ENV=${RECIPE_ENV:-swarmgym/VerifiedPipelineHard-v0}
RUNS=${RECIPE_RUNS:-vph-g1}
HERE=${RECIPE_HERE:-$(dirname "$0")}
dir=runs/$RUNS-leg5-seed$S
saved=$HERE/checkpoints/leg5-seed$S
start=runs/$RUNS-leg4-seed$S
if [[ ! -e $start && -f $HERE/checkpoints/leg4-seed$S.pt ]]; then  # with its marker, so train.sh skips it too
  mkdir -p "$start" && cp "$HERE/checkpoints/leg4-seed$S.pt" "$start/checkpoint.pt"
  if [[ -f $HERE/checkpoints/leg4-seed$S.done ]]; then touch "$start/done"; fi
fi
if [[ ! -e $dir && -f $saved.done ]]; then  # finished elsewhere: its committed network and marker
  mkdir -p "$dir" && cp "$saved.pt" "$dir/checkpoint.pt" && touch "$dir/done"
fi
if [[ -f $dir/done ]]; then exit 0; fi
if [[ -f $dir/checkpoint.pt ]]; then
  swarmgym train --resume "$dir" --threads 1 --no-progress --eval-seeds 200
else
  swarmgym train --env-id "$ENV" --engine batched --init-from "$start" \
    --total-steps 5406720 --seed 40$S --threads 1 --no-progress --eval-seeds 200 --no-parl --num-envs 128 \
    --set learning_rate=0.0001 --set ent_coef=0.005 --set gamma=1.0 --run-dir "$dir"
fi
touch "$dir/done"
