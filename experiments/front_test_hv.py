"""Hypervolume of each run's validation front, re-scored on the test split (front.csv of every run), beside its
validation hypervolume: how much of a validation lead is the luck of many noisy evaluations.

    python experiments/front_test_hv.py [results/lenet300_surrogate_vs_nsga2]

Writes <folder>/front_test_hv.md.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from surrogate_emo.front import hypervolume


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "results/lenet300_surrogate_vs_nsga2")
    runs = sorted(p.parent for p in folder.glob("*_seed*/front.csv"))
    by_method: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        with open(run / "front.csv") as handle:
            rows = list(csv.DictReader(handle))
        ratio = [1 / float(r["compression"]) for r in rows]
        test = hypervolume(np.column_stack([[float(r["test_error"]) for r in rows], ratio]), [1, 1])
        val = hypervolume(np.column_stack([[float(r["val_error"]) for r in rows], ratio]), [1, 1])
        by_method.setdefault(run.name.rsplit("_seed", 1)[0], []).append((val, test))
    lines = ["| method | runs | median validation HV of the front | median test HV of the same models | per run (test) |",
             "|---|---|---|---|---|"]
    for method, values in by_method.items():
        val, test = np.array(values).T
        lines.append(f"| {method} | {len(values)} | {np.median(val):.4f} | {np.median(test):.4f} | "
                     + ", ".join(f"{t:.4f}" for t in test) + " |")
    (folder / "front_test_hv.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
