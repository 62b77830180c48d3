#!/usr/bin/env bash
# DeepResearchHard-v0: the four-leg gamma-1 recipe of learned_hard_verified_pipeline_gamma1/train.sh, from the tuned
# rule's clone (learned_hard_deep_research_long's start), on this env. Same seeds, steps and settings.
# Usage: train.sh SEED   (0, 1 or 2); writes runs/drh-g1-legL-seedS for L = 1..4; run again, it resumes.
set -euo pipefail
HERE=$(dirname "$0")
RECIPE_ENV=swarmgym/DeepResearchHard-v0 RECIPE_RUNS=drh-g1 RECIPE_HERE=$HERE \
  exec bash "$HERE/../learned_hard_verified_pipeline_gamma1/train.sh" "$@"
