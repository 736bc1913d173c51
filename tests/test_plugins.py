"""Plug-ins by import path through the command line: a user surrogate, infill criterion, search and model, each
written to a folder outside the package, named as ``module:Name``, and seen at work in the run's outputs."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import numpy as np
import pytest

from surrogate_emo.cli import main
from surrogate_emo.store import Study

TINY = ["--budget", "8", "--base-epochs", "1", "--finetune-steps", "2", "--no-progress", "--no-final-test",
        "--no-warm-start"]
LOOP = ["--search", "surrogate", "--n-init", "4", "--q", "2", "--pool-size", "10", "--pool-generations", "2",
        "--error-scale", "linear"]


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A function that writes ``source`` as module ``name`` in a folder on the path and returns the name."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written = []

    def write(name: str, source: str) -> str:
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)  # a fresh import
        importlib.invalidate_caches()
        written.append(name)
        return name

    yield write
    for name in written:  # none left behind for other tests
        sys.modules.pop(name, None)


def _run(tmp_path, name: str, *options: str) -> list:
    """Run through the command line; return the stored evaluations in trial order."""
    argv = ["run", "--name", name, "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
            *TINY, *options]
    assert main(argv) == 0
    study = Study(tmp_path / "out" / name / "study.sqlite")
    try:
        return list(study.evaluations(study.run_id(name)).values())
    finally:
        study.close()


def test_a_user_surrogate_makes_the_predictions_of_the_loop(tmp_path, user_module):
    module = user_module("plugin_surrogate", """
        import numpy as np
        from surrogate_emo.surrogates import Surrogate

        class Constant(Surrogate):
            '''Predicts an error of 0.375 everywhere.'''

            def _fit(self, X, Y):
                pass

            def _predict(self, X):
                return np.full((len(X), 1), 0.375), np.full((len(X), 1), 0.01)
    """)
    evaluations = _run(tmp_path, "surrogate", *LOOP, "--surrogate", f"{module}:Constant")
    assert len(evaluations) == 8 and all(e.ok for e in evaluations)
    predicted = [e.extra.get("predicted") for e in evaluations]
    assert predicted == [None] * 4 + [[0.375]] * 4  # the initial design is not predicted; every infill point is


def test_a_user_infill_criterion_chooses_what_is_evaluated(tmp_path, user_module):
    module = user_module("plugin_infill", """
        import numpy as np
        from surrogate_emo.infill import Infill

        PICKED = []

        class FirstRows(Infill):
            '''The pool's first q rows, recorded.'''

            def _select(self, context, pool, q):
                PICKED.append(pool[:q].copy())
                return np.arange(q)
    """)
    evaluations = _run(tmp_path, "infill", *LOOP, "--infill", f"{module}:FirstRows")
    picked = sys.modules[module].PICKED
    assert len(picked) == 2 and all(len(rows) == 2 for rows in picked)  # (8 - 4 initial) / q = 2 iterations
    assert np.array_equal(np.array([e.genome for e in evaluations[4:]]), np.vstack(picked))


def test_a_user_search_with_only_ask_and_tell_proposes_every_genome(tmp_path, user_module):
    module = user_module("plugin_search", """
        import numpy as np
        from surrogate_emo.search import Search

        TOLD = []

        class Ladder(Search):
            '''Genomes with every gene equal, 0.1, 0.2, ... three at a time; remembers what it was told.'''

            def __init__(self, dim, n_obj, seed=0):
                super().__init__(dim, n_obj, seed)
                self.asked = 0

            def ask(self, n_max):
                count = min(3, n_max)
                levels = (self.asked + 1 + np.arange(count)) / 10
                self.asked += count
                return np.repeat(levels[:, None], self.dim, axis=1)

            def tell(self, X, F):
                TOLD.append((X.copy(), F.copy()))
    """)
    evaluations = _run(tmp_path, "search", "--search", f"{module}:Ladder")
    levels = np.arange(1, 9) / 10
    assert np.array_equal(np.array([e.genome for e in evaluations]), np.repeat(levels[:, None], 6, axis=1))
    told = sys.modules[module].TOLD
    assert [len(X) for X, _ in told] == [3, 3, 2]  # the last batch cut to the budget
    assert np.array_equal(np.vstack([F for _, F in told])[:, 0], [e.error for e in evaluations])


def test_a_user_model_factory_is_the_model_compressed(tmp_path, user_module):
    module = user_module("plugin_model", """
        from torch import nn

        def small(input_shape, n_classes):
            '''64 -> 20 -> n_classes on the 8x8 digits.'''
            features = 1
            for size in input_shape:
                features *= size
            return nn.Sequential(nn.Flatten(), nn.Linear(features, 20), nn.ReLU(), nn.Linear(20, n_classes))
    """)
    evaluations = _run(tmp_path, "model", "--model", f"{module}:small", "--pop-size", "4")
    assert len(evaluations) == 8 and all(e.ok for e in evaluations)
    summary = json.loads((tmp_path / "out" / "model" / "summary.json").read_text())
    # 64*20 + 20 weights and biases, then 20*10 + 10
    assert summary["dense_params"] == 64 * 20 + 20 + 20 * 10 + 10 == 1510
    assert summary["dense_macs"] == 64 * 20 + 20 * 10
    # two layers, two genes each: the genomes have the user model's shape
    assert all(e.genome.shape == (4,) for e in evaluations)
