"""The summary of benches/gpu/device_run.sh: python3 summarize.py OUT_DIR -> OUT_DIR/summary.{json,md}.

Reads what the steps left in OUT_DIR: steps.tsv, cuda_checks.log, math_gpu.log, ours_lora*.json,
peer_lora*.json and mem_*.csv (nvidia-smi's used MiB every 200 ms, the first line before the
process started). Ratios are ours / peer: above 1 is faster for tokens/s, heavier for memory."""
import json, os, re, sys

out = sys.argv[1]


def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError):
        return None


def text(name):
    try:
        return re.sub(r"\x1b\[[0-9;]*m", "", open(os.path.join(out, name), errors="replace").read())
    except OSError:
        return ""


def tail(s, n=4):
    """The last n lines that are not log lines at INFO level."""
    lines = [l for l in s.strip().splitlines() if " INFO " not in l[:40]]
    return lines[-n:]


def steps():
    rows = {}
    for line in text("steps.tsv").splitlines()[1:]:
        f = line.split("\t")
        if len(f) >= 3:
            rows[f[0]] = {"rc": f[1], "seconds": f[2]}
    return rows


def mem(name):
    """Peak used MiB while the process ran, and the reading before it started."""
    vals = []
    for line in text(f"mem_{name}.csv").splitlines():
        try:
            vals.append(float(line.strip()))
        except ValueError:
            pass
    if not vals:
        return None
    return {"before_mib": vals[0], "peak_mib": max(vals), "peak_gib": max(vals) / 1024,
            "peak_over_before_gib": (max(vals) - vals[0]) / 1024, "samples": len(vals)}


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


st = steps()
summary = {"steps": st}
summary["cuda_checks"] = {"rc": st.get("cuda_checks", {}).get("rc"), "tail": tail(text("cuda_checks.log"), 12)}
summary["math_gpu"] = {"rc": st.get("math_gpu", {}).get("rc"), "seconds": st.get("math_gpu", {}).get("seconds"),
                       "accuracy_csv": text("math_gpu/accuracy.csv").strip() or None,
                       "tail": tail(text("math_gpu.log"))}
env = text("env.log").splitlines()
summary["env"] = [l for l in env if l.startswith(("python ", "peft ", "accelerate "))] + env[:1]

lora = {}
for sfx, label in [("", "no checkpointing"), ("_gc", "gradient checkpointing")]:
    ours, peer = load(f"ours_lora{sfx}.json"), load(f"peer_lora{sfx}.json")
    ran = lambda n: st.get(n, {}).get("rc") not in (None, "skipped")
    mo = mem(f"ours_lora{sfx}") if ran(f"ours_lora{sfx}") else None
    mp = mem(f"peer_lora{sfx}") if ran(f"peer_lora{sfx}") else None
    g = lambda d, k: (d or {}).get(k)
    row = {
        "ours": ours, "peer": peer, "ours_mem": mo, "peer_mem": mp,
        "train_tok_s": [g(ours, "train_tok_s"), g(peer, "train_tok_s"), ratio(g(ours, "train_tok_s"), g(peer, "train_tok_s"))],
        "train_tok_s_median": [g(ours, "train_tok_s_median"), g(peer, "train_tok_s_median"),
                               ratio(g(ours, "train_tok_s_median"), g(peer, "train_tok_s_median"))],
        "load_s": [g(ours, "load_s"), g(peer, "load_s"), ratio(g(ours, "load_s"), g(peer, "load_s"))],
        "peak_gib": [g(mo, "peak_over_before_gib"), g(mp, "peak_over_before_gib"),
                     ratio(g(mo, "peak_over_before_gib"), g(mp, "peak_over_before_gib"))],
        "loss": [g(ours, "loss"), g(peer, "loss"), None],
        "rc": [st.get(f"ours_lora{sfx}", {}).get("rc"), st.get(f"peer_lora{sfx}", {}).get("rc")],
        "ours_memory_estimate": [l.split(" INFO ", 1)[-1] for l in text(f"ours_lora{sfx}.log").splitlines()
                                 if "memory:" in l],
        "tails": [tail(text(f"ours_lora{sfx}.log"), 3), tail(text(f"peer_lora{sfx}.log"), 3)],
    }
    lora[label] = row
summary["lora"] = lora
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


md = ["# GPU run", ""]
md += [f"- {l}" for l in summary["env"]]
md += ["", "| step | exit | seconds |", "| --- | --- | --- |"]
md += [f"| {k} | {v['rc']} | {v['seconds']} |" for k, v in st.items()]
md += ["", f"cuda_checks: exit {summary['cuda_checks']['rc']}", "", "```"] + summary["cuda_checks"]["tail"] + ["```", ""]
md += [f"math_full (tiny): exit {summary['math_gpu']['rc']} in {summary['math_gpu']['seconds']} s", ""]
if summary["math_gpu"]["accuracy_csv"]:
    md += ["```", summary["math_gpu"]["accuracy_csv"], "```", ""]
peer_any = next((r["peer"] for r in lora.values() if r["peer"]), None) or {}
ours_any = next((r["ours"] for r in lora.values() if r["ours"]), None) or {}
md += ["## LoRA step: r 16, alpha 32, all seven projections, f32 adapters on a frozen bf16 base, "
       "6 steps × 8 records (~512 tokens), AdamW lr 1e-4", "",
       f"peer: transformers {peer_any.get('transformers', '?')}, torch {peer_any.get('torch', '?')}, "
       f"LoRA by {peer_any.get('lora_impl', '?')} (peft {peer_any.get('peft')}, {peer_any.get('peft_source', '?')}), "
       f"attention {peer_any.get('attn_implementation', '?')}; "
       f"ours: libtorch {((ours_any.get('torch') or {}).get('libtorch', '?'))}", ""]
if peer_any.get("lora_impl") == "manual":
    md += [f"**The peer ran WITHOUT PEFT** (PEFT's LoRA arithmetic re-implemented in peer_lora.py): "
           f"{peer_any.get('peft_error') or 'peft could not be imported'}", ""]
md += [
       "| | rlmec | transformers + PEFT | ratio (ours / peer) |", "| --- | --- | --- | --- |"]
for label, r in lora.items():
    md.append(f"| **{label}** (exit codes {r['rc'][0]}, {r['rc'][1]}) | | | |")
    for key, name, spec in [("train_tok_s", "tokens/s, steps 3–6", ",.0f"),
                            ("train_tok_s_median", "tokens/s, median step of 3–6", ",.0f"),
                            ("peak_gib", "GPU memory at peak (nvidia-smi, over idle), GiB", ".2f"),
                            ("load_s", "load (s)", ".2f"), ("loss", "loss at step 6", ".4f")]:
        a, b, q = r[key]
        md.append(f"| {name} | {fmt(a, spec)} | {fmt(b, spec)} | {fmt(q, '.2f') + 'x' if q is not None else ''} |")
    if r["peer"] and r["peer"].get("train_peak_gb") is not None:
        md.append(f"| peer's torch.cuda.max_memory_allocated (GiB) | | {r['peer']['train_peak_gb']:.2f} | |")
md.append("")
for label, r in lora.items():
    for l in r["ours_memory_estimate"]:
        md.append(f"- ours, {label}, before training: {l}")
    for side, t in zip(["ours", "peer"], r["tails"]):
        if t and (r["rc"][0 if side == "ours" else 1] not in ("0", None)):
            md += [f"- {side}, {label}, failed; its last lines:", "", "```"] + t + ["```", ""]
md.append("")
open(os.path.join(out, "summary.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
