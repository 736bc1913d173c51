"""Compare finished runs across methods and seeds: hypervolume against true evaluations, overheads, surrogate
accuracy. Reads the studies, never the CSVs, so the numbers are the stored ones."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402

from surrogate_emo.evaluate import Evaluation, objective_vector  # noqa: E402
from surrogate_emo.front import hypervolume_trace  # noqa: E402
from surrogate_emo.report import surrogate_accuracy, write_csv  # noqa: E402
from surrogate_emo.store import Study  # noqa: E402


def load_run(run_dir: Path, name: str) -> list[Evaluation]:
    """Evaluations of run ``name`` from ``run_dir/study.sqlite``, in trial order."""
    study = Study(run_dir / "study.sqlite")
    try:
        run_id = study.run_id(name)
        return list(study.evaluations(run_id).values())
    finally:
        study.close()


def objectives(evaluations: list[Evaluation], cheap: str = "params", scale: str = "linear") -> np.ndarray:
    """`n x 2` minimized (validation error, ratio on ``scale``, see `cheap_objective`); failed evaluations at the
    worst error."""
    return np.array([objective_vector(e, [cheap], scale) for e in evaluations]).reshape(-1, 2)


def _at(trace: np.ndarray, n: int) -> float | None:
    """Hypervolume after ``n`` true evaluations; None when the run stopped before ``n``."""
    return float(trace[n - 1]) if len(trace) >= n else None


def evaluations_to_reach(trace: np.ndarray, target: float) -> int | None:
    """True evaluations after which ``trace`` first reaches ``target``; None if it never does."""
    reached = np.flatnonzero(trace >= target - 1e-12)
    return int(reached[0]) + 1 if len(reached) else None


def write_comparison(out: Path, methods: list[str], seeds: list[int], baseline: str, checkpoints: list[int],
                     ref_point=(1.0, 1.0)) -> list[dict]:
    """Write comparison.csv, comparison.md and hypervolume.png under ``out`` for runs ``<method>_seed<seed>``."""
    rows, traces = [], {}
    for method in methods:
        for seed in seeds:
            name = f"{method}_seed{seed}"
            run_dir = out / name
            if not (run_dir / "study.sqlite").exists():
                rows.append({"method": method, "seed": seed, "status": "missing"})
                continue
            evaluations = load_run(run_dir, name)
            trace = hypervolume_trace(objectives(evaluations), np.asarray(ref_point))
            traces[method, seed] = trace
            summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
            row = {"method": method, "seed": seed, "status": "finished" if summary else "unfinished",
                   "true_evaluations": len(evaluations), "failed": sum(not e.ok for e in evaluations),
                   **{f"hv@{n}": _at(trace, n) for n in checkpoints},
                   "hv_final": float(trace[-1]) if len(trace) else 0.0,
                   "finetune_seconds": float(sum(e.seconds for e in evaluations)),
                   "best_compression_within_1pt_test": summary.get("best_compression_within_1pt_test"),
                   "best_compression_within_2pt_test": summary.get("best_compression_within_2pt_test"),
                   "dense_test_error": summary.get("dense_test_error")}
            row.update({f"surrogate_{k}": v for k, v in surrogate_accuracy(evaluations).items()})
            rows.append(row)
    for row in rows:  # how long the baseline, same seed, took to reach what this run ended with
        base = traces.get((baseline, row["seed"]))
        if base is not None and "hv_final" in row:
            row[f"{baseline}_evaluations_to_reach_hv_final"] = evaluations_to_reach(base, row["hv_final"])
    write_csv(out / "comparison.csv", rows)
    (out / "comparison.md").write_text(_markdown(rows, methods, baseline, checkpoints))
    _plot(out / "hypervolume.png", traces, methods)
    return rows


def _markdown(rows: list[dict], methods: list[str], baseline: str, checkpoints: list[int]) -> str:
    done = [r for r in rows if r.get("status") != "missing"]
    finals = {m: [r["hv_final"] for r in done if r["method"] == m] for m in methods}
    lines = ["| method | runs | true evaluations | " + " | ".join(f"median HV @{n}" for n in checkpoints)
             + " | median final HV | rank-sum p vs " + baseline + " (final HV, each at its own budget) | "
             f"{baseline} evaluations to reach it (median over seeds) | median fine-tune s | "
             "median surrogate fit+pool+infill s/iteration | median Spearman (pred vs obs) |",
             "|---" * (9 + len(checkpoints)) + "|"]
    for m in methods:
        mine = [r for r in done if r["method"] == m]
        if not mine:
            lines.append(f"| {m} | 0 |" + " |" * (7 + len(checkpoints)))
            continue
        p = ""
        if m != baseline and len(finals[m]) >= 2 and len(finals[baseline]) >= 2:
            p = f"{mannwhitneyu(finals[m], finals[baseline], alternative='two-sided').pvalue:.3f}"
        overhead = [r["surrogate_fit_seconds_per_iteration"] + r["surrogate_pool_seconds_per_iteration"]
                    + r["surrogate_infill_seconds_per_iteration"] for r in mine
                    if "surrogate_fit_seconds_per_iteration" in r]
        rho = [r["surrogate_spearman"] for r in mine if "surrogate_spearman" in r]
        def med(values, digits=4):
            values = [v for v in values if v is not None]
            return f"{np.median(values):.{digits}f}" if values else "–"

        needed = [r.get(f"{baseline}_evaluations_to_reach_hv_final") for r in mine]
        needed_text = med(needed, 0) + ("" if all(v is not None for v in needed) else " (some never)")
        lines.append(f"| {m} | {len(mine)} | {int(np.median([r['true_evaluations'] for r in mine]))} | "
                     + " | ".join(med([r[f'hv@{n}'] for r in mine]) for n in checkpoints)
                     + f" | {med(finals[m])} | {p} | {needed_text} | "
                     f"{np.median([r['finetune_seconds'] for r in mine]):.0f} | {med(overhead)} | {med(rho)} |")
    unfinished = [f"{r['method']} seed {r['seed']} ({r['status']})" for r in rows if r.get("status") != "finished"]
    if unfinished:
        lines.append("\nNot finished, shown as far as they got: " + ", ".join(unfinished))
    return "\n".join(lines) + "\n"


def _plot(path: Path, traces: dict, methods: list[str]) -> None:
    """Median and interquartile band per method; the right panel zooms on the tail, where methods differ."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    tails = []
    for method in methods:
        curves = [t for (m, _), t in traces.items() if m == method]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        stack = np.array([c[:length] for c in curves])
        x = np.arange(1, length + 1)
        median = np.median(stack, axis=0)
        tails.append(median[min(9, length - 1):])
        for ax in axes:
            line, = ax.plot(x, median, label=f"{method} (median of {len(curves)})")
            ax.fill_between(x, np.percentile(stack, 25, axis=0), np.percentile(stack, 75, axis=0),
                            color=line.get_color(), alpha=0.2)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("true evaluations (fine-tunings)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("hypervolume (val error x params ratio, ref (1, 1))")
    axes[0].legend(fontsize=8)
    if tails:
        low, high = min(t.min() for t in tails), max(t.max() for t in tails)
        axes[1].set_xlim(left=10)
        axes[1].set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        axes[1].set_title("from the 10th evaluation on", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
