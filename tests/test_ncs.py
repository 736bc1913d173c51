"""Negatively Correlated Search on functions whose optimum is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymoo.core.problem import ElementwiseProblem
from pymoo.optimize import minimize

from surrogate_emo.errors import ConfigError
from surrogate_emo.search.ncs import NCS, bhattacharyya


class ShiftedSphere(ElementwiseProblem):
    """``sum (x - centre)^2`` on ``[-5, 5]^n``: the optimum is ``centre`` clipped to the box."""

    def __init__(self, n_var: int = 10, centre: float = 1.3) -> None:
        super().__init__(n_var=n_var, n_obj=1, xl=np.full(n_var, -5.0), xu=np.full(n_var, 5.0))
        self.centre = centre

    def _evaluate(self, x, out, *args, **kwargs):
        out["F"] = float(np.sum((x - self.centre) ** 2))


def test_bhattacharyya_by_hand():
    assert bhattacharyya(np.zeros(3), 0.5, np.zeros(3), 0.5) == 0.0
    # same means, sigmas 1 and 2: d/2 ln(2.5 / 2)
    assert bhattacharyya(np.zeros(2), 1.0, np.zeros(2), 2.0) == pytest.approx(math.log(1.25))
    # means 3 apart, sigmas 1 and 1: 9 / 8
    assert bhattacharyya(np.array([0.0]), 1.0, np.array([3.0]), 1.0) == pytest.approx(9 / 8)


def test_finds_the_optimum_of_a_shifted_sphere():
    result = minimize(ShiftedSphere(), NCS(pop_size=10), ("n_evals", 10_000), seed=1)
    assert result.F[0] < 1e-4
    np.testing.assert_allclose(result.X, 1.3, atol=0.01)


def test_optimum_on_the_bound_and_children_inside():
    result = minimize(ShiftedSphere(n_var=4, centre=7.0), NCS(pop_size=6, x0=np.zeros(4)), ("n_evals", 3000), seed=0)
    np.testing.assert_allclose(result.X, 5.0, atol=1e-3)  # the clipped optimum
    X = result.algorithm.pop.get("X")
    assert (X >= -5).all() and (X <= 5).all()


def test_starts_from_x0_and_never_loses_its_best():
    problem = ShiftedSphere(n_var=3)
    x0 = np.full(3, 1.3)  # already optimal: nothing can beat it
    result = minimize(problem, NCS(pop_size=5, x0=x0), ("n_evals", 500), seed=0)
    assert result.F[0] == 0.0
    np.testing.assert_array_equal(result.X, x0)


def test_same_seed_same_search():
    runs = [minimize(ShiftedSphere(n_var=5), NCS(pop_size=5), ("n_evals", 1000), seed=3) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].X, runs[1].X)
    other = minimize(ShiftedSphere(n_var=5), NCS(pop_size=5), ("n_evals", 1000), seed=4)
    assert not np.array_equal(runs[0].X, other.X)


def test_diversity_keeps_the_searches_apart():
    """With the quality term blind (a flat function), children are kept only for moving away from the others."""

    class Flat(ElementwiseProblem):
        def __init__(self):
            super().__init__(n_var=2, n_obj=1, xl=np.full(2, -100.0), xu=np.full(2, 100.0))

        def _evaluate(self, x, out, *args, **kwargs):
            out["F"] = 0.0

    def spread(X):
        return min(np.linalg.norm(a - b) for i, a in enumerate(X) for b in X[i + 1:])

    algorithm = NCS(pop_size=4, x0=np.zeros(2), sigma=0.001)
    result = minimize(Flat(), algorithm, ("n_evals", 400), seed=0)
    assert spread(result.algorithm.pop.get("X")) > 10 * 0.001 * 200  # far more than one step of the start


@pytest.mark.parametrize("kwargs, message", [({"pop_size": 1}, "pop_size >= 2"), ({"sigma": 0}, "sigma > 0"),
                                             ({"r": 1.5}, "0 < r <= 1")])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        NCS(**kwargs)


def test_refuses_two_objectives_and_a_wrong_x0():
    from pymoo.problems import get_problem

    with pytest.raises(ConfigError, match="one objective"):
        minimize(get_problem("zdt1"), NCS(), ("n_evals", 50), seed=0)
    with pytest.raises(ConfigError, match="x0 must have 3 values"):
        minimize(ShiftedSphere(n_var=3), NCS(x0=np.zeros(2)), ("n_evals", 50), seed=0)
