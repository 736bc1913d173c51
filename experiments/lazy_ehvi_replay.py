"""Does the lazy conditioned EHVI choose what the exhaustive one chooses? Replays committed surrogate-loop runs.

At every iteration of each replayed run (the archive as it stood, the surrogate fitted and the NSGA-II pool
evolved exactly as the run did), the q = 4 batch is chosen twice from the same pool: by BoTorch's
``optimize_acqf_discrete`` over the whole pool (infill ``ehvi``) and lazily (``ehvi-lazy``); the script counts
the iterations whose batches agree and times both.

    python experiments/lazy_ehvi_replay.py [--seeds 0] [--problems zdt1 zdt2 zdt3 dtlz2]

Reads results/synthetic/<problem>/surrogate_gp_seed<k>/ (study 1); writes results/lazy_ehvi/replay.csv and
replay.md.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from surrogate_emo.compare import load_run
from surrogate_emo.infill import _ehvi, _pick_from_pool, _pick_lazily
from surrogate_emo.problems import SyntheticEvaluator
from surrogate_emo.report import write_csv
from surrogate_emo.search import SurrogateSearch

OUT = Path("results/lazy_ehvi")
Q, N_INIT = 4, 20  # as in experiments/synthetic.toml


def replay(problem: str, seed: int) -> list[dict]:
    evaluator = SyntheticEvaluator(problem)
    name = f"surrogate_gp_seed{seed}"
    evaluations = load_run(Path("results/synthetic") / problem / name, name)
    X = np.array([e.genome for e in evaluations])
    F = np.array([evaluator.objectives(e) for e in evaluations])
    rows = []
    for size in range(N_INIT, len(X), Q):
        search = SurrogateSearch(evaluator.dim, evaluator.n_obj, seed=seed, q=Q, n_init=N_INIT,
                                 n_expensive=evaluator.n_obj, ref_point=evaluator.ref_point)
        search.tell(X[:size], F[:size])
        # the iteration's seed, surrogate and pool, made as SurrogateSearch._choose makes them
        iteration_seed = search._iteration_seed()
        context = search._context(search._fitted("gp", iteration_seed), iteration_seed)
        pool = search._pool(context, iteration_seed)
        started = time.perf_counter()
        exhaustive = _pick_from_pool(_ehvi(context, pool), pool, Q)
        middle = time.perf_counter()
        lazy = _pick_lazily(_ehvi(context, pool), pool, Q)
        ended = time.perf_counter()
        rows.append({"problem": problem, "seed": seed, "archive": size,
                     "same_batch": bool(np.array_equal(exhaustive, lazy)),
                     "same_set": set(exhaustive.tolist()) == set(lazy.tolist()),
                     "exhaustive_seconds": middle - started, "lazy_seconds": ended - middle,
                     "exhaustive": exhaustive.tolist(), "lazy": lazy.tolist()})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--problems", nargs="+", default=["zdt1", "zdt2", "zdt3", "dtlz2"])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # as the runs do
    rows = [row for problem in args.problems for seed in args.seeds for row in replay(problem, seed)]
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(OUT / "replay.csv", rows)
    lines = ["| problem | iterations | same batch | same set | exhaustive s / iteration | lazy s / iteration |",
             "|---|---|---|---|---|---|"]
    for problem in args.problems + ["all"]:
        mine = [r for r in rows if problem in ("all", r["problem"])]
        lines.append(f"| {problem} | {len(mine)} | {sum(r['same_batch'] for r in mine)} | "
                     f"{sum(r['same_set'] for r in mine)} | {np.mean([r['exhaustive_seconds'] for r in mine]):.2f} | "
                     f"{np.mean([r['lazy_seconds'] for r in mine]):.2f} |")
    (OUT / "replay.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
