"""EMOMC: the gradually pruned library, quantisation without training, stage II's NSGA-II, and the recipe's resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import surrogate_emo.recipes.emomc as emomc
from surrogate_emo.compress import measure
from surrogate_emo.compress.masks import MaskedLayer
from surrogate_emo.compress.pricing import Pricing
from surrogate_emo.compress.quant import QuantLayer
from surrogate_emo.errors import ConfigError
from surrogate_emo.recipes.base import RecipeFile
from surrogate_emo.recipes.emomc import Settings, StageTwo, library_model, quantised, stage_two


def _kept(model):
    return {name: layer.kept for name, layer in model.named_modules() if isinstance(layer, MaskedLayer)}


def test_the_library_follows_the_schedule_and_resumes(trained, tmp_path):
    net, data = trained
    seen = []

    def after(epoch):
        state = torch.load(tmp_path / "a.pt", weights_only=True)["model"]
        seen.append({name: int(state[f"{name}.mask"].sum()) for name in ("1", "3")})

    model = library_model(net, data.train, 0.25, 4, 1e-3, 64, seed=0, checkpoint=tmp_path / "a.pt", progress=after)
    for epoch, kept in enumerate(seen):  # each layer keeps floor(0.25^((s+1)/4) n) after step s
        share = 0.25 ** ((epoch + 1) / 4)
        assert kept == {"1": math.floor(share * 2048 + 1e-9), "3": math.floor(share * 320 + 1e-9)}
    assert _kept(model) == {"1": 512, "3": 80}
    assert all(isinstance(m, nn.Linear) for m in net.modules() if isinstance(m, (nn.Linear, MaskedLayer)))

    def stop(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        library_model(net, data.train, 0.25, 4, 1e-3, 64, seed=0, checkpoint=tmp_path / "b.pt", progress=stop)
    resumed = library_model(net, data.train, 0.25, 4, 1e-3, 64, seed=0, checkpoint=tmp_path / "b.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_quantised_keeps_the_mask_and_prices_the_bits(trained):
    net, data = trained
    pruned = emomc.uniform_prune(net, ["1", "3"], 0.5)
    small = quantised(pruned, ["1", "3"], [3, 7])
    layers = [m for m in small.modules() if isinstance(m, QuantLayer)]
    assert [layer.bits for layer in layers] == [3, 7]
    assert [int(layer.mask.sum()) for layer in layers] == [1024, 160]
    assert isinstance(pruned.get_submodule("1"), MaskedLayer)  # the input is left as it was
    pricing = Pricing(coding="dense")
    dense_bits = 2048 * 3 + 320 * 7  # each weight in its bits, zeros included, under the dense coding
    assert measure(small, (1, 8, 8), pricing).bytes < measure(pruned, (1, 8, 8), pricing).bytes
    assert dense_bits / 8 < measure(small, (1, 8, 8), pricing).bytes  # plus scales, biases


def test_stage_two_decodes_and_returns_a_feasible_front(trained):
    net, data = trained
    names = ["1", "3"]
    library = {20.0: emomc.uniform_prune(net, names, 0.2), 60.0: emomc.uniform_prune(net, names, 0.6)}
    pricing = Pricing()
    dense = measure(net, (1, 8, 8), pricing)
    settings = Settings(keeps=[20, 60], pop_size=8, offsprings=4, generations=6, constraint_ratio=0.3)
    problem = StageTwo(library, names, data.val, (1, 8, 8), pricing, dense, settings)
    assert problem.decode(np.array([35.0, 2.4, 11.7])) == (20.0, 2, 12)
    assert problem.decode(np.array([45.0, 1.6, 12.49])) == (60.0, 2, 12)
    front = stage_two(problem, settings, seed=0)
    assert front
    scores = [problem.score(d) for d in front]
    assert all(ratios["bytes"] <= 0.3 for _, ratios in scores)  # the constraint on the other cost
    energy = [ratios["energy"] for _, ratios in scores]
    errors = [error for error, _ in scores]
    assert energy == sorted(energy) and errors == sorted(errors, reverse=True) or len(front) == 1
    assert stage_two(problem, settings, seed=0) == front  # same seed, same front


def _recipe(tmp_path):
    path = tmp_path / "emomc.toml"
    path.write_text(f'name = "emomc_tiny"\nrecipe = "emomc"\n[base]\ndataset = "digits"\nmodel = "mlp"\n'
                    f'base_epochs = 3\ncache_dir = "{tmp_path / "cache"}"\n[emomc]\nkeeps = [25, 50]\n'
                    'library_epochs = 3\ngenerations = 4\npop_size = 8\noffsprings = 4\nmax_models = 3\n'
                    'baselines = ["global-pruning-8bit"]\nschedules = ["one-shot"]\n')
    return RecipeFile.from_file(path)


def _table(folder):
    lines = (folder / "models.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [[c for c, name in zip(line.split(","), header) if "seconds" not in name] for line in lines]


def test_the_recipe_interrupted_in_its_library_resumes_to_the_same_models(tmp_path, monkeypatch):
    whole = _recipe(tmp_path)
    whole.output_dir = str(tmp_path / "whole")
    emomc.run(whole, progress=False)
    killed = _recipe(tmp_path)
    killed.output_dir = str(tmp_path / "killed")
    calls = {"n": 0}
    original = emomc.fit

    def fit_then_stop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # the second library model's second epoch
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(emomc, "fit", fit_then_stop)
    with pytest.raises(KeyboardInterrupt):
        emomc.run(killed, progress=False)
    monkeypatch.setattr(emomc, "fit", original)
    emomc.run(killed, progress=False)
    assert _table(killed.out_dir) == _table(whole.out_dir)
    rows = _table(whole.out_dir)
    assert {r[0] for r in rows[1:]} == {"EMOMC", "EMOMC library (float32)", "global magnitude pruning + 8-bit"}


@pytest.mark.parametrize("table, message", [("keeps = [0]", "kept percentages"), ("min_bits = 1", "min_bits"),
                                            ("objective = \"macs\"", "objective must be one of"),
                                            ("constraint_ratio = -1", "constraint_ratio")])
def test_bad_settings_are_named(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "x"\nrecipe = "emomc"\n[emomc]\n{table}\n')
    with pytest.raises(ConfigError, match=message):
        RecipeFile.from_file(path)
