"""How much of the pool the lazy conditioned EHVI scores on a compression archive, and how much its batch depends on
the Monte-Carlo sample count: what stands between the loop's default infill and 1 s per iteration.

On the archives of the committed LeNet-300-100 / Fashion-MNIST NSGA-II study (seed 0) at 100, 120, ... 240
evaluations (the params ratio exact, as in `bench_overhead.py`), the GP is fitted and the pool evolved as an
iteration of the loop does; the batch of q = 4 is then chosen lazily with 128 Monte-Carlo samples (the default),
counting the pool rows each conditioned step scores, and again with 64 and 32 samples.

    python experiments/lazy_ehvi_pruning.py

Writes results/lazy_ehvi/pruning.csv and pruning.md. Run it alone: it times the choices.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import surrogate_emo.infill as infill
from surrogate_emo.compare import load_run, objectives
from surrogate_emo.models import build_model
from surrogate_emo.report import write_csv
from surrogate_emo.schemes import LowRankSparseScheme
from surrogate_emo.search import SurrogateSearch

OUT = Path("results/lazy_ehvi")
Q, SIZES, SAMPLES = 4, range(100, 241, 20), (128, 64, 32)


class Counted:
    """An acquisition that counts the candidate rows it scores beyond the first call (the one over the whole pool)."""

    def __init__(self, acquisition) -> None:
        self.acquisition, self.calls, self.rows = acquisition, 0, 0

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += len(X) if self.calls > 1 else 0
        return self.acquisition(X)

    def set_X_pending(self, X_pending) -> None:
        self.acquisition.set_X_pending(X_pending)


def main() -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # as the runs do
    threadpool_limits(1)
    evaluations = load_run(Path("results/lenet300_surrogate_vs_nsga2/nsga2_seed0"), "nsga2_seed0")
    X, F = np.array([e.genome for e in evaluations]), objectives(evaluations)
    scheme = LowRankSparseScheme(build_model("lenet-300-100", (1, 28, 28), 10), (1, 28, 28))
    rows = []
    for size in SIZES:
        search = SurrogateSearch(X.shape[1], 2, seed=0, surrogate="gp", infill="ehvi-lazy", q=Q, n_init=20,
                                 cheap=lambda G: scheme.ratio_matrix(G, ("params",)), log_scale=True)
        search.tell(X[:size], F[:size])
        # the iteration's seed, surrogate and pool, made as SurrogateSearch._choose makes them
        seed = search._iteration_seed()
        context = search._context(search._fitted("gp", seed), seed)
        pool = search._pool(context, seed, pending=np.zeros((0, X.shape[1])))
        row, default = {"archive": size, "pool": len(pool), "conditioned_rows_max": (Q - 1) * (len(pool) - 1)}, None
        for samples in SAMPLES:
            infill.MC_SAMPLES = samples
            try:
                acquisition = Counted(infill._ehvi(context, pool))
                started = time.perf_counter()
                chosen = infill._pick_lazily(acquisition, pool, Q)
                seconds = time.perf_counter() - started
            finally:
                infill.MC_SAMPLES = 128
            default = chosen if default is None else default
            row.update({f"rows_{samples}": acquisition.rows, f"seconds_{samples}": seconds,
                        f"same_set_{samples}": set(chosen.tolist()) == set(default.tolist())})
        rows.append(row)
        print(row, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(OUT / "pruning.csv", rows)
    lines = ["| archive | pool | conditioned rows scored, of at most | choice s (128 samples) | 64 samples: same batch, s "
             "| 32 samples: same batch, s |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['archive']} | {r['pool']} | {r['rows_128']} of {r['conditioned_rows_max']} | "
                     f"{r['seconds_128']:.2f} | {'yes' if r['same_set_64'] else 'no'}, {r['seconds_64']:.2f} | "
                     f"{'yes' if r['same_set_32'] else 'no'}, {r['seconds_32']:.2f} |")
    lines.append(f"| all | | {sum(r['rows_128'] for r in rows)} of {sum(r['conditioned_rows_max'] for r in rows)} | "
                 f"{np.mean([r['seconds_128'] for r in rows]):.2f} | "
                 f"{sum(r['same_set_64'] for r in rows)} of {len(rows)}, {np.mean([r['seconds_64'] for r in rows]):.2f} | "
                 f"{sum(r['same_set_32'] for r in rows)} of {len(rows)}, {np.mean([r['seconds_32'] for r in rows]):.2f} |")
    (OUT / "pruning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
