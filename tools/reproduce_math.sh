#!/usr/bin/env bash
# The math reproduction: math_full (RLMEC, SFT, RFT from a policy trained from scratch) and
# the ablations, over seeds, each in its own resumable run directory under runs/repro/;
# then one table over all of them (tools/reproduction_table.py).
#
#   tools/reproduce_math.sh [SEEDS...]                 default: 0 1 2
#   VARIANTS="no_regularization teacher_only" tools/reproduce_math.sh 0
#   N_TRAIN=2000 tools/reproduce_math.sh               a larger budget: RL problems
#   TAG=p2000 SET="synthetic.n_pretrain=2000 n_train=2000 rl.lr=3e-4 baseline.lr=3e-4" \
#       tools/reproduce_math.sh                         another test bed, runs named -p2000
#   TAG=p2000g REUSE=p2000 SET="… grm_train.epochs=1" tools/reproduce_math.sh
#                                                       the same bed changed: math_full takes
#                                                       the stages it shares with -p2000's
#
# With N_TRAIN, math_full of each seed runs first at the default budget (it trains the
# from-scratch policy), then again from that policy with N_TRAIN problems in
# runs/repro/math_full-n<N_TRAIN>-seed<N>, and the ablations run at that budget.
# With SET (`--set` knobs, space-separated) math_full and the ablations run with those knobs
# in runs/repro/<script>-<TAG>-seed<N>, their own from-scratch policy included.
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
    if [[ -n ${SET:-} ]]; then
        # Another test bed: its own from-scratch policy, trained by its math_full.
        budget=()
        for knob in $SET; do budget+=(--set "$knob"); done
        name=-${TAG:?TAG names the runs made with SET}
        base=runs/repro/math_full$name-seed$seed
    elif [[ -n ${N_TRAIN:-} ]]; then
        # From the default budget's from-scratch policy, as a given model.
        "$RLMEC" -q scripts/math_full.rhai --seed "$seed" --out "$scratch"
        budget=(--set policy="$scratch/pretrain" --set n_train="$N_TRAIN")
        name=-n$N_TRAIN
        base=runs/repro/math_full$name-seed$seed
    else
        # The variants train the same from-scratch policy: reused from math_full.
        budget=()
        name=
        base=$scratch
    fi
    reuse=()
    if [[ -n ${REUSE:-} ]]; then reuse=(--reuse "runs/repro/math_full-$REUSE-seed$seed"); fi
    "$RLMEC" -q scripts/math_full.rhai --seed "$seed" ${budget[@]+"${budget[@]}"} \
        ${reuse[@]+"${reuse[@]}"} --out "$base"
    for v in $VARIANTS; do
        "$RLMEC" -q "scripts/variants/$v.rhai" --set kind=math ${budget[@]+"${budget[@]}"} \
            --seed "$seed" --reuse "$base" --out "runs/repro/$v$name-seed$seed"
    done
done
python3 tools/reproduction_table.py runs/repro
