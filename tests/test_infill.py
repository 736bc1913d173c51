"""Contract tests for the infill criteria, on a surrogate whose predictions are known."""

from __future__ import annotations

import numpy as np
import pytest

from surrogate_emo.errors import ConfigError
from surrogate_emo.infill import INFILLS, InfillContext, make_infill
from surrogate_emo.surrogates import Surrogate


class Oracle(Surrogate):
    """Predicts the first gene as the error, with a small fixed variance."""

    def _fit(self, X, Y):
        pass

    def _predict(self, X):
        return X[:, :1].copy(), np.full((len(X), 1), 1e-4)


def context(seed=0):
    X = np.array([[0.5, 0.5], [0.3, 0.8], [0.8, 0.3]])
    return InfillContext(surrogate=Oracle().fit(X, X[:, :1]), X=X, F=X.copy(), n_expensive=1,
                         cheap=lambda X: X[:, 1:2], ref_point=np.ones(2), seed=seed)


POOL = np.array([[0.9, 0.9], [0.1, 0.1], [0.6, 0.6], [0.45, 0.45], [0.2, 0.95]])


@pytest.mark.parametrize("name", sorted(INFILLS))
def test_chooses_q_distinct_pool_rows_deterministically(name):
    first = make_infill(name).select(context(), POOL, 3)
    assert len(set(first.tolist())) == 3 and all(0 <= i < len(POOL) for i in first)
    assert np.array_equal(first, make_infill(name).select(context(), POOL, 3))


@pytest.mark.parametrize("name", ["ehvi", "mean"])
def test_hypervolume_criteria_pick_the_dominating_candidate_first(name):
    chosen = make_infill(name).select(context(), POOL, 2)
    assert chosen[0] == 1  # (0.1, 0.1) dominates the whole archive
    assert 0 not in chosen and 2 not in chosen  # dominated candidates add nothing


def test_ehvi_uses_the_exact_cheap_objective():
    # same predicted error, different exact compression: only the cheap objective separates them
    pool = np.array([[0.2, 0.7], [0.2, 0.2]])
    assert make_infill("ehvi").select(context(), pool, 1)[0] == 1


def test_ehvi_bands_spread_a_batch_over_the_cheap_objective():
    pool = np.array([[0.10, 0.10], [0.11, 0.12], [0.12, 0.11], [0.40, 0.90], [0.45, 0.95], [0.35, 0.85]])
    plain = make_infill("ehvi").select(context(), pool, 2)
    banded = make_infill("ehvi-bands").select(context(), pool, 2)
    assert set(plain.tolist()) <= {0, 1, 2}  # all from the most improving corner
    assert banded[0] in (0, 1, 2) and banded[1] in (3, 4, 5)  # one from each half of the compression range


def test_q_larger_than_the_pool_is_cut_to_the_pool():
    assert len(make_infill("random").select(context(), POOL[:2], 5)) == 2


def test_unknown_infill_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown infill criterion 'ei'; known: ehvi, ehvi-bands, mean, parego, random"):
        make_infill("ei")
