"""A run's outputs: evaluations and front as CSV, Pareto-front and convergence plots as PNG, a summary as JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from surrogate_emo.evaluate import Evaluation, batch_of, objective_vector  # noqa: E402
from surrogate_emo.front import hypervolume, hypervolume_trace, pareto_indices  # noqa: E402

if TYPE_CHECKING:
    from surrogate_emo.config import RunConfig
    from surrogate_emo.pipeline import Setup
    from surrogate_emo.problems import SyntheticEvaluator


REDUCTIONS = {"params": ("compression", "compression ratio in parameters"),
              "bytes": ("size_reduction", "size reduction in stored bytes"),
              "macs": ("macs_reduction", "reduction in MACs"),
              "energy": ("energy_reduction", "reduction in accelerator energy")}
"""Per cheap objective: its reduction column in evaluations.csv and front.csv, and how a plot names it."""


def _reduction(ratio: float) -> float:
    """Dense / compressed; infinite when nothing is left (an all-zero genome keeps no MACs, only biases)."""
    return 1.0 / ratio if ratio > 0 else float("inf")


def _evaluation_row(trial: int, e: Evaluation, setup: Setup) -> dict:
    costs = setup.scheme.costs(e.genome)
    return {"trial": trial, "status": e.status, "val_error": e.error, "compression": _reduction(e.ratios["params"]),
            "size_reduction": _reduction(e.ratios["bytes"]), "macs_reduction": _reduction(e.ratios["macs"]),
            **({"energy_reduction": _reduction(e.ratios["energy"])} if "energy" in e.ratios else {}),
            "params": costs.params, "bytes": costs.bytes, "macs": costs.macs,
            **({"energy": costs.energy} if costs.energy is not None else {}), "finetune_steps": e.steps,
            "seconds": round(e.seconds, 4), "seed": e.seed, "source": e.source, "reason": e.reason,
            "predicted_error": e.extra["predicted"][0] if "predicted" in e.extra else "",
            **setup.scheme.layer_columns(e.genome)}


def surrogate_accuracy(evaluations: list[Evaluation]) -> dict:
    """Predicted vs observed error on the infill points (those the surrogate predicted before evaluation)."""
    pairs = np.array([[e.extra["predicted"][0], e.error] for e in evaluations if e.ok and "predicted" in e.extra])
    if len(pairs) < 3:
        return {}
    rho = spearmanr(pairs[:, 0], pairs[:, 1]).statistic
    iterations = {batch_of(e.extra): e.extra for e in evaluations if "iteration" in e.extra}
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


def best_compression_within(front: list[dict], dense_test_error: float, points: float,
                            column: str = "compression") -> float | None:
    """Largest reduction ``column`` (params: ``compression``; ``size_reduction``, ``macs_reduction``,
    ``energy_reduction``) among front models whose test error is at most ``points`` above the dense one."""
    ratios = [row[column] for row in front
              if column in row and row["test_error"] <= dense_test_error + points / 100 + 1e-12]
    return max(ratios) if ratios else None


def hypervolumes(evaluator, evaluations: list[Evaluation]) -> dict[str, float]:
    """Hypervolume of the validation objectives on both scales of the cheap objectives, reference 1 everywhere:
    ``log`` (each decade of compression counts the same) and ``linear`` (the ratio; everything beyond 10x shares
    the last tenth of the axis)."""
    cheap = evaluator.objective_names[1:]
    found = {}
    for scale in ("log", "linear"):
        F = np.array([objective_vector(e, cheap, scale, evaluator.objective_decades) for e in evaluations])
        found[scale] = hypervolume(F.reshape(-1, 1 + len(cheap)), evaluator.ref_point)
    return found


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
        "final_hypervolume_val": float(trace[-1]) if len(trace) else 0.0,  # on the configured scale
        "front_size": len(front_rows),
        "front_val_errors_reproduced": all(abs(r["val_error"] - r["val_error_rebuilt"]) < 1e-9 for r in front_rows),
        "best_compression_within_1pt_test": best_compression_within(front_rows, setup.dense_test_error, 1.0),
        "best_compression_within_2pt_test": best_compression_within(front_rows, setup.dense_test_error, 2.0),
        **{f"best_{column}_within_{points}pt_test": best_compression_within(front_rows, setup.dense_test_error,
                                                                            points, column)
           for column, cost in (("size_reduction", "bytes"), ("energy_reduction", "energy"))
           if cost in setup.scheme.cost_names for points in (1, 2)},
        "final_hypervolume_val_by_scale": hypervolumes(setup.evaluator, evaluations),
        "objective_scale": setup.evaluator.objective_scale,
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


def front_plot_limits(x, y, margin: float = 0.05) -> dict:
    """Axes of the Pareto-front plot that hold every point, with a margin.

    Args:
        x: compression ratios (dense / compressed), drawn on a log axis; an infinite ratio (nothing kept) is drawn
            at ``inf_x``, inside the right edge.
        y: error rates in %.
        margin: the fraction of each axis's span (log span on a log axis) left free on either side.

    Returns:
        ``{"xlim", "ylim", "yscale", "inf_x"}``: ``yscale`` is "log" when the errors span more than a decade,
        "symlog" (linear below 1%) when they do and one of them is 0, else "linear"; ``inf_x`` is None when no
        ratio is infinite.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    finite = x[np.isfinite(x) & (x > 0)]
    lo, hi = (np.log10(finite.min()), np.log10(finite.max())) if len(finite) else (0.0, 1.0)
    pad = max(margin * (hi - lo), 0.05)
    inf_x = 10 ** (hi + 3 * pad) if np.isinf(x).any() else None
    xlim = (10 ** (lo - pad), 10 ** (hi + (4 if inf_x is not None else 1) * pad))
    y = y[np.isfinite(y)]
    bottom, top = (float(y.min()), float(y.max())) if len(y) else (0.0, 100.0)
    if bottom > 0 and top / bottom > 10:
        ypad = margin * np.log10(top / bottom)
        return {"xlim": xlim, "ylim": (bottom / 10**ypad, top * 10**ypad), "yscale": "log", "inf_x": inf_x}
    if bottom <= 0 < top and top > 10 * max(float(y[y > 0].min()), 1.0):
        ypad = margin * np.log10(top)
        return {"xlim": xlim, "ylim": (-0.1, top * 10**ypad), "yscale": "symlog", "inf_x": inf_x}
    span = max(top - bottom, 1.0)
    return {"xlim": xlim, "ylim": (bottom - margin * span, top + margin * span), "yscale": "linear", "inf_x": inf_x}


def _plot_front(path: Path, evaluations: list[Evaluation], front: list[dict], setup: Setup,
                config: RunConfig) -> dict:
    """Every successful evaluation and every front model, on a log axis of the run's first cheap objective (dense /
    compressed); returns the axes' limits. With more than two objectives the front is drawn as points: seen along
    one objective, a front in three zig-zags."""
    ok = [e for e in evaluations if e.ok]
    cheap = setup.evaluator.objective_names[1]
    column, what = REDUCTIONS[cheap]
    x = np.array([_reduction(e.ratios[cheap]) for e in ok], dtype=float)
    y = np.array([100 * e.error for e in ok], dtype=float)
    front = sorted(front, key=lambda r: r[column])
    fx = np.array([r[column] for r in front], dtype=float)
    fval = np.array([100 * r["val_error"] for r in front], dtype=float)
    ftest = np.array([100 * r["test_error"] for r in front], dtype=float)
    dense = 100 * setup.dense_test_error
    limits = front_plot_limits(np.concatenate([x, fx]), np.concatenate([y, fval, ftest, [dense]]))

    def at_edge(values: np.ndarray) -> np.ndarray:  # an infinite ratio is drawn at the right edge
        return np.where(np.isinf(values), limits["inf_x"] or 0.0, values)

    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    ax.set_xscale("log")
    if limits["yscale"] == "symlog":
        ax.set_yscale("symlog", linthresh=1.0, linscale=0.5)
    else:
        ax.set_yscale(limits["yscale"])
    ax.scatter(at_edge(x), y, s=10, c="0.7", label=f"evaluations (val), n={len(ok)}")
    many = len(setup.evaluator.objective_names) > 2
    if len(fx):
        others = f" in {len(setup.evaluator.objective_names)} objectives" if many else ""
        ax.plot(at_edge(fx), fval, "o" if many else "o-", ms=4, label=f"front (val){others}, {len(fx)} models")
        ax.plot(at_edge(fx), ftest, "s" if many else "s--", ms=4, mfc="none" if many else None,
                label="front re-scored (test)")
    nothing_kept = int(np.isinf(x).sum())
    if nothing_kept:
        ax.axvline(limits["inf_x"], color="0.4", lw=0.8, ls="-.",
                   label=f"nothing kept (ratio inf), n={nothing_kept}: drawn here")
    ax.axhline(dense, color="k", lw=0.8, ls=":", label=f"dense model (test), {dense:.3g}%")
    failed = len(evaluations) - len(ok)
    if failed:
        ax.plot([], [], " ", label=f"failed (no error to draw), n={failed}")
    if not evaluations:
        ax.text(0.5, 0.5, "no evaluation", transform=ax.transAxes, ha="center")
    ax.set_xlim(*limits["xlim"])
    ax.set_ylim(*limits["ylim"])
    for axis, scale, subs in ((ax.xaxis, "log", (1.0, 2.0, 5.0)), (ax.yaxis, limits["yscale"], (1.0, 2.0, 3.0, 5.0))):
        if scale == "log":  # ticks at 1, 2, (3,) 5 x 10^k, labelled plainly (0.5, 20, 100), not as powers of ten
            axis.set_major_locator(ticker.LogLocator(subs=subs))
            axis.set_minor_formatter(ticker.NullFormatter())
        axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel(f"{what}: dense / compressed (log scale)")
    ax.set_ylabel(f"error rate (%{', log scale' if limits['yscale'] != 'linear' else ''})")
    ax.set_title(f"{config.model} on {config.dataset}: {config.search}, {len(evaluations)} true evaluations")
    ax.legend(fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)
    return limits


def _plot_convergence(path: Path, trace: np.ndarray, config: RunConfig) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(np.arange(1, len(trace) + 1), trace)
    ax.set_xlabel("true evaluations (fine-tunings), in the order they were run")
    objectives = " x ".join(["val error", *(f"{name} ratio" for name in config.objectives)])
    ax.set_ylabel("hypervolume of the front so far")
    ax.set_title(f"{config.name}: hypervolume ({objectives}; reference point 1)", fontsize=10)
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
