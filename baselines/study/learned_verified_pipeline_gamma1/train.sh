#!/usr/bin/env bash
# VerifiedPipeline-v0: the four-leg gamma-1 recipe of learned_hard_verified_pipeline_gamma1/train.sh, from the clone of the
# best hand-coded rule (verifying_scheduler:verify=never,target_ticks=16), on this env. Same seeds, steps and settings.
# Usage: train.sh SEED   (0, 1 or 2); writes runs/vp-g1-legL-seedS for L = 1..4; run again, it resumes.
set -euo pipefail
HERE=$(dirname "$0")
RECIPE_ENV=swarmgym/VerifiedPipeline-v0 RECIPE_RUNS=vp-g1 RECIPE_HERE=$HERE \
  exec bash "$HERE/../learned_hard_verified_pipeline_gamma1/train.sh" "$@"
