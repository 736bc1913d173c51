"""Issue 13's comparisons, on the log-scale params axis (1 + log10(ratio) / 3): the fidelity-0 loops against the
studies they repeat. ``lenet300``: 100 full evaluations against study 2 (NSGA-II to 1,000; the GP and RF loops,
BoTorch's qLogNEHVI and random search at 100, carried on to 140 in results/lenet300_peers_140 to meet the
shortlist loop at equal steps). ``lenet5``: 60 against study 3 (the GP and RF loops at 60; its NSGA-II carried on
from 300 to 600 in results/lenet5_nsga2_600).

    python experiments/multifidelity_compare.py [lenet300|lenet5|shared|fresh]

Reads results/<model>_multifidelity/ and the study's folder; writes results/<model>_multifidelity/compare.md.
``shared``: the gp-f0 loops, NSGA-II@1000, random search@140 and BoTorch's qLogNEHVI@140 of
results/lenet300_shared_base, every method of a seed on the same committed base model (its compare.md); random
search carried on to 360 in results/lenet300_shared_peers_360 to meet the longest shortlist loops at equal steps,
and BoTorch carried on there as far as its optimizer's time allowed (296 to 304 so far). ``fresh``: the half-epoch
shortlist loop chosen on those five seeds against NSGA-II@1000 on seeds 5 and 6 (results/lenet300_fresh_seeds).
Two error reference points: 1.0, and a useful one, the dense model's validation error + 10 points.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import matplotlib
import numpy as np
from scipy.stats import mannwhitneyu

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from surrogate_emo.compare import load_run, objectives
from surrogate_emo.evaluate import batch_of, cheap_objective, spent_steps
from surrogate_emo.front import hypervolume, hypervolume_trace, pareto_indices

# how the runs of the first studies shared the cores, the caveat every report's compute table ends with
SHARED_CORES = ("Two runs shared the 2 cores in both studies, and a test suite ran beside some of the fidelity-0 runs; "
                "BoTorch and the q = 1, linear-scale and design-40 loops of the shared-base study ran with up to five "
                "processes on the 2 cores")
INFLATED = ": their seconds are inflated, the steps are exact."

STUDIES = {
    "lenet300": dict(title="study 2 (LeNet-300-100", new=Path("results/lenet300_multifidelity"),
                     old=Path("results/lenet300_fashion/lenet-300-100_fashion-mnist"), seeds=range(5), budget=100,
                     nsga2=1000, new_methods=("surrogate_rf_f0", "surrogate_rf_f0_screened", "surrogate_rf_f0_design",
                                  "surrogate_rf_f0_design_exact", "surrogate_gp_f0_design",
                                  "surrogate_gp_f0_design_screened", "surrogate_portfolio_design",
                                  "surrogate_gp_f0_design_warm", "surrogate_gp_f0_design_short",
                                  "surrogate_gp_f0_design_exact", "surrogate_gp_f0_design_useful",
                                  "surrogate_gp_f0_design_both"),
                     old_methods=("surrogate_gp", "surrogate_rf", "botorch", "random", "nsga2"),
                     longer=dict(random=Path("results/lenet300_peers_140/lenet-300-100_fashion-mnist"),
                                 botorch=Path("results/lenet300_peers_140/lenet-300-100_fashion-mnist"))),
    # the gp-f0 loops against NSGA-II, random search and BoTorch, every method of a seed on one committed base model
    "shared": dict(title="NSGA-II on one base model per seed (LeNet-300-100", new=Path("results/lenet300_shared_base"),
                   old=Path("results/lenet300_shared_base/lenet-300-100_fashion-mnist"), seeds=range(5), budget=100,
                   nsga2=1000, new_methods=("surrogate_gp_f0_design", "surrogate_gp_f0_design_useful",
                                            "surrogate_gp_f0_design_both", "surrogate_gp_f0_design_joint",
                                            "surrogate_gp_f0_design_useful_joint",
                                            "surrogate_gp_f0_design_joint_pool300",
                                            "surrogate_gp_f0_design_joint_short", "surrogate_gp_f0_design_joint_q1",
                                            "surrogate_gp_f0_design_joint_linear", "surrogate_gp_f0_design40_joint",
                                            "surrogate_gp_f0_design_joint_ref08",
                                            "surrogate_gp_f0_design_joint_short4",
                                            "surrogate_gp_mf_design_joint_short4",
                                            "surrogate_gp_mf_design_useful_joint_short4",
                                            "surrogate_gp_mf_design_joint_short4_list24",
                                            "surrogate_gp_mf_design_joint_short4_list24_warm",
                                            "surrogate_gp_mf_design_joint_short4_list48_warm",
                                            "surrogate_gp_mf_design_joint_short2_list24_warm",
                                            "surrogate_gp_mf_design_joint_short2_list24_warm_useful6",
                                            "surrogate_gp_mf_design_joint_short2_list24_warm_useful3"),
                   old_methods=("random", "botorch", "nsga2"),
                   longer=dict(random=Path("results/lenet300_shared_peers_360/lenet-300-100_fashion-mnist"),
                               botorch=Path("results/lenet300_shared_peers_360/lenet-300-100_fashion-mnist")),
                   useful=0.211,
                   seconds=SHARED_CORES + ", the weighted loops with three" + INFLATED),
    # the half-epoch shortlist loop, chosen on seeds 0 to 4 above, against NSGA-II@1000 on seeds no design was tried on
    "fresh": dict(title="NSGA-II on held-out seeds (LeNet-300-100", new=Path("results/lenet300_fresh_seeds"),
                  old=Path("results/lenet300_fresh_seeds/lenet-300-100_fashion-mnist"), seeds=range(5, 7),
                  budget=100, nsga2=1000, new_methods=("surrogate_gp_mf_design_joint_short2_list24_warm",
                                                       "surrogate_gp_mf_design_joint_short2_list24_warm_useful6",
                                                       "surrogate_gp_mf_design_joint_short2_list24_warm_useful3"),
                  old_methods=("nsga2",), longer={}, useful=0.211,
                  seconds="Two to four runs, and for 17 minutes a test suite, shared the 2 cores (the weighted "
                          "loops' runs: three runs): the seconds are inflated, the steps exact."),
    "lenet5": dict(title="study 3 (LeNet-5", new=Path("results/lenet5_multifidelity"),
                   old=Path("results/lenet5_fashion/lenet-5_fashion-mnist"), seeds=range(3), budget=60, nsga2=600,
                   new_methods=("surrogate_rf_f0", "surrogate_gp_f0_design", "surrogate_gp_f0_design_useful",
                                "surrogate_gp_mf_design_useful_short4",
                                "surrogate_gp_mf_design_useful_short4_list24"),
                   old_methods=("surrogate_gp", "surrogate_rf", "nsga2"),
                   longer=dict(nsga2=Path("results/lenet5_nsga2_600/lenet-5_fashion-mnist"))),
}


def log_axis(ratio) -> np.ndarray:
    return cheap_objective(ratio, "log", decades=3.0)  # the package's own log scale of a compression ratio


def band_hvs(F: np.ndarray, ref: float, edges) -> list[float]:
    """The hypervolume of (error, log params) points cut into bands of compression (params ratio) between
    consecutive ``edges``, the last band open: the part of the box whose log-axis coordinate lies in each band, so
    the bands add up to the whole."""
    below = [hypervolume(F, [ref, log_axis(1 / edge)]) for edge in edges]  # the box up to each edge's axis value
    return [high - low for high, low in zip(below, below[1:] + [0.0])]


class Study:
    """Where a comparison's runs lie, and what they spent."""

    seconds = SHARED_CORES + INFLATED

    def __init__(self, name: str) -> None:
        self.__dict__.update(STUDIES[name])
        self.new_methods = tuple(m for m in self.new_methods if self.seeds_of(m))  # those with a finished run
        self.methods = (*self.new_methods, *self.old_methods)

    def run_dir(self, method: str, seed: int) -> Path:
        if method in self.new_methods:
            return next(self.new.glob(f"*/{method}_seed{seed}"))
        if method == "nsga2" and "nsga2" in self.longer:  # the study's NSGA-II, carried on to ``self.nsga2``
            return self.longer["nsga2"] / f"nsga2_seed{seed}"
        return self.old / f"{method}_seed{seed}"

    def long_archive(self, method: str, seed: int) -> np.ndarray:
        """`archive`'s objectives, from the run carried on past the study's budget where there is one."""
        if method in self.longer and method != "nsga2":
            run = f"{method}_seed{seed}"
            return objectives(load_run(self.longer[method] / run, run), scale="log")
        return self.archive(method, seed)[0]

    def seeds_of(self, method: str) -> list[int]:
        """The seeds ``method`` finished (a method may run fewer than the study's; a run writes front.csv last)."""
        return [s for s in self.seeds if method not in self.new_methods or self._finished(method, s)]

    def _finished(self, method: str, seed: int) -> bool:
        summaries = list(self.new.glob(f"*/{method}_seed{seed}/summary.json"))
        return bool(summaries) and json.loads(summaries[0].read_text())["true_evaluations"] >= self.budget

    def archive(self, method: str, seed: int) -> tuple[np.ndarray, list]:
        """(validation error, log params) of every evaluation in trial order, failed ones at error 1."""
        evaluations = load_run(self.run_dir(method, seed), f"{method}_seed{seed}")
        return objectives(evaluations, scale="log"), evaluations

    def test_hv(self, method: str, seed: int, ref: float) -> float:
        """Hypervolume of the run's validation front re-scored on the test split (front.csv)."""
        return hypervolume(self.test_objectives(method, seed), [ref, 1.0])

    def front(self, method: str, seed: int) -> list[tuple[float, float]]:
        """(compression, test error) of each model of the run's validation front (front.csv)."""
        with open(self.run_dir(method, seed) / "front.csv") as handle:
            return [(float(r["compression"]), float(r["test_error"])) for r in csv.DictReader(handle)]

    def test_objectives(self, method: str, seed: int) -> np.ndarray:
        """(test error, log params) of each model of the run's validation front."""
        return np.array([[error, log_axis(1 / compression)] for compression, error in self.front(method, seed)])

    def band_hvs(self, method: str, seed: int, ref: float, edges) -> list[float]:
        """The test hypervolume cut into bands of compression (`band_hvs`)."""
        return band_hvs(self.test_objectives(method, seed), ref, edges)

    def best_test_errors(self, method: str, seed: int, thresholds) -> list[float]:
        """Per threshold: the lowest test error among the run's front models compressed at least that much (inf
        where none is)."""
        rows = self.front(method, seed)
        return [min((e for c, e in rows if c >= t), default=np.inf) for t in thresholds]

    def summary(self, method: str, seed: int) -> dict:
        return json.loads((self.run_dir(method, seed) / "summary.json").read_text())


def box_mask(F: np.ndarray, ref: float) -> np.ndarray:
    """Which points of F lie inside the reference box (ref, 1): those a hypervolume counts."""
    return (F[:, 0] < ref) & (F[:, 1] < 1.0)


def in_box(F: np.ndarray, ref: float) -> int:
    return int(box_mask(F, ref).sum())


def best_subset_hv(F: np.ndarray, k: int, ref: float) -> float:
    """The largest hypervolume (reference (ref, 1)) of any k points of the 2-objective set F. Written here: pymoo
    has no subset selection. Exact by dynamic programming over the front sorted by the second objective: a chosen
    point's own slab reaches up to the next chosen point's, so best[j, i] (j points, the last with the largest second
    objective so far being i) extends best[j - 1, p] by (ref - f1_i) * (next - f2_i), built from the top down."""
    inside = F[box_mask(F, ref)]
    if not len(inside) or k <= 0:
        return 0.0
    front = inside[pareto_indices(inside)]
    front = front[np.argsort(-front[:, 1])]  # second objective descending: the top of the staircase first
    f1, f2 = front[:, 0], front[:, 1]
    n = len(front)
    # best[i]: the best hypervolume with i the last (lowest-f2) point chosen so far, over j points
    best = (ref - f1) * (1.0 - f2)
    answer = best.max()
    for _ in range(1, min(k, n)):
        gain = (ref - f1)[None, :] * (f2[:, None] - f2[None, :])  # p above i: i's slab from f2_p down to f2_i
        value = best[:, None] + np.where(np.arange(n)[:, None] < np.arange(n)[None, :], gain, -np.inf)
        best = value.max(axis=0)
        answer = max(answer, best.max())
    return float(answer)


def cut_at_steps(evaluations, steps: int) -> int:
    """How many of a run's first evaluations fit in ``steps`` fine-tuning steps, short fine-tunes included."""
    return max(k for k in range(len(evaluations) + 1) if spent_steps(evaluations[:k]) <= steps)


def median(values) -> str:
    return f"{np.median(values):.4f}"


def p_value(a, b) -> str:
    return f"{mannwhitneyu(a, b, alternative='two-sided').pvalue:.3f}"


# how a method of the both-references figure is coloured, by what its name says it is (first match)
FAMILIES = {
    "the compared study's own runs": lambda method, study: method in study.old_methods,
    "weighted both references (useful_weight)": lambda method, study: re.search(r"_useful\d+$", method),
    "aimed at the useful reference (all or half a batch)": lambda method, study: "useful" in method or "both" in method,
    "whole range": lambda method, study: True,
}
FAMILY_COLOURS = dict(zip(FAMILIES, ("tab:gray", "tab:red", "tab:orange", "tab:blue")))


def both_references(study: Study, refs, medians: dict, figure: Path) -> list[str]:
    """Each method's median test hypervolume at both error references (``medians``: method -> its two, in the order
    of ``refs``), set against NSGA-II's on both at once: the lines of a table, and a figure with one dot per method
    and NSGA-II's two medians as crosshairs, so a method that meets NSGA-II at both lies in the upper right."""
    (label_1, ref_1), (label_u, ref_u) = refs
    goal = medians["nsga2"]
    numbered = [m for m in study.methods if m != "nsga2"]  # numbered from 1 in the table and the figure
    lines = ["## Both references at once", "",
             f"Each method's median test hypervolume at error reference {label_1} and at {label_u}, and how far it "
             f"stands from NSGA-II@{study.nsga2:,}'s median there (positive: ahead). The figure "
             f"({figure.name}) puts each method at its two medians; NSGA-II's are the dashed lines.", "",
             f"| # | method | median at {ref_1:g} | vs NSGA-II | median at {ref_u:.3g} | vs NSGA-II | ahead at both |",
             "|---|---|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    seen: set[str] = set()
    ax.axvline(goal[0], color="0.4", linestyle="--", linewidth=1)
    ax.axhline(goal[1], color="0.4", linestyle="--", linewidth=1)
    for number, method in enumerate(numbered):
        hv_1, hv_u = medians[method]
        both = hv_1 >= goal[0] and hv_u >= goal[1]
        lines.append(f"| {number + 1} | {method} | {hv_1:.4f} | {hv_1 - goal[0]:+.5f} | {hv_u:.4f} | "
                     f"{hv_u - goal[1]:+.5f} | {'yes' if both else 'no'} |")
        family = next(f for f, is_it in FAMILIES.items() if is_it(method, study))
        ax.scatter(hv_1, hv_u, color=FAMILY_COLOURS[family], s=28, zorder=3,
                   label=family if family not in seen else None)
        seen.add(family)
        ax.annotate(str(number + 1), (hv_1, hv_u), textcoords="offset points", xytext=(4, 3), fontsize=8)
    lines += [f"| – | nsga2 | {goal[0]:.4f} | – | {goal[1]:.4f} | – | – |", ""]
    ax.set_xlabel(f"median test hypervolume, error reference {ref_1:g}")
    ax.set_ylabel(f"median test hypervolume, error reference {ref_u:.3g}")
    ax.set_title(f"{study.title.split(' (')[0]}: both references (numbers: the table in compare.md)", fontsize=10)
    # zoom onto the loops near NSGA-II: the aimed loops and the peers far off are clipped at the edges
    near = [m for m, v in medians.items() if v[0] >= goal[0] - 0.03 and v[1] >= goal[1] - 0.003]
    box = np.array([medians[m] for m in near])
    ax.set_xlim(box[:, 0].min() - 0.002, box[:, 0].max() + 0.002)
    ax.set_ylim(box[:, 1].min() - 0.0003, box[:, 1].max() + 0.0003)
    off = [str(n + 1) for n, m in enumerate(numbered) if m not in near]
    if off:
        ax.text(0.99, 0.01, "off the figure: " + ", ".join(off), transform=ax.transAxes, ha="right", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(figure, dpi=120)
    plt.close(fig)
    return lines


def main() -> None:
    study = Study(sys.argv[1] if len(sys.argv) > 1 else "lenet300")
    budget, seeds, top = study.budget, study.seeds, study.nsga2
    done = [study.summary("nsga2", s)["true_evaluations"] for s in seeds]  # its front.csv is of that count
    if min(done) < top:
        sys.exit(f"NSGA-II's runs in {study.run_dir('nsga2', 0).parent} hold {done} evaluations, not yet {top}")
    # the study's own NSGA-II seed 0 (the run carried on past it trained its base again, to another dense error);
    # the shared-base study keeps study 2's, at which its aimed loops aim
    useful = getattr(study, "useful", None) or json.loads(
        (study.old / "nsga2_seed0" / "summary.json").read_text())["dense_val_error"] + 0.10
    refs = (("1.0", 1.0), (f"{useful:.3f} (dense + 10 points)", useful))
    lines = [f"# Fidelity-0 loops against {study.title}, Fashion-MNIST, log-scale params axis)", "",
             f"## Test split: the loops at {budget} full evaluations against NSGA-II at {top:,}", "",
             "Hypervolume of each run's validation front, its models scored on the test split "
             "(error, 1 + log10(params ratio) / 3), reference (e, 1). Each method's seeds: "
             + ", ".join(f"{m} {len(study.seeds_of(m))}" for m in study.methods) + ".", ""]
    medians: dict[str, list[float]] = {}  # per method, its median test HV at each reference, for both_references
    for label, ref in refs:
        lines += [f"Error reference {label}:", "",
                  f"| method | evaluations (its front's) | test HV per seed | median | rank-sum p vs NSGA-II@{top} |",
                  "|---|---|---|---|---|"]
        nsga = [study.test_hv("nsga2", s, ref) for s in seeds]
        for method in study.methods:
            values = [study.test_hv(method, s, ref) for s in study.seeds_of(method)]
            medians.setdefault(method, []).append(float(np.median(values)))
            drawn = sorted({study.summary(method, s)["true_evaluations"] for s in study.seeds_of(method)})
            lines.append(f"| {method} | {', '.join(map(str, drawn))} | "
                         f"{', '.join(f'{v:.4f}' for v in values)} | {median(values)} | "
                         f"{'–' if method == 'nsga2' else p_value(values, nsga)} |")
        lines.append("")

    lines += both_references(study, refs, medians, study.new / "both_references.png")

    thresholds = (1, 3, 10, 20, 30, 100, 300)
    lines += ["## Where along the front: the best test error at each compression", "",
              "Lowest test error among a front's models compressed at least that much (params ratio), median over "
              "seeds; '–' where no model of most seeds is that small.", "",
              "| method | " + " | ".join(f">= {t}x" for t in thresholds) + " |",
              "|---|" + "---|" * len(thresholds)]
    for method in study.methods:
        best = np.array([study.best_test_errors(method, s, thresholds) for s in study.seeds_of(method)])
        cells = [f"{np.median(column):.3f}" if np.isfinite(column).sum() * 2 > len(column) else "–" for column in best.T]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")

    edges = (1, 3, 10, 30, 100, 300)
    lines += ["## Where along the front: the test hypervolume by compression band (error reference 1.0)", "",
              "The test hypervolume above, cut where the front's models are compressed between two ratios (the last "
              "band: 300x and beyond); the bands add up to it. Median over seeds.", "",
              "| method | " + " | ".join(f"{a}-{b}x" for a, b in zip(edges, edges[1:])) + f" | >= {edges[-1]}x |",
              "|---|" + "---|" * len(edges)]
    for method in study.methods:
        bands = np.array([study.band_hvs(method, s, 1.0, edges) for s in study.seeds_of(method)])
        lines.append(f"| {method} | " + " | ".join(f"{b:.4f}" for b in np.median(bands, axis=0)) + " |")
    lines.append("")

    nsga_fronts = {s: study.test_objectives("nsga2", s) for s in seeds}  # read once, cut for every method
    for label, ref in refs:
        lines += [f"## How many models a front holds, error reference {label}", "",
                  f"Each run's test front: its count of models inside the reference box (test error below {ref:.3g}, "
                  f"at most 1,000x) and test hypervolume, against NSGA-II@{top}'s test front of the same seed cut to "
                  "its best k models for k = the loop's count (the subset of largest hypervolume, an upper bound on "
                  "any k of them). Median over seeds.", "",
                  f"| method | models in the box | test HV | NSGA-II@{top}'s best k, test HV | "
                  f"NSGA-II@{top}, models in the box |",
                  "|---|---|---|---|---|"]
        for method in study.methods:
            rows = []
            for s in study.seeds_of(method):
                F = study.test_objectives(method, s)  # its front.csv read once for the count and the hypervolume
                k = in_box(F, ref)
                rows.append((k, hypervolume(F, [ref, 1.0]), best_subset_hv(nsga_fronts[s], k, ref),
                             in_box(nsga_fronts[s], ref)))
            k, hv, best, whole = np.median(np.array(rows), axis=0)
            lines.append(f"| {method} | {k:.0f} | {hv:.4f} | {best:.4f} | {whole:.0f} |")
        lines.append("")

    edges = (1, 10, 30, 100, 300)
    lines += ["## Where the evaluations go: their compression and the loops' prediction error", "",
              f"Share of each run's first {budget} evaluations (NSGA-II: all {top:,}) per band of the params ratio, "
              "median over seeds; for a loop, in brackets, the median absolute difference between its surrogate's "
              "predicted mean error and the 1-epoch validation error of the candidates it chose, pooled over seeds.",
              "",
              f"| method | < {edges[1]}x | " + " | ".join(f"{a}-{b}x" for a, b in zip(edges[1:], edges[2:]))
              + f" | >= {edges[-1]}x |", "|---|" + "---|" * len(edges)]
    for method in study.methods:
        shares, misses = [], [[] for _ in edges]
        for s in study.seeds_of(method):
            chosen = [e for e in study.archive(method, s)[1][:top if method == "nsga2" else budget] if e.ok]
            band = np.searchsorted(edges[1:], [1 / e.ratios["params"] for e in chosen], side="right")
            shares.append(np.bincount(band, minlength=len(edges)) / len(chosen))
            for b, e in zip(band, chosen):
                if "predicted" in e.extra:
                    misses[b].append(abs(e.extra["predicted"][0] - e.error))
        cells = [f"{share:.2f}" + (f" ({np.median(miss):.3f})" if miss else "")
                 for share, miss in zip(np.median(shares, axis=0), misses)]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")

    steps = study.summary("nsga2", seeds[0])["finetune_steps_per_evaluation"]
    lines += ["## Validation split at equal fine-tuning steps", "",
              f"Every method's first {budget} evaluations cost {budget} x {steps} fine-tuning steps; the fidelity-0 "
              "loops spend forward passes besides (counted below in seconds), and a loop with a shortlist spends its "
              "short fine-tunes too, so each loop is also set against the peers after as many steps in all. "
              "NSGA-II's evaluations to reach a run's result: the same seed's NSGA-II archive.", ""]
    peers = [m for m in ("nsga2", "random", "botorch") if m in study.old_methods]
    long = {(m, s): study.long_archive(m, s) for m in peers for s in seeds}
    for label, ref in refs:
        lines += [f"Error reference {label}:", "",
                  f"| method | validation HV at {budget}, per seed | median | rank-sum p vs each fidelity-0 loop | "
                  "NSGA-II evaluations to reach it, per seed |", "|---|---|---|---|---|"]
        at_budget = {m: [hypervolume(study.archive(m, s)[0][:budget], [ref, 1.0]) for s in study.seeds_of(m)]
                     for m in study.methods}
        traces = {s: hypervolume_trace(long["nsga2", s], [ref, 1.0]) for s in seeds}
        for method, values in at_budget.items():
            reach = []
            for s, v in zip(study.seeds_of(method), values):
                hit = np.flatnonzero(traces[s] >= v - 1e-12)
                reach.append(str(hit[0] + 1) if len(hit) else f">{len(traces[s])}")
            tests = "; ".join(f"{p_value(values, at_budget[m])} vs {m}" for m in study.new_methods if m != method)
            lines.append(f"| {method} | {', '.join(f'{v:.4f}' for v in values)} | {median(values)} | {tests} | "
                         f"{', '.join(reach)} |")
        lines += ["", f"The loops against the peers after as many fine-tuning steps (error reference {label}): each "
                  "peer's archive cut, seed by seed, at the loop's steps / "
                  f"{steps} evaluations, rounded up; median validation HV and rank-sum p against the loop. Where a "
                  "peer's runs stop sooner, the loop's archive is cut instead, seed by seed, at the steps of the peer's "
                  "shortest run: the loop's median HV there against the peer's, p.", "",
                  "| method | loop's median HV | equal evaluations (median) | "
                  + " | ".join(f"{m}: median HV, p" for m in peers) + " |", "|---|---|---|" + "---|" * len(peers)]
        for method in study.new_methods:
            values = at_budget[method]
            runs = [study.archive(method, s) for s in study.seeds_of(method)]  # read once, cut for every peer
            equal = [-(-spent_steps(evaluations[:budget]) // steps) for _, evaluations in runs]
            cells = []
            for peer in peers:
                archives = [long[peer, s] for s in study.seeds_of(method)]
                if any(len(a) < n for a, n in zip(archives, equal)):  # the loop cut at the peer's steps instead
                    stop = min(len(a) for a in archives)
                    cut = [cut_at_steps(evaluations, stop * steps) for _, evaluations in runs]
                    ours = [hypervolume(F[:k], [ref, 1.0]) for (F, _), k in zip(runs, cut)]
                    theirs = [hypervolume(a[:stop], [ref, 1.0]) for a in archives]
                    cells.append(f"its runs stop at {stop}: the loop cut there ({int(np.median(cut))} evaluations) "
                                 f"{median(ours)} against {median(theirs)}, {p_value(ours, theirs)}")
                    continue
                theirs = [hypervolume(a[:n], [ref, 1.0]) for a, n in zip(archives, equal)]
                cells.append(f"{median(theirs)}, {p_value(values, theirs)}")
            lines.append(f"| {method} | {median(values)} | {int(np.median(equal))} | " + " | ".join(cells) + " |")
        lines.append("")

    lines += [f"## Compute per run, first {budget} evaluations (medians over seeds)", "",
              "| method | fine-tuning steps | of which short fine-tunes | fine-tuning s | short fine-tune s | "
              "optimizer s (fit, pool, infill) | of which fidelity 0 s |", "|---|---|---|---|---|---|---|"]
    for method in study.methods:
        rows = []
        for s in study.seeds_of(method):
            first = study.archive(method, s)[1][:budget]
            iterations = {batch_of(e.extra): e.extra for e in first if "iteration" in e.extra}  # one per batch
            design = max((e.extra.get("design_feature_seconds", 0.0) for e in first), default=0.0)
            optimizer = sum(x["fit_seconds"] + x["pool_seconds"] + x["infill_seconds"] for x in iterations.values())
            zero_shot = sum(x.get("feature_seconds", 0.0) for x in iterations.values())
            short = sum(x.get("short_seconds", 0.0) for x in iterations.values())
            total = spent_steps(first)
            rows.append((total, total - sum(e.steps for e in first), sum(e.seconds for e in first), short,
                         optimizer + design, zero_shot + design))
        cells = np.median(np.array(rows, dtype=float), axis=0)
        lines.append(f"| {method} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")
    lines += ["", "Seconds as stored with each trial, over every session of a run. " + study.seconds]
    (study.new / "compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
