#!/usr/bin/env python3
"""The transformers side of `make bench` (benches/model.rs runs it in the same session).

Reads the token ids benches/model.rs wrote, does the same work with transformers on the
same GGUF file (dequantised to the same dtype, the same thread count) and writes medians:

    python benches/peer_transformers.py MODEL.gguf INPUTS.json OUTPUT.json --threads 2 --repeats 3
"""

import json
import resource
import statistics
import time
from pathlib import Path

import torch
from peer_common import setup
from transformers import AutoModelForCausalLM, GenerationConfig


def timed(repeats, fn):
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def left_padded(prompts, pad_id):
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    return ids, mask


def main():
    args, inputs = setup()
    dtype = getattr(torch, args.dtype)
    path = Path(args.model)

    def load():
        return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype).eval()

    load_s = timed(args.repeats, load)
    model = load()
    new = inputs["new_tokens"]
    eos = model.config.eos_token_id

    def gen(prompts, **sampling):
        ids, mask = left_padded(prompts, eos)
        config = GenerationConfig(max_new_tokens=new, min_new_tokens=new, pad_token_id=eos, eos_token_id=eos, **sampling)
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=mask, generation_config=config)

    prompts = inputs["prompts"]
    greedy_s = timed(args.repeats, lambda: gen(prompts[:1], do_sample=False))
    sample_s = timed(args.repeats, lambda: gen(prompts[:16], do_sample=True, temperature=0.7, top_p=0.95, top_k=0))

    pairs = inputs["score_pairs"]

    def score():
        seqs = [p["prompt"] + p["continuation"] for p in pairs]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), eos, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            out = []
            for i, p in enumerate(pairs):
                start, n = len(p["prompt"]), len(p["continuation"])
                lp = logits[i, start - 1 : start - 1 + n].log_softmax(-1)
                out.append(lp.gather(1, torch.tensor(p["continuation"]).unsqueeze(1)).squeeze(1))
        return out

    score_s = timed(args.repeats, score)
    n_cont = sum(len(p["continuation"]) for p in pairs)
    result = {
        "load_s": load_s,
        "greedy_b1_tok_s": new / greedy_s,
        "sample_b16_tok_s": 16 * new / sample_s,
        "score_tok_s": n_cont / score_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    Path(args.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
