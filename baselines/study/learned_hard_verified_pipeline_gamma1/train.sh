#!/usr/bin/env bash
# VerifiedPipelineHard-v0, the four-leg recipe of learned_hard_verified_pipeline_long/_leg2/_leg3/_leg4
# with one change: the discount is off (gamma = 1) in every leg, the rule clone's value fit included.
# Same training seeds (S, 100 + S, 200 + S, 300 + S), same steps (2,703,360 per leg, 10,813,440 in all).
# Usage: train.sh SEED   (0, 1 or 2); writes runs/vph-g1-legL-seedS for L = 1..4.
# An interrupted leg is resumed by running the script again: a finished leg (its "done" marker) is
# skipped, one with a checkpoint is continued with `swarmgym train --resume`, the rest start afresh.
set -euo pipefail
# Another family's copy of the recipe sets RECIPE_ENV (the env id), RECIPE_RUNS (the run folders' prefix) and
# RECIPE_HERE (the folder of its committed checkpoints) and runs this script (learned_hard_deep_research_gamma1).
S=${1:?usage: train.sh SEED}
ENV=${RECIPE_ENV:-swarmgym/VerifiedPipelineHard-v0}
RUNS=${RECIPE_RUNS:-vph-g1}
HERE=${RECIPE_HERE:-$(dirname "$0")}
# What is committed beside this script fills run folders that are not here yet, so that a run carried over
# from another machine goes on: checkpoints/legL-seedS.pt (a leg's checkpoint) and legL-seedS.done (it finished).
for L in 1 2 3 4; do
  dir=runs/$RUNS-leg$L-seed$S
  saved=$HERE/checkpoints/leg$L-seed$S
  if [[ ! -e $dir && ( -f $saved.pt || -f $saved.done ) ]]; then
    mkdir -p "$dir"
    if [[ -f $saved.pt ]]; then cp "$saved.pt" "$dir/checkpoint.pt"; fi
    if [[ -f $saved.done ]]; then touch "$dir/done"; fi
  fi
done
COMMON=(--env-id "$ENV" --engine batched --total-steps 2703360 --threads 1 --no-progress --eval-seeds 200 --set gamma=1.0)
leg() {  # leg L: train, then mark done
  local L=$1; shift
  local dir=runs/$RUNS-leg$L-seed$S
  if [[ -f $dir/done ]]; then return 0; fi
  if [[ -f $dir/checkpoint.pt ]]; then
    swarmgym train --resume "$dir" --threads 1 --no-progress --eval-seeds 200
  else
    swarmgym train "${COMMON[@]}" --run-dir "$dir" "$@"
  fi
  touch "$dir/done"
}
leg 1 --model small --seed "$S" \
  --warm-start "verifying_scheduler:verify=never,target_ticks=16,public=$ENV" --set warm_start_epochs=30 \
  --set warm_start_steps=512 --set warm_start_value_coef=0.5
leg 2 --init-from runs/$RUNS-leg1-seed$S --seed 10$S
leg 3 --init-from runs/$RUNS-leg2-seed$S --seed 20$S
leg 4 --init-from runs/$RUNS-leg3-seed$S --seed 30$S
