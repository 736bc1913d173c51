"""A run's outputs: evaluations and front as CSV, Pareto-front and convergence plots as PNG, a summary as JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from surrogate_emo.evaluate import Evaluation  # noqa: E402
from surrogate_emo.front import hypervolume_trace  # noqa: E402

if TYPE_CHECKING:
    from surrogate_emo.config import RunConfig
    from surrogate_emo.pipeline import Setup


def _layer_columns(setup: Setup, genome: np.ndarray) -> dict:
    settings = setup.space.decode(genome)
    row = {f"gene:{name}": round(float(g), 6) for name, g in zip(setup.space.gene_names, genome)}
    for spec, setting in zip(setup.space.layers, settings):
        row[f"{spec.name}.rank"] = setting.rank
        row[f"{spec.name}.nnz"] = setting.nnz
    return row


def _reduction(ratio: float) -> float:
    """Dense / compressed; infinite when nothing is left (an all-zero genome keeps no MACs, only biases)."""
    return 1.0 / ratio if ratio > 0 else float("inf")


def _evaluation_row(trial: int, e: Evaluation, setup: Setup) -> dict:
    costs = setup.evaluator.cost_model.of(e.genome)
    return {"trial": trial, "status": e.status, "val_error": e.error, "compression": _reduction(e.ratios["params"]),
            "size_reduction": _reduction(e.ratios["bytes"]), "macs_reduction": _reduction(e.ratios["macs"]),
            "params": costs.params, "bytes": costs.bytes, "macs": costs.macs, "finetune_steps": e.steps,
            "seconds": round(e.seconds, 4), "seed": e.seed, "source": e.source, "reason": e.reason,
            "predicted_error": e.extra["predicted"][0] if "predicted" in e.extra else "",
            **_layer_columns(setup, e.genome)}


def surrogate_accuracy(evaluations: list[Evaluation]) -> dict:
    """Predicted vs observed error on the infill points (those the surrogate predicted before evaluation)."""
    pairs = np.array([[e.extra["predicted"][0], e.error] for e in evaluations if e.ok and "predicted" in e.extra])
    if len(pairs) < 3:
        return {}
    rho = spearmanr(pairs[:, 0], pairs[:, 1]).statistic
    iterations = {e.extra["iteration"]: e.extra for e in evaluations if "iteration" in e.extra}
    return {"infill_points": len(pairs), "spearman": float(rho),
            "mean_abs_error": float(np.abs(pairs[:, 0] - pairs[:, 1]).mean()),
            "iterations": len(iterations),
            "fit_seconds_per_iteration": float(np.mean([it["fit_seconds"] for it in iterations.values()])),
            "pool_seconds_per_iteration": float(np.mean([it["pool_seconds"] for it in iterations.values()])),
            "infill_seconds_per_iteration": float(np.mean([it["infill_seconds"] for it in iterations.values()]))}


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows of dicts as CSV; the columns are every key seen, in first-seen order."""
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for row in rows for k in row)), restval="")
        writer.writeheader()
        writer.writerows(rows)


def best_compression_within(front: list[dict], dense_test_error: float, points: float) -> float | None:
    """Largest compression ratio among front models whose test error is at most ``points`` above the dense one."""
    ratios = [row["compression"] for row in front if row["test_error"] <= dense_test_error + points / 100 + 1e-12]
    return max(ratios) if ratios else None


def write_report(run_dir: Path, config: RunConfig, setup: Setup, evaluations: list[Evaluation], front: list[dict],
                 summary: dict) -> dict:
    """Write every output of a run; returns the figures it adds to the summary."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_csv(run_dir / "evaluations.csv", [_evaluation_row(e.trial, e, setup) for e in evaluations])
    front_rows = [{**{k: v for k, v in _evaluation_row(row["trial"], row["evaluation"], setup).items()
                      if k not in ("status", "reason", "source")},
                   "val_error_rebuilt": row["val_error_rebuilt"], "test_error": row["test_error"]} for row in front]
    write_csv(run_dir / "front.csv", front_rows)

    F = np.array([setup.evaluator.objectives(e) for e in evaluations]).reshape(-1, len(setup.evaluator.objective_names))
    trace = hypervolume_trace(F, setup.evaluator.ref_point)
    extra = {
        "final_hypervolume_val": float(trace[-1]) if len(trace) else 0.0,
        "front_size": len(front_rows),
        "front_val_errors_reproduced": all(abs(r["val_error"] - r["val_error_rebuilt"]) < 1e-9 for r in front_rows),
        "best_compression_within_1pt_test": best_compression_within(front_rows, setup.dense_test_error, 1.0),
        "best_compression_within_2pt_test": best_compression_within(front_rows, setup.dense_test_error, 2.0),
        "final_finetune_epochs": config.final_finetune_epochs,
    }
    accuracy = surrogate_accuracy(evaluations)
    if accuracy:
        extra["surrogate"] = accuracy
        _plot_accuracy(run_dir / "surrogate_accuracy.png", evaluations, accuracy)
    _plot_front(run_dir / "pareto_front.png", evaluations, front_rows, setup, config)
    _plot_convergence(run_dir / "convergence.png", trace, config)
    (run_dir / "summary.json").write_text(json.dumps({**summary, **extra}, indent=2, default=str) + "\n")
    return extra


def _plot_front(path: Path, evaluations: list[Evaluation], front: list[dict], setup: Setup, config: RunConfig) -> None:
    ok = [e for e in evaluations if e.ok]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter([_reduction(e.ratios["params"]) for e in ok], [100 * e.error for e in ok], s=10, c="0.75",
               label=f"all evaluations (val, n={len(ok)})")
    if front:
        comp = [r["compression"] for r in front]
        ax.plot(comp, [100 * r["val_error"] for r in front], "o-", ms=4, label="front (val)")
        ax.plot(comp, [100 * r["test_error"] for r in front], "s--", ms=4, label="front re-scored (test)")
    ax.axhline(100 * setup.dense_test_error, color="k", lw=0.8, ls=":", label="dense model (test)")
    if ok:
        ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no successful evaluation", transform=ax.transAxes, ha="center")
    ax.set_xlabel("compression ratio (dense params / stored params)")
    ax.set_ylabel("error rate (%)")
    worst = max([100 * setup.dense_test_error * 4, 10.0])
    ax.set_ylim(0, min(100.0, worst))
    ax.set_title(f"{config.model} on {config.dataset}: {config.search}, {len(evaluations)} true evaluations")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)


def _plot_convergence(path: Path, trace: np.ndarray, config: RunConfig) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(np.arange(1, len(trace) + 1), trace)
    ax.set_xlabel("true evaluations")
    ax.set_ylabel("hypervolume (val error x params ratio, ref = 1)")
    ax.set_title(f"{config.name}: convergence")
    ax.grid(alpha=0.3)
    _save(fig, path)


def _plot_accuracy(path: Path, evaluations: list[Evaluation], accuracy: dict) -> None:
    pairs = np.array([[e.extra["predicted"][0], e.error] for e in evaluations if e.ok and "predicted" in e.extra])
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(100 * pairs[:, 0], 100 * pairs[:, 1], s=12)
    top = 100 * max(pairs.max(), 0.01)
    ax.plot([0, top], [0, top], "k:", lw=0.8)
    ax.set_xlabel("predicted validation error before evaluation (%)")
    ax.set_ylabel("observed validation error (%)")
    ax.set_title(f"surrogate on {accuracy['infill_points']} infill points: Spearman {accuracy['spearman']:.2f}")
    ax.grid(alpha=0.3)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
