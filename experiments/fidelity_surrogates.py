"""Offline check of the fidelity-0 surrogates against the plain ones (issue 13): fit each on the GP loop's archive
of a seed (study 2: 100 evaluations; study 3: 60), predict log(error) on that seed's NSGA-II archive (1,000; 300),
held out, and report Spearman and RMSE over the whole archive and near its front (first 5 non-dominated layers),
beside the fidelity-0 error alone.

    OMP_NUM_THREADS=1 python experiments/fidelity_surrogates.py [lenet300|lenet5]

Writes results/fidelity/surrogates_offline.md (LeNet-300-100) or surrogates_offline_lenet5.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from scipy.stats import spearmanr

from surrogate_emo.compare import load_run, objectives
from surrogate_emo.config import RunConfig
from surrogate_emo.pipeline import prepare
from surrogate_emo.search.surrogate import LOG_FLOOR
from surrogate_emo.surrogates import make_surrogate

STUDIES = {  # runs folder, output, model, fine-tuning epochs per evaluation
    "lenet300": (Path("results/lenet300_fashion/lenet-300-100_fashion-mnist"),
                 Path("results/fidelity/surrogates_offline.md"), "lenet-300-100", 1.0),
    "lenet5": (Path("results/lenet5_fashion/lenet-5_fashion-mnist"),
               Path("results/fidelity/surrogates_offline_lenet5.md"), "lenet-5", 0.5),
}
RUNS, OUT, MODEL, EPOCHS = STUDIES[sys.argv[1] if len(sys.argv) > 1 else "lenet300"]
CONFIG = dict(dataset="fashion-mnist", model=MODEL, base_epochs=20.0, finetune_epochs=EPOCHS, lr=0.001,
              batch_size=128, objectives=["params"], progress=False, threads=1)


def archive(name: str) -> tuple[np.ndarray, np.ndarray]:
    evaluations = load_run(RUNS / name, name)
    return np.array([e.genome for e in evaluations]), objectives(evaluations)


def main() -> None:
    torch.set_num_threads(1)
    setup = prepare(RunConfig(**CONFIG, output_dir="/tmp/fidelity_offline"))
    screen = setup.zero_shot
    lines = ["| seed | predictor | Spearman, whole archive | RMSE of log error, all | Spearman near the front | "
             "RMSE near the front | fit + predict s |", "|---|---|---|---|---|---|---|"]
    for seed in (0, 1, 2):
        X, F = archive(f"surrogate_gp_seed{seed}")
        X_test, F_test = archive(f"nsga2_seed{seed}")
        near = np.concatenate(NonDominatedSorting().do(F_test)[:5])
        truth = np.log(np.maximum(F_test[:, 0], LOG_FLOOR))
        started = time.perf_counter()
        zero_shot = screen.features(np.vstack([X, X_test]))[len(X):, 0]
        per_genome = (time.perf_counter() - started) / (len(X) + len(X_test))
        rows = [("fidelity-0 error alone", zero_shot, per_genome)]
        for name in ("gp", "gp-f0", "rf", "rf-f0"):
            started = time.perf_counter()
            surrogate = make_surrogate(name, seed=seed, features=screen.features)
            surrogate.fit(X, np.log(np.maximum(F[:, :1], LOG_FLOOR)))
            rows.append((name, surrogate.predict(X_test)[0][:, 0], time.perf_counter() - started))
        for label, predicted, seconds in rows:
            rmse = np.sqrt(np.mean((predicted - truth) ** 2))
            rmse_near = np.sqrt(np.mean((predicted[near] - truth[near]) ** 2))
            cost = f"{seconds * 1000:.0f} ms per genome" if label.startswith("fidelity") else f"{seconds:.1f}"
            lines.append(f"| {seed} | {label} | {spearmanr(predicted, truth)[0]:.3f} | "
                         f"{'–' if label.startswith('fidelity') else f'{rmse:.3f}'} | "
                         f"{spearmanr(predicted[near], truth[near])[0]:.3f} | "
                         f"{'–' if label.startswith('fidelity') else f'{rmse_near:.3f}'} | {cost} |")
            print(lines[-1], flush=True)
    OUT.write_text(f"{MODEL}: fitted on the GP loop's {len(X)} evaluations (the loop's own archive), scored on the "
                   f"NSGA-II run's {len(X_test)} evaluations of the same seed (near the front: its first 5 "
                   f"non-dominated layers). Fidelity 0: the compressed model's error on the first "
                   f"{screen.val.y.numel()} validation samples, no fine-tuning.\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
