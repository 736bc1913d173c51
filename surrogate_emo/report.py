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
from surrogate_emo.front import hypervolume, hypervolume_trace, pareto_indices  # noqa: E402

if TYPE_CHECKING:
    from surrogate_emo.config import RunConfig
    from surrogate_emo.pipeline import Setup
    from surrogate_emo.problems import SyntheticEvaluator


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


def write_problem_report(run_dir: Path, config: RunConfig, evaluator: SyntheticEvaluator,
                         evaluations: list[Evaluation], summary: dict) -> tuple[dict, list[dict]]:
    """The outputs of a run on a test problem (no compression axis): evaluations.csv and front.csv (objectives
    ``f1 ... fm`` and the problem's variables ``x1 ... xn``), pareto_front.png, convergence.png and summary.json.
    Returns the figures it adds to the summary, and the front's rows."""
    run_dir.mkdir(parents=True, exist_ok=True)
    names = evaluator.objective_names
    F = np.array([evaluator.objectives(e) for e in evaluations]).reshape(-1, len(names))

    def row(e: Evaluation, f: np.ndarray) -> dict:
        predicted = e.extra.get("predicted")
        return {"trial": e.trial, "status": e.status, **{n: float(v) for n, v in zip(names, f)},
                **({f"predicted_{n}": float(v) for n, v in zip(names, predicted)} if predicted is not None else {}),
                "seconds": round(e.seconds, 6), "seed": e.seed, "reason": e.reason,
                **{f"x{i + 1}": float(x) for i, x in enumerate(evaluator.to_problem(e.genome))}}

    rows = [row(e, f) for e, f in zip(evaluations, F)]
    ok = [i for i, e in enumerate(evaluations) if e.ok]
    front = [{k: v for k, v in rows[ok[i]].items() if k not in ("status", "reason")}
             for i in pareto_indices(F[ok])] if ok else []
    write_csv(run_dir / "evaluations.csv", rows)
    write_csv(run_dir / "front.csv", front)
    trace = hypervolume_trace(F, evaluator.ref_point)
    true_front = evaluator.true_front()
    limit = hypervolume(true_front, evaluator.ref_point) if true_front is not None else None
    extra = {"final_hypervolume": float(trace[-1]) if len(trace) else 0.0, "true_front_hypervolume": limit,
             "front_size": len(front)}
    accuracy = surrogate_accuracy(evaluations)  # of f1, the objective stored as the error
    if accuracy:
        extra["surrogate_f1"] = accuracy
    _plot_problem_front(run_dir / "pareto_front.png", F[ok], true_front, evaluator, config)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(np.arange(1, len(trace) + 1), trace, label=config.search)
    if limit is not None:
        ax.axhline(limit, color="gray", ls="--", lw=0.8, label="true front")
    ax.set_xlabel("true evaluations")
    ax.set_ylabel(f"hypervolume (ref = {np.round(evaluator.ref_point, 3).tolist()})")
    ax.set_title(f"{evaluator.name}: convergence")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, run_dir / "convergence.png")
    (run_dir / "summary.json").write_text(json.dumps({**summary, **extra}, indent=2, default=str) + "\n")
    return extra, front


def _plot_problem_front(path: Path, F: np.ndarray, true_front: np.ndarray | None, evaluator: SyntheticEvaluator,
                        config: RunConfig) -> None:
    """Objectives two by two (one panel for 2 objectives, three for 3, the first four objectives beyond): every
    evaluation in grey, the run's front in colour, the known front in light grey, the reference point dashed."""
    m = min(F.shape[1], 4)
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs), 4.2), squeeze=False)
    front = F[pareto_indices(F)] if len(F) else F
    for ax, (i, j) in zip(axes[0], pairs):
        if true_front is not None:
            ax.scatter(true_front[:, i], true_front[:, j], s=1, color="0.85", label="true front")
        ax.scatter(F[:, i], F[:, j], s=8, color="0.6", label=f"evaluations (n={len(F)})")
        ax.scatter(front[:, i], front[:, j], s=14, color="C0", label=f"front (n={len(front)})")
        ax.axvline(evaluator.ref_point[i], color="C3", ls=":", lw=0.8)
        ax.axhline(evaluator.ref_point[j], color="C3", ls=":", lw=0.8, label="reference point")
        ax.set_xlabel(f"f{i + 1}")
        ax.set_ylabel(f"f{j + 1}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{evaluator.name}: {config.search}, {len(F)} true evaluations", fontsize=10)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
