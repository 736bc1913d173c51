"""Every compressing method of an experiment side by side over its seeds: the searches' fronts as the quality study
re-scored them, the recipes' own models and the baselines, each reduced per seed to its best compression within +1
and +2 points of test error, then the median over seeds, a rank-sum test against the baselines, and what each spent.

A method with no model within a bound in some seed counts 1x there (nothing compressed at that error), so that a
median over seeds and a test see every seed. The rank-sum test is two-sided (scipy's Mann-Whitney U): with three
seeds a side its smallest p is 0.1, which is what three seeds can say.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402

from surrogate_emo.front import hypervolume  # noqa: E402
from surrogate_emo.quality import RATIOS, best_compression  # noqa: E402
from surrogate_emo.report import write_csv  # noqa: E402

REFERENCES = {"params": ("global magnitude pruning", "gradual"),
              "bytes": ("global magnitude pruning + 8-bit", "gradual")}
"""The group each ratio's rank-sum test compares against: the strongest baselines the quality study makes."""

POINTS = (1.0, 2.0)


def _group(row: dict) -> tuple[str, str, str]:
    """The group a model (or a per-seed row) belongs to: source, method, schedule."""
    return row["source"], row["method"], row.get("schedule") or ""


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as handle:
        # an empty cell (a cost not counted) is left out, as best_compression expects
        return [{k: (float(v) if k.endswith(("_ratio", "_error")) or k == "seconds" else v)
                 for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def collect(experiment) -> list[dict]:
    """Every scored model of ``experiment``: the quality study's (fronts and baselines) and each recipe's, with the
    group it belongs to (``source``, ``method``, ``schedule``) and its seed."""
    models = []
    for row in _read(experiment.out_dir / "quality" / "models.csv"):
        models.append({**row, "source": "search" if row.get("kind") == "search" else "baseline"})
    for file in experiment.recipe_files():
        recipe = file.name.rsplit("_seed", 1)[0]
        for row in _read(file.out_dir / "models.csv"):
            is_own = not str(row["method"]).startswith("global magnitude")
            models.append({**row, "source": f"recipe {recipe}" if is_own else f"recipe {recipe} baseline",
                           "recipe": recipe})
    for row in models:
        row["seed"] = int(float(row["seed"]))
    return models


def _search_spent(experiment) -> dict[tuple[str, int], dict]:
    """(method, seed) -> the search's own fine-tuning: steps, seconds and true evaluations."""
    spent = {}
    for spec in experiment.runs():
        path = spec.run_dir / "summary.json"
        if path.is_file():
            summary = json.loads(path.read_text())
            spent[(spec.method, spec.seed)] = {"steps": summary.get("finetune_steps_total") or 0,
                                               "seconds": summary.get("finetune_seconds_total") or 0.0,
                                               "evaluations": summary.get("true_evaluations"),
                                               "per_evaluation": summary.get("finetune_steps_per_evaluation") or 0}
    return spent


def side_by_side(experiment, models: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """(per group and seed rows, per group rows with medians and tests) of ``models`` (default: `collect`)."""
    models = collect(experiment) if models is None else models
    seeds = sorted({m["seed"] for m in models})
    searches = _search_spent(experiment)
    groups = list(dict.fromkeys(map(_group, models)))
    per_seed = []
    for source, method, schedule in groups:
        for seed in seeds:
            mine = [m for m in models if _group(m) == (source, method, schedule) and m["seed"] == seed]
            if not mine:
                continue
            row = {"source": source, "method": method, "schedule": schedule, "seed": seed, "models": len(mine)}
            for points in POINTS:
                for ratio in RATIOS:
                    row[f"{ratio}_at_{points:g}pt"] = best_compression(mine, points, ratio)
            for ratio in ("params", "bytes"):
                row[f"hv_{ratio}_test"] = hypervolume_on_test(mine, ratio)
            # fine-tuning spent: a recipe's model its own training, or what its row says the method spent
            # (steps_spent: SMOEA's candidates too, none for EMOMC's stage II, which quantises library models);
            # a search's front models share the search and each get the final fine-tune on top
            row["finetune_steps"] = sum(int(float(m.get("steps_spent", m["finetune_steps"]))) for m in mine)
            row["seconds"] = round(sum(float(m.get("seconds_spent", m.get("seconds") or 0.0)) for m in mine), 1)
            if source == "search":
                search = searches.get((method, seed), {})
                final = int(float(mine[0]["finetune_steps"])) - search.get("per_evaluation", 0)
                row["finetune_steps"] = search.get("steps", 0) + final * len(mine)
                row["seconds"] = round(search.get("seconds", 0.0) + row["seconds"], 1)
                row["true_evaluations"] = search.get("evaluations")
            per_seed.append(row)
    per_seed += _not_rescored(experiment, per_seed, searches)
    groups += list(dict.fromkeys(_group(r) for r in per_seed if r["models"] == 0 and _group(r) not in groups))
    summary = [_summarise(group, [r for r in per_seed if _group(r) == group], per_seed) for group in groups]
    return per_seed, [row for row in summary if row is not None]


def _not_rescored(experiment, per_seed: list[dict], searches: dict) -> list[dict]:
    """A quality method's seed with no front model re-scored (none compressed enough within the validation window):
    a row of its own, compressing nothing, so that the method is seen and its seeds count."""
    if experiment.quality is None:
        return []
    quality = experiment.quality_config()
    rows = []
    for method in quality.methods:
        for schedule in quality.schedules:
            for seed in quality.seed_list:
                if any(r["source"] == "search" and r["method"] == method and r["schedule"] == schedule
                       and r["seed"] == seed for r in per_seed) or (method, seed) not in searches:
                    continue
                search = searches[(method, seed)]
                rows.append({"source": "search", "method": method, "schedule": schedule, "seed": seed, "models": 0,
                             **{f"{ratio}_at_{points:g}pt": None for points in POINTS for ratio in RATIOS},
                             "hv_params_test": 0.0, "hv_bytes_test": 0.0, "finetune_steps": search["steps"],
                             "seconds": round(search["seconds"], 1), "true_evaluations": search["evaluations"]})
    return rows


def hypervolume_on_test(models: list[dict], ratio: str, decades: float = 3.0, points: float = 10.0) -> float:
    """Hypervolume of ``models`` in (test error, 1 + log10(compressed / dense ``ratio``) / ``decades``), reference
    (dense test error + ``points`` points, 1): the useful region, where each decade of compression counts the same.

    Example:
        >>> hypervolume_on_test([{"test_error": 0.1, "dense_test_error": 0.1, "params_ratio": 0.01}], "params")
        0.06666666666666667
    """
    key = f"{ratio}_ratio"
    mine = [m for m in models if key in m]
    if not mine:
        return 0.0
    F = np.array([[m["test_error"], 1 + np.log10(m[key]) / decades] for m in mine])
    return hypervolume(F, (mine[0]["dense_test_error"] + points / 100, 1.0))


def _value(row: dict, key: str) -> float:
    return row[key] if row[key] is not None else 1.0  # nothing within the bound: 1x


def _summarise(group: tuple, rows: list[dict], per_seed: list[dict]) -> dict | None:
    if not rows:
        return None
    source, method, schedule = group
    out = {"source": source, "method": method, "schedule": schedule, "seeds": len(rows),
           "models": sum(r["models"] for r in rows)}
    for points in POINTS:
        for ratio in RATIOS:
            key = f"{ratio}_at_{points:g}pt"
            out[key] = float(np.median([_value(r, key) for r in rows]))
    for ratio in ("params", "bytes"):
        out[f"hv_{ratio}_test"] = float(np.median([r[f"hv_{ratio}_test"] for r in rows]))
    out["finetune_steps"] = float(np.median([r["finetune_steps"] for r in rows]))
    out["seconds"] = float(np.median([r["seconds"] for r in rows]))
    for ratio, (reference, reference_schedule) in REFERENCES.items():
        key = f"{ratio}_at_1pt"
        theirs = [_value(r, key) for r in per_seed if r["source"] == "baseline" and r["method"] == reference
                  and r["schedule"] == reference_schedule]
        ours = [_value(r, key) for r in rows]
        if (method, schedule) != (reference, reference_schedule) and len(theirs) >= 2 and len(ours) >= 2:
            out[f"p_{ratio}_at_1pt"] = float(mannwhitneyu(ours, theirs, alternative="two-sided").pvalue)
        else:
            out[f"p_{ratio}_at_1pt"] = None
    return out


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}x"


def write_side_by_side(experiment) -> str:
    """``methods.csv``, ``methods_per_seed.csv`` and ``methods.png`` under the experiment's folder; returns the
    markdown section (empty when the experiment has no scored models)."""
    models = collect(experiment)
    per_seed, summary = side_by_side(experiment, models)
    if not summary:
        return ""
    out = experiment.out_dir
    write_csv(out / "methods_per_seed.csv", per_seed)
    write_csv(out / "methods.csv", summary)
    _plot(experiment, models, out / "methods.png")
    ref = "; ".join(f"{ratio}: {name} ({schedule})" for ratio, (name, schedule) in REFERENCES.items())
    lines = ["", "## Every method side by side", "",
             "Per method, the median over seeds of its best compression within +1 and +2 points of the dense test "
             "error (a seed with no model within the bound counts 1x; a search whose front had no model to re-score "
             "shows 0 models), the fine-tuning it spent per seed (a search: its true evaluations plus the final "
             "fine-tune of each re-scored model; a recipe: every model's own training, with SMOEA's candidates, none "
             f"for EMOMC's stage II, which quantises its library's models) and two-sided rank-sum p against the reference ({ref}). HV, test: the hypervolume of the "
             "method's models in (test error, 1 + log10(compressed / dense) / 3), reference (dense test error + 10 "
             "points, 1), median over seeds. Test error against compression: "
             "[methods.png](methods.png); per seed: methods_per_seed.csv.", "",
             "| source | method | schedule | seeds | models | params at +1 pt | bytes at +1 pt | energy at +1 pt | "
             "params at +2 pt | bytes at +2 pt | energy at +2 pt | HV params, test | HV bytes, test | "
             "fine-tuning steps per seed | seconds per seed | p params +1 | p bytes +1 |", "|---" * 17 + "|"]
    for r in summary:
        p = ["–" if r[k] is None else f"{r[k]:.2f}" for k in ("p_params_at_1pt", "p_bytes_at_1pt")]
        cells = [_x(r[f"{ratio}_at_{points:g}pt"]) for points in POINTS for ratio in RATIOS]
        lines.append(f"| {r['source']} | {r['method']} | {r['schedule']} | {r['seeds']} | {r['models']} | "
                     + " | ".join(cells) + f" | {r['hv_params_test']:.4f} | {r['hv_bytes_test']:.4f} | "
                     f"{r['finetune_steps']:.0f} | {r['seconds']:.0f} | {p[0]} | {p[1]} |")
    return "\n".join(lines) + "\n"


def _plot(experiment, models: list[dict], path: Path) -> None:
    """Test error above the seed's dense model against each compression: every model of every seed, so that seeds
    with different dense errors share the +1 and +2 point lines."""
    groups = list(dict.fromkeys(map(_group, models)))
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))
    markers = "os^vD<>p*hX"
    colors = plt.get_cmap("tab20").colors
    for ax, ratio in zip(axes, RATIOS):
        for index, (source, method, schedule) in enumerate(groups):
            mine = [m for m in models if _group(m) == (source, method, schedule) and f"{ratio}_ratio" in m]
            if mine:
                ax.scatter([1 / m[f"{ratio}_ratio"] for m in mine],
                           [100 * (m["test_error"] - m["dense_test_error"]) for m in mine], s=16,
                           marker=markers[index % len(markers)], color=colors[(2 * index) % 20 + (index // 10) % 2],
                           label=f"{method} ({schedule})" if schedule else method)
        for points, style in ((0, "-"), (1, "--"), (2, ":")):
            ax.axhline(points, color="gray", lw=0.8, ls=style)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
        ax.set_xlabel(f"{ratio} compression (dense / compressed, log)")
        ax.set_ylabel("test error above the seed's dense model (points)")
        ax.set_ylim(-1.5, 6)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=6, ncol=1)
    fig.suptitle(f"{experiment.name}: every model of every seed (lines: dense, +1, +2 points; above +6 points not shown)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
