"""SMOEA: the knee and the bound, the group-wise search with physical removal, and the recipe's resume."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import surrogate_emo.recipes.smoea as smoea
from surrogate_emo.errors import ConfigError
from surrogate_emo.recipes.base import RecipeFile
from surrogate_emo.store import Study


def test_knee_of_a_known_front():
    F = np.array([[0.0, 1.0], [0.1, 0.2], [0.5, 0.1], [1.0, 0.0]])
    assert smoea.knee(F) == 1  # farthest from the line through (0, 1) and (1, 0)
    assert smoea.knee(np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])) in (0, 1, 2)  # a straight front: any point
    assert smoea.knee(np.array([[0.2, 0.3]])) == 0


def test_choose_within_the_bound_takes_the_smallest():
    F = np.array([[0.10, 0.9], [0.105, 0.5], [0.13, 0.2], [0.30, 0.05]])
    assert smoea.choose(F, "bound", floor=0.10, max_drop=0.01) == 1
    assert smoea.choose(F, "bound", floor=0.10, max_drop=0.05) == 2
    assert smoea.choose(F, "bound", floor=0.0, max_drop=0.0) == 0  # none within: the most accurate


def _file(tmp_path, out):
    path = tmp_path / "smoea.toml"
    path.write_text(f'name = "smoea_tiny"\nrecipe = "smoea"\n[base]\ndataset = "digits"\nmodel = "mlp"\n'
                    f'base_epochs = 3\ncache_dir = "{tmp_path / "cache"}"\n[smoea]\ngroup_size = 1\npop_size = 4\n'
                    'generations = 2\neval_steps = 10\ngroup_steps = 30\n')
    file = RecipeFile.from_file(path)
    file.output_dir = str(tmp_path / out)
    return file


def _table(folder):
    lines = (folder / "models.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [[c for c, name in zip(line.split(","), header) if not name.startswith("seconds")] for line in lines]


def test_the_recipe_removes_channels_group_by_group_and_resumes(tmp_path, monkeypatch):
    whole = _file(tmp_path, "whole")
    smoea.run(whole, progress=False)
    rows = _table(whole.out_dir)
    assert [r[0] for r in rows[1:]] == ["SMOEA", "uniform L1 filter pruning", "global magnitude pruning"]
    params = [float(r[3]) for r in rows[1:]]
    assert params[0] < 1.0 and params[1] <= params[0] and params[2] == pytest.approx(params[0], abs=1e-4)
    # what SMOEA spent: every candidate's 10 steps and each group's 30, beyond what its own model saw
    study = Study(whole.out_dir / "study.sqlite")
    groups = [name for name in study.run_names() if name.startswith("smoea-group")]
    candidates = sum(len(study.evaluations(study.run_id(name))) for name in groups)
    with open(whole.out_dir / "models.csv") as handle:
        spent = int(next(csv.DictReader(handle))["steps_spent"])
    assert spent == 10 * candidates + 30 * len(groups) and candidates > len(groups)
    killed = _file(tmp_path, "killed")
    original, calls = smoea.fit, {"n": 0}

    def fit_then_stop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 12:  # inside the second group's search: the first group is checkpointed
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(smoea, "fit", fit_then_stop)
    with pytest.raises(KeyboardInterrupt):
        smoea.run(killed, progress=False)
    assert (killed.out_dir / "checkpoints" / "smoea_seed0.pt").is_file()
    monkeypatch.setattr(smoea, "fit", original)
    smoea.run(killed, progress=False)
    assert _table(killed.out_dir) == rows


@pytest.mark.parametrize("table, message", [("group_size = 0", "group_size >= 1"), ('choose = "best"', "choose"),
                                            ("eval_steps = -1", "eval_steps >= 0")])
def test_bad_settings_are_named(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "x"\nrecipe = "smoea"\n[smoea]\n{table}\n')
    with pytest.raises(ConfigError, match=message):
        RecipeFile.from_file(path)


def test_the_surrogate_assisted_version_spends_a_third_of_the_evaluations(tmp_path):
    import sqlite3

    file = _file(tmp_path, "sa")
    file.settings.update(search="surrogate", pop_size=6, generations=2)  # NSGA-II: 12 per group; a third is 4
    best = smoea.run(file, progress=False)
    assert "SMOEA, surrogate-assisted (gp) (group by group)" in best
    with sqlite3.connect(file.out_dir / "study.sqlite") as db:
        counts = dict(db.execute("SELECT r.name, COUNT(*) FROM evaluations e JOIN runs r USING (run_id) "
                                 "WHERE r.name LIKE 'smoea-group%' GROUP BY r.name").fetchall())
    assert counts == {"smoea-group0_seed0": 4, "smoea-group1_seed0": 4}
    table = _table(file.out_dir)
    smoea.run(file, progress=False)  # every evaluation replayed from the study: the same models
    assert _table(file.out_dir) == table
