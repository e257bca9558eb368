"""One accuracy table over the runs of a reproduction: mean and standard deviation over
seeds of each (model, task), with every seed's value and n.

    python3 tools/reproduction_table.py runs/repro

Reads each run's accuracy.json (written by the procedure scripts) and its config.json for
the test bed: the problems the from-scratch policy was pretrained on, the RL problems, the
post-training learning rate, the teacher with its rule's revision (read off the fingerprint
of step 2's inputs: `arith@1` checked the prediction alone, `arith@2` lines it up with the
gold solution) and the GRM's epochs; runs of different test beds are different rows. A run
directory is named <script>[-<tag>]-seed<N>. Rows named `start` are the starting policy, the
same in every script of a seed, so they are counted once per seed and test bed.

It prints the table as markdown. The reproduction's table is docs/results.md's: paste the
output there, between `<!-- reproduction table: ... -->` and `<!-- end of reproduction table -->`.
"""

import hashlib
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def scientific(x) -> str:
    """3e-4 rather than 0.0003, 2e-5 rather than 2e-05."""
    if not isinstance(x, (int, float)):
        return str(x)
    mantissa, exponent = f"{x:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def teacher(run: Path, name: str) -> str:
    """The teacher of step 2 with its rule's revision (`arith@2`); before revisions were
    recorded the input was the bare name, the first revision. `?` without step 2."""
    stage = run / "stages" / "teacher_edits.json"
    if not stage.is_file():
        return "?"
    recorded = json.loads(stage.read_text()).get("input_parts", {}).get("teacher")
    fingerprint = lambda value: hashlib.sha256(json.dumps(value).encode()).hexdigest()
    if recorded == fingerprint(name):
        return f"{name}@1"
    return next((f"{name}@{r}" for r in range(1, 100) if recorded == fingerprint(f"{name}@{r}")), name)


def test_bed(run: Path):
    """(pretraining problems, RL problems, post-training lr, teacher, GRM epochs) of a run,
    `?` where unknown."""
    config_file = run / "config.json"
    if not config_file.is_file():
        return ("?",) * 5
    c = json.loads(config_file.read_text())
    rl, baseline = c.get("rl", {}).get("lr"), c.get("baseline", {}).get("lr")
    lr = scientific(rl) if rl == baseline else f"{scientific(rl)} (baselines {scientific(baseline)})"
    return (
        c.get("synthetic", {}).get("n_pretrain", "?"),
        c.get("n_train", "?"),
        lr,
        teacher(run, c.get("teacher", "?")),
        c.get("grm_train", {}).get("epochs", "?"),
    )


def main(root: Path) -> None:
    cells = defaultdict(dict)  # (task, test bed, model) -> {seed: accuracy}
    sizes = {}
    first_made = {}  # test bed -> when its first run was created: beds appear in that order
    for table in sorted(root.glob("*-seed*/accuracy.json")):
        seed = table.parent.name.rsplit("-seed", 1)[1]
        bed = test_bed(table.parent)
        run = table.parent / "run.json"
        created = json.loads(run.read_text()).get("created", 0) if run.is_file() else 0
        first_made[bed] = min(first_made.get(bed, created), created)
        for row in json.loads(table.read_text()):
            key = (row["task"], bed, row["model"])
            cells[key][seed] = row["accuracy"]
            sizes[key] = row["n"]
    if not cells:
        sys.exit(f"no */accuracy.json under {root}")
    # Per-seed columns list every seed of the reproduction in order, `–` where a row lacks one.
    all_seeds = sorted({s for by_seed in cells.values() for s in by_seed}, key=int)
    # Seeds differ a lot (each is another from-scratch policy), so each row is also compared
    # with the starting policy of the same seed: the paired difference, in points.
    print(f"| model | task | pretraining problems | RL problems | post-training lr | teacher | GRM epochs | accuracy (mean ± sd over seeds) | per seed ({', '.join(all_seeds)}) | Δ vs start, per seed | mean Δ | n |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    def order(cell):
        """By task, then test bed, the start first, then by model."""
        (task, bed, model), _ = cell
        return (task, first_made[bed], model != "start", model)

    for (task, bed, model), by_seed in sorted(cells.items(), key=order):
        seeds = sorted(by_seed, key=int)
        values = [by_seed[s] for s in seeds]
        mean = 100 * statistics.mean(values)
        sd = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
        each = ", ".join(f"{100 * by_seed[s]:.1f}" if s in by_seed else "–" for s in all_seeds)
        start = cells.get((task, bed, "start"), {})
        deltas = [100 * (by_seed[s] - start[s]) for s in seeds if s in start]
        delta_each = ", ".join(
            f"{100 * (by_seed[s] - start[s]):+.1f}" if s in by_seed and s in start else "–"
            for s in all_seeds
        ) if model != "start" else ""
        delta_mean = f"{statistics.mean(deltas):+.1f}" if deltas and model != "start" else ""
        n_pretrain, n_train, lr, teacher_rev, grm_epochs = bed
        print(f"| {model} | {task} | {n_pretrain} | {n_train} | {lr} | {teacher_rev} | {grm_epochs} | {mean:.1f} ± {sd:.1f} | {each} | {delta_each} | {delta_mean} | {sizes[(task, bed, model)]} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/repro"))
