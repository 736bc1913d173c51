from __future__ import annotations

import csv

from surrogate_emo.compare import write_comparison
from surrogate_emo.pipeline import run
from tiny import tiny_config


def test_comparison_reads_the_studies_and_marks_missing_runs(tmp_path):
    out = tmp_path / "study"
    for method, search in (("nsga2", "nsga2"), ("random", "random")):
        run(tiny_config(tmp_path, name=f"{method}_seed0", output_dir=str(out), search=search, budget=8, pop_size=4))
    rows = write_comparison(out, ["nsga2", "random"], [0, 1], baseline="nsga2", checkpoints=[4, 8, 16])
    by_key = {(r["method"], r["seed"]): r for r in rows}
    assert by_key["random", 1]["status"] == "missing"
    finished = by_key["nsga2", 0]
    assert finished["status"] == "finished" and finished["true_evaluations"] == 8
    assert finished["hv@4"] <= finished["hv@8"] == finished["hv_final"] and finished["hv@16"] is None
    assert 1 <= finished["nsga2_evaluations_to_reach_hv_final"] <= 8
    with open(out / "comparison.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    markdown = (out / "comparison.md").read_text()
    assert "| nsga2 | 1 | 8 |" in markdown and "random seed 1 (missing)" in markdown
    assert (out / "hypervolume.png").stat().st_size > 0
