"""Offline check of the warped GP (examples/warped.py) against the package's GP: fit each on the archive of a GP
loop run (100 evaluations), predict log(error) on the NSGA-II archive of the same seed (500 evaluations), and
report the error near the front (its first 5 non-dominated layers) and by compression band.

    OMP_NUM_THREADS=1 PYTHONPATH=examples python experiments/warped_gp_accuracy.py

Writes results/lenet300_warped_gp/offline_accuracy.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from scipy.stats import spearmanr
from warped import WarpedGP

from surrogate_emo.compare import load_run, objectives
from surrogate_emo.search.surrogate import LOG_FLOOR
from surrogate_emo.surrogates.gp import GPSurrogate

RUNS = Path("results/lenet300_surrogate_vs_nsga2")
OUT = Path("results/lenet300_warped_gp/offline_accuracy.md")
BANDS = [(0.0, 0.01), (0.01, 0.03), (0.03, 0.1), (0.1, 0.3), (0.3, 1.0)]


def archive(name: str) -> tuple[np.ndarray, np.ndarray]:
    evaluations = load_run(RUNS / name, name)
    return np.array([e.genome for e in evaluations]), objectives(evaluations)


def main() -> None:
    torch.set_num_threads(1)
    lines = ["| seed | surrogate | RMSE of log error near the front | Spearman near the front | "
             + " | ".join(f"RMSE, params ratio {lo}-{hi}" for lo, hi in BANDS) + " |",
             "|---" * (4 + len(BANDS)) + "|"]
    for seed in (0, 1, 2):
        X, F = archive(f"surrogate_gp_seed{seed}")
        X_test, F_test = archive(f"nsga2_seed{seed}")
        near = np.concatenate(NonDominatedSorting().do(F_test)[:5])
        truth = np.log(np.maximum(F_test[near, 0], LOG_FLOOR))
        for label, surrogate in (("gp", GPSurrogate(seed=seed)), ("warped gp", WarpedGP(seed=seed))):
            surrogate.fit(X, np.log(np.maximum(F[:, :1], LOG_FLOOR)))
            predicted = surrogate.predict(X_test[near])[0][:, 0]
            bands = []
            for lo, hi in BANDS:
                inside = (F_test[near, 1] >= lo) & (F_test[near, 1] < hi)
                bands.append(f"{np.sqrt(np.mean((predicted[inside] - truth[inside]) ** 2)):.3f} ({inside.sum()})"
                             if inside.any() else "–")
            lines.append(f"| {seed} | {label} | {np.sqrt(np.mean((predicted - truth) ** 2)):.3f} | "
                         f"{spearmanr(predicted, truth)[0]:.3f} | " + " | ".join(bands) + " |")
            print(lines[-1], flush=True)
    OUT.write_text("Fitted on the GP loop's 100 evaluations, scored on the NSGA-II run's evaluations of the same seed "
                   "that lie in its first 5 non-dominated layers (count per band in brackets).\n\n"
                   + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
