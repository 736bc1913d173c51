from __future__ import annotations

import math

import numpy as np
import pytest

from surrogate_emo.errors import StudyMismatchError
from surrogate_emo.evaluate import Evaluation
from surrogate_emo.store import Study


def test_evaluations_round_trip_exactly(tmp_path):
    study = Study(tmp_path / "s.sqlite")
    run_id = study.open_run("r", {"seed": 1})
    genome = np.random.default_rng(0).random(6)
    study.record(run_id, 0, Evaluation(genome, 0.125, {"params": 0.3}, steps=7, seconds=0.5, seed=99))
    study.record(run_id, 1, Evaluation(genome, math.nan, {"params": 0.3}, "failed", "FineTuneDiverged: boom"))
    study.close()
    stored = Study(tmp_path / "s.sqlite").evaluations(run_id)
    assert list(stored) == [0, 1]
    assert np.array_equal(stored[0].genome, genome)  # bit-exact: resume compares genomes for equality
    assert (stored[0].error, stored[0].steps, stored[0].seed) == (0.125, 7, 99)
    assert stored[1].status == "failed" and stored[1].reason == "FineTuneDiverged: boom"
    assert math.isnan(stored[1].error)


def test_a_trial_is_written_once(tmp_path):
    study = Study(tmp_path / "s.sqlite")
    run_id = study.open_run("r", {})
    evaluation = Evaluation(np.zeros(2), 0.5, {"params": 1.0})
    study.record(run_id, 0, evaluation)
    with pytest.raises(Exception, match="UNIQUE"):
        study.record(run_id, 0, evaluation)


def test_reopening_with_another_config_names_the_difference(tmp_path):
    study = Study(tmp_path / "s.sqlite")
    first = study.open_run("r", {"seed": 1, "budget": 10})
    assert study.open_run("r", {"seed": 1, "budget": 20}, ignore=("budget",)) == first
    with pytest.raises(StudyMismatchError, match=r"seed: stored 1, given 2"):
        study.open_run("r", {"seed": 2, "budget": 10})
    assert study.open_run("other", {"seed": 2}) != first
    assert study.run_names() == ["r", "other"]
