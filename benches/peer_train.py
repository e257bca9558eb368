#!/usr/bin/env python3
"""The PyTorch + transformers side of `cargo bench --bench train` (run by benches/train.rs).

The same training step as rlmec's: supervised loss on the output tokens (prompt labels
-100), backward, gradient-norm clipping to 1.0, torch.optim.AdamW, zero_grad — on the same
token ids, model file, dtype and thread count. With `lora` in the inputs
(`{r, alpha, dropout, targets}`), PEFT's LoRA adapters are trained instead of every weight. Writes the median step's tokens/s and the
peak RSS of training (the peak is reset after loading, as on the rlmec side):

    python benches/peer_train.py MODEL.gguf INPUTS.json OUTPUT.json --threads 2 --repeats 3
"""

import json
import statistics
import time
from pathlib import Path

import torch
from peer_common import setup
from transformers import AutoModelForCausalLM


def peak_rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    args, inputs = setup()
    path = Path(args.model)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=getattr(torch, args.dtype))
    lora = inputs.get("lora")
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"],
                                                 lora_dropout=lora["dropout"],
                                                 target_modules=lora["targets"], bias="none",
                                                 task_type="CAUSAL_LM"))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=inputs["lr"], weight_decay=0.0)
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on

    times = []
    for batch in inputs["batches"]:
        ids = torch.tensor([r["prompt"] + r["output"] for r in batch])
        labels = ids.clone()
        for i, r in enumerate(batch):
            labels[i, : len(r["prompt"])] = -100
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    tokens = sum(len(r["prompt"]) + len(r["output"]) for r in inputs["batches"][0])
    result = {
        "train_tok_s": tokens / statistics.median(times[1:]),
        "peak_rss_mb": peak_rss_mb(),
    }
    Path(args.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
