"""Synthetic check of the surrogate loop: pymoo's ZDT1 with 6 variables, both objectives treated as expensive,
100 true evaluations, against BoTorch's qLogNEHVI and NSGA-II at the same budget. Hypervolume reference point
(1.1, 1.1); the true front's hypervolume is 0.8762 (the limit). The loop three ways with GPs refitted cold every
iteration (the default): the exhaustive conditioned EHVI, the lazy one (the default), and the lazy one with each
batch polished by 20 L-BFGS-B steps up its EHVI (``polish_steps``); the last two again with warm refits
(``refit="warm"``, lengthscales started at most at 3); the polished one (20 and 10 steps) and BoTorch's again
told that both objectives are never negative (``lower_bounds``: posterior samples below 0 count as 0). Optimizer
seconds per iteration (fit, pool, choice) beside the hypervolume: the evaluations cost nothing. Run it alone on the machine:
the seconds of the methods are compared. ``--methods`` runs some of them and keeps the others' stored rows.

    python experiments/zdt1_check.py [--seeds 0 1 2] [--methods surrogate_gp_lazy_warm_q4 ...]

Writes results/zdt1_check/zdt1.csv and zdt1.md.
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pymoo.problems import get_problem
from threadpoolctl import threadpool_limits

from surrogate_emo.front import hypervolume
from surrogate_emo.report import write_csv
from surrogate_emo.search import BoTorchSearch, NSGA2Search, SurrogateSearch

OUT = Path("results/zdt1_check")
REF = np.array([1.1, 1.1])
FLOOR = [0.0, 0.0]  # ZDT1's objectives are never negative: the "floor" methods tell the acquisition so
BUDGET = 100


def drive(search, problem) -> tuple[np.ndarray, float, float]:
    """(objectives of every evaluation, seconds of the run, optimizer seconds per surrogate iteration)."""
    F, started = [], time.perf_counter()
    while len(F) < BUDGET:
        X = search.ask(BUDGET - len(F))
        values = problem.evaluate(X)
        search.tell(X, values)
        F.extend(values)
    iterations = getattr(search, "iterations", [])
    per_iteration = (np.mean([i["fit_seconds"] + i["pool_seconds"] + i["infill_seconds"] for i in iterations])
                     if iterations else 0.0)
    return np.array(F), time.perf_counter() - started, float(per_iteration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=None, help="run only these; the others' rows are kept")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # as the runs do: float sums, and so results, depend on the thread count
    threadpool_limits(1)  # numpy's and scipy's BLAS too, on one core like the runs
    problem = get_problem("zdt1", n_var=6)
    limit = hypervolume(problem.pareto_front(1000), REF)
    OUT.mkdir(parents=True, exist_ok=True)
    order = ["surrogate_gp_ehvi_q4", "surrogate_gp_lazy_q4", "surrogate_gp_lazy_polish20_q4", "surrogate_gp_lazy_warm_q4",
             "surrogate_gp_lazy_polish20_warm_q4", "surrogate_gp_lazy_polish20_floor_q4",
             "surrogate_gp_lazy_polish10_floor_q4", "botorch_qlognehvi_q4", "botorch_qlognehvi_floor_q4", "nsga2_pop20"]
    unknown = sorted(set(args.methods or ()) - set(order))
    if unknown:
        parser.error(f"--methods must be among {', '.join(order)}; got {', '.join(unknown)}")
    chosen = args.methods or order
    kept = []
    if args.methods and (OUT / "zdt1.csv").exists():
        with open(OUT / "zdt1.csv", newline="") as stored:
            kept = [_parsed(row) for row in csv.DictReader(stored) if row["method"] not in chosen]
    rows = []
    for seed in args.seeds:
        loop = dict(seed=seed, surrogate="gp", q=4, n_init=20, n_expensive=2, ref_point=REF)
        methods = {
            "surrogate_gp_ehvi_q4": lambda: SurrogateSearch(6, 2, infill="ehvi", refit="cold", **loop),
            "surrogate_gp_lazy_q4": lambda: SurrogateSearch(6, 2, infill="ehvi-lazy", refit="cold", **loop),
            "surrogate_gp_lazy_polish20_q4": lambda: SurrogateSearch(6, 2, infill="ehvi-lazy", polish_steps=20,
                                                                     refit="cold", **loop),
            "surrogate_gp_lazy_warm_q4": lambda: SurrogateSearch(6, 2, infill="ehvi-lazy", refit="warm", **loop),
            "surrogate_gp_lazy_polish20_warm_q4": lambda: SurrogateSearch(6, 2, infill="ehvi-lazy", polish_steps=20,
                                                                          refit="warm", **loop),
            "surrogate_gp_lazy_polish20_floor_q4": lambda: SurrogateSearch(6, 2, infill="ehvi-lazy", polish_steps=20,
                                                                           refit="cold", lower_bounds=FLOOR, **loop),
            "surrogate_gp_lazy_polish10_floor_q4": lambda: SurrogateSearch(6, 2, infill="ehvi-lazy", polish_steps=10,
                                                                           refit="cold", lower_bounds=FLOOR, **loop),
            "botorch_qlognehvi_q4": lambda: BoTorchSearch(6, 2, seed=seed, q=4, n_init=20, n_expensive=2,
                                                          ref_point=REF),
            "botorch_qlognehvi_floor_q4": lambda: BoTorchSearch(6, 2, seed=seed, q=4, n_init=20, n_expensive=2,
                                                                ref_point=REF, lower_bounds=FLOOR),
            "nsga2_pop20": lambda: NSGA2Search(6, 2, seed=seed, pop_size=20),
        }
        for name in chosen:
            search = methods[name]()
            F, seconds, per_iteration = drive(search, problem)
            rows.append({"method": name, "seed": seed, "true_evaluations": len(F),
                         "hypervolume": hypervolume(F, REF), "true_front_hypervolume": limit, "seconds": seconds,
                         "optimizer_seconds_per_iteration": per_iteration})
            print(rows[-1], flush=True)
    rows = sorted(kept + rows, key=lambda r: (order.index(r["method"]), r["seed"]))
    write_csv(OUT / "zdt1.csv", rows)
    lines = ["| method | seeds | median HV @100 | min | max | true-front HV | median seconds | optimizer s / iteration "
             "(median) |", "|---|---|---|---|---|---|---|---|"]
    for name in [name for name in order if any(r["method"] == name for r in rows)]:
        hv = [r["hypervolume"] for r in rows if r["method"] == name]
        sec = [r["seconds"] for r in rows if r["method"] == name]
        per = [r["optimizer_seconds_per_iteration"] for r in rows if r["method"] == name]
        lines.append(f"| {name} | {len(hv)} | {np.median(hv):.4f} | {min(hv):.4f} | {max(hv):.4f} | {limit:.4f} | "
                     f"{np.median(sec):.1f} | {np.median(per):.2f} |")
    (OUT / "zdt1.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _parsed(row: dict) -> dict:
    """A stored CSV row with its numbers as numbers again."""
    return {key: value if key == "method" else (int(value) if key in ("seed", "true_evaluations") else float(value))
            for key, value in row.items()}


if __name__ == "__main__":
    main()
