"""The peer of benches/gpu/lora_step.rhai: a LoRA step with transformers + PEFT, on the GPU machine.

    python3 peer_lora.py DIR WORKLOAD.json OUT.json [--grad-checkpoint] [--device cuda|cpu]

DIR and WORKLOAD.json are what `peer_gpu.py make` writes (a random SmolLM2-1.7B-shaped llama in
bf16 and its fixed workload). The recipe is the usual one for LoRA: the frozen base in bf16 (no f32
master copy, no autocast), PEFT's adapters (r 16, alpha 32, dropout 0, bias none, all seven
projections) in f32 beside it (PEFT's `autocast_adapter_dtype` default: the base layer's output
stays bf16, x is cast to f32 for the adapters, the sum is cast back), torch.optim.AdamW over the
adapter parameters (lr 1e-4, no weight decay), gradients clipped at 1.0, constant learning rate.
Six steps of 8 records of the workload's `train` list, tokenised as peer_gpu.py does (input ids +
output ids + EOS 2, labels -100 on the input, right-padded with 0). Steady state: tokens/s over
steps 3-6 (real tokens / their summed step times); peak: torch.cuda.max_memory_allocated after
loading. `--device cpu` runs it on the CPU for a smoke test with a tiny model.

PEFT: the installed one; failing that, the directories in $PEER_PYLIB (os.pathsep-separated, e.g.
.gpu/pylib that benches/gpu/make_pylib.sh builds) appended to sys.path; failing that, PEFT's LoRA
arithmetic re-implemented here (`lora_impl: "manual"` in the output) so the step is still timed."""
import json, math, os, statistics, sys, time

import torch

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
R, ALPHA, DROPOUT, LR, STEPS, BATCH = 16, 32, 0.0, 1e-4, 6, 8


def say(msg):
    print(f"PEER_LORA: {msg}", flush=True)


def import_peft():
    """(peft module or None, where it came from)."""
    try:
        import peft
        return peft, "installed"
    except ImportError as e:
        first = repr(e)
    for name in [k for k in sys.modules if k == "peft" or k.startswith("peft.")]:
        del sys.modules[name]
    extra = [p for p in os.environ.get("PEER_PYLIB", "").split(os.pathsep) if p]
    if not extra:
        say(f"peft is NOT installed ({first}) and PEER_PYLIB is not set")
        return None, "none"
    say(f"peft is NOT installed ({first}); trying PEER_PYLIB={os.pathsep.join(extra)}")
    # Appended, not prepended: anything installed (accelerate, psutil) wins over the carried copy.
    sys.path.extend(extra)
    try:
        import peft
        say(f"using peft {peft.__version__} from {os.path.dirname(os.path.dirname(peft.__file__))}")
        return peft, "PEER_PYLIB"
    except ImportError as e:
        say(f"peft from PEER_PYLIB failed too ({e!r})")
        return None, "none"


class ManualLora(torch.nn.Module):
    """PEFT's lora.Linear forward, for when PEFT cannot be imported: base(x) in the base dtype,
    x cast to the adapters' dtype (f32), lora_B(lora_A(dropout(x))) * alpha/r added, cast back.
    Same init as PEFT's default: A Kaiming-uniform (a=sqrt(5)), B zero."""

    def __init__(self, base, r, alpha, dropout):
        super().__init__()
        self.base_layer = base
        dev = base.weight.device
        self.lora_A = torch.nn.Linear(base.in_features, r, bias=False, device=dev, dtype=torch.float32)
        self.lora_B = torch.nn.Linear(r, base.out_features, bias=False, device=dev, dtype=torch.float32)
        torch.nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        torch.nn.init.zeros_(self.lora_B.weight)
        self.dropout = torch.nn.Dropout(dropout) if dropout > 0 else torch.nn.Identity()
        self.scaling = alpha / r

    def forward(self, x):
        result = self.base_layer(x)
        dtype = result.dtype
        x = x.to(self.lora_A.weight.dtype)
        result = result + self.lora_B(self.lora_A(self.dropout(x))) * self.scaling
        return result.to(dtype)


def manual_lora(model):
    for p in model.parameters():
        p.requires_grad_(False)
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            if child_name in TARGETS and isinstance(child, torch.nn.Linear):
                setattr(mod, child_name, ManualLora(child, R, ALPHA, DROPOUT))
    return model


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = sys.argv[1:]
    if len(args) < 3:
        sys.exit(__doc__)
    d, wl, out = args[:3]
    gc = "--grad-checkpoint" in flags
    device = "cuda"
    if "--device" in flags:
        device = flags[flags.index("--device") + 1]
    cuda = device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    peft, peft_source = import_peft()
    import transformers
    from transformers import AutoModelForCausalLM
    from tokenizers import Tokenizer

    res = {"side": "transformers + PEFT", "device": device, "grad_checkpoint": gc,
           "torch": torch.__version__, "transformers": transformers.__version__,
           "peft": getattr(peft, "__version__", None), "peft_source": peft_source,
           "lora_impl": "peft" if peft else "manual",
           "lora": {"r": R, "alpha": ALPHA, "dropout": DROPOUT, "targets": TARGETS}}
    if not peft:
        say("PEFT UNAVAILABLE: timing PEFT's LoRA arithmetic re-implemented in this file (lora_impl: manual)")

    w = json.load(open(wl))
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))

    def load():
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16).to(device)
        m.config.use_cache = False
        if gc:
            # Non-reentrant: the frozen embeddings' output needs no requires_grad hook.
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return m

    t = time.time()
    m = load()
    sync()
    res["load_s"] = time.time() - t
    t = time.time()
    if peft:
        try:
            from peft import LoraConfig, get_peft_model
            cfg = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=TARGETS,
                             bias="none", task_type="CAUSAL_LM")
            m = get_peft_model(m, cfg)   # autocast_adapter_dtype=True: f32 adapters on a bf16 base
        except Exception as e:   # e.g. a PEFT too new or too old for this transformers
            say(f"PEFT FAILED to attach its adapters ({e!r}): timing PEFT's LoRA arithmetic "
                "re-implemented in this file (lora_impl: manual)")
            res["peft_error"] = repr(e)
            res["lora_impl"] = "manual"
            del m
            m = manual_lora(load())
    else:
        m = manual_lora(m)
    sync()
    res["attach_s"] = time.time() - t
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    res["trainable_params"] = sum(p.numel() for p in params)
    res["adapter_dtypes"] = sorted({str(p.dtype) for p in params})
    res["frozen_dtypes"] = sorted({str(p.dtype) for p in m.parameters() if not p.requires_grad})
    say(f"{res['trainable_params']} trainable parameters ({res['adapter_dtypes']}), base {res['frozen_dtypes']}, "
        f"attention {getattr(m.config, '_attn_implementation', '?')}")
    res["attn_implementation"] = getattr(m.config, "_attn_implementation", None)
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    if cuda:
        res["loaded_gb"] = torch.cuda.memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()

    recs = w["train"]
    times, toks, losses, padded = [], [], [], []
    for step in range(STEPS):
        batch = recs[step * BATCH:(step + 1) * BATCH]
        seqs, labels = [], []
        for r in batch:
            a, b = tok.encode(r["input"]).ids, tok.encode(r["output"]).ids + [2]
            seqs.append(a + b); labels.append([-100] * len(a) + b)
        L = max(map(len, seqs))
        x = torch.tensor([s + [0] * (L - len(s)) for s in seqs], device=device)
        y = torch.tensor([s + [-100] * (L - len(s)) for s in labels], device=device)
        sync(); t = time.time()
        loss = m(input_ids=x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
        sync(); times.append(time.time() - t); toks.append(sum(map(len, seqs))); padded.append(L * len(seqs))
        losses.append(loss.item())
        say(f"step {step + 1}: loss {losses[-1]:.4f}, {toks[-1]} tokens, {times[-1]:.3f}s")
    k = min(2, len(times) - 1)
    res["steps"] = len(times)
    res["step_s"] = times
    res["step_tokens"] = toks
    res["step_padded_tokens"] = padded
    res["step_tok_s"] = [a / b for a, b in zip(toks, times)]
    res["losses"] = losses
    res["loss"] = losses[-1]
    res["train_tok_s"] = sum(toks[k:]) / sum(times[k:])
    res["train_tok_s_median"] = statistics.median(res["step_tok_s"][k:])
    if cuda:
        res["train_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
        res["train_peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 2**30
    json.dump(res, open(out, "w"), indent=1)
    print("PEER_LORA", json.dumps({k: v for k, v in res.items() if not k.startswith("step_")}), flush=True)


if __name__ == "__main__":
    main()
