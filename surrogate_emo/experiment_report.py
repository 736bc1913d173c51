"""The report of an experiment, read from the runs' studies: per-evaluation metrics, tables with rank-sum tests,
and plots of hypervolume against true evaluations and wall-clock, and of the final fronts.

Wall-clock is sequential time: each evaluation's own seconds plus its batch's optimizer seconds, so runs made
with different ``jobs`` compare on the same footing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pymoo.indicators.igd import IGD  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402

from surrogate_emo.compare import evaluations_to_reach  # noqa: E402
from surrogate_emo.config import BASE_FIELDS  # noqa: E402
from surrogate_emo.evaluate import objective_vector  # noqa: E402
from surrogate_emo.experiment import Experiment, RunSpec, is_finished  # noqa: E402
from surrogate_emo.front import hypervolume, hypervolume_trace, pareto_indices  # noqa: E402
from surrogate_emo.problems import SyntheticEvaluator  # noqa: E402
from surrogate_emo.report import write_csv  # noqa: E402
from surrogate_emo.side_by_side import write_side_by_side  # noqa: E402
from surrogate_emo.store import Study  # noqa: E402

REACH = (0.95, 0.99)  # "true evaluations needed to reach X% of the best hypervolume any run of the problem found"


@dataclass
class RunTrace:
    """One run's metrics after each true evaluation."""

    spec: RunSpec
    status: str
    F: np.ndarray
    hv: np.ndarray
    igd: np.ndarray | None
    evaluation_seconds: np.ndarray
    search_seconds: np.ndarray
    batch_seconds: list[float]  # optimizer time of each batch after the first
    prediction_errors: np.ndarray  # mean |predicted - observed| of the modelled objectives; NaN off infill points
    warm_started: np.ndarray
    failed: int
    scales: dict = field(default_factory=dict)  # compression runs: final hypervolume on the log and linear scales
    bases: list[dict] = field(default_factory=list)  # compression runs: the base models met (`pipeline.base_history`)

    @property
    def wall(self) -> np.ndarray:
        return np.cumsum(self.evaluation_seconds + self.search_seconds)


def _status(spec: RunSpec, has_study: bool) -> str:
    if is_finished(spec):
        return "finished"
    if (spec.run_dir / "error.txt").exists():
        return "failed (see error.txt)"
    return "unfinished" if has_study else "missing"


def _igd_trace(F: np.ndarray, true_front: np.ndarray) -> np.ndarray:
    """IGD of the non-dominated points among the first ``k`` evaluations, for every ``k``."""
    indicator, trace = IGD(true_front), np.zeros(len(F))
    previous, value = None, np.inf
    for k in range(len(F)):
        front = F[pareto_indices(F[: k + 1])]
        if previous is None or not np.array_equal(front, previous):  # IGD changes only with the front
            value, previous = float(indicator(front)), front
        trace[k] = value
    return trace


def _batch(evaluation) -> tuple | None:
    """(batch identity, optimizer seconds of the batch) of the batch that proposed an evaluation. Studies made
    before the runner noted ``batch_search_seconds`` fall back on the surrogate loop's own timings."""
    extra = evaluation.extra
    if "batch_search_seconds" in extra:
        return ("runner", extra["batch_search_seconds"])
    if "iteration" in extra:
        return (f"iteration {extra['iteration']}", extra["fit_seconds"] + extra["pool_seconds"] + extra["infill_seconds"])
    return None


def load_trace(spec: RunSpec, true_front: np.ndarray | None) -> RunTrace:
    path = spec.config.study or spec.run_dir / "study.sqlite"
    evaluations, bases = [], []
    if Path(path).exists():
        study = Study(path)
        try:
            if spec.config.name in study.run_names():
                run_id = study.run_id(spec.config.name)
                evaluations = list(study.evaluations(run_id).values())
                bases = study.info(run_id).get("base_history", [])
        finally:
            study.close()
    status = _status(spec, bool(evaluations))
    if spec.synthetic:
        evaluator = SyntheticEvaluator(spec.problem)
        ref, n_expensive = evaluator.ref_point, evaluator.n_obj
        F = np.array([evaluator.objectives(e) for e in evaluations]).reshape(-1, evaluator.n_obj)
    else:
        cheap, config = list(spec.config.objectives), spec.config
        ref, n_expensive = np.ones(1 + len(cheap)), 1
        scaled = {scale: np.array([objective_vector(e, cheap, scale, config.objective_decades) for e in evaluations])
                  .reshape(-1, 1 + len(cheap)) for scale in ("log", "linear")}
        F = scaled[config.objective_scale]  # the scale the search ran on
    search, batch_seconds, errors = np.zeros(len(evaluations)), [], np.full(len(evaluations), np.nan)
    batches = [_batch(e) for e in evaluations]
    sizes = {key: sum(b == key for b in batches) for key in set(batches) if key is not None}
    for i, e in enumerate(evaluations):
        if batches[i] is not None:
            search[i] = batches[i][1] / sizes[batches[i]]
            # per iteration, leaving out the first batch (initial design or first generation: no optimizer work)
            if batches[i] != batches[0] and batches[i] != batches[i - 1]:
                batch_seconds.append(batches[i][1])
        if "predicted" in e.extra and e.ok:
            errors[i] = float(np.mean(np.abs(np.asarray(e.extra["predicted"]) - F[i, :n_expensive])))
    scales = {} if spec.synthetic else {scale: hypervolume(G, ref) for scale, G in scaled.items()}
    return RunTrace(spec, status, F, hypervolume_trace(F, ref),
                    _igd_trace(F, true_front) if true_front is not None and len(F) else None,
                    np.array([e.seconds for e in evaluations]), search, batch_seconds, errors,
                    np.array([e.source.startswith("cache:") for e in evaluations]), sum(not e.ok for e in evaluations),
                    scales, bases)


def _bases_markdown(traces: list[RunTrace]) -> list[str]:
    """Whether the runs that should share a dense base model (same seed and base options, `BASE_FIELDS`) compressed
    one and the same: a study whose methods met different bases (retrained in another session or on another
    machine) compares them on different models."""
    ran = [t for t in traces if len(t.hv) and not t.spec.synthetic]
    if not ran:
        return []
    groups: dict[tuple, set] = {}
    for t in ran:
        key = tuple(getattr(t.spec.config, name) for name in BASE_FIELDS)
        groups.setdefault(key, set()).update(entry["digest"] for entry in t.bases if entry["digest"])
    unknown = [t.spec.config.name for t in ran if not any(entry["digest"] for entry in t.bases)]
    partly = [f"{t.spec.config.name} (evaluations before {t.bases[1]['from_evaluation']})" for t in ran
              if len(t.bases) > 1 and t.bases[0]["digest"] is None]
    mixed = [f"{t.spec.config.name} (from evaluation {', '.join(str(e['from_evaluation']) for e in t.bases[1:])})"
             for t in ran if len(t.bases) > 1]
    split = sorted({f"seed {key[BASE_FIELDS.index('seed')]}: {len(digests)}" for key, digests in groups.items()
                    if len(digests) > 1})
    if len(unknown) == len(ran):
        return ["Base models: not recorded (made before runs recorded their base model).", ""]
    if mixed or split:
        line = ("Base models: **not one per seed**, so methods (or one run's evaluations) compare on different dense "
                "models." + (f" Base models per seed: {'; '.join(split)}." if split else "")
                + (f" Runs that met another base on a resume: {'; '.join(mixed)}." if mixed else ""))
    else:
        known = sorted({(key[BASE_FIELDS.index("seed")], digest) for key, digests in groups.items()
                        for digest in digests})
        who = ("the runs that recorded theirs agree per seed" if unknown or partly
               else "every run of a seed compressed the same dense model")
        line = (f"Base models: {who} (weights digest per seed: "
                + ", ".join(f"seed {seed} {digest}" for seed, digest in known) + ").")
    if unknown or partly:
        line += (" Not recorded for runs (or their first evaluations) made before runs recorded their base model: "
                 + ", ".join(unknown + partly) + ".")
    return [line, ""]


def _median_iqr(values: list[float], digits: int = 4) -> str:
    if not values:
        return "–"
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"


def _summaries(experiment: Experiment, problem: str, traces: list[RunTrace], limit: float | None) -> list[dict]:
    done = [t for t in traces if len(t.hv)]
    best = max((t.hv[-1] for t in done), default=0.0)
    finals = {m: [t.hv[-1] for t in done if t.spec.method == m] for m in experiment.methods}
    smallest = min(t.spec.config.budget for t in traces)  # every method's hypervolume at the same budget
    main_baseline = experiment.baselines[0] if experiment.baselines else None
    baseline_traces = {t.spec.seed: t.hv for t in done if t.spec.method == main_baseline}
    rows = []
    for method in experiment.methods:
        mine = [t for t in traces if t.spec.method == method]
        ran = [t for t in mine if len(t.hv)]
        row = {"problem": problem, "method": method, "runs": len(mine),
               "finished": sum(t.status == "finished" for t in mine),
               "not_finished": ", ".join(f"seed {t.spec.seed}: {t.status}" for t in mine if t.status != "finished"),
               "budget": mine[0].spec.config.budget if mine else None,
               "hv_median": float(np.median(finals[method])) if ran else None,
               "hv_q1": float(np.percentile(finals[method], 25)) if ran else None,
               "hv_q3": float(np.percentile(finals[method], 75)) if ran else None,
               "true_front_hv": limit,
               "igd_median": float(np.median([t.igd[-1] for t in ran])) if ran and ran[0].igd is not None else None,
               "failed_evaluations": sum(t.failed for t in ran),
               "wall_seconds_median": float(np.median([t.wall[-1] for t in ran])) if ran else None,
               "evaluation_seconds_median": float(np.median([t.evaluation_seconds.sum() for t in ran])) if ran else None,
               "optimizer_seconds_per_iteration": (float(np.median([np.mean(t.batch_seconds) for t in ran
                                                                     if t.batch_seconds]))
                                                   if any(t.batch_seconds for t in ran) else None),
               "prediction_abs_error_median": (float(np.nanmedian(np.concatenate([t.prediction_errors for t in ran])))
                                               if any(np.isfinite(t.prediction_errors).any() for t in ran) else None),
               "warm_start_rate": float(np.mean(np.concatenate([t.warm_started for t in ran]))) if ran else None,
               **{f"hv_{scale}_median": float(np.median([t.scales[scale] for t in ran]))
                  for scale in ("log", "linear") if ran and all(scale in t.scales for t in ran)}}
        at_smallest = [t.hv[smallest - 1] for t in ran if len(t.hv) >= smallest]
        row["smallest_budget"] = smallest
        row["hv_at_smallest_budget_median"] = float(np.median(at_smallest)) if at_smallest else None
        if main_baseline is not None and method != main_baseline:
            # how many true evaluations the main baseline, same seed, needed to reach what this run ended with
            needed = [evaluations_to_reach(baseline_traces[t.spec.seed], t.hv[-1]) for t in ran
                      if t.spec.seed in baseline_traces and t.hv[-1] > 0]  # a zero hypervolume is no target
            row["baseline_evaluations_to_reach_median"] = (float(np.median([n for n in needed if n is not None]))
                                                           if any(n is not None for n in needed) else None)
            row["baseline_never_reached"] = sum(n is None for n in needed)
        for fraction in REACH:
            needed = [evaluations_to_reach(t.hv, fraction * best) for t in ran] if best > 0 else []
            reached = [n for n in needed if n is not None]
            row[f"evaluations_to_{round(fraction * 100)}pct_best_median"] = (float(np.median(reached))
                                                                             if reached else None)
            row[f"runs_reaching_{round(fraction * 100)}pct_best"] = len(reached)
        for baseline in experiment.baselines:
            if baseline != method and len(finals[method]) >= 2 and len(finals[baseline]) >= 2:
                row[f"p_vs_{baseline}"] = float(mannwhitneyu(finals[method], finals[baseline],
                                                             alternative="two-sided").pvalue)
        rows.append(row)
    return rows


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _markdown(experiment: Experiment, rows: list[dict], traces: dict[str, list[RunTrace]]) -> str:
    lines = [f"# {experiment.name}", "", experiment.description.strip(), ""]
    if any("hv_log_median" in r for r in rows):
        lines += ["Hypervolumes (reference 1 in every objective) are on the scale each run searched on (its "
                  "objective_scale); the last two columns give both: the log scale, 1 + log10(ratio) / 3 per cheap "
                  "objective, where each decade of compression counts the same, and the linear ratio, where "
                  "everything beyond 10x shares the last tenth of the axis.", ""]
    reach = [round(f * 100) for f in REACH]
    for problem in experiment.problem_names():
        mine = [r for r in rows if r["problem"] == problem]
        equal = len({r["budget"] for r in mine}) == 1  # then the hypervolume at the smallest budget says nothing new
        scaled = any("hv_log_median" in r for r in mine)  # a compression problem: both scales of the cheap objectives
        lines += [f"## {problem}", "",
                  "| method | runs finished | budget | HV at budget, median [IQR] | "
                  + ("" if equal else f"HV at {mine[0]['smallest_budget']} (median) | ")
                  + "true-front HV | IGD (median) | "
                  + "".join(f"p vs {b} (rank-sum) | " for b in experiment.baselines)
                  + " | ".join(f"evaluations to {x}% of best HV (runs reaching)" for x in reach)
                  + (f" | {experiment.baselines[0]} evaluations to reach its final HV, median (never)"
                     if experiment.baselines else "")
                  + " | wall s (median) | optimizer s / iteration | median abs prediction error | warm-start rate |"
                  + (" HV, log scale (median) | HV, linear scale (median) |" if scaled else ""),
                  "|---" * (10 + (not equal) + len(experiment.baselines) + len(reach) + bool(experiment.baselines)
                            + 2 * scaled) + "|"]
        for r in mine:
            hv = "–" if r["hv_median"] is None else f"{r['hv_median']:.4f} [{r['hv_q1']:.4f}, {r['hv_q3']:.4f}]"
            pvals = [_fmt(r.get(f"p_vs_{b}"), 3) for b in experiment.baselines]
            needed = [f"{_fmt(r[f'evaluations_to_{x}pct_best_median'], 0)} ({r[f'runs_reaching_{x}pct_best']})"
                      for x in reach]
            if experiment.baselines:
                needed.append("–" if r["method"] == experiment.baselines[0] else
                              f"{_fmt(r.get('baseline_evaluations_to_reach_median'), 0)} "
                              f"({r.get('baseline_never_reached', 0)})")
            lines.append(f"| {r['method']} | {r['finished']}/{r['runs']} | {r['budget']} | {hv} | "
                         + ("" if equal else f"{_fmt(r['hv_at_smallest_budget_median'])} | ")
                         + f"{_fmt(r['true_front_hv'])} | {_fmt(r['igd_median'])} | " + "".join(f"{p} | " for p in pvals)
                         + " | ".join(needed) + f" | {_fmt(r['wall_seconds_median'], 1)} | "
                         f"{_fmt(r['optimizer_seconds_per_iteration'], 3)} | {_fmt(r['prediction_abs_error_median'])} | "
                         f"{_fmt(r['warm_start_rate'], 2)} |"
                         + (f" {_fmt(r.get('hv_log_median'))} | {_fmt(r.get('hv_linear_median'))} |" if scaled else ""))
        missing = [f"{r['method']} ({r['not_finished']})" for r in mine if r["not_finished"]]
        lines += ["", "Runs not finished, shown as far as they got: " + "; ".join(missing) if missing
                  else "Every run finished.", ""]
        lines += _bases_markdown(traces.get(problem, []))
    return "\n".join(lines) + "\n"


def _plots(experiment: Experiment, traces: dict[str, list[RunTrace]], fronts: dict[str, np.ndarray | None],
           limits: dict[str, float | None]) -> None:
    """Hypervolume against evaluations and against wall-clock, and the final fronts, one panel per problem;
    ``fronts`` and ``limits`` hold each problem's true front and its hypervolume, None where unknown."""
    problems = experiment.problem_names()
    colors = {m: f"C{i}" for i, m in enumerate(experiment.methods)}
    width = 4.5 * len(problems)
    for kind in ("evaluations", "wallclock"):
        fig, axes = plt.subplots(1, len(problems), figsize=(width, 4), squeeze=False)
        for ax, problem in zip(axes[0], problems):
            for method in experiment.methods:
                runs = [t for t in traces[problem] if t.spec.method == method and len(t.hv)]
                if not runs:
                    continue
                if kind == "evaluations":
                    length = min(len(t.hv) for t in runs)
                    stack = np.array([t.hv[:length] for t in runs])
                    x = np.arange(1, length + 1)
                    ax.plot(x, np.median(stack, axis=0), color=colors[method], label=f"{method} ({len(runs)})")
                    ax.fill_between(x, np.percentile(stack, 25, axis=0), np.percentile(stack, 75, axis=0),
                                    color=colors[method], alpha=0.2)
                else:
                    for i, t in enumerate(runs):
                        ax.plot(t.wall, t.hv, color=colors[method], alpha=0.5, lw=0.8,
                                label=f"{method} ({len(runs)})" if i == 0 else None)
            limit = limits[problem]
            if limit is not None:
                ax.axhline(limit, color="gray", ls="--", lw=0.8, label="true front")
            ax.set_xscale("log")
            ax.set_title(problem)
            ax.set_xlabel("true evaluations" if kind == "evaluations" else "sequential wall-clock s "
                          "(evaluation + optimizer)")
            ax.grid(alpha=0.3, which="both")
        axes[0][0].set_ylabel("hypervolume" + (" (median, IQR band)" if kind == "evaluations" else " (each run)"))
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(experiment.out_dir / f"hv_vs_{kind}.png", dpi=110)
        plt.close(fig)
    fig, axes = plt.subplots(1, len(problems), figsize=(width, 4), squeeze=False)
    for ax, problem in zip(axes[0], problems):
        true_front = fronts.get(problem)
        if true_front is not None:
            ax.scatter(true_front[:, 0], true_front[:, 1], s=1, color="lightgray", label="true front")
        for method in experiment.methods:
            runs = [t for t in traces[problem] if t.spec.method == method and len(t.hv)]
            if not runs:
                continue
            median_run = sorted(runs, key=lambda t: t.hv[-1])[len(runs) // 2]
            front = median_run.F[pareto_indices(median_run.F)]
            ax.scatter(front[:, 0], front[:, 1], s=10, color=colors[method],
                       label=f"{method} (seed {median_run.spec.seed}, median HV)")
        ax.set_title(problem + (" (f1, f2 of 3 objectives)" if true_front is not None and true_front.shape[1] > 2
                                else ""))
        if true_front is not None:  # the hypervolume box: points beyond it count for nothing
            ref = SyntheticEvaluator(problem).ref_point
            ax.set_xlim(true_front[:, 0].min() - 0.05, ref[0] + 0.1)
            ax.set_ylim(true_front[:, 1].min() - 0.05, ref[1] + 0.1)
        ax.set_xlabel("f1 / validation error")
        ax.set_ylabel("f2 / params ratio")
        if not experiment.problems:  # compression ratios span decades; a test problem's objectives need not
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(experiment.out_dir / "fronts.png", dpi=110)
    plt.close(fig)


def recipe_rows(experiment: Experiment) -> list[dict]:
    """Per recipe, seed, method and schedule in its table (the method's models and the baselines beside them):
    models, best compression in params and bytes at +1 and +2 points of test error, steps and seconds."""
    import csv

    from surrogate_emo.quality import best_compression

    rows = []
    for file in experiment.recipe_files():
        path = file.out_dir / "models.csv"
        if not path.is_file():
            rows.append({"recipe": file.name.rsplit("_seed", 1)[0], "seed": file.run_config().seed,
                         "method": "(not run)", "schedule": "", "models": 0})
            continue
        with path.open() as handle:
            models = [{k: (float(v) if k.endswith(("_ratio", "_error")) and v else v) for k, v in r.items()}
                      for r in csv.DictReader(handle)]
        for method, schedule in dict.fromkeys((m["method"], m["schedule"]) for m in models):
            mine = [m for m in models if m["method"] == method and m["schedule"] == schedule]
            row = {"recipe": file.name.rsplit("_seed", 1)[0], "seed": file.run_config().seed, "method": method,
                   "schedule": schedule, "models": len(mine), "dense_test_error": mine[0]["dense_test_error"]}
            for points in (1.0, 2.0):
                for ratio in ("params", "bytes"):
                    row[f"{ratio}_at_{points:g}pt"] = best_compression(mine, points, ratio)
            row["finetune_steps"] = mine[0]["finetune_steps"]
            row["seconds"] = round(sum(float(m["seconds"] or 0) for m in mine), 1)
            rows.append(row)
    return rows


def _recipes_markdown(experiment: Experiment) -> str:
    rows = recipe_rows(experiment)
    if not rows:
        return ""
    write_csv(experiment.out_dir / "recipes.csv", rows)

    def cell(value):
        return "–" if value is None else f"{value:.1f}x"

    lines = ["", "## Published methods (recipes)", "",
             "Each recipe's own models and the baselines it runs beside them, scored on the test split. Compression "
             "is dense / compressed, in parameters and in bytes as stored; seconds are the models' own.", "",
             "| recipe | seed | method | schedule | models | dense test error | params at +1 pt | bytes at +1 pt | "
             "params at +2 pt | bytes at +2 pt | steps per model | seconds |", "|---" * 12 + "|"]
    for r in rows:
        if r["models"] == 0:
            lines.append(f"| {r['recipe']} | {r['seed']} | not run | | 0 | | | | | | | |")
            continue
        lines.append(f"| {r['recipe']} | {r['seed']} | {r['method']} | {r['schedule']} | {r['models']} | "
                     f"{100 * r['dense_test_error']:.2f}% | {cell(r['params_at_1pt'])} | {cell(r['bytes_at_1pt'])} | "
                     f"{cell(r['params_at_2pt'])} | {cell(r['bytes_at_2pt'])} | {r['finetune_steps']} | "
                     f"{r['seconds']} |")
    return "\n".join(lines) + "\n"


def write_experiment_report(experiment: Experiment) -> list[dict]:
    """summary.csv/.md, runs.csv, trace.csv and the plots under the experiment's folder; returns the summary rows."""
    experiment.out_dir.mkdir(parents=True, exist_ok=True)
    if not experiment.methods:  # recipes alone: their table is the report
        (experiment.out_dir / "summary.md").write_text(f"# {experiment.name}\n\n{experiment.description.strip()}\n"
                                                       + _recipes_markdown(experiment)
                                                       + write_side_by_side(experiment))
        return []
    traces, fronts, limits, rows, run_rows, trace_rows = {}, {}, {}, [], [], []
    for problem in experiment.problem_names():
        evaluator = SyntheticEvaluator(problem) if experiment.problems else None
        true_front = evaluator.true_front() if evaluator is not None else None
        limit = hypervolume(true_front, evaluator.ref_point) if evaluator is not None else None
        fronts[problem], limits[problem] = true_front, limit
        traces[problem] = [load_trace(s, true_front) for s in experiment.runs() if s.problem == problem]
        rows += _summaries(experiment, problem, traces[problem], limit)
        for t in traces[problem]:
            run_rows.append({"problem": problem, "method": t.spec.method, "seed": t.spec.seed, "status": t.status,
                             "true_evaluations": len(t.hv), "failed_evaluations": t.failed,
                             "hv_final": float(t.hv[-1]) if len(t.hv) else None,
                             "igd_final": float(t.igd[-1]) if t.igd is not None and len(t.igd) else None,
                             "evaluation_seconds": float(t.evaluation_seconds.sum()),
                             "optimizer_seconds": float(t.search_seconds.sum()),
                             "base_digests": " ".join(str(entry["digest"]) for entry in t.bases),
                             "run_dir": str(t.spec.run_dir)})
            for k in range(len(t.hv)):
                trace_rows.append({"problem": problem, "method": t.spec.method, "seed": t.spec.seed,
                                   "evaluation": k + 1, "hv": float(t.hv[k]),
                                   "igd": float(t.igd[k]) if t.igd is not None else None,
                                   "evaluation_seconds": float(t.evaluation_seconds[k]),
                                   "optimizer_seconds": float(t.search_seconds[k]),
                                   "wall_seconds": float(t.wall[k]), "warm_started": bool(t.warm_started[k]),
                                   "prediction_abs_error": (float(t.prediction_errors[k])
                                                            if np.isfinite(t.prediction_errors[k]) else None)})
    write_csv(experiment.out_dir / "summary.csv", rows)
    write_csv(experiment.out_dir / "runs.csv", run_rows)
    write_csv(experiment.out_dir / "trace.csv", trace_rows)
    (experiment.out_dir / "summary.md").write_text(_markdown(experiment, rows, traces) + _recipes_markdown(experiment)
                                                   + write_side_by_side(experiment))
    (experiment.out_dir / "experiment.json").write_text(json.dumps(
        {"name": experiment.name, "seeds": experiment.seeds, "problems": experiment.problem_names(),
         "base": experiment.base, "methods": experiment.methods, "baselines": experiment.baselines}, indent=2))
    _plots(experiment, traces, fronts, limits)
    return rows
