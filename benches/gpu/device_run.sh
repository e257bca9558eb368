#!/usr/bin/env bash
# The one script run on the GPU machine, from the project root, with .gpu/ beside it (built by
# ../shared/gpu/build.sh, plus .gpu/tokenizer.json and .gpu/pylib from make_pylib.sh):
#
#   OUT=/an/empty/folder bash benches/gpu/device_run.sh          # BUDGET_S=450 by default; with the summary, under 8 minutes
#
# Everything goes to $OUT: one log per step, steps.tsv (step, exit code, seconds, limit),
# device_run.log, and summary.json / summary.md (benches/gpu/summarize.py). Every step runs under
# `timeout`, capped by what is left of the overall budget, and a failing step does not stop the
# next. Steps: (a) the GPU and the Python stack; (b) tests/scripts/cuda_checks.rhai; (c)
# scripts/math_full.rhai at a tiny budget; (d) the random SmolLM2-1.7B-shaped llama and its
# workload (peer_gpu.py make); (e) a LoRA step, ours (lora_step.rhai) and transformers + PEFT's
# (peer_lora.py), each with and without gradient checkpointing, each in its own process with
# nvidia-smi sampling the GPU's memory every 200 ms; (f) the summary.
set -u
ROOT=$(pwd)
: "${OUT:?set OUT to an empty folder}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUDGET=${BUDGET_S:-450}
T0=$(date +%s)
STEPS="$OUT/steps.tsv"
printf 'step\trc\tseconds\tlimit\n' > "$STEPS"
MODEL=/tmp/m17
WL=/tmp/wl.json
export PYTHONUNBUFFERED=1

now() { date +%s; }
left() { echo $(( BUDGET - ($(now) - T0) )); }
log() { echo "[$(( $(now) - T0 ))s] $*" | tee -a "$OUT/device_run.log"; }

# guarded NAME LIMIT CMD...: CMD under `timeout` (LIMIT, or what the budget has left), its stdout
# and stderr to $OUT/NAME.log; returns its exit code (124/137: timed out, 125: skipped).
guarded() {
  local name=$1 limit=$2; shift 2
  local l s rc d
  l=$(left)
  if (( l < 20 )); then
    log "SKIP $name: ${l}s of the budget left"
    printf '%s\tskipped\t0\t0\n' "$name" >> "$STEPS"
    return 125
  fi
  (( limit > l - 10 )) && limit=$(( l - 10 ))
  log "START $name (limit ${limit}s)"
  s=$(now)
  timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  d=$(( $(now) - s ))
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$d" "$limit" >> "$STEPS"
  if (( rc == 124 || rc == 137 )); then log "END $name: TIMED OUT after ${d}s"; else log "END $name rc=$rc ${d}s"; fi
  tail -n 3 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/device_run.log"
  return $rc
}

# with_mem NAME LIMIT CMD...: guarded, with the GPU's used memory (MiB) sampled every 200 ms into
# $OUT/mem_NAME.csv; its first line is the reading before the process starts.
with_mem() {
  local name=$1 smi rc
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits > "$OUT/mem_$name.csv" 2>/dev/null
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >> "$OUT/mem_$name.csv" 2>/dev/null &
  smi=$!
  guarded "$@"
  rc=$?
  sleep 0.3
  kill "$smi" 2>/dev/null
  wait "$smi" 2>/dev/null
  (( rc == 125 )) && rm -f "$OUT/mem_$name.csv"   # skipped: no process to measure
  return $rc
}

log "device_run in $ROOT, budget ${BUDGET}s, out $OUT"

# (a) The GPU and the Python stack.
env_info() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader
  nvidia-smi
  python3 -c "import sys, torch, transformers; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), 'transformers', transformers.__version__)"
  python3 -c "import peft; print('peft', peft.__version__, 'installed')" 2>&1 | tail -n 1
  python3 -c "import accelerate; print('accelerate', accelerate.__version__, 'installed')" 2>&1 | tail -n 1
  ls -la .gpu .gpu/pylib 2>&1
}
guarded env 40 bash -c "$(declare -f env_info); env_info"
head -n 1 "$OUT/env.log" | tee -a "$OUT/device_run.log"

# (b) CUDA against the CPU, with the binary alone.
guarded cuda_checks 100 bash .gpu/run.sh "$ROOT/tests/scripts/cuda_checks.rhai" --set fixtures="$ROOT/tests/fixtures"

# (c) The whole math procedure at a tiny budget. tests/cuda.rs's knobs less its
# scratch.train.epochs=1: on the CPU, one epoch of pretraining leaves no correct sample and the RFT
# baseline throws; the default 8 epochs leave a few (~100 steps of a 2M-parameter model: seconds
# on a GPU). The run goes to /tmp (its models are MBs); its logs, configs and reports are copied
# to $OUT/math_gpu.
rm -rf /tmp/math_gpu
guarded math_gpu 90 bash .gpu/run.sh scripts/math_full.rhai --device cuda --out /tmp/math_gpu \
  --set n_train=40 --set n_test=40 --set synthetic.n_pretrain=400
if [ -d /tmp/math_gpu ]; then
  mkdir -p "$OUT/math_gpu"
  (cd /tmp/math_gpu && find . -type f ! -name '*.safetensors' ! -name '*.bin' -size -2M -print0 |
     xargs -0 -r cp --parents -t "$OUT/math_gpu")
fi

# (d) The 1.7B-shaped llama and the workload (kept from an earlier run on a warm machine).
TOKENIZER=.gpu/tokenizer.json
if [ ! -f "$TOKENIZER" ]; then
  TOKENIZER="$ROOT/tests/fixtures/model/tiny-llama/tokenizer.json"
  log "WARNING: no .gpu/tokenizer.json: the workload is tokenised with the tiny fixture's tokenizer ($TOKENIZER)"
fi
if [ -f "$MODEL/config.json" ] && [ -f "$MODEL/tokenizer.json" ] && [ -f "$WL" ]; then
  log "model $MODEL and workload $WL already there"
else
  rm -rf "$MODEL" "$WL"
  guarded make_model 150 python3 .gpu/peer_gpu.py make "$MODEL" "$WL" "$TOKENIZER"
fi

# (e) The LoRA step, ours and the peer's, without and with gradient checkpointing.
PYLIB=""
[ -d "$ROOT/.gpu/pylib" ] && PYLIB="$ROOT/.gpu/pylib"
if [ -f "$MODEL/config.json" ] && [ -f "$WL" ]; then
  for gc in false true; do
    sfx=""; flag=""
    [ "$gc" = true ] && { sfx="_gc"; flag="--grad-checkpoint"; }
    with_mem "ours_lora$sfx" 90 bash .gpu/run.sh "$ROOT/benches/gpu/lora_step.rhai" \
      --set model="$MODEL" --set workload="$WL" --set out="$OUT/ours_lora$sfx.json" --set grad_checkpoint=$gc
    with_mem "peer_lora$sfx" 90 env PEER_PYLIB="$PYLIB" \
      python3 "$ROOT/benches/gpu/peer_lora.py" "$MODEL" "$WL" "$OUT/peer_lora$sfx.json" $flag
  done
else
  log "SKIP the LoRA steps: no model at $MODEL"
fi

# (f) The summary (summary.json, summary.md).
# Outside the budget: it only reads the files above.
timeout -k 5 30 python3 "$ROOT/benches/gpu/summarize.py" "$OUT" > "$OUT/summary.log" 2>&1
printf 'summary\t%s\t-\t30\n' "$?" >> "$STEPS"
cat "$OUT/summary.md" 2>/dev/null
log "done in $(( $(now) - T0 ))s"
