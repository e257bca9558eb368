"""One accuracy table over the runs of a reproduction: mean and standard deviation over
seeds of each (model, task), with every seed's value and n.

    python3 tools/reproduction_table.py runs/repro

Reads each run's accuracy.json (written by the procedure scripts) and its config.json (for
n_train, the budget: runs at different budgets are different rows); a run directory is named
<script>[-n<N_TRAIN>]-seed<N>. Rows named `start` are the starting policy, the same in every
script of a seed, so they are counted once per seed and budget.
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def row_order(cell):
    """By task, then budget (unknown last), the start first, then by model."""
    (task, n_train, model), _ = cell
    return (task, isinstance(n_train, str), n_train if isinstance(n_train, int) else 0, model != "start", model)


def main(root: Path) -> None:
    cells = defaultdict(dict)  # (task, n_train, model) -> {seed: accuracy}
    sizes = {}
    for table in sorted(root.glob("*-seed*/accuracy.json")):
        seed = table.parent.name.rsplit("-seed", 1)[1]
        config = table.parent / "config.json"
        n_train = json.loads(config.read_text()).get("n_train", "?") if config.is_file() else "?"
        for row in json.loads(table.read_text()):
            key = (row["task"], n_train, row["model"])
            cells[key][seed] = row["accuracy"]
            sizes[key] = row["n"]
    if not cells:
        sys.exit(f"no */accuracy.json under {root}")
    # Per-seed columns list every seed of the reproduction in order, `–` where a row lacks one.
    all_seeds = sorted({s for by_seed in cells.values() for s in by_seed}, key=int)
    # Seeds differ a lot (each is another from-scratch policy), so each row is also compared
    # with the starting policy of the same seed: the paired difference, in points.
    print(f"| model | task | RL problems | accuracy (mean ± sd over seeds) | per seed ({', '.join(all_seeds)}) | Δ vs start, per seed | mean Δ | n |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (task, n_train, model), by_seed in sorted(cells.items(), key=row_order):
        seeds = sorted(by_seed, key=int)
        values = [by_seed[s] for s in seeds]
        mean = 100 * statistics.mean(values)
        sd = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
        each = ", ".join(f"{100 * by_seed[s]:.1f}" if s in by_seed else "–" for s in all_seeds)
        start = cells.get((task, n_train, "start"), {})
        deltas = [100 * (by_seed[s] - start[s]) for s in seeds if s in start]
        delta_each = ", ".join(
            f"{100 * (by_seed[s] - start[s]):+.1f}" if s in by_seed and s in start else "–"
            for s in all_seeds
        ) if model != "start" else ""
        delta_mean = f"{statistics.mean(deltas):+.1f}" if deltas and model != "start" else ""
        print(f"| {model} | {task} | {n_train} | {mean:.1f} ± {sd:.1f} | {each} | {delta_each} | {delta_mean} | {sizes[(task, n_train, model)]} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/repro"))
