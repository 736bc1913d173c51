"""How long BoTorch's box decompositions take for the EHVI of m objectives, exact against approximate.

The points are an archive as the loop holds it: ``n`` points, their non-dominated part on a concave front
(``sum(y^2) = 1`` in the maximisation BoTorch uses) and the rest dominated. For each m and n: seconds to build
``FastNondominatedPartitioning`` (exact) and ``NondominatedPartitioning(alpha)`` (approximate, BoTorch's
default alpha for 5 objectives and a coarser one), the boxes each gives, and how well the approximate boxes
give the hypervolume improvement of 200 candidates near the front (what EHVI averages): the median relative error
against the exact boxes and the Spearman rank correlation. Run alone (timings):

    python experiments/bench_box_decomposition.py > results/box_decomposition.md
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from scipy.stats import spearmanr
from botorch.utils.multi_objective.box_decompositions import FastNondominatedPartitioning, NondominatedPartitioning

torch.set_num_threads(1)


def archive(n: int, m: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    front = np.abs(rng.normal(size=(n // 2, m)))
    front /= np.linalg.norm(front, axis=1, keepdims=True)
    dominated = front[rng.integers(0, len(front), n - len(front))] * rng.uniform(0.5, 0.95, (n - len(front), 1))
    return torch.as_tensor(np.vstack([front, dominated]) - 1.0)  # maximised; reference at -1 below


def improvements(partitioning, X: torch.Tensor) -> np.ndarray:
    """Hypervolume each candidate row of ``X`` adds alone: its overlap with the non-dominated cells."""
    lower, upper = partitioning.get_hypercell_bounds()
    overlap = (torch.minimum(upper, X[:, None, :]) - lower).clamp_min(0.0).prod(dim=-1)
    return overlap.sum(dim=1).numpy()


def candidates(m: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed + 1)
    points = np.abs(rng.normal(size=(200, m)))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return torch.as_tensor(points * rng.uniform(0.9, 1.1, (200, 1)) - 1.0)


def timed(build) -> tuple[float, object]:
    began = time.perf_counter()
    built = build()
    return time.perf_counter() - began, built


def main() -> None:
    print("| objectives m | archive n | front | exact s | exact boxes | alpha 1e-3 s | boxes | HVI error | HVI rank | "
          "alpha 1e-2 s | boxes | HVI error | HVI rank |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for m in (2, 3, 4, 5):
        for n in (50, 100, 200):
            Y = archive(n, m, seed=0)
            ref = torch.full((m,), -1.0, dtype=torch.float64)
            row = [str(m), str(n), str(n // 2)]
            if m <= 4 or n <= 100:
                seconds, exact = timed(lambda: FastNondominatedPartitioning(ref_point=ref, Y=Y))
                X = candidates(m, seed=0)
                truth = improvements(exact, X)
                row += [f"{seconds:.3f}", str(exact.get_hypercell_bounds().shape[1])]
            else:
                truth, row = None, row + ["(not run)", ""]
            for alpha in (1e-3, 1e-2):
                seconds, approx = timed(lambda: NondominatedPartitioning(ref_point=ref, Y=Y, alpha=alpha))
                row += [f"{seconds:.3f}", str(approx.get_hypercell_bounds().shape[1])]
                if truth is None:
                    row += ["", ""]
                else:
                    got, useful = improvements(approx, X), truth > 0
                    error = np.median(np.abs(got[useful] - truth[useful]) / truth[useful])
                    row += [f"{error:.1e}", f"{spearmanr(got, truth).statistic:.3f}"]
            print("| " + " | ".join(row) + " |", flush=True)
    print(f"\ncommand: python {' '.join(sys.argv)}; torch threads 1")


if __name__ == "__main__":
    main()
