#!/usr/bin/env bash
# The math reproduction: math_full (RLMEC, SFT, RFT from a policy trained from scratch) and
# the ablations, over seeds, each in its own resumable run directory under runs/repro/;
# then one table over all of them (tools/reproduction_table.py).
#
#   tools/reproduce_math.sh [SEEDS...]        default: 0 1 2
#   VARIANTS="no_regularization teacher_only" tools/reproduce_math.sh 0
#
# Rerunning resumes: finished stages are reused, so an interrupted reproduction continues.
set -euo pipefail
cd "$(dirname "$0")/.."
RLMEC=${RLMEC:-target/release/rlmec}
SEEDS=${*:-0 1 2}
VARIANTS=${VARIANTS-no_regularization no_min_edit sequence_reward teacher_only verified_fixes}
for seed in $SEEDS; do
    base=runs/repro/math_full-seed$seed
    "$RLMEC" -q scripts/math_full.rhai --seed "$seed" --out "$base"
    for v in $VARIANTS; do
        # The ablations start from the same from-scratch policy as math_full of this seed.
        "$RLMEC" -q "scripts/variants/$v.rhai" --set kind=math --set policy="$base/pretrain" \
            --seed "$seed" --out "runs/repro/$v-seed$seed"
    done
done
python3 tools/reproduction_table.py runs/repro
