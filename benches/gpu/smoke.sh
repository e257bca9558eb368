#!/usr/bin/env bash
# A CPU smoke test of the LoRA step on both sides, with the tiny fixture model and a tiny workload
# (48 records of ~40 tokens): bash benches/gpu/smoke.sh [OUT_DIR]. Ours needs target/release/rlmec;
# the peer runs when $PEER_PYTHON (default .deps/bench-venv/bin/python, `make bench-setup`) has
# torch, transformers and PEFT.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
out=${1:-/tmp/rlmec-lora-smoke}
mkdir -p "$out"
python3 - "$out/wl.json" <<'PY'
import json, random, sys
rng = random.Random(0)
words = "the of and to in is was for on that with as by at from it an be this are which or".split()
t = lambda n: " ".join(rng.choice(words) for _ in range(n))
json.dump({"train": [{"input": "Question: " + t(8), "output": " " + t(30)} for _ in range(48)]}, open(sys.argv[1], "w"))
PY
model="$root/tests/fixtures/model/tiny-llama"
for gc in false true; do
  "$root/target/release/rlmec" "$root/benches/gpu/lora_step.rhai" --set device=cpu --set model="$model" \
    --set workload="$out/wl.json" --set out="$out/ours_$gc.json" --set grad_checkpoint=$gc 2>/dev/null | grep OURS_LORA
done
py=${PEER_PYTHON:-$root/.deps/bench-venv/bin/python}
if [ -x "$py" ]; then
  "$py" "$root/benches/gpu/peer_lora.py" "$model" "$out/wl.json" "$out/peer.json" --device cpu 2>/dev/null | grep "PEER_LORA: step 6"
  "$py" "$root/benches/gpu/peer_lora.py" "$model" "$out/wl.json" "$out/peer_gc.json" --device cpu --grad-checkpoint 2>/dev/null | grep "PEER_LORA: step 6"
fi
echo "smoke: ok ($out)"
