"""Surrogate work per iteration (fit + NSGA-II pool + infill choice) at an archive of 200 real evaluations, with
BoTorch's exhaustive and lazy conditioned EHVI, the closed-form one and the one on joint pool samples, and the GP
refitted warm (from its fit at 196, the iteration before, as `--refit warm` does, each lengthscale started at most
at 3) or cold (from the defaults, as a run does by default).

The archive is the first 200 evaluations of the committed LeNet-300-100 / Fashion-MNIST NSGA-II study (seed 0), so errors
and genomes are real; the cheap objective is the exact params ratio. Nothing is fine-tuned.

    python experiments/bench_overhead.py [--repeats 3]

Writes results/overhead/overhead.csv and overhead.md.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from surrogate_emo.report import write_csv
from surrogate_emo.compare import load_run, objectives
from surrogate_emo.models import build_model
from surrogate_emo.schemes import LowRankSparseScheme
from surrogate_emo.search import SurrogateSearch

OUT = Path("results/overhead")
INFILLS = ("ehvi", "ehvi-lazy", "ehvi-exact", "ehvi-joint")
SETTINGS = [(surrogate, infill, refit) for surrogate, refit in (("gp", "cold"), ("gp", "warm"), ("rf", "cold"))
            for infill in INFILLS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archive", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # as the runs do: float sums, and so results, depend on the thread count
    evaluations = load_run(Path("results/lenet300_surrogate_vs_nsga2/nsga2_seed0"), "nsga2_seed0")[: args.archive]
    X, F = np.array([e.genome for e in evaluations]), objectives(evaluations)
    model = build_model("lenet-300-100", (1, 28, 28), 10)
    scheme = LowRankSparseScheme(model, (1, 28, 28))
    rows = []
    for surrogate, infill, refit in SETTINGS:
        for repeat in range(args.repeats):
            search = SurrogateSearch(X.shape[1], 2, seed=repeat, surrogate=surrogate, infill=infill, q=4, n_init=20,
                                     cheap=lambda G: scheme.ratio_matrix(G, ("params",)), log_scale=True,
                                     refit=refit)
            search.tell(X[:-4], F[:-4])
            search.ask(4)  # the iteration before (not timed): where a warm refit starts from
            search.tell(X[-4:], F[-4:])
            search.ask(4)
            stats = search.iterations[-1]
            total = stats["fit_seconds"] + stats["pool_seconds"] + stats["infill_seconds"]
            rows.append({"surrogate": surrogate, "infill": infill, "refit": refit, "repeat": repeat,
                         "archive": len(X), **stats, "total_seconds": total})
            print(rows[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(OUT / "overhead.csv", rows)
    lines = ["| surrogate | infill (q=4) | refit | archive | fit s | pool s | infill s | total s (median of repeats) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, infill, refit in SETTINGS:
        mine = [r for r in rows if (r["surrogate"], r["infill"], r["refit"]) == (name, infill, refit)]
        med = lambda key: np.median([r[key] for r in mine])  # noqa: E731
        shown = refit if name == "gp" else "–"  # a forest keeps nothing between fits
        lines.append(f"| {name} | {infill} | {shown} | {len(X)} | {med('fit_seconds'):.2f} | {med('pool_seconds'):.2f} | "
                     f"{med('infill_seconds'):.2f} | {med('total_seconds'):.2f} |")
    (OUT / "overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
