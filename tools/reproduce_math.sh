#!/usr/bin/env bash
# The math reproduction: math_full (RLMEC, SFT, RFT from a policy trained from scratch) and
# the ablations, over seeds, each in its own resumable run directory under runs/repro/;
# then one table over all of them (tools/reproduction_table.py).
#
#   tools/reproduce_math.sh [SEEDS...]                 default: 0 1 2
#   VARIANTS="no_regularization teacher_only" tools/reproduce_math.sh 0
#   N_TRAIN=2000 tools/reproduce_math.sh               a larger budget: RL problems
#
# With N_TRAIN, math_full of each seed runs first at the default budget (it trains the
# from-scratch policy), then again from that policy with N_TRAIN problems in
# runs/repro/math_full-n<N_TRAIN>-seed<N>, and the ablations run at that budget.
# An ablation reuses (--reuse) the stages of its math_full run that it shares: the samples,
# the teacher's edits, the GRM, ... whatever its one change does not touch.
# Rerunning resumes: finished stages are reused, so an interrupted reproduction continues.
set -euo pipefail
cd "$(dirname "$0")/.."
RLMEC=${RLMEC:-target/release/rlmec}
SEEDS=${*:-0 1 2}
VARIANTS=${VARIANTS-no_regularization no_min_edit sequence_reward teacher_only verified_fixes wide_blame}
for seed in $SEEDS; do
    scratch=runs/repro/math_full-seed$seed
    "$RLMEC" -q scripts/math_full.rhai --seed "$seed" --out "$scratch"
    if [[ -n ${N_TRAIN:-} ]]; then
        # From the same from-scratch policy, as a given model.
        budget=(--set policy="$scratch/pretrain" --set n_train="$N_TRAIN")
        base=runs/repro/math_full-n$N_TRAIN-seed$seed
        name=-n$N_TRAIN
        "$RLMEC" -q scripts/math_full.rhai --seed "$seed" "${budget[@]}" --out "$base"
    else
        # The variant trains the same from-scratch policy: reused from math_full.
        budget=()
        base=$scratch
        name=
    fi
    for v in $VARIANTS; do
        "$RLMEC" -q "scripts/variants/$v.rhai" --set kind=math ${budget[@]+"${budget[@]}"} \
            --seed "$seed" --reuse "$base" --out "runs/repro/$v$name-seed$seed"
    done
done
python3 tools/reproduction_table.py runs/repro
