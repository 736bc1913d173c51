"""Compression quality: global magnitude pruning is exact in what it keeps, and the study re-scores fronts beside
it at the same ratios, resuming from what it wrote."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from surrogate_emo.errors import ConfigError
from surrogate_emo.experiment import Experiment, run_experiment
from surrogate_emo.models import mlp
from surrogate_emo.compress import measure
from surrogate_emo.compress.pricing import Pricing
from surrogate_emo.compress.quant import QuantLayer
from surrogate_emo.quality import best_compression, global_magnitude_prune, pruned_baseline

EXPERIMENT = """
name = "quality"
output_dir = "{out}"
seeds = [0]
[base]
budget = 10
pop_size = 5
base_epochs = 3
finetune_steps = 5
cache_dir = "{out}/cache"
[methods.nsga2]
search = "nsga2"
[quality]
methods = ["nsga2"]
final_finetune_epochs = 0.2
min_compression = 1.0
max_models = 4
"""


def test_global_pruning_keeps_the_largest_weights_under_one_threshold():
    torch.manual_seed(0)
    model = mlp((1, 8, 8), 10)
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    total = sum(p.numel() for p in model.parameters())
    pruned = global_magnitude_prune(model, names, 0.1)
    assert measure(pruned, (1, 8, 8), Pricing()).params == round(0.1 * total)
    kept, dropped = [], []
    for name in names:
        module = pruned.get_submodule(name)
        kept.append(module.weight[module.mask].abs())
        dropped.append(model.get_submodule(name).weight[~module.mask].abs())
        assert torch.equal(module.weight[~module.mask], torch.zeros_like(module.weight[~module.mask]))
    assert torch.cat(kept).min() >= torch.cat(dropped).max()  # one threshold for every layer
    assert all(type(model.get_submodule(n)) is torch.nn.Linear for n in names)  # the original is untouched
    with pytest.raises(ConfigError, match="prunable"):
        global_magnitude_prune(model, names, 1e-6)  # fewer parameters than the biases alone
    # pruned further (a gradual schedule's next step): from the kept weights, to the dense model's ratio
    further = global_magnitude_prune(pruned, names, 0.05)
    assert measure(further, (1, 8, 8), Pricing()).params == round(0.05 * total)
    assert all(not (further.get_submodule(n).mask & ~pruned.get_submodule(n).mask).any() for n in names)
    # with 8 bits: the same kept weights, quantised, counted at 8 bits with one scale per output channel
    quantised = global_magnitude_prune(model, names, 0.1, bits=8)
    assert all(isinstance(quantised.get_submodule(n), QuantLayer) for n in names)
    costs, float_costs = measure(quantised, (1, 8, 8), Pricing()), measure(pruned, (1, 8, 8), Pricing())
    assert costs.params == float_costs.params and costs.bytes < float_costs.bytes


def test_gradual_global_pruning_reaches_the_ratio_with_the_same_steps():
    from surrogate_emo.data import load_dataset

    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = mlp(data.input_shape, data.n_classes)
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    total = sum(p.numel() for p in model.parameters())
    for schedule in ("one-shot", "gradual"):
        pruned = pruned_baseline(model, names, 0.05, 8, schedule, data.train, steps=40, lr=1e-3, batch_size=64,
                                 seed=0, updates=4)
        assert measure(pruned, data.input_shape, Pricing()).params == round(0.05 * total), schedule


def test_best_compression_reads_the_test_error_against_dense():
    rows = [{"params_ratio": 0.5, "test_error": 0.105, "dense_test_error": 0.10},
            {"params_ratio": 0.1, "test_error": 0.109, "dense_test_error": 0.10},
            {"params_ratio": 0.05, "test_error": 0.125, "dense_test_error": 0.10}]
    assert best_compression(rows, 1.0) == pytest.approx(10.0)
    assert best_compression(rows, 3.0) == pytest.approx(20.0)
    assert best_compression(rows, 0.1) is None


def test_the_quality_study_matches_ratios_and_resumes(tmp_path):
    path = tmp_path / "quality.toml"
    path.write_text(EXPERIMENT.format(out=tmp_path))
    experiment = Experiment.from_file(path)
    outcomes = run_experiment(experiment, jobs=1, progress=False)
    assert {o["run"]: o["status"] for o in outcomes}["quality"] == "ran"
    folder = experiment.out_dir / "quality"
    with open(folder / "models.csv") as handle:
        rows = list(csv.DictReader(handle))
    search = [r for r in rows if r["kind"] == "search"]
    pruning = [r for r in rows if r["kind"] == "pruning"]
    assert 1 <= len(search) <= 4 and len(pruning) == len({r["params_ratio"] for r in search})
    dense_params = 50826
    for row in pruning:  # each pruned model sits at a front model's ratio, to one parameter
        assert min(abs(float(row["params_ratio"]) - float(s["params_ratio"])) for s in search) <= 1 / dense_params
        assert int(row["finetune_steps"]) == int(search[0]["finetune_steps"]) > 5
    assert "global magnitude pruning" in (folder / "quality.md").read_text()
    lines = (folder / "models.jsonl").read_text().count("\n")
    run_experiment(experiment, jobs=1, progress=False)
    assert (folder / "models.jsonl").read_text().count("\n") == lines  # nothing recomputed
    # two worker processes make the same models (each is seeded on its own)
    (folder / "models.jsonl").rename(tmp_path / "serial.jsonl")
    run_experiment(experiment, jobs=2, progress=False)

    def models(path):
        return sorted((json.dumps(r["key"]), r["test_error"], r["params_ratio"])
                      for r in map(json.loads, path.read_text().splitlines()))

    assert models(folder / "models.jsonl") == models(tmp_path / "serial.jsonl")


def test_a_quality_table_needs_a_compression_experiment(tmp_path):
    path = tmp_path / "bad.toml"
    text = EXPERIMENT.format(out=tmp_path).replace('seeds = [0]', 'seeds = [0]\nproblems = ["zdt1"]')
    path.write_text(text)
    with pytest.raises(ConfigError, match="compression"):
        Experiment.from_file(path)
    path.write_text(EXPERIMENT.format(out=tmp_path).replace('methods = ["nsga2"]', 'methods = ["gp"]'))
    with pytest.raises(ConfigError, match="quality methods"):
        Experiment.from_file(path)
    path.write_text(EXPERIMENT.format(out=tmp_path).replace("max_models = 4", "max_models = 4\nseed = 3"))
    with pytest.raises(ConfigError, match="quality seed 3"):
        Experiment.from_file(path)


def test_quality_options_are_checked():
    from surrogate_emo.quality import QualityConfig

    assert QualityConfig(schedules=["one-shot", "gradual"], baselines=["global-pruning-8bit"]).baseline_points == 0
    for bad, message in (({"schedules": ["slow"]}, "quality schedules must be a list from"),
                         ({"schedules": []}, "quality schedules must be a list from"),
                         ({"baselines": ["magic"]}, "quality baselines must be a list from"),
                         ({"baseline_points": -1}, "baseline_points must be >= 0"),
                         ({"max_val_points": -2.0}, "max_val_points must be a number >= 0")):
        with pytest.raises(ConfigError, match=message):
            QualityConfig(**bad)
