"""Synthetic expensive problems: pymoo's test functions, evaluated as if each call cost a fine-tuning.

They run through the same `TrialRunner`, study and searches as compression, with every objective modelled
(none is cheap), so the loop can be checked against a known Pareto front.
"""

from __future__ import annotations

import time

import numpy as np
from pymoo.problems import get_problem
from pymoo.util.ref_dirs import get_reference_directions

from surrogate_emo.errors import ConfigError
from surrogate_emo.evaluate import Evaluation, objective_vector

# name: (pymoo keyword arguments, hypervolume reference point). The reference points are fixed and documented
# in results/README.md; each is slightly beyond the nadir of the true front, as is usual for these problems.
SYNTHETIC_PROBLEMS: dict[str, tuple[dict, tuple[float, ...]]] = {
    "zdt1": ({"n_var": 6}, (1.1, 1.1)),
    "zdt2": ({"n_var": 6}, (1.1, 1.1)),
    "zdt3": ({"n_var": 6}, (1.1, 1.1)),
    "dtlz2": ({"n_var": 6, "n_obj": 3}, (1.1, 1.1, 1.1)),
}


class SyntheticEvaluator:
    """Evaluator of a pymoo test problem, with the interface `TrialRunner` uses.

    The first objective is stored as the evaluation's ``error``, the others under ``ratios`` as ``f2``, ``f3``,
    ..., so studies and reports read them as they read compression runs.

    Example:
        >>> evaluator = SyntheticEvaluator("zdt1")
        >>> evaluation = evaluator(np.zeros(6), seed=0)
        >>> evaluator.objectives(evaluation).tolist()
        [0.0, 1.0]
    """

    def __init__(self, name: str) -> None:
        if name not in SYNTHETIC_PROBLEMS:
            raise ConfigError(f"unknown synthetic problem {name!r}; known: {sorted(SYNTHETIC_PROBLEMS)}")
        options, ref_point = SYNTHETIC_PROBLEMS[name]
        self.name = name
        self.problem = get_problem(name, **options)
        self.dim, self.n_obj = self.problem.n_var, self.problem.n_obj
        self.ref_point = np.array(ref_point, dtype=np.float64)
        self.objective_names = ("f1",) + tuple(f"f{i}" for i in range(2, self.n_obj + 1))
        self.n_evaluations = 0

    def _to_problem(self, genome: np.ndarray) -> np.ndarray:
        low, high = self.problem.xl, self.problem.xu  # genomes live in the unit cube, as everywhere
        return low + np.asarray(genome, dtype=np.float64) * (high - low)

    def __call__(self, genome: np.ndarray, seed: int) -> Evaluation:
        started = time.perf_counter()
        values = np.asarray(self.problem.evaluate(self._to_problem(genome)[None, :]), dtype=np.float64)[0]
        self.n_evaluations += 1
        return Evaluation(np.asarray(genome, dtype=np.float64), float(values[0]),
                          {name: float(v) for name, v in zip(self.objective_names[1:], values[1:])},
                          seconds=time.perf_counter() - started, seed=seed, source="none")

    def objectives(self, evaluation: Evaluation) -> np.ndarray:
        return objective_vector(evaluation, self.objective_names[1:])

    def true_front(self) -> np.ndarray:
        """Points of the known Pareto front (pymoo's), for IGD and the hypervolume limit: 1,000 on a 2-objective
        front, 5,151 (a Das-Dennis grid of 100 partitions) on a 3-objective one."""
        if self.n_obj == 2:
            return np.asarray(self.problem.pareto_front(1000, use_cache=False), dtype=np.float64)
        directions = get_reference_directions("das-dennis", self.n_obj, n_partitions=100)
        return np.asarray(self.problem.pareto_front(ref_dirs=directions, use_cache=False), dtype=np.float64)
