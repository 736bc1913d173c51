"""experiments/multifidelity_compare.py: its hand-written subset selection against brute force, and the both-references
section on a stand-in study."""

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


class StandIn:
    """What `both_references` reads of a study, and per method and reference one test hypervolume per seed."""

    title = "stand-in (LeNet"
    nsga2 = 1000
    old_methods = ("random", "nsga2")
    HV = {"loop_a": {1.0: [0.70, 0.72, 0.71], 0.2: [0.052, 0.050, 0.051]},  # ahead at both in the median
          "loop_b_useful3": {1.0: [0.69, 0.70, 0.69], 0.2: [0.055, 0.054, 0.056]},  # ahead at 0.2 only
          "random": {1.0: [0.50, 0.52, 0.51], 0.2: [0.040, 0.041, 0.042]},
          "nsga2": {1.0: [0.70, 0.71, 0.70], 0.2: [0.050, 0.051, 0.050]}}
    methods = tuple(HV)


def test_both_references_marks_only_a_method_ahead_at_both(compare, tmp_path):
    figure = tmp_path / "both.png"
    medians = {m: [float(np.median(hv[1.0])), float(np.median(hv[0.2]))] for m, hv in StandIn.HV.items()}
    lines = compare.both_references(StandIn(), (("1.0", 1.0), ("0.2", 0.2)), medians, figure)
    rows = {line.split(" | ")[1]: line.split(" | ") for line in lines if line.startswith("| ") and " | " in line}
    assert rows["loop_a"][-1] == "yes |" and rows["loop_a"][3] == "+0.01000"
    assert rows["loop_b_useful3"][-1] == "no |" and rows["loop_b_useful3"][5] == "+0.00500"
    assert rows["random"][-1] == "no |"
    assert rows["nsga2"][2] == "0.7000" and rows["nsga2"][4] == "0.0500"
    assert figure.stat().st_size > 10_000  # a PNG was drawn
    assert compare.FAMILIES["weighted both references (useful_weight)"]("loop_b_useful3", StandIn())
    assert not compare.FAMILIES["weighted both references (useful_weight)"]("loop_a", StandIn())
