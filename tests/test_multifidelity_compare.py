"""The hand-written subset selection of experiments/multifidelity_compare.py, against brute force."""

import importlib.util
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from surrogate_emo.front import hypervolume

SCRIPT = Path(__file__).parent.parent / "experiments" / "multifidelity_compare.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("multifidelity_compare", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ref", [1.0, 0.4])
def test_best_subset_hv_is_the_best_of_every_k_subset(compare, seed, ref):
    rng = np.random.default_rng(seed)
    F = rng.uniform(0.0, 1.1, size=(9, 2))  # dominated points and points outside the box among them
    for k in range(1, 5):
        brute = max(hypervolume(F[list(subset)], [ref, 1.0]) for subset in combinations(range(len(F)), k))
        assert compare.best_subset_hv(F, k, ref) == pytest.approx(brute, abs=1e-12)


def test_in_box_counts_what_a_hypervolume_counts(compare):
    F = np.array([[0.1, 0.5], [0.3, 0.2], [0.5, 0.1], [0.2, 1.0]])
    assert compare.in_box(F, 0.4) == 2  # 0.5 is past the error reference, 1.0 on the compression axis' edge
    assert compare.in_box(F, 1.0) == 3
    assert compare.best_subset_hv(F, 0, 0.4) == 0.0
