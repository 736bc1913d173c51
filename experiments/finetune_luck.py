"""How much of a front is fine-tuning luck: each model of a run's validation front fine-tuned again from the same
base with another seed (the same genome, steps and data), and the front's test hypervolume recomputed with the
new models' test errors. A search that evaluates many near-identical genomes keeps the luckiest fine-tune of each
(selected on validation, but a luckier model is better on test too); a fresh seed gives the genome's typical model.

    python experiments/finetune_luck.py [SEEDS ...]     (default: 0 1 2)

Reads results/lenet300_shared_base (NSGA-II@1000 and the whole-range ehvi-joint loop@100 on the same base model
per seed) and writes results/lenet300_shared_base/finetune_luck.md. Fine-tunes one model per front member and seed
(about 150 per seed, 1 to 2 s each on one core).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from multifidelity_compare import STUDIES, band_hvs, log_axis  # this folder's: python experiments/finetune_luck.py
from surrogate_emo.evaluate import trial_seed
from surrogate_emo.exporting import run_config
from surrogate_emo.front import hypervolume
from surrogate_emo.pipeline import prepare
from surrogate_emo.train import error_rate

STUDY = STUDIES["shared"]["new"]
METHODS = ("nsga2", "surrogate_gp_f0_design_joint")
EDGES = (1, 30, 100, 300)  # bands of the params ratio, the last from 300x on
FRESH = 7919  # the fresh seeds: trial_seed(run seed + FRESH, trial), never a seed the run itself drew


def refinetune(run_dir: Path) -> list[dict]:
    """The run's front models (front.csv), each with its recorded test error and the test error of the same genome
    fine-tuned with a fresh seed."""
    config, evaluations, _ = run_config(run_dir)
    by_trial = {e.trial: e for e in evaluations}
    setup = prepare(config)
    rows = []
    with open(run_dir / "front.csv") as handle:
        for record in csv.DictReader(handle):
            evaluation = by_trial[int(record["trial"])]
            model, _ = setup.evaluator.finetune(evaluation.genome, trial_seed(config.seed + FRESH, evaluation.trial))
            rows.append(dict(trial=evaluation.trial, compression=float(record["compression"]),
                             test=float(record["test_error"]), fresh=error_rate(model, setup.data.test)))
    return rows


def main() -> None:
    seeds = [int(s) for s in sys.argv[1:]] or [0, 1, 2]
    lines = ["# Fine-tuning luck on the fronts of NSGA-II@1000 and the ehvi-joint loop@100 (LeNet-300-100)", "",
             f"Command: python experiments/finetune_luck.py {' '.join(map(str, seeds))}", "",
             "Each model of a run's validation front fine-tuned again with a fresh seed (same genome, same 375 "
             "steps from the same base model); test hypervolume of the same models, reference (1, 1), on the log "
             "params axis, with the recorded test errors and with the fresh ones, and by band of the params ratio.",
             "", "| run | models | test HV recorded | fresh seed | change | "
             + " | ".join(f"{a}-{b}x change" for a, b in zip(EDGES, EDGES[1:])) + f" | >= {EDGES[-1]}x change "
             "| mean test error change |", "|---|---|---|---|---|" + "---|" * len(EDGES) + "---|"]
    changes = {m: [] for m in METHODS}
    for seed in seeds:
        for method in METHODS:
            name = f"{method}_seed{seed}"
            rows = refinetune(STUDY / "lenet-300-100_fashion-mnist" / name)
            size = [float(log_axis(1 / r["compression"])) for r in rows]
            old = np.array([[r["test"], s] for r, s in zip(rows, size)])
            new = np.array([[r["fresh"], s] for r, s in zip(rows, size)])
            bands = np.subtract(band_hvs(new, 1.0, EDGES), band_hvs(old, 1.0, EDGES))
            change = hypervolume(new, [1.0, 1.0]) - hypervolume(old, [1.0, 1.0])
            changes[method].append(change)
            lines.append(f"| {name} | {len(rows)} | {hypervolume(old, [1.0, 1.0]):.4f} | "
                         f"{hypervolume(new, [1.0, 1.0]):.4f} | {change:+.4f} | "
                         + " | ".join(f"{b:+.4f}" for b in bands)
                         + f" | {np.mean(new[:, 0] - old[:, 0]):+.4f} |")
            print(lines[-1], flush=True)
    lines += ["", "Median change of the test hypervolume: "
              + "; ".join(f"{m} {np.median(v):+.4f}" for m, v in changes.items()) + "."]
    (STUDY / "finetune_luck.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
