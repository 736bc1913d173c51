"""Every scheme through every search, the study, the warm-start cache and the reports, on tiny budgets; a resumed
run replays its study and ends with the same archive."""

from __future__ import annotations

import json

import pytest

from surrogate_emo.pipeline import run
from surrogate_emo.schemes import SCHEMES

from tiny import tiny_config

SEARCHES = {"nsga2": {}, "random": {}, "surrogate": {"n_init": 4, "q": 2, "pool_size": 10, "pool_generations": 2},
            "botorch": {"n_init": 4, "q": 2}}


# every scheme with NSGA-II, and each other search with a scheme (the suite's time is bounded)
PAIRS = [(scheme, "nsga2") for scheme in sorted(SCHEMES)] + [
    ("prune-quant", "surrogate"), ("prune", "surrogate"), ("filters", "botorch"), ("quant", "random")]


def test_the_pairs_cover_every_scheme_and_search():
    assert {scheme for scheme, _ in PAIRS} == set(SCHEMES) and {search for _, search in PAIRS} == set(SEARCHES)


@pytest.mark.parametrize("scheme,search", PAIRS)
def test_a_scheme_runs_a_search_and_resumes_to_the_same_archive(tmp_path, scheme, search):
    objectives = ["bytes"] if scheme == "lowrank-sparse" else ["bytes", "energy"]
    budget = 6 if search == "botorch" else 8  # one BoTorch iteration: its optimizer is the slow part
    for options in (SEARCHES[search],):
        config = tiny_config(tmp_path, name=f"{scheme}-{search}", scheme=scheme, search=search, budget=budget,
                             objectives=objectives, warm_start=True, **options)
        first = run(config)
        summary = json.loads((first.run_dir / "summary.json").read_text())
        assert summary["true_evaluations"] == budget and summary["failed"] == 0, (scheme, search)
        assert summary["objectives"] == ["error", *objectives]
        assert summary["front_val_errors_reproduced"], (scheme, search)
        columns = (first.run_dir / "evaluations.csv").read_text().splitlines()[0].split(",")
        assert "size_reduction" in columns and ("energy_reduction" in columns) == ("energy" in objectives)
        for name in ("pareto_front.png", "convergence.png", "front.csv"):
            assert (first.run_dir / name).is_file()
        again = run(config)
        assert again.summary["replayed_from_study"] == budget and again.summary["evaluated_now"] == 0
        assert [(e.genome.tolist(), e.error) for e in again.evaluations] == [
            (e.genome.tolist(), e.error) for e in first.evaluations]
