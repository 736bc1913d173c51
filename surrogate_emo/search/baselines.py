"""Full-evaluation baselines: NSGA-II (pymoo, every offspring truly evaluated) and random search."""

from __future__ import annotations

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator as PymooEvaluator
from pymoo.core.problem import Problem
from pymoo.operators.sampling.lhs import LHS
from pymoo.problems.static import StaticProblem

from surrogate_emo.errors import ConfigError
from surrogate_emo.search.base import Search


class NSGA2Search(Search):
    """NSGA-II through pymoo's ask-and-tell interface; each generation is ``pop_size`` true evaluations.

    Example:
        >>> search = NSGA2Search(dim=4, n_obj=2, seed=0, pop_size=8)
        >>> search.ask(100).shape
        (8, 4)
    """

    def __init__(self, dim: int, n_obj: int, seed: int = 0, pop_size: int = 20) -> None:
        super().__init__(dim, n_obj, seed)
        if pop_size < 2:
            raise ConfigError(f"pop_size must be at least 2, got {pop_size}")
        self._problem = Problem(n_var=dim, n_obj=n_obj, xl=np.zeros(dim), xu=np.ones(dim))
        self._algorithm = NSGA2(pop_size=pop_size, sampling=LHS(), eliminate_duplicates=True)
        self._algorithm.setup(self._problem, seed=seed, verbose=False)
        self._pending = None

    @classmethod
    def from_config(cls, config, dim: int, n_obj: int, **problem) -> NSGA2Search:
        return cls(dim, n_obj, seed=config.seed, pop_size=config.pop_size)

    def ask(self, n_max: int) -> np.ndarray:
        self._pending = self._algorithm.ask()[:n_max]  # the last generation may be cut short by the budget
        return np.clip(self._pending.get("X").astype(np.float64), 0.0, 1.0)

    def tell(self, X: np.ndarray, F: np.ndarray) -> None:
        PymooEvaluator().eval(StaticProblem(self._problem, F=np.asarray(F, dtype=np.float64)), self._pending)
        self._algorithm.tell(infills=self._pending)


class RandomSearch(Search):
    """Uniform random genomes, ``pop_size`` at a time; learns nothing."""

    def __init__(self, dim: int, n_obj: int, seed: int = 0, pop_size: int = 10) -> None:
        super().__init__(dim, n_obj, seed)
        self._rng = np.random.default_rng(seed)
        self._pop_size = pop_size

    @classmethod
    def from_config(cls, config, dim: int, n_obj: int, **problem) -> RandomSearch:
        return cls(dim, n_obj, seed=config.seed, pop_size=config.pop_size)

    def ask(self, n_max: int) -> np.ndarray:
        return self._rng.random((min(n_max, self._pop_size), self.dim))

    def tell(self, X: np.ndarray, F: np.ndarray) -> None:
        pass
