"""Methods side by side: the quality study over several seeds, each seed beside its own baselines, and every
method (searches, recipes, baselines) reduced per seed to its best compression, with medians and rank-sum tests."""

import csv
import json

import pytest

from surrogate_emo.errors import ConfigError
from surrogate_emo.experiment import Experiment, run_experiment
from surrogate_emo.quality import QualityConfig
from surrogate_emo.side_by_side import side_by_side

STUDY = """
name = "study"
output_dir = "{out}"
seeds = [0, 1]
[base]
dataset = "digits"
model = "mlp"
budget = 8
pop_size = 4
base_epochs = 3
finetune_steps = 5
cache_dir = "{out}/cache"
[methods.nsga2]
search = "nsga2"
[recipes.olmp]
recipe = "olmp"
deltas = [0.05]
iterations = 40
prune_until = 20
ncs_every = 20
ncs_evaluations = 12
ncs_pop = 4
baselines = []
[quality]
methods = ["nsga2"]
seeds = [0, 1]
final_finetune_epochs = 0.1
min_compression = 1.0
max_models = 2
schedules = ["one-shot"]
baseline_schedules = ["one-shot", "gradual"]
baselines = ["global-pruning", "global-pruning-8bit"]
baseline_points = 2
baseline_compressions = [3.0]
"""


def test_methods_are_compared_over_seeds_against_the_baselines(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.format(out=tmp_path))
    experiment = Experiment.from_file(path)
    outcomes = run_experiment(experiment, jobs=1, progress=False)
    assert {o["run"]: o["status"] for o in outcomes}["quality"] == "ran"
    with open(experiment.out_dir / "quality" / "models.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["seed"] for r in rows} == {"0", "1"}  # each seed's fronts and baselines
    assert {(r["method"], r["schedule"]) for r in rows if r["kind"] == "pruning"} == {
        ("global magnitude pruning", "one-shot"), ("global magnitude pruning", "gradual"),
        ("global magnitude pruning + 8-bit", "one-shot"), ("global magnitude pruning + 8-bit", "gradual")}
    assert {r["schedule"] for r in rows if r["kind"] == "search"} == {"one-shot"}
    for seed in ("0", "1"):  # each baseline also at the asked compression, beyond the fronts
        for group in ("global magnitude pruning", "global magnitude pruning + 8-bit"):
            assert min(abs(1 / float(r["params_ratio"]) - 3.0) for r in rows
                       if r["seed"] == seed and r["method"] == group) < 1e-3
    assert all(float(r["seconds"]) > 0 for r in rows)
    per_seed, summary = side_by_side(experiment)
    groups = {(r["source"], r["method"], r["schedule"]): r for r in summary}
    assert ("search", "nsga2", "one-shot") in groups and ("recipe olmp", "OLMP", "prune and adjust") in groups
    search = groups[("search", "nsga2", "one-shot")]
    assert search["seeds"] == 2 and search["p_params_at_1pt"] is not None
    assert groups[("baseline", "global magnitude pruning", "gradual")]["p_params_at_1pt"] is None  # the reference
    for row in per_seed:  # a search spent its true evaluations plus the final fine-tunes of its re-scored models
        if row["source"] == "search":
            spent = json.loads((tmp_path / "study" / "mlp_digits" / f"nsga2_seed{row['seed']}" / "summary.json")
                               .read_text())["finetune_steps_total"]
            assert row["finetune_steps"] == spent + row["models"] * (int(rows[0]["finetune_steps"]) - 5) > spent
            assert row["true_evaluations"] == 8
        # the per-seed best equals what the quality rows say, one model at a time
        mine = [r for r in rows if r["method"] == row["method"] and r["schedule"] == row["schedule"]
                and int(r["seed"]) == row["seed"]] if row["source"] != "recipe olmp" else []
        fine = [1 / float(r["params_ratio"]) for r in mine
                if float(r["test_error"]) <= float(r["dense_test_error"]) + 0.01 + 1e-12]
        if mine:
            assert row["params_at_1pt"] == (pytest.approx(max(fine)) if fine else None)
    summary_md = (experiment.out_dir / "summary.md").read_text()
    assert "## Every method side by side" in summary_md and (experiment.out_dir / "methods.png").is_file()


@pytest.mark.parametrize("table, message", [({"seeds": []}, "quality seeds"),
                                            ({"baseline_schedules": ["slow"]}, "baseline_schedules"),
                                            ({"baseline_compressions": [0.5]}, "baseline_compressions")])
def test_bad_quality_seeds_and_schedules_are_named(table, message):
    with pytest.raises(ConfigError, match=message):
        QualityConfig(methods=["a"], **table)
