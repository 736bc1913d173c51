"""The full-evaluation baselines spend no true evaluation on a model they already evaluated."""

from __future__ import annotations

import numpy as np
import pytest
from pymoo.problems import get_problem

from surrogate_emo.errors import SearchExhausted
from surrogate_emo.search.baselines import NSGA2Search, RandomSearch

ZDT1 = get_problem("zdt1", n_var=4)


def coarse(X):
    """Many genomes build one model: the first two genes read to a tenth."""
    return [(int(row[0] * 10), int(row[1] * 10)) for row in X]


def drive(search, budget):
    asked = []
    while sum(map(len, asked)) < budget:
        X = search.ask(budget - sum(map(len, asked)))
        search.tell(X, ZDT1.evaluate(X))
        asked.append(X)
    return np.vstack(asked)


def test_nsga2_offspring_never_repeat_a_structure_of_any_earlier_generation():
    X = drive(NSGA2Search(4, 2, seed=0, pop_size=6, structure=coarse), 24)
    assert len(set(coarse(X))) == len(X)
    plain = drive(NSGA2Search(4, 2, seed=0, pop_size=6), 24)
    assert len(set(coarse(plain))) < len(plain)  # pymoo's own elimination compares genes, not models


def test_nsga2_with_structures_is_deterministic():
    first = drive(NSGA2Search(4, 2, seed=3, pop_size=6, structure=coarse), 18)
    assert np.array_equal(first, drive(NSGA2Search(4, 2, seed=3, pop_size=6, structure=coarse), 18))


def test_random_search_draws_again_for_a_model_it_already_asked_for():
    X = drive(RandomSearch(4, 2, seed=0, pop_size=5, structure=coarse), 20)
    assert len(set(coarse(X))) == 20


def test_nsga2_in_a_space_it_has_exhausted_says_so():
    search = NSGA2Search(4, 2, seed=0, pop_size=4, structure=lambda X: [int(row[0] * 3) for row in X])
    with pytest.raises(SearchExhausted, match="no genome that builds a model not yet evaluated"):
        drive(search, 40)
