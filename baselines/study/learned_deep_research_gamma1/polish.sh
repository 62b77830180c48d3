#!/usr/bin/env bash
# DeepResearch-v0: the fifth, polishing leg of learned_hard_verified_pipeline_gamma1/polish.sh (learning rate 1e-4
# annealed, 128 envs, entropy 0.005, PARL's terms off, gamma = 1, 5,406,720 steps, seed 400 + S) after train.sh's
# four legs. Fixed before it ran.
# Usage: polish.sh SEED   (0, 1 or 2); needs runs/dr-g1-leg4-seedS; writes runs/dr-g1-leg5-seedS; run again, it resumes.
set -euo pipefail
HERE=$(dirname "$0")
RECIPE_ENV=swarmgym/DeepResearch-v0 RECIPE_RUNS=dr-g1 RECIPE_HERE=$HERE \
  exec bash "$HERE/../learned_hard_verified_pipeline_gamma1/polish.sh" "$@"
