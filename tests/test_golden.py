"""Golden run: the quickstart study committed before compression schemes and log-scale objectives existed is
reproduced, so a change that alters results is seen.

The quickstart configuration (``experiments/quickstart.toml``, warm starts on as the committed run had them) with the
cheap objective on its old, linear scale and a budget of 60 must evaluate the same genomes as the first 60 trials of
``results/quickstart-linear/study.sqlite`` and score them alike. Float sums differ in their last bits across CPUs, so an error may differ by one image of the validation
split (1/288 on digits: its 360 images are the test split), but no more, and nearly all must be exactly equal.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from surrogate_emo.config import config_from_dict, load_config_file
from surrogate_emo.data import load_dataset
from surrogate_emo.pipeline import run

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 60


def _committed(budget: int) -> list[tuple[int, list[float], float]]:
    uri = (ROOT / "results" / "quickstart-linear" / "study.sqlite").as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        rows = db.execute("SELECT trial, genome, error FROM evaluations WHERE trial < ? ORDER BY trial",
                          (budget,)).fetchall()
    return [(trial, json.loads(genome), error) for trial, genome, error in rows]


def test_quickstart_reproduces_the_committed_study(tmp_path):
    values = load_config_file(ROOT / "experiments" / "quickstart.toml")
    config = config_from_dict({**values, "objective_scale": "linear", "budget": BUDGET, "output_dir": str(tmp_path / "runs"),
                               "cache_dir": str(tmp_path / "cache"), "progress": False, "final_test": False})
    assert config.warm_start  # as the committed run had it
    expected = _committed(BUDGET)
    assert [trial for trial, _, _ in expected] == list(range(BUDGET))

    one_image = 1 / len(load_dataset(config.dataset, seed=config.data_seed).val)

    got = sorted(run(config).evaluations, key=lambda e: e.trial)

    assert [e.trial for e in got] == list(range(BUDGET))
    np.testing.assert_allclose(np.array([e.genome for e in got]), np.array([g for _, g, _ in expected]),
                               rtol=0, atol=1e-6)
    errors, committed = np.array([e.error for e in got]), np.array([error for _, _, error in expected])
    assert np.all(np.abs(errors - committed) <= one_image + 1e-12), np.flatnonzero(np.abs(errors - committed) > 0)
    assert int(np.sum(errors == committed)) >= BUDGET - 2, np.flatnonzero(errors != committed)


def test_a_study_from_before_the_log_scale_resumes_only_on_the_linear_scale(tmp_path):
    import shutil

    from surrogate_emo.errors import StudyMismatchError
    from surrogate_emo.pipeline import check_outputs

    shutil.copytree(ROOT / "results" / "quickstart-linear", tmp_path / "quickstart")
    values = {**load_config_file(ROOT / "experiments" / "quickstart.toml"), "output_dir": str(tmp_path),
              "cache_dir": str(tmp_path / "cache"), "progress": False}
    with pytest.raises(StudyMismatchError, match="objective_scale: stored 'linear', given 'log'"):
        check_outputs(config_from_dict(values))
    check_outputs(config_from_dict({**values, "objective_scale": "linear"}))  # its own scale: resumes
