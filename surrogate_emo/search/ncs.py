"""Negatively Correlated Search (Tang, Yang and Yao, IEEE JSAC 34(3), 2016), the optimiser inside OLMP.

Written here because no library has it. NCS runs ``pop_size`` Gaussian searches side by side. Each one, every
iteration, draws one child ``x' = x + sigma N(0, I)`` and keeps it when it is good enough *or* different enough
from the other searches:

* quality: with ``f*`` the best value found so far, ``q = (f(x') - f*) / ((f(x) - f*) + (f(x') - f*))``
  (0 for a child as good as the best, 1/2 for a child no better than its parent);
* diversity: ``Corr(p)`` is the smallest Bhattacharyya distance from the search's distribution ``N(x, sigma^2 I)``
  to any other search's; ``c = Corr(p') / (Corr(p) + Corr(p'))``;
* the child replaces its parent when ``q < lambda c``, with ``lambda ~ N(1, 0.1 - 0.1 t / T)`` drawn each
  iteration (the trade-off becomes deterministic towards the end).

Every ``epoch`` iterations each step size follows the 1/5 success rule: divided by ``r`` where more than a fifth of
that search's children replaced their parent, multiplied by ``r`` where fewer did. Children are clipped to the
problem's bounds. NCS is single-objective and unconstrained: a constraint enters as a penalty in ``F``, as OLMP
gives an infeasible candidate the fitness 1.1.

Example:
    >>> from pymoo.optimize import minimize
    >>> from pymoo.problems import get_problem
    >>> result = minimize(get_problem("sphere", n_var=3), NCS(pop_size=5), ("n_evals", 2000), seed=0)
    >>> bool(result.F[0] < 1e-3)
    True
"""

from __future__ import annotations

import math

import numpy as np
from pymoo.core.algorithm import Algorithm
from pymoo.core.population import Population
from pymoo.operators.sampling.rnd import FloatRandomSampling
from pymoo.util.display.single import SingleObjectiveOutput

from surrogate_emo.errors import ConfigError


def bhattacharyya(mean_a: np.ndarray, sigma_a: float, mean_b: np.ndarray, sigma_b: float) -> float:
    """Bhattacharyya distance between ``N(mean_a, sigma_a^2 I)`` and ``N(mean_b, sigma_b^2 I)``.

    With ``s^2 = (sigma_a^2 + sigma_b^2) / 2`` and ``d`` dimensions it is
    ``|mean_a - mean_b|^2 / (8 s^2) + d/2 ln(s^2 / (sigma_a sigma_b))``.

    Example:
        >>> bhattacharyya(np.zeros(2), 1.0, np.array([2.0, 0.0]), 1.0)  # 4 / 8
        0.5
    """
    spread = (sigma_a ** 2 + sigma_b ** 2) / 2
    gap = float(np.sum((np.asarray(mean_a) - np.asarray(mean_b)) ** 2))
    return gap / (8 * spread) + len(mean_a) / 2 * math.log(spread / (sigma_a * sigma_b))


def _nearest(means: np.ndarray, sigmas: np.ndarray, mean: np.ndarray, sigma: float, skip: int) -> float:
    """The smallest Bhattacharyya distance from ``N(mean, sigma^2 I)`` to the searches other than ``skip``."""
    return min(bhattacharyya(mean, sigma, means[j], sigmas[j]) for j in range(len(means)) if j != skip)


class NCS(Algorithm):
    """Negatively Correlated Search (NCS-C) as a pymoo algorithm: ``pymoo.optimize.minimize(problem, NCS(), ...)``.

    Args:
        pop_size: parallel Gaussian searches (OLMP: 10).
        sigma: initial step size, as a fraction of each variable's range.
        r: the 1/5 rule's factor (OLMP: 0.99).
        epoch: iterations between step-size updates (with r = 0.99, every iteration: the step can shrink by
            100x over some 460 iterations).
        x0: start every search here (the first exactly, the others one step away); else uniform in the bounds.
        horizon: iterations over which lambda's spread decays; by default from an ``n_evals`` or ``n_gen``
            termination, else 100.
    """

    def __init__(self, pop_size: int = 10, sigma: float = 0.1, r: float = 0.99, epoch: int = 1,
                 x0: np.ndarray | None = None, horizon: int | None = None, output=None, **kwargs) -> None:
        super().__init__(output=output or SingleObjectiveOutput(), **kwargs)
        if pop_size < 2:
            raise ConfigError(f"NCS needs pop_size >= 2 (the searches are compared to each other), got {pop_size}")
        if not sigma > 0 or not 0 < r <= 1 or epoch < 1:
            raise ConfigError(f"NCS needs sigma > 0, 0 < r <= 1 and epoch >= 1; got {sigma}, {r}, {epoch}")
        self.pop_size, self.sigma0, self.r, self.epoch = pop_size, sigma, r, epoch
        self.x0 = None if x0 is None else np.asarray(x0, dtype=np.float64)
        self.horizon = horizon

    def _setup(self, problem, **kwargs) -> None:
        if problem.n_obj != 1:
            raise ConfigError(f"NCS minimises one objective, the problem has {problem.n_obj}")
        if self.x0 is not None and self.x0.shape != (problem.n_var,):
            raise ConfigError(f"NCS x0 must have {problem.n_var} values, got shape {self.x0.shape}")
        if self.horizon is None:
            evals, gens = getattr(self.termination, "n_max_evals", None), getattr(self.termination, "n_max_gen", None)
            self.horizon = (math.ceil(evals / self.pop_size) if evals else gens) or 100

    def _initialize_infill(self) -> Population:
        low, high = self.problem.bounds()
        if self.x0 is None:
            return FloatRandomSampling().do(self.problem, self.pop_size, random_state=self.random_state)
        X = self.x0 + self.sigma0 * (high - low) * self.random_state.standard_normal((self.pop_size, len(low)))
        X[0] = self.x0
        return Population.new(X=np.clip(X, low, high))

    def _initialize_advance(self, infills=None, **kwargs) -> None:
        self.pop = infills
        low, high = self.problem.bounds()
        # one step size per search, in units of each variable's range (the distribution is isotropic in them)
        self.scale = high - low
        self.sigmas = np.full(self.pop_size, self.sigma0)
        self.successes = np.zeros(self.pop_size, dtype=int)
        self.iteration = 0
        self.best = self.pop[np.argmin(self.pop.get("F")[:, 0])]

    def _infill(self) -> Population:
        low, high = self.problem.bounds()
        steps = self.sigmas[:, None] * self.scale * self.random_state.standard_normal((self.pop_size, len(low)))
        return Population.new(X=np.clip(self.pop.get("X") + steps, low, high))

    def _advance(self, infills=None, **kwargs) -> None:
        parents, children = self.pop.get("F")[:, 0], infills.get("F")[:, 0]
        if children.min() < self.best.F[0]:
            self.best = infills[int(np.argmin(children))]
        best = self.best.F[0]
        means = self.pop.get("X") / self.scale  # isotropic in units of the ranges
        child_means = infills.get("X") / self.scale
        spread = max(0.1 - 0.1 * self.iteration / self.horizon, 0.0)
        lam = self.random_state.normal(1.0, spread) if spread > 0 else 1.0
        keep = np.zeros(self.pop_size, dtype=bool)
        for i in range(self.pop_size):
            worse_parent, worse_child = parents[i] - best, children[i] - best
            quality = worse_child / (worse_parent + worse_child) if worse_parent + worse_child > 0 else 0.5
            corr = _nearest(means, self.sigmas, means[i], self.sigmas[i], i)
            corr_child = _nearest(means, self.sigmas, child_means[i], self.sigmas[i], i)
            diversity = corr_child / (corr + corr_child) if corr + corr_child > 0 else 0.5
            keep[i] = quality < lam * diversity
        self.pop = Population.create(*[infills[i] if keep[i] else self.pop[i] for i in range(self.pop_size)])
        self.successes += keep
        self.iteration += 1
        if self.iteration % self.epoch == 0:
            rate = self.successes / self.epoch
            self.sigmas = np.where(rate > 0.2, self.sigmas / self.r, np.where(rate < 0.2, self.sigmas * self.r,
                                                                                  self.sigmas))
            self.successes[:] = 0

    def _set_optimum(self) -> None:
        self.opt = Population.create(self.best)
