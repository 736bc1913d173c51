"""Full-evaluation baselines: NSGA-II (pymoo, every offspring truly evaluated) and random search."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.evaluator import Evaluator as PymooEvaluator
from pymoo.core.problem import Problem
from pymoo.operators.sampling.lhs import LHS
from pymoo.problems.static import StaticProblem

from surrogate_emo.errors import ConfigError, SearchExhausted
from surrogate_emo.search.base import Search

Structure = Callable[[np.ndarray], list]  # genomes `n x d` -> one hashable key per genome: the model it builds


class _NewStructures(DuplicateElimination):
    """pymoo's duplicate elimination by the structure a genome builds, against everything evaluated so far as well
    as the population: NSGA-II then never spends a true evaluation on a model it already has (pymoo's own
    elimination compares genes, and only within the current population)."""

    def __init__(self, structure: Structure) -> None:
        super().__init__()
        self.structure, self.seen = structure, set()

    def _keys(self, pop) -> list:
        return self.structure(np.clip(pop.get("X").astype(np.float64), 0.0, 1.0))

    def _do(self, pop, other, is_duplicate):
        taken = set(self.seen) | (set(self._keys(other)) if other is not None else set())
        for i, key in enumerate(self._keys(pop)):
            is_duplicate[i] = key in taken
            taken.add(key)
        return is_duplicate


class NSGA2Search(Search):
    """NSGA-II through pymoo's ask-and-tell interface; each generation is ``pop_size`` true evaluations. With
    ``structure`` (the scheme's `structure_keys`), offspring that build a model already evaluated are replaced.

    Example:
        >>> search = NSGA2Search(dim=4, n_obj=2, seed=0, pop_size=8)
        >>> search.ask(100).shape
        (8, 4)
    """

    def __init__(self, dim: int, n_obj: int, seed: int = 0, pop_size: int = 20,
                 structure: Structure | None = None) -> None:
        super().__init__(dim, n_obj, seed)
        if pop_size < 2:
            raise ConfigError(f"pop_size must be at least 2, got {pop_size}")
        self._problem = Problem(n_var=dim, n_obj=n_obj, xl=np.zeros(dim), xu=np.ones(dim))
        self._structures = None if structure is None else _NewStructures(structure)
        self._algorithm = NSGA2(pop_size=pop_size, sampling=LHS(),
                                eliminate_duplicates=True if structure is None else self._structures)
        self._algorithm.setup(self._problem, seed=seed, verbose=False)
        self._pending = None

    @classmethod
    def from_config(cls, config, dim: int, n_obj: int, structure=None, **problem) -> NSGA2Search:
        return cls(dim, n_obj, seed=config.seed, pop_size=config.pop_size, structure=structure)

    def ask(self, n_max: int) -> np.ndarray:
        offspring = self._algorithm.ask()
        if offspring is None or not len(offspring):  # pymoo's mating gave up: every offspring it tried was known
            known = len(self._structures.seen) if self._structures is not None else "its population"
            raise SearchExhausted(f"NSGA-II found no genome that builds a model not yet evaluated (known: {known}); "
                                  "the space holds few models: expected a budget below their number")
        self._pending = offspring[:n_max]  # the last generation may be cut short by the budget
        return np.clip(self._pending.get("X").astype(np.float64), 0.0, 1.0)

    def tell(self, X: np.ndarray, F: np.ndarray) -> None:
        if self._structures is not None:
            self._structures.seen.update(self._structures.structure(X))
        PymooEvaluator().eval(StaticProblem(self._problem, F=np.asarray(F, dtype=np.float64)), self._pending)
        self._algorithm.tell(infills=self._pending)


class RandomSearch(Search):
    """Uniform random genomes, ``pop_size`` at a time; learns nothing. With ``structure``, a genome that builds a
    model already asked for is drawn again (up to `REDRAWS` times)."""

    REDRAWS = 100

    def __init__(self, dim: int, n_obj: int, seed: int = 0, pop_size: int = 10,
                 structure: Structure | None = None) -> None:
        super().__init__(dim, n_obj, seed)
        self._rng = np.random.default_rng(seed)
        self._pop_size = pop_size
        self._structure, self._seen = structure, set()

    @classmethod
    def from_config(cls, config, dim: int, n_obj: int, structure=None, **problem) -> RandomSearch:
        return cls(dim, n_obj, seed=config.seed, pop_size=config.pop_size, structure=structure)

    def ask(self, n_max: int) -> np.ndarray:
        X = self._rng.random((min(n_max, self._pop_size), self.dim))
        if self._structure is None:
            return X
        for i in range(len(X)):
            for _ in range(self.REDRAWS):
                key = self._structure(X[i: i + 1])[0]
                if key not in self._seen:
                    break
                X[i] = self._rng.random(self.dim)
            self._seen.add(key)
        return X

    def tell(self, X: np.ndarray, F: np.ndarray) -> None:
        pass
