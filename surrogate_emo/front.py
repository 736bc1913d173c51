"""Pareto fronts and hypervolume of minimized objectives `n x m` (thin wrappers over pymoo)."""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def pareto_indices(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``F`` (duplicates all kept), sorted by the first objective."""
    F = np.asarray(F, dtype=np.float64)
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    front = np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=int)
    return front[np.argsort(F[front, 0], kind="stable")]


def hypervolume(F: np.ndarray, ref_point) -> float:
    """Hypervolume dominated by ``F`` up to ``ref_point``; points beyond the reference count for nothing."""
    F = np.asarray(F, dtype=np.float64)
    ref = np.asarray(ref_point, dtype=np.float64)
    inside = F[np.all(F < ref, axis=1)] if len(F) else F
    return float(HV(ref_point=ref)(inside)) if len(inside) else 0.0


def hypervolume_trace(F: np.ndarray, ref_point) -> np.ndarray:
    """Hypervolume of the first ``k`` rows for every ``k``: the convergence curve over true evaluations."""
    F = np.asarray(F, dtype=np.float64)
    trace, best = np.zeros(len(F)), 0.0
    for k in range(len(F)):
        if np.all(F[k] < ref_point):  # only a point inside the box can raise the hypervolume
            best = hypervolume(F[: k + 1], ref_point)
        trace[k] = best
    return trace
