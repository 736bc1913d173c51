"""Issue 13's LeNet-300-100 comparison: the fidelity-0 loops at 100 full evaluations against study 2's runs
(NSGA-II to 1,000; the GP and RF loops, BoTorch's qLogNEHVI and random search at 100), on the log-scale params
axis (1 + log10(ratio) / 3).

    python experiments/multifidelity_compare.py

Reads results/lenet300_multifidelity/ and results/lenet300_fashion/; writes results/lenet300_multifidelity/compare.md.
Two error reference points: 1.0, and a useful one, the dense model's validation error + 10 points.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from surrogate_emo.compare import load_run
from surrogate_emo.front import hypervolume, hypervolume_trace

NEW = Path("results/lenet300_multifidelity/lenet-300-100_fashion-mnist")
OLD = Path("results/lenet300_fashion/lenet-300-100_fashion-mnist")
OUT = Path("results/lenet300_multifidelity/compare.md")
SEEDS = range(5)
NEW_METHODS = ("surrogate_rf_f0", "surrogate_rf_f0_screened", "surrogate_gp_f0")
OLD_METHODS = ("surrogate_gp", "surrogate_rf", "botorch", "random", "nsga2")


def log_axis(ratio) -> np.ndarray:
    return 1.0 + np.log10(np.maximum(np.asarray(ratio, dtype=np.float64), 1e-12)) / 3.0


def run_dir(method: str, seed: int) -> Path:
    return (NEW if method in NEW_METHODS else OLD) / f"{method}_seed{seed}"


def archive(method: str, seed: int) -> tuple[np.ndarray, list]:
    """(validation error, log params) of every evaluation in trial order, failed ones at error 1."""
    evaluations = load_run(run_dir(method, seed), f"{method}_seed{seed}")
    F = np.array([[e.error if e.ok else 1.0, log_axis(e.ratios["params"])] for e in evaluations])
    return F, evaluations


def test_hv(method: str, seed: int, ref: float) -> float:
    """Hypervolume of the run's validation front re-scored on the test split (front.csv)."""
    with open(run_dir(method, seed) / "front.csv") as handle:
        rows = list(csv.DictReader(handle))
    F = np.array([[float(r["test_error"]), log_axis(1 / float(r["compression"]))] for r in rows])
    return hypervolume(F, [ref, 1.0])


def summary(method: str, seed: int) -> dict:
    return json.loads((run_dir(method, seed) / "summary.json").read_text())


def median(values) -> str:
    return f"{np.median(values):.4f}"


def p_value(a, b) -> str:
    return f"{mannwhitneyu(a, b, alternative='two-sided').pvalue:.3f}"


def main() -> None:
    useful = summary("nsga2", 0)["dense_val_error"] + 0.10
    refs = (("1.0", 1.0), (f"{useful:.3f} (dense + 10 points)", useful))
    lines = ["# Fidelity-0 loops against study 2 (LeNet-300-100, Fashion-MNIST, log-scale params axis)", "",
             "## Test split: the loops at 100 full evaluations against NSGA-II at 1,000", "",
             "Hypervolume of each run's validation front, its models scored on the test split "
             "(error, 1 + log10(params ratio) / 3), reference (e, 1).", ""]
    for label, ref in refs:
        lines += [f"Error reference {label}:", "",
                  "| method | evaluations | test HV per seed | median | rank-sum p vs NSGA-II@1000 |", "|---|---|---|---|---|"]
        nsga = [test_hv("nsga2", s, ref) for s in SEEDS]
        for method in (*NEW_METHODS, "surrogate_gp", "surrogate_rf", "botorch", "random", "nsga2"):
            values = [test_hv(method, s, ref) for s in SEEDS]
            budget = 1000 if method == "nsga2" else 100
            lines.append(f"| {method} | {budget} | {', '.join(f'{v:.4f}' for v in values)} | {median(values)} | "
                         f"{'–' if method == 'nsga2' else p_value(values, nsga)} |")
        lines.append("")

    lines += ["## Validation split at equal fine-tuning steps", "",
              "Every method's first 100 evaluations cost 100 x 375 fine-tuning steps; the fidelity-0 loops spend "
              "forward passes besides (counted below in seconds). NSGA-II's evaluations to reach a run's result: the "
              "same seed's NSGA-II archive.", ""]
    for label, ref in refs:
        lines += [f"Error reference {label}:", "",
                  "| method | validation HV at 100, per seed | median | rank-sum p vs each fidelity-0 loop | "
                  "NSGA-II evaluations to reach it, per seed |", "|---|---|---|---|---|"]
        at100 = {m: [hypervolume(archive(m, s)[0][:100], [ref, 1.0]) for s in SEEDS]
                 for m in (*NEW_METHODS, *OLD_METHODS)}
        traces = [hypervolume_trace(archive("nsga2", s)[0], [ref, 1.0]) for s in SEEDS]
        for method, values in at100.items():
            reach = []
            for s, v in zip(SEEDS, values):
                hit = np.flatnonzero(traces[s] >= v - 1e-12)
                reach.append(str(hit[0] + 1) if len(hit) else ">1000")
            tests = "; ".join(f"{p_value(values, at100[m])} vs {m}" for m in NEW_METHODS if m != method)
            lines.append(f"| {method} | {', '.join(f'{v:.4f}' for v in values)} | {median(values)} | {tests} | "
                         f"{', '.join(reach)} |")
        lines.append("")

    lines += ["## Compute per run (medians over seeds)", "",
              "| method | fine-tuning steps | fine-tuning s | zero-shot models scored | zero-shot s | optimizer s "
              "(incl. zero-shot) |", "|---|---|---|---|---|---|"]
    for method in (*NEW_METHODS, *OLD_METHODS):
        rows = []
        for s in SEEDS:
            _, evaluations = archive(method, s)
            first = evaluations[:100]
            info = summary(method, s)
            rows.append((sum(e.steps for e in first), sum(e.seconds for e in first),
                         info.get("zero_shot_scored_this_session", 0), info.get("zero_shot_seconds_this_session", 0.0),
                         info["search_overhead_seconds_this_session"] * (100 / len(evaluations))))
        steps, seconds, scored, zs, overhead = np.median(np.array(rows, dtype=float), axis=0)
        lines.append(f"| {method} (first 100) | {steps:.0f} | {seconds:.0f} | {scored:.0f} | {zs:.0f} | {overhead:.0f} |")
    lines += ["", "Seconds were taken with two runs sharing the 2 cores, in both studies (study 2's optimizer seconds "
              "are per 100 evaluations, prorated for NSGA-II)."]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
